//! `dsync shard init`: the first shard map of a cluster; also what
//! `cluster up --shards` runs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use dsync_api::client::ClientError;
use dsync_api::shards::{InitShards, ShardMap, ShardsStatus, MAX_GROUPS};
use dsync_api::{routes, Client, ErrorCode};
use serde::Serialize;

use super::wait::wait_led;
use crate::commands::EXIT_OK;
use crate::context::{within, GlobalArgs, RequestError, RequestExt};
use crate::output::Table;
use crate::progress::Progress;

const PER_NODE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a 409 may take to show up as a map on some node.
const SETTLE_FOR: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Queue groups to create, 1 to 1024. Topics are spread over them by
    /// consistent hashing; each is a Raft group of its own, with a log,
    /// election timers and heartbeats and a folder data_dir/groups/<id>/ on
    /// each of its replicas. At least as many as nodes lets every node
    /// lead one.
    #[arg(long, value_name = "G", value_parser = clap::value_parser!(u64).range(1..=MAX_GROUPS))]
    pub groups: u64,

    /// Replicas per group [default: 3, or the number of voters if fewer].
    /// A group stays available while a majority of its replicas is up.
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u64).range(1..))]
    pub replicas: Option<u64>,

    /// Seconds to wait until every group has elected a leader; 0 returns as
    /// soon as the map is committed.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub timeout: u64,
}

/// The map a cluster ends up with, and whether this call made it.
#[derive(Debug)]
pub struct Ensured {
    pub map: ShardMap,
    pub created: bool,
    /// Said on stderr: a flag that did not apply.
    pub note: Option<String>,
}

/// Gives the cluster `groups` queue groups unless it has them already: a
/// map of the same G is taken as done (re-running a setup script is fine),
/// any other G is an error, since changing G is resharding.
pub async fn ensure(
    client: &Client,
    groups: u64,
    replicas: Option<u64>,
) -> anyhow::Result<Ensured> {
    let status = newest(client).await?;
    if !status.map.groups.is_empty() {
        return existing(status.map, groups, replicas);
    }
    match client.shards_init(&InitShards { groups, replicas }).await {
        Ok(map) => Ok(Ensured {
            map,
            created: true,
            note: None,
        }),
        Err(e) if e.code() == Some(ErrorCode::Conflict) => {
            // Another init won the race (or one committed before a restart,
            // which the nodes asked above had not replayed yet), or the
            // control group holds topics.
            let now = settled(client).await?;
            if !now.map.groups.is_empty() {
                return existing(now.map, groups, replicas);
            }
            let (topics, depth) = now.groups.first().map_or((0, 0), |g| (g.topics, g.depth));
            let hint = if topics > 0 || depth > 0 {
                format!(
                    "\nthe control group holds {topics} topic(s), {depth} message(s) not yet acked, from before queue groups; \
                     moving live topics out of the control group is not available (`dsync shard reshard` moves topics between queue groups). Drain them (consume and ack until \
                     `dsync queue stats` shows 0 READY, IN_FLIGHT, DELAYED and DLQ on every topic), then run this again \
                     (docs/operations.md, \"Queue shards\")"
                )
            } else {
                String::new()
            };
            anyhow::bail!("{}{hint}", RequestError(e))
        }
        Err(ClientError::Api {
            status: status @ (404 | 405),
            ..
        }) => anyhow::bail!(
            "the nodes do not support queue groups (POST /v1/shards answered HTTP {status}): \
             they run a release from before queue groups; upgrade them first (`dsync cluster upgrade`)"
        ),
        Err(e) => Err(RequestError(e).into()),
    }
}

/// The view with the newest shard map among the client's endpoints: a node
/// just restarted may not have replayed the map yet, and `GET /v1/shards`
/// answers from the node asked.
async fn newest(client: &Client) -> anyhow::Result<ShardsStatus> {
    let endpoints = client.endpoints();
    let polls = endpoints.iter().map(|e| {
        within(
            PER_NODE_TIMEOUT,
            client.call_node::<ShardsStatus>(e, routes::SHARDS),
        )
    });
    let views = futures::future::join_all(polls).await;
    match views.into_iter().flatten().max_by_key(|s| s.map.epoch) {
        Some(s) => Ok(s),
        // None answered: ask again with retries, for the error to report.
        None => client
            .shards()
            .await
            .api()
            .context("cannot read the shard map (GET /v1/shards)"),
    }
}

