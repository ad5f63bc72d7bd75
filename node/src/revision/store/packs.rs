//! Pack files: many chunks in one file, for writers that store chunks in batches (a
//! swarm piece, an upload batch).
//!
//! Why: on ext4, creating a file costs an inode allocation, and after many files were
//! deleted (garbage collection, an earlier revision, a test run) the allocator scans
//! past "recently deleted" inodes for each new one. Measured with `bench_swarm` on a
//! 1 GiB revision: one file per chunk cost the receiver 10.4 CPU-s and the fetch ran at
//! 64 MiB/s; a pack per ~1 MiB piece (16 times fewer inodes) cost 5.1–5.7 CPU-s and
//! ran at 92–98 MiB/s. A pack per piece still spent 6–9 % of the receiver's CPU in
//! inode allocation, so batches are now appended to one open pack until it holds
//! [`PACK_BYTES_TARGET`] (see docs/benchmarks.md).
//!
//! A pack is `<store>/packs/<number, 16 hex digits>.pack`: records `[hash 32][len u32 LE]
//! [bytes]`. Two kinds of writer:
//! - [`Appender`]: the store's one open pack. Batches are appended to it one at a time
//!   (the store holds a lock across each append and its indexing), and a failed append
//!   cuts the file back to its last whole record. A crash can still leave a torn last
//!   record; the scan at open stops there and the chunks after it are fetched again.
//! - [`write`]: a whole pack under a temp name, linked into place (garbage collection's
//!   rewrite of a partly kept pack).
//!
//! Numbers are never reused (the store counts on from the highest on disk) and a pack
//! is created with `O_EXCL`, so no write can replace a pack the index points at. (Packs
//! used to be named after their chunk hashes: two writers of one piece then wrote one
//! file, and collecting the duplicate's index entry deleted the chunks of the other.)
//! Packs found at open are never appended to.
//!
//! Records are verified like chunk files: on every read, except a peer's piece read
//! from a pack this process wrote and verified and that still has its [`Stamp`] (taken
//! again after each append). The index (hash → pack, offset, length) lives in memory
//! and is rebuilt at open from the record headers; a header that does not fit its pack
//! ends that pack's scan (what follows is lost and fetched again).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, IoSlice, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fleetmesh_state::model::ids::{ChunkHash, Hash32};

use super::{io_error, StoreError, CHUNK_FILE_BYTES_MAX, TEMP_PREFIX};

/// Bytes of a record header: the chunk hash and its length.
const RECORD_HEADER_BYTES: u64 = 36;

/// Where one chunk lives in a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    /// Index key of the pack in [`PackIndex::packs`].
    pub(super) pack: u64,
    /// Offset of the chunk's bytes (after its header).
    pub(super) offset: u64,
    /// Chunk length in bytes.
    pub(super) len: u32,
}

/// Which pack holds which chunk.
#[derive(Debug, Default)]
pub(super) struct PackIndex {
    /// Pack key → file name (without directory).
    pub(super) packs: BTreeMap<u64, String>,
    /// Chunk → its slot; a chunk stored twice (two concurrent batches) is indexed once.
    pub(super) chunks: BTreeMap<ChunkHash, Slot>,
    /// Packs this process wrote after verifying every chunk in them, with their stamp
    /// then (see [`Stamp`]); never a pack found at open or rewritten by `retain`.
    pub(super) verified: BTreeMap<u64, Stamp>,
    /// Next pack key.
    next_pack: u64,
}

impl PackIndex {
    /// Registers a pack file and returns its key.
    pub(super) fn add_pack(&mut self, name: String) -> u64 {
        let key = self.next_pack;
        self.next_pack += 1;
        self.packs.insert(key, name);
        key
    }
}

/// The packs directory of a store.
pub(super) fn dir(store: &Path) -> PathBuf {
    store.join("packs")
}

/// Reads the record headers of one pack: (hash, offset of bytes, len) per record, up to
/// the first header that does not fit the file.
pub(super) fn scan(path: &Path) -> Result<Vec<(ChunkHash, u64, u32)>, StoreError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    let length = file.metadata().map_err(io_error(path))?.len();
    let mut records = Vec::new();
    let mut offset = 0u64;
    let mut header = [0u8; RECORD_HEADER_BYTES as usize];
    // Bounded: each turn advances `offset` by at least the header size, up to `length`.
    while offset + RECORD_HEADER_BYTES <= length {
        file.read_exact(&mut header).map_err(io_error(path))?;
        let hash = Hash32(header[..32].try_into().expect("32 bytes"));
        let len = u32::from_le_bytes(header[32..].try_into().expect("4 bytes"));
        let start = offset + RECORD_HEADER_BYTES;
        if u64::from(len) > CHUNK_FILE_BYTES_MAX || start + u64::from(len) > length {
            tracing::warn!(pack = %path.display(), offset, "pack ends in a torn record; the rest is ignored");
            break;
        }
        records.push((hash, start, len));
        offset = start + u64::from(len);
        // Skipped, not read: the bytes are verified when a chunk is read.
        file.seek(SeekFrom::Start(offset)).map_err(io_error(path))?;
    }
    Ok(records)
}

