//! Durations on the command line (humantime's `500ms`, `30s`, `2m`, `1m30s`,
//! `7d`, or a bare number of milliseconds) and their compact display in
//! tables.

use std::time::Duration;

/// Parses a duration for clap: humantime's units (`500ms`, `30s`, `2m`,
/// `1h30m`, `7d`, `2w`, ...) or a bare number, which is milliseconds because
/// that is the API's unit (`ttl_ms`, `wait_ms`), so `--ttl 5000` means what
/// the server would take it to mean.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("{text:?} is too large"));
    }
    humantime::parse_duration(text).map_err(|e| {
        format!(
            "{text:?} is not a duration ({e}; use e.g. 500ms, 30s, 2m, 1h30m, 7d or milliseconds)"
        )
    })
}

/// Whole milliseconds, saturating: the API speaks `u64` milliseconds.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Compact display of a millisecond count: `750ms`, `30s`, `2m5s`, `1h`.
/// Below a second the milliseconds matter (short leases); above, they are
/// noise in a table and are dropped.
pub fn format_ms(ms: u64) -> String {
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let secs = ms / 1_000;
    let (h, m, s) = (secs / 3_600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> u64 {
        millis(parse_duration(text).unwrap())
    }

    #[test]
    fn units_and_bare_milliseconds_parse() {
        assert_eq!(ms("500ms"), 500);
        assert_eq!(ms("30s"), 30_000);
        assert_eq!(ms("2m"), 120_000);
        assert_eq!(ms("1h"), 3_600_000);
        assert_eq!(ms("7d"), 7 * 86_400_000);
        assert_eq!(ms("1500"), 1_500);
        assert_eq!(ms("0"), 0);
        assert_eq!(ms(" 10s "), 10_000);
    }

    #[test]
    fn units_combine() {
        assert_eq!(ms("1m30s"), 90_000);
        assert_eq!(ms("1h2m3s4ms"), 3_723_004);
        assert_eq!(ms("1h 30m"), 5_400_000);
        assert_eq!(ms("2w"), 14 * 86_400_000);
        assert_eq!(ms("1.5s"), 1_500);
    }

    #[test]
    fn bad_durations_are_refused_with_a_reason() {
        for bad in ["", "s", "10x", "-3s", "ms10", "5s3"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(parse_duration("99999999999999999999").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
        let err = parse_duration("3x").unwrap_err();
        assert!(
            err.contains("unknown time unit") && err.contains("500ms"),
            "{err}"
        );
    }

    #[test]
    fn millisecond_counts_display_compactly() {
        assert_eq!(format_ms(0), "0ms");
        assert_eq!(format_ms(750), "750ms");
        assert_eq!(format_ms(1_000), "1s");
        assert_eq!(format_ms(30_499), "30s");
        assert_eq!(format_ms(120_000), "2m");
        assert_eq!(format_ms(125_000), "2m5s");
        assert_eq!(format_ms(3_600_000), "1h");
        assert_eq!(format_ms(3_723_000), "1h2m3s");
    }

    #[test]
    fn display_parses_back() {
        for v in [750, 1_000, 90_000, 3_723_000] {
            assert_eq!(ms(&format_ms(v)), v);
        }
    }
}
