//! Extractors whose rejections are our JSON errors instead of axum's text.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dsync_api::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;

use super::error::HttpError;

/// A JSON body, and a JSON answer. As an extractor: malformed → 400
/// `invalid_argument`, over the limit → 413 `too_large`. The name is
/// axum's on purpose: `#[utoipa::path]` documents an argument of a type
/// named `Json` as the request body, so a handler names its body once.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(rej: JsonRejection) -> HttpError {
    body_rejection(&rej, rej.status(), rej.body_text())
}

/// A raw body (the peer routes' bincode) with the same JSON rejections as
/// [`Json`]: too large → 413, stalled or cut short → 400.
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(|rej: BytesRejection| body_rejection(&rej, rej.status(), rej.body_text()))
    }
}

fn body_rejection(
    rej: &(dyn std::error::Error + 'static),
    status: StatusCode,
    text: String,
) -> HttpError {
    if stalled(rej) {
        return HttpError(ApiError::new(
            ErrorCode::InvalidArgument,
            "the request body stopped arriving (limits.body_read_timeout_ms)",
        ));
    }
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
        ErrorCode::TooLarge
    } else {
        ErrorCode::InvalidArgument
    };
    HttpError(ApiError::new(code, text))
}

/// Whether the body failed because it sent nothing for too long (the
/// accept loop's body timeout), somewhere down the error's sources.
fn stalled(rej: &(dyn std::error::Error + 'static)) -> bool {
    let mut e: Option<&(dyn std::error::Error + 'static)> = Some(rej);
    while let Some(err) = e {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        e = err.source();
    }
    false
}

pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r: QueryRejection| {
                HttpError(ApiError::new(ErrorCode::InvalidArgument, r.body_text()))
            })
    }
}

pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|r: PathRejection| {
                HttpError(ApiError::new(ErrorCode::InvalidArgument, r.body_text()))
            })
    }
}

/// The optional `x-dsync-request-id` of a write (see `state::dedup`); a
/// malformed one is 400 `invalid_argument`.
pub struct RequestId(pub Option<String>);

impl RequestId {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(dsync_api::HEADER_REQUEST_ID) else {
            return Ok(RequestId(None));
        };
        match value.to_str() {
            Ok(id) if crate::state::dedup::valid_request_id(id) => {
                Ok(RequestId(Some(id.to_string())))
            }
            _ => Err(HttpError(ApiError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "{} must be 1 to {} bytes of letters, digits and -_.:",
                    dsync_api::HEADER_REQUEST_ID,
                    crate::state::dedup::MAX_REQUEST_ID
                ),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use dsync_api::types::KvPutRequest;

    use super::*;

    async fn rejection<T: DeserializeOwned>(body: &str) -> ApiError {
        let req = Request::builder()
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        match Json::<T>::from_request(req, &()).await {
            Ok(_) => panic!("{body} was accepted"),
            Err(HttpError(e)) => e,
        }
    }

    #[tokio::test]
    async fn a_bad_field_is_named_with_its_path() {
        let e = rejection::<KvPutRequest>(r#"{"value":1,"fence":{"lock":"l","token":"x"}}"#).await;
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("fence.token"), "{e}");
        let e = rejection::<KvPutRequest>(r#"{"valu":1}"#).await;
        assert!(e.message.contains("`valu`"), "{e}");
        let e = rejection::<dsync_api::queue::EnqueueRequest>(
            r#"{"messages":[{"payload":1},{"payload":2,"delay_ms":-1}]}"#,
        )
        .await;
        assert!(e.message.contains("messages[1].delay_ms"), "{e}");
        let e = rejection::<dsync_api::queue::EnqueueRequest>(
            r#"{"payload":1,"messages":[{"payload":2}]}"#,
        )
        .await;
        assert!(
            e.message.contains("`payload`") && e.message.contains("`messages`"),
            "{e}"
        );
    }
}
