//! The link endpoint's finite-state machine (spec §5.2).
//!
//! The table is the kernel's: events that a state does not list leave it unchanged. Two
//! transitions take a working link down (they report `down`): PEER_RESET and FAILURE from
//! ESTABLISHED or SYNCHING. RESETTING and PEER_RESET are transient here, because the link
//! performs the node layer's link-down handling itself right after such a transition and
//! leaves them with a RESET event (see `Link::link_down`).

/// State of a link endpoint (spec §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkState {
    /// Just failed; waiting for the node layer's RESET event. Blocked.
    Resetting,
    /// Sending RESET_MSG and waiting for the peer.
    Reset,
    /// The peer reset its end; waiting for the node layer's RESET event. Blocked.
    PeerReset,
    /// The peer's RESET was seen; sending ACTIVATE_MSG until traffic from the peer arrives.
    Establishing,
    /// Up.
    Established,
    /// Up, and synchronising with a parallel link (spec §5.10).
    Synching,
    /// Taken over by a parallel link (spec §5.10). Blocked.
    FailingOver,
}

/// An FSM event (spec §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "failover and synch (spec §5.10) are not driven yet"
    )
)]
pub(super) enum FsmEvent {
    /// Traffic from the peer while establishing.
    Establish,
    /// The peer reset its endpoint (RESET, or ACTIVATE while not up).
    PeerReset,
    /// A local failure: tolerance, retransmission, reassembly, priority change, peer stopping.
    Failure,
    /// The node layer resets the endpoint.
    Reset,
    /// Failover to a parallel link begins (spec §5.10; not driven by this crate yet).
    FailoverBegin,
    /// Failover ends.
    FailoverEnd,
    /// Synchronisation with a parallel link begins (spec §5.10; not driven yet).
    SynchBegin,
    /// Synchronisation ends.
    SynchEnd,
}

/// Result of one FSM step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Transition {
    /// The new state.
    pub(super) state: LinkState,
    /// The step took a working link down.
    pub(super) down: bool,
}

impl LinkState {
    /// Up: ESTABLISHED or SYNCHING. Only an up link carries data and STATE messages.
    pub fn is_up(self) -> bool {
        matches!(self, Self::Established | Self::Synching)
    }

    /// Blocked: RESETTING, PEER_RESET or FAILINGOVER. A blocked link neither sends nor accepts
    /// protocol messages (spec §5.2).
    pub fn is_blocked(self) -> bool {
        matches!(self, Self::Resetting | Self::PeerReset | Self::FailingOver)
    }

    /// Applies `evt` (spec §5.2 table).
    pub(super) fn step(self, evt: FsmEvent) -> Transition {
        use FsmEvent as E;
        let stay = Transition {
            state: self,
            down: false,
        };
        let to = |state| Transition { state, down: false };
        let down = |state| Transition { state, down: true };
        match (self, evt) {
            (Self::Resetting, E::PeerReset) => to(Self::PeerReset),
            (Self::Resetting, E::Reset) => to(Self::Reset),
            (Self::Reset, E::PeerReset) => to(Self::Establishing),
            (Self::Reset, E::FailoverBegin) => to(Self::FailingOver),
            (Self::PeerReset, E::Reset) => to(Self::Establishing),
            (Self::FailingOver, E::FailoverEnd) => to(Self::Reset),
            (Self::Establishing, E::Establish) => to(Self::Established),
            (Self::Establishing, E::FailoverBegin) => to(Self::FailingOver),
            (Self::Establishing, E::Reset) => to(Self::Reset),
            (Self::Established | Self::Synching, E::PeerReset) => down(Self::PeerReset),
            (Self::Established | Self::Synching, E::Failure) => down(Self::Resetting),
            (Self::Established | Self::Synching, E::Reset) => to(Self::Reset),
            (Self::Established, E::SynchBegin) => to(Self::Synching),
            (Self::Synching, E::SynchEnd) => to(Self::Established),
            _ => stay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FsmEvent as E;
    use LinkState as S;

    #[test]
    fn table_of_spec_5_2() {
        let cases = [
            (S::Resetting, E::PeerReset, S::PeerReset, false),
            (S::Resetting, E::Reset, S::Reset, false),
            (S::Resetting, E::Establish, S::Resetting, false),
            (S::Reset, E::PeerReset, S::Establishing, false),
            (S::Reset, E::Failure, S::Reset, false),
            (S::Reset, E::FailoverBegin, S::FailingOver, false),
            (S::PeerReset, E::Reset, S::Establishing, false),
            (S::PeerReset, E::Failure, S::PeerReset, false),
            (S::Establishing, E::Establish, S::Established, false),
            (S::Establishing, E::Failure, S::Establishing, false),
            (S::Establishing, E::PeerReset, S::Establishing, false),
            (S::Establishing, E::Reset, S::Reset, false),
            (S::Established, E::PeerReset, S::PeerReset, true),
            (S::Established, E::Failure, S::Resetting, true),
            (S::Established, E::Reset, S::Reset, false),
            (S::Established, E::SynchBegin, S::Synching, false),
            (S::Synching, E::Failure, S::Resetting, true),
            (S::Synching, E::PeerReset, S::PeerReset, true),
            (S::Synching, E::SynchEnd, S::Established, false),
            (S::FailingOver, E::FailoverEnd, S::Reset, false),
            (S::FailingOver, E::Establish, S::FailingOver, false),
        ];
        for (from, evt, to, down) in cases {
            assert_eq!(
                from.step(evt),
                Transition { state: to, down },
                "{from:?} + {evt:?}"
            );
        }
        assert!(S::Established.is_up() && S::Synching.is_up() && !S::Establishing.is_up());
        assert!(S::Resetting.is_blocked() && S::PeerReset.is_blocked());
        assert!(S::FailingOver.is_blocked() && !S::Reset.is_blocked());
    }
}
