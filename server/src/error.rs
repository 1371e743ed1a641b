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
    #[error("{0}")]
    Internal(String),
    /// An error that already has its API form (e.g. relayed from the leader).
    #[error("{0}")]
    Api(ApiError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
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
            Error::Corrupt { .. } | Error::Storage(_) | Error::Internal(_) => {
                ApiError::new(ErrorCode::Internal, self.to_string())
            }
            Error::Api(e) => e.clone(),
        }
    }
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::Api(e)
    }
}
