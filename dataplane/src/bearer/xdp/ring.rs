//! The single-producer / single-consumer ring protocol of AF_XDP, on our side of each ring.
//!
//! Each of the four rings has one producer and one consumer; we are the producer of the fill
//! and TX rings ([`ProducerRing`]) and the consumer of the RX and completion rings
//! ([`ConsumerRing`]). Indices are free-running `u32`s that wrap at 2^32; a slot is
//! `index & (size - 1)`.
//!
//! Shaped after xdpilone's `src/xsk/ring.rs` and `src/xsk/user.rs`:
//!
//! * **Cached indices.** Each side keeps its own index and a cached copy of the other side's.
//!   The shared word is loaded (Acquire) only when the cache cannot satisfy a request, so a
//!   batch costs one atomic load and one atomic store at most.
//! * **Batch guards.** [`ProducerRing::reserve`] returns a [`WriteBatch`] and
//!   [`ConsumerRing::peek`] a [`ReadBatch`]; both are `#[must_use]`. A write batch publishes its
//!   entries with [`WriteBatch::commit`] (one Release store of the producer index); a read batch
//!   hands its slots back with [`ReadBatch::release`] (one Release store of the consumer index).
//!   Dropping a guard without that rolls it back: written entries are never published, peeked
//!   entries stay in the ring and are seen again.
//!
//! Memory ordering: the producer writes descriptors, then stores the producer index with
//! Release; the consumer loads it with Acquire before reading them. Symmetrically the consumer
//! stores its index with Release after reading, and the producer loads it with Acquire before
//! overwriting those slots.

use std::sync::atomic::Ordering;

use super::sys::RingMem;

/// Our side of a ring we produce into (fill, TX).
#[derive(Debug)]
pub(super) struct ProducerRing<T> {
    mem: RingMem<T>,
    /// Our producer index: the next slot to write.
    prod: u32,
    /// The kernel's consumer index plus the ring size, as last loaded: we may write up to here.
    cons_limit: u32,
}

impl<T: Copy> ProducerRing<T> {
    /// Takes over a ring whose indices the kernel initialised.
    pub(super) fn new(mem: RingMem<T>) -> Self {
        let prod = mem.producer().load(Ordering::Relaxed);
        let cons_limit = mem
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(mem.size());
        Self {
            mem,
            prod,
            cons_limit,
        }
    }

    /// The ring's memory (for tests that play the kernel).
    #[cfg(test)]
    pub(super) fn mem(&self) -> &RingMem<T> {
        &self.mem
    }

    /// Number of slots.
    pub(super) fn size(&self) -> u32 {
        self.mem.size()
    }

    /// Free slots, refreshing the cached consumer index only if fewer than `want` are known
    /// to be free.
    pub(super) fn free(&mut self, want: u32) -> u32 {
        let free = self.cons_limit.wrapping_sub(self.prod);
        if free >= want {
            return free;
        }
        self.cons_limit = self
            .mem
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(self.mem.size());
        self.cons_limit.wrapping_sub(self.prod)
    }

    /// Entries published but not yet consumed by the kernel (one Acquire load).
    pub(super) fn outstanding(&self) -> u32 {
        self.prod
            .wrapping_sub(self.mem.consumer().load(Ordering::Acquire))
    }

    /// Whether the kernel set `XDP_RING_NEED_WAKEUP`: it will not look at the ring again until
    /// a syscall (sendto for TX, recvfrom/poll for fill) wakes it.
    pub(super) fn needs_wakeup(&self) -> bool {
        self.mem.flags().load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Reserves up to `n` slots (fewer if fewer are free; possibly none).
    pub(super) fn reserve(&mut self, n: u32) -> WriteBatch<'_, T> {
        let cap = self.free(n).min(n);
        WriteBatch {
            ring: self,
            cap,
            len: 0,
        }
    }
}

/// Reserved slots of a [`ProducerRing`]; see the [module docs](self).
#[derive(Debug)]
#[must_use = "a WriteBatch publishes nothing until commit(); dropping it rolls the batch back"]
pub(super) struct WriteBatch<'a, T: Copy> {
    ring: &'a mut ProducerRing<T>,
    cap: u32,
    len: u32,
}

