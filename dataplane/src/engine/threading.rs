//! Threading modes and the [`Engine`] that starts, watches and stops the agents' threads.

use std::fmt;
use std::io;
use std::os::unix::thread::JoinHandleExt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::affinity::{AffinityError, CpuList, pin_current_thread};
use super::agent::{Agent, AgentContext, CompositeAgent};
use super::counters::{RunnerCounters, RunnerReport};
use super::doorbell::Doorbell;
use super::idle::{IdleConfig, IdleKind};
use super::runner::{AgentInvoker, duty_cycle};
use crate::sys;

/// Which threads run the agents (Aeron's `ThreadingMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThreadingMode {
    /// A thread per agent, each pinned to the next CPU of the `--cpu` list.
    Dedicated,
    /// One thread runs every agent, round-robin (pinned to the whole `--cpu` list): the
    /// default on machines with two CPUs or fewer.
    Shared,
    /// No thread: the caller runs duty cycles with [`AgentInvoker::invoke`] (tests, embedding).
    Invoker,
}

impl ThreadingMode {
    /// Every mode, as it is spelled.
    pub const NAMES: [&'static str; 3] = ["dedicated", "shared", "invoker"];

    /// [`ThreadingMode::for_cpus`] for the CPUs this process may use.
    pub fn for_machine() -> Self {
        Self::for_cpus(thread::available_parallelism().map_or(1, usize::from))
    }

    /// Shared with two CPUs or fewer (a spinning thread per agent would starve the rest of the
    /// machine), dedicated above.
    pub fn for_cpus(cpus: usize) -> Self {
        if cpus <= 2 {
            Self::Shared
        } else {
            Self::Dedicated
        }
    }

    /// The mode's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dedicated => "dedicated",
            Self::Shared => "shared",
            Self::Invoker => "invoker",
        }
    }
}

impl fmt::Display for ThreadingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ThreadingMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "dedicated" => Ok(Self::Dedicated),
            "shared" => Ok(Self::Shared),
            "invoker" => Ok(Self::Invoker),
            _ => Err(format!(
                "{s:?} is not a threading mode: use dedicated, shared or invoker"
            )),
        }
    }
}

/// How an [`Engine`] runs its agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Which threads run the agents.
    pub threading: ThreadingMode,
    /// What each thread does when idle.
    pub idle: IdleConfig,
    /// CPUs to pin to (`--cpu`): dedicated thread `i` to the list's `i`-th CPU (wrapping
    /// around), the shared thread and the invoker's caller to the whole list. `None`: no
    /// pinning.
    pub cpus: Option<CpuList>,
    /// How long [`Engine::start`] waits for every thread to pin itself and start its agents.
    pub start_timeout: Duration,
    /// How long [`Engine::stop`] waits for the threads to finish.
    pub stop_timeout: Duration,
}

impl EngineConfig {
    /// `threading` and `idle` with defaults for the rest: no pinning, 5 s to start, 2 s to stop.
    pub fn new(threading: ThreadingMode, idle: IdleKind) -> Self {
        Self {
            threading,
            idle: IdleConfig::new(idle),
            cpus: None,
            start_timeout: Duration::from_secs(5),
            stop_timeout: Duration::from_secs(2),
        }
    }
}

impl Default for EngineConfig {
    /// [`ThreadingMode::for_machine`] with the backoff strategy.
    fn default() -> Self {
        Self::new(ThreadingMode::for_machine(), IdleKind::Backoff)
    }
}

/// Stops an engine: sets the stop flag every thread checks once per duty cycle, then rings
/// every thread's doorbell (which ends a park or a blocking wait), so even a thread asleep for
/// seconds stops at once. Cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct StopHandle {
    flag: Arc<AtomicBool>,
    bells: Arc<[Doorbell]>,
}

impl StopHandle {
    pub(crate) fn new(bells: Vec<Doorbell>) -> Self {
        Self {
            flag: Arc::new(AtomicBool::new(false)),
            bells: bells.into(),
        }
    }

    /// Asks every thread of the engine to finish its cycle, close its agents and end.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::Release);
        for b in self.bells.iter() {
            b.ring();
        }
    }

    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
}

