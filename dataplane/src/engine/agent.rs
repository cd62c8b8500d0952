//! The [`Agent`] contract (after agrona's `Agent`), [`CompositeAgent`] (several agents as one,
//! round-robin, for the shared threading mode) and the agent behind every node:
//! [`NodeRuntime`].

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::doorbell::Doorbell;
use super::threading::StopHandle;
use crate::runtime::NodeRuntime;

/// What an agent gets when it starts: the doorbell of the thread that runs it and a handle
/// that stops the whole engine.
#[derive(Debug, Clone)]
pub struct AgentContext {
    pub(crate) doorbell: Doorbell,
    pub(crate) stop: StopHandle,
}

impl AgentContext {
    /// The doorbell of the thread running the agent: hand clones (or its eventfd) to whoever
    /// produces work for the agent, and have them ring it after publishing.
    pub fn doorbell(&self) -> &Doorbell {
        &self.doorbell
    }

    /// Stops the engine the agent runs in (every thread of it), e.g. on SIGTERM.
    pub fn stop_handle(&self) -> &StopHandle {
        &self.stop
    }
}

/// A unit of work the engine runs in duty cycles. The threading mode decides which thread
/// calls it, the idle strategy what that thread does when a cycle found nothing to do.
///
/// Contract:
///
/// * [`Agent::do_work`] never blocks. It does a bounded amount of work (a batch) and returns
///   how much; 0 means it found nothing to do, which lets the idle strategy back off.
/// * [`Agent::wait_fds`] and [`Agent::next_deadline`] tell a blocking idle strategy what to
///   sleep on: the agent must have nothing to do until one of those descriptors is readable,
///   the deadline passes, or someone rings the thread's [`Doorbell`].
/// * [`Agent::on_start`] runs on the agent's thread before the first cycle (after pinning);
///   [`Agent::on_close`] runs there after the last.
pub trait Agent {
    /// The agent's role, for thread names, counters and errors (`"node"`, `"control"`, ...).
    fn role_name(&self) -> &str;

    /// One duty cycle: does what work there is, without waiting, and returns how much (0 when
    /// idle).
    fn do_work(&mut self) -> usize;

    /// Called once on the agent's thread before the first duty cycle.
    ///
    /// # Errors
    ///
    /// Whatever keeps the agent from running; the engine then does not start.
    fn on_start(&mut self, ctx: &AgentContext) -> io::Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Called once on the agent's thread after the last duty cycle.
    fn on_close(&mut self) {}

    /// Appends the descriptors whose readability means work for the agent (bearer sockets,
    /// AF_XDP sockets, an epoll instance of its own) to `fds`. Borrowed: the engine never
    /// closes them. They are registered in the blocking strategy's epoll set by number: an
    /// agent must stop listing a descriptor before it closes it, and keep listing one for as
    /// long as it is open.
    fn wait_fds(&self, fds: &mut Vec<RawFd>) {
        let _ = fds;
    }

    /// How long from now until the agent must run even if no descriptor becomes ready (a
    /// timer); `None` if only readiness or a doorbell brings work. Zero means now.
    fn next_deadline(&self) -> Option<Duration> {
        None
    }

    /// Called just before the idle strategy sleeps: the agent's last chance to ask its
    /// producers for a wake-up (the need-wakeup flags of shared-memory rings, which make
    /// producers signal only while the consumer sleeps). Returns false when work arrived
    /// meanwhile: the engine then runs another cycle instead of sleeping.
    fn prepare_park(&self) -> bool {
        true
    }
}

impl<A: Agent + ?Sized> Agent for Box<A> {
    fn role_name(&self) -> &str {
        (**self).role_name()
    }
    fn do_work(&mut self) -> usize {
        (**self).do_work()
    }
    fn on_start(&mut self, ctx: &AgentContext) -> io::Result<()> {
        (**self).on_start(ctx)
    }
    fn on_close(&mut self) {
        (**self).on_close();
    }
    fn wait_fds(&self, fds: &mut Vec<RawFd>) {
        (**self).wait_fds(fds);
    }
    fn next_deadline(&self) -> Option<Duration> {
        (**self).next_deadline()
    }
    fn prepare_park(&self) -> bool {
        (**self).prepare_park()
    }
}

