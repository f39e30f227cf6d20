//! [`ChunkMap`]: which parts of a staged file are on the local disk, which of them changed,
//! and which are still only in the object the file was opened from (its *base*).
//!
//! Editing a large object must not cost its whole size, on the disk or on the wire:
//! appending a line to a 10 GiB log must fetch about one part and send about one part. So
//! the local copy is sparse. The file is cut into chunks of the first part's size; a chunk is
//!
//! - [`Chunk::Absent`]: its bytes are the base's, not fetched (they are fetched, with
//!   `If-Match` on the base's ETag, the first time a read or a partial write needs them);
//! - [`Chunk::Clean`]: fetched, unchanged;
//! - [`Chunk::Dirty`]: written (or new, past the base's end).
//!
//! The base's bytes are valid up to `base_limit`: its size, lowered by every truncation
//! below it (bytes cut off are gone even if the file grows again; the sparse file reads
//! zeros there). So a chunk's *base part* is `[start, min(end, base_limit))`, and only that
//! is ever fetched.
//!
//! At upload, parts follow the multipart schedule (chunk-sized, doubling every 900 parts,
//! so a part is always whole chunks). A part with no dirty chunk that ends within
//! `base_limit` is copied inside S3 (UploadPartCopy from the base, pinned to its ETag); any
//! other part is sent from the local copy, its absent chunks fetched first. This is s3fs's
//! "mix upload", with the chunk as the unit of both fetching and dirtiness.
//!
//! The lowest byte changed since the base (`changed_from`) tells an append from an edit:
//! chunk states cannot, since the chunk holding the base's end turns dirty when bytes are
//! added after it. A file whose every change lies at or past the base's end, its base
//! whole, is the base with bytes appended ([`ChunkMap::appended`]): on a directory bucket
//! those bytes alone can go up (`--incremental-upload`).
//!
//! Pure bookkeeping: no I/O here (`staged` does it).

use std::ops::Range;

/// What the local copy holds of one chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Chunk {
    Absent,
    Clean,
    Dirty,
}

/// Where the bytes of one part of an upload come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartSource {
    /// UploadPartCopy of this range of the base.
    Base,
    /// UploadPart from the local copy (its absent chunks fetched first).
    Local,
}

/// One part of the upload of a staged file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedPart {
    pub number: u32,
    pub range: Range<u64>,
    pub source: PartSource,
}

/// The chunks of one staged file.
#[derive(Clone, Debug)]
pub struct ChunkMap {
    chunk: u64,
    size: u64,
    /// The base's size (what "unchanged" means).
    base_size: u64,
    base_limit: u64,
    /// The lowest byte written, or grown with zeros, since the base (`size` when none).
    changed_from: u64,
    states: Vec<Chunk>,
}

impl ChunkMap {
    /// A file that starts as `base_size` bytes of a base object, none of them local
    /// (`base_size` 0: a new file).
    pub fn new(chunk: u64, base_size: u64) -> Self {
        let chunk = chunk.max(1);
        ChunkMap {
            chunk,
            size: base_size,
            base_size,
            base_limit: base_size,
            changed_from: base_size,
            states: vec![Chunk::Absent; base_size.div_ceil(chunk) as usize],
        }
    }

    /// A new file of `size` bytes, all of them local and changed (no base).
    pub fn all_dirty(chunk: u64, size: u64) -> Self {
        let mut map = ChunkMap::new(chunk, 0);
        map.resize(size);
        map
    }

    /// A file whose bytes `[0, local)` are on disk and equal to the base's, the rest only
    /// in the base (a stream that was uploaded whole, its mirror holding `local` bytes).
    pub fn from_prefix(chunk: u64, base_size: u64, local: u64) -> Self {
        let mut map = ChunkMap::new(chunk, base_size);
        for i in 0..map.states.len() {
            if map.bounds(i).end <= local {
                map.states[i] = Chunk::Clean;
            }
        }
        map
    }

    /// Rebuilt from a journal record: the states, run-length encoded by [`ChunkMap::runs`].
    pub fn from_runs(chunk: u64, size: u64, base_limit: u64, runs: &[(Chunk, u64)]) -> Self {
        let chunk = chunk.max(1);
        let mut states = Vec::new();
        for (state, n) in runs {
            states.extend(std::iter::repeat_n(*state, *n as usize));
        }
        states.resize(size.div_ceil(chunk) as usize, Chunk::Dirty);
        ChunkMap {
            chunk,
            size,
            base_size: base_limit.min(size),
            base_limit: base_limit.min(size),
            // What changed is not recorded: never taken for an append.
            changed_from: 0,
            states,
        }
    }

