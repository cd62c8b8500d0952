//! Running an agent: the duty-cycle loop shared by every threading mode, and
//! [`AgentInvoker`], which lets the caller drive an agent on its own thread (the invoker mode,
//! for tests and embedding).

use std::io;
use std::time::Duration;

use super::affinity::{CpuList, pin_current_thread};
use super::agent::{Agent, AgentContext};
use super::counters::{RunnerCounters, RunnerStats};
use super::doorbell::Doorbell;
use super::idle::{IdleConfig, IdleStrategy, Idled};
use super::threading::{EngineError, StopHandle};

/// One duty cycle and the idling after it: the body of every engine loop. Run to completion:
/// no lock, no allocation, one relaxed counter update per step.
pub(crate) fn duty_cycle<A: Agent>(
    agent: &mut A,
    idle: &mut dyn IdleStrategy,
    counters: &RunnerCounters,
) {
    let work = agent.do_work();
    counters.cycle(work);
    counters.idled(idle.idle(work, agent));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    Running,
    Closed,
}

/// An agent the caller drives: [`AgentInvoker::invoke`] runs exactly one duty cycle on the
/// calling thread, [`AgentInvoker::idle`] applies the idle strategy (agrona's
/// `AgentInvoker`). Between calls the agent is the caller's to use ([`AgentInvoker::agent_mut`]).
#[derive(Debug)]
pub struct AgentInvoker<A> {
    agent: A,
    idle: Box<dyn IdleStrategy>,
    ctx: AgentContext,
    counters: RunnerCounters,
    cpus: Option<CpuList>,
    state: State,
}

impl<A: Agent> AgentInvoker<A> {
    /// An invoker for `agent` with its own doorbell and stop handle.
    ///
    /// # Errors
    ///
    /// Creating the doorbell or the idle strategy failed.
    pub fn new(agent: A, idle: &IdleConfig) -> io::Result<Self> {
        let doorbell = Doorbell::new()?;
        let idle = idle.build(&doorbell)?;
        let stop = StopHandle::new(vec![doorbell.clone()]);
        Ok(Self::from_parts(
            agent,
            idle,
            AgentContext { doorbell, stop },
            None,
        ))
    }

    pub(crate) fn from_parts(
        agent: A,
        idle: Box<dyn IdleStrategy>,
        ctx: AgentContext,
        cpus: Option<CpuList>,
    ) -> Self {
        Self {
            agent,
            idle,
            ctx,
            counters: RunnerCounters::default(),
            cpus,
            state: State::New,
        }
    }

    /// Pins the calling thread to `cpus` when the invoker starts.
    pub fn with_cpus(mut self, cpus: CpuList) -> Self {
        self.cpus = Some(cpus);
        self
    }

    /// Starts the agent on the calling thread: pins the thread (if CPUs were given), ties the
    /// doorbell to it, calls [`Agent::on_start`]. Does nothing if already started.
    ///
    /// # Errors
    ///
    /// Pinning or `on_start` failed; the invoker stays unstarted.
    pub fn start(&mut self) -> Result<(), EngineError> {
        if self.state != State::New {
            return Ok(());
        }
        let role = self.agent.role_name().to_owned();
        if let Some(cpus) = &self.cpus {
            pin_current_thread(cpus).map_err(|source| EngineError::Affinity {
                role: role.clone(),
                source,
            })?;
        }
        self.agent
            .on_start(&self.ctx)
            .map_err(|source| EngineError::Start { role, source })?;
        self.state = State::Running;
        Ok(())
    }

    /// Runs exactly one duty cycle and returns its work count; does nothing (and returns 0)
    /// before [`AgentInvoker::start`] or after [`AgentInvoker::close`].
    pub fn invoke(&mut self) -> usize {
        if self.state != State::Running {
            return 0;
        }
        let work = self.agent.do_work();
        self.counters.cycle(work);
        work
    }

    /// Applies the idle strategy after a cycle that did `work_count` (parks or blocks the
    /// calling thread when idle).
    pub fn idle(&mut self, work_count: usize) -> Idled {
        let idled = self.idle.idle(work_count, &self.agent);
        self.counters.idled(idled);
        idled
    }