/// Why an engine did not start, or did not stop cleanly.
#[derive(Debug)]
pub enum EngineError {
    /// An engine needs at least one agent.
    NoAgents,
    /// Creating a doorbell or an idle strategy failed.
    Setup(io::Error),
    /// A thread could not be created.
    Spawn {
        /// The role of the thread's agents.
        role: String,
        /// The OS error.
        source: io::Error,
    },
    /// A thread could not be pinned (`--cpu`).
    Affinity {
        /// The role of the thread's agents.
        role: String,
        /// Why.
        source: AffinityError,
    },
    /// An agent's `on_start` failed.
    Start {
        /// The role of the thread's agents.
        role: String,
        /// The agent's error.
        source: io::Error,
    },
    /// A thread did not report that it started within the start timeout.
    StartTimeout {
        /// The role of the thread's agents.
        role: String,
        /// How long the engine waited.
        waited: Duration,
    },
    /// A thread did not end within the stop timeout (an agent's `do_work` or `on_close`
    /// blocks); the thread is left running, detached, and its agents are lost.
    StopTimeout {
        /// The role of the thread's agents.
        role: String,
        /// How long the engine waited.
        waited: Duration,
    },
    /// An agent panicked; the thread and its agents are gone (the other threads were
    /// stopped).
    Panicked {
        /// The role of the thread's agents.
        role: String,
    },
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoAgents => f.write_str("the engine was given no agent to run"),
            Self::Setup(e) => write!(f, "creating the engine's doorbell or epoll set: {e}"),
            Self::Spawn { role, source } => write!(f, "starting a thread for {role}: {source}"),
            Self::Affinity { role, source } => write!(f, "pinning {role}: {source}"),
            Self::Start { role, source } => write!(f, "starting {role}: {source}"),
            Self::StartTimeout { role, waited } => {
                write!(f, "{role} did not start within {waited:?}")
            }
            Self::StopTimeout { role, waited } => write!(
                f,
                "{role} did not stop within {waited:?} (its do_work or on_close blocks); left \
                 running"
            ),
            Self::Panicked { role } => write!(f, "{role} panicked"),
        }
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Setup(e) | Self::Spawn { source: e, .. } | Self::Start { source: e, .. } => {
                Some(e)
            }
            Self::Affinity { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One engine thread, as the engine sees it.
#[derive(Debug)]
struct RunnerThread<A> {
    role: String,
    handle: JoinHandle<CompositeAgent<A>>,
    /// Disconnected when the thread's body ends (normally or by a panic).
    done: mpsc::Receiver<()>,
    counters: Arc<RunnerCounters>,
    doorbell: Doorbell,
    /// How many agents the thread runs.
    agents: usize,
}

impl<A> RunnerThread<A> {
    /// Waits until `deadline` for the thread to end and takes its agents back.
    fn finish(self, deadline: Instant, waited: Duration) -> Result<CompositeAgent<A>, EngineError> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.done.recv_timeout(left) {
            Err(mpsc::RecvTimeoutError::Timeout) => Err(EngineError::StopTimeout {
                role: self.role,
                waited,
            }),
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => self
                .handle
                .join()
                .map_err(|_| EngineError::Panicked { role: self.role }),
        }
    }

    fn report(&self) -> RunnerReport {
        let cpu_time = if self.handle.is_finished() {
            None
        } else {
            sys::thread_cpu_time(self.handle.as_pthread_t()).ok()
        };
        RunnerReport {
            role: self.role.clone(),
            stats: self.counters.snapshot(),
            cpu_time,
        }
    }
}

/// Ends the whole engine when any of its threads ends (a panic included), and tells the
/// engine the thread is done, by being dropped at the end of the thread's body.
struct ExitGuard {
    stop: StopHandle,
    _done: mpsc::Sender<()>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

/// Linux thread names hold 15 bytes.
fn thread_name(role: &str) -> String {
    let mut name = format!("utipc-{role}");
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    name
}

/// The agents of one node process and the threads that run them.
///
/// * [`Engine::start`] starts the threads of the configured [`ThreadingMode`]; each pins
///   itself, starts its agents and reports back before `start` returns, so a bad `--cpu` or a
///   failing `on_start` is an error here, with every thread stopped again.
/// * The threads run duty cycles until [`Engine::stop`] (or a [`StopHandle`], e.g. an agent
///   on SIGTERM); any thread that ends (a panic included) stops the others.
/// * [`Engine::stop`] and [`Engine::join`] hand the agents back in the order they were given.
///   Dropping an engine stops it too, bounded by the stop timeout.
#[derive(Debug)]
pub struct Engine<A: Agent + Send + 'static> {
    mode: ThreadingMode,
    threads: Vec<RunnerThread<A>>,
    invoker: Option<AgentInvoker<CompositeAgent<A>>>,
    stop: StopHandle,
    stop_timeout: Duration,
}