/// Writes `chunks` as one pack under a temp name, then links it into place under the
/// first name `next_name` gives that no file has yet; returns that name and the offset
/// of each chunk's bytes.
///
/// Never replaces a pack: the index maps chunks to pack names, and a pack written over
/// another of the same name would be deleted by the garbage collection of either.
pub(super) fn write(
    store: &Path,
    temp_name: &str,
    chunks: &[(ChunkHash, &[u8])],
    next_name: impl FnMut() -> String,
) -> Result<(String, Vec<u64>), StoreError> {
    let packs = dir(store);
    fs::create_dir_all(&packs).map_err(io_error(&packs))?;
    let temp = packs.join(format!("{TEMP_PREFIX}{temp_name}"));
    let written = File::create_new(&temp).and_then(|mut file| write_records(&mut file, 0, chunks));
    let offsets = match written {
        Ok(offsets) => offsets,
        Err(error) => {
            // Best effort: the write error is what the caller needs, and a temp file left
            // behind is removed when the store next opens.
            let _ = fs::remove_file(&temp);
            return Err(StoreError::Io { path: temp, source: error });
        }
    };
    // A hard link never replaces a file.
    let linked = under_free_name(&packs, next_name, |path| fs::hard_link(&temp, path)).map(|(name, ())| name);
    // The pack is linked under its name (or the link failed, which `linked` reports);
    // a temp name left behind is removed when the store next opens.
    let _ = fs::remove_file(&temp);
    Ok((linked?, offsets))
}

/// Bytes past which the store seals its [`Appender`] and starts a new pack with the next
/// batch: a 1 GiB revision takes 16 files rather than one per ~1 MiB piece, and garbage
/// collection rewrites at most this much when a pack holds chunks it keeps and chunks
/// it drops.
pub(super) const PACK_BYTES_TARGET: u64 = 64 << 20;

/// The pack a store appends its batches to.
#[derive(Debug)]
pub(super) struct Appender {
    /// Index key of the pack in [`PackIndex::packs`].
    pub(super) key: u64,
    /// The pack's path (for errors).
    pub(super) path: PathBuf,
    /// Open for writing; its cursor is at `len`.
    pub(super) file: File,
    /// Bytes of whole records written.
    pub(super) len: u64,
}

impl Appender {
    /// Creates an empty pack under the first name from `next_name` that no file has
    /// (`O_EXCL`: never one the index points at) and hands the name to `register`, which
    /// indexes it and returns its key.
    pub(super) fn create(
        store: &Path,
        next_name: impl FnMut() -> String,
        register: impl FnOnce(String) -> u64,
    ) -> Result<Self, StoreError> {
        let packs = dir(store);
        fs::create_dir_all(&packs).map_err(io_error(&packs))?;
        let (name, (path, file)) =
            under_free_name(&packs, next_name, |path| File::create_new(path).map(|file| (path.to_path_buf(), file)))?;
        Ok(Self { key: register(name), path, file, len: 0 })
    }

    /// Appends `chunks` as records; returns the offset of each chunk's bytes and the
    /// pack's [`Stamp`] after the write.
    ///
    /// A write that fails part way is cut back to the last whole record, so the pack
    /// never holds a torn record this process goes on appending after. If even that
    /// fails, the error says so and the caller must stop appending to this pack.
    pub(super) fn append(&mut self, chunks: &[(ChunkHash, &[u8])]) -> Result<(Vec<u64>, Option<Stamp>), AppendError> {
        match write_records(&mut self.file, self.len, chunks) {
            Ok(offsets) => {
                self.len += chunks.iter().map(|(_, bytes)| RECORD_HEADER_BYTES + bytes.len() as u64).sum::<u64>();
                let stamp = self.file.metadata().ok().map(|metadata| Stamp::of(&metadata));
                Ok((offsets, stamp))
            }
            Err(source) => {
                let error = StoreError::Io { path: self.path.clone(), source };
                let cut = self.file.set_len(self.len).and_then(|()| self.file.seek(SeekFrom::Start(self.len)));
                match cut {
                    Ok(_) => Err(AppendError::CutBack(error)),
                    Err(cut) => {
                        tracing::warn!(
                            pack = %self.path.display(),
                            error = %cut,
                            "cannot cut a pack back after a failed append; it is sealed"
                        );
                        Err(AppendError::Sealed(error))
                    }
                }
            }
        }
    }
}

