//! The one place server errors become HTTP responses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dsync_api::{ApiError, ErrorBody, ErrorCode};

use crate::error::Error;

/// An error on its way out as `{"error": {...}}` with the documented status.
pub struct HttpError(pub ApiError);

impl From<Error> for HttpError {
    fn from(e: Error) -> Self {
        if matches!(
            e,
            Error::Corrupt { .. } | Error::Storage(_) | Error::Internal(_)
        ) {
            tracing::error!("internal error: {e}");
        }
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
