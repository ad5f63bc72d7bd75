//! A tiny HTTP/1.1 server on loopback for tests: answers every request with what its
//! handler says and keeps what it was sent. Stands in for a webhook receiver or a
//! Prometheus server.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the stub got, and the status it answered.
#[derive(Clone, Debug)]
pub struct StubRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The body.
    pub body: Vec<u8>,
    /// What the stub answered.
    pub status: u16,
}

/// What the handler answers: a status and a JSON or text body.
pub type Handler = dyn Fn(&StubRequest) -> (u16, String) + Send + Sync;

/// The server; it runs until the test process ends.
pub struct HttpStub {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    got: Arc<Mutex<Vec<StubRequest>>>,
}

impl HttpStub {
    /// Starts a stub that answers with `handler`.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub fn start(handler: Arc<Handler>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stub");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let got = Arc::new(Mutex::new(Vec::new()));
        let kept = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                if let Some(request) = serve(stream, handler.as_ref()) {
                    kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(request);
                }
            }
        });
        Self { url, got }
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<StubRequest> {
        self.got.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Reads one request, answers it and closes the connection.
fn serve(mut stream: TcpStream, handler: &Handler) -> Option<StubRequest> {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let (method, target) = (words.next()?.to_string(), words.next()?.to_string());
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let Some((name, value)) = line.trim_end().split_once(':') else { break };
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let length: usize = headers.get("content-length").and_then(|length| length.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut request = StubRequest { method, target, headers, body, status: 0 };
    let (status, answer) = handler(&request);
    request.status = status;
    let head = format!(
        "HTTP/1.1 {status} Stub\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(answer.as_bytes()).ok()?;
    Some(request)
}
