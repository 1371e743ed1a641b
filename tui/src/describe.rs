//! `/v1/events` events as one-line rows of the Events panel.

use dsync_api::events::Event;
use dsync_api::types::Role;

use crate::app::{EventRow, Severity};

/// The row for `event`; `received_ms` stamps events that carry no time.
/// `None` for events with nothing to show.
pub fn describe(event: Event, received_ms: u64) -> Option<EventRow> {
    let kind = event.kind();
    let (at_ms, text, severity) = match event {
        Event::Role {
            node,
            role,
            term,
            leader,
        } => {
            let text = match (role, leader) {
                (Role::Leader, _) => format!("node {node} became leader (term {term})"),
                (r, Some(l)) => format!("node {node} is {r}, leader {l} (term {term})"),
                (r, None) => format!("node {node} is {r}, no leader (term {term})"),
            };
            let sev = if role == Role::Leader || leader.is_none() {
                Severity::Notice
            } else {
                Severity::Info
            };
            (received_ms, text, sev)
        }
        Event::LockGranted {
            lock,
            owner,
            mode,
            token,
            at_ms,
        } => (
            at_ms,
            format!(
                "lock {lock} granted to {owner} ({}, token {token})",
                mode.as_str()
            ),
            Severity::Info,
        ),
        Event::Deadlock { lock, cycle, at_ms } => (
            at_ms,
            format!("deadlock refused on {lock}: {}", cycle_text(&cycle)),
            Severity::Alert,
        ),
        Event::LockForceReleased {
            lock,
            owners,
            at_ms,
        } => (
            at_ms,
            format!("lock {lock} force-released from {}", owners.join(", ")),
            Severity::Notice,
        ),
        Event::DeadLetter {
            topic,
            id,
            attempt,
            at_ms,
        } => (
            at_ms,
            format!("message {id} of {topic} dead-lettered after {attempt} attempt(s)"),
            Severity::Alert,
        ),
        Event::Lagged { skipped } => (
            received_ms,
            format!("dashboard fell behind: {skipped} events skipped"),
            Severity::Notice,
        ),
        Event::Unknown => return None,
    };
    Some(EventRow {
        at_ms,
        kind,
        text,
        severity,
    })
}

/// `a → b → a`: the cycle closed back on its first owner.
pub fn cycle_text(cycle: &[String]) -> String {
    let mut parts: Vec<&str> = cycle.iter().map(String::as_str).collect();
    if let Some(first) = cycle.first() {
        parts.push(first);
    }
    parts.join(" → ")
}

/// `HH:MM:SS` (UTC) of a wall-clock time in ms since the Unix epoch.
pub fn clock(at_ms: u64) -> String {
    let s = at_ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A short age: `850ms`, `12.3s`, `4m05s`, `2h10m`.
pub fn age(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_close_on_their_first_owner() {
        assert_eq!(cycle_text(&["b".into(), "a".into()]), "b → a → b");
        assert_eq!(cycle_text(&[]), "");
    }

    #[test]
    fn times_and_ages() {
        assert_eq!(clock(86_400_000 + 3_723_000), "01:02:03");
        assert_eq!(age(850), "850ms");
        assert_eq!(age(12_345), "12.3s");
        assert_eq!(age(245_000), "4m05s");
        assert_eq!(age(7_800_000), "2h10m");
    }

    #[test]
    fn unknown_events_are_not_shown() {
        assert!(describe(Event::Unknown, 0).is_none());
        let row = describe(Event::Lagged { skipped: 3 }, 42).unwrap();
        assert_eq!((row.at_ms, row.kind), (42, "lagged"));
    }
}
