//! A history of client operations as the clients saw them: when each was
//! invoked and completed (on one monotonic clock), through which node, and
//! whether it succeeded, failed for sure, or has an unknown outcome.

use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The server acknowledged it.
    Ok,
    /// The server refused it; it did not and will not take effect.
    Fail,
    /// No answer (timeout, broken connection): it may or may not take effect.
    Unknown,
}

/// One operation. Times are microseconds since the history began.
#[derive(Debug, Clone, Serialize)]
pub struct Op<T> {
    pub process: usize,
    pub invoke_us: u64,
    pub complete_us: u64,
    pub outcome: Outcome,
    pub op: T,
}

/// A shared, append-only history.
pub struct History<T> {
    start: Instant,
    ops: Mutex<Vec<Op<T>>>,
}

impl<T: Clone> History<T> {
    pub fn new() -> Self {
        History {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
        }
    }

    /// Microseconds since the history began.
    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    pub fn record(&self, process: usize, invoke_us: u64, outcome: Outcome, op: T) {
        let complete_us = self.now_us();
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).push(Op {
            process,
            invoke_us,
            complete_us,
            outcome,
            op,
        });
    }

    pub fn ops(&self) -> Vec<Op<T>> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Operations by outcome: (ok, fail, unknown).
    pub fn outcomes(&self) -> (usize, usize, usize) {
        let ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let count = |o: Outcome| ops.iter().filter(|x| x.outcome == o).count();
        (
            count(Outcome::Ok),
            count(Outcome::Fail),
            count(Outcome::Unknown),
        )
    }
}

impl<T: Clone> Default for History<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Classifies a client error: API errors other than 503 are definite
/// refusals; transport errors and 503s after retries leave the outcome open
/// for writes (the request may have been committed before the reply was lost).
pub fn outcome_of(e: &dsync_api::client::ClientError) -> Outcome {
    match e {
        dsync_api::client::ClientError::Api { status, .. } if *status != 503 => Outcome::Fail,
        _ => Outcome::Unknown,
    }
}
