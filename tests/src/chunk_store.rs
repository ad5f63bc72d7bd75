//! Checking a test node's chunk store from outside: every chunk file and pack record
//! must hash to the name it is stored under.

use std::path::Path;

use crate::TestCluster;

impl TestCluster {
    /// Checks every chunk in node `index`'s store against the hash it is stored under:
    /// chunk files (named by their hash) and pack records (`[hash 32][len u32 LE][bytes]`
    /// in `packs/*.pack`); returns (chunks, bytes).
    ///
    /// # Panics
    /// On the first chunk whose content does not hash to its name.
    pub fn verify_chunk_store(&self, index: u32) -> (u64, u64) {
        let root = self.nodes[&index].data_dir.join("chunks");
        let (mut files, mut bytes) = (0, 0);
        for prefix in std::fs::read_dir(&root).expect("chunk store").flatten() {
            if !prefix.file_type().is_ok_and(|kind| kind.is_dir()) {
                continue;
            }
            if prefix.file_name() == "packs" {
                let (chunks, length) = verify_packs(index, &prefix.path());
                files += chunks;
                bytes += length;
                continue;
            }
            for file in std::fs::read_dir(prefix.path()).expect("prefix dir").flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let content = std::fs::read(file.path()).expect("chunk file");
                assert_eq!(
                    blake3::hash(&content).to_hex().as_str(),
                    name,
                    "node {index}: chunk file {} does not hold the chunk it is named after",
                    file.path().display()
                );
                files += 1;
                bytes += content.len() as u64;
            }
        }
        (files, bytes)
    }
}

/// Verifies every record of every pack under `dir` (temp files skipped) up to a torn
/// last record, which a node killed mid-append leaves and its store ignores at open;
/// returns (records, bytes).
fn verify_packs(index: u32, dir: &Path) -> (u64, u64) {
    let (mut records, mut bytes) = (0, 0);
    for pack in std::fs::read_dir(dir).expect("packs dir").flatten() {
        let name = pack.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".pack") || name.starts_with('.') {
            continue;
        }
        let content = std::fs::read(pack.path()).expect("pack file");
        let mut offset = 0;
        // Bounded: each turn consumes a 36-byte header and its record.
        while offset + 36 <= content.len() {
            let hash = hex_of(&content[offset..offset + 32]);
            let len = u32::from_le_bytes(content[offset + 32..offset + 36].try_into().expect("4 bytes")) as usize;
            let start = offset + 36;
            if start + len > content.len() {
                eprintln!("node {index}: pack {name} ends in a torn record at byte {offset} (the store ignores it)");
                break;
            }
            assert_eq!(
                blake3::hash(&content[start..start + len]).to_hex().as_str(),
                hash,
                "node {index}: a record of pack {name} does not hold the chunk it is named after"
            );
            records += 1;
            bytes += len as u64;
            offset = start + len;
        }
    }
    (records, bytes)
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
