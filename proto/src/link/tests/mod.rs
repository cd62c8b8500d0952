//! Tests of the link endpoint: kernel captures replayed byte for byte (`capture`), protocol
//! rules one at a time against crafted peer messages (`behaviour`), and two links over a lossy
//! simulated network (`sim`).

mod behaviour;
mod capture;
mod sim;

use core::time::Duration;

use super::{BcastCtx, Link, LinkConfig, LinkOutput};
use crate::time::Instant;
use crate::wire::Packet;
use crate::wire::common::{Common, Flags, Internal};
use crate::wire::link_proto::{IF_NAME_LEN, LinkProtoRepr, LinkProtoType};

/// ktnode1's address in the captures.
pub(super) const K1: u32 = 0x0f11_5f6f;
/// ktnode2's address in the captures.
pub(super) const K2: u32 = 0x0f11_5c6f;
/// Start of the test clock.
pub(super) const T0: Instant = Instant::from_millis(1000);
/// The default timer interval (tolerance 1500 ms / 4).
pub(super) const INTV: Duration = Duration::from_millis(375);

/// A link configured like the captured kernels: eth0, MTU 1500, all capabilities.
pub(super) fn kcfg(own: u32, peer: u32, session: u16) -> LinkConfig {
    LinkConfig::new(own, peer, 0, "eth0", 1500, 0xfff, 0xfff, session)
}

/// Broadcast context of a node whose broadcast receive link for the peer is not up.
pub(super) const BC_DOWN: BcastCtx = BcastCtx {
    rcv_ack: 0,
    rcv_ack_invalid: true,
    last_bcast: 0,
    bc_gap: 0,
    redundant_link: false,
};

/// Broadcast context once the broadcast receive link is up.
pub(super) const BC_UP: BcastCtx = BcastCtx {
    rcv_ack: 0,
    rcv_ack_invalid: false,
    last_bcast: 0,
    bc_gap: 0,
    redundant_link: true,
};

/// Fields of a crafted LINK_PROTOCOL message from the peer.
#[derive(Debug, Clone)]
pub(super) struct Proto {
    pub(super) msg_type: LinkProtoType,
    pub(super) session: u16,
    pub(super) ack: u16,
    pub(super) seqno: u16,
    pub(super) next_sent: u16,
    pub(super) seq_gap: u16,
    pub(super) dest_session: Option<u16>,
    pub(super) probe: bool,
    pub(super) keepalive: bool,
    pub(super) peer_stopping: bool,
    pub(super) priority: u8,
    pub(super) tolerance: u16,
    pub(super) max_pkt: u32,
    pub(super) payload: Vec<u8>,
}

impl Proto {
    /// A RESET with session `session`, max_pkt 1500 and "eth0".
    pub(super) fn reset(session: u16) -> Self {
        let mut name = vec![0u8; IF_NAME_LEN];
        name[..4].copy_from_slice(b"eth0");
        Self {
            msg_type: LinkProtoType::Reset,
            session,
            ack: 0,
            seqno: 32_768,
            next_sent: 1,
            seq_gap: 0,
            dest_session: None,
            probe: false,
            keepalive: false,
            peer_stopping: false,
            priority: 0,
            tolerance: 0,
            max_pkt: 1500,
            payload: name,
        }
    }

    /// An ACTIVATE naming our session `dest`.
    pub(super) fn activate(session: u16, dest: u16) -> Self {
        Self {
            msg_type: LinkProtoType::Activate,
            dest_session: Some(dest),
            ..Self::reset(session)
        }
    }

    /// A STATE with counter `seqno`, `ack`, `next_sent` and the empty gap-ack record.
    pub(super) fn state(session: u16, seqno: u16, ack: u16, next_sent: u16) -> Self {
        Self {
            msg_type: LinkProtoType::State,
            session,
            ack,
            seqno,
            next_sent,
            max_pkt: 0,
            payload: vec![0, 4, 0, 0],
            ..Self::reset(session)
        }
    }

    /// The message as `from` sends it to `to`.
    pub(super) fn bytes(&self, from: u32, to: u32) -> Vec<u8> {
        let activate = self.msg_type == LinkProtoType::Activate;
        let repr = LinkProtoRepr {
            base: Internal {
                common: Common {
                    flags: Flags {
                        dest_droppable: self.keepalive,
                        ..Flags::default()
                    },
                    bcast_ack: self.dest_session.unwrap_or(0),
                    ack: self.ack,
                    seqno: self.seqno,
                    prev_node: from,
                },
                orig_node: from,
                dest_node: to,
                extra_header: &[],
                payload: &self.payload,
            },
            msg_type: self.msg_type,
            seq_gap: if activate {
                u16::from(self.dest_session.is_some())
            } else {
                self.seq_gap
            },
            last_bcast: 0,
            next_sent: self.next_sent,
            session: self.session,
            bc_ack_invalid: true,
            peer_stopping: self.peer_stopping,
            redundant_link: false,
            bearer_id: 0,
            priority: self.priority,
            net_plane: 0,
            probe: self.probe,
            bc_gap: 0,
            max_pkt: self.max_pkt,
            tolerance: self.tolerance,
        };
        let mut buf = vec![0; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut buf[..]))
            .expect("emit");
        buf
    }
}

/// A sequenced DIRECT message from `from` with the given link words and data.
pub(super) fn data(from: u32, to: u32, seqno: u16, ack: u16, len: usize) -> Vec<u8> {
    let mut m = super::harness::data_msg(from, to, 0, u32::from(seqno), len);
    Packet::new_unchecked(&mut m[..]).set_ack_seqno(ack, seqno);
    m
}

/// Feeds one packet and returns what the link produced.
pub(super) fn feed(l: &mut Link, now: Instant, pkt: &[u8], bc: &BcastCtx) -> LinkOutput {
    let mut out = LinkOutput::default();
    l.handle_packet(now, pkt, bc, &mut out);
    out
}

/// Runs the timer at its deadline; returns the time and the output.
pub(super) fn tick(l: &mut Link, bc: &BcastCtx) -> (Instant, LinkOutput) {
    let now = l.poll_timeout().expect("timer always set");
    let mut out = LinkOutput::default();
    l.handle_timeout(now, bc, &mut out);
    (now, out)
}

/// A link from `own` to `peer` (session `session`) brought up by a crafted RESET and STATE
/// from a peer with session `peer_session`; the opening STATE (counter 1) is consumed.
pub(super) fn up_link(own: u32, peer: u32, session: u16, peer_session: u16) -> Link {
    up_link_with(kcfg(own, peer, session), peer_session)
}

/// [`up_link`] with a configuration of the caller's.
pub(super) fn up_link_with(cfg: LinkConfig, peer_session: u16) -> Link {
    let (own, peer) = (cfg.own_addr, cfg.peer_addr);
    let mut l = Link::new(cfg, T0);
    let out = feed(
        &mut l,
        T0,
        &Proto::reset(peer_session).bytes(peer, own),
        &BC_DOWN,
    );
    assert!(out.transmit.is_empty());
    let out = feed(
        &mut l,
        T0,
        &Proto::state(peer_session, 1, 0, 1).bytes(peer, own),
        &BC_DOWN,
    );
    assert_eq!(out.events, [super::LinkEvent::Up]);
    assert_eq!(out.transmit.len(), 1);
    l
}

/// A parsed view of a LINK_PROTOCOL message the link sent.
pub(super) fn parse(pkt: &[u8]) -> LinkProtoRepr<'_> {
    let p = Packet::new_checked(pkt).expect("valid");
    LinkProtoRepr::parse(&p).expect("LINK_PROTOCOL")
}