/// [`newest`] after a 409, for a few seconds until some node shows the map
/// the refusal implies, unless topics in the control group explain it.
async fn settled(client: &Client) -> anyhow::Result<ShardsStatus> {
    let deadline = Instant::now() + SETTLE_FOR;
    loop {
        let s = newest(client).await?;
        let topics = s.groups.first().is_some_and(|g| g.topics > 0);
        if !s.map.groups.is_empty() || topics || Instant::now() >= deadline {
            return Ok(s);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn existing(map: ShardMap, groups: u64, replicas: Option<u64>) -> anyhow::Result<Ensured> {
    let have = map.groups.len() as u64;
    if have != groups {
        anyhow::bail!(
            "the cluster already has {have} queue group(s) (shard map epoch {}), not {groups}: change the number \
             of groups with `dsync shard reshard --groups {groups}`; `dsync shard list` shows them",
            map.epoch
        );
    }
    let note = replicas.and_then(|r| {
        let per = uniform_replicas(&map)?;
        (per as u64 != r).then(|| {
            format!("the queue groups keep their {per} replicas each: --replicas applies to a new shard map only")
        })
    });
    Ok(Ensured {
        map,
        created: false,
        note,
    })
}

/// The replica count of every group, when they all have the same.
fn uniform_replicas(map: &ShardMap) -> Option<usize> {
    let first = map.groups.first()?.replicas.len();
    map.groups
        .iter()
        .all(|g| g.replicas.len() == first)
        .then_some(first)
}

/// `shard init`, and the shard part of `cluster up`.
#[derive(Debug, Serialize)]
pub struct MapReport {
    /// `created` (committed by this command) or `existing` (left as it was).
    pub state: &'static str,
    pub map: ShardMap,
    /// Group → the node leading it, when the command waited for leaders.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub leaders: BTreeMap<u64, u64>,
}

impl MapReport {
    pub fn new(ensured: Ensured, leaders: BTreeMap<u64, u64>) -> MapReport {
        MapReport {
            state: if ensured.created {
                "created"
            } else {
                "existing"
            },
            map: ensured.map,
            leaders,
        }
    }

    pub fn render(&self) -> String {
        let each = uniform_replicas(&self.map)
            .map(|r| format!(", {r} replicas each"))
            .unwrap_or_default();
        let state = if self.state == "created" {
            "created"
        } else {
            "already in place, nothing changed"
        };
        let mut t = Table::new(["GROUP", "REPLICAS", "LEADER"]);
        for g in &self.map.groups {
            let replicas: Vec<String> = g.replicas.iter().map(u64::to_string).collect();
            t.row([
                g.id.to_string(),
                replicas.join(","),
                self.leaders
                    .get(&g.id)
                    .map_or("-".to_string(), u64::to_string),
            ]);
        }
        format!(
            "shard map epoch {}: {} queue group(s){each} ({state})\n{}",
            self.map.epoch,
            self.map.groups.len(),
            t.render()
        )
    }
}

pub async fn run(global: &GlobalArgs, args: InitArgs) -> anyhow::Result<i32> {
    let client = global.client()?;
    let mut progress = Progress::new();
    let ensured = ensure(&client, args.groups, args.replicas).await?;
    if let Some(note) = &ensured.note {
        progress.note(note);
    }
    let mut leaders = BTreeMap::new();
    if args.timeout > 0 {
        let nodes = nodes(global, &client).await?;
        leaders = wait_led(
            &client,
            &nodes,
            &ensured.map,
            Duration::from_secs(args.timeout),
            &mut progress,
        )
        .await
        .with_context(|| {
            format!(
                "shard map epoch {} is committed, but its groups are not all led",
                ensured.map.epoch
            )
        })?;
    }
    progress.finish();
    let report = MapReport::new(ensured, leaders);
    global.output.print(&report, || report.render())?;
    Ok(EXIT_OK)
}

/// Every node to ask for its view: the cluster file's (which has the ids),
/// else the members the control group records.
async fn nodes(global: &GlobalArgs, client: &Client) -> anyhow::Result<Vec<(u64, String)>> {
    let targets = global.targets()?;
    if let Some(known) = targets
        .iter()
        .map(|t| t.id.map(|id| (id, t.addr.clone())))
        .collect::<Option<Vec<_>>>()
    {
        return Ok(known);
    }
    let status = client
        .status()
        .await
        .api()
        .context("cannot read the members")?;
    Ok(status.members.into_iter().map(|m| (m.id, m.addr)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_g_is_taken_as_done_and_another_is_refused() {
        let map = ShardMap::initial(&[1, 2, 3, 4, 5], 4, 3).unwrap();
        let ok = existing(map.clone(), 4, None).unwrap();
        assert!(!ok.created && ok.note.is_none());
        let err = existing(map.clone(), 8, None).unwrap_err().to_string();
        assert!(err.contains("already has 4 queue group(s)"), "{err}");
        assert!(err.contains("not 8"), "{err}");
        assert!(err.contains("dsync shard reshard --groups 8"), "{err}");
        let note = existing(map, 4, Some(5)).unwrap().note.unwrap();
        assert!(note.contains("keep their 3 replicas"), "{note}");
    }

    #[test]
    fn the_report_lists_each_group_with_its_replicas_and_leader() {
        let map = ShardMap::initial(&[1, 2, 3], 2, 2).unwrap();
        let leader = map.groups[0].replicas[0];
        let report = MapReport::new(
            Ensured {
                map: map.clone(),
                created: true,
                note: None,
            },
            BTreeMap::from([(1, leader)]),
        );
        let text = report.render();
        assert!(
            text.starts_with("shard map epoch 1: 2 queue group(s), 2 replicas each (created)"),
            "{text}"
        );
        let row: Vec<&str> = text.lines().nth(2).unwrap().split_whitespace().collect();
        let replicas: Vec<String> = map.groups[0].replicas.iter().map(u64::to_string).collect();
        assert_eq!(row, ["1", &replicas.join(","), &leader.to_string()]);
        assert!(text.lines().nth(3).unwrap().ends_with('-'), "{text}");
    }
}

#[cfg(test)]
#[path = "init_tests.rs"]
mod stub_tests;
