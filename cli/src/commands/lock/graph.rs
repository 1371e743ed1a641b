//! `dsync lock graph`: the wait-for graph and the recently refused cycles.

use std::time::{SystemTime, UNIX_EPOCH};

use dsync_api::locks::LockGraph;

use super::cycle_line;
use crate::commands::EXIT_OK;
use crate::context::{GlobalArgs, RequestExt};
use crate::duration::format_ms;
use crate::output::Table;

#[derive(Debug, clap::Args)]
pub struct GraphArgs {}

pub async fn run(global: &GlobalArgs, _args: GraphArgs) -> anyhow::Result<i32> {
    let client = global.client()?;
    let graph = client.lock_graph().await.api()?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, crate::duration::millis);
    global.output.print(&graph, || render(&graph, now_ms))?;
    Ok(EXIT_OK)
}

fn render(graph: &LockGraph, now_ms: u64) -> String {
    let mut out = String::new();
    if graph.edges.is_empty() {
        out.push_str("nobody waits\n");
    } else {
        let mut t = Table::new(["WAITER", "", "HOLDER", "LOCK"]);
        for e in &graph.edges {
            t.row([e.waiter.as_str(), "->", e.holder.as_str(), e.lock.as_str()]);
        }
        out.push_str(&t.render());
    }
    out.push('\n');
    if graph.deadlocks.is_empty() {
        out.push_str("no recent deadlocks\n");
    } else {
        out.push_str("recent deadlocks (requests refused):\n");
        // The leader's clock stamps refusals; "ago" against ours is close
        // enough to tell fresh cycles from old ones.
        let mut t = Table::new(["AT", "AGO", "LOCK", "CYCLE"]);
        for d in &graph.deadlocks {
            let cycle = cycle_line(&d.cycle);
            let cycle = cycle.strip_prefix("deadlock: ").unwrap_or(&cycle);
            t.row([
                utc_time(d.at_ms),
                format_ms(now_ms.saturating_sub(d.at_ms)),
                d.lock.clone(),
                cycle.to_string(),
            ]);
        }
        out.push_str(&t.render());
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time in milliseconds (civil-from-days,
/// after Howard Hinnant), to avoid a date crate for one column.
fn utc_time(ms: u64) -> String {
    let secs = ms / 1_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsync_api::locks::{DeadlockInfo, WaitEdge};

    #[test]
    fn utc_times_match_known_dates() {
        assert_eq!(utc_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc_time(1_700_000_000_999), "2023-11-14T22:13:20Z");
        assert_eq!(utc_time(4_107_542_399_000), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn edges_then_deadlocks_with_closed_cycles() {
        let graph = LockGraph {
            edges: vec![
                WaitEdge {
                    waiter: "b".into(),
                    holder: "a".into(),
                    lock: "x".into(),
                },
                WaitEdge {
                    waiter: "c".into(),
                    holder: "b".into(),
                    lock: "jobs/y".into(),
                },
            ],
            deadlocks: vec![DeadlockInfo {
                cycle: vec!["a".into(), "b".into()],
                lock: "x".into(),
                at_ms: 1_700_000_000_000,
            }],
        };
        assert_eq!(
            render(&graph, 1_700_000_005_000),
            "WAITER      HOLDER  LOCK\n\
             b       ->  a       x\n\
             c       ->  b       jobs/y\n\n\
             recent deadlocks (requests refused):\n\
             AT                    AGO  LOCK  CYCLE\n\
             2023-11-14T22:13:20Z  5s   x     a -> b -> a\n"
        );
    }

    #[test]
    fn an_idle_graph_says_so() {
        let graph = LockGraph {
            edges: vec![],
            deadlocks: vec![],
        };
        assert_eq!(render(&graph, 0), "nobody waits\n\nno recent deadlocks\n");
    }
}
