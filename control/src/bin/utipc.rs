//! `utipc`: the management and messaging command of utipc (the counterpart of iproute2's
//! `tipc`). Today it decodes captures; node management and messaging subcommands follow.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use utipc_control::decode::{self, DecodeOptions};

#[derive(Debug, Parser)]
#[command(
    name = "utipc",
    version,
    about = "utipc: user-space TIPC, management and tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print every TIPC message in pcap/pcapng captures (Ethernet 0x88CA, UDP port 6118).
    ///
    /// One line per message, nested bundle/tunnel/fragment contents indented; the last line is
    /// `frames=N tipc=N ok=N failed=N`. Exit status 1 if anything failed to parse or, with
    /// --check, did not re-emit byte for byte.
    Decode {
        /// Re-emit every message from its parsed form and compare byte for byte.
        #[arg(long)]
        check: bool,
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
        /// Capture files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Decode { check, json, files } => {
            let opts = DecodeOptions { check, json, files };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut err = std::io::stderr();
            match decode::run(&opts, &mut out, &mut err) {
                Ok(sum) if sum.success() => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(1),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("utipc decode: writing output failed: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
