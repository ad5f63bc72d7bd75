//! Moving a proxied connection's bytes both ways, client ⇄ target, until both sides
//! have closed. Each direction starts copying through an 8 KiB buffer (cheapest for
//! small requests: no pipe to make); once one read fills that buffer the direction is
//! bulk, and it switches to `splice(2)` through a pipe of its own, so the bytes go
//! socket → pipe → socket inside the kernel and never through this process.
//!
//! ```text
//!  from ─read─▶ 8 KiB ─write─▶ to        while reads come in under 8 KiB
//!  from ─splice─▶ pipe ─splice─▶ to      after a full read (a splice slot and a pipe
//!                                        free; else it keeps copying)
//!  end of stream from `from` → shut `to`'s write side (half-closes pass through)
//! ```

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::fcntl::{splice, OFlag, SpliceFFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Most bytes one splice moves: a default Linux pipe holds 16 pages (64 KiB), and a
/// pipe is always drained before it is filled again, so one fill is at most this.
/// Measured with bench_router (docs/benchmarks.md): the router's CPU per GiB fell from
/// 0.72 s with 8 KiB copies to 0.3 to 0.36 s (64 KiB copies: 0.42 s; 1 MiB pipes: 0.19 s,
/// but 16 times the kernel memory per direction).
const SPLICE_BYTES_MAX: usize = 64 * 1024;

/// Most directions relaying with pipes at once, in this process: each holds one pipe
/// (two file descriptors, up to 64 KiB of kernel pages while bytes are in flight).
/// 1,024 keep that within 2,048 descriptors and 64 MiB, which is also Linux's default
/// pipe budget of an unprivileged user (`/proc/sys/fs/pipe-user-pages-soft`, 16,384
/// pages), past which new pipes shrink to two pages. Directions beyond it keep copying.
const SPLICED_DIRECTIONS_MAX: usize = 1024;

/// Buffer per direction while copying: tokio's default for `copy_bidirectional`, so the
/// memory bound of CONNECTIONS_MAX stays what it was. A read that fills it marks the
/// direction as bulk.
const COPY_BUFFER_BYTES: usize = 8 * 1024;

/// Relays bytes between `client` and `target` until both directions reached end of
/// stream, or either failed.
///
/// # Errors
/// The first I/O error of either direction (a reset, a broken pipe); the connection is
/// then over.
pub(super) async fn relay(client: &TcpStream, target: &TcpStream) -> io::Result<()> {
    relay_with(client, target, &SPLICE_SLOTS).await
}

/// [`relay`] with its splice budget as an argument (tests pass their own).
async fn relay_with(client: &TcpStream, target: &TcpStream, slots: &SpliceSlots) -> io::Result<()> {
    tokio::try_join!(one_way(client, target, slots), one_way(target, client, slots))?;
    Ok(())
}

/// Moves everything `from` sends to `to`, copying until a read fills the buffer, then
/// splicing if a slot and a pipe are free; then shuts `to`'s write side.
async fn one_way(from: &TcpStream, to: &TcpStream, slots: &SpliceSlots) -> io::Result<()> {
    let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
    // Until `from`'s end of stream, an error, or the switch to splicing; one read each.
    loop {
        let read = io_when(from, Interest::READABLE, || from.try_read(&mut buffer)).await?;
        if read == 0 {
            return shut_write(to);
        }
        write_all(to, &buffer[..read]).await?;
        if read == buffer.len() {
            if let Some(slot) = slots.take() {
                if let Ok(pipe) = pipe() {
                    drop(buffer);
                    let _slot = slot;
                    return splice_one_way(from, to, pipe).await;
                }
            }
        }
    }
}

/// Writes all of `bytes` to `to`.
async fn write_all(to: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    // Bounded by `bytes`: every pass writes at least one byte or fails.
    while !bytes.is_empty() {
        let written = io_when(to, Interest::WRITABLE, || to.try_write(bytes)).await?;
        if written == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "the socket took no bytes"));
        }
        bytes = &bytes[written..];
    }
    Ok(())
}

/// Passes an end of stream on: no more bytes will be written to `to`.
fn shut_write(to: &TcpStream) -> io::Result<()> {
    socket2::SockRef::from(to).shutdown(std::net::Shutdown::Write)
}

/// The process's budget of directions relaying with pipes (all routes together).
static SPLICE_SLOTS: SpliceSlots = SpliceSlots::new(SPLICED_DIRECTIONS_MAX);

/// A count of slots taken out of `max`.
struct SpliceSlots {
    taken: AtomicUsize,
    max: usize,
}

impl SpliceSlots {
    const fn new(max: usize) -> Self {
        Self { taken: AtomicUsize::new(0), max }
    }

    /// A slot if fewer than `max` are taken; `None` otherwise.
    fn take(&self) -> Option<SpliceSlot<'_>> {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| (taken < self.max).then_some(taken + 1))
            .ok()
            .map(|_| SpliceSlot { slots: self })
    }
}

/// One direction's right to relay with a pipe, given back when dropped.
struct SpliceSlot<'slots> {
    slots: &'slots SpliceSlots,
}

