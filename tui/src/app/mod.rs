//! All dashboard state, changed only by [`App::update`]; drawing reads it.

pub mod keys;
#[cfg(test)]
mod tests;
mod view;

use std::collections::{HashMap, VecDeque};

use crossterm::event::KeyEvent;
use dsync_api::events::Event;
use dsync_api::locks::{LockGraph, LockInfo};
use dsync_api::queue::TopicStats;
use dsync_api::shards::JobState;
use dsync_api::types::{NodeStatus, Role};

use crate::model::{CachePoll, JobsPoll, LineState, Poll};

/// Events kept for the Events panel.
const MAX_EVENTS: usize = 500;
/// Rate samples kept per topic (one per poll).
const RATE_HISTORY: usize = 120;
const MAX_FILTER: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    Cluster,
    Locks,
    Cache,
    Queues,
    Events,
    Shards,
}

impl Panel {
    pub const ALL: [Panel; 6] = [
        Panel::Cluster,
        Panel::Locks,
        Panel::Cache,
        Panel::Queues,
        Panel::Events,
        Panel::Shards,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Panel::Cluster => "Cluster",
            Panel::Locks => "Locks",
            Panel::Cache => "Cache",
            Panel::Queues => "Queues",
            Panel::Events => "Events",
            Panel::Shards => "Shards",
        }
    }

    pub fn index(self) -> usize {
        Panel::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

/// An admin operation, run only after the operator confirms it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminOp {
    TransferLeader { to: u64 },
    ForceRelease { lock: String },
}

impl AdminOp {
    pub fn question(&self) -> String {
        match self {
            AdminOp::TransferLeader { to } => format!("Transfer leadership to node {to}?"),
            AdminOp::ForceRelease { lock } => {
                format!("Force-release lock {lock:?}, evicting every holder?")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Typing into the filter.
    Filter,
    Help,
    Confirm(AdminOp),
}

/// Everything that changes the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Key(KeyEvent),
    /// The terminal was resized: nothing to change but a redraw.
    Resize,
    Polled(Poll),
    /// An event from `/v1/events`, stamped with the local clock on arrival.
    Event {
        event: Event,
        at_ms: u64,
    },
    EventsConnected(String),
    EventsLost(String),
    /// Outcome of an admin operation: Ok(summary) or Err(reason).
    AdminDone(Result<String, String>),
}

/// A node as the last poll saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub endpoint: String,
    /// From the node's status, remembered while it is unreachable.
    pub id: Option<u64>,
    pub status: Option<NodeStatus>,
    /// Why the node could not be reached.
    pub error: Option<String>,
    pub healthy: bool,
    /// Entries the leader has that this node has not acknowledged.
    pub lag: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicRow {
    pub stats: TopicStats,
    /// Messages per second, oldest first.
    pub enqueue_rate: VecDeque<u64>,
    pub ack_rate: VecDeque<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Notice,
    Alert,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub at_ms: u64,
    pub kind: &'static str,
    pub text: String,
    pub severity: Severity,
}

/// What a cache matrix cell shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheCell {
    State(LineState),
    /// The node could not be asked.
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub panel: Panel,
    pub mode: Mode,
    pub filter: String,
    selected: [usize; Panel::ALL.len()],
    pub nodes: Vec<NodeRow>,
    pub locks: Vec<LockInfo>,
    pub locks_error: Option<String>,
    pub graph: LockGraph,
    pub graph_error: Option<String>,
    pub topics: Vec<TopicRow>,
    pub queues_error: Option<String>,
    pub shards: Option<dsync_api::shards::ShardsStatus>,
    pub shards_error: Option<String>,
    /// The shard job in progress (none too on a server without jobs).
    pub shard_job: Option<dsync_api::shards::ShardJob>,
    pub jobs_error: Option<String>,
    /// Per node (in `nodes` order): its cache lines or why there are none.
    pub cache: Vec<CachePoll>,
    pub events: VecDeque<EventRow>,
    /// The node whose event stream is followed, or why none is.
    pub events_source: Result<String, String>,
    /// Last admin outcome or hint: (is_error, text).
    pub message: Option<(bool, String)>,
    pub polls: u64,
    pub quit: bool,
    last_totals: HashMap<String, (u64, u64)>,
    last_poll_ms: Option<u64>,
}

impl App {
    pub fn new(endpoints: &[String]) -> App {
        App {
            panel: Panel::Cluster,
            mode: Mode::Normal,
            filter: String::new(),
            selected: [0; Panel::ALL.len()],
            nodes: endpoints
                .iter()
                .map(|e| NodeRow {
                    endpoint: e.clone(),
                    id: None,
                    status: None,
                    error: Some("not polled yet".into()),
                    healthy: false,
                    lag: None,
                })
                .collect(),
            locks: Vec::new(),
            locks_error: None,
            graph: LockGraph {
                edges: Vec::new(),
                deadlocks: Vec::new(),
            },
            graph_error: None,
            topics: Vec::new(),
            queues_error: None,
            shards: None,
            shards_error: None,
            shard_job: None,
            jobs_error: None,
            cache: Vec::new(),
            events: VecDeque::new(),
            events_source: Err("connecting".into()),
            message: None,
            polls: 0,
            quit: false,
            last_totals: HashMap::new(),
            last_poll_ms: None,
        }
    }

