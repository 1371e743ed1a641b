//! The limits on a request's head (`limits.max_uri_bytes`,
//! `limits.max_header_bytes`, [`MAX_HEADER_FIELDS`]), enforced here rather
//! than by the HTTP parser: its own refusals have empty bodies, so it is
//! given more room (`ServeLimits::parser_max_*`) and these JSON 414 and 431
//! are what clients get. Heads the parser would refuse even so reach here
//! as a stand-in request marked [`Malformed`] (see `serve::frame`).

use axum::http::request::Parts;
use dsync_api::{ApiError, ErrorCode};

use super::error::HttpError;
use crate::auth::config::MAX_HEADER_FIELDS;
use crate::auth::LimitsConfig;
use crate::serve::Malformed;

/// The refusal of a head past a limit, or of the stand-in for a head the
/// HTTP parser would have refused itself.
pub fn admit(parts: &Parts, limits: &LimitsConfig) -> Result<(), HttpError> {
    if let Some(why) = parts.extensions.get::<Malformed>() {
        return Err(HttpError(why.to_api()));
    }
    check(parts, limits)
}

/// Bytes of the header fields as sent in HTTP/1: `name: value\r\n` each.
fn header_bytes(parts: &Parts) -> usize {
    parts
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

fn check(parts: &Parts, limits: &LimitsConfig) -> Result<(), HttpError> {
    let target = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    // What is measured, how much there is, the most taken and its setting.
    let bounds = [
        (
            ErrorCode::UriTooLong,
            "the request target's length in bytes",
            target,
            limits.max_uri_bytes,
            " (limits.max_uri_bytes)",
        ),
        (
            ErrorCode::HeadersTooLarge,
            "the number of header fields",
            parts.headers.len(),
            MAX_HEADER_FIELDS,
            "",
        ),
        (
            ErrorCode::HeadersTooLarge,
            "the header fields' size in bytes",
            header_bytes(parts),
            limits.max_header_bytes,
            " (limits.max_header_bytes)",
        ),
    ];
    match bounds.into_iter().find(|(_, _, have, most, _)| have > most) {
        Some((code, what, have, most, setting)) => Err(HttpError(ApiError::new(
            code,
            format!("{what} is {have}; this node takes at most {most}{setting}"),
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(uri: &str, headers: &[(String, String)]) -> Parts {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(k, v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn code(p: &Parts, l: &LimitsConfig) -> Option<ErrorCode> {
        check(p, l).err().map(|e| e.0.code)
    }

    #[test]
    fn a_head_past_a_limit_is_refused_with_its_code_and_one_at_it_is_not() {
        let l = LimitsConfig {
            max_uri_bytes: 300,
            max_header_bytes: 2000,
            ..LimitsConfig::default()
        };
        let at = format!("/v1/kv/{}", "k".repeat(300 - 7));
        assert_eq!(code(&parts(&at, &[]), &l), None);
        let over = format!("{at}?");
        assert_eq!(code(&parts(&over, &[]), &l), Some(ErrorCode::UriTooLong));

        // "x-big: " + value + "\r\n" = 2000 bytes exactly.
        let value = "v".repeat(2000 - 5 - 4);
        let fits = [("x-big".to_string(), value.clone())];
        assert_eq!(code(&parts("/", &fits), &l), None);
        let big = [("x-big".to_string(), format!("{value}v"))];
        assert_eq!(
            code(&parts("/", &big), &l),
            Some(ErrorCode::HeadersTooLarge)
        );

        let many: Vec<_> = (0..=MAX_HEADER_FIELDS)
            .map(|i| (format!("x-{i}"), "1".to_string()))
            .collect();
        let e = check(&parts("/", &many), &l).unwrap_err().0;
        assert_eq!(e.code, ErrorCode::HeadersTooLarge);
        assert!(e.message.contains("header fields"), "{e}");
        assert_eq!(code(&parts("/", &many[1..]), &l), None);
    }
}
