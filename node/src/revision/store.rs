//! The chunk store: chunk bytes on disk, named by their BLAKE3 hash.
//!
//! A chunk stored alone ([`ChunkStore::put`]) is a file `<dir>/<first 2 hex digits>/<64
//! hex digits>`, so no directory holds more than 1/256 of the chunks. Chunks stored in a
//! batch ([`ChunkStore::put_many`]: a swarm piece, an upload batch) are appended to a pack
//! file under `<dir>/packs/` (see `packs`), because one inode per 64 KiB chunk made file
//! creation the bottleneck of a swarm download on ext4. A chunk is verified against its
//! hash before it is stored and again every time it is read (the pair of checks
//! STYLE.md asks for), so a corrupt file is never served: it is deleted and reported
//! missing, and the swarm fetches it again. Because reads verify, writes skip the
//! per-chunk fsync: a chunk torn by a power cut is caught at its next read, and a
//! revision is whole only when every chunk reads back verified.
//!
//! One read skips the second check: [`ChunkStore::read_for_peer`] (a piece answer for a
//! peer) trusts a pack this process wrote after verifying it, while the file keeps the
//! inode, length and ctime it had after this process's last append to it. Trust lives
//! in memory only, so after a crash or restart every pack is verified on read again
//! (which is what makes skipping fsync safe), and a pack changed behind the store's
//! back is verified as well. The peer verifies every chunk before storing it, and
//! deployments read through [`ChunkStore::get`], which always verifies, so no
//! unverified byte reaches a deployment. With one `pread` per chunk into the answer,
//! it cut the seed's CPU per GiB served by ~18 % (docs/benchmarks.md, issue 18 item 1).
//!
//! Methods are synchronous and take `&self`; the store is `Send + Sync`, and the caller
//! runs it where it likes (a blocking thread in the node, inline in the simulator).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use fleetmesh_state::model::ids::ChunkHash;
use fleetmesh_state::model::revision::ChunkRef;

/// Largest chunk the store accepts or reads back: fastcdc's largest maximum chunk
/// (16 MiB). It bounds the memory one `get` can take, even for a file some other
/// process grew in the store's directory.
pub const CHUNK_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Prefix of files being written; the rest of the name makes each writer's file unique.
const TEMP_PREFIX: &str = ".tmp-";

/// Why a chunk store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `put` was given bytes whose hash is not the hash it was told.
    #[error("chunk {expected} refused: its bytes hash to {actual} (a peer sent bad data)")]
    HashMismatch {
        /// The hash the chunk was announced under.
        expected: ChunkHash,
        /// BLAKE3 of the bytes received.
        actual: ChunkHash,
    },
    /// `put` was given more bytes than any chunk may hold.
    #[error("chunk {hash} refused: {bytes} bytes is more than the {CHUNK_FILE_BYTES_MAX}-byte chunk limit")]
    TooLarge {
        /// The chunk.
        hash: ChunkHash,
        /// Its length.
        bytes: u64,
    },
    /// The chunk is not held, or its file was corrupt and has been deleted.
    #[error("chunk {0} is not in the store")]
    Missing(ChunkHash),
    /// The file system failed.
    #[error("chunk store i/o on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// Chunks on disk under one directory. See the module doc for the layout and guarantees.
#[derive(Debug)]
pub struct ChunkStore {
    /// The store's root directory.
    dir: PathBuf,
    /// Bytes of chunk files held, kept in step by every put, delete and retain.
    total_bytes: AtomicU64,
    /// Makes temp file names unique between concurrent writers of this process.
    temp_sequence: AtomicU64,
    /// Chunks held in pack files.
    packs: Mutex<packs::PackIndex>,
    /// Number of the next pack file; starts past every numbered pack on disk, so no
    /// two packs ever share a name.
    next_pack_number: AtomicU64,
    /// The pack batches are appended to, if one is open. Locked before `packs` by
    /// whoever takes both.
    appender: Mutex<Option<packs::Appender>>,
    /// Chunk files (not packs) held: while there are none, [`ChunkStore::has`] answers
    /// from the pack index alone instead of a `stat` per chunk (3.5 % of a receiver's
    /// CPU in a swarm download, whose chunks all go into packs).
    chunk_files: AtomicU64,
}