impl<A: Agent + Send + 'static> Engine<A> {
    /// Starts `agents` as `config` says. In the invoker mode no thread starts: the calling
    /// thread is pinned (if `--cpu` was given) and the agents are started on it; drive them
    /// through [`Engine::invoker`].
    ///
    /// # Errors
    ///
    /// No agents, a `--cpu` list naming CPUs that do not exist or are not allowed, a failing
    /// `on_start`, or a thread that could not be created or did not start in time.
    pub fn start(config: &EngineConfig, agents: Vec<A>) -> Result<Self, EngineError> {
        if agents.is_empty() {
            return Err(EngineError::NoAgents);
        }
        if let Some(cpus) = &config.cpus {
            cpus.check_online()
                .map_err(|source| EngineError::Affinity {
                    role: "engine".into(),
                    source,
                })?;
        }
        if config.threading == ThreadingMode::Invoker {
            let doorbell = Doorbell::new().map_err(EngineError::Setup)?;
            let idle = config.idle.build(&doorbell).map_err(EngineError::Setup)?;
            let stop = StopHandle::new(vec![doorbell.clone()]);
            let ctx = AgentContext {
                doorbell,
                stop: stop.clone(),
            };
            let mut invoker = AgentInvoker::from_parts(
                CompositeAgent::new(agents),
                idle,
                ctx,
                config.cpus.clone(),
            );
            invoker.start()?;
            return Ok(Self {
                mode: config.threading,
                threads: Vec::new(),
                invoker: Some(invoker),
                stop,
                stop_timeout: config.stop_timeout,
            });
        }
        // (agents, CPUs) of each thread.
        let groups: Vec<(Vec<A>, Option<CpuList>)> = match config.threading {
            ThreadingMode::Dedicated => agents
                .into_iter()
                .enumerate()
                .map(|(i, a)| {
                    let cpus = config.cpus.as_ref().map(|l| CpuList::single(l.nth(i)));
                    (vec![a], cpus)
                })
                .collect(),
            _ => vec![(agents, config.cpus.clone())],
        };
        let mut bells = Vec::with_capacity(groups.len());
        let mut idles = Vec::with_capacity(groups.len());
        for _ in &groups {
            let bell = Doorbell::new().map_err(EngineError::Setup)?;
            idles.push(config.idle.build(&bell).map_err(EngineError::Setup)?);
            bells.push(bell);
        }
        let stop = StopHandle::new(bells.clone());
        let mut engine = Self {
            mode: config.threading,
            threads: Vec::with_capacity(groups.len()),
            invoker: None,
            stop: stop.clone(),
            stop_timeout: config.stop_timeout,
        };
        let mut started = Vec::with_capacity(groups.len());
        for (((agents, cpus), idle), doorbell) in groups.into_iter().zip(idles).zip(bells) {
            let count = agents.len();
            let agent = CompositeAgent::new(agents);
            let role = agent.role_name().to_owned();
            let counters = Arc::new(RunnerCounters::default());
            let (done_tx, done_rx) = mpsc::channel::<()>();
            let (start_tx, start_rx) = mpsc::channel::<Result<(), EngineError>>();
            let ctx = AgentContext {
                doorbell: doorbell.clone(),
                stop: stop.clone(),
            };
            let body = {
                let counters = Arc::clone(&counters);
                let role = role.clone();
                let mut idle = idle;
                move || {
                    let _guard = ExitGuard {
                        stop: ctx.stop.clone(),
                        _done: done_tx,
                    };
                    let mut agent = agent;
                    if let Some(cpus) = &cpus
                        && let Err(source) = pin_current_thread(cpus)
                    {
                        let _ = start_tx.send(Err(EngineError::Affinity { role, source }));
                        return agent;
                    }
                    if let Err(source) = agent.on_start(&ctx) {
                        let _ = start_tx.send(Err(EngineError::Start { role, source }));
                        return agent;
                    }
                    let _ = start_tx.send(Ok(()));
                    while !ctx.stop.is_stopped() {
                        duty_cycle(&mut agent, &mut *idle, &counters);
                    }
                    agent.on_close();
                    agent
                }
            };
            let spawned = thread::Builder::new().name(thread_name(&role)).spawn(body);
            let handle = match spawned {
                Ok(h) => h,
                Err(source) => {
                    drop(engine.shutdown());
                    return Err(EngineError::Spawn { role, source });
                }
            };
            engine.threads.push(RunnerThread {
                role,
                handle,
                done: done_rx,
                counters,
                doorbell,
                agents: count,
            });
            started.push(start_rx);
        }
        let deadline = Instant::now() + config.start_timeout;
        for (i, rx) in started.iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            let role = || {
                engine
                    .threads
                    .get(i)
                    .map_or_else(String::new, |t| t.role.clone())
            };
            let failure = match rx.recv_timeout(left) {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(mpsc::RecvTimeoutError::Timeout) => EngineError::StartTimeout {
                    role: role(),
                    waited: config.start_timeout,
                },
                Err(mpsc::RecvTimeoutError::Disconnected) => EngineError::Panicked { role: role() },
            };
            drop(engine.shutdown());
            return Err(failure);
        }
        Ok(engine)
    }

    /// The threading mode.
    pub fn mode(&self) -> ThreadingMode {
        self.mode
    }

    /// A handle that stops the engine from anywhere.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Whether a stop was asked for (by anyone, or because a thread ended).
    pub fn is_stopped(&self) -> bool {
        self.stop.is_stopped()
    }

    /// The doorbell of the thread that runs agent `index` (in the order given to
    /// [`Engine::start`]); `None` past the last agent.
    pub fn doorbell(&self, index: usize) -> Option<&Doorbell> {
        if let Some(inv) = &self.invoker {
            return (index < inv.agent().agents().len()).then(|| inv.doorbell());
        }
        let mut first = 0;
        for t in &self.threads {
            if index < first + t.agents {
                return Some(&t.doorbell);
            }
            first += t.agents;
        }
        None
    }

    /// The invoker, in the invoker mode: call [`AgentInvoker::invoke`] to run one duty cycle
    /// of every agent (round-robin), and reach the agents between cycles.
    pub fn invoker(&mut self) -> Option<&mut AgentInvoker<CompositeAgent<A>>> {
        self.invoker.as_mut()
    }

    /// Counters and CPU time of every thread (one entry, without CPU time, in the invoker
    /// mode).
    pub fn stats(&self) -> Vec<RunnerReport> {
        if let Some(inv) = &self.invoker {
            return vec![RunnerReport {
                role: inv.agent().role_name().to_owned(),
                stats: inv.stats(),
                cpu_time: None,
            }];
        }
        self.threads.iter().map(RunnerThread::report).collect()
    }

    /// Stops every thread (see [`StopHandle`]), waits up to the stop timeout for them to close
    /// their agents and end, and returns the agents in the order they were given.
    ///
    /// # Errors
    ///
    /// A thread that did not end in time ([`EngineError::StopTimeout`]) or whose agent
    /// panicked ([`EngineError::Panicked`]): the other threads are still stopped and joined,
    /// but the agents are not returned.
    pub fn stop(mut self) -> Result<Vec<A>, EngineError> {
        self.shutdown()
    }

    /// Waits, without a timeout, until something stops the engine (a [`StopHandle`], an agent,
    /// a thread that ended), then returns the agents as [`Engine::stop`] does. In the invoker
    /// mode it runs the duty cycles on the calling thread until then.
    ///
    /// # Errors
    ///
    /// As [`Engine::stop`].
    pub fn join(mut self) -> Result<Vec<A>, EngineError> {
        if let Some(inv) = self.invoker.as_mut() {
            inv.run_until_stopped()?;
        } else {
            for t in &self.threads {
                // Disconnected when that thread ends; any thread ending stops all of them.
                let _ = t.done.recv();
            }
        }
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<Vec<A>, EngineError> {
        self.stop.stop();
        let deadline = Instant::now() + self.stop_timeout;
        let mut agents = Vec::new();
        let mut first_err = None;
        for t in std::mem::take(&mut self.threads) {
            match t.finish(deadline, self.stop_timeout) {
                Ok(c) => agents.extend(c.into_agents()),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(inv) = self.invoker.take() {
            agents.extend(inv.into_agent().into_agents());
        }
        first_err.map_or(Ok(agents), Err)
    }
}

impl<A: Agent + Send + 'static> Drop for Engine<A> {
    fn drop(&mut self) {
        if !self.threads.is_empty() || self.invoker.is_some() {
            let _ = self.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_default_by_cpu_count() {
        for name in ThreadingMode::NAMES {
            let m: ThreadingMode = name.parse().expect(name);
            assert_eq!(m.to_string(), name);
        }
        assert!("pool".parse::<ThreadingMode>().is_err());
        assert_eq!(ThreadingMode::for_cpus(1), ThreadingMode::Shared);
        assert_eq!(ThreadingMode::for_cpus(2), ThreadingMode::Shared);
        assert_eq!(ThreadingMode::for_cpus(4), ThreadingMode::Dedicated);
    }

    #[test]
    fn thread_names_fit_linux() {
        assert_eq!(thread_name("node"), "utipc-node");
        assert_eq!(thread_name("node+control+x"), "utipc-node+cont");
        assert_eq!(thread_name("éééééééé").len(), 14, "cut at a char boundary");
    }
}
