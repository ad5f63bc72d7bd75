//! What a violated invariant says: one sentence that names the offending values.
//!
//! The text is printed with the run's verdicts (`name: violated: <reason>`), and the first
//! violation of a continuous invariant is noted in the trace, so the text of a violation
//! is part of what a seed replays: it must not change when the code around it does.

/// A violated invariant, with the reason it reads as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Violation {
    reason: String,
}

impl Violation {
    /// A violation that reads as `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }

    /// What the violation reads as.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}