impl ChunkStore {
    /// Opens (creating if needed) the store at `dir`, removes temp files a crash left
    /// behind and counts the bytes held.
    ///
    /// One process owns a store directory: opening it removes every temp file in it.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the directory cannot be created or listed.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
        let store = Self {
            dir: dir.to_path_buf(),
            total_bytes: AtomicU64::new(0),
            temp_sequence: AtomicU64::new(0),
            packs: Mutex::new(packs::PackIndex::default()),
            next_pack_number: AtomicU64::new(0),
            appender: Mutex::new(None),
            chunk_files: AtomicU64::new(0),
        };
        let mut total = store.open_packs()?;
        store.scan(|path, name, length| {
            if name.starts_with(TEMP_PREFIX) {
                fs::remove_file(path).map_err(io_error(path))?;
            } else if parse_chunk_name(name).is_some() {
                total += length;
                store.chunk_files.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })?;
        store.total_bytes.store(total, Ordering::Relaxed);
        Ok(store)
    }

    /// The store's root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores a chunk after checking that `bytes` hash to `hash`.
    ///
    /// Returns `true` when the chunk was written, `false` when it was already held. The
    /// file appears atomically: written under a temp name in its final directory, then
    /// linked into place only if no file has that name yet (a plain rename would replace
    /// silently and make two concurrent puts of one chunk count its bytes twice).
    ///
    /// # Errors
    /// [`StoreError::HashMismatch`] or [`StoreError::TooLarge`] (nothing is written), or
    /// [`StoreError::Io`].
    pub fn put(&self, hash: ChunkHash, bytes: &[u8]) -> Result<bool, StoreError> {
        let length = bytes.len() as u64;
        if length > CHUNK_FILE_BYTES_MAX {
            return Err(StoreError::TooLarge { hash, bytes: length });
        }
        let actual = ChunkHash::of(bytes);
        if actual != hash {
            return Err(StoreError::HashMismatch { expected: hash, actual });
        }
        let path = self.chunk_path(hash);
        if path.exists() {
            return Ok(false);
        }
        let parent = path.parent().expect("a chunk path always has its prefix directory");
        fs::create_dir_all(parent).map_err(io_error(parent))?;
        let sequence = self.temp_sequence.fetch_add(1, Ordering::Relaxed);
        let temp = parent.join(format!("{TEMP_PREFIX}{hash}-{}-{sequence}", std::process::id()));
        let written = File::create_new(&temp).and_then(|mut file| file.write_all(bytes));
        let linked = written.and_then(|()| match fs::hard_link(&temp, &path) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(error),
        });
        if let Err(error) = fs::remove_file(&temp) {
            // Harmless: the chunk (if linked) is in place, and `open` removes temp files.
            tracing::warn!(path = %temp.display(), %error, "cannot remove a chunk temp file");
        }
        let stored = linked.map_err(io_error(&path))?;
        if stored {
            self.total_bytes.fetch_add(length, Ordering::Relaxed);
            self.chunk_files.fetch_add(1, Ordering::Relaxed);
        }
        Ok(stored)
    }

    /// Stores a batch of chunks in a pack file after checking every chunk's bytes
    /// against its hash; chunks already held are skipped. Returns how many were new.
    ///
    /// All or nothing on bad input: if any chunk does not match its hash or is too
    /// large, nothing is written. A write that fails (a full disk) leaves the pack as it
    /// was before the batch.
    ///
    /// # Errors
    /// [`StoreError::HashMismatch`] or [`StoreError::TooLarge`] (nothing is written), or
    /// [`StoreError::Io`].
    pub fn put_many(&self, chunks: &[(ChunkHash, &[u8])]) -> Result<usize, StoreError> {
        for (hash, bytes) in chunks {
            let length = bytes.len() as u64;
            if length > CHUNK_FILE_BYTES_MAX {
                return Err(StoreError::TooLarge { hash: *hash, bytes: length });
            }
            let actual = ChunkHash::of(bytes);
            if actual != *hash {
                return Err(StoreError::HashMismatch { expected: *hash, actual });
            }
        }
        let mut seen = BTreeSet::new();
        let fresh: Vec<(ChunkHash, &[u8])> =
            chunks.iter().copied().filter(|(hash, _)| seen.insert(*hash) && !self.has(*hash)).collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        self.store_pack(&fresh)
    }

    fn subtract(&self, length: u64) {
        // Saturating: a file changed behind the store's back must not wrap the count.
        let _ = self
            .total_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |total| Some(total.saturating_sub(length)));
    }

    /// Reads a chunk and checks it against its hash.
    ///
    /// A file whose bytes do not match (bit rot, a torn write, tampering) is deleted and
    /// reported as [`StoreError::Missing`], so the caller fetches it again.
    ///
    /// # Errors
    /// [`StoreError::Missing`], or [`StoreError::Io`] for other read failures.
    pub fn get(&self, hash: ChunkHash) -> Result<Bytes, StoreError> {
        if let Some(packed) = self.get_packed(hash) {
            return packed;
        }
        let path = self.chunk_path(hash);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(StoreError::Missing(hash)),
            Err(error) => return Err(StoreError::Io { path, source: error }),
        };
        let length = file.metadata().map_err(io_error(&path))?.len();
        let mut bytes = Vec::with_capacity(usize::try_from(length.min(CHUNK_FILE_BYTES_MAX)).unwrap_or(0));
        // One byte past the limit is enough to tell an oversized file from a full one.
        (&mut file).take(CHUNK_FILE_BYTES_MAX + 1).read_to_end(&mut bytes).map_err(io_error(&path))?;
        if bytes.len() as u64 <= CHUNK_FILE_BYTES_MAX && ChunkHash::of(&bytes) == hash {
            return Ok(Bytes::from(bytes));
        }
        tracing::warn!(chunk = %hash, path = %path.display(), "corrupt chunk file deleted; it will be fetched again");
        self.delete(&path, length)?;
        Err(StoreError::Missing(hash))
    }

    /// True when a file for the chunk exists. This does not verify it; [`Self::get`] does.
    pub fn has(&self, hash: ChunkHash) -> bool {
        self.lock_packs().chunks.contains_key(&hash)
            || (self.chunk_files.load(Ordering::Relaxed) > 0 && self.chunk_path(hash).exists())
    }

    /// Bytes of the distinct chunks of `chunks` the store has (what a node reports as
    /// held of a revision).
    pub fn held_bytes(&self, chunks: &[ChunkRef]) -> u64 {
        let mut seen = BTreeSet::new();
        chunks
            .iter()
            .filter(|chunk| seen.insert(chunk.hash()) && self.has(chunk.hash()))
            .map(|chunk| u64::from(chunk.len()))
            .sum()
    }

    /// The distinct chunks of `chunks` the store lacks, in first-appearance order.
    pub fn missing(&self, chunks: &[ChunkRef]) -> Vec<ChunkRef> {
        let mut seen = BTreeSet::new();
        chunks.iter().filter(|chunk| seen.insert(chunk.hash()) && !self.has(chunk.hash())).copied().collect()
    }

    /// Forgets every chunk of `chunks` whose pack file is gone (deleted behind the
    /// store's back), so they count as missing and are fetched again; returns how many.
    /// One `stat` per distinct pack, no reads: bytes are verified when read.
    pub fn forget_vanished(&self, chunks: &[ChunkRef]) -> usize {
        let slots: Vec<(ChunkHash, packs::Slot, String)> = {
            let index = self.lock_packs();
            chunks
                .iter()
                .filter_map(|chunk| {
                    let slot = *index.chunks.get(&chunk.hash())?;
                    Some((chunk.hash(), slot, index.packs.get(&slot.pack)?.clone()))
                })
                .collect()
        };
        let mut present: std::collections::BTreeMap<String, bool> = std::collections::BTreeMap::new();
        let mut forgotten = 0;
        for (hash, slot, name) in slots {
            let exists = *present.entry(name).or_insert_with_key(|name| packs::dir(&self.dir).join(name).exists());
            if !exists {
                self.drop_slot(hash, slot);
                forgotten += 1;
            }
        }
        forgotten
    }

    /// Deletes every chunk not in `keep` (garbage collection) and returns the bytes freed.
    ///
    /// The caller builds `keep` from every revision it must still hold or serve,
    /// including revisions being fetched or pushed: a chunk put during `retain` that is
    /// not in `keep` may be deleted. Temp files and foreign files are left alone.
    ///
    /// # Errors
    /// [`StoreError::Io`] when listing or deleting fails; chunks already deleted stay
    /// deleted and accounted for.
    pub fn retain(&self, keep: &BTreeSet<ChunkHash>) -> Result<u64, StoreError> {
        let mut removed = self.retain_packs(keep)?;
        self.scan(|path, name, length| {
            if parse_chunk_name(name).is_some_and(|hash| !keep.contains(&hash)) && self.delete(path, length)? {
                removed += length;
            }
            Ok(())
        })?;
        Ok(removed)
    }

    /// Bytes of all chunk files held.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes.load(Ordering::Relaxed)
    }

    fn chunk_path(&self, hash: ChunkHash) -> PathBuf {
        let hex = hash.to_hex();
        self.dir.join(&hex[..2]).join(hex)
    }

    /// Removes a chunk file of `length` bytes; returns false if it was already gone (a
    /// concurrent delete won and did the accounting).
    fn delete(&self, path: &Path, length: u64) -> Result<bool, StoreError> {
        match fs::remove_file(path) {
            Ok(()) => {
                self.subtract(length);
                // Saturating, as `subtract`: a file other than one this store counted.
                let _ =
                    self.chunk_files.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |files| files.checked_sub(1));
                Ok(true)
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(StoreError::Io { path: path.to_path_buf(), source: error }),
        }
    }

    /// Calls `each(path, file name, length)` for every file in the prefix directories.
    fn scan(&self, mut each: impl FnMut(&Path, &str, u64) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let listing = fs::read_dir(&self.dir).map_err(io_error(&self.dir))?;
        for prefix in listing {
            let prefix = prefix.map_err(io_error(&self.dir))?;
            let is_prefix_dir = prefix.file_name().to_str().is_some_and(|name| name.len() == 2)
                && prefix.file_type().is_ok_and(|file_type| file_type.is_dir());
            if !is_prefix_dir {
                continue;
            }
            let prefix_path = prefix.path();
            for file in fs::read_dir(&prefix_path).map_err(io_error(&prefix_path))? {
                let file = file.map_err(io_error(&prefix_path))?;
                let path = file.path();
                let Some(name) = file.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let length = match file.metadata() {
                    Ok(metadata) => metadata.len(),
                    // Deleted between listing and stat: nothing to do for it.
                    Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(StoreError::Io { path, source: error }),
                };
                each(&path, &name, length)?;
            }
        }
        Ok(())
    }
}

/// The hash a chunk file name stands for, if it is one (64 lowercase hex digits).
fn parse_chunk_name(name: &str) -> Option<ChunkHash> {
    let is_lower_hex = name.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
    if is_lower_hex {
        name.parse().ok()
    } else {
        None
    }
}

mod packed;
mod packs;

#[cfg(test)]
mod tests;
