//! The log's encoding of every command, byte for byte: entries written by
//! earlier releases must read the same under this one (and dedup keys,
//! which hash the encoding, must not change).

use dsync_api::locks::LockMode;
use dsync_api::shards::ShardMap;

use super::*;
use crate::state::handoff::HandoffStep;
use crate::state::jobs::JobStep;

fn one_of_each() -> Vec<(&'static str, Command)> {
    let msg = crate::state::queue::Incoming {
        payload: "p".into(),
        delay_ms: 7,
        dedup_id: Some("d".into()),
    };
    vec![
        (
            "kv_put",
            Command::KvPut(KvPut {
                key: "k".into(),
                value: "1".into(),
                if_version: Some(2),
                fence: Some(("l".into(), 3)),
            }),
        ),
        (
            "kv_delete",
            Command::KvDelete(KvDelete {
                key: "k".into(),
                if_version: None,
            }),
        ),
        (
            "lock_acquire",
            Command::LockAcquire(LockAcquire {
                name: "l".into(),
                owner: "o".into(),
                mode: LockMode::Shared,
                ttl_ms: 5,
                wait_ms: 6,
            }),
        ),
        (
            "lock_release",
            Command::LockRelease(LockRelease {
                name: "l".into(),
                owner: "o".into(),
                token: 9,
            }),
        ),
        (
            "lock_keepalive",
            Command::LockKeepalive(LockKeepalive {
                name: "l".into(),
                owner: "o".into(),
                token: 9,
                ttl_ms: Some(4),
            }),
        ),
        (
            "lock_cancel",
            Command::LockCancel(LockCancel {
                name: "l".into(),
                owner: "o".into(),
                since_seq: 8,
            }),
        ),
        ("tick", Command::Tick),
        (
            "extend_leases",
            Command::LockExtendLeases(LockExtendLeases { by_ms: 3 }),
        ),
        (
            "enqueue",
            Command::QueueEnqueue(QueueEnqueue {
                topic: "t".into(),
                msgs: vec![msg],
            }),
        ),
        (
            "consume",
            Command::QueueConsume(QueueConsume {
                topic: "t".into(),
                consumer: "c".into(),
                max: 2,
                visibility_ms: None,
            }),
        ),
        (
            "ack",
            Command::QueueAck(QueueAck {
                topic: "t".into(),
                receipts: vec!["r".into()],
            }),
        ),
        (
            "nack",
            Command::QueueNack(QueueNack {
                topic: "t".into(),
                receipts: vec!["r".into()],
                delay_ms: 1,
            }),
        ),
        (
            "extend",
            Command::QueueExtend(QueueExtend {
                topic: "t".into(),
                receipts: vec!["r".into()],
                visibility_ms: 1,
            }),
        ),
        (
            "redrive",
            Command::QueueRedrive(QueueRedrive { topic: "t".into() }),
        ),
        (
            "configure",
            Command::QueueConfigure(QueueConfigure {
                topic: "t".into(),
                max_attempts: Some(3),
                visibility_ms: None,
                max_message_bytes: Some(10),
                retention_ms: None,
            }),
        ),
        (
            "force_release",
            Command::LockForceRelease(LockForceRelease { name: "l".into() }),
        ),
        (
            "cluster_id",
            Command::SetClusterId(SetClusterId { id: "c".into() }),
        ),
        (
            "once",
            Command::Once(Once {
                key: 5,
                cmd: Box::new(Command::Tick),
            }),
        ),
        (
            "set_shards",
            Command::SetShards(SetShards {
                map: ShardMap::default(),
            }),
        ),
        (
            "shard_job",
            Command::ShardJob(ShardJob {
                step: JobStep::Start {
                    kind: "rebalance".into(),
                    moves: Vec::new(),
                },
            }),
        ),
        (
            "handoff",
            Command::Handoff(Handoff {
                step: HandoffStep::Freeze {
                    job: 1,
                    topic: "t".into(),
                    to: 2,
                },
            }),
        ),
    ]
}

