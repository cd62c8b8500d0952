//! Link counters, named after the kernel's `tipc link statistics` where one exists.
//!
//! Unlike the kernel, which clears them at every link reset, these accumulate over the life of
//! the endpoint (call [`Link::reset_stats`](super::Link::reset_stats) to clear them): tests and
//! the management interface both want to see what happened across a reset.

/// Counters of one link endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Sequenced packets sent for the first time (retransmissions are not counted).
    pub sent_pkts: u64,
    /// Sequenced packets received in sequence.
    pub recv_pkts: u64,
    /// STATE messages sent.
    pub sent_states: u64,
    /// STATE messages accepted.
    pub recv_states: u64,
    /// STATE messages sent with the probe bit.
    pub sent_probes: u64,
    /// Probes received.
    pub recv_probes: u64,
    /// STATE messages sent with a non-zero seq_gap (NACKs).
    pub sent_nacks: u64,
    /// STATE messages received with a non-zero seq_gap.
    pub recv_nacks: u64,
    /// Explicit acks: STATEs sent because 16 packets arrived without us sending anything, and
    /// the STATE that opens a link.
    pub sent_acks: u64,
    /// Messages that went into a bundle.
    pub sent_bundled: u64,
    /// Bundles created.
    pub sent_bundles: u64,
    /// Messages extracted from received bundles (the bundles' msg_count).
    pub recv_bundled: u64,
    /// Bundles received.
    pub recv_bundles: u64,
    /// Packets retransmitted.
    pub retransmitted: u64,
    /// Messages fragmented.
    pub sent_fragmented: u64,
    /// Fragments produced.
    pub sent_fragments: u64,
    /// Messages reassembled.
    pub recv_fragmented: u64,
    /// Fragments received.
    pub recv_fragments: u64,
    /// Sends rejected because the importance's backlog was full.
    pub link_congs: u64,
    /// Out-of-order packets received (parked in the deferred queue or duplicates of parked ones).
    pub deferred_recv: u64,
    /// Packets received outside the receive window or already held.
    pub duplicates: u64,
    /// Largest transmit queue + backlog seen.
    pub max_queue_sz: u64,
    /// Unicast gap-ack blocks received in STATEs and used.
    pub recv_gap_ack_blocks: u64,
    /// Packets released by a gap-ack block rather than by the cumulative ack (selective ack).
    pub gap_ack_released: u64,
    /// RESET messages sent.
    pub sent_resets: u64,
    /// ACTIVATE messages sent.
    pub sent_activates: u64,
    /// RESET/ACTIVATE messages received and accepted.
    pub recv_resets: u64,
    /// LINK_PROTOCOL messages rejected by the session rules or malformed.
    pub rejected_proto: u64,
    /// Packets that could not be parsed, arrived while the link was not up, or carry a user the
    /// link does not deliver.
    pub dropped: u64,
    /// Messages inside received bundles that were skipped (illegal user or malformed).
    pub bundle_skipped: u64,
}
