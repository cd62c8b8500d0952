//! A header field: a bit range inside one big-endian 32-bit word.

/// A bit field of a TIPC header: `width` bits starting at bit `shift` (bit 0 = least significant)
/// of big-endian word `word`. This is the spec's `wN[a:b]` notation as a value: `wN[a:b]` is
/// `Field::new(N, a, b - a + 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Word index; the word starts at byte `4 * word`.
    pub word: usize,
    /// Position of the lowest bit.
    pub shift: u32,
    /// Number of bits, 1..=32.
    pub width: u32,
}

impl Field {
    /// The field `w{word}[{shift}:{shift + width - 1}]`.
    pub const fn new(word: usize, shift: u32, width: u32) -> Self {
        Self { word, shift, width }
    }

    /// A whole word.
    pub const fn word(word: usize) -> Self {
        Self::new(word, 0, 32)
    }

    /// Mask of the field's value once shifted down to bit 0.
    pub const fn mask(self) -> u32 {
        if self.width >= 32 {
            u32::MAX
        } else {
            (1u32 << self.width) - 1
        }
    }

    /// Extracts this field from a host-order word.
    pub const fn extract(self, word: u32) -> u32 {
        (word >> self.shift) & self.mask()
    }

    /// Returns `word` with this field replaced by `value` (excess high bits of `value` are cut).
    pub const fn insert(self, word: u32, value: u32) -> u32 {
        let m = self.mask() << self.shift;
        (word & !m) | ((value << self.shift) & m)
    }

    /// Byte offset just past the word holding this field.
    pub const fn end(self) -> usize {
        (self.word + 1) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_and_insert() {
        let f = Field::new(1, 15, 13);
        assert_eq!(f.mask(), 0x1fff);
        assert_eq!(f.extract(0x07ff_da57), 0xfff);
        assert_eq!(f.insert(0, 0xfff), 0x07ff_8000);
        assert_eq!(Field::word(3).mask(), u32::MAX);
        assert_eq!(Field::word(3).insert(5, 7), 7);
        assert_eq!(f.end(), 8);
    }
}
