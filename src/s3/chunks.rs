//! [`Chunks`]: a byte sequence kept as the pieces it arrived in. An object's body comes off
//! the connection as many `Bytes` (the HTTP client's read buffers); joining them into one
//! buffer is a copy of every byte read — the largest avoidable cost of a sequential read.
//! Kept in pieces, a body is cached, sliced and handed to the kernel in one vectored write
//! without ever being copied in user space.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

/// Bytes in pieces. Cloning and slicing share the pieces (reference counts, no copy).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chunks {
    parts: Vec<Bytes>,
    len: usize,
}

impl Chunks {
    /// Nothing.
    pub fn new() -> Self {
        Chunks::default()
    }

    /// Appends `part` (an empty one is dropped).
    pub fn push(&mut self, part: Bytes) {
        if !part.is_empty() {
            self.len += part.len();
            self.parts.push(part);
        }
    }

    /// Appends every piece of `other`.
    pub fn append(&mut self, other: Chunks) {
        self.len += other.len;
        self.parts.extend(other.parts);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in order; none is empty.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The bytes in `range` (clamped to the length), sharing the pieces.
    pub fn slice(&self, range: Range<usize>) -> Chunks {
        let end = range.end.min(self.len);
        let start = range.start.min(end);
        let mut out = Chunks::new();
        let mut at = 0;
        for part in &self.parts {
            let part_end = at + part.len();
            if part_end > start && at < end {
                let from = start.saturating_sub(at);
                let to = part.len().min(end - at);
                out.push(part.slice(from..to));
            }
            if part_end >= end {
                break;
            }
            at = part_end;
        }
        out
    }

    /// One contiguous buffer: free for a single piece, a copy otherwise. For the callers
    /// that need one slice (parsers, hashing, writes to a staging file).
    pub fn to_bytes(&self) -> Bytes {
        match self.parts.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut joined = BytesMut::with_capacity(self.len);
                for part in many {
                    joined.extend_from_slice(part);
                }
                joined.freeze()
            }
        }
    }
}

impl From<Bytes> for Chunks {
    fn from(bytes: Bytes) -> Self {
        let mut chunks = Chunks::new();
        chunks.push(bytes);
        chunks
    }
}

impl From<Vec<u8>> for Chunks {
    fn from(bytes: Vec<u8>) -> Self {
        Chunks::from(Bytes::from(bytes))
    }
}

impl FromIterator<Bytes> for Chunks {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> Self {
        let mut chunks = Chunks::new();
        for part in iter {
            chunks.push(part);
        }
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn abc() -> Chunks {
        ["ab", "", "cde", "f"]
            .into_iter()
            .map(|s| Bytes::from(s.as_bytes().to_vec()))
            .collect()
    }

    /// Empty pieces are dropped and the length counts the rest.
    #[test]
    fn pieces_and_length() {
        let c = abc();
        assert_eq!(c.len(), 6);
        assert_eq!(c.parts().len(), 3);
        assert_eq!(&c.to_bytes()[..], b"abcdef");
    }

    /// Every slice equals the same slice of the joined bytes, across piece boundaries.
    #[test]
    fn slices_match_the_joined_bytes() {
        let c = abc();
        let joined = c.to_bytes();
        for start in 0..=7 {
            for end in start..=8 {
                let s = c.slice(start..end);
                let want = &joined[start.min(6)..end.min(6)];
                assert_eq!(&s.to_bytes()[..], want, "{start}..{end}");
                assert_eq!(s.len(), want.len());
                assert!(s.parts().iter().all(|p| !p.is_empty()));
            }
        }
    }

    /// A single piece is handed out as it is, without a copy.
    #[test]
    fn one_piece_is_not_copied() {
        let b = Bytes::from_static(b"whole");
        let c = Chunks::from(b.clone());
        assert_eq!(c.to_bytes().as_ptr(), b.as_ptr());
        assert_eq!(c.slice(1..3).to_bytes().as_ptr(), b[1..].as_ptr());
    }

    /// Appending keeps order and length.
    #[test]
    fn append_concatenates() {
        let mut c = abc();
        c.append(Chunks::from(b"gh".to_vec()));
        assert_eq!(&c.to_bytes()[..], b"abcdefgh");
        assert_eq!(c.len(), 8);
    }
}
