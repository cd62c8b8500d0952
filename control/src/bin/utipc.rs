//! `utipc`: the management and messaging command of utipc (the counterpart of iproute2's
//! `tipc`). Management subcommands ask a running `utipcd`; messaging subcommands attach to it
//! as an application does (shared-memory rings), or run a whole node inside the command with
//! `--embedded`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use utipc_control::config::NodeArgs;
use utipc_control::decode::{self, DecodeOptions};
use utipc_control::messaging::{self, EchoArgs, PingArgs, RecvArgs, SendArgs, SubscribeArgs};
use utipc_control::mgmt::{PcapCmd, Query};
use utipc_control::mgmt_client;
use utipc_dataplane::engine::IdleKind;
use utipc_shm_api::IdleMode;

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
    /// List enabled bearers (with --stats, their counters; --json always has them).
    List {
        #[command(flatten)]
        mgmt: MgmtArgs,
        /// Also print each bearer's counters: frames, and for AF_XDP the socket's rings, the
        /// kernel's XDP_STATISTICS and the steering program's steered/passed/dropped/no-socket.
        #[arg(long, short)]
        stats: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PcapSub {
    /// Start capturing every frame the bearers send and receive (AF_XDP included) into FILE,
    /// created by utipcd; with several bearers the others write FILE.1, FILE.2, ...
    Start {
        /// The capture file (made absolute here: utipcd creates it).
        file: PathBuf,
        /// Capture only this bearer (e.g. eth:eth0), into FILE.
        #[arg(long)]
        bearer: Option<String>,
        #[command(flatten)]
        mgmt: MgmtArgs,
    },
    /// Stop capturing; prints where and how many frames were written.
    Stop {
        /// Stop only this bearer's capture.
        #[arg(long)]
        bearer: Option<String>,
        #[command(flatten)]
        mgmt: MgmtArgs,
    },
    /// Show which bearers capture where (flushes the files so far).
    Status(MgmtArgs),
}

/// Where a messaging command's node runs.
#[derive(Debug, Args)]
struct Placement {
    /// Run a whole node inside this command (with the node options below) instead of
    /// attaching to utipcd.
    #[arg(long)]
    embedded: bool,
    /// utipcd's run directory (default $UTIPC_RUN_DIR or /run/utipc).
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
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
    /// Capture what utipcd's bearers send and receive to a pcap file (for `utipc decode`,
    /// tshark), at run time.
    #[command(subcommand)]
    Pcap(PcapSub),
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
    /// Track a service (or nodes: type 0, links: type 2) through the topology server: one line
    /// per event with a timestamp.
    Subscribe {
        #[command(flatten)]
        args: SubscribeArgs,
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

fn bearer_list(a: &MgmtArgs, stats: bool) -> ExitCode {
    if !stats || a.json {
        return mgmt(Query::BearerList, a);
    }
    let dir = a
        .run_dir
        .clone()
        .unwrap_or_else(utipc_control::config::run_dir);
    match mgmt_client::query(&dir, Query::BearerList) {
        Ok(data) => {
            print!("{}", utipc_control::mgmt::render_bearer_counters(&data));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("utipc: {e}");
            ExitCode::from(1)
        }
    }
}

fn pcap(sub: PcapSub) -> ExitCode {
    let (cmd, file, bearer, a) = match sub {
        PcapSub::Start { file, bearer, mgmt } => (PcapCmd::Start, Some(file), bearer, mgmt),
        PcapSub::Stop { bearer, mgmt } => (PcapCmd::Stop, None, bearer, mgmt),
        PcapSub::Status(mgmt) => (PcapCmd::Status, None, None, mgmt),
    };
    let path = match file.map(|f| std::path::absolute(&f)) {
        None => None,
        Some(Ok(p)) => match p.into_os_string().into_string() {
            Ok(p) => Some(p),
            Err(p) => {
                eprintln!("utipc: the capture path {p:?} is not UTF-8: choose another");
                return ExitCode::from(2);
            }
        },
        Some(Err(e)) => {
            eprintln!("utipc: cannot make the capture path absolute: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = a
        .run_dir
        .clone()
        .unwrap_or_else(utipc_control::config::run_dir);
    match mgmt_client::pcap(&dir, cmd, path.as_deref(), bearer.as_deref()) {
        Ok(data) => {
            if a.json {
                println!("{data}");
            } else {
                print!("{}", utipc_control::mgmt::render_pcap_text(cmd, &data));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("utipc: {e}");
            ExitCode::from(1)
        }
    }
}

/// Opens the messaging session: attached to utipcd, or with `--embedded` a node inside the
/// command. `--idle` is how the command waits (and, embedded, how the node idles).
fn messaging_session(place: &Placement) -> Result<messaging::Session, String> {
    let opts = place.node.resolve().map_err(|e| e.to_string())?;
    let idle = match opts.idle {
        IdleKind::Spin => IdleMode::Spin,
        IdleKind::Backoff => IdleMode::Backoff,
        IdleKind::Block => IdleMode::Block,
    };
    let where_ = if place.embedded {
        messaging::Placement::Embedded(opts)
    } else {
        if !place.node.bearers.is_empty() {
            return Err(
                "--bearer runs a node inside this command: add --embedded, or leave it out to \
                 use the running utipcd"
                    .to_owned(),
            );
        }
        messaging::Placement::Daemon(place.run_dir.clone())
    };
    messaging::Session::open(where_, idle)
}

fn run_messaging(
    place: &Placement,
    f: impl FnOnce(&messaging::Session) -> Result<bool, String>,
) -> ExitCode {
    let session = match messaging_session(place) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("utipc: {e}");
            return ExitCode::from(2);
        }
    };
    let result = f(&session);
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
        Command::Bearer(BearerCmd::List { mgmt, stats }) => bearer_list(&mgmt, stats),
        Command::Pcap(sub) => pcap(sub),
        Command::Ping { args, place } => run_messaging(&place, |s| messaging::ping(s, &args)),
        Command::Echo { args, place } => run_messaging(&place, |s| messaging::echo(s, &args)),
        Command::Send { args, place } => run_messaging(&place, |s| messaging::send(s, &args)),
        Command::Recv { args, place } => run_messaging(&place, |s| messaging::recv(s, &args)),
        Command::Subscribe { args, place } => {
            run_messaging(&place, |s| messaging::subscribe(s, &args))
        }
    }
}
