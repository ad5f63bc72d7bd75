//! The chunk store's side of its pack files: indexing them at open, appending a batch
//! to the open pack, reading a chunk back from one, and dropping what garbage
//! collection no longer keeps (the file format itself is `packs`).

use std::collections::btree_map::Entry;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use fleetmesh_state::model::ids::ChunkHash;

use super::packs;
use super::{io_error, ChunkStore, StoreError, TEMP_PREFIX};

impl ChunkStore {
    /// Appends `chunks` (verified, distinct) to the store's open pack (a new one when
    /// there is none or it holds [`packs::PACK_BYTES_TARGET`]) and indexes them; returns
    /// how many it stored.
    ///
    /// Chunks some other batch stored since the caller looked are skipped: the append
    /// lock is held from that check to the indexing, so two batches racing on one
    /// piece (the endgame asks two peers for it) store its chunks once.
    pub(super) fn store_pack(&self, chunks: &[(ChunkHash, &[u8])]) -> Result<usize, StoreError> {
        let mut appender = self.lock_appender();
        let fresh: Vec<(ChunkHash, &[u8])> = {
            let index = self.lock_packs();
            chunks.iter().copied().filter(|(hash, _)| !index.chunks.contains_key(hash)).collect()
        };
        if fresh.is_empty() {
            return Ok(0);
        }
        let mut pack = match appender.take() {
            Some(pack) if pack.len < packs::PACK_BYTES_TARGET => pack,
            // Sealed (full, or none yet): the next batch starts a new pack.
            _ => packs::Appender::create(&self.dir, || self.next_pack_name(), |name| self.lock_packs().add_pack(name))?,
        };
        let (offsets, stamp) = match pack.append(&fresh) {
            Ok(appended) => appended,
            Err(packs::AppendError::CutBack(error)) => {
                *appender = Some(pack);
                return Err(error);
            }
            Err(packs::AppendError::Sealed(error)) => {
                // Its records are indexed and readable, but it is no longer trusted.
                self.lock_packs().verified.remove(&pack.key);
                return Err(error);
            }
        };
        let mut index = self.lock_packs();
        match stamp {
            Some(stamp) => index.verified.insert(pack.key, stamp),
            None => index.verified.remove(&pack.key),
        };
        for ((hash, bytes), offset) in fresh.iter().zip(offsets) {
            index.chunks.insert(*hash, packs::Slot { pack: pack.key, offset, len: bytes.len() as u32 });
            self.total_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        drop(index);
        *appender = Some(pack);
        Ok(fresh.len())
    }

    /// Closes the open pack, if any: the next batch starts a new one. Garbage
    /// collection calls this first, so that no pack it rewrites or deletes is being
    /// appended to.
    pub(super) fn seal_pack(&self) {
        *self.lock_appender() = None;
    }

    fn lock_appender(&self) -> std::sync::MutexGuard<'_, Option<packs::Appender>> {
        self.appender.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn next_pack_name(&self) -> String {
        packs::numbered_name(self.next_pack_number.fetch_add(1, Ordering::Relaxed))
    }

    /// Writes one pack of `chunks` under a fresh name (not indexed yet).
    pub(super) fn write_pack(&self, chunks: &[(ChunkHash, &[u8])]) -> Result<(String, Vec<u64>), StoreError> {
        let sequence = self.temp_sequence.fetch_add(1, Ordering::Relaxed);
        packs::write(&self.dir, &format!("{}-{sequence}", std::process::id()), chunks, || self.next_pack_name())
    }

    pub(super) fn lock_packs(&self) -> std::sync::MutexGuard<'_, packs::PackIndex> {
        self.packs.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the packs directory into the index: removes temp files, indexes every
    /// record; returns the bytes of the chunks indexed.
    pub(super) fn open_packs(&self) -> Result<u64, StoreError> {
        let dir = packs::dir(&self.dir);
        let listing = match fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(StoreError::Io { path: dir, source: error }),
        };
        let mut total = 0;
        let mut index = self.lock_packs();
        for entry in listing {
            let entry = entry.map_err(io_error(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TEMP_PREFIX) {
                fs::remove_file(entry.path()).map_err(io_error(&entry.path()))?;
                continue;
            }
            if !packs::is_pack_name(&name) {
                continue;
            }
            if let Some(number) = packs::number_of(&name) {
                self.next_pack_number.fetch_max(number.saturating_add(1), Ordering::Relaxed);
            }
            let records = packs::scan(&entry.path())?;
            let key = index.add_pack(name);
            for (hash, offset, len) in records {
                if let Entry::Vacant(vacant) = index.chunks.entry(hash) {
                    vacant.insert(packs::Slot { pack: key, offset, len });
                    total += u64::from(len);
                }
            }
        }
        Ok(total)
    }

    /// Reads a chunk from its pack, if the index has it: `Some(Ok)` verified bytes,
    /// `Some(Err)` an i/o failure, `None` not in a pack (or a bad record or a vanished
    /// pack file, now dropped from the index so the chunk counts as missing).
    pub(super) fn get_packed(&self, hash: ChunkHash) -> Option<Result<Bytes, StoreError>> {
        // Two tries: a pack rewritten by `retain` between the lookup and the read moved.
        let mut last = None;
        for _ in 0..2 {
            let (slot, name) = {
                let index = self.lock_packs();
                let slot = *index.chunks.get(&hash)?;
                (slot, index.packs.get(&slot.pack).cloned()?)
            };
            match packs::read(&self.dir, &name, slot.offset, slot.len) {
                Ok(bytes) if ChunkHash::of(&bytes) == hash => return Some(Ok(Bytes::from(bytes))),
                Ok(_) => {
                    tracing::warn!(chunk = %hash, pack = name, "corrupt chunk in a pack dropped; it will be fetched again");
                    self.drop_slot(hash, slot);
                    return None;
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => last = Some((slot, name)),
                Err(error) => {
                    return Some(Err(StoreError::Io { path: packs::dir(&self.dir).join(name), source: error }))
                }
            }
        }
        if let Some((slot, name)) = last {
            // Not moved by `retain` twice in a row: the file is gone (deleted behind the
            // store's back). Forget the chunk so that it is fetched again.
            tracing::warn!(chunk = %hash, pack = name, "pack file missing; its chunk will be fetched again");
            self.drop_slot(hash, slot);
        }
        None
    }

    /// Reads the chunks `hashes`, in order, into one buffer (a piece answer for a peer)
    /// and calls `each` on every chunk's bytes in it, once they are read and checked.
    ///
    /// The serve path: one open per pack and one `pread` per chunk straight into the
    /// answer, where [`ChunkStore::get`] costs an open, a zeroed buffer and then a copy
    /// per chunk. A chunk is hashed again unless its pack is one this process wrote
    /// after verifying every chunk in it and the file still has the [`packs::Stamp`]
    /// it had then (a pack changed behind the store's back, or any pack after a
    /// restart, is verified as `get` does). That is the one read that may skip the
    /// check: the peer verifies every chunk it receives before storing it, and
    /// deployments read through `get`, which always verifies. A chunk not in a pack (or
    /// whose pack moved or failed its check) is read through `get`.
    ///
    /// # Errors
    /// [`StoreError::Missing`] for a chunk not held (or corrupt, now dropped), or
    /// [`StoreError::Io`].
    pub fn read_for_peer(&self, hashes: &[ChunkHash], mut each: impl FnMut(&mut [u8])) -> Result<Vec<u8>, StoreError> {
        let plan: Vec<Option<Planned>> = {
            let index = self.lock_packs();
            hashes
                .iter()
                .map(|hash| {
                    let slot = *index.chunks.get(hash)?;
                    let name = index.packs.get(&slot.pack)?.clone();
                    Some(Planned { slot, name, stamp: index.verified.get(&slot.pack).copied() })
                })
                .collect()
        };
        let packed_bytes: usize = plan.iter().flatten().map(|planned| planned.slot.len as usize).sum();
        let mut payload = Vec::with_capacity(packed_bytes);
        let mut open = None;
        for (hash, planned) in hashes.iter().zip(plan) {
            let start = payload.len();
            let read = match planned {
                Some(planned) => self.read_slot_into(&mut open, *hash, &planned, &mut payload)?,
                None => false,
            };
            if !read {
                payload.truncate(start);
                payload.extend_from_slice(&self.get(*hash)?);
            }
            each(&mut payload[start..]);
        }
        Ok(payload)
    }

    /// Appends the chunk at `planned` to `payload`, reusing `open` when it is that pack;
    /// `Ok(false)` when the caller must read it through `get` instead (the pack file
    /// is gone, or the bytes failed their check and the chunk is dropped).
    fn read_slot_into(
        &self,
        open: &mut Option<OpenPack>,
        hash: ChunkHash,
        planned: &Planned,
        payload: &mut Vec<u8>,
    ) -> Result<bool, StoreError> {
        let path = || packs::dir(&self.dir).join(&planned.name);
        if open.as_ref().is_none_or(|open| open.key != planned.slot.pack) {
            let file = match File::open(path()) {
                Ok(file) => file,
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(source) => return Err(StoreError::Io { path: path(), source }),
            };
            let now = file.metadata().map(|metadata| packs::Stamp::of(&metadata)).ok();
            let trusted = planned.stamp.is_some() && now == planned.stamp;
            *open = Some(OpenPack { key: planned.slot.pack, file, trusted });
        }
        let Some(pack) = open.as_ref() else { return Ok(false) };
        let start = payload.len();
        payload.resize(start + planned.slot.len as usize, 0);
        pack.file.read_exact_at(&mut payload[start..], planned.slot.offset).map_err(io_error(&path()))?;
        if pack.trusted || ChunkHash::of(&payload[start..]) == hash {
            return Ok(true);
        }
        tracing::warn!(chunk = %hash, pack = planned.name, "corrupt chunk in a pack dropped; it will be fetched again");
        self.drop_slot(hash, planned.slot);
        Ok(false)
    }

    /// Removes `hash` from the pack index if it still points at `slot`.
    pub(super) fn drop_slot(&self, hash: ChunkHash, slot: packs::Slot) {
        let mut index = self.lock_packs();
        if index.chunks.get(&hash) == Some(&slot) {
            index.chunks.remove(&hash);
            self.subtract(u64::from(slot.len));
        }
    }

    /// Drops every packed chunk not in `keep`: a pack with no kept chunk is deleted, a
    /// pack with some is rewritten with only those. Returns the bytes dropped.
    ///
    /// A pack opened for appending after this pass began is left alone: it holds only
    /// chunks stored since, which the caller's `keep` need not cover.
    pub(super) fn retain_packs(&self, keep: &BTreeSet<ChunkHash>) -> Result<u64, StoreError> {
        self.seal_pack();
        let packs: Vec<(u64, String)> =
            self.lock_packs().packs.iter().map(|(key, name)| (*key, name.clone())).collect();
        let mut removed = 0;
        for (key, name) in packs {
            // Not racy: a pack sealed once is never appended to again, and one being
            // appended to now is skipped.
            if self.lock_appender().as_ref().is_some_and(|pack| pack.key == key) {
                continue;
            }
            let (live, dead): (Vec<_>, Vec<_>) = {
                let index = self.lock_packs();
                index
                    .chunks
                    .iter()
                    .filter(|(_, slot)| slot.pack == key)
                    .map(|(hash, slot)| (*hash, *slot))
                    .partition(|(hash, _)| keep.contains(hash))
            };
            let path = packs::dir(&self.dir).join(&name);
            if !dead.is_empty() && !live.is_empty() {
                let mut kept = Vec::with_capacity(live.len());
                for (hash, slot) in &live {
                    kept.push((*hash, packs::read(&self.dir, &name, slot.offset, slot.len).map_err(io_error(&path))?));
                }
                let slices: Vec<(ChunkHash, &[u8])> =
                    kept.iter().map(|(hash, bytes)| (*hash, bytes.as_slice())).collect();
                let (new_name, offsets) = self.write_pack(&slices)?;
                let mut index = self.lock_packs();
                let new_key = index.add_pack(new_name);
                for ((hash, bytes), offset) in kept.iter().zip(offsets) {
                    index.chunks.insert(*hash, packs::Slot { pack: new_key, offset, len: bytes.len() as u32 });
                }
            }
            let dropped: u64 = {
                let mut index = self.lock_packs();
                let mut dropped = 0;
                for (hash, slot) in &dead {
                    if index.chunks.get(hash) == Some(slot) {
                        index.chunks.remove(hash);
                        dropped += u64::from(slot.len);
                    }
                }
                if dead.is_empty() && !live.is_empty() {
                    continue;
                }
                // Dropped whole, or rewritten above; a pack whose every record is
                // indexed elsewhere (a duplicate batch) is dropped too.
                index.packs.remove(&key);
                index.verified.remove(&key);
                dropped
            };
            self.subtract(dropped);
            removed += dropped;
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(StoreError::Io { path, source: error }),
            }
        }
        Ok(removed)
    }
}

/// Where [`ChunkStore::read_for_peer`] finds one chunk, looked up under one lock.
struct Planned {
    slot: packs::Slot,
    name: String,
    /// The pack's stamp when this process wrote it, if it verified it then.
    stamp: Option<packs::Stamp>,
}

/// The pack file [`ChunkStore::read_for_peer`] reads from, kept open across the chunks
/// of a piece that share it.
struct OpenPack {
    key: u64,
    file: File,
    /// The file still has the stamp of a pack this process wrote and verified.
    trusted: bool,
}
