//! The one place server errors become HTTP responses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dsync_api::{ApiError, ErrorBody, ErrorCode};

use crate::error::Error;

/// An error on its way out as `{"error": {...}}` with the documented status.
pub struct HttpError(pub ApiError);

impl From<Error> for HttpError {
    /// Internal and storage failures reach the client as an id only
    /// ([`Error::to_api`] logs their text).
    fn from(e: Error) -> Self {
        HttpError(e.to_api())
    }
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        HttpError(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = matches!(self.0.code, ErrorCode::Unavailable | ErrorCode::RateLimited);
        let mut resp = (status, Json(ErrorBody { error: self.0 })).into_response();
        if retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

pub type HttpResult<T> = Result<T, HttpError>;

pub fn invalid(message: impl Into<String>) -> HttpError {
    HttpError(ApiError::new(ErrorCode::InvalidArgument, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_text_stays_in_the_log_and_the_client_gets_an_id() {
        let e = HttpError::from(Error::Storage("/var/lib/dsync/log/000001.seg: EIO".into()));
        assert_eq!(e.0.code, ErrorCode::Internal);
        assert!(!e.0.message.contains("/var/lib"), "{}", e.0.message);
        let id = e.0.details["error_id"].as_str().unwrap().to_string();
        assert_eq!(id.len(), 16);
        assert!(e.0.message.contains(&id));
        let other = HttpError::from(Error::Internal("x".into()));
        assert_ne!(other.0.details["error_id"], e.0.details["error_id"]);
    }

    #[test]
    fn an_unknown_outcome_is_a_503_that_says_so() {
        let resp = HttpError::from(Error::OutcomeUnknown("answer lost".into())).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let plain = Error::Unavailable("no leader".into()).to_api();
        assert!(!plain.is_outcome_unknown());
        let unknown = Error::OutcomeUnknown("answer lost".into()).to_api();
        assert!(unknown.is_outcome_unknown());
        let text = serde_json::to_string(&ErrorBody { error: unknown }).unwrap();
        assert_eq!(
            text,
            r#"{"error":{"code":"unavailable","message":"answer lost","outcome":"unknown"}}"#
        );
    }
}