/// A node and its bearers as an agent: each duty cycle is [`NodeRuntime::do_work`] (drain RX
/// batches, run due timers, flush TX); an idle node sleeps on its bearers' descriptors until
/// its next timer.
///
/// [`Agent::on_close`] only sends what is still queued. Take the runtime back from the engine
/// ([`super::Engine::stop`]) and call [`NodeRuntime::shutdown`] for a clean exit with
/// peer-stopping RESETs.
impl Agent for NodeRuntime {
    fn role_name(&self) -> &str {
        "node"
    }
    fn do_work(&mut self) -> usize {
        Self::do_work(self)
    }
    fn on_close(&mut self) {
        self.flush();
    }
    fn wait_fds(&self, fds: &mut Vec<RawFd>) {
        Self::wait_fds(self, fds);
    }
    fn next_deadline(&self) -> Option<Duration> {
        Self::next_deadline(self)
    }
}

/// Several agents run as one, as agrona's `CompositeAgent`: each duty cycle runs every agent
/// once, starting one further along each time (round-robin), so no agent is always first.
/// The shared threading mode runs all agents this way on one thread; the dedicated mode wraps
/// each agent alone.
#[derive(Debug)]
pub struct CompositeAgent<A> {
    agents: Vec<A>,
    role: String,
    next: usize,
}

impl<A: Agent> CompositeAgent<A> {
    /// The agents, run in this order (rotated by one each cycle). The role name joins theirs
    /// with `+`.
    pub fn new(agents: Vec<A>) -> Self {
        let role = agents
            .iter()
            .map(Agent::role_name)
            .collect::<Vec<_>>()
            .join("+");
        Self {
            agents,
            role,
            next: 0,
        }
    }

    /// The agents.
    pub fn agents(&self) -> &[A] {
        &self.agents
    }

    /// The agents, mutably (between duty cycles).
    pub fn agents_mut(&mut self) -> &mut [A] {
        &mut self.agents
    }

    /// The agents back, in the order they were given.
    pub fn into_agents(self) -> Vec<A> {
        self.agents
    }
}

impl<A: Agent> Agent for CompositeAgent<A> {
    fn role_name(&self) -> &str {
        &self.role
    }

    fn do_work(&mut self) -> usize {
        let n = self.agents.len();
        let mut work = 0usize;
        for k in 0..n {
            if let Some(a) = self.agents.get_mut((self.next + k) % n) {
                work = work.saturating_add(a.do_work());
            }
        }
        if n > 0 {
            self.next = (self.next + 1) % n;
        }
        work
    }

    /// Starts the agents in order; if one fails, those already started are closed again and
    /// its error is returned, prefixed with its role.
    fn on_start(&mut self, ctx: &AgentContext) -> io::Result<()> {
        for i in 0..self.agents.len() {
            let Some(a) = self.agents.get_mut(i) else {
                break;
            };
            if let Err(e) = a.on_start(ctx) {
                let e = io::Error::new(e.kind(), format!("{}: {e}", a.role_name()));
                for started in self.agents.iter_mut().take(i) {
                    started.on_close();
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn on_close(&mut self) {
        for a in &mut self.agents {
            a.on_close();
        }
    }

    fn wait_fds(&self, fds: &mut Vec<RawFd>) {
        for a in &self.agents {
            a.wait_fds(fds);
        }
    }

    fn next_deadline(&self) -> Option<Duration> {
        self.agents.iter().filter_map(Agent::next_deadline).min()
    }

    /// Every agent is asked (each sets its own flags), not just until the first refusal.
    fn prepare_park(&self) -> bool {
        let mut ok = true;
        for a in &self.agents {
            ok &= a.prepare_park();
        }
        ok
    }
}
