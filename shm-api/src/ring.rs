//! Single-producer single-consumer record ring in memory shared with another process.
//!
//! Read `../shared/STYLE.md` §3.6 first: the record protocol is agrona's `OneToOneRingBuffer`,
//! hardened because one side is untrusted.
//!
//! # Layout of one ring region
//!
//! ```text
//!  0                                                       capacity (power of two)
//!  +--------+---------+--------+---------+-- ... ---------+
//!  | record | record  | record | padding |    free        |   data area
//!  +--------+---------+--------+---------+-- ... ---------+
//!  capacity + 0    tail          u64  written by the producer only   (own 128-byte line)
//!  capacity + 128  head cache    u64  reserved, never read           (own 128-byte line)
//!  capacity + 256  head          u64  written by the consumer only   (own 128-byte line)
//!  capacity + 384  need wakeup   u32  set by the consumer, cleared by either (own line)
//!  capacity + 512  end of region (`region_len(capacity)`)
//!
//! record, 8-byte aligned, never crossing the end of the data area:
//!   0                   4                   8
//!  +-------------------+-------------------+---------------------------+---------+
//!  | length: i32       | type: i32         | message (length - 8)      | pad to 8|
//!  +-------------------+-------------------+---------------------------+---------+
//! ```
//!
//! `length` counts the header and the message but not the alignment padding. Types are ≥ 1;
//! a record of type [`PADDING_TYPE`] fills the space from its index to the end of the data
//! area when the next record does not fit there, and the record follows at index 0. Head and
//! tail are byte positions that only grow (`position & (capacity - 1)` is the index). All
//! integers are in the machine's byte order: both sides run on the same host.
//!
//! # Ordering
//!
//! The producer writes the record bytes (and the padding record, if any) with plain stores,
//! then publishes the new tail with a Release store. The consumer loads the tail with Acquire,
//! copies the records out, zeroes the bytes it consumed (so stale data never lingers in the
//! segment) and publishes its head with a Release store; the producer loads the head with
//! Acquire before reusing that space. Agrona's head cache lives in the producer's private
//! memory here, because a cache in the segment could be falsified by the consumer's process;
//! its line stays reserved so both trailers have the same shape.
//!
//! # Trust
//!
//! Either side may be a hostile process that writes anything anywhere in the region at any
//! time. Hence:
//!
//! * each side keeps its own position (`tail` for the producer, `head` for the consumer) in
//!   private memory and only ever *stores* it to the segment;
//! * the position read from the other side is validated (aligned, within one capacity of ours,
//!   never moving backwards); a violation is [`RingError::Corrupt`], sticky for the consumer;
//! * the consumer never creates a Rust reference to the data area: it copies each header into
//!   a local, validates the copy, then copies the message into its own scratch buffer and
//!   hands the caller only that copy, so a concurrent rewrite cannot change what was checked;
//! * the only references into the segment are `&AtomicU64`/`&AtomicU32` for the trailer words,
//!   which atomics permit to change concurrently.
//!
//! A single bad record makes the consumer return `Corrupt` for good: the daemon then drops
//! the client, as `../shared/DESIGN.md` requires.
//!
//! # Sleeping and waking (`need_wakeup`)
//!
//! A consumer about to block calls [`Consumer::prepare_to_sleep`]: it sets `need_wakeup`,
//! issues a SeqCst fence and re-checks the ring; it may block only if that returns `true`. A
//! producer, after [`Producer::try_write`], calls [`Producer::consumer_wants_wakeup`], which
//! issues a SeqCst fence, reads the flag and clears it; on `true` the caller rings the
//! consumer's doorbell ([`crate::doorbell::Doorbell`]). The two fences guarantee that either
//! the consumer sees the new tail or the producer sees the flag, so no wakeup is lost. After
//! waking the consumer must *first* drain its doorbell, then call [`Consumer::woke`], then read
//! the ring: draining after the final emptiness check could swallow a ring meant for a record
//! written in between.

use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// Bytes of a record header: length (i32) then type (i32).
pub const HEADER_LEN: usize = 8;
/// Alignment of every record, in bytes.
pub const ALIGN: usize = 8;
/// Type of the record that pads the data area up to its end at a wrap.
pub const PADDING_TYPE: i32 = -1;
/// Smallest data area accepted.
pub const MIN_CAPACITY: usize = 1024;
/// Largest data area accepted (record lengths are i32).
pub const MAX_CAPACITY: usize = 1 << 30;

/// Size of one trailer line: two 64-byte cache lines, so adjacent-line prefetch cannot make
/// the two sides' counters share traffic.
const LINE: usize = 128;

/// Offsets of the trailer words, relative to the end of the data area.
pub mod trailer {
    use super::LINE;

    /// Producer's position (u64), published with Release.
    pub const TAIL: usize = 0;
    /// Reserved line (agrona's head cache; ours is private to the producer).
    pub const HEAD_CACHE: usize = TAIL + LINE;
    /// Consumer's position (u64), published with Release.
    pub const HEAD: usize = HEAD_CACHE + LINE;
    /// Non-zero while the consumer is (about to be) asleep (u32).
    pub const NEED_WAKEUP: usize = HEAD + LINE;
    /// Length of the trailer.
    pub const LEN: usize = NEED_WAKEUP + LINE;
}

/// Length of the trailer that follows the data area.
pub const TRAILER_LEN: usize = trailer::LEN;

/// Bytes a ring with a `capacity`-byte data area occupies: data area plus trailer.
pub const fn region_len(capacity: usize) -> usize {
    capacity + TRAILER_LEN
}

/// Largest message (record minus header) a ring of `capacity` bytes carries.
///
/// Half the data area, header included: an empty ring can then always take a record of that
/// size even when it must first pad to the end, so a writer never waits forever.
pub const fn max_msg_len(capacity: usize) -> usize {
    capacity / 2 - HEADER_LEN
}

/// Space in the data area that a message of `msg_len` bytes takes as a record.
pub const fn record_len(msg_len: usize) -> usize {
    align_up(HEADER_LEN + msg_len)
}

