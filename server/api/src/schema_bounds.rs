//! The bounds the OpenAPI schemas declare are literals (utoipa takes no
//! constants): here they are held to the constants the server enforces.

use serde_json::Value;
use utoipa::PartialSchema;

fn props<T: PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).unwrap()["properties"].clone()
}

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_f64()
        .or_else(|| v[key].as_u64().map(|n| n as f64))
        .unwrap_or_else(|| panic!("no {key} in {v}")) as u64
}

#[test]
fn lock_bounds_match_the_limits() {
    use crate::locks::*;
    let a = props::<AcquireRequest>();
    assert_eq!(num(&a["ttl_ms"], "minimum"), MIN_TTL_MS);
    assert_eq!(num(&a["ttl_ms"], "maximum"), MAX_TTL_MS);
    assert_eq!(num(&a["wait_ms"], "maximum"), MAX_WAIT_MS);
    assert_eq!(num(&a["owner"], "maxLength"), MAX_OWNER as u64);
    let k = props::<KeepaliveRequest>();
    assert_eq!(num(&k["ttl_ms"], "maximum"), MAX_TTL_MS);
    assert_eq!(
        num(&props::<ReleaseRequest>()["owner"], "maxLength"),
        MAX_OWNER as u64
    );
}

#[test]
fn queue_bounds_match_the_limits() {
    use crate::queue::*;
    let c = props::<ConsumeRequest>();
    assert_eq!(num(&c["consumer"], "maxLength"), MAX_CONSUMER as u64);
    assert_eq!(num(&c["max"], "maximum"), MAX_BATCH as u64);
    assert_eq!(num(&c["visibility_ms"], "maximum"), MAX_VISIBILITY_MS);
    assert_eq!(num(&c["wait_ms"], "maximum"), MAX_WAIT_MS);
    let r = props::<ReceiptsRequest>();
    assert_eq!(num(&r["receipts"], "maxItems"), MAX_BATCH as u64);
    assert_eq!(num(&r["delay_ms"], "maximum"), MAX_DELAY_MS);
    assert_eq!(num(&r["visibility_ms"], "maximum"), MAX_VISIBILITY_MS);
    let m = props::<NewMessage>();
    assert_eq!(num(&m["delay_ms"], "maximum"), MAX_DELAY_MS);
    assert_eq!(num(&m["dedup_id"], "maxLength"), MAX_DEDUP_ID as u64);
    let t = props::<TopicSettings>();
    assert_eq!(num(&t["visibility_ms"], "maximum"), MAX_VISIBILITY_MS);
    assert_eq!(
        num(&t["max_message_bytes"], "maximum"),
        HARD_MAX_MESSAGE_BYTES
    );
    let batch = serde_json::to_value(EnqueueRequest::schema()).unwrap();
    assert_eq!(
        num(&batch["oneOf"][0]["properties"]["messages"], "maxItems"),
        MAX_BATCH as u64
    );
}

#[test]
fn token_bounds_match_the_limits() {
    use crate::auth::*;
    let t = props::<TokenRequest>();
    assert_eq!(num(&t["subject"], "maxLength"), MAX_SUBJECT as u64);
    assert_eq!(num(&t["scopes"], "maxItems"), MAX_SCOPES as u64);
    assert_eq!(num(&t["ttl_secs"], "maximum"), MAX_TOKEN_TTL_SECS);
}
