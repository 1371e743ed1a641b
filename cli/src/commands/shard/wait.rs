//! Waiting until every queue group of a shard map has a leader, as the
//! leaders themselves say (`GET /v1/shards` on each node).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use dsync_api::shards::{ShardMap, ShardsStatus};
use dsync_api::{routes, Client};

use crate::context::within;
use crate::progress::Progress;

const POLL_EVERY: Duration = Duration::from_millis(250);
const PER_NODE_TIMEOUT: Duration = Duration::from_secs(2);

/// What one poll found: each node's view, or why it could not be read.
pub type Views = Vec<(u64, Result<ShardsStatus, String>)>;

#[derive(Debug, Default, PartialEq)]
pub struct Led {
    /// Group → the node that reports itself its leader.
    pub leaders: BTreeMap<u64, u64>,
    /// Groups without one yet, with the reason.
    pub waiting: Vec<(u64, String)>,
}

/// Which groups of `map` have a leader. A group counts as led when a node
/// that has applied `map` (or a later map) reports itself the group's
/// leader: another node's report may be stale, the leader's own is not
/// older than its term. Two self-reported leaders (an old term not yet
/// told) resolve to the higher term.
pub fn groups_led(map: &ShardMap, views: &Views) -> Led {
    let mut led = Led::default();
    for group in &map.groups {
        let claim = views
            .iter()
            .filter_map(|(id, v)| {
                let s = v.as_ref().ok().filter(|s| s.map.epoch >= map.epoch)?;
                let g = s.groups.iter().find(|g| g.id == group.id)?;
                (g.leader == Some(*id)).then_some((g.term, *id))
            })
            .max();
        match claim {
            Some((_, leader)) => {
                led.leaders.insert(group.id, leader);
            }
            None => led.waiting.push((group.id, why_not(map, group.id, views))),
        }
    }
    led
}

/// The first thing in the way of a leader for `group`, replica by replica.
fn why_not(map: &ShardMap, group: u64, views: &Views) -> String {
    let replicas = map
        .group(group)
        .map(|g| g.replicas.as_slice())
        .unwrap_or(&[]);
    let mut reasons = Vec::new();
    for r in replicas {
        match views.iter().find(|(id, _)| id == r).map(|(_, v)| v) {
            None => reasons.push(format!("node {r} is not polled")),
            Some(Err(e)) => reasons.push(format!("node {r} {e}")),
            Some(Ok(s)) if s.map.epoch < map.epoch => reasons.push(format!(
                "node {r} has shard map epoch {}, not {} yet",
                s.map.epoch, map.epoch
            )),
            Some(Ok(s)) => match s.groups.iter().find(|g| g.id == group) {
                None => reasons.push(format!("node {r} does not report the group")),
                Some(g) => {
                    if let Some(l) = g.leader {
                        reasons.push(format!("node {r} names {l}, which does not confirm"));
                    }
                }
            },
        }
    }
    if reasons.is_empty() {
        format!("no leader elected yet among replicas {replicas:?}")
    } else {
        reasons.join("; ")
    }
}

