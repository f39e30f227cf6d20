//! The block cache: fixed-size blocks of objects, in memory, shared by every handle of the
//! mount.
//!
//! A block is `BLOCK_SIZE` bytes of one version of one object: keyed by the object key, its
//! ETag and the block's index, so a replaced object can never be served from the old
//! version's blocks (they simply stop being asked for, and age out). The cache is a
//! byte-bounded LRU (`--cache-size`): inserting past the bound evicts the least recently
//! used blocks. Blocks are [`Chunks`] (the pieces their GET's body arrived in), handed out
//! as zero-copy slices.
//!
//! The kernel's page cache already serves re-reads of a file whose version did not change
//! (the filesystem asks it to keep its pages, `FOPEN_KEEP_CACHE`); this cache serves what
//! the page cache does not hold: other handles' reads, blocks the kernel evicted, and the
//! blocks the prefetcher fetched ahead of the reader.

use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;

use crate::s3::Chunks;

/// The size of one block, and of one ranged GET of the prefetcher.
pub const BLOCK_SIZE: u64 = 8 * 1024 * 1024;

/// Which block: `index` counts [`BLOCK_SIZE`] units from the object's start.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlockKey {
    pub key: Arc<str>,
    pub etag: Arc<str>,
    pub index: u64,
}

/// Byte-bounded LRU of blocks.
#[derive(Debug)]
pub struct BlockCache {
    inner: Mutex<Inner>,
    capacity: u64,
}

#[derive(Debug)]
struct Inner {
    blocks: LruCache<BlockKey, Chunks>,
    bytes: u64,
    hits: u64,
    misses: u64,
}

/// Counters, for `status` and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub blocks: usize,
    pub bytes: u64,
    pub hits: u64,
    pub misses: u64,
}

impl BlockCache {
    /// A cache holding at most `capacity` bytes (0: cache nothing).
    pub fn new(capacity: u64) -> Self {
        BlockCache {
            inner: Mutex::new(Inner {
                blocks: LruCache::unbounded(),
                bytes: 0,
                hits: 0,
                misses: 0,
            }),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain maps and counters, consistent between statements: keep serving after a panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The block, if cached (and marks it recently used).
    pub fn get(&self, key: &BlockKey) -> Option<Chunks> {
        let mut inner = self.lock();
        let found = inner.blocks.get(key).cloned();
        match found {
            Some(_) => inner.hits += 1,
            None => inner.misses += 1,
        }
        found
    }

    /// True when the block is cached (does not count as a use).
    pub fn contains(&self, key: &BlockKey) -> bool {
        self.lock().blocks.contains(key)
    }

    /// Stores a block, evicting the least recently used ones past the capacity. A block
    /// larger than the whole cache is not stored.
    pub fn insert(&self, key: BlockKey, data: Chunks) {
        let size = data.len() as u64;
        if size > self.capacity {
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.blocks.put(key, data) {
            inner.bytes -= old.len() as u64;
        }
        inner.bytes += size;
        while inner.bytes > self.capacity {
            match inner.blocks.pop_lru() {
                Some((_, evicted)) => inner.bytes -= evicted.len() as u64,
                None => break,
            }
        }
    }

    pub fn stats(&self) -> CacheStats {
        let inner = self.lock();
        CacheStats {
            blocks: inner.blocks.len(),
            bytes: inner.bytes,
            hits: inner.hits,
            misses: inner.misses,
        }
    }
}

/// The default `--cache-size` for a machine with `memory` bytes of RAM: 1/512 of it, within
/// 16..=64 MiB. Small on purpose: the kernel's page cache holds what was read (and does not
/// count against the daemon), so this cache only has to carry the prefetcher's blocks and
/// other handles' re-reads; a bounded daemon matters more on a small instance.
pub fn default_cache_size(memory: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    (memory / 512).clamp(16 * MIB, 64 * MIB)
}

/// The machine's RAM in bytes (`MemTotal` of `/proc/meminfo`), if it can be read.
pub fn machine_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(index: u64) -> BlockKey {
        BlockKey {
            key: Arc::from("k"),
            etag: Arc::from("\"e\""),
            index,
        }
    }

    #[test]
    fn evicts_least_recently_used_past_the_byte_bound() {
        let cache = BlockCache::new(10);
        cache.insert(key(0), Chunks::from(vec![0; 4]));
        cache.insert(key(1), Chunks::from(vec![1; 4]));
        assert!(cache.get(&key(0)).is_some()); // 0 is now the most recent
        cache.insert(key(2), Chunks::from(vec![2; 4]));
        assert!(cache.contains(&key(0)));
        assert!(!cache.contains(&key(1)));
        assert!(cache.contains(&key(2)));
        assert_eq!(cache.stats().bytes, 8);
    }

    #[test]
    fn versions_do_not_mix() {
        let cache = BlockCache::new(100);
        cache.insert(key(0), Chunks::from(b"old".to_vec()));
        let other = BlockKey {
            etag: Arc::from("\"new\""),
            ..key(0)
        };
        assert!(cache.get(&other).is_none());
        assert_eq!(cache.get(&key(0)).unwrap().to_bytes().as_ref(), b"old");
        let s = cache.stats();
        assert_eq!((s.hits, s.misses), (1, 1));
    }

    #[test]
    fn replacing_a_block_keeps_the_byte_count_right() {
        let cache = BlockCache::new(100);
        cache.insert(key(0), Chunks::from(vec![0; 30]));
        cache.insert(key(0), Chunks::from(vec![0; 20]));
        assert_eq!(cache.stats().bytes, 20);
        cache.insert(key(1), Chunks::from(vec![0; 200]));
        assert!(!cache.contains(&key(1)), "larger than the cache");
    }

    #[test]
    fn default_size_follows_memory_within_bounds() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(default_cache_size(1024 * MIB), 16 * MIB);
        assert_eq!(default_cache_size(16 * 1024 * MIB), 32 * MIB);
        assert_eq!(default_cache_size(256 * 1024 * MIB), 64 * MIB);
    }
}
