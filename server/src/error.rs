//! The server's one error enum. `http/error.rs` maps it to HTTP in one place.

use dsync_api::{ApiError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(String),
    /// Bad input from a client.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    TooLarge(String),
    /// A compare-and-set or similar precondition failed.
    #[error("{message}")]
    Conflict {
        message: String,
        current_version: u64,
    },
    /// No leader is known, no quorum, or this node is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// A write reached the leader but its answer was lost: it may or may
    /// not have been applied.
    #[error("{0}")]
    OutcomeUnknown(String),
    /// The data on disk fails its checksum or cannot be decoded.
    #[error("corrupt data in {path}: {detail}")]
    Corrupt { path: String, detail: String },
    #[error("storage: {0}")]
    Storage(String),
    /// A file or folder operation failed: what was being done, and the OS
    /// error that stopped it.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
    /// An error that already has its API form (e.g. relayed from the leader).
    #[error("{0}")]
    Api(ApiError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<crate::state::Unexpected> for Error {
    fn from(u: crate::state::Unexpected) -> Error {
        Error::Internal(format!(
            "a command answered {:?}, not the kind it gives",
            u.0
        ))
    }
}

impl Error {
    /// `context` names the operation and the path, e.g. "cannot open X".
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The error as a client or a peer may see it. An internal failure is
    /// logged here, where its details are, with a random id, and only the id
    /// leaves the node — also when a follower relays a leader's answer.
    pub fn to_api(&self) -> ApiError {
        match self {
            Error::Config(m) | Error::InvalidArgument(m) => {
                ApiError::new(ErrorCode::InvalidArgument, m)
            }
            Error::NotFound(m) => ApiError::new(ErrorCode::NotFound, m),
            Error::TooLarge(m) => ApiError::new(ErrorCode::TooLarge, m),
            Error::Conflict {
                message,
                current_version,
            } => ApiError::new(ErrorCode::Conflict, message)
                .with_detail("current_version", *current_version),
            Error::Unavailable(m) => ApiError::new(ErrorCode::Unavailable, m),
            Error::OutcomeUnknown(m) => ApiError::outcome_unknown(m),

            Error::Api(e) => e.clone(),
            Error::Corrupt { .. } | Error::Storage(_) | Error::Io { .. } | Error::Internal(_) => {
                let id = format!("{:016x}", rand::random::<u64>());
                tracing::error!(error_id = %id, "internal error: {}", chain(self));
                ApiError::new(
                    ErrorCode::Internal,
                    format!("internal error {id}: the node's log has the details"),
                )
                .with_detail("error_id", id)
            }
        }
    }
}

/// The error and each of its sources, as one line for the log.
pub use dsync_api::error_chain as chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_failure_keeps_its_os_error_as_source_and_out_of_the_answer() {
        let os = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "EACCES");
        let e = Error::io("cannot open /var/lib/dsync/groups/3/log", os);
        let source = std::error::Error::source(&e).expect("the OS error is the source");
        assert_eq!(source.to_string(), "EACCES");
        assert_eq!(chain(&e), "cannot open /var/lib/dsync/groups/3/log: EACCES");
        // What a peer relays to the client is the same scrubbed answer.
        let api = e.to_api();
        assert_eq!(api.code, ErrorCode::Internal);
        assert!(!api.message.contains("/var/lib"), "{}", api.message);
        assert!(!api.message.contains("EACCES"), "{}", api.message);
        assert!(api.details.contains_key("error_id"));
    }

    #[test]
    fn a_request_error_keeps_its_text() {
        let api = Error::InvalidArgument("ttl_ms must be between 1 and 10".into()).to_api();
        assert_eq!(api.code, ErrorCode::InvalidArgument);
        assert_eq!(api.message, "ttl_ms must be between 1 and 10");
        assert!(api.details.is_empty());
    }

    #[test]
    fn the_chain_lists_each_source_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(chain(&e), "outer: inner");
    }
}
