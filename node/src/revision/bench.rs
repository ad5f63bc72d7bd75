//! A throughput measurement of the push pipeline on one file, for `fleetmesh bench`.
//!
//! It times the stages a push runs, on the same code: the chunker alone, chunking and
//! hashing one after the other on one thread, and the two-thread pipeline that
//! [`super::build_manifest`] uses. The figures tell whether a push is bound by chunking,
//! hashing or the disk, and let a slow machine be compared with STACK.md §5.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use fleetmesh_state::model::ids::ChunkHash;
use serde::Serialize;

use super::bundle::BundleError;
use super::chunker::{chunking, Chunker};
use super::pipeline::{self, Piece};

/// Throughput of the push pipeline's stages on one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineFigures {
    /// Size of the file measured.
    pub file_bytes: u64,
    /// Chunks the file was cut into.
    pub chunk_count: u64,
    /// FastCDC alone, reading the file, in MiB/s.
    pub chunk_mib_per_sec: f64,
    /// Chunking then BLAKE3 on one thread, in MiB/s.
    pub chunk_hash_sequential_mib_per_sec: f64,
    /// Chunking on one thread and BLAKE3 on another (what a push does), in MiB/s.
    pub chunk_hash_pipelined_mib_per_sec: f64,
}

/// Measures chunking and hashing throughput on the file at `path`.
///
/// The file is read once first so every stage runs from the page cache; pick a file
/// smaller than free memory, or the figures include the disk.
///
/// # Errors
/// I/O errors reading the file.
pub fn bench_pipeline(path: &Path) -> io::Result<PipelineFigures> {
    io::copy(&mut File::open(path)?, &mut io::sink())?;
    let params = chunking();
    let chunk_only = timed(|| {
        let (mut bytes, mut count) = (0, 0);
        for chunk in Chunker::new(File::open(path)?, &params).map_err(io::Error::other)? {
            bytes += chunk?.len() as u64;
            count += 1;
        }
        Ok((bytes, count))
    })?;
    let sequential = timed(|| {
        let (mut bytes, mut count) = (0, 0);
        for chunk in Chunker::new(File::open(path)?, &params).map_err(io::Error::other)? {
            let chunk = chunk?;
            std::hint::black_box(ChunkHash::of(&chunk));
            bytes += chunk.len() as u64;
            count += 1;
        }
        Ok((bytes, count))
    })?;
    let pipelined = timed(|| {
        let (mut bytes, mut count) = (0, 0);
        pipeline::run(
            |feed| {
                let file = File::open(path).map_err(|source| BundleError::Io { path: path.to_path_buf(), source })?;
                for chunk in Chunker::new(file, &params)? {
                    let chunk = chunk.map_err(|source| BundleError::Io { path: path.to_path_buf(), source })?;
                    feed.send(Piece::Chunk(chunk))?;
                }
                Ok(())
            },
            |piece| {
                if let Piece::Chunk(chunk) = piece {
                    std::hint::black_box(ChunkHash::of(&chunk));
                    bytes += chunk.len() as u64;
                    count += 1;
                }
                Ok(())
            },
        )
        .map_err(io::Error::other)?;
        Ok((bytes, count))
    })?;
    let (file_bytes, chunk_count) = chunk_only.0;
    let rate = |elapsed: Duration| file_bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64().max(1e-9);
    Ok(PipelineFigures {
        file_bytes,
        chunk_count,
        chunk_mib_per_sec: rate(chunk_only.1),
        chunk_hash_sequential_mib_per_sec: rate(sequential.1),
        chunk_hash_pipelined_mib_per_sec: rate(pipelined.1),
    })
}

/// Runs `stage` and returns its result with the wall time it took.
fn timed<T>(stage: impl FnOnce() -> io::Result<T>) -> io::Result<(T, Duration)> {
    let start = Instant::now();
    let result = stage()?;
    Ok((result, start.elapsed()))
}

#[cfg(test)]
mod tests {
    use rand::{RngCore, SeedableRng};

    use super::*;

    #[test]
    fn figures_count_the_whole_file() {
        // Writes 3 MiB of random bytes and benchmarks it; asserts the byte count is the
        // file size, the chunk count is plausible for a 64 KiB average (the file cannot be
        // cut into fewer than 12 chunks of at most 256 KiB), and every rate is positive.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blob");
        let mut bytes = vec![0u8; 3 * 1024 * 1024];
        rand_chacha::ChaCha8Rng::seed_from_u64(3).fill_bytes(&mut bytes);
        std::fs::write(&path, &bytes).expect("write");
        let figures = bench_pipeline(&path).expect("bench");
        assert_eq!(figures.file_bytes, bytes.len() as u64);
        assert!((12..=192).contains(&figures.chunk_count), "{figures:?}");
        assert!(figures.chunk_mib_per_sec > 0.0 && figures.chunk_hash_sequential_mib_per_sec > 0.0);
        assert!(figures.chunk_hash_pipelined_mib_per_sec > 0.0);
    }

    #[test]
    #[ignore = "a measurement: needs FLEETMESH_BENCH_FILE, a large file (1 GiB in the report)"]
    fn measure_pipeline_on_a_large_file() {
        // Benchmarks the file named by FLEETMESH_BENCH_FILE, then pushes a bundle holding
        // it (hard-linked next to an appspec) through build_manifest with a no-op sink and
        // with a ChunkStore sink; prints every rate, asserts the byte counts match the file.
        let Some(path) = std::env::var_os("FLEETMESH_BENCH_FILE").map(std::path::PathBuf::from) else {
            eprintln!("FLEETMESH_BENCH_FILE is not set; nothing measured");
            return;
        };
        let file_bytes = std::fs::metadata(&path).expect("bench file").len();
        let figures = bench_pipeline(&path).expect("bench");
        assert_eq!(figures.file_bytes, file_bytes);
        eprintln!("{}", serde_json::to_string_pretty(&figures).expect("json"));
        let mib = file_bytes as f64 / (1024.0 * 1024.0);

        let work = tempfile::tempdir_in(path.parent().expect("parent")).expect("tempdir");
        let bundle = work.path().join("bundle");
        std::fs::create_dir(&bundle).expect("mkdir");
        std::fs::write(bundle.join("appspec.yml"), "version: 0.0\nos: linux\n").expect("appspec");
        std::fs::hard_link(&path, bundle.join("payload.bin")).expect("hard link");
        let ((built, _), elapsed) = timed(|| {
            let built = crate::revision::build_manifest(&bundle, &mut |_, _| Ok::<(), std::convert::Infallible>(()))
                .map_err(io::Error::other)?;
            Ok((built, ()))
        })
        .expect("build");
        assert!(built.total_bytes >= file_bytes);
        eprintln!("build_manifest, no-op sink: {:.0} MiB/s", mib / elapsed.as_secs_f64());
        let store = crate::revision::ChunkStore::open(&work.path().join("chunks")).expect("store");
        let (_, elapsed) = timed(|| {
            crate::revision::build_manifest(&bundle, &mut |chunk, bytes| store.put(chunk.hash(), bytes).map(|_| ()))
                .map_err(io::Error::other)
        })
        .expect("build into store");
        eprintln!("build_manifest into ChunkStore: {:.0} MiB/s", mib / elapsed.as_secs_f64());
        assert_eq!(store.total_bytes(), built.unique_bytes);
    }
}