/// Why [`Appender::append`] failed, and whether the pack can take more records.
#[derive(Debug)]
pub(super) enum AppendError {
    /// What the write left was cut off: the pack is as it was before the batch and can
    /// be appended to again.
    CutBack(StoreError),
    /// The pack may end in a torn record: seal it.
    Sealed(StoreError),
}

/// Writes `chunks` as records at the cursor of `file`, which stands at byte `start` of
/// the pack; returns the offset of each chunk's bytes.
fn write_records(file: &mut File, start: u64, chunks: &[(ChunkHash, &[u8])]) -> io::Result<Vec<u64>> {
    let mut offsets = Vec::with_capacity(chunks.len());
    let mut headers = Vec::with_capacity(chunks.len());
    let mut offset = start;
    for (hash, bytes) in chunks {
        let mut header = [0u8; RECORD_HEADER_BYTES as usize];
        header[..32].copy_from_slice(&hash.0);
        header[32..].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        headers.push(header);
        offset += RECORD_HEADER_BYTES;
        offsets.push(offset);
        offset += bytes.len() as u64;
    }
    // One `writev` for the whole batch (the kernel takes up to 1024 slices a call)
    // rather than two `write`s per chunk: ~32 system calls per swarm piece before.
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(2 * chunks.len());
    for (header, (_, bytes)) in headers.iter().zip(chunks) {
        slices.push(IoSlice::new(header));
        slices.push(IoSlice::new(bytes));
    }
    write_all_vectored(file, &mut slices)?;
    Ok(offsets)
}

/// Writes every byte of `slices` (`Write::write_all_vectored` is not stable yet).
fn write_all_vectored(file: &mut File, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    // Bounded: each turn writes at least one byte of a finite total, or returns.
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut slices, written),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Places a new file in `packs` with `place` (which must fail with `AlreadyExists`
/// rather than replace a file) under the first name from `next_name` not taken, and
/// returns that name with what `place` returned. Bounded: names come from a counter
/// that starts past every pack on disk, so a taken name means another process wrote
/// into this store; it gives up after [`PACK_NAME_TRIES`] names.
fn under_free_name<T>(
    packs: &Path,
    mut next_name: impl FnMut() -> String,
    mut place: impl FnMut(&Path) -> io::Result<T>,
) -> Result<(String, T), StoreError> {
    let mut last = packs.to_path_buf();
    for _ in 0..PACK_NAME_TRIES {
        let name = next_name();
        last = packs.join(&name);
        match place(&last) {
            Ok(placed) => return Ok((name, placed)),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(StoreError::Io { path: last, source }),
        }
    }
    let source = io::Error::new(io::ErrorKind::AlreadyExists, format!("{PACK_NAME_TRIES} pack names tried, all taken"));
    Err(StoreError::Io { path: last, source })
}

/// Names tried before a pack write gives up (see [`write`]).
const PACK_NAME_TRIES: usize = 8;

/// The name of pack number `number`.
pub(super) fn numbered_name(number: u64) -> String {
    format!("{number:016x}.pack")
}

/// The number of a pack named by [`numbered_name`] (older stores named packs otherwise).
pub(super) fn number_of(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".pack")?;
    if digits.len() == 16 && digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        u64::from_str_radix(digits, 16).ok()
    } else {
        None
    }
}

/// Reads the `len` bytes at `offset` of pack `name`.
pub(super) fn read(store: &Path, name: &str, offset: u64, len: u32) -> io::Result<Vec<u8>> {
    let file = File::open(dir(store).join(name))?;
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, offset)?;
    Ok(bytes)
}

/// A pack file's identity and the time of its last change, as `stat` reports them.
///
/// Taken right after this process wrote (and verified) a pack, it lets a later read
/// trust the pack's bytes without hashing them again if the file still has the same
/// stamp: same inode, same length, same ctime. The kernel sets ctime on every change
/// to a file's contents or links and no system call sets it to a chosen value, so a
/// pack written to (or replaced) behind the store's back no longer matches. Nothing
/// survives a restart: after a crash every pack is verified on read again, which is
/// what makes skipping `fsync` safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stamp {
    device: u64,
    inode: u64,
    len: u64,
    ctime: i64,
    ctime_nanos: i64,
}

impl Stamp {
    pub(super) fn of(metadata: &fs::Metadata) -> Self {
        Self {
            device: metadata.dev(),
            inode: metadata.ino(),
            len: metadata.len(),
            ctime: metadata.ctime(),
            ctime_nanos: metadata.ctime_nsec(),
        }
    }
}

/// True for a pack file name (not a temp file).
pub(super) fn is_pack_name(name: &str) -> bool {
    name.ends_with(".pack") && !name.starts_with(TEMP_PREFIX)
}