    /// The states, run-length encoded (for the journal).
    pub fn runs(&self) -> Vec<(Chunk, u64)> {
        let mut runs: Vec<(Chunk, u64)> = Vec::new();
        for state in &self.states {
            match runs.last_mut() {
                Some((s, n)) if s == state => *n += 1,
                _ => runs.push((*state, 1)),
            }
        }
        runs
    }

    pub fn chunk_size(&self) -> u64 {
        self.chunk
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes of the base still part of the file.
    pub fn base_limit(&self) -> u64 {
        self.base_limit
    }

    fn bounds(&self, i: usize) -> Range<u64> {
        let start = i as u64 * self.chunk;
        start..(start + self.chunk).min(self.size)
    }

    /// The base part of chunk `i`: what fetching it reads.
    fn base_part(&self, i: usize) -> Range<u64> {
        let b = self.bounds(i);
        b.start..b.end.min(self.base_limit).max(b.start)
    }

    /// The chunks of the file that `range` overlaps, or would once written (a write past
    /// the end lands in the last chunk too when it starts inside it).
    fn touched(&self, range: &Range<u64>) -> Range<usize> {
        if range.start >= range.end || self.states.is_empty() {
            return 0..0;
        }
        let first = (range.start / self.chunk) as usize;
        let last = (((range.end - 1) / self.chunk) as usize).min(self.states.len() - 1);
        if first > last {
            return 0..0;
        }
        first..last + 1
    }

    /// The byte ranges to fetch from the base before `range` can be read.
    pub fn to_fetch_for_read(&self, range: Range<u64>) -> Vec<(usize, Range<u64>)> {
        self.touched(&(range.start..range.end.min(self.size)))
            .filter(|&i| self.states[i] == Chunk::Absent)
            .map(|i| (i, self.base_part(i)))
            .filter(|(_, r)| !r.is_empty())
            .collect()
    }

    /// The byte ranges to fetch from the base before `range` can be written: those of the
    /// absent chunks the write does not cover whole (a write over a whole chunk's base part
    /// needs nothing fetched).
    pub fn to_fetch_for_write(&self, range: Range<u64>) -> Vec<(usize, Range<u64>)> {
        self.touched(&range)
            .filter(|&i| self.states[i] == Chunk::Absent)
            .map(|i| (i, self.base_part(i)))
            .filter(|(_, r)| !(r.is_empty() || range.start <= r.start && range.end >= r.end))
            .collect()
    }

    /// Chunk `i` was fetched.
    pub fn fetched(&mut self, i: usize) {
        if let Some(state @ Chunk::Absent) = self.states.get_mut(i) {
            *state = Chunk::Clean;
        }
    }

    /// `range` was written (the file grows to its end if it ends past it). Returns whether
    /// a chunk changed state (the journal records states, not every write).
    pub fn written(&mut self, range: Range<u64>) -> bool {
        self.changed_from = self.changed_from.min(range.start);
        if range.end > self.size {
            self.resize(range.end);
        }
        let mut changed = false;
        for i in self.touched(&range) {
            if self.states[i] != Chunk::Dirty {
                self.states[i] = Chunk::Dirty;
                changed = true;
            }
        }
        changed
    }

    /// The file's size is now `size`: cut (the base's bytes past it are gone for good) or
    /// grown with zeros (new, changed chunks).
    pub fn resize(&mut self, size: u64) {
        self.changed_from = self.changed_from.min(size.min(self.size));
        if size < self.size {
            self.base_limit = self.base_limit.min(size);
            self.size = size;
            self.states.truncate(size.div_ceil(self.chunk) as usize);
            // A cut mid-chunk changes the chunk (its end is new).
            if let Some(last) = self.states.last_mut() {
                if size % self.chunk != 0 && *last == Chunk::Clean {
                    *last = Chunk::Dirty;
                }
            }
        } else if size > self.size {
            let old = self.states.len();
            // The chunk that held the old end now holds new zeros after it: changed.
            if self.size % self.chunk != 0 {
                if let Some(last) = self.states.last_mut() {
                    if *last == Chunk::Clean {
                        *last = Chunk::Dirty;
                    }
                }
            }
            self.size = size;
            self.states
                .resize(size.div_ceil(self.chunk) as usize, Chunk::Dirty);
            debug_assert!(self.states.len() >= old);
        }
    }

    /// Every changed chunk is now what S3 holds, in a new base of the same layout.
    pub fn uploaded(&mut self) {
        for state in &mut self.states {
            if *state == Chunk::Dirty {
                *state = Chunk::Clean;
            }
        }
        self.base_limit = self.size;
        self.base_size = self.size;
        self.changed_from = self.size;
    }

    /// The bytes added at the end of an intact, non-empty base, when they are the file's
    /// only change since it: `base_size..size`. `None` for anything else (a write below
    /// the base's end, a cut, a new file, nothing added).
    pub fn appended(&self) -> Option<Range<u64>> {
        let intact = self.base_limit == self.base_size && self.changed_from >= self.base_size;
        (intact && self.base_size > 0 && self.size > self.base_size)
            .then_some(self.base_size..self.size)
    }

    /// True when no chunk differs from the base and the size is the base's.
    #[cfg(test)]
    pub fn is_clean(&self) -> bool {
        self.base_limit == self.base_size
            && self.size == self.base_size
            && !self.states.contains(&Chunk::Dirty)
    }

    /// True when every byte of the file is on the local disk.
    pub fn all_local(&self) -> bool {
        (0..self.states.len())
            .all(|i| self.states[i] != Chunk::Absent || self.base_part(i).is_empty())
    }

    /// The parts of an upload of the file, `part_size(n)` giving the size of part `n`
    /// (1-based; whole chunks). Empty for an empty file.
    pub fn plan(&self, part_size: impl Fn(u32) -> u64) -> Vec<PlannedPart> {
        let mut parts = Vec::new();
        let mut start = 0;
        let mut number = 1;
        while start < self.size {
            let end = (start + part_size(number).max(self.chunk)).min(self.size);
            let unchanged = self
                .touched(&(start..end))
                .all(|i| self.states[i] != Chunk::Dirty);
            let source = if unchanged && end <= self.base_limit {
                PartSource::Base
            } else {
                PartSource::Local
            };
            parts.push(PlannedPart {
                number,
                range: start..end,
                source,
            });
            start = end;
            number += 1;
        }
        parts
    }

    /// What must be fetched before part `range` can be sent from the local copy.
    pub fn to_fetch_for_part(&self, range: Range<u64>) -> Vec<(usize, Range<u64>)> {
        self.to_fetch_for_read(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: u64 = 10;

    fn ranges(v: Vec<(usize, Range<u64>)>) -> Vec<Range<u64>> {
        v.into_iter().map(|(_, r)| r).collect()
    }

    /// An append to a large base needs only the last chunk fetched, and uploads all but
    /// the last part from the base.
    #[test]
    fn an_append_fetches_and_sends_one_chunk() {
        let mut map = ChunkMap::new(C, 95);
        assert_eq!(ranges(map.to_fetch_for_write(95..97)), vec![90..95]);
        map.fetched(9);
        map.written(95..97);
        assert_eq!(map.size(), 97);
        let plan = map.plan(|_| C);
        assert_eq!(plan.len(), 10);
        assert!(plan[..9].iter().all(|p| p.source == PartSource::Base));
        assert_eq!(plan[9].source, PartSource::Local);
        assert_eq!(plan[9].range, 90..97);
    }

    /// Bytes written only at or past the base's end are an append (they alone could go
    /// up); after an upload the next append starts at the new end.
    #[test]
    fn writes_past_the_base_end_are_an_append() {
        let mut map = ChunkMap::new(C, 95);
        assert_eq!(map.appended(), None, "nothing added");
        map.fetched(9);
        map.written(95..97);
        map.written(97..120);
        assert_eq!(map.appended(), Some(95..120));
        map.uploaded();
        assert_eq!(map.appended(), None);
        map.written(120..125);
        assert_eq!(map.appended(), Some(120..125));
    }

    /// A write below the base's end, a cut (even one grown back), or a journal's
    /// rebuilt map is not an append; growing with zeros past the end is one.
    #[test]
    fn edits_below_the_end_cuts_and_recoveries_are_not_appends() {
        let mut below = ChunkMap::new(C, 95);
        below.written(95..100);
        below.written(94..95);
        assert_eq!(below.appended(), None);

        let mut cut = ChunkMap::new(C, 95);
        cut.resize(90);
        cut.written(90..120);
        assert_eq!(cut.appended(), None);

        let mut grown = ChunkMap::new(C, 95);
        grown.resize(100);
        assert_eq!(grown.appended(), Some(95..100));

        let recovered = ChunkMap::from_runs(C, 100, 95, &[(Chunk::Clean, 9), (Chunk::Dirty, 1)]);
        assert_eq!(recovered.appended(), None);

        let mut new = ChunkMap::all_dirty(C, 0);
        new.written(0..10);
        assert_eq!(new.appended(), None, "a new file has no base to append to");
    }

    /// A write covering a chunk's base part whole fetches nothing; a partial one fetches
    /// the chunk.
    #[test]
    fn whole_chunk_writes_fetch_nothing() {
        let map = ChunkMap::new(C, 30);
        assert!(map.to_fetch_for_write(10..20).is_empty());
        assert!(map.to_fetch_for_write(5..25) == vec![(0, 0..10), (2, 20..30)]);
        assert_eq!(ranges(map.to_fetch_for_read(12..13)), vec![10..20]);
    }

    /// Truncation lowers what the base supplies: bytes cut off are zeros if the file grows
    /// again, and the part holding the cut is sent from the local copy.
    #[test]
    fn truncate_then_grow_never_resurrects_cut_bytes() {
        let mut map = ChunkMap::new(C, 50);
        map.resize(25);
        assert_eq!(map.base_limit(), 25);
        map.resize(40);
        assert_eq!(
            ranges(map.to_fetch_for_read(0..40)),
            vec![0..10, 10..20, 20..25]
        );
        let plan = map.plan(|_| C);
        let sources: Vec<_> = plan.iter().map(|p| p.source.clone()).collect();
        assert_eq!(
            sources,
            vec![
                PartSource::Base,
                PartSource::Base,
                PartSource::Local,
                PartSource::Local
            ]
        );
    }

    /// A cut at a part boundary keeps every remaining part a copy, the last one shorter.
    #[test]
    fn a_cut_inside_the_base_keeps_copying() {
        let mut map = ChunkMap::new(C, 50);
        map.resize(35);
        let plan = map.plan(|_| C);
        assert_eq!(plan.last().unwrap().range, 30..35);
        assert!(plan.iter().all(|p| p.source == PartSource::Base));
        assert!(!map.is_clean());
    }

    /// A new file is all local and all changed; after its upload it is clean.
    #[test]
    fn a_new_file_is_local_and_changed_until_uploaded() {
        let mut map = ChunkMap::all_dirty(C, 25);
        assert!(map.all_local());
        assert!(!map.is_clean());
        assert!(map
            .plan(|_| C)
            .iter()
            .all(|p| p.source == PartSource::Local));
        map.uploaded();
        assert!(map.is_clean());
        assert!(map.plan(|_| C).iter().all(|p| p.source == PartSource::Base));
    }

    /// A streamed file's mirror holds its first whole chunks; the rest is the new object's.
    #[test]
    fn a_mirror_prefix_is_local_and_clean() {
        let map = ChunkMap::from_prefix(C, 35, 20);
        assert!(map.is_clean());
        assert_eq!(ranges(map.to_fetch_for_read(0..35)), vec![20..30, 30..35]);
    }

    /// Parts follow the schedule in whole chunks; the run-length form round-trips.
    #[test]
    fn parts_follow_the_schedule_and_runs_round_trip() {
        let mut map = ChunkMap::new(C, 100);
        map.written(42..43);
        let plan = map.plan(|n| if n <= 2 { C } else { 2 * C });
        let bounds: Vec<_> = plan.iter().map(|p| p.range.clone()).collect();
        assert_eq!(bounds, vec![0..10, 10..20, 20..40, 40..60, 60..80, 80..100]);
        assert_eq!(plan[3].source, PartSource::Local);
        let again = ChunkMap::from_runs(C, map.size(), map.base_limit(), &map.runs());
        assert_eq!(again.states, map.states);
    }
}
