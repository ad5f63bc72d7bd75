//! The event trace: every delivery, hashed in order, so two runs of one seed can be
//! compared bit for bit; the last events are kept for failure reports.

use std::collections::VecDeque;
use std::sync::Mutex;

use fleetmesh_transport::NodeId;

/// Events kept for a failure report.
const RECENT_EVENTS_MAX: usize = 40;

/// The trace of one simulation run.
pub struct Trace {
    inner: Mutex<TraceInner>,
}

/// One remembered event, formatted only when a failure report asks for it.
enum Recent {
    Delivery { nanos: u64, from: NodeId, to: NodeId, kind: [u8; 24], kind_len: usize, len: usize },
    Note(String),
}

impl Recent {
    fn line(&self) -> String {
        match self {
            Self::Delivery { nanos, from, to, kind, kind_len, len } => {
                let label: String = String::from_utf8_lossy(&kind[..*kind_len])
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric())
                    .take(16)
                    .collect();
                format!("{:>10.6}s {from}->{to} {label} ({len} B)", *nanos as f64 / 1e9)
            }
            Self::Note(line) => line.clone(),
        }
    }
}

struct TraceInner {
    hasher: blake3::Hasher,
    events: u64,
    recent: VecDeque<Recent>,
    start: tokio::time::Instant,
    /// Every event, when FLEETMESH_SIM_TRACE names a file (debugging nondeterminism).
    dump: Option<std::fs::File>,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Trace").finish_non_exhaustive()
    }
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}

impl Trace {
    /// An empty trace starting now (virtual time).
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(TraceInner {
                hasher: blake3::Hasher::new(),
                events: 0,
                recent: VecDeque::new(),
                start: tokio::time::Instant::now(),
                dump: std::env::var_os("FLEETMESH_SIM_TRACE").and_then(|path| std::fs::File::create(path).ok()),
            }),
        }
    }

    fn with<T>(&self, update: impl FnOnce(&mut TraceInner) -> T) -> T {
        update(&mut self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Records one delivered message: virtual time, endpoints, kind (the header's first
    /// bytes name the request variant) and size.
    pub fn record(&self, from: NodeId, to: NodeId, header: &[u8], len: usize) {
        self.with(|inner| {
            let nanos = inner.start.elapsed().as_nanos() as u64;
            let kind = &header[..header.len().min(24)];
            inner.hasher.update(&nanos.to_le_bytes());
            inner.hasher.update(&from.0.to_le_bytes());
            inner.hasher.update(&to.0.to_le_bytes());
            inner.hasher.update(kind);
            inner.hasher.update(&(len as u64).to_le_bytes());
            inner.events += 1;
            let mut kind_bytes = [0u8; 24];
            kind_bytes[..kind.len()].copy_from_slice(kind);
            let event = Recent::Delivery { nanos, from, to, kind: kind_bytes, kind_len: kind.len(), len };
            if let Some(dump) = &mut inner.dump {
                use std::io::Write;
                // The dump is a debugging aid: a line it fails to write is missing from the
                // dump only, never from the run or its hash.
                let _ = writeln!(dump, "{}", event.line());
            }
            inner.recent.push_back(event);
            if inner.recent.len() > RECENT_EVENTS_MAX {
                inner.recent.pop_front();
            }
        });
    }

    /// Records a scenario step (fault, check) in the hash and the recent list.
    pub fn note(&self, text: &str) {
        self.with(|inner| {
            let nanos = inner.start.elapsed().as_nanos() as u64;
            inner.hasher.update(&nanos.to_le_bytes());
            inner.hasher.update(text.as_bytes());
            let line = format!("{:>10.6}s -- {text}", nanos as f64 / 1e9);
            if let Some(dump) = &mut inner.dump {
                use std::io::Write;
                // The dump is a debugging aid: a line it fails to write is missing from the
                // dump only, never from the run or its hash.
                let _ = writeln!(dump, "{line}");
            }
            inner.recent.push_back(Recent::Note(line));
            if inner.recent.len() > RECENT_EVENTS_MAX {
                inner.recent.pop_front();
            }
        });
    }

    /// Hex digest of everything so far.
    pub fn hash(&self) -> String {
        self.with(|inner| inner.hasher.clone().finalize().to_hex()[..32].to_string())
    }

    /// Messages delivered.
    pub fn events(&self) -> u64 {
        self.with(|inner| inner.events)
    }

    /// The last events, oldest first.
    pub fn recent(&self) -> Vec<String> {
        self.with(|inner| inner.recent.iter().map(Recent::line).collect())
    }
}