    /// Applies one action; returns an admin operation the operator just
    /// confirmed, for the caller to run.
    pub fn update(&mut self, action: Action) -> Option<AdminOp> {
        match action {
            Action::Key(k) => return self.on_key(k),
            Action::Resize => {}
            Action::Polled(p) => self.on_poll(p),
            Action::Event { event, at_ms } => self.on_event(event, at_ms),
            Action::EventsConnected(ep) => self.events_source = Ok(ep),
            Action::EventsLost(why) => self.events_source = Err(why),
            Action::AdminDone(r) => {
                self.message = Some(match r {
                    Ok(m) => (false, m),
                    Err(m) => (true, m),
                })
            }
        }
        self.clamp();
        None
    }

    pub fn selected(&self) -> usize {
        self.selected[self.panel.index()]
    }

    fn visible_len(&self, panel: Panel) -> usize {
        match panel {
            Panel::Cluster => self.visible_nodes().len(),
            Panel::Locks => self.visible_locks().len(),
            Panel::Cache => self.cache_keys().len(),
            Panel::Queues => self.visible_topics().len(),
            Panel::Events => self.visible_events().len(),
            Panel::Shards => self.shards.as_ref().map_or(0, |s| s.groups.len()),
        }
    }

    fn clamp(&mut self) {
        for p in Panel::ALL {
            let len = self.visible_len(p);
            let s = &mut self.selected[p.index()];
            *s = (*s).min(len.saturating_sub(1));
        }
    }

    fn on_poll(&mut self, p: Poll) {
        self.polls += 1;
        let leader = p
            .nodes
            .iter()
            .filter_map(|n| n.status.as_ref().ok())
            .filter(|s| s.role == Role::Leader)
            .max_by_key(|s| s.term)
            .cloned();
        let known: HashMap<String, u64> = self
            .nodes
            .iter()
            .filter_map(|n| Some((n.endpoint.clone(), n.id?)))
            .collect();
        self.nodes = p
            .nodes
            .iter()
            .map(|n| {
                let status = n.status.as_ref().ok().cloned();
                let lag = match (&leader, &status) {
                    (Some(l), Some(s)) if l.id == s.id => Some(0),
                    (Some(l), Some(s)) => l
                        .members
                        .iter()
                        .find(|m| m.id == s.id)
                        .and_then(|m| m.match_index)
                        .map(|mi| l.last_index.saturating_sub(mi)),
                    _ => None,
                };
                NodeRow {
                    endpoint: n.endpoint.clone(),
                    id: status
                        .as_ref()
                        .map(|s| s.id)
                        .or_else(|| known.get(&n.endpoint).copied()),
                    error: n.status.as_ref().err().cloned(),
                    status,
                    healthy: n.healthy,
                    lag,
                }
            })
            .collect();
        self.cache = p.nodes.into_iter().map(|n| n.cache).collect();
        // On failure the last good data stays on screen, marked stale.
        match p.locks {
            Ok(l) => (self.locks, self.locks_error) = (l, None),
            Err(e) => self.locks_error = Some(e),
        }
        match p.graph {
            Ok(g) => (self.graph, self.graph_error) = (g, None),
            Err(e) => self.graph_error = Some(e),
        }
        match p.queues {
            Ok(q) => {
                self.queues_error = None;
                self.on_topics(q, p.at_ms);
            }
            Err(e) => self.queues_error = Some(e),
        }
        match p.shards {
            Ok(s) => (self.shards, self.shards_error) = (Some(s), None),
            Err(e) => self.shards_error = Some(e),
        }
        match p.jobs {
            JobsPoll::Jobs(jobs) => {
                let running = jobs.into_iter().find(|j| j.state == JobState::Running);
                (self.shard_job, self.jobs_error) = (running, None);
            }
            JobsPoll::NotAvailable => (self.shard_job, self.jobs_error) = (None, None),
            JobsPoll::Failed(e) => self.jobs_error = Some(e),
        }
    }

    /// Rates come from the growth of the totals between two polls.
    fn on_topics(&mut self, stats: Vec<TopicStats>, at_ms: u64) {
        let elapsed = self
            .last_poll_ms
            .map(|t| at_ms.saturating_sub(t))
            .filter(|&d| d > 0);
        let mut old: HashMap<String, TopicRow> = self
            .topics
            .drain(..)
            .map(|t| (t.stats.topic.clone(), t))
            .collect();
        for s in stats {
            let mut row = old.remove(&s.topic).unwrap_or(TopicRow {
                stats: s.clone(),
                enqueue_rate: VecDeque::new(),
                ack_rate: VecDeque::new(),
            });
            if let (Some(dt), Some(&(enq, ack))) = (elapsed, self.last_totals.get(&s.topic)) {
                let rate = |now: u64, before: u64| now.saturating_sub(before) * 1000 / dt;
                push_capped(&mut row.enqueue_rate, rate(s.enqueued_total, enq));
                push_capped(&mut row.ack_rate, rate(s.acked_total, ack));
            }
            self.last_totals
                .insert(s.topic.clone(), (s.enqueued_total, s.acked_total));
            row.stats = s;
            self.topics.push(row);
        }
        self.last_poll_ms = Some(at_ms);
    }

    fn on_event(&mut self, event: Event, received_ms: u64) {
        let Some(row) = crate::describe::describe(event, received_ms) else {
            return;
        };
        self.events.push_front(row);
        self.events.truncate(MAX_EVENTS);
    }
}

fn push_capped(v: &mut VecDeque<u64>, x: u64) {
    if v.len() == RATE_HISTORY {
        v.pop_front();
    }
    v.push_back(x);
}
