//! 16-bit modular sequence arithmetic (spec §0).
//!
//! Link sequence numbers, acks, STATE counters and sessions are u16 values that wrap. Two values
//! are compared within half the number space, as the kernel's `less_eq`/`less`/`more` do, so a
//! comparison stays meaningful across the wrap as long as the values are less than 32768 apart.

/// Half the 16-bit sequence space: the kernel's `U16_MAX / 2`, also the offset that puts the
/// seqno of RESET/ACTIVATE (and of STATE without LINK_PROTO_SEQNO) outside any send window.
pub(super) const HALF: u16 = 0x7fff;

/// `a` is at or before `b`: (b − a) mod 2^16 < 32768.
pub(super) fn less_eq(a: u16, b: u16) -> bool {
    b.wrapping_sub(a) < 0x8000
}

/// `a` is strictly before `b`.
pub(super) fn less(a: u16, b: u16) -> bool {
    a != b && less_eq(a, b)
}

/// `a` is strictly after `b`.
pub(super) fn more(a: u16, b: u16) -> bool {
    !less_eq(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_wrap() {
        assert!(less_eq(5, 5) && !less(5, 5) && !more(5, 5));
        assert!(less(65_535, 0) && more(0, 65_535));
        assert!(less(65_000, 100));
        assert!(more(100, 65_000));
        assert!(less(0, 32_767) && more(0, 32_768));
        assert_eq!(1u16.wrapping_add(HALF), 32_768);
    }
}