    /// Runs duty cycles with idling until the stop handle is used (by an agent, a signal
    /// handler's thread or another thread). Starts the agent first if needed.
    ///
    /// # Errors
    ///
    /// As [`AgentInvoker::start`].
    pub fn run_until_stopped(&mut self) -> Result<(), EngineError> {
        self.start()?;
        while !self.ctx.stop.is_stopped() && self.state == State::Running {
            duty_cycle(&mut self.agent, &mut *self.idle, &self.counters);
        }
        Ok(())
    }

    /// Runs duty cycles with idling until `cond` holds (checked before each cycle), `timeout`
    /// passes or the engine is stopped; returns whether `cond` held. Starts the agent first if
    /// needed. The idle strategy never parks or blocks past `timeout` (it sees the end of the
    /// run as one more deadline of the agent's), so a run with a blocking strategy returns on
    /// time even when the agent has no timer due.
    ///
    /// # Errors
    ///
    /// As [`AgentInvoker::start`].
    pub fn run_until(
        &mut self,
        timeout: Duration,
        mut cond: impl FnMut(&mut A) -> bool,
    ) -> Result<bool, EngineError> {
        self.start()?;
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if cond(&mut self.agent) {
                return Ok(true);
            }
            if std::time::Instant::now() >= deadline
                || self.ctx.stop.is_stopped()
                || self.state != State::Running
            {
                return Ok(false);
            }
            let work = self.agent.do_work();
            self.counters.cycle(work);
            let until = Until {
                agent: &self.agent,
                deadline,
            };
            self.counters.idled(self.idle.idle(work, &until));
        }
    }

    /// Whether the agent has started and is not closed.
    pub fn is_running(&self) -> bool {
        self.state == State::Running
    }

    /// The agent.
    pub fn agent(&self) -> &A {
        &self.agent
    }

    /// The agent, mutably (between duty cycles).
    pub fn agent_mut(&mut self) -> &mut A {
        &mut self.agent
    }

    /// The counters.
    pub fn stats(&self) -> RunnerStats {
        self.counters.snapshot()
    }

    /// The doorbell: a ring wakes [`AgentInvoker::idle`] (blocking or parked).
    pub fn doorbell(&self) -> &Doorbell {
        &self.ctx.doorbell
    }

    /// The stop handle [`AgentInvoker::run_until_stopped`] watches.
    pub fn stop_handle(&self) -> &StopHandle {
        &self.ctx.stop
    }

    /// Calls [`Agent::on_close`] if the agent was started and not closed yet; later invokes do
    /// nothing.
    pub fn close(&mut self) {
        if self.state == State::Running {
            self.agent.on_close();
        }
        self.state = State::Closed;
    }

    /// Closes the agent (see [`AgentInvoker::close`]) and hands it back.
    pub fn into_agent(mut self) -> A {
        self.close();
        self.agent
    }
}

/// An agent as [`AgentInvoker::run_until`] shows it to the idle strategy: the same descriptors,
/// with the end of the run as one more deadline.
struct Until<'a, A> {
    agent: &'a A,
    deadline: std::time::Instant,
}

impl<A: Agent> Agent for Until<'_, A> {
    fn role_name(&self) -> &str {
        self.agent.role_name()
    }

    /// Never called: idle strategies only read descriptors and deadlines.
    fn do_work(&mut self) -> usize {
        0
    }

    fn wait_fds(&self, fds: &mut Vec<std::os::fd::RawFd>) {
        self.agent.wait_fds(fds);
    }

    fn next_deadline(&self) -> Option<Duration> {
        let left = self
            .deadline
            .saturating_duration_since(std::time::Instant::now());
        Some(self.agent.next_deadline().map_or(left, |d| d.min(left)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::engine::IdleKind;

    /// An agent with nothing to do, no descriptor and no deadline.
    struct Idle;

    impl Agent for Idle {
        fn role_name(&self) -> &str {
            "idle"
        }
        fn do_work(&mut self) -> usize {
            0
        }
    }

    #[test]
    fn run_until_does_not_block_past_its_timeout() {
        let mut idle = IdleConfig::new(IdleKind::Block);
        idle.max_block = Some(Duration::from_secs(10));
        let mut inv = AgentInvoker::new(Idle, &idle).expect("invoker");
        let t0 = Instant::now();
        let held = inv
            .run_until(Duration::from_millis(30), |_| false)
            .expect("run");
        let took = t0.elapsed();
        assert!(!held);
        assert!(
            took >= Duration::from_millis(30) && took < Duration::from_secs(5),
            "a 30 ms run took {took:?}"
        );
    }
}
