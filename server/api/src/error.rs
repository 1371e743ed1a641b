use serde::{Deserialize, Serialize};

/// Machine-readable error codes of the HTTP API (DESIGN §3).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    MethodNotAllowed,
    Conflict,
    Deadlock,
    LockBusy,
    StaleReceipt,
    StaleToken,
    TooLarge,
    /// The request target (path and query) is longer than the node takes.
    UriTooLong,
    /// The request's header fields are larger, or more, than the node takes.
    HeadersTooLarge,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// The HTTP status each code is sent with; the one place this mapping lives.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict
            | ErrorCode::Deadlock
            | ErrorCode::LockBusy
            | ErrorCode::StaleReceipt => 409,
            ErrorCode::StaleToken => 412,
            ErrorCode::TooLarge => 413,
            ErrorCode::UriTooLong => 414,
            ErrorCode::HeadersTooLarge => 431,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Deadlock => "deadlock",
            ErrorCode::LockBusy => "lock_busy",
            ErrorCode::StaleReceipt => "stale_receipt",
            ErrorCode::StaleToken => "stale_token",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error response: `{"error": {"code", "message", ...details}}`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ApiError,
}

/// One API error. `details` holds code-specific fields (e.g. `cycle` for a
/// deadlock, `current_version` for a conflict) flattened into the object.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    // Not a named property: the schema leaves additional properties open.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: serde_json::Map::new(),
        }
    }

    pub fn with_detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// A 503 for a write that may or may not have been applied (the request
    /// reached the leader but its answer was lost). Carries
    /// `"outcome": "unknown"`: retrying blindly could apply it twice.
    pub fn outcome_unknown(message: impl Into<String>) -> Self {
        ApiError::new(ErrorCode::Unavailable, message).with_detail(OUTCOME, OUTCOME_UNKNOWN)
    }

    /// Whether this error says a write's outcome is unknown.
    pub fn is_outcome_unknown(&self) -> bool {
        self.details.get(OUTCOME).and_then(|v| v.as_str()) == Some(OUTCOME_UNKNOWN)
    }
}

/// The detail a 503 carries when a write may have been applied.
pub const OUTCOME: &str = "outcome";
pub const OUTCOME_UNKNOWN: &str = "unknown";

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_round_trips_with_details() {
        let e = ApiError::new(ErrorCode::Conflict, "version mismatch")
            .with_detail("current_version", 7);
        let text = serde_json::to_string(&ErrorBody { error: e.clone() }).unwrap();
        assert_eq!(
            text,
            r#"{"error":{"code":"conflict","message":"version mismatch","current_version":7}}"#
        );
        let back: ErrorBody = serde_json::from_str(&text).unwrap();
        assert_eq!(back.error, e);
    }

    #[test]
    fn codes_map_to_documented_statuses() {
        assert_eq!(ErrorCode::InvalidArgument.http_status(), 400);
        assert_eq!(ErrorCode::StaleToken.http_status(), 412);
        assert_eq!(ErrorCode::TooLarge.http_status(), 413);
        assert_eq!(ErrorCode::UriTooLong.http_status(), 414);
        assert_eq!(ErrorCode::HeadersTooLarge.http_status(), 431);
        for code in [ErrorCode::UriTooLong, ErrorCode::HeadersTooLarge] {
            let text = serde_json::to_string(&code).unwrap();
            assert_eq!(text, format!("\"{}\"", code.as_str()));
        }
        assert_eq!(ErrorCode::Unavailable.http_status(), 503);
        assert_eq!(ErrorCode::LockBusy.http_status(), 409);
    }
}
