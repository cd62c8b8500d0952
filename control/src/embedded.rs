//! Embedded mode: the node runs inside the application's process, on an engine thread, and
//! the application uses the very same [`Client`] API as with utipcd. The client attaches to
//! the in-process node exactly as to a daemon (a socket pair instead of `attach.sock`, the
//! same segment, rings and records), so there is one code path to test and to trust.
//!
//! ```no_run
//! use utipc_control::config::{BearerSpec, NodeOptions};
//! use utipc_control::embedded::EmbeddedNode;
//! use utipc_shm_api::{IdleMode, ServiceAddr, SocketKind};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut opts = NodeOptions::default();
//! opts.bearers.push(BearerSpec::parse("udp:eth0")?);
//! let node = EmbeddedNode::start(&opts, IdleMode::Backoff)?;
//! let sock = node.client().socket(SocketKind::Rdm)?;
//! sock.send_to(ServiceAddr::new(18888, 17), b"hello")?;
//! # Ok(()) }
//! ```

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use utipc_dataplane::engine::{Agent, AgentContext, Engine, EngineConfig, ThreadingMode};
use utipc_dataplane::runtime::NodeRuntime;
use utipc_shm_api::attach_socket::PeerCred;
use utipc_shm_api::{Client, IdleMode};

use crate::attach::{AccessPolicy, AttachService};
use crate::config::NodeOptions;
use crate::daemon::{Logger, log_event};
use crate::node_setup::{self, SetupError};

/// Why an embedded node did not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// The node could not be set up (bearers, CPUs).
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The engine did not start.
    #[error("{0}")]
    Engine(utipc_dataplane::engine::EngineError),
    /// Attaching the in-process client failed.
    #[error("attaching the in-process client: {0}")]
    Attach(String),
    /// An OS call failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The node and its attachment service as one engine agent.
#[derive(Debug)]
struct NodeAgent {
    runtime: NodeRuntime,
    attach: AttachService,
    log: Logger,
}

impl Agent for NodeAgent {
    fn role_name(&self) -> &str {
        "embedded-node"
    }

    fn do_work(&mut self) -> usize {
        let mut work = self.runtime.do_work();
        let now = self.runtime.now();
        work += self
            .attach
            .turn(self.runtime.node_mut(), now, &mut self.log);
        self.runtime.flush();
        while let Some(ev) = self.runtime.node_mut().poll_event() {
            log_event(&mut self.log, &ev);
            work += 1;
        }
        work
    }

    fn on_start(&mut self, _ctx: &AgentContext) -> io::Result<()> {
        Ok(())
    }

    fn on_close(&mut self) {
        let now = self.runtime.now();
        self.attach
            .close_all(self.runtime.node_mut(), now, &mut self.log);
        self.runtime.shutdown();
        self.runtime.flush();
    }

    fn wait_fds(&self, fds: &mut Vec<RawFd>) {
        self.runtime.wait_fds(fds);
        self.attach.wait_fds(fds);
    }

    fn next_deadline(&self) -> Option<Duration> {
        self.runtime.next_deadline()
    }

    fn prepare_park(&self) -> bool {
        self.attach.prepare_park()
    }
}

/// A node running inside this process. Stops (peers told at once) on drop.
#[derive(Debug)]
pub struct EmbeddedNode {
    client: Client,
    engine: Option<Engine<NodeAgent>>,
}

impl EmbeddedNode {
    /// Starts a node with `opts` on an engine thread (the node's `--idle` strategy and
    /// `--cpu` pinning from `opts`) and attaches a client that waits with `idle`.
    ///
    /// # Errors
    ///
    /// [`EmbeddedError`], saying what failed.
    pub fn start(opts: &NodeOptions, idle: IdleMode) -> Result<Self, EmbeddedError> {
        let runtime = node_setup::start(opts, node_setup::fresh_seed())?;
        Self::with_runtime(runtime, opts, idle, Logger::stderr(false))
    }

    /// Starts an embedded node around an already built runtime (tests, custom bearers).
    ///
    /// # Errors
    ///
    /// [`EmbeddedError`], saying what failed.
    pub fn with_runtime(
        mut runtime: NodeRuntime,
        opts: &NodeOptions,
        idle: IdleMode,
        mut log: Logger,
    ) -> Result<Self, EmbeddedError> {
        let mut attach = AttachService::without_listener(AccessPolicy::default())?;
        let (ours, theirs) = seqpacket_pair()?;
        // The client sends its hello and waits for the welcome on another thread while this
        // one answers it.
        let handshake = std::thread::spawn(move || {
            Client::handshake(theirs, idle, Path::new("the embedded node"))
        });
        let cred = PeerCred {
            pid: i32::try_from(std::process::id()).unwrap_or(0),
            // SAFETY: getters without preconditions.
            uid: unsafe { libc::geteuid() },
            // SAFETY: as above.
            gid: unsafe { libc::getegid() },
        };
        attach.adopt(ours, cred, runtime.node_mut(), &mut log);
        let client = handshake
            .join()
            .map_err(|_| EmbeddedError::Attach("the handshake thread panicked".into()))?
            .map_err(|e| EmbeddedError::Attach(e.to_string()))?;
        let threading = match &opts.cpus {
            Some(cpus) => ThreadingMode::for_cpus(cpus.len()),
            None => ThreadingMode::for_machine(),
        };
        let mut cfg = EngineConfig::new(threading, opts.idle);
        cfg.cpus = opts.cpus.clone();
        let engine = Engine::start(
            &cfg,
            vec![NodeAgent {
                runtime,
                attach,
                log,
            }],
        )
        .map_err(EmbeddedError::Engine)?;
        Ok(Self {
            client,
            engine: Some(engine),
        })
    }

    /// The attached client (clone it freely).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Stops the node: sockets closed, links taken down with peer-stopping RESETs.
    pub fn stop(mut self) {
        self.stop_engine();
    }

    fn stop_engine(&mut self) {
        if let Some(engine) = self.engine.take() {
            let _ = engine.stop();
        }
    }
}

impl Drop for EmbeddedNode {
    fn drop(&mut self) {
        self.stop_engine();
    }
}

fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds has room for two descriptors.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two fresh descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
