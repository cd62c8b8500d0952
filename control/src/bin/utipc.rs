//! `utipc`: the management and messaging command of utipc (the counterpart of iproute2's
//! `tipc`). Management subcommands ask a running `utipcd`; messaging subcommands run a whole
//! node inside the command with `--embedded`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use utipc_control::config::NodeArgs;
use utipc_control::decode::{self, DecodeOptions};
use utipc_control::messaging::{self, EchoArgs, PingArgs, RecvArgs, SendArgs};
use utipc_control::mgmt::Query;
use utipc_control::mgmt_client;

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

/// Options of the management subcommands.
#[derive(Debug, Args)]
struct MgmtArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// utipcd's run directory (default $UTIPC_RUN_DIR or /run/utipc).
    #[arg(long)]
    run_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum LinkCmd {
    /// List links and their state.
    List(MgmtArgs),
}

#[derive(Debug, Subcommand)]
enum NodeCmd {
    /// List this node and its peers.
    List(MgmtArgs),
}

#[derive(Debug, Subcommand)]
enum NameTableCmd {
    /// Show the name table.
    Show(MgmtArgs),
}

#[derive(Debug, Subcommand)]
enum BearerCmd {
    /// List enabled bearers.
    List(MgmtArgs),
}

/// Where a messaging command's node runs.
#[derive(Debug, Args)]
struct Placement {
    /// Run a whole node inside this command (with the node options below) instead of
    /// attaching to utipcd.
    #[arg(long)]
    embedded: bool,
    #[command(flatten)]
    node: NodeArgs,
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
    /// Links (from utipcd).
    #[command(subcommand)]
    Link(LinkCmd),
    /// Nodes (from utipcd).
    #[command(subcommand)]
    Node(NodeCmd),
    /// The name table (from utipcd).
    #[command(subcommand)]
    Nametable(NameTableCmd),
    /// Bearers (from utipcd).
    #[command(subcommand)]
    Bearer(BearerCmd),
    /// Send datagrams to a service and time each echo.
    Ping {
        #[command(flatten)]
        args: PingArgs,
        #[command(flatten)]
        place: Placement,
    },
    /// Bind service addresses and echo every datagram back to its sender.
    Echo {
        #[command(flatten)]
        args: EchoArgs,
        #[command(flatten)]
        place: Placement,
    },
    /// Send one datagram with the bytes read from standard input.
    Send {
        #[command(flatten)]
        args: SendArgs,
        #[command(flatten)]
        place: Placement,
    },
    /// Bind a service address and write the data of received datagrams to standard output.
    Recv {
        #[command(flatten)]
        args: RecvArgs,
        #[command(flatten)]
        place: Placement,
    },
}

fn mgmt(q: Query, a: &MgmtArgs) -> ExitCode {
    let dir = a
        .run_dir
        .clone()
        .unwrap_or_else(utipc_control::config::run_dir);
    match mgmt_client::query(&dir, q) {
        Ok(data) => {
            if a.json {
                println!("{data}");
            } else {
                print!("{}", utipc_control::mgmt::render_text(q, &data));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("utipc: {e}");
            ExitCode::from(1)
        }
    }
}

fn messaging_node(place: &Placement) -> Result<messaging::Session, String> {
    if !place.embedded {
        return Err(
            "messaging through utipcd is not available yet: add --embedded and node options \
             (e.g. --embedded --bearer udp:eth0) to run a node inside this command"
                .to_owned(),
        );
    }
    let opts = place.node.resolve().map_err(|e| e.to_string())?;
    messaging::Session::embedded(&opts).map_err(|e| e.to_string())
}

fn run_messaging(
    place: &Placement,
    f: impl FnOnce(&mut messaging::Session) -> Result<bool, String>,
) -> ExitCode {
    let mut session = match messaging_node(place) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("utipc: {e}");
            return ExitCode::from(2);
        }
    };
    let result = f(&mut session);
    session.close();
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("utipc: {e}");
            ExitCode::from(1)
        }
    }
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
        Command::Link(LinkCmd::List(a)) => mgmt(Query::LinkList, &a),
        Command::Node(NodeCmd::List(a)) => mgmt(Query::NodeList, &a),
        Command::Nametable(NameTableCmd::Show(a)) => mgmt(Query::NameTable, &a),
        Command::Bearer(BearerCmd::List(a)) => mgmt(Query::BearerList, &a),
        Command::Ping { args, place } => run_messaging(&place, |s| messaging::ping(s, &args)),
        Command::Echo { args, place } => run_messaging(&place, |s| messaging::echo(s, &args)),
        Command::Send { args, place } => run_messaging(&place, |s| messaging::send(s, &args)),
        Command::Recv { args, place } => run_messaging(&place, |s| messaging::recv(s, &args)),
    }
}