/// Polls `nodes` (id, address) until every group of `map` has a leader, or
/// `timeout` passes (an error naming what each group still waits for).
pub async fn wait_led(
    client: &Client,
    nodes: &[(u64, String)],
    map: &ShardMap,
    timeout: Duration,
    progress: &mut Progress,
) -> anyhow::Result<BTreeMap<u64, u64>> {
    let deadline = Instant::now() + timeout;
    let total = map.groups.len();
    loop {
        let polls = nodes.iter().map(|(id, addr)| async move {
            let view = within(
                PER_NODE_TIMEOUT,
                client.call_node::<ShardsStatus>(addr, routes::SHARDS),
            )
            .await
            .map_err(|e| format!("unreachable: {e}"));
            (*id, view)
        });
        let views: Views = futures::future::join_all(polls).await;
        let led = groups_led(map, &views);
        if led.waiting.is_empty() {
            return Ok(led.leaders);
        }
        if Instant::now() >= deadline {
            let mut out = format!(
                "timed out after {} s waiting for the queue groups to elect leaders ({} of {total} led)",
                timeout.as_secs(),
                led.leaders.len()
            );
            for (g, why) in &led.waiting {
                let _ = write!(out, "\n  group {g}: {why}");
            }
            anyhow::bail!("{out}");
        }
        let ids: Vec<String> = led.waiting.iter().map(|(g, _)| g.to_string()).collect();
        progress.step(format!(
            "waiting for the queue groups to elect leaders ({} of {total} led; waiting for group {})",
            led.leaders.len(),
            ids.join(", ")
        ));
        tokio::time::sleep(POLL_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsync_api::shards::GroupStatus;

    fn group(id: u64, leader: Option<u64>, term: u64) -> GroupStatus {
        GroupStatus {
            id,
            holds_topics: true,
            leader,
            term,
            last_index: 1,
            replicas: vec![],
            topics: 0,
            depth: 0,
        }
    }

    fn view(
        node: u64,
        map: &ShardMap,
        groups: Vec<GroupStatus>,
    ) -> (u64, Result<ShardsStatus, String>) {
        let s = ShardsStatus {
            node,
            map: map.clone(),
            groups,
        };
        (node, Ok(s))
    }

    fn two_groups() -> ShardMap {
        ShardMap::initial(&[1, 2, 3], 2, 2).unwrap()
    }

    #[test]
    fn a_group_is_led_when_its_leader_says_so() {
        let map = two_groups();
        let views = vec![
            view(1, &map, vec![group(1, Some(1), 2), group(2, Some(3), 1)]),
            view(3, &map, vec![group(1, Some(1), 2), group(2, Some(3), 1)]),
        ];
        let led = groups_led(&map, &views);
        assert!(led.waiting.is_empty(), "{led:?}");
        assert_eq!(led.leaders, BTreeMap::from([(1, 1), (2, 3)]));
    }

    #[test]
    fn a_leader_named_by_others_only_is_not_enough() {
        let map = two_groups();
        let views = vec![
            view(1, &map, vec![group(1, Some(1), 2), group(2, Some(3), 1)]),
            (3, Err("unreachable: refused".to_string())),
        ];
        let led = groups_led(&map, &views);
        assert_eq!(led.leaders, BTreeMap::from([(1, 1)]));
        assert_eq!(led.waiting.len(), 1);
        assert_eq!(led.waiting[0].0, 2);
    }

    #[test]
    fn a_node_on_an_older_map_does_not_count() {
        let map = two_groups();
        let old = ShardMap::default();
        let views = vec![
            view(1, &old, vec![group(1, Some(1), 1)]),
            view(2, &old, vec![group(2, Some(2), 1)]),
        ];
        let led = groups_led(&map, &views);
        assert!(led.leaders.is_empty());
        let why = &led.waiting[0].1;
        assert!(why.contains("shard map epoch 0, not 1"), "{why}");
    }

    #[test]
    fn the_higher_term_wins_between_two_self_reported_leaders() {
        let map = ShardMap::initial(&[1, 2], 1, 2).unwrap();
        let views = vec![
            view(1, &map, vec![group(1, Some(1), 3)]),
            view(2, &map, vec![group(1, Some(2), 4)]),
        ];
        assert_eq!(groups_led(&map, &views).leaders, BTreeMap::from([(1, 2)]));
    }

    #[test]
    fn the_reason_names_unreachable_replicas_and_unconfirmed_leaders() {
        let map = ShardMap::initial(&[1, 2], 1, 2).unwrap();
        let views = vec![
            view(1, &map, vec![group(1, Some(2), 3)]),
            (2, Err("unreachable: refused".to_string())),
        ];
        let why = &groups_led(&map, &views).waiting[0].1;
        assert!(
            why.contains("node 1 names 2, which does not confirm"),
            "{why}"
        );
        assert!(why.contains("node 2 unreachable: refused"), "{why}");
    }
}
