//! Route paths shared by the server's routers and the client.

pub const HEALTH: &str = "/health";
pub const READY: &str = "/ready";
pub const METRICS: &str = "/metrics";
/// The OpenAPI description of every client route.
pub const OPENAPI: &str = "/openapi.json";
pub const STATUS: &str = "/v1/status";
/// The shard map and every Raft group's state.
pub const SHARDS: &str = "/v1/shards";
/// `POST`: every queue group's leadership to its preferred leader.
pub const SHARDS_LEADERS: &str = "/v1/shards/leaders";
/// `POST`: plan replica moves and start a job carrying them out.
pub const SHARDS_REBALANCE: &str = "/v1/shards/rebalance";
/// `POST`: plan a change of the number of queue groups and start a job
/// moving the topics it reroutes.
pub const SHARDS_RESHARD: &str = "/v1/shards/reshard";
/// The running shard job and the last finished ones.
pub const SHARDS_JOBS: &str = "/v1/shards/jobs";
/// One shard job, running or finished.
pub const SHARDS_JOB: &str = "/v1/shards/jobs/{id}";
pub const KV: &str = "/v1/kv";
/// One key: the rest of the path, so a key may contain `/` (percent-encoded
/// by [`kv_key`] all the same).
pub const KV_KEY: &str = "/v1/kv/{*key}";
pub const MEMBERS: &str = "/v1/cluster/members";
pub const MEMBER: &str = "/v1/cluster/members/{id}";
pub const LEADER_TRANSFER: &str = "/v1/cluster/leader/transfer";
pub const BACKUP: &str = "/v1/cluster/backup";
pub const NODE_DRAIN: &str = "/v1/node/drain";
pub const LOCKS: &str = "/v1/locks";
pub const LOCK_GRAPH: &str = "/v1/locks/graph";
pub const LOCK: &str = "/v1/locks/{name}";
pub const LOCK_ACQUIRE: &str = "/v1/locks/{name}/acquire";
pub const LOCK_RELEASE: &str = "/v1/locks/{name}/release";
pub const LOCK_KEEPALIVE: &str = "/v1/locks/{name}/keepalive";
pub const LOCK_FORCE_RELEASE: &str = "/v1/locks/{name}/force-release";
pub const QUEUES: &str = "/v1/queues";
pub const TOPIC: &str = "/v1/queues/{topic}";
pub const TOPIC_MESSAGES: &str = "/v1/queues/{topic}/messages";
pub const TOPIC_CONSUME: &str = "/v1/queues/{topic}/consume";
pub const TOPIC_ACK: &str = "/v1/queues/{topic}/ack";
pub const TOPIC_NACK: &str = "/v1/queues/{topic}/nack";
pub const TOPIC_EXTEND: &str = "/v1/queues/{topic}/extend";
pub const TOPIC_REDRIVE: &str = "/v1/queues/{topic}/redrive";
pub const AUTH_WHOAMI: &str = "/v1/auth/whoami";
pub const AUTH_TOKENS: &str = "/v1/auth/tokens";
pub const EVENTS: &str = "/v1/events";
pub const CACHE: &str = "/v1/cache";
/// This node's own cache lines. `lines` is therefore not a usable cache key.
pub const CACHE_LINES: &str = "/v1/cache/lines";
pub const CACHE_KEY: &str = "/v1/cache/{key}";
pub const CACHE_KEY_STATES: &str = "/v1/cache/{key}/states";

/// `template` (one of the routes above) with its one parameter set to
/// `value`, percent-encoded as one path segment.
pub fn path(template: &str, value: &str) -> String {
    let (Some(open), Some(close)) = (template.find('{'), template.find('}')) else {
        return template.to_string();
    };
    format!(
        "{}{}{}",
        &template[..open],
        encode_segment(value),
        &template[close + 1..]
    )
}

/// Path of one member.
pub fn member(id: u64) -> String {
    path(MEMBER, &id.to_string())
}

/// Prefix of every peer-only route: all of them require the cluster secret.
pub const RAFT_PREFIX: &str = "/raft/";
/// Peer-only routes (Raft RPCs and one-hop forwarding between nodes).
pub const RAFT_APPEND: &str = "/raft/append";
pub const RAFT_VOTE: &str = "/raft/vote";
pub const RAFT_SNAPSHOT: &str = "/raft/snapshot";
pub const RAFT_FORWARD: &str = "/raft/forward";
/// The Raft RPCs of a queue group (`/raft/g/{group}/append`, `vote`,
/// `snapshot`); the control group keeps the paths above.
pub const RAFT_GROUP_RPC: &str = "/raft/g/{group}/{rpc}";

/// Path of Raft RPC `rpc` (`append`, `vote` or `snapshot`) of `group`.
pub fn raft_rpc(group: u64, rpc: &str) -> String {
    if group == 0 {
        format!("/raft/{rpc}")
    } else {
        format!("/raft/g/{group}/{rpc}")
    }
}
/// Cache coherence: requests to the leader's directory.
pub const RAFT_CACHE_DIRECTORY: &str = "/raft/cache/directory";
/// Cache coherence: invalidations, downgrades and state queries to a holder.
pub const RAFT_CACHE_HOLDER: &str = "/raft/cache/holder";

/// Longest key accepted by the KV, in bytes.
pub const MAX_KEY_LEN: usize = 512;

/// Path of one KV key. Keys are validated by the server; the client
/// percent-encodes the characters a path segment cannot carry.
pub fn kv_key(key: &str) -> String {
    path(KV_KEY, key)
}

/// Percent-encodes everything outside RFC 3986's unreserved set, so any
/// key survives being one path segment.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_group_keeps_its_rpc_paths() {
        assert_eq!(raft_rpc(0, "append"), RAFT_APPEND);
        assert_eq!(raft_rpc(0, "vote"), RAFT_VOTE);
        assert_eq!(raft_rpc(0, "snapshot"), RAFT_SNAPSHOT);
        assert_eq!(raft_rpc(7, "vote"), "/raft/g/7/vote");
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("app/config x"), "app%2Fconfig%20x");
        assert_eq!(kv_key("a.b-c_d~"), "/v1/kv/a.b-c_d~");
    }

    #[test]
    fn a_template_takes_its_parameter_encoded() {
        assert_eq!(path(LOCK_ACQUIRE, "a/b"), "/v1/locks/a%2Fb/acquire");
        assert_eq!(path(TOPIC, "jobs"), "/v1/queues/jobs");
        assert_eq!(kv_key("app/x"), "/v1/kv/app%2Fx");
        assert_eq!(member(3), "/v1/cluster/members/3");
        assert_eq!(path(LOCKS, "ignored"), LOCKS);
    }
}
