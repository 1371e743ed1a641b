//! What applying a command gives back: a value, or a refusal that travels
//! through the log and the forwarding hop as bincode.

use dsync_api::ErrorCode;
use serde::{Deserialize, Serialize};

use super::{locks, queue};

/// The successful result of one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CmdValue {
    Version(u64),
    Deleted(bool),
    Granted(locks::Holder),
    Queued {
        seq: u64,
    },
    Done,
    Ids(Vec<u64>),
    Delivered(Vec<queue::InFlight>),
    Count(u64),
    /// Owners evicted by a force-release.
    Released(Vec<String>),
}

/// A command refused by the state machine (bincode-friendly, unlike
/// `ApiError`, whose details are free-form JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmdError {
    pub code: ErrorCode,
    pub message: String,
    /// Extra fields of the API error, as JSON object text.
    pub details: Option<String>,
}

impl CmdError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CmdError {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details.to_string());
        self
    }

    pub fn to_api(&self) -> dsync_api::ApiError {
        let mut e = dsync_api::ApiError::new(self.code, self.message.clone());
        if let Some(serde_json::Value::Object(map)) = self
            .details
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
        {
            e.details = map;
        }
        e
    }
}

pub type CmdOutput = Result<CmdValue, CmdError>;