impl<T: Copy> WriteBatch<'_, T> {
    /// Slots reserved.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> u32 {
        self.cap
    }

    /// Entries written so far.
    #[cfg(test)]
    pub(super) fn len(&self) -> u32 {
        self.len
    }

    /// Whether every reserved slot is written.
    pub(super) fn is_full(&self) -> bool {
        self.len == self.cap
    }

    /// Writes the next entry; `false` (and nothing written) if the batch is full.
    pub(super) fn push(&mut self, value: T) -> bool {
        if self.is_full() {
            return false;
        }
        self.ring
            .mem
            .write(self.ring.prod.wrapping_add(self.len), value);
        self.len += 1;
        true
    }

    /// Publishes the written entries to the kernel; returns how many.
    pub(super) fn commit(self) -> u32 {
        let n = self.len;
        if n > 0 {
            self.ring.prod = self.ring.prod.wrapping_add(n);
            self.ring
                .mem
                .producer()
                .store(self.ring.prod, Ordering::Release);
        }
        n
    }
}

/// Our side of a ring we consume from (RX, completion).
#[derive(Debug)]
pub(super) struct ConsumerRing<T> {
    mem: RingMem<T>,
    /// Our consumer index: the next slot to read.
    cons: u32,
    /// The kernel's producer index as last loaded: we may read up to here.
    prod: u32,
}

impl<T: Copy> ConsumerRing<T> {
    /// Takes over a ring whose indices the kernel initialised.
    pub(super) fn new(mem: RingMem<T>) -> Self {
        let cons = mem.consumer().load(Ordering::Relaxed);
        let prod = mem.producer().load(Ordering::Acquire);
        Self { mem, cons, prod }
    }

    /// The ring's memory (for tests that play the kernel).
    #[cfg(test)]
    pub(super) fn mem(&self) -> &RingMem<T> {
        &self.mem
    }

    /// Number of slots.
    pub(super) fn size(&self) -> u32 {
        self.mem.size()
    }

    /// Filled slots, refreshing the cached producer index only if fewer than `want` are known.
    pub(super) fn available(&mut self, want: u32) -> u32 {
        let avail = self.prod.wrapping_sub(self.cons);
        if avail >= want {
            return avail;
        }
        self.prod = self.mem.producer().load(Ordering::Acquire);
        self.prod.wrapping_sub(self.cons)
    }

    /// Takes up to `n` filled slots (fewer if fewer are filled; possibly none).
    pub(super) fn peek(&mut self, n: u32) -> ReadBatch<'_, T> {
        let len = self.available(n).min(n);
        ReadBatch { ring: self, len }
    }
}

/// Filled slots of a [`ConsumerRing`]; see the [module docs](self).
#[derive(Debug)]
#[must_use = "a ReadBatch keeps its slots until release(); dropping it rolls the batch back"]
pub(super) struct ReadBatch<'a, T: Copy> {
    ring: &'a mut ConsumerRing<T>,
    len: u32,
}

