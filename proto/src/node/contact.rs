//! The node-level contact FSM and its gate on received packets (spec §5.9).
//!
//! A kernel creates every peer in SELF_DOWN_PEER_LEAVING and drops everything from it until a
//! RESET/ACTIVATE without redundant_link shows that the peer has cleaned up its state about
//! us. utipc runs the same FSM, so it treats kernel peers — and is treated by them — alike.
//! Failover and synch states are not modelled: utipc does not run parallel-link failover yet.

use crate::wire::Packet;
use crate::wire::common::User;
use crate::wire::link_proto::LinkProtoType;

/// Contact state of a peer node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContactState {
    /// Neither side has a working link.
    SelfDownPeerDown,
    /// Both sides have a working link.
    SelfUpPeerUp,
    /// Our links are down; the peer may still think it is in contact (initial state).
    SelfDownPeerLeaving,
    /// Our link is up; waiting to see the peer's.
    SelfUpPeerComing,
    /// The peer's link is up; waiting for ours.
    SelfComingPeerUp,
    /// The peer is gone; we have not finished cleaning up.
    SelfLeavingPeerDown,
}

/// What a received packet says about the peer (spec §5.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerView {
    /// The peer's link is up: the packet is not LINK_PROTOCOL, or it is a STATE.
    pub link_up: bool,
    /// The peer considers us up: link_up, or redundant_link set.
    pub node_up: bool,
}

impl PeerView {
    /// Reads the view from a unicast packet.
    pub fn of<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        if User::from(p.user_raw()) != User::LinkProtocol {
            return Self {
                link_up: true,
                node_up: true,
            };
        }
        let state = LinkProtoType::from(p.msg_type_raw()) == LinkProtoType::State;
        let redundant = p.word(5) & (1 << 12) != 0;
        Self {
            link_up: state,
            node_up: state || redundant,
        }
    }
}

impl ContactState {
    /// The state of a newly created peer.
    pub const INITIAL: Self = Self::SelfDownPeerLeaving;

    /// Gate for a received packet: returns whether to accept it, and moves the FSM.
    pub fn check(&mut self, view: PeerView) -> bool {
        match *self {
            Self::SelfUpPeerComing => {
                if view.link_up {
                    *self = Self::SelfUpPeerUp;
                }
                true
            }
            Self::SelfDownPeerLeaving => {
                if view.node_up {
                    false
                } else {
                    *self = Self::SelfDownPeerDown;
                    true
                }
            }
            Self::SelfLeavingPeerDown => false,
            Self::SelfDownPeerDown => {
                if view.link_up {
                    *self = Self::SelfComingPeerUp;
                }
                true
            }
            Self::SelfUpPeerUp | Self::SelfComingPeerUp => true,
        }
    }

    /// Our first link to the peer came up.
    pub fn self_established(&mut self) {
        *self = match *self {
            Self::SelfDownPeerDown => Self::SelfUpPeerComing,
            Self::SelfComingPeerUp => Self::SelfUpPeerUp,
            other => other,
        };
    }

    /// Our last link to the peer went down.
    pub fn self_lost(&mut self) {
        *self = match *self {
            Self::SelfUpPeerUp => Self::SelfDownPeerLeaving,
            Self::SelfUpPeerComing | Self::SelfLeavingPeerDown => Self::SelfDownPeerDown,
            other => other,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESET: PeerView = PeerView {
        link_up: false,
        node_up: false,
    };
    const RESET_REDUNDANT: PeerView = PeerView {
        link_up: false,
        node_up: true,
    };
    const STATE: PeerView = PeerView {
        link_up: true,
        node_up: true,
    };

    #[test]
    fn first_contact_needs_a_plain_reset() {
        let mut s = ContactState::INITIAL;
        assert!(!s.check(STATE), "STATE dropped before first contact");
        assert!(!s.check(RESET_REDUNDANT));
        assert!(s.check(RESET));
        assert_eq!(s, ContactState::SelfDownPeerDown);
        s.self_established();
        assert_eq!(s, ContactState::SelfUpPeerComing);
        assert!(s.check(STATE));
        assert_eq!(s, ContactState::SelfUpPeerUp);
    }

    #[test]
    fn peer_first_then_self() {
        let mut s = ContactState::SelfDownPeerDown;
        assert!(s.check(STATE));
        assert_eq!(s, ContactState::SelfComingPeerUp);
        s.self_established();
        assert_eq!(s, ContactState::SelfUpPeerUp);
        s.self_lost();
        assert_eq!(s, ContactState::SelfDownPeerLeaving);
        assert!(!s.check(STATE));
        assert!(s.check(RESET));
    }
}
