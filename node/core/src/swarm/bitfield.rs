//! A compact, fixed-length set of indices: the have-set of pieces a node advertises.
//!
//! A 1 GiB revision has about 1024 pieces, so a have-set is 16 machine words (128
//! bytes) and one travels on every piece response. On the wire it is a string,
//! `"<len>:<hex>"`, where the hex is the bytes of the set with bit `i` in byte `i / 8`
//! at position `i % 8` (least significant bit first). Bits past `len` must be zero, so
//! every set has exactly one text form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const WORD_BITS: usize = 64;

/// A set of indices in `0..len`, stored as bits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Bitfield {
    /// Number of valid bits.
    len: usize,
    /// `len.div_ceil(64)` words; bits at and past `len` are always zero.
    words: Vec<u64>,
}

/// Why a text is not a bitfield.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitfieldParseError {
    /// The text is not `<len>:<hex>`.
    #[error("bitfield {0:?} is not of the form <len>:<hex>")]
    Shape(String),
    /// The hex part has the wrong length or a non-hex digit.
    #[error("bitfield of {len} bits needs {expected} hex digits of bytes, got {text:?}")]
    Hex {
        /// The declared number of bits.
        len: usize,
        /// Hex digits a set of `len` bits takes.
        expected: usize,
        /// The offending hex text.
        text: String,
    },
    /// A bit at or past `len` is set.
    #[error("bitfield of {len} bits has a bit set past its end")]
    TrailingBits {
        /// The declared number of bits.
        len: usize,
    },
}

impl Bitfield {
    /// An empty set over `0..len`.
    pub fn new(len: usize) -> Self {
        Self { len, words: vec![0; len.div_ceil(WORD_BITS)] }
    }

    /// The full set `0..len` (what a seed advertises).
    pub fn full(len: usize) -> Self {
        let mut bitfield = Self { len, words: vec![u64::MAX; len.div_ceil(WORD_BITS)] };
        bitfield.clear_tail();
        bitfield
    }

    /// Number of indices the set ranges over (not the number of members).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the set ranges over no index at all (`len == 0`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when `index` is a member; false for any index past the end.
    pub fn get(&self, index: usize) -> bool {
        index < self.len && self.words[index / WORD_BITS] & (1 << (index % WORD_BITS)) != 0
    }

    /// Adds `index`.
    ///
    /// # Panics
    /// When `index >= len`: callers validate indices that come from the network.
    pub fn set(&mut self, index: usize) {
        assert!(index < self.len, "bit {index} is past the end of a {}-bit field", self.len);
        self.words[index / WORD_BITS] |= 1 << (index % WORD_BITS);
    }

    /// Removes `index`.
    ///
    /// # Panics
    /// When `index >= len`.
    pub fn clear(&mut self, index: usize) {
        assert!(index < self.len, "bit {index} is past the end of a {}-bit field", self.len);
        self.words[index / WORD_BITS] &= !(1 << (index % WORD_BITS));
    }

    /// Number of members.
    pub fn count(&self) -> usize {
        self.words.iter().map(|word| word.count_ones() as usize).sum()
    }

    /// True when every index in `0..len` is a member.
    pub fn is_full(&self) -> bool {
        self.count() == self.len
    }

    /// Members in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(word_index, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                Some(word_index * WORD_BITS + bit)
            })
        })
    }

    /// The words, for set algebra inside the swarm (bits past `len` are zero).
    pub(crate) fn words(&self) -> &[u64] {
        &self.words
    }

    fn clear_tail(&mut self) {
        let used = self.len % WORD_BITS;
        if used != 0 {
            if let Some(last) = self.words.last_mut() {
                *last &= (1u64 << used) - 1;
            }
        }
    }

    fn byte_len(&self) -> usize {
        self.len.div_ceil(8)
    }
}

/// The `n`-th member (0-based) of the set whose words are produced by `word_at`, if the
/// set has more than `n` members. Used to pick a uniformly random member of an
/// intersection without building it.
pub(crate) fn nth_member(words: usize, word_at: impl Fn(usize) -> u64, mut n: usize) -> Option<usize> {
    for index in 0..words {
        let mut word = word_at(index);
        let ones = word.count_ones() as usize;
        if n >= ones {
            n -= ones;
            continue;
        }
        for _ in 0..n {
            word &= word - 1;
        }
        return Some(index * WORD_BITS + word.trailing_zeros() as usize);
    }
    None
}