impl<T: Copy> ReadBatch<'_, T> {
    /// Entries in the batch.
    pub(super) fn len(&self) -> u32 {
        self.len
    }

    /// Whether the batch is empty.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`-th entry, `None` past the end.
    pub(super) fn get(&self, i: u32) -> Option<T> {
        (i < self.len).then(|| self.ring.mem.read(self.ring.cons.wrapping_add(i)))
    }

    /// Every entry, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = T> + '_ {
        (0..self.len).filter_map(|i| self.get(i))
    }

    /// Hands every slot of the batch back to the kernel; returns how many.
    pub(super) fn release(self) -> u32 {
        let n = self.len;
        if n > 0 {
            self.ring.cons = self.ring.cons.wrapping_add(n);
            self.ring
                .mem
                .consumer()
                .store(self.ring.cons, Ordering::Release);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring whose indices start just below 2^32, so every test crosses the wrap.
    fn mem(size: u32, start: u32) -> RingMem<u64> {
        let m = RingMem::<u64>::anonymous(size).expect("ring memory");
        m.producer().store(start, Ordering::Relaxed);
        m.consumer().store(start, Ordering::Relaxed);
        m
    }

    /// The kernel's side of a ring we produce into: consumes up to `n` entries.
    fn kernel_consume(m: &RingMem<u64>, n: u32) -> Vec<u64> {
        let cons = m.consumer().load(Ordering::Relaxed);
        let prod = m.producer().load(Ordering::Acquire);
        let k = prod.wrapping_sub(cons).min(n);
        let out = (0..k).map(|i| m.read(cons.wrapping_add(i))).collect();
        m.consumer().store(cons.wrapping_add(k), Ordering::Release);
        out
    }

    /// The kernel's side of a ring we consume from: produces `values`.
    fn kernel_produce(m: &RingMem<u64>, values: &[u64]) {
        let prod = m.producer().load(Ordering::Relaxed);
        for (i, v) in values.iter().enumerate() {
            m.write(prod.wrapping_add(i as u32), *v);
        }
        m.producer()
            .store(prod.wrapping_add(values.len() as u32), Ordering::Release);
    }

    #[test]
    fn producer_wraps_and_respects_the_consumer() {
        let mut r = ProducerRing::new(mem(8, u32::MAX - 5));
        assert_eq!(r.free(1), 8);
        let mut next = 0u64;
        let mut seen = Vec::new();
        for round in 0..20 {
            let mut b = r.reserve(5);
            assert_eq!(b.capacity(), 5, "round {round}");
            while b.push(next) {
                next += 1;
            }
            assert!(b.is_full());
            assert!(!b.push(999), "a full batch refuses more");
            assert_eq!(b.commit(), 5);
            assert_eq!(r.outstanding(), 5);
            seen.extend(kernel_consume(r.mem(), 5));
        }
        assert_eq!(
            seen,
            (0..100).collect::<Vec<_>>(),
            "in order across the wrap"
        );
        assert_eq!(
            r.mem().producer().load(Ordering::Relaxed),
            (u32::MAX - 5).wrapping_add(100)
        );
    }

    #[test]
    fn producer_never_overruns_the_kernel() {
        let mut r = ProducerRing::new(mem(8, u32::MAX - 2));
        let mut b = r.reserve(20);
        assert_eq!(b.capacity(), 8, "only the ring size");
        for v in 0..8 {
            assert!(b.push(v));
        }
        assert_eq!(b.commit(), 8);
        assert_eq!(r.reserve(1).capacity(), 0, "full until the kernel consumes");
        assert_eq!(kernel_consume(r.mem(), 3), vec![0, 1, 2]);
        let b = r.reserve(8);
        assert_eq!(b.capacity(), 3, "the cached consumer index was refreshed");
        drop(b);
    }

    #[test]
    fn dropped_write_batch_publishes_nothing() {
        let mut r = ProducerRing::new(mem(8, u32::MAX));
        {
            let mut b = r.reserve(4);
            assert!(b.push(7));
            assert!(b.push(8));
            assert_eq!(b.len(), 2);
            // Dropped: rolled back.
        }
        assert_eq!(r.outstanding(), 0);
        assert_eq!(
            r.mem().producer().load(Ordering::Relaxed),
            u32::MAX,
            "not published"
        );
        let mut b = r.reserve(4);
        assert!(b.push(9));
        assert_eq!(b.commit(), 1, "only what was written is published");
        assert_eq!(
            kernel_consume(r.mem(), 8),
            vec![9],
            "the rolled-back slots are reused"
        );
    }

    #[test]
    fn consumer_wraps_releases_and_rolls_back() {
        let mut r = ConsumerRing::new(mem(8, u32::MAX - 1));
        assert!(r.peek(4).is_empty());
        kernel_produce(r.mem(), &[10, 11, 12]);
        {
            let b = r.peek(2);
            assert_eq!(b.iter().collect::<Vec<_>>(), vec![10, 11]);
            assert_eq!(b.get(2), None);
            // Dropped: rolled back.
        }
        assert_eq!(
            r.mem().consumer().load(Ordering::Relaxed),
            u32::MAX - 1,
            "nothing released"
        );
        let b = r.peek(8);
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![10, 11, 12], "seen again");
        assert_eq!(b.release(), 3);
        assert_eq!(r.mem().consumer().load(Ordering::Relaxed), 1, "wrapped");
        let mut total = Vec::new();
        for round in 0u64..10 {
            let vals: Vec<u64> = (0..8).map(|i| round * 8 + i).collect();
            kernel_produce(r.mem(), &vals);
            let b = r.peek(8);
            assert_eq!(b.len(), 8);
            total.extend(b.iter());
            assert_eq!(b.release(), 8);
        }
        assert_eq!(total, (0..80).collect::<Vec<_>>());
        assert_eq!(r.available(1), 0);
    }
}
