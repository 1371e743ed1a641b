//! The parameters several routes share, each described once for the
//! OpenAPI document (`params(Topic, RequestIdHeader)` in a handler's
//! `#[utoipa::path]`). The path names are also the handlers' extractors:
//! they arrive validated, so no handler checks a name by hand.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use dsync_api::locks::MAX_LOCK_NAME;
use dsync_api::queue::MAX_TOPIC;
use dsync_api::routes::MAX_KEY_LEN;
use dsync_api::types::Consistency;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::Required;
use utoipa::IntoParams;

use super::error::{invalid, HttpResult};
use super::extract::ApiPath;

/// 400 unless `value` is 1 to `max` bytes without control characters.
pub fn check_printable(what: &str, value: &str, max: usize) -> HttpResult<()> {
    if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{what} must be 1 to {max} bytes of printable text"
        )));
    }
    Ok(())
}

/// Most items one list call returns (`ListLimit` documents it).
pub const MAX_LIMIT: usize = 10_000;

/// 400 unless a list's `limit` (default 1000) is 1 to [`MAX_LIMIT`].
pub fn list_limit(limit: Option<usize>) -> HttpResult<usize> {
    match limit.unwrap_or(1000) {
        n @ 1..=MAX_LIMIT => Ok(n),
        _ => Err(invalid(format!("limit must be between 1 and {MAX_LIMIT}"))),
    }
}

/// A name the route's only path parameter carries, checked as
/// [`check_printable`] and against the word a sibling route takes.
trait PathName: Sized {
    /// The path parameter.
    const PARAM: &'static str;
    /// What the name is, in errors and in the OpenAPI description.
    const WHAT: &'static str;
    const MAX: usize;
    /// The rest of the OpenAPI description.
    const MORE: &'static str = "";
    /// A name that would shadow a sibling route, with what that route does.
    const RESERVED: Option<(&'static str, &'static str)> = None;
    fn new(name: String) -> Self;
}

async fn path_name<N: PathName>(parts: &mut Parts) -> HttpResult<N> {
    let ApiPath(name) = ApiPath::<String>::from_request_parts(parts, &()).await?;
    check_printable(N::WHAT, &name, N::MAX)?;
    if let Some((word, why)) = N::RESERVED.filter(|(word, _)| name == *word) {
        return Err(invalid(format!("{word:?} is reserved ({why})")));
    }
    Ok(N::new(name))
}

fn describe<N: PathName>() -> Vec<Parameter> {
    let mut what = N::WHAT.to_string();
    what[..1].make_ascii_uppercase();
    let reserved = N::RESERVED.map(|(word, _)| word);
    let parameter = ParameterBuilder::new()
        .name(N::PARAM)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(format!(
            "{what}: 1 to {} bytes of printable text{}",
            N::MAX,
            N::MORE
        )))
        .schema(Some(dsync_api::schema::printable(N::MAX, reserved)));
    vec![parameter.build()]
}

/// Declares validated path names: each is its route's OpenAPI parameter
/// and the extractor its handler takes.
macro_rules! path_names {
    ($($(#[$doc:meta])* $name:ident { $($item:item)* })+) => {$(
        $(#[$doc])*
        pub struct $name(pub String);

        impl PathName for $name {
            $($item)*
            fn new(name: String) -> Self {
                Self(name)
            }
        }

        impl IntoParams for $name {
            fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                describe::<Self>()
            }
        }

        impl<S: Send + Sync> FromRequestParts<S> for $name {
            type Rejection = super::error::HttpError;

            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
                path_name(parts).await
            }
        }
    )+};
}