impl Drop for SpliceSlot<'_> {
    fn drop(&mut self) {
        let before = self.slots.taken.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "a splice slot was given back twice");
    }
}

/// A non-blocking pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?)
}

/// Moves everything `from` sends to `to` through `pipe`, then shuts `to`'s write side.
async fn splice_one_way(from: &TcpStream, to: &TcpStream, pipe: (OwnedFd, OwnedFd)) -> io::Result<()> {
    let (pipe_read, pipe_write) = pipe;
    let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
    // Until `from`'s end of stream or an error; each pass fills the pipe once and drains it.
    loop {
        let filled = io_when(from, Interest::READABLE, || {
            splice(from, None, &pipe_write, None, SPLICE_BYTES_MAX, flags).map_err(io::Error::from)
        })
        .await?;
        if filled == 0 {
            return shut_write(to);
        }
        let mut left = filled;
        // Bounded by `filled`: every pass moves at least one byte or waits.
        while left > 0 {
            let drained = io_when(to, Interest::WRITABLE, || {
                splice(&pipe_read, None, to, None, left, flags).map_err(io::Error::from)
            })
            .await?;
            if drained == 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "the target side took no bytes"));
            }
            left -= drained;
        }
    }
}

/// Runs `operation` once `stream` is ready for `interest`, again after each
/// `WouldBlock` (which clears the readiness, so the wait is real).
async fn io_when<R>(
    stream: &TcpStream,
    interest: Interest,
    mut operation: impl FnMut() -> io::Result<R>,
) -> io::Result<R> {
    // Until the operation does not block; each pass waits for readiness first.
    loop {
        stream.ready(interest).await?;
        match stream.try_io(interest, &mut operation) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Bytes the client sends: more than several pipes' worth, in a pattern that shows
    /// a lost or reordered block.
    const SENT_BYTES: usize = 3 * 1024 * 1024 + 17;

    fn pattern(length: usize) -> Vec<u8> {
        (0..length).map(|index| (index % 251) as u8).collect()
    }

    /// A client, a relay (splice budget `splice_max`) and a target that reads to the end of the
    /// client's stream and only then answers with the bytes reversed: asserts every byte
    /// crosses both ways in order and that the client's half-close reaches the target
    /// while the answer still comes back, then end of stream to the client.
    async fn relays_both_ways_through_a_half_close(splice_max: usize) {
        let front = TcpListener::bind("127.0.0.1:0").await.expect("bind the front");
        let back = TcpListener::bind("127.0.0.1:0").await.expect("bind the target");
        let (front_address, back_address) = (front.local_addr().expect("front"), back.local_addr().expect("back"));
        let target = tokio::spawn(async move {
            let (mut stream, _) = back.accept().await.expect("the relay connects");
            let mut received = Vec::new();
            stream.read_to_end(&mut received).await.expect("the client's bytes, then its end of stream");
            received.reverse();
            stream.write_all(&received).await.expect("the answer");
        });
        let relay_task = tokio::spawn(async move {
            let (client, _) = front.accept().await.expect("the client connects");
            let upstream = TcpStream::connect(back_address).await.expect("connect the target");
            let slots = SpliceSlots::new(splice_max);
            let relayed = relay_with(&client, &upstream, &slots).await;
            assert_eq!(slots.taken.load(Ordering::Acquire), 0, "every splice slot given back");
            relayed
        });
        let sent = pattern(SENT_BYTES);
        let exchange = async {
            let mut client = TcpStream::connect(front_address).await.expect("connect the relay");
            client.write_all(&sent).await.expect("send");
            client.shutdown().await.expect("half-close");
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.expect("the answer, then end of stream");
            answer
        };
        // A lost half-close would leave both ends waiting: fail instead of hanging.
        let answer = tokio::time::timeout(std::time::Duration::from_secs(20), exchange)
            .await
            .expect("the exchange ends within 20 s");
        let mut expected = sent.clone();
        expected.reverse();
        assert_eq!(answer.len(), expected.len());
        assert!(answer == expected, "the answer's bytes differ from the reversed request");
        target.await.expect("the target ran");
        relay_task.await.expect("the relay ran").expect("the relay ended without an error");
    }

    #[tokio::test]
    async fn a_bulk_relay_switches_to_splice_and_moves_every_byte_both_ways_through_a_half_close() {
        relays_both_ways_through_a_half_close(2).await;
    }

    #[tokio::test]
    async fn without_splice_slots_the_relay_copies_every_byte_both_ways_through_a_half_close() {
        relays_both_ways_through_a_half_close(0).await;
    }

    #[test]
    fn splice_slots_are_bounded_and_given_back() {
        // A budget of 3: three slots, then none until one is dropped.
        let slots = SpliceSlots::new(3);
        let taken: Vec<_> = (0..3).map(|_| slots.take().expect("a free slot")).collect();
        assert!(slots.take().is_none(), "a fourth slot beyond the budget");
        drop(taken);
        assert_eq!(slots.taken.load(Ordering::Acquire), 0);
        assert!(slots.take().is_some(), "slots come back when dropped");
    }
}
