//! Reading what a handler left of a request body before answering, so a client that
//! sends its whole body before it reads gets the answer (a 401, a 413 over the body
//! limit, a 4xx of a handler that refused early) instead of a connection reset: a
//! socket closed with unread bytes is reset, and the answer with it.
//!
//! Bounded: at most [`DRAIN_BYTES_MAX`] bytes for at most [`DRAIN_TIME_MAX`]; past that
//! the answer says `Connection: close` and the connection ends after it.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// Most bytes of a request body read and dropped after its answer.
pub(super) const DRAIN_BYTES_MAX: usize = 64 << 20;

/// Longest a body is read after its answer.
pub(super) const DRAIN_TIME_MAX: Duration = Duration::from_secs(10);

/// The request body as the handler sees it, shared with [`drain_unread`], which reads
/// the rest once the handler answered.
struct Shared(Arc<Mutex<Body>>);

impl http_body::Body for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut body = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Pin::new(&mut *body).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).size_hint()
    }
}

/// Runs the request, then reads and drops what is left of its body (bounded).
pub(super) async fn drain_unread(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let shared = Arc::new(Mutex::new(body));
    let mut response = next.run(Request::from_parts(parts, Body::new(Shared(shared.clone())))).await;
    let mut rest = std::mem::replace(&mut *shared.lock().unwrap_or_else(PoisonError::into_inner), Body::empty());
    let drained = tokio::time::timeout(DRAIN_TIME_MAX, read_to_end(&mut rest)).await.unwrap_or(false);
    if !drained {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads `body` to its end; false when it is longer than [`DRAIN_BYTES_MAX`] or fails.
async fn read_to_end(body: &mut Body) -> bool {
    let mut read = 0usize;
    // Bounded: each turn reads a frame, and more than DRAIN_BYTES_MAX ends it.
    while let Some(frame) =
        std::future::poll_fn(|context| http_body::Body::poll_frame(Pin::new(&mut *body), context)).await
    {
        let Ok(frame) = frame else { return false };
        read = read.saturating_add(frame.data_ref().map_or(0, Bytes::len));
        if read > DRAIN_BYTES_MAX {
            return false;
        }
    }
    true
}
