//! OpenAPI schemas of the bounded text fields, built from the constants the
//! server enforces: utoipa's `max_length = …` takes only a literal, which
//! would be one more place to keep in step.

use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

/// Any text without control characters.
const NO_CONTROL: &str = "^[^\\x00-\\x1F\\x7F-\\x9F]*$";

fn text(max: usize, pattern: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(pattern))
        .build()
}

/// Printable text of 1 to `max` bytes that is not `reserved` (a word a
/// sibling route takes, as `lines` in `/v1/cache/lines`).
pub fn printable(max: usize, reserved: Option<&str>) -> Object {
    match reserved {
        None => text(max, NO_CONTROL),
        Some(word) => text(max, &format!("^(?!{word}$){}", &NO_CONTROL[1..])),
    }
}

/// A lock owner.
pub(crate) fn owner() -> Object {
    text(crate::locks::MAX_OWNER, NO_CONTROL)
}

/// A queue consumer.
pub(crate) fn consumer() -> Object {
    text(crate::queue::MAX_CONSUMER, NO_CONTROL)
}

/// A token's subject: `:` separates it from the scope in audit records.
pub(crate) fn subject() -> Object {
    text(crate::auth::MAX_SUBJECT, "^[^\\x00-\\x1F\\x7F-\\x9F:]*$")
}

/// A member's `host:port`.
pub(crate) fn member_addr() -> Object {
    text(
        crate::types::MAX_MEMBER_ADDR,
        "^[^\\s\\x00-\\x1F\\x7F-\\x9F]*$",
    )
}