path_names! {
    /// `{topic}`.
    Topic {
        const PARAM: &'static str = "topic";
        const WHAT: &'static str = "topic";
        const MAX: usize = MAX_TOPIC;
    }
    /// `{name}` of a lock.
    LockName {
        const PARAM: &'static str = "name";
        const WHAT: &'static str = "lock name";
        const MAX: usize = MAX_LOCK_NAME;
    }
    /// `{key}` of the KV store.
    KvKey {
        const PARAM: &'static str = "key";
        const WHAT: &'static str = "key";
        const MAX: usize = MAX_KEY_LEN;
        const MORE: &'static str = " (percent-encode `/`)";
    }
    /// `{key}` of the cache: a KV key in one path segment.
    CacheKey {
        const PARAM: &'static str = "key";
        const WHAT: &'static str = "key";
        const MAX: usize = MAX_KEY_LEN;
        const MORE: &'static str =
            ", one path segment (percent-encode `/`); `lines` is reserved";
        const RESERVED: Option<(&'static str, &'static str)> =
            Some(("lines", "GET /v1/cache/lines lists this node's lines"));
    }
}

#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Read by the derive; `extract::RequestId` reads the header.
pub struct RequestIdHeader {
    /// Names this write: resent with the same id and body, it is applied at most once and answered as the first time
    #[param(
        rename = "x-dsync-request-id",
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9_.:-]+$"
    )]
    request_id: Option<String>,
}

/// How fresh a read must be (`dsync_api::types::ReadQuery`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Read by the derive; handlers take `ReadQuery`.
pub struct ReadOptions {
    /// Read consistency (default `linearizable`)
    consistency: Option<Consistency>,
    /// With `consistency=stale`: refuse (503) if this node may be further behind
    max_staleness_ms: Option<u64>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Read by the derive; see `list_limit`.
pub struct ListLimit {
    /// Most items listed (default 1000)
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    use super::*;

    /// The status a route of path name `N` answers for `path` (below `/p/`).
    async fn status<N: PathName + 'static>(path: &str) -> StatusCode {
        let check = |req: Request| async move {
            let (mut parts, _) = req.into_parts();
            match path_name::<N>(&mut parts).await {
                Ok(_) => StatusCode::OK.into_response(),
                Err(e) => e.into_response(),
            }
        };
        let app = axum::Router::new().route("/p/{name}", axum::routing::get(check));
        let req = Request::get(format!("/p/{path}"))
            .body(Body::empty())
            .unwrap();
        tower::ServiceExt::oneshot(app, req).await.unwrap().status()
    }

    #[tokio::test]
    async fn path_names_are_validated() {
        const BAD: StatusCode = StatusCode::BAD_REQUEST;
        assert_eq!(status::<KvKey>("app%2Fconfig").await, StatusCode::OK);
        assert_eq!(status::<KvKey>("a%0Ab").await, BAD);
        assert_eq!(
            status::<KvKey>(&"x".repeat(MAX_KEY_LEN)).await,
            StatusCode::OK
        );
        assert_eq!(status::<KvKey>(&"x".repeat(MAX_KEY_LEN + 1)).await, BAD);
        assert_eq!(status::<Topic>(&"t".repeat(MAX_TOPIC + 1)).await, BAD);
        assert_eq!(status::<KvKey>("lines").await, StatusCode::OK);
        assert_eq!(status::<CacheKey>("lines").await, BAD);
    }

    #[test]
    fn list_limits_are_bounded_as_documented() {
        assert_eq!(list_limit(None).ok(), Some(1000));
        assert_eq!(list_limit(Some(MAX_LIMIT)).ok(), Some(MAX_LIMIT));
        assert!(list_limit(Some(0)).is_err());
        assert!(list_limit(Some(MAX_LIMIT + 1)).is_err());
        let json = serde_json::to_string(&ListLimit::into_params(|| None)).unwrap();
        assert!(json.contains(&format!("\"maximum\":{MAX_LIMIT}")), "{json}");
    }

    #[test]
    fn a_reserved_word_is_left_out_of_the_pattern() {
        let p = &CacheKey::into_params(|| None)[0];
        let json = serde_json::to_string(p).unwrap();
        assert!(json.contains("(?!lines$)"), "{json}");
        assert!(json.contains("Key: 1 to 512 bytes"), "{json}");
    }
}
