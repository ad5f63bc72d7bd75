//! The two-thread pipeline behind a push: read and chunk on one core, hash on the other.
//!
//! FastCDC and BLAKE3 each run at 1.3–1.9 GiB/s on one core here (STACK.md §5), and
//! blake3's multi-threaded hashing needs rayon, which the workspace leaves out. So the
//! producer (bundle reading, decompression, chunking) runs on a scoped thread and sends
//! pieces through a bounded channel to the calling thread, which hashes them and calls
//! the caller's sink (which need not be `Send`). The channel bound is what keeps memory
//! flat: at most [`PIECES_IN_FLIGHT_MAX`] chunks wait between the threads.

use std::sync::mpsc::{sync_channel, SyncSender};

use super::bundle::{BundleEntry, BundleError};

/// Pieces that may wait in the channel. Each chunk is at most `CHUNK_MAX_BYTES`
/// (256 KiB), so this caps the queue at 4 MiB, which is enough slack to absorb the two
/// threads' jitter (a file open, a slow sink write) without stalling either.
pub(crate) const PIECES_IN_FLIGHT_MAX: usize = 16;

/// What the producer sends, in bundle order: an entry, then for a file its chunks and
/// [`Piece::FileEnd`].
#[derive(Debug)]
pub(crate) enum Piece {
    /// The next entry of the bundle.
    Entry(BundleEntry),
    /// The next chunk of the current file.
    Chunk(Vec<u8>),
    /// The current file has no more chunks.
    FileEnd,
}

/// The producer's end of the channel.
pub(crate) struct Feed {
    sender: SyncSender<Piece>,
}

impl Feed {
    /// Sends a piece, blocking while the channel is full.
    ///
    /// # Errors
    /// [`BundleError::Interrupted`] when the consumer has stopped (its error wins).
    pub(crate) fn send(&self, piece: Piece) -> Result<(), BundleError> {
        self.sender.send(piece).map_err(|_| BundleError::Interrupted)
    }
}

/// Runs `produce` on a new thread and `consume` on this one until the producer is done.
///
/// # Errors
/// The consumer's error if it failed (the producer is then stopped at its next send),
/// else the producer's.
///
/// # Panics
/// Re-raises a panic of the producer thread.
pub(crate) fn run<P, C>(produce: P, mut consume: C) -> Result<(), BundleError>
where
    P: FnOnce(&Feed) -> Result<(), BundleError> + Send,
    C: FnMut(Piece) -> Result<(), BundleError>,
{
    let (sender, receiver) = sync_channel(PIECES_IN_FLIGHT_MAX);
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || produce(&Feed { sender }));
        // The loop ends when the producer returns and drops its sender.
        let consumed = receiver.iter().try_for_each(&mut consume);
        // Dropping the receiver first unblocks a producer waiting on a full channel.
        drop(receiver);
        let produced = producer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        consumed.and(produced)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_arrive_in_order_and_a_consumer_error_stops_the_producer() {
        // Produces 100 chunks through the bounded channel; asserts they arrive in order.
        // Then makes the consumer fail on the 3rd piece while the producer would send
        // 10,000; asserts the consumer's error is returned and the producer stopped early.
        let mut received = Vec::new();
        run(
            |feed| (0u8..100).try_for_each(|index| feed.send(Piece::Chunk(vec![index]))),
            |piece| {
                if let Piece::Chunk(bytes) = piece {
                    received.push(bytes[0]);
                }
                Ok(())
            },
        )
        .expect("no failure");
        assert_eq!(received, (0u8..100).collect::<Vec<_>>());

        let sent = std::sync::atomic::AtomicUsize::new(0);
        let mut seen = 0;
        let outcome = run(
            |feed| {
                for _ in 0..10_000 {
                    feed.send(Piece::FileEnd)?;
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(())
            },
            |_| {
                seen += 1;
                if seen == 3 {
                    return Err(BundleError::NoAppSpec);
                }
                Ok(())
            },
        );
        assert!(matches!(outcome, Err(BundleError::NoAppSpec)));
        assert!(sent.load(std::sync::atomic::Ordering::Relaxed) < 3 + PIECES_IN_FLIGHT_MAX + 2);
    }
}
