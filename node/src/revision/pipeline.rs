//! The two-thread pipeline behind a push: read and chunk on one core, hash on the other.
//!
//! FastCDC and BLAKE3 each run at 1.3–1.9 GiB/s on one core here (STACK.md §5), and
//! blake3's multi-threaded hashing needs rayon, which the workspace leaves out. So the
//! producer (bundle reading, decompression, chunking) runs on a scoped thread and sends
//! pieces through a bounded channel to the calling thread, which hashes them and calls
//! the caller's sink (which need not be `Send`).
//!
//! Pieces travel in batches of about [`BATCH_BYTES`]: sent one by one, every 64 KiB
//! chunk cost a futex wake-up of the faster, parked thread, and the measured pipeline was
//! no faster than chunking and hashing on one thread. The channel bound is what keeps
//! memory flat: at most [`BATCHES_IN_FLIGHT_MAX`] batches wait between the threads.

use std::cell::RefCell;
use std::sync::mpsc::{sync_channel, SyncSender};

use super::bundle::{BundleEntry, BundleError};

/// A batch is sent once it holds this many chunk bytes (or [`BATCH_PIECES_MAX`] pieces).
pub(crate) const BATCH_BYTES: usize = 1 << 20;

/// A batch is sent once it holds this many pieces, so bundles of many small or empty
/// files still flow.
pub(crate) const BATCH_PIECES_MAX: usize = 64;

/// Batches that may wait in the channel: with one batch being filled and one being
/// consumed, at most about 6 MiB of chunks are between the threads (a batch may exceed
/// [`BATCH_BYTES`] by one chunk of at most 256 KiB).
pub(crate) const BATCHES_IN_FLIGHT_MAX: usize = 4;

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

/// The producer's end of the channel; it collects pieces into batches.
pub(crate) struct Feed {
    sender: SyncSender<Vec<Piece>>,
    /// The batch being filled and its chunk bytes (the producer is one thread; `send`
    /// takes `&self` so producers can pass the feed around freely).
    batch: RefCell<(Vec<Piece>, usize)>,
}

impl Feed {
    fn new(sender: SyncSender<Vec<Piece>>) -> Self {
        Self { sender, batch: RefCell::new((Vec::with_capacity(BATCH_PIECES_MAX), 0)) }
    }

    /// Queues a piece; sends the batch when it is full, blocking while the channel is.
    ///
    /// # Errors
    /// [`BundleError::Interrupted`] when the consumer has stopped (its error wins).
    pub(crate) fn send(&self, piece: Piece) -> Result<(), BundleError> {
        let full = {
            let mut batch = self.batch.borrow_mut();
            if let Piece::Chunk(bytes) = &piece {
                batch.1 += bytes.len();
            }
            batch.0.push(piece);
            batch.1 >= BATCH_BYTES || batch.0.len() >= BATCH_PIECES_MAX
        };
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends what is queued.
    fn flush(&self) -> Result<(), BundleError> {
        let pieces = {
            let mut batch = self.batch.borrow_mut();
            batch.1 = 0;
            std::mem::replace(&mut batch.0, Vec::with_capacity(BATCH_PIECES_MAX))
        };
        if pieces.is_empty() {
            return Ok(());
        }
        self.sender.send(pieces).map_err(|_| BundleError::Interrupted)
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
    let (sender, receiver) = sync_channel(BATCHES_IN_FLIGHT_MAX);
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let feed = Feed::new(sender);
            produce(&feed).and_then(|()| feed.flush())
        });
        // The loop ends when the producer returns and drops its sender.
        let consumed = receiver.iter().try_for_each(|batch| batch.into_iter().try_for_each(&mut consume));
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
        // Queued: the batch the consumer holds, the channel's batches, the one the
        // producer is blocked sending, and the one it was filling.
        let bound = (BATCHES_IN_FLIGHT_MAX + 3) * BATCH_PIECES_MAX;
        assert!(sent.load(std::sync::atomic::Ordering::Relaxed) < bound);
    }
}
