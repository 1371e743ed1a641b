//! Wire types of the message queue (`/v1/queues`).

use serde::{Deserialize, Serialize};

pub const MAX_TOPIC: usize = 200;
pub const MAX_CONSUMER: usize = 128;
pub const MAX_DEDUP_ID: usize = 128;
/// Hard cap of one message's payload (JSON text), in bytes.
pub const HARD_MAX_MESSAGE_BYTES: u64 = 1024 * 1024;
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 256 * 1024;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
pub const DEFAULT_VISIBILITY_MS: u64 = 30_000;
pub const DEFAULT_RETENTION_MS: u64 = 4 * 24 * 3600 * 1000;
/// Window in which a repeated `dedup_id` is recognized.
pub const DEDUP_WINDOW_MS: u64 = 5 * 60 * 1000;
/// Most messages in one enqueue, consume or ack.
pub const MAX_BATCH: usize = 1000;
pub const MAX_VISIBILITY_MS: u64 = 12 * 3600 * 1000;
pub const MAX_DELAY_MS: u64 = 15 * 60 * 1000;
pub const MAX_WAIT_MS: u64 = 60_000;
/// Dead-letter topics are named `{topic}.dlq`.
pub const DLQ_SUFFIX: &str = ".dlq";

/// One message to enqueue.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    pub payload: serde_json::Value,
    /// Invisible for this long after enqueue.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 900_000))]
    pub delay_ms: Option<u64>,
    /// Enqueues with the same id within 5 minutes yield the first message's id.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*$"
        )
    )]
    pub dedup_id: Option<String>,
}

/// `POST /v1/queues/{topic}/messages`: one message, or `{"messages": [...]}`,
/// never both (a body that mixes them is refused, naming the fields).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged, try_from = "EnqueueBody")]
pub enum EnqueueRequest {
    Batch {
        #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
        messages: Vec<NewMessage>,
    },
    One(NewMessage),
}

/// An enqueue body as sent, with the fields of both forms, so that one
/// mixing them is refused by name instead of half ignored (an untagged
/// enum would take the batch and drop the rest, or say only that no
/// variant matched).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnqueueBody {
    #[serde(default)]
    messages: Option<Vec<NewMessage>>,
    // `"payload": null` is a message whose payload is null, not no payload.
    #[serde(default, deserialize_with = "present")]
    payload: Option<serde_json::Value>,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    dedup_id: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

impl TryFrom<EnqueueBody> for EnqueueRequest {
    type Error = String;

    fn try_from(b: EnqueueBody) -> Result<Self, String> {
        match (b.messages, b.payload) {
            (Some(_), Some(_)) => Err("the body has both `payload` (one message) and \
                 `messages` (a batch); send one of them"
                .into()),
            (Some(_), None) if b.delay_ms.is_some() || b.dedup_id.is_some() => Err(
                "`delay_ms` and `dedup_id` belong to each item of `messages`, not beside it".into(),
            ),
            (Some(messages), None) => Ok(EnqueueRequest::Batch { messages }),
            (None, Some(payload)) => Ok(EnqueueRequest::One(NewMessage {
                payload,
                delay_ms: b.delay_ms,
                dedup_id: b.dedup_id,
            })),
            (None, None) => {
                Err("missing field `payload` (one message) or `messages` (a batch)".into())
            }
        }
    }
}

impl EnqueueRequest {
    pub fn into_messages(self) -> Vec<NewMessage> {
        match self {
            EnqueueRequest::Batch { messages } => messages,
            EnqueueRequest::One(m) => vec![m],
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnqueueResponse {
    pub ids: Vec<u64>,
}

/// `POST /v1/queues/{topic}/consume`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsumeRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::consumer))]
    pub consumer: String,
    #[serde(default = "one")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub max: usize,
    /// How long the messages stay invisible to others (default: the topic's).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 43_200_000))]
    pub visibility_ms: Option<u64>,
    /// Long poll: wait up to this long for a message if none is ready.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 60_000))]
    pub wait_ms: u64,
}

fn one() -> usize {
    1
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Delivered {
    pub id: u64,
    pub payload: serde_json::Value,
    /// 1 on first delivery, +1 on every redelivery.
    pub attempt: u32,
    /// Identifies this delivery; ack, nack and extend take it.
    pub receipt: String,
    pub enqueued_at_ms: u64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConsumeResponse {
    pub messages: Vec<Delivered>,
}

/// `POST /v1/queues/{topic}/ack`, `/nack` (with `delay_ms`), `/extend`
/// (with `visibility_ms`); a verb refuses the other verbs' field.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReceiptsRequest {
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub receipts: Vec<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 900_000))]
    pub delay_ms: Option<u64>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 43_200_000))]
    pub visibility_ms: Option<u64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReceiptsResponse {
    /// How many receipts took effect.
    pub count: usize,
}

/// `PUT /v1/queues/{topic}`: per-topic settings (any subset).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 43_200_000))]
    pub visibility_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_048_576))]
    pub max_message_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1000, maximum = 1_209_600_000))]
    pub retention_ms: Option<u64>,
}

/// `GET /v1/queues/{topic}` and one item of `GET /v1/queues`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicStats {
    pub topic: String,
    pub ready: u64,
    pub in_flight: u64,
    pub delayed: u64,
    /// Messages in `{topic}.dlq`.
    pub dead_lettered: u64,
    pub enqueued_total: u64,
    pub acked_total: u64,
    pub redelivered_total: u64,
    /// Age of the oldest message not yet acked (0 if none).
    pub oldest_age_ms: u64,
    pub max_attempts: u32,
    pub visibility_ms: u64,
    pub max_message_bytes: u64,
    pub retention_ms: u64,
    /// The Raft group holding the topic (`GET /v1/shards`); 0 from nodes
    /// before shards.
    #[serde(default)]
    pub group: u64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicList {
    pub topics: Vec<TopicStats>,
}

/// `POST /v1/queues/{topic}/redrive` response.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RedriveResponse {
    pub moved: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<EnqueueRequest, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn either_form_parses_and_serializes_back_as_sent() {
        for body in [
            json!({"payload": null, "delay_ms": 5, "dedup_id": "d"}),
            json!({"messages": [{"payload": 1}, {"payload": {"a": 2}, "delay_ms": 3}]}),
        ] {
            let req = parse(body.clone()).unwrap();
            let back: serde_json::Value = serde_json::to_value(&req).unwrap();
            assert_eq!(parse(back).unwrap(), req, "{body}");
        }
        let one = parse(json!({"payload": null})).unwrap();
        assert_eq!(one.into_messages()[0].payload, serde_json::Value::Null);
    }

    #[test]
    fn a_body_mixing_the_forms_or_with_neither_is_refused_by_field_name() {
        let both = parse(json!({"payload": 1, "messages": [{"payload": 2}]})).unwrap_err();
        assert!(
            both.contains("`payload`") && both.contains("`messages`"),
            "{both}"
        );
        let beside = parse(json!({"messages": [{"payload": 2}], "dedup_id": "d"})).unwrap_err();
        assert!(beside.contains("`dedup_id`"), "{beside}");
        let neither = parse(json!({"delay_ms": 1})).unwrap_err();
        assert!(neither.contains("`payload`"), "{neither}");
        let unknown = parse(json!({"payload": 1, "paylod": 2})).unwrap_err();
        assert!(unknown.contains("`paylod`"), "{unknown}");
        let inner = parse(json!({"messages": [{"payload": 1, "delay": 2}]})).unwrap_err();
        assert!(inner.contains("`delay`"), "{inner}");
    }
}
