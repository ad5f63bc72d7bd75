//! openraft's async runtime with a seedable RNG.
//!
//! openraft 0.9 draws election-timeout jitter from `AsyncRuntime::thread_rng()`. The
//! stock Tokio runtime returns `rand::thread_rng()`, seeded by the OS, which makes a
//! simulation unrepeatable (`STACK.md` §1.4). This runtime is Tokio in every other
//! respect, and draws from a thread-local seeded generator when the simulator has set
//! one with [`seed_thread_rng`], from the OS otherwise.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use openraft::async_runtime::TokioOneShotSender;
use openraft::{AsyncRuntime, OptionalSend, TokioInstant};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

thread_local! {
    static SEEDED: RefCell<Option<ChaCha8Rng>> = const { RefCell::new(None) };
}

/// Makes every Raft instance on this thread draw its randomness from `seed`.
/// The simulator calls it once, before it creates any node.
pub fn seed_thread_rng(seed: u64) {
    SEEDED.with(|cell| *cell.borrow_mut() = Some(ChaCha8Rng::seed_from_u64(seed)));
}

/// The RNG handed to openraft: the seeded one if set, else the OS-seeded thread RNG.
#[derive(Debug, Default)]
pub struct FleetRng;

impl FleetRng {
    fn with<T>(draw: impl FnOnce(&mut dyn RngCore) -> T) -> T {
        SEEDED.with(|cell| match cell.borrow_mut().as_mut() {
            Some(seeded) => draw(seeded),
            None => draw(&mut rand::thread_rng()),
        })
    }
}

impl RngCore for FleetRng {
    fn next_u32(&mut self) -> u32 {
        Self::with(|rng| rng.next_u32())
    }

    fn next_u64(&mut self) -> u64 {
        Self::with(|rng| rng.next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        Self::with(|rng| rng.fill_bytes(dest));
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        Self::with(|rng| rng.try_fill_bytes(dest))
    }
}

/// Tokio, with [`FleetRng`] as the thread RNG.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FleetRuntime;

impl AsyncRuntime for FleetRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = tokio::task::JoinHandle<T>;
    type Sleep = tokio::time::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = tokio::time::error::Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = tokio::time::Timeout<T>;
    type ThreadLocalRng = FleetRng;
    type OneshotSender<T: OptionalSend> = TokioOneShotSender<T>;
    type OneshotReceiverError = tokio::sync::oneshot::error::RecvError;
    type OneshotReceiver<T: OptionalSend> = tokio::sync::oneshot::Receiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        tokio::task::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        tokio::time::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        tokio::time::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, future: F) -> Self::Timeout<R, F> {
        tokio::time::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F> {
        tokio::time::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        join_error.is_panic()
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        FleetRng
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        (TokioOneShotSender(sender), receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_draws_repeat() {
        seed_thread_rng(7);
        let first = FleetRng.next_u64();
        seed_thread_rng(7);
        assert_eq!(FleetRng.next_u64(), first);
    }
}