const fn align_up(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

/// What went wrong with a ring operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// Not enough free space now; try again after the consumer has advanced.
    #[error("ring full")]
    Full,
    /// The message can never fit this ring.
    #[error("message of {len} bytes exceeds the ring's maximum of {max}")]
    TooLarge {
        /// Length of the rejected message.
        len: usize,
        /// Largest message the ring takes.
        max: usize,
    },
    /// Message types must be ≥ 1 (≤ 0 are reserved, -1 is padding).
    #[error("invalid message type {0}: types must be at least 1")]
    BadType(i32),
    /// The arguments describe no valid ring (a programming or configuration error).
    #[error("invalid ring layout: {0}")]
    BadLayout(&'static str),
    /// The other side wrote something the protocol does not allow; stop using this ring.
    #[error("ring corrupted by the other side: {0}")]
    Corrupt(&'static str),
}

/// Validated location of one ring region, shared by both ends.
struct Region {
    /// Start of the data area; the trailer follows at `base + capacity`.
    base: *mut u8,
    capacity: usize,
    /// Keeps the memory mapped while this end exists (e.g. the segment's mapping).
    _owner: Option<Arc<dyn Send + Sync>>,
}

impl Region {
    /// # Safety
    ///
    /// See [`Producer::new`].
    unsafe fn new(base: *mut u8, region_len: usize, capacity: usize) -> Result<Self, RingError> {
        if base.is_null() {
            return Err(RingError::BadLayout("null base pointer"));
        }
        if !(base as usize).is_multiple_of(ALIGN) {
            return Err(RingError::BadLayout("base is not 8-byte aligned"));
        }
        if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(RingError::BadLayout(
                "capacity must be a power of two between 1 KiB and 1 GiB",
            ));
        }
        if region_len < self::region_len(capacity) {
            return Err(RingError::BadLayout(
                "region shorter than the data area plus trailer",
            ));
        }
        Ok(Self {
            base,
            capacity,
            _owner: None,
        })
    }

    fn word64(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: `new`'s caller guaranteed the region is mapped, 8-aligned and at least
        // `capacity + TRAILER_LEN` long for our lifetime; trailer offsets are multiples of 128,
        // so the word is in bounds and aligned. Atomics may be written concurrently by the
        // other process, which is exactly what they are for.
        unsafe { AtomicU64::from_ptr(self.base.add(self.capacity + offset).cast::<u64>()) }
    }

    fn tail(&self) -> &AtomicU64 {
        self.word64(trailer::TAIL)
    }

    fn head(&self) -> &AtomicU64 {
        self.word64(trailer::HEAD)
    }

    fn need_wakeup(&self) -> &AtomicU32 {
        // SAFETY: as in `word64`; the offset is 128-aligned and 4 bytes fit in the line.
        unsafe {
            AtomicU32::from_ptr(
                self.base
                    .add(self.capacity + trailer::NEED_WAKEUP)
                    .cast::<u32>(),
            )
        }
    }

    fn index(&self, position: u64) -> usize {
        // The mask keeps the index below capacity whatever the position.
        (position as usize) & (self.capacity - 1)
    }

    /// Checks a position pair read at attach time: aligned, tail at most one capacity ahead.
    fn check_positions(&self, head: u64, tail: u64) -> Result<(), RingError> {
        if !head.is_multiple_of(ALIGN as u64) || !tail.is_multiple_of(ALIGN as u64) {
            return Err(RingError::Corrupt("position not 8-byte aligned"));
        }
        if tail.wrapping_sub(head) > self.capacity as u64 {
            return Err(RingError::Corrupt(
                "tail behind head or more than capacity ahead",
            ));
        }
        Ok(())
    }
}

/// The writing end of a ring. `Send` (it may move to another thread) but not `Sync`: one
/// thread writes at a time, callers with several writers serialise them.
pub struct Producer {
    region: Region,
    /// Our position; the copy in the segment is only ever stored to.
    tail: u64,
    /// Last validated head read from the segment.
    head_cache: u64,
    max_msg_len: usize,
}

// SAFETY: the raw pointer refers to shared memory kept alive by `_owner` (or by the `new`
// caller's guarantee); nothing in it is tied to the creating thread.
unsafe impl Send for Producer {}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.region.capacity)
            .field("tail", &self.tail)
            .field("head_cache", &self.head_cache)
            .field("max_msg_len", &self.max_msg_len)
            .finish()
    }
}

impl Producer {
    /// Attaches the writing end to the ring at `base` (data area first, trailer after it),
    /// continuing from the positions found in the trailer (zero for a fresh segment).
    ///
    /// # Safety
    ///
    /// `base` must point to `region_len` bytes that stay mapped, readable and writable for as
    /// long as the returned value (and anything it is moved into) exists, and no other
    /// `Producer` may write the same ring. The memory may be written concurrently by anyone;
    /// that is handled.
    pub unsafe fn new(
        base: *mut u8,
        region_len: usize,
        capacity: usize,
    ) -> Result<Self, RingError> {
        // SAFETY: forwarded to our caller.
        let region = unsafe { Region::new(base, region_len, capacity) }?;
        let tail = region.tail().load(Ordering::Acquire);
        let head = region.head().load(Ordering::Acquire);
        region.check_positions(head, tail)?;
        Ok(Self {
            region,
            tail,
            head_cache: head,
            max_msg_len: max_msg_len(capacity),
        })
    }

    /// Keeps `owner` (the mapping) alive as long as this producer.
    pub(crate) fn keep_alive(mut self, owner: Arc<dyn Send + Sync>) -> Self {
        self.region._owner = Some(owner);
        self
    }

    /// Largest message `try_write` accepts.
    pub fn max_msg_len(&self) -> usize {
        self.max_msg_len
    }

    /// Size of the data area.
    pub fn capacity(&self) -> usize {
        self.region.capacity
    }

    /// Bytes free as of the last time a write had to read the consumer's head: a lower bound
    /// that costs no access to the shared trailer.
    pub fn free_space(&self) -> usize {
        self.region.capacity - self.tail.wrapping_sub(self.head_cache) as usize
    }

    /// Whether a message of `len` bytes would fit now (padding at the wrap included), reading
    /// the consumer's head when the cached one says no: for producers that must not take a
    /// message from elsewhere unless they can write it at once.
    ///
    /// # Errors
    ///
    /// `Corrupt` when the consumer's process wrote an impossible head.
    pub fn can_write(&mut self, len: usize) -> Result<bool, RingError> {
        if len > self.max_msg_len {
            return Ok(false);
        }
        let record = record_len(len);
        let index = self.region.index(self.tail);
        let to_end = self.region.capacity - index;
        let needed = if record > to_end {
            to_end + record
        } else {
            record
        };
        self.has_room(needed)
    }

