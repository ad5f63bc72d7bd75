//! Keeping repeated log lines from flooding the log: a line that comes again and again
//! (the same warning from a loop, every second or every microsecond) is let through once
//! per period, and the next one that passes says how many were held back.
//!
//! ```text
//!  if let Some(held_back) = LIMIT.admit("fetch stopped") { warn!(held_back, "...") }
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Keys remembered at most; past this the oldest are forgotten (a forgotten key's next
/// line passes at once).
const KEYS_MAX: usize = 256;

/// The decisions of a [`RepeatLimit`], without a clock or a lock.
#[derive(Debug, Default)]
pub struct Repeats {
    /// Per key: when a line last passed, and how many were held back since.
    keys: BTreeMap<String, (Instant, u64)>,
}

impl Repeats {
    /// A line with `key` at `now`: `Some(held back since the last that passed)` if it
    /// may be logged (the first, or `every` after the last that passed), else `None`.
    pub fn admit(&mut self, key: &str, now: Instant, every: Duration) -> Option<u64> {
        match self.keys.get_mut(key) {
            Some((last, held)) if now.saturating_duration_since(*last) < every => {
                *held += 1;
                None
            }
            Some((last, held)) => {
                *last = now;
                Some(std::mem::take(held))
            }
            None => {
                if self.keys.len() >= KEYS_MAX {
                    let oldest = self.keys.iter().min_by_key(|(_, (last, _))| *last).map(|(key, _)| key.clone());
                    if let Some(oldest) = oldest {
                        self.keys.remove(&oldest);
                    }
                }
                self.keys.insert(key.to_string(), (now, 0));
                Some(0)
            }
        }
    }
}

/// Lets each repeated log line (by key) through at most once per period; usable as a
/// `static`.
#[derive(Debug)]
pub struct RepeatLimit {
    every: Duration,
    repeats: Mutex<Option<Repeats>>,
}

impl RepeatLimit {
    /// A limit of one line per key per `every`.
    pub const fn new(every: Duration) -> Self {
        Self { every, repeats: Mutex::new(None) }
    }

    /// `Some(held back since the last that passed)` if the line with `key` may be
    /// logged now, else `None` (it is counted).
    pub fn admit(&self, key: &str) -> Option<u64> {
        let mut repeats = self.repeats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        repeats.get_or_insert_with(Repeats::default).admit(key, Instant::now(), self.every)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_line_passes_once_per_period_and_then_counts_what_was_held_back() {
        // 8,214 lines of one key within 85 ms (the flood this guards against) let one
        // through; the first after the period says 8,213 were held back. Another key
        // is independent.
        let mut repeats = Repeats::default();
        let start = Instant::now();
        let every = Duration::from_secs(10);
        let passed = (0..8214u64)
            .filter(|step| repeats.admit("fetch stopped", start + Duration::from_micros(step * 10), every).is_some())
            .count();
        assert_eq!(passed, 1);
        assert_eq!(repeats.admit("other", start, every), Some(0));
        assert_eq!(repeats.admit("fetch stopped", start + every, every), Some(8213));
        assert_eq!(repeats.admit("fetch stopped", start + every + Duration::from_secs(1), every), None);
    }

    #[test]
    fn keys_beyond_the_cap_forget_the_oldest() {
        let mut repeats = Repeats::default();
        let start = Instant::now();
        let every = Duration::from_secs(60);
        for index in 0..=KEYS_MAX as u64 {
            assert_eq!(repeats.admit(&index.to_string(), start + Duration::from_millis(index), every), Some(0));
        }
        assert_eq!(repeats.keys.len(), KEYS_MAX);
        // Key 0 was forgotten: it passes again at once; key 1 is remembered.
        assert_eq!(repeats.admit("0", start + Duration::from_secs(1), every), Some(0));
        assert_eq!(repeats.admit("2", start + Duration::from_secs(1), every), None);
    }
}
