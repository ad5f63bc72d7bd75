//! A redb storage backend for simulated nodes that keeps only the pages written.
//!
//! Every simulated node has a Raft store. redb's `InMemoryBackend` is one `Vec` that
//! `set_len` fills with zeros: a fresh database is about 100 KiB per node before a byte
//! of Raft data (2 GB at 20,000 nodes, most of them agents whose store stays empty),
//! and a voter's growing store is copied whole each time the `Vec` doubles. Here the
//! storage is a map of 4 KiB pages: a page never written reads as zeros and costs
//! nothing, and growing costs nothing until the new pages are written.

use std::collections::HashMap;
use std::io;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use redb::StorageBackend;

/// The page size of the map (redb's own default page size).
const PAGE: u64 = 4096;

#[derive(Default)]
struct Pages {
    len: u64,
    pages: HashMap<u64, Box<[u8]>>,
}

/// Sparse in-memory storage for a redb database.
#[derive(Default)]
pub struct SparseStore(RwLock<Pages>);

impl std::fmt::Debug for SparseStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pages = self.pages();
        formatter.debug_struct("SparseStore").field("len", &pages.len).field("pages", &pages.pages.len()).finish()
    }
}

fn out_of_range(offset: u64, len: usize, size: u64) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("bytes {offset}+{len} are past the end ({size})"))
}

/// The pieces of `offset..offset + len`, page by page: (page number, offset in the
/// page, offset in the buffer, length).
fn pieces(offset: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize, usize)> {
    let end = offset + len as u64;
    let mut at = offset;
    std::iter::from_fn(move || {
        (at < end).then(|| {
            let (page, within) = (at / PAGE, at % PAGE);
            let take = (PAGE - within).min(end - at);
            let piece = (page, within as usize, (at - offset) as usize, take as usize);
            at += take;
            piece
        })
    })
}

impl SparseStore {
    fn pages(&self) -> RwLockReadGuard<'_, Pages> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn pages_mut(&self) -> RwLockWriteGuard<'_, Pages> {
        self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Pages held (for tests and reports).
    pub fn pages_held(&self) -> usize {
        self.pages().pages.len()
    }
}

impl StorageBackend for SparseStore {
    fn len(&self) -> io::Result<u64> {
        Ok(self.pages().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let pages = self.pages();
        if offset.checked_add(out.len() as u64).is_none_or(|end| end > pages.len) {
            return Err(out_of_range(offset, out.len(), pages.len));
        }
        for (page, within, at, take) in pieces(offset, out.len()) {
            let target = &mut out[at..at + take];
            match pages.pages.get(&page) {
                Some(bytes) => target.copy_from_slice(&bytes[within..within + take]),
                None => target.fill(0),
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut pages = self.pages_mut();
        if len < pages.len {
            // New positions must read as zeros if the store grows again: drop whole pages
            // past the end and zero the tail of the last one.
            pages.pages.retain(|page, _| page * PAGE < len);
            if let Some(bytes) = pages.pages.get_mut(&(len / PAGE)) {
                bytes[(len % PAGE) as usize..].fill(0);
            }
        }
        pages.len = len;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut pages = self.pages_mut();
        if offset.checked_add(data.len() as u64).is_none_or(|end| end > pages.len) {
            return Err(out_of_range(offset, data.len(), pages.len));
        }
        for (page, within, at, take) in pieces(offset, data.len()) {
            let bytes = pages.pages.entry(page).or_insert_with(|| vec![0; PAGE as usize].into_boxed_slice());
            bytes[within..within + take].copy_from_slice(&data[at..at + take]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use redb::backends::InMemoryBackend;
    use redb::{ReadableDatabase, TableDefinition};

    use super::*;

    #[test]
    fn reads_what_was_written_and_zeros_elsewhere_across_pages() {
        // Asserts a write spanning four pages reads back, unwritten bytes read as
        // zeros, bytes past the end are refused, and shrinking then growing zeroes the
        // cut tail.
        let store = SparseStore::default();
        store.set_len(5 * PAGE).expect("grow");
        let data: Vec<u8> = (0..9000u32).map(|i| (i % 251) as u8 + 1).collect();
        store.write(PAGE - 100, &data).expect("write");
        assert_eq!(store.pages_held(), 4);
        let mut back = vec![0; data.len() + 200];
        store.read(PAGE - 200, &mut back).expect("read");
        assert!(back[..100].iter().all(|byte| *byte == 0));
        assert_eq!(&back[100..100 + data.len()], &data[..]);
        assert!(back[100 + data.len()..].iter().all(|byte| *byte == 0));
        assert!(store.read(5 * PAGE - 1, &mut [0; 2]).is_err());
        assert!(store.write(5 * PAGE, &[1]).is_err());
        store.set_len(PAGE + 10).expect("shrink");
        store.set_len(3 * PAGE).expect("grow again");
        let mut tail = vec![1; 2 * PAGE as usize - 10];
        store.read(PAGE + 10, &mut tail).expect("read the regrown part");
        assert!(tail.iter().all(|byte| *byte == 0));
    }

    #[test]
    fn a_database_on_it_holds_what_an_in_memory_one_does_in_fewer_bytes() {
        // Asserts a redb database works on the store (write, commit, read back) and that
        // a fresh one holds fewer pages than redb's in-memory backend allocates.
        const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("t");
        let store = std::sync::Arc::new(SparseStore::default());
        let db = redb::Database::builder().create_with_backend(Shared(store.clone())).expect("create");
        let fresh = store.pages_held() as u64 * PAGE;
        let reference = redb::Database::builder().create_with_backend(InMemoryBackend::new()).expect("create");
        drop(reference);
        let write = db.begin_write().expect("write");
        {
            let mut table = write.open_table(TABLE).expect("table");
            for key in 0..500u64 {
                table.insert(key, vec![key as u8; 300].as_slice()).expect("insert");
            }
        }
        write.commit().expect("commit");
        let read = db.begin_read().expect("read");
        let table = read.open_table(TABLE).expect("table");
        assert_eq!(table.get(499).expect("get").expect("present").value(), &[243u8; 300][..]);
        assert!(fresh < 64 * 1024, "a fresh database holds {fresh} bytes");
    }

    /// The store shared with the test, to count its pages.
    #[derive(Debug)]
    struct Shared(std::sync::Arc<SparseStore>);

    impl StorageBackend for Shared {
        fn len(&self) -> io::Result<u64> {
            self.0.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
            self.0.read(offset, out)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.0.set_len(len)
        }
        fn sync_data(&self) -> io::Result<()> {
            self.0.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
            self.0.write(offset, data)
        }
    }
}
