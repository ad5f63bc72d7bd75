//! The chunk store's side of its pack files: indexing them at open, writing a batch as
//! a pack, reading a chunk back from one, and dropping what garbage collection no
//! longer keeps (the file format itself is `packs`).

use std::collections::btree_map::Entry;
use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use fleetmesh_state::model::ids::ChunkHash;

use super::packs;
use super::{io_error, ChunkStore, StoreError, TEMP_PREFIX};

impl ChunkStore {
    /// Writes `chunks` (verified, distinct) as a new pack and indexes those not indexed
    /// yet; returns how many it indexed. Two batches racing on one chunk (the endgame
    /// asks two peers for one piece) each write a pack; the chunk is indexed in the first.
    pub(super) fn store_pack(&self, chunks: &[(ChunkHash, &[u8])]) -> Result<usize, StoreError> {
        let (name, offsets) = self.write_pack(chunks)?;
        let mut index = self.lock_packs();
        let key = index.add_pack(name);
        let mut stored = 0;
        for ((hash, bytes), offset) in chunks.iter().zip(offsets) {
            if let Entry::Vacant(vacant) = index.chunks.entry(*hash) {
                vacant.insert(packs::Slot { pack: key, offset, len: bytes.len() as u32 });
                self.total_bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                stored += 1;
            }
        }
        Ok(stored)
    }

    /// Writes one pack of `chunks` under a fresh name (not indexed yet).
    pub(super) fn write_pack(&self, chunks: &[(ChunkHash, &[u8])]) -> Result<(String, Vec<u64>), StoreError> {
        let sequence = self.temp_sequence.fetch_add(1, Ordering::Relaxed);
        packs::write(&self.dir, &format!("{}-{sequence}", std::process::id()), chunks, || {
            packs::numbered_name(self.next_pack_number.fetch_add(1, Ordering::Relaxed))
        })
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
    pub(super) fn retain_packs(&self, keep: &BTreeSet<ChunkHash>) -> Result<u64, StoreError> {
        let packs: Vec<(u64, String)> =
            self.lock_packs().packs.iter().map(|(key, name)| (*key, name.clone())).collect();
        let mut removed = 0;
        for (key, name) in packs {
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