impl fmt::Display for Bitfield {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes: Vec<u8> = self.words.iter().flat_map(|word| word.to_le_bytes()).take(self.byte_len()).collect();
        write!(formatter, "{}:{}", self.len, hex::encode(bytes))
    }
}

impl fmt::Debug for Bitfield {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Bitfield({}/{})", self.count(), self.len)
    }
}

impl FromStr for Bitfield {
    type Err = BitfieldParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let shape = || BitfieldParseError::Shape(text.chars().take(40).collect());
        let (len_text, hex_text) = text.split_once(':').ok_or_else(shape)?;
        let len: usize = len_text.parse().map_err(|_| shape())?;
        let mut bitfield = Self::new(len);
        let expected = bitfield.byte_len() * 2;
        let hex_error = || BitfieldParseError::Hex { len, expected, text: hex_text.chars().take(40).collect() };
        if hex_text.len() != expected {
            return Err(hex_error());
        }
        let bytes = hex::decode(hex_text).map_err(|_| hex_error())?;
        for (word, bytes) in bitfield.words.iter_mut().zip(bytes.chunks(8)) {
            let mut buffer = [0u8; 8];
            buffer[..bytes.len()].copy_from_slice(bytes);
            *word = u64::from_le_bytes(buffer);
        }
        let before = bitfield.count();
        bitfield.clear_tail();
        if bitfield.count() != before {
            return Err(BitfieldParseError::TrailingBits { len });
        }
        Ok(bitfield)
    }
}

impl Serialize for Bitfield {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Bitfield {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_count_iter_agree() {
        // A 130-bit field (three words, the last partly used) with a few members:
        // get, count, iter and is_full must agree on them.
        let mut bits = Bitfield::new(130);
        for index in [0, 63, 64, 129] {
            bits.set(index);
        }
        assert!(bits.get(63) && bits.get(129) && !bits.get(1) && !bits.get(500));
        assert_eq!(bits.count(), 4);
        assert_eq!(bits.iter().collect::<Vec<_>>(), vec![0, 63, 64, 129]);
        bits.clear(63);
        assert_eq!(bits.iter().collect::<Vec<_>>(), vec![0, 64, 129]);
        assert!(!bits.is_full());
        assert!(Bitfield::full(130).is_full());
        assert_eq!(Bitfield::full(130).count(), 130);
    }

    #[test]
    fn text_form_round_trips_and_rejects_garbage() {
        // A field serialized through serde_json comes back equal; malformed texts
        // (wrong shape, wrong hex length, a bit past the end) are refused by name.
        let mut bits = Bitfield::new(12);
        bits.set(0);
        bits.set(9);
        let json = serde_json::to_string(&bits).expect("serializes");
        assert_eq!(json, "\"12:0102\"");
        assert_eq!(serde_json::from_str::<Bitfield>(&json).expect("parses"), bits);
        assert!(matches!("12".parse::<Bitfield>(), Err(BitfieldParseError::Shape(_))));
        assert!(matches!("12:01".parse::<Bitfield>(), Err(BitfieldParseError::Hex { .. })));
        assert!(matches!("12:zz02".parse::<Bitfield>(), Err(BitfieldParseError::Hex { .. })));
        assert_eq!("12:0110".parse::<Bitfield>(), Err(BitfieldParseError::TrailingBits { len: 12 }));
        assert_eq!("0:".parse::<Bitfield>().expect("empty field"), Bitfield::new(0));
    }

    #[test]
    fn nth_member_walks_across_words() {
        // Members 3, 70 and 128 spread over three words: nth_member finds each by rank
        // and reports None past the last.
        let mut bits = Bitfield::new(200);
        for index in [3, 70, 128] {
            bits.set(index);
        }
        let words = bits.words();
        let found: Vec<_> = (0..4).map(|n| nth_member(words.len(), |i| words[i], n)).collect();
        assert_eq!(found, vec![Some(3), Some(70), Some(128), None]);
    }
}