    /// Appends one record of type `msg_type` whose message is the concatenation of `parts`,
    /// and publishes it. `Full` means nothing was written; retry after the consumer advances.
    /// `Corrupt` means the consumer's process wrote an impossible head.
    pub fn try_write(&mut self, msg_type: i32, parts: &[&[u8]]) -> Result<(), RingError> {
        if msg_type < 1 {
            return Err(RingError::BadType(msg_type));
        }
        let max = self.max_msg_len;
        let len = parts
            .iter()
            .try_fold(0usize, |acc, p| acc.checked_add(p.len()))
            .ok_or(RingError::TooLarge {
                len: usize::MAX,
                max,
            })?;
        if len > max {
            return Err(RingError::TooLarge { len, max });
        }
        let record = record_len(len);
        let mut index = self.region.index(self.tail);
        let to_end = self.region.capacity - index;
        let wraps = record > to_end;
        let needed = if wraps { to_end + record } else { record };
        if !self.has_room(needed)? {
            return Err(RingError::Full);
        }
        let mut tail = self.tail;
        if wraps {
            // `to_end` ≤ capacity ≤ 1 GiB fits i32.
            self.write_header(index, to_end as i32, PADDING_TYPE);
            tail = tail.wrapping_add(to_end as u64);
            index = 0;
        }
        // `len` ≤ capacity / 2, so the record length fits i32.
        self.write_header(index, (HEADER_LEN + len) as i32, msg_type);
        let mut at = index + HEADER_LEN;
        for part in parts {
            // SAFETY: `at + part.len()` ≤ `index + HEADER_LEN + len` ≤ `index + record` ≤
            // capacity (the record fits before the end: either it did not wrap or it starts
            // at 0 and record ≤ capacity / 2). `part` is our own memory, not the segment.
            unsafe {
                ptr::copy_nonoverlapping(part.as_ptr(), self.region.base.add(at), part.len());
            }
            at += part.len();
        }
        tail = tail.wrapping_add(record as u64);
        self.tail = tail;
        self.region.tail().store(tail, Ordering::Release);
        Ok(())
    }

    /// Whether the consumer asked to be woken, clearing its request. Call after a successful
    /// `try_write` (or a batch of them); on `true` ring the consumer's doorbell. See the
    /// module doc for the protocol.
    pub fn consumer_wants_wakeup(&mut self) -> bool {
        fence(Ordering::SeqCst);
        let flag = self.region.need_wakeup();
        // Load first so the common case does not take the consumer's line exclusive.
        flag.load(Ordering::Relaxed) != 0 && flag.swap(0, Ordering::Relaxed) != 0
    }

    /// Whether `needed` bytes are free, reading the consumer's head if the cached one says no.
    fn has_room(&mut self, needed: usize) -> Result<bool, RingError> {
        let capacity = self.region.capacity as u64;
        let needed = needed as u64;
        if capacity - self.tail.wrapping_sub(self.head_cache) >= needed {
            return Ok(true);
        }
        let head = self.region.head().load(Ordering::Acquire);
        if !head.is_multiple_of(ALIGN as u64) {
            return Err(RingError::Corrupt("head not 8-byte aligned"));
        }
        // The head may only move forward from our cache and never past our tail.
        let advanced = head.wrapping_sub(self.head_cache);
        if advanced > self.tail.wrapping_sub(self.head_cache) {
            return Err(RingError::Corrupt("head moved backwards or past the tail"));
        }
        self.head_cache = head;
        Ok(capacity - self.tail.wrapping_sub(head) >= needed)
    }

    fn write_header(&self, index: usize, length: i32, msg_type: i32) {
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(&length.to_ne_bytes());
        header[4..].copy_from_slice(&msg_type.to_ne_bytes());
        // SAFETY: `index` is 8-aligned and below capacity, capacity is a multiple of 8, so the
        // 8 bytes are inside the data area.
        unsafe {
            ptr::copy_nonoverlapping(header.as_ptr(), self.region.base.add(index), HEADER_LEN);
        }
    }
}

/// The reading end of a ring. `Send`, not `Sync`.
pub struct Consumer {
    region: Region,
    /// Our position; the copy in the segment is only ever stored to.
    head: u64,
    /// Highest tail seen, to catch a tail that moves backwards.
    last_tail: u64,
    max_msg_len: usize,
    /// Each message is copied here before it is checked or shown to the caller.
    scratch: Vec<u8>,
    /// Set by the first violation; every later call reports it again.
    poisoned: Option<&'static str>,
}

