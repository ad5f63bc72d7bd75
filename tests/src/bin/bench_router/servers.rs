//! The two targets of the bench: a sink that discards a bulk stream and answers its
//! length, and an echo for small requests.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::BULK_BLOCK_BYTES;

/// Reads each connection to its end, then answers the number of bytes read (u64 LE).
pub(crate) async fn sink(listener: TcpListener) {
    // Until the runtime stops; one task per connection.
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        tokio::spawn(async move {
            let mut buffer = vec![0u8; BULK_BLOCK_BYTES];
            let mut received = 0u64;
            // Until the sender's end of stream (or an error).
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) => break,
                    Ok(read) => received += read as u64,
                    Err(_) => return,
                }
            }
            // The sender sees a short answer as a failure; nothing more to do here.
            let _ = stream.write_all(&received.to_le_bytes()).await;
        });
    }
}

/// Answers every `request_bytes` bytes read with as many bytes, until the client closes.
pub(crate) async fn echo(listener: TcpListener, request_bytes: usize) {
    // Until the runtime stops; one task per connection.
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        // Each request is answered at once, so no small write waits for more.
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let mut buffer = vec![0u8; request_bytes];
            // Until the client closes (read_exact fails at its end of stream).
            while stream.read_exact(&mut buffer).await.is_ok() {
                if stream.write_all(&buffer).await.is_err() {
                    return;
                }
            }
        });
    }
}
