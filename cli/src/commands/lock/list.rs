//! `dsync lock list [NAME]`: every lock in use, or one lock in detail.

use dsync_api::locks::{HolderInfo, LockInfo, LockList};

use crate::commands::EXIT_OK;
use crate::context::{GlobalArgs, RequestExt};
use crate::duration::format_ms;
use crate::output::{ellipsize, Table};

/// Widest HOLDERS cell in the overview; many shared holders would otherwise
/// push the other columns off screen. JSON/YAML output is never cut.
const HOLDERS_WIDTH: usize = 80;

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Show this lock's holders and waiters in detail instead of the overview.
    pub name: Option<String>,
}

pub async fn run(global: &GlobalArgs, args: ListArgs) -> anyhow::Result<i32> {
    let client = global.client()?;
    match args.name {
        Some(name) => {
            let info = client.lock_get(&name).await.api()?;
            global.output.print(&info, || detail(&info))?;
        }
        None => {
            let list = client.locks().await.api()?;
            global.output.print(&list, || overview(&list))?;
        }
    }
    Ok(EXIT_OK)
}

/// `owner(mode,token)`: the three facts that identify a grant.
fn holder_cell(h: &HolderInfo) -> String {
    format!("{}({},{})", h.owner, h.mode.as_str(), h.token)
}

fn overview(list: &LockList) -> String {
    let mut t = Table::new(["NAME", "HOLDERS", "WAITERS", "OLDEST WAIT"]);
    for lock in &list.locks {
        let holders: Vec<String> = lock.holders.iter().map(holder_cell).collect();
        let oldest = lock.waiters.iter().map(|w| w.waited_ms).max();
        t.row([
            lock.name.clone(),
            ellipsize(&or_dash(holders.join(", ")), HOLDERS_WIDTH),
            lock.waiters.len().to_string(),
            oldest.map_or_else(|| "-".to_string(), format_ms),
        ]);
    }
    t.render()
}

fn detail(info: &LockInfo) -> String {
    let mut out = format!("lock {}\n\n", info.name);
    if info.holders.is_empty() {
        out.push_str("no holders\n");
    } else {
        let mut t = Table::new(["HOLDER", "MODE", "TOKEN", "HELD", "EXPIRES IN", "TTL"]);
        for h in &info.holders {
            t.row([
                h.owner.clone(),
                h.mode.as_str().to_string(),
                h.token.to_string(),
                format_ms(h.held_ms),
                format_ms(h.expires_in_ms),
                format_ms(h.ttl_ms),
            ]);
        }
        out.push_str(&t.render());
    }
    out.push('\n');
    if info.waiters.is_empty() {
        out.push_str("no waiters\n");
    } else {
        // The queue is FIFO, so the position says who is granted next.
        let mut t = Table::new(["#", "WAITER", "MODE", "WAITED", "GIVES UP IN"]);
        for (i, w) in info.waiters.iter().enumerate() {
            let mode = if w.upgrade {
                format!("{} (upgrade)", w.mode.as_str())
            } else {
                w.mode.as_str().to_string()
            };
            t.row([
                (i + 1).to_string(),
                w.owner.clone(),
                mode,
                format_ms(w.waited_ms),
                format_ms(w.deadline_in_ms),
            ]);
        }
        out.push_str(&t.render());
    }
    out
}

fn or_dash(s: String) -> String {
    if s.is_empty() {
        "-".to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsync_api::locks::{LockMode, WaiterInfo};

    fn holder(owner: &str, mode: LockMode, token: u64) -> HolderInfo {
        HolderInfo {
            owner: owner.into(),
            mode,
            token,
            ttl_ms: 30_000,
            held_ms: 12_000,
            expires_in_ms: 18_000,
        }
    }

    fn waiter(owner: &str, waited_ms: u64, upgrade: bool) -> WaiterInfo {
        WaiterInfo {
            owner: owner.into(),
            mode: LockMode::Exclusive,
            waited_ms,
            deadline_in_ms: 60_000,
            upgrade,
        }
    }

    fn sample() -> LockInfo {
        LockInfo {
            name: "db/migrate".into(),
            holders: vec![
                holder("a", LockMode::Shared, 7),
                holder("b", LockMode::Shared, 9),
            ],
            waiters: vec![waiter("c", 4_000, false), waiter("a", 1_500, true)],
        }
    }

    #[test]
    fn overview_shows_holders_waiter_count_and_oldest_wait() {
        let list = LockList {
            locks: vec![
                sample(),
                LockInfo {
                    name: "free".into(),
                    holders: vec![],
                    waiters: vec![],
                },
            ],
        };
        assert_eq!(
            overview(&list),
            "NAME        HOLDERS                   WAITERS  OLDEST WAIT\n\
             db/migrate  a(shared,7), b(shared,9)  2        4s\n\
             free        -                         0        -\n"
        );
    }

    #[test]
    fn detail_lists_holders_then_the_queue_in_order() {
        let text = detail(&sample());
        assert_eq!(
            text,
            "lock db/migrate\n\n\
             HOLDER  MODE    TOKEN  HELD  EXPIRES IN  TTL\n\
             a       shared  7      12s   18s         30s\n\
             b       shared  9      12s   18s         30s\n\n\
             #  WAITER  MODE                 WAITED  GIVES UP IN\n\
             1  c       exclusive            4s      1m\n\
             2  a       exclusive (upgrade)  1s      1m\n"
        );
    }

    #[test]
    fn detail_of_a_free_lock_says_so() {
        let info = LockInfo {
            name: "x".into(),
            holders: vec![],
            waiters: vec![],
        };
        assert_eq!(detail(&info), "lock x\n\nno holders\n\nno waiters\n");
    }
}
