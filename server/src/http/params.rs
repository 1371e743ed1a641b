//! The parameters several routes share, described once for the OpenAPI
//! document (`params(TopicPath, RequestIdHeader)` in a handler's
//! `#[utoipa::path]`). The handlers read them through `http::extract`;
//! these types only describe them.

#![allow(dead_code)] // Fields are read by the derive, never by code.

use dsync_api::types::Consistency;
use utoipa::IntoParams;

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TopicPath {
    /// Topic: 1 to 200 bytes of printable text
    #[param(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    topic: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LockPath {
    /// Lock name: 1 to 256 bytes of printable text
    #[param(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    name: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KvKeyPath {
    /// Key: 1 to 512 bytes of printable text (percent-encode `/`)
    #[param(
        min_length = 1,
        max_length = 512,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    key: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CacheKeyPath {
    /// Key: 1 to 512 bytes of printable text, one path segment (percent-encode `/`); `lines` is reserved
    #[param(
        min_length = 1,
        max_length = 512,
        pattern = "^(?!lines$)[^\\x00-\\x1F\\x7F-\\x9F]*$"
    )]
    key: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
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
pub struct ReadOptions {
    /// Read consistency (default `linearizable`)
    consistency: Option<Consistency>,
    /// With `consistency=stale`: refuse (503) if this node may be further behind
    max_staleness_ms: Option<u64>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListLimit {
    /// Most items listed (default 1000)
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}
