//! Why a block failed: its cause, for metrics and alerting, and its error chain, for people.

use std::error::Error;

use serde::{Deserialize, Serialize};

/// An error and its sources, joined with ": ", the way a run report and a log line show them.
pub(crate) fn error_chain(error: &dyn Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // Some errors repeat their source in their own message; show such a cause once.
        if !chain.contains(&text) {
            chain.push_str(": ");
            chain.push_str(&text);
        }
        source = cause.source();
    }
    chain
}

/// What kind of failure stopped a block, for metrics and alerting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCause {
    /// The source could not be read, or disagrees with the block's meta.json.
    Source,
    /// The target could not be read or written.
    Target,
    /// A copy did not have the size or hash it should.
    Verification,
    /// The block's format is not one bucketflow reads (a meta.json version other than 1).
    Unsupported,
    /// The run was interrupted (SIGINT/SIGTERM) before the block was complete.
    Interrupted,
    /// A bug: a task panicked or a copy never reported back.
    Internal,
    /// The block would overlap a visible block of its group in the target, neither covering
    /// the other, and the target compactor (without vertical compaction) halts on overlaps.
    Overlap,
}

impl FailureCause {
    /// The cause in snake_case, as the run report writes it and as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            FailureCause::Source => "source",
            FailureCause::Target => "target",
            FailureCause::Verification => "verification",
            FailureCause::Unsupported => "unsupported",
            FailureCause::Interrupted => "interrupted",
            FailureCause::Internal => "internal",
            FailureCause::Overlap => "overlap",
        }
    }
}

/// A failure and its error chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of failure it is.
    pub cause: FailureCause,
    /// The error and its sources, joined with ": ".
    pub error: String,
}

impl Failure {
    /// A failure of `cause`, described by `error`.
    pub fn new(cause: FailureCause, error: impl Into<String>) -> Self {
        Failure { cause, error: error.into() }
    }
}