// SAFETY: as for `Producer`.
unsafe impl Send for Consumer {}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.region.capacity)
            .field("head", &self.head)
            .field("last_tail", &self.last_tail)
            .field("max_msg_len", &self.max_msg_len)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl Consumer {
    /// Attaches the reading end to the ring at `base`, continuing from the positions in the
    /// trailer. Records whose message exceeds `max_msg_len` (at most
    /// [`max_msg_len`]`(capacity)`) are treated as corruption.
    ///
    /// # Safety
    ///
    /// As for [`Producer::new`], with "no other `Consumer` may read the same ring".
    pub unsafe fn new(
        base: *mut u8,
        region_len: usize,
        capacity: usize,
        max_msg_len: usize,
    ) -> Result<Self, RingError> {
        // SAFETY: forwarded to our caller.
        let region = unsafe { Region::new(base, region_len, capacity) }?;
        if max_msg_len > self::max_msg_len(capacity) {
            return Err(RingError::BadLayout(
                "max_msg_len exceeds half the capacity minus the header",
            ));
        }
        let head = region.head().load(Ordering::Acquire);
        let tail = region.tail().load(Ordering::Acquire);
        region.check_positions(head, tail)?;
        Ok(Self {
            region,
            head,
            last_tail: head,
            max_msg_len,
            scratch: vec![0; max_msg_len],
            poisoned: None,
        })
    }

    /// Keeps `owner` (the mapping) alive as long as this consumer.
    pub(crate) fn keep_alive(mut self, owner: Arc<dyn Send + Sync>) -> Self {
        self.region._owner = Some(owner);
        self
    }

    /// Largest message accepted.
    pub fn max_msg_len(&self) -> usize {
        self.max_msg_len
    }

    /// Size of the data area.
    pub fn capacity(&self) -> usize {
        self.region.capacity
    }

    /// Reads up to `max_records` messages, calling `f(type, message)` for each with a private
    /// copy of the message, then zeroes the consumed bytes and publishes the new head.
    /// Returns how many messages were delivered (padding is not counted).
    ///
    /// `Corrupt` means the producer broke the protocol; the messages before the bad record
    /// were delivered and this and every later call return the same error.
    pub fn read(
        &mut self,
        max_records: usize,
        mut f: impl FnMut(i32, &[u8]),
    ) -> Result<usize, RingError> {
        if let Some(reason) = self.poisoned {
            return Err(RingError::Corrupt(reason));
        }
        let tail = match self.load_tail() {
            Ok(tail) => tail,
            Err(reason) => return Err(self.poison(reason)),
        };
        let mut delivered = 0;
        let mut result = Ok(());
        while delivered < max_records && self.head != tail {
            match self.read_one(tail) {
                Ok(Some((msg_type, len))) => {
                    delivered += 1;
                    f(msg_type, &self.scratch[..len]);
                }
                Ok(None) => {}
                Err(reason) => {
                    result = Err(reason);
                    break;
                }
            }
        }
        // Publish what was consumed (records before a bad one were delivered).
        self.region.head().store(self.head, Ordering::Release);
        match result {
            Ok(()) => Ok(delivered),
            Err(reason) => Err(self.poison(reason)),
        }
    }

    /// Whether no record is published beyond our head. A poisoned consumer is never empty,
    /// so a caller that checks this goes on to `read` and sees the error.
    pub fn is_empty(&self) -> bool {
        self.poisoned.is_none() && self.region.tail().load(Ordering::Acquire) == self.head
    }

    /// First half of going to sleep: sets `need_wakeup`, fences, and re-checks the ring.
    /// Returns `true` if the ring is still empty and the caller may block on its doorbell;
    /// `false` (flag cleared again) if records arrived meanwhile or the ring is poisoned.
    pub fn prepare_to_sleep(&mut self) -> bool {
        let flag = self.region.need_wakeup();
        flag.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.is_empty() {
            true
        } else {
            flag.store(0, Ordering::Relaxed);
            false
        }
    }

    /// Clears `need_wakeup` after waking (by doorbell, timeout or anything else). Drain the
    /// doorbell before calling this and reading the ring.
    pub fn woke(&mut self) {
        self.region.need_wakeup().store(0, Ordering::Relaxed);
    }

    fn poison(&mut self, reason: &'static str) -> RingError {
        self.poisoned = Some(reason);
        RingError::Corrupt(reason)
    }

    /// Reads and validates the producer's tail.
    fn load_tail(&mut self) -> Result<u64, &'static str> {
        let tail = self.region.tail().load(Ordering::Acquire);
        if !tail.is_multiple_of(ALIGN as u64) {
            return Err("tail not 8-byte aligned");
        }
        let ahead = tail.wrapping_sub(self.head);
        if ahead > self.region.capacity as u64 {
            return Err("tail behind head or more than capacity ahead");
        }
        if ahead < self.last_tail.wrapping_sub(self.head) {
            return Err("tail moved backwards");
        }
        self.last_tail = tail;
        Ok(tail)
    }

    /// Consumes the record at our head (`head != tail`, `tail` validated). Returns the type
    /// and message length copied into `scratch`, or `None` for padding.
    fn read_one(&mut self, tail: u64) -> Result<Option<(i32, usize)>, &'static str> {
        let capacity = self.region.capacity;
        let index = self.region.index(self.head);
        // Both positions are 8-aligned and distinct, and tail - head ≤ capacity.
        let available = tail.wrapping_sub(self.head) as usize;
        let mut header = [0u8; HEADER_LEN];
        // SAFETY: `index` is 8-aligned and below capacity, a multiple of 8: in bounds. The
        // bytes are copied out once; only the copy is interpreted.
        unsafe {
            ptr::copy_nonoverlapping(self.region.base.add(index), header.as_mut_ptr(), HEADER_LEN);
        }
        let length = i32::from_ne_bytes([header[0], header[1], header[2], header[3]]);
        let msg_type = i32::from_ne_bytes([header[4], header[5], header[6], header[7]]);
        let Ok(length) = usize::try_from(length) else {
            return Err("negative record length");
        };
        if length < HEADER_LEN {
            return Err("record length below the header size");
        }
        let to_end = capacity - index;
        if msg_type == PADDING_TYPE {
            if length != to_end {
                return Err("padding record not ending at the end of the data area");
            }
            if length > available {
                return Err("padding record extends past the tail");
            }
            self.zero(index, length);
            self.head = self.head.wrapping_add(length as u64);
            return Ok(None);
        }
        if msg_type < 1 {
            return Err("invalid record type");
        }
        let msg_len = length - HEADER_LEN;
        if msg_len > self.max_msg_len {
            return Err("record larger than the maximum message");
        }
        let record = align_up(length);
        if record > to_end {
            return Err("record crosses the end of the data area");
        }
        if record > available {
            return Err("record extends past the tail");
        }
        // SAFETY: `index + HEADER_LEN + msg_len` ≤ `index + record` ≤ capacity, and the
        // scratch buffer holds `max_msg_len` ≥ `msg_len` bytes. A raw copy: the producer may
        // be rewriting these bytes right now, and no reference to them is ever formed.
        unsafe {
            ptr::copy_nonoverlapping(
                self.region.base.add(index + HEADER_LEN),
                self.scratch.as_mut_ptr(),
                msg_len,
            );
        }
        self.zero(index, record);
        self.head = self.head.wrapping_add(record as u64);
        Ok(Some((msg_type, msg_len)))
    }

    fn zero(&self, index: usize, len: usize) {
        // SAFETY: callers checked `index + len` ≤ capacity.
        unsafe { ptr::write_bytes(self.region.base.add(index), 0, len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doorbell::Doorbell;
    use std::alloc::{Layout, alloc_zeroed, dealloc};
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    /// Zeroed, 128-aligned heap memory standing in for a shared mapping.
    struct Mem {
        ptr: *mut u8,
        layout: Layout,
    }

    // SAFETY: plain heap memory; tests access it through the ring code or raw pointers.
    unsafe impl Send for Mem {}
    // SAFETY: as above.
    unsafe impl Sync for Mem {}

    impl Mem {
        fn new(capacity: usize) -> Arc<Self> {
            let layout = Layout::from_size_align(region_len(capacity), 128).expect("layout");
            // SAFETY: non-zero size.
            let ptr = unsafe { alloc_zeroed(layout) };
            assert!(!ptr.is_null());
            Arc::new(Self { ptr, layout })
        }

        /// What a hostile other side does: write anything anywhere in the region.
        fn poke(&self, offset: usize, bytes: &[u8]) {
            assert!(offset + bytes.len() <= self.layout.size());
            // SAFETY: bounds checked above.
            unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(offset), bytes.len()) };
        }

        fn peek(&self, offset: usize, len: usize) -> Vec<u8> {
            assert!(offset + len <= self.layout.size());
            let mut v = vec![0; len];
            // SAFETY: bounds checked above.
            unsafe { ptr::copy_nonoverlapping(self.ptr.add(offset), v.as_mut_ptr(), len) };
            v
        }
    }

    impl Drop for Mem {
        fn drop(&mut self) {
            // SAFETY: allocated in `new` with this layout.
            unsafe { dealloc(self.ptr, self.layout) };
        }
    }

    fn pair(mem: &Arc<Mem>, capacity: usize, max: usize) -> (Producer, Consumer) {
        let len = mem.layout.size();
        // SAFETY: `mem` is region_len(capacity) bytes, kept alive by keep_alive.
        let p = unsafe { Producer::new(mem.ptr, len, capacity) }.expect("producer");
        // SAFETY: as above.
        let c = unsafe { Consumer::new(mem.ptr, len, capacity, max) }.expect("consumer");
        (p.keep_alive(mem.clone()), c.keep_alive(mem.clone()))
    }

    fn drain(c: &mut Consumer) -> Result<Vec<(i32, Vec<u8>)>, RingError> {
        let mut out = Vec::new();
        c.read(usize::MAX, |t, m| out.push((t, m.to_vec())))?;
        Ok(out)
    }

    fn msg(seed: usize, len: usize) -> Vec<u8> {
        (0..len).map(|i| (seed * 31 + i * 7) as u8).collect()
    }

    const CAP: usize = 1024;

    fn header(len: i32, ty: i32) -> [u8; 8] {
        let mut h = [0u8; 8];
        h[..4].copy_from_slice(&len.to_ne_bytes());
        h[4..].copy_from_slice(&ty.to_ne_bytes());
        h
    }

    fn set_tail(mem: &Mem, tail: u64) {
        mem.poke(CAP + trailer::TAIL, &tail.to_ne_bytes());
    }

    fn set_head(mem: &Mem, head: u64) {
        mem.poke(CAP + trailer::HEAD, &head.to_ne_bytes());
    }

    /// Small deterministic generator for the hostile loops (no extra dependency).
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn layout_constants() {
        assert_eq!(TRAILER_LEN, 512);
        assert_eq!(region_len(CAP), CAP + 512);
        assert_eq!(max_msg_len(CAP), 504);
        assert_eq!(record_len(0), 8);
        assert_eq!(record_len(1), 16);
        assert_eq!(record_len(8), 16);
    }

    #[test]
    fn bad_layouts_are_refused() {
        let mem = Mem::new(4096);
        let len = region_len(4096);
        // SAFETY (all calls below): `mem` is large enough for every accepted layout.
        unsafe {
            assert!(Producer::new(ptr::null_mut(), len, 4096).is_err());
            assert!(Producer::new(mem.ptr.add(4), len - 4, 1024).is_err());
            assert!(Producer::new(mem.ptr, len, 3000).is_err());
            assert!(Producer::new(mem.ptr, len, 512).is_err());
            assert!(Producer::new(mem.ptr, len - 1, 4096).is_err());
            assert!(Consumer::new(mem.ptr, len, 4096, max_msg_len(4096) + 1).is_err());
            assert!(Consumer::new(mem.ptr, len, 4096, max_msg_len(4096)).is_ok());
        }
    }

    #[test]
    fn round_trips_every_size_across_many_wraps() {
        let mem = Mem::new(CAP);
        let (mut p, mut c) = pair(&mem, CAP, max_msg_len(CAP));
        for round in 0..3 {
            for len in 0..=p.max_msg_len() {
                let m = msg(len + round, len);
                p.try_write(1 + (len % 5) as i32, &[&m]).expect("write");
                assert_eq!(
                    drain(&mut c).expect("read"),
                    vec![(1 + (len % 5) as i32, m)]
                );
            }
        }
        // Thousands of records through a 1 KiB ring: it wrapped (and padded) many times.
        assert!(p.tail > 100 * CAP as u64);
        assert!(c.is_empty());
    }

    #[test]
    fn batches_keep_order_and_gather_parts() {
        let mem = Mem::new(CAP);
        let (mut p, mut c) = pair(&mem, CAP, max_msg_len(CAP));
        let mut rng = XorShift(7);
        let mut seq = 0usize;
        for _ in 0..500 {
            let mut want = Vec::new();
            loop {
                let len = rng.below(120);
                let m = msg(seq, len);
                let cut = rng.below(len + 1);
                match p.try_write(3, &[&m[..cut], &[], &m[cut..]]) {
                    Ok(()) => want.push((3, m)),
                    Err(RingError::Full) => break,
                    Err(e) => panic!("{e}"),
                }
                seq += 1;
            }
            assert!(!want.is_empty());
            assert_eq!(drain(&mut c).expect("read"), want);
        }
    }

    #[test]
    fn read_limit_and_zeroing() {
        let mem = Mem::new(CAP);
        let (mut p, mut c) = pair(&mem, CAP, 100);
        for i in 0..5 {
            p.try_write(2, &[&msg(i, 50)]).expect("write");
        }
        let mut n = 0;
        assert_eq!(c.read(2, |_, _| n += 1), Ok(2));
        assert_eq!(n, 2);
        assert_eq!(c.read(0, |_, _| n += 1), Ok(0));
        assert_eq!(c.read(10, |_, _| n += 1), Ok(3));
        assert_eq!(c.read(10, |_, _| n += 1), Ok(0));
        // Every consumed byte was zeroed before the head moved.
        assert!(mem.peek(0, CAP).iter().all(|&b| b == 0));
        let head = u64::from_ne_bytes(mem.peek(CAP + trailer::HEAD, 8).try_into().expect("8"));
        assert_eq!(head, 5 * record_len(50) as u64);
    }

    #[test]
    fn full_ring_and_recovery() {
        let mem = Mem::new(CAP);
        let (mut p, mut c) = pair(&mem, CAP, max_msg_len(CAP));
        let m = [0xabu8; 100]; // record of 112 bytes
        let mut written = 0;
        while p.try_write(1, &[&m]).is_ok() {
            written += 1;
        }
        assert_eq!(written, CAP / 112);
        assert_eq!(p.free_space(), CAP - written * 112);
        assert_eq!(p.try_write(1, &[&m]), Err(RingError::Full));
        // A small message still fits in the remaining 16 bytes.
        p.try_write(1, &[&[1u8; 8]]).expect("small fits");
        assert_eq!(p.try_write(1, &[]), Err(RingError::Full));
        // Reading one record frees exactly the 112 bytes the next one needs, at index 0.
        assert_eq!(c.read(1, |_, _| {}), Ok(1));
        p.try_write(1, &[&m]).expect("freed space reused");
        assert_eq!(p.free_space(), 0);
        // 8 left of the first batch, the small one, the new one.
        assert_eq!(drain(&mut c).expect("read").len(), written + 1);
    }

    #[test]
    fn wrap_needs_room_for_padding_too() {
        let mem = Mem::new(CAP);
        let (mut p, mut c) = pair(&mem, CAP, max_msg_len(CAP));
        // head = tail = 192
        p.try_write(1, &[&[0u8; 184]]).expect("write");
        drain(&mut c).expect("read");
        // Occupy 192..1000: 808 bytes used, 216 free, 24 before the end.
        p.try_write(1, &[&[1u8; 504]]).expect("write");
        p.try_write(1, &[&[2u8; 288]]).expect("write");
        assert_eq!(p.tail, 1000);
        // A 200-byte record fits the free space but not with its 24-byte padding.
        assert_eq!(p.try_write(1, &[&[3u8; 192]]), Err(RingError::Full));
        // (`free_space` is exact once a write had to look at the head.)
        assert_eq!((p.tail, p.free_space()), (1000, 216));
        // A 192-byte record fits with its padding exactly.
        p.try_write(1, &[&[4u8; 184]]).expect("exact fit");
        assert_eq!((p.tail, p.free_space()), (1000 + 24 + 192, 0));
        let got = drain(&mut c).expect("read");
        assert_eq!(
            got,
            vec![(1, vec![1; 504]), (1, vec![2; 288]), (1, vec![4; 184])]
        );
        assert_eq!(c.head, 1216);
    }

    #[test]
    fn empty_ring_always_takes_the_largest_message() {
        let mem = Mem::new(CAP);
        let (mut p, mut c) = pair(&mem, CAP, max_msg_len(CAP));
        let big = msg(1, p.max_msg_len());
        for step in 0..CAP / 8 {
            // Advance by 8 bytes at a time so the big record starts at every index.
            p.try_write(1, &[]).expect("filler");
            drain(&mut c).expect("read");
            p.try_write(9, &[&big])
                .unwrap_or_else(|e| panic!("step {step}: {e}"));
            assert_eq!(drain(&mut c).expect("read"), vec![(9, big.clone())]);
        }
    }

    #[test]
    fn refuses_bad_messages() {
        let mem = Mem::new(CAP);
        let (mut p, _c) = pair(&mem, CAP, max_msg_len(CAP));
        let too_big = vec![0u8; 505];
        assert_eq!(
            p.try_write(1, &[&too_big]),
            Err(RingError::TooLarge { len: 505, max: 504 })
        );
        assert_eq!(
            p.try_write(1, &[&too_big[..300], &too_big[..300]]),
            Err(RingError::TooLarge { len: 600, max: 504 })
        );
        assert_eq!(p.try_write(0, &[]), Err(RingError::BadType(0)));
        assert_eq!(p.try_write(PADDING_TYPE, &[]), Err(RingError::BadType(-1)));
        assert_eq!(p.tail, 0);
        assert_eq!(
            RingError::TooLarge { len: 505, max: 504 }.to_string(),
            "message of 505 bytes exceeds the ring's maximum of 504"
        );
    }

    #[test]
    fn consumer_limit_below_producer_limit_is_corruption_and_sticky() {
        let mem = Mem::new(CAP);
        let (mut p, mut c) = pair(&mem, CAP, 100);
        p.try_write(1, &[&[1u8; 10]]).expect("write");
        p.try_write(1, &[&[1u8; 101]]).expect("write");
        p.try_write(1, &[&[1u8; 10]]).expect("write");
        let mut n = 0;
        assert_eq!(
            c.read(10, |_, _| n += 1),
            Err(RingError::Corrupt("record larger than the maximum message"))
        );
        // The good record before the bad one was delivered and consumed.
        assert_eq!(n, 1);
        assert!(!c.is_empty());
        assert!(!c.prepare_to_sleep());
        assert!(matches!(
            c.read(10, |_, _| n += 1),
            Err(RingError::Corrupt(_))
        ));
        assert_eq!(n, 1);
    }

    /// Writes one record header at `index` and sets the tail to `tail`, then reads.
    fn forged(index: usize, len: i32, ty: i32, tail: u64) -> Result<usize, RingError> {
        let mem = Mem::new(CAP);
        let (_p, mut c) = pair(&mem, CAP, max_msg_len(CAP));
        mem.poke(index, &header(len, ty));
        set_tail(&mem, tail);
        c.read(10, |_, _| {})
    }

    #[test]
    fn forged_records_are_caught() {
        let corrupt = |r: Result<usize, RingError>, why: &str| match r {
            Err(RingError::Corrupt(reason)) => assert!(reason.contains(why), "{reason} !~ {why}"),
            other => panic!("expected Corrupt({why}), got {other:?}"),
        };
        assert_eq!(forged(0, 8, 1, 8), Ok(1));
        corrupt(forged(0, i32::MAX, 1, 1024), "larger than the maximum");
        corrupt(forged(0, i32::MIN, 1, 8), "negative");
        corrupt(forged(0, -8, 1, 8), "negative");
        corrupt(forged(0, 7, 1, 8), "below the header");
        corrupt(forged(0, 0, 1, 8), "below the header");
        corrupt(forged(0, 8, 0, 8), "type");
        corrupt(forged(0, 8, -2, 8), "type");
        corrupt(forged(0, 8, i32::MIN, 8), "type");
        corrupt(forged(0, 16, PADDING_TYPE, 16), "padding");
        corrupt(forged(0, 24, 1, 16), "past the tail");
        corrupt(forged(0, 9, 1, 8), "past the tail");
        corrupt(
            forged(0, CAP as i32, PADDING_TYPE, 512),
            "padding record extends",
        );
        corrupt(forged(0, 8, 1, 4), "aligned");
        corrupt(forged(0, 8, 1, CAP as u64 + 8), "capacity ahead");
        corrupt(forged(0, 8, 1, u64::MAX - 7), "behind head");
    }

    #[test]
    fn record_crossing_the_end_is_caught() {
        let mem = Mem::new(CAP);
        let (mut p, mut c) = pair(&mem, CAP, max_msg_len(CAP));
        // Bring both sides to index 1000 (24 bytes before the end).
        p.try_write(1, &[&[0u8; 496]]).expect("write");
        p.try_write(1, &[&[0u8; 488]]).expect("write");
        drain(&mut c).expect("read");
        assert_eq!(c.head, 1000);
        mem.poke(1000, &header(40, 1));
        set_tail(&mem, 1000 + 48);
        assert_eq!(
            c.read(10, |_, _| {}),
            Err(RingError::Corrupt(
                "record crosses the end of the data area"
            ))
        );
    }

    #[test]
    fn tail_moving_backwards_is_caught() {
        let mem = Mem::new(CAP);
        let (mut p, mut c) = pair(&mem, CAP, max_msg_len(CAP));
        p.try_write(1, &[&[0u8; 8]]).expect("write");
        p.try_write(1, &[&[0u8; 8]]).expect("write");
        assert_eq!(c.read(1, |_, _| {}), Ok(1));
        set_tail(&mem, 16);
        assert_eq!(
            c.read(1, |_, _| {}),
            Err(RingError::Corrupt("tail moved backwards"))
        );
    }

    #[test]
    fn tail_behind_head_is_caught() {
        let mem = Mem::new(CAP);
        let (mut p, mut c) = pair(&mem, CAP, max_msg_len(CAP));
        for _ in 0..4 {
            p.try_write(1, &[&[0u8; 8]]).expect("write");
        }
        drain(&mut c).expect("read");
        set_tail(&mem, 32);
        assert!(!c.is_empty());
        assert!(matches!(c.read(1, |_, _| {}), Err(RingError::Corrupt(_))));
    }

    #[test]
    fn hostile_head_is_caught_by_the_producer() {
        for (head, why) in [
            (4u64, "aligned"),
            (2048, "past the tail"),
            (u64::MAX - 7, "backwards"),
        ] {
            let mem = Mem::new(CAP);
            let (mut p, _c) = pair(&mem, CAP, max_msg_len(CAP));
            // Fill the ring so the next write has to read the head.
            while p.try_write(1, &[&[0u8; 200]]).is_ok() {}
            set_head(&mem, head);
            match p.try_write(1, &[&[0u8; 200]]) {
                Err(RingError::Corrupt(r)) => assert!(r.contains(why), "{r}"),
                other => panic!("head {head}: {other:?}"),
            }
        }
        // Attaching to a trailer with impossible positions fails too.
        let mem = Mem::new(CAP);
        set_tail(&mem, 4096);
        // SAFETY: `mem` is a full region.
        let r = unsafe { Producer::new(mem.ptr, mem.layout.size(), CAP) };
        assert!(matches!(r, Err(RingError::Corrupt(_))));
        // SAFETY: as above.
        let r = unsafe { Consumer::new(mem.ptr, mem.layout.size(), CAP, 8) };
        assert!(matches!(r, Err(RingError::Corrupt(_))));
    }

    /// Random garbage anywhere in the region: the consumer delivers only well-formed
    /// messages or reports corruption; the producer writes, reports Full or Corrupt. Nothing
    /// panics or reads out of bounds.
    #[test]
    fn random_garbage_never_panics() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let region = region_len(CAP);
        let mut outcomes = [0usize; 3];
        for case in 0..4000 {
            let mem = Mem::new(CAP);
            let max = 8 + rng.below(max_msg_len(CAP) - 7);
            let (mut p, mut c) = pair(&mem, CAP, max);
            // Some legitimate traffic first, so positions are anywhere.
            for _ in 0..rng.below(30) {
                let len = rng.below(max + 1);
                let _ = p.try_write(1 + rng.below(3) as i32, &[&msg(case, len)]);
                if rng.below(3) == 0 {
                    let _ = c.read(rng.below(4), |_, _| {});
                }
            }
            // Then the hostile side scribbles: single bytes, words at record boundaries,
            // or whole trailer words.
            for _ in 0..1 + rng.below(6) {
                match rng.below(4) {
                    0 => {
                        let at = rng.below(region);
                        mem.poke(at, &[rng.next() as u8]);
                    }
                    1 => {
                        let at = rng.below(CAP / 8) * 8;
                        mem.poke(at, &(rng.next() as u32).to_ne_bytes());
                    }
                    2 => {
                        let at = rng.below(CAP / 8) * 8;
                        let len = rng.below(CAP + 16) as i32 - 8;
                        mem.poke(at, &header(len, rng.below(4) as i32 - 1));
                    }
                    _ => {
                        let word =
                            [trailer::TAIL, trailer::HEAD, trailer::NEED_WAKEUP][rng.below(3)];
                        let v = match rng.below(3) {
                            0 => rng.next(),
                            1 => p
                                .tail
                                .wrapping_add(rng.below(2 * CAP) as u64)
                                .wrapping_sub(CAP as u64),
                            _ => p.tail.wrapping_add(8 * rng.below(CAP / 4) as u64),
                        };
                        mem.poke(CAP + word, &v.to_ne_bytes());
                    }
                }
            }
            for _ in 0..4 {
                let r = c.read(1 + rng.below(50), |t, m| {
                    assert!(t >= 1);
                    assert!(m.len() <= max);
                });
                match r {
                    Ok(_) => outcomes[0] += 1,
                    Err(RingError::Corrupt(_)) => outcomes[1] += 1,
                    Err(e) => panic!("case {case}: unexpected {e}"),
                }
                let _ = c.is_empty();
                let _ = c.prepare_to_sleep();
                c.woke();
                let len = rng.below(max + 1);
                match p.try_write(1, &[&msg(case, len)]) {
                    Ok(()) | Err(RingError::Full) | Err(RingError::Corrupt(_)) => {}
                    Err(e) => panic!("case {case}: unexpected {e}"),
                }
                outcomes[2] += usize::from(p.consumer_wants_wakeup());
            }
        }
        // The loop exercised both outcomes substantially.
        assert!(outcomes[0] > 1000 && outcomes[1] > 1000, "{outcomes:?}");
    }

    #[test]
    fn wakeup_flag_handshake() {
        let mem = Mem::new(CAP);
        let (mut p, mut c) = pair(&mem, CAP, 64);
        assert!(!p.consumer_wants_wakeup());
        assert!(c.prepare_to_sleep());
        p.try_write(1, &[b"x"]).expect("write");
        assert!(p.consumer_wants_wakeup());
        // Taken: a second record does not ring again.
        p.try_write(1, &[b"y"]).expect("write");
        assert!(!p.consumer_wants_wakeup());
        // Not empty: the consumer must not sleep, and withdraws its request.
        assert!(!c.prepare_to_sleep());
        assert!(!p.consumer_wants_wakeup());
        assert_eq!(c.read(10, |_, _| {}), Ok(2));
        assert!(c.prepare_to_sleep());
        c.woke();
        p.try_write(1, &[b"z"]).expect("write");
        assert!(!p.consumer_wants_wakeup());
    }

    /// The consumer sleeps on a doorbell whenever `prepare_to_sleep` allows; the producer
    /// writes with pauses and rings only when asked. A lost wakeup shows as a sleep that times
    /// out while records wait and no ring is pending.
    #[test]
    fn need_wakeup_never_loses_a_wakeup() {
        const N: u64 = 20_000;
        let mem = Mem::new(4096);
        let (mut p, mut c) = pair(&mem, 4096, 64);
        let bell = Arc::new(Doorbell::new().expect("eventfd"));
        let bell2 = bell.clone();
        let producer = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut rings = 0u64;
            for i in 0..N {
                while let Err(e) = p.try_write(1, &[&i.to_ne_bytes()]) {
                    assert_eq!(e, RingError::Full);
                    assert!(Instant::now() < deadline, "consumer stalled");
                    std::thread::yield_now();
                }
                if p.consumer_wants_wakeup() {
                    bell2.ring();
                    rings += 1;
                }
                if i % 7 == 0 {
                    std::thread::yield_now();
                }
                if i % 1000 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            rings
        });
        let mut next = 0u64;
        let mut sleeps = 0u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        while next < N {
            assert!(Instant::now() < deadline, "test took too long");
            c.read(256, |_, m| {
                let v = u64::from_ne_bytes(m.try_into().expect("8 bytes"));
                assert_eq!(v, next);
                next += 1;
            })
            .expect("read");
            if next == N {
                break;
            }
            if c.prepare_to_sleep() {
                sleeps += 1;
                if !bell.wait(Some(Duration::from_secs(5))).expect("wait") {
                    // Give an in-flight ring time to land, then judge.
                    std::thread::sleep(Duration::from_millis(100));
                    assert!(
                        c.is_empty() || bell.drain() > 0,
                        "lost wakeup: records waiting, doorbell silent"
                    );
                }
                bell.drain();
                c.woke();
            }
        }
        let rings = producer.join().expect("producer");
        assert!(sleeps > 10 && rings > 10, "sleeps {sleeps}, rings {rings}");
    }

    /// A million variable-size records between two threads, each checked byte for byte.
    #[test]
    fn million_records_between_threads() {
        const N: usize = 1_000_000;
        const CAPACITY: usize = 64 * 1024;
        let mem = Mem::new(CAPACITY);
        let (mut p, mut c) = pair(&mem, CAPACITY, 2048);
        let pattern: Arc<Vec<u8>> = Arc::new((0..4096).map(|i| (i * 131 % 251) as u8).collect());
        let len_of = |i: usize| {
            let h = i.wrapping_mul(0x9e37_79b9) >> 7;
            if h.is_multiple_of(97) {
                h % 2041
            } else {
                h % 200
            }
        };
        let bell = Arc::new(Doorbell::new().expect("eventfd"));
        let done = Arc::new(AtomicBool::new(false));
        let (bell2, pattern2) = (bell.clone(), pattern.clone());
        let producer = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut bytes = 0usize;
            for i in 0..N {
                let len = len_of(i);
                let seq = (i as u64).to_ne_bytes();
                let body = &pattern2[i % 1024..i % 1024 + len];
                while let Err(e) = p.try_write(1 + (i % 3) as i32, &[&seq, body]) {
                    assert_eq!(e, RingError::Full);
                    assert!(Instant::now() < deadline, "consumer stalled");
                    std::thread::yield_now();
                }
                bytes += len;
                if p.consumer_wants_wakeup() {
                    bell2.ring();
                }
            }
            bytes
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let (mut next, mut bytes) = (0usize, 0usize);
        while next < N {
            assert!(Instant::now() < deadline, "too slow");
            let n = c
                .read(512, |t, m| {
                    assert_eq!(t, 1 + (next % 3) as i32);
                    assert_eq!(m[..8], (next as u64).to_ne_bytes());
                    let len = len_of(next);
                    assert_eq!(&m[8..], &pattern[next % 1024..next % 1024 + len]);
                    bytes += len;
                    next += 1;
                })
                .expect("read");
            if n == 0 && c.prepare_to_sleep() {
                bell.wait(Some(Duration::from_millis(100))).expect("wait");
                bell.drain();
                c.woke();
            }
        }
        done.store(true, Ordering::Relaxed);
        assert_eq!(producer.join().expect("producer"), bytes);
        assert!(c.is_empty());
    }
}