/// The name `one_of_each` gives a command's kind. Exhaustive, so a new
/// command cannot be added without a place in the table below.
fn kind(c: &Command) -> &'static str {
    match c {
        Command::KvPut(KvPut { .. }) => "kv_put",
        Command::KvDelete(KvDelete { .. }) => "kv_delete",
        Command::LockAcquire(LockAcquire { .. }) => "lock_acquire",
        Command::LockRelease(LockRelease { .. }) => "lock_release",
        Command::LockKeepalive(LockKeepalive { .. }) => "lock_keepalive",
        Command::LockCancel(LockCancel { .. }) => "lock_cancel",
        Command::Tick => "tick",
        Command::LockExtendLeases(LockExtendLeases { .. }) => "extend_leases",
        Command::QueueEnqueue(QueueEnqueue { .. }) => "enqueue",
        Command::QueueConsume(QueueConsume { .. }) => "consume",
        Command::QueueAck(QueueAck { .. }) => "ack",
        Command::QueueNack(QueueNack { .. }) => "nack",
        Command::QueueExtend(QueueExtend { .. }) => "extend",
        Command::QueueRedrive(QueueRedrive { .. }) => "redrive",
        Command::QueueConfigure(QueueConfigure { .. }) => "configure",
        Command::LockForceRelease(LockForceRelease { .. }) => "force_release",
        Command::SetClusterId(SetClusterId { .. }) => "cluster_id",
        Command::Once(Once { .. }) => "once",
        Command::SetShards(SetShards { .. }) => "set_shards",
        Command::ShardJob(ShardJob { .. }) => "shard_job",
        Command::Handoff(Handoff { .. }) => "handoff",
    }
}

/// Captured from the release before typed proposals; a change here is a
/// change of the log format.
const ENCODED: [(&str, &str); 21] = [
    ("kv_put", "0000000001000000000000006b0100000000000000310102000000000000000101000000000000006c0300000000000000"),
    ("kv_delete", "0100000001000000000000006b00"),
    ("lock_acquire", "0200000001000000000000006c01000000000000006f0100000005000000000000000600000000000000"),
    ("lock_release", "0300000001000000000000006c01000000000000006f0900000000000000"),
    ("lock_keepalive", "0400000001000000000000006c01000000000000006f0900000000000000010400000000000000"),
    ("lock_cancel", "0500000001000000000000006c01000000000000006f0800000000000000"),
    ("tick", "06000000"),
    ("extend_leases", "070000000300000000000000"),
    ("enqueue", "080000000100000000000000740100000000000000010000000000000070070000000000000001010000000000000064"),
    ("consume", "09000000010000000000000074010000000000000063020000000000000000"),
    ("ack", "0a0000000100000000000000740100000000000000010000000000000072"),
    ("nack", "0b00000001000000000000007401000000000000000100000000000000720100000000000000"),
    ("extend", "0c00000001000000000000007401000000000000000100000000000000720100000000000000"),
    ("redrive", "0d000000010000000000000074"),
    ("configure", "0e000000010000000000000074010300000000010a0000000000000000"),
    ("force_release", "0f00000001000000000000006c"),
    ("cluster_id", "10000000010000000000000063"),
    ("once", "110000000500000000000000000000000000000006000000"),
    ("set_shards", "1200000000000000000000000000000000000000"),
    ("shard_job", "13000000000000000900000000000000726562616c616e63650000000000000000"),
    ("handoff", "140000000100000001000000000000000100000000000000740200000000000000"),
];

#[test]
fn every_command_encodes_as_earlier_releases_wrote_it() {
    let all = one_of_each();
    assert_eq!(all.len(), ENCODED.len());
    for ((name, cmd), (was, bytes)) in all.into_iter().zip(ENCODED) {
        assert_eq!((name, kind(&cmd)), (was, was));
        let hex: String = bincode::serialize(&cmd)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, bytes, "{name} encodes differently");
        let back: Command = bincode::deserialize(&hex_bytes(bytes)).expect(name);
        assert_eq!(back, cmd, "{name} decodes differently");
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}
