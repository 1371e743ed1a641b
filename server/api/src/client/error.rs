//! What a call can fail with, and decoding of answers.

use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorBody, ErrorCode};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an API error.
    #[error("{error} (HTTP {status})")]
    Api { status: u16, error: ApiError },
    /// No node could be reached, or the outcome of a write is unknown because
    /// the connection broke after it was sent.
    #[error("transport: {0}")]
    Transport(String),
    #[error("no endpoints configured")]
    NoEndpoints,
}

impl ClientError {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { error, .. } => Some(error.code),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// The error with its causes ("connection refused" hides in the chain), as
/// one line; a cause whose text the line already holds is not repeated.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| ClientError::Transport(format!("bad response body: {e}")))
}

pub(crate) fn decode_error(status: StatusCode, bytes: &[u8]) -> ApiError {
    serde_json::from_slice::<ErrorBody>(bytes)
        .map(|b| b.error)
        .unwrap_or_else(|_| {
            let code = match status.as_u16() {
                400 => ErrorCode::InvalidArgument,
                401 => ErrorCode::Unauthenticated,
                403 => ErrorCode::PermissionDenied,
                404 => ErrorCode::NotFound,
                413 => ErrorCode::TooLarge,
                414 => ErrorCode::UriTooLong,
                431 => ErrorCode::HeadersTooLarge,
                429 => ErrorCode::RateLimited,
                503 => ErrorCode::Unavailable,
                _ => ErrorCode::Internal,
            };
            ApiError::new(
                code,
                String::from_utf8_lossy(bytes)
                    .chars()
                    .take(200)
                    .collect::<String>(),
            )
        })
}
