//! Background tasks that turn HTTP into [`Action`]s: the 500 ms poll, the
//! event stream and admin operations. None of them can hold up drawing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dsync_api::client::ClientError;
use dsync_api::types::Health;
use dsync_api::{routes, Client};
use futures::future::join_all;
use tokio::sync::mpsc::Sender;

use crate::app::{Action, AdminOp};
use crate::model::{CachePoll, JobsPoll, NodePoll, Poll};

pub const POLL_EVERY: Duration = Duration::from_millis(500);
/// A whole poll round gives up after this, so a hung node costs one round.
const ROUND_LIMIT: Duration = Duration::from_millis(1500);
/// Pause before following another node's events after a stream ended.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Polls every node and the cluster-wide views until the receiver is gone.
/// `client` should have short timeouts: its requests bound each round.
pub async fn poll_loop(client: Client, endpoints: Vec<String>, tx: Sender<Action>) {
    let mut every = tokio::time::interval(POLL_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let poll = match tokio::time::timeout(ROUND_LIMIT, poll_once(&client, &endpoints)).await {
            Ok(p) => p,
            Err(_) => timed_out(&endpoints),
        };
        if tx.send(Action::Polled(poll)).await.is_err() {
            return;
        }
    }
}

async fn poll_once(client: &Client, endpoints: &[String]) -> Poll {
    let nodes = join_all(endpoints.iter().map(|e| poll_node(client, e)));
    let locks = async { client.locks().await.map(|l| l.locks) };
    let graph = client.lock_graph();
    let queues = async { client.queues().await.map(|q| q.topics) };
    let shards = client.shards();
    let jobs = async {
        match client.shard_jobs().await {
            Ok(j) => JobsPoll::Jobs(j),
            Err(ClientError::Api { status: 404, .. }) => JobsPoll::NotAvailable,
            Err(e) => JobsPoll::Failed(short(e)),
        }
    };
    let (nodes, locks, graph, queues, shards, jobs) =
        tokio::join!(nodes, locks, graph, queues, shards, jobs);
    Poll {
        at_ms: now_ms(),
        nodes,
        locks: locks.map_err(short),
        graph: graph.map_err(short),
        queues: queues.map_err(short),
        shards: shards.map_err(short),
        jobs,
    }
}

async fn poll_node(client: &Client, endpoint: &str) -> NodePoll {
    let (status, health, cache) = tokio::join!(
        client.node_status(endpoint),
        client.call_node::<Health>(endpoint, routes::HEALTH),
        client.call_node::<dsync_api::cache::CacheLines>(endpoint, routes::CACHE_LINES),
    );
    let cache = match cache {
        Ok(lines) => CachePoll::Lines(lines),
        Err(ClientError::Api { status: 404, .. }) => CachePoll::NotAvailable,
        Err(e) => CachePoll::Failed(short(e)),
    };
    NodePoll {
        endpoint: endpoint.to_string(),
        status: status.map_err(short),
        healthy: health.is_ok_and(|h| h.ok),
        cache,
    }
}

fn timed_out(endpoints: &[String]) -> Poll {
    let why = || format!("no answer within {} ms", ROUND_LIMIT.as_millis());
    Poll {
        at_ms: now_ms(),
        nodes: endpoints
            .iter()
            .map(|e| NodePoll {
                endpoint: e.clone(),
                status: Err(why()),
                healthy: false,
                cache: CachePoll::Failed(why()),
            })
            .collect(),
        locks: Err(why()),
        graph: Err(why()),
        queues: Err(why()),
        shards: Err(why()),
        jobs: JobsPoll::Failed(why()),
    }
}

/// The gist of an error, without the URL noise of transport failures.
fn short(e: ClientError) -> String {
    match e {
        ClientError::Api { error, .. } => format!("{}: {}", error.code.as_str(), error.message),
        ClientError::Transport(m) if m.contains("timed out") => "timed out".into(),
        // reqwest's outer message; the cause (refused, reset) is in its chain.
        ClientError::Transport(m) if m.contains("error sending request") => "unreachable".into(),
        other => other.to_string(),
    }
}

/// Follows `/v1/events` of one reachable node at a time, moving on to the
/// next when a stream ends.
pub async fn follow_events(client: Client, endpoints: Vec<String>, tx: Sender<Action>) {
    for endpoint in endpoints.iter().cycle() {
        match client.events(endpoint).await {
            Ok(mut stream) => {
                if tx
                    .send(Action::EventsConnected(endpoint.clone()))
                    .await
                    .is_err()
                {
                    return;
                }
                let why = loop {
                    match stream.next().await {
                        Some(Ok(event)) => {
                            let at_ms = now_ms();
                            if tx.send(Action::Event { event, at_ms }).await.is_err() {
                                return;
                            }
                        }
                        Some(Err(e)) => break short(e),
                        None => break "stream closed".to_string(),
                    }
                };
                if tx
                    .send(Action::EventsLost(format!("{endpoint}: {why}")))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                let msg = format!("{endpoint}: {}", short(e));
                if tx.send(Action::EventsLost(msg)).await.is_err() {
                    return;
                }
            }
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

/// Runs a confirmed admin operation and reports its outcome.
pub async fn run_admin(client: Client, op: AdminOp, tx: Sender<Action>) {
    let outcome = match op {
        AdminOp::TransferLeader { to } => client
            .leader_transfer(Some(to))
            .await
            .map(|r| {
                format!(
                    "leadership moved from node {} to node {} (term {}, {} ms)",
                    r.from, r.leader, r.term, r.elapsed_ms
                )
            })
            .map_err(|e| format!("leader transfer failed: {}", short(e))),
        AdminOp::ForceRelease { lock } => client
            .lock_force_release(&lock)
            .await
            .map(|r| match r.released.as_slice() {
                [] => format!("lock {lock} had no holder"),
                owners => format!("lock {lock} released from {}", owners.join(", ")),
            })
            .map_err(|e| format!("force-release of {lock} failed: {}", short(e))),
    };
    let _ = tx.send(Action::AdminDone(outcome)).await;
}
