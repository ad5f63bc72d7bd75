//! Files for tests: bundles, large seeded random files, and their hashes.

use std::path::Path;

/// Writes a bundle: `(path, contents, mode)` triples under `dir`.
pub fn write_bundle(dir: &Path, files: &[(&str, &str, u32)]) {
    use std::os::unix::fs::PermissionsExt;
    for (path, contents, mode) in files {
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::write(&target, contents).expect("write bundle file");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(*mode)).expect("chmod");
    }
}

/// Writes `bytes` pseudo-random bytes to `path` from a ChaCha8 stream seeded with
/// `seed` (the same seed always gives the same file), 1 MiB at a time so memory stays
/// flat whatever the size.
pub fn write_random_file(path: &Path, bytes: u64, seed: u64) {
    use rand::{RngCore, SeedableRng};
    use std::io::Write;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create random file"));
    let mut block = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let take = left.min(block.len() as u64) as usize;
        rng.fill_bytes(&mut block[..take]);
        file.write_all(&block[..take]).expect("write random file");
        left -= take as u64;
    }
    file.flush().expect("flush random file");
}

/// BLAKE3 of a file, streamed.
pub fn hash_file(path: &Path) -> String {
    let mut hasher = blake3::Hasher::new();
    let mut file = std::fs::File::open(path).unwrap_or_else(|error| panic!("open {}: {error}", path.display()));
    std::io::copy(&mut file, &mut hasher).expect("read file to hash");
    hasher.finalize().to_hex().to_string()
}
