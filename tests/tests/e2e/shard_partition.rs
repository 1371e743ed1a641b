//! Issue 17, acceptance 3: one node cut off (the netns nemesis) while
//! producers and consumers run on queue groups through the other nodes:
//! every group it led elects again among the majority, no acknowledged
//! message is lost, FIFO order holds per topic, and after healing the node
//! follows the new leaders.

use std::sync::atomic::Ordering;
use std::time::Duration;

use dsync_api::shards::InitShards;
use dsync_tests::shard_workload::{first_deliveries, leaders, start, view, Plan};
use dsync_tests::{netns, wait_ok, Cluster};

const IDS: [u64; 3] = [1, 2, 3];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_node_loses_its_groups_and_no_acknowledged_message() {
    if netns::opted_out() {
        eprintln!("skipped: {}=1", netns::OPT_OUT_ENV);
        return;
    }
    let c = Cluster::up_in_netns(3);
    c.wait_leader(3).await;
    let init = InitShards {
        groups: 3,
        replicas: None,
    };
    let map = c.client().shards_init(&init).await.expect("shard init");
    let led = wait_ok(Duration::from_secs(30), "every queue group led", || {
        leaders(&c, &map, &IDS)
    })
    .await;
    let count = |id: u64| led.values().filter(|l| **l == id).count();
    let victim = IDS.into_iter().max_by_key(|id| count(*id)).expect("nodes");
    assert!(count(victim) >= 1, "{led:?}");
    let survivors: Vec<u64> = IDS.into_iter().filter(|id| *id != victim).collect();

    let topics: Vec<String> = (0..24).map(|i| format!("cut-{i:02}")).collect();
    let plan = Plan {
        topics,
        messages: 50,
        batch: 1,
        visibility_ms: 3_000,
    };
    let total: u64 = 24 * 50;
    let node = |i: usize| survivors[i % survivors.len()];
    let mut run = start(
        &plan,
        |i| c.client_for(node(i)),
        |i| c.client_for(node(i + 1)),
    );
    run.published_at_least(total / 3).await;
    let published = run.published.clone();
    let net = c.net().expect("netns cluster");
    net.isolate(victim).expect("isolate");
    let at_cut = published.load(Ordering::Relaxed);
    assert!(
        at_cut < total,
        "the producers finished before the partition"
    );
    let after = wait_ok(
        Duration::from_secs(30),
        "every queue group led by the majority",
        || leaders(&c, &map, &survivors),
    )
    .await;
    println!(
        "cut node {victim} (it led {} groups) at {at_cut} of {total}; leaders then {after:?}",
        count(victim)
    );
    run.producers_done().await;
    net.heal(victim).expect("heal");
    // Healed, the node hosts its groups again as a follower of their leaders.
    wait_ok(
        Duration::from_secs(30),
        "the healed node to follow",
        || async {
            let s = view(&c, victim).await?;
            let stale: Vec<u64> = s
                .groups
                .iter()
                .filter(|g| g.id != 0 && g.replicas.iter().any(|r| r.id == victim))
                .filter(|g| g.leader.is_none())
                .map(|g| g.id)
                .collect();
            stale
                .is_empty()
                .then_some(())
                .ok_or_else(|| format!("groups {stale:?} have no leader on node {victim}"))
        },
    )
    .await;
    let history = run.history.clone();
    let (report, stats) = run
        .drain(&c.client_for(survivors[0]), Duration::from_secs(180))
        .await;
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.acknowledged_enqueues, total as usize);
    for (t, s) in &stats {
        assert_eq!((s.enqueued_total, s.dead_lettered), (50, 0), "{t}: {s:?}");
        assert_eq!(first_deliveries(&history, t).len(), 50, "{t}");
    }
}
