//! Issue 17: queue topics over several Raft groups (DESIGN.md §2a) on five
//! real nodes with four groups of three replicas: placement and hosting as
//! the shard map says, routing by the ring (`shard locate`, `x-dsync-group`,
//! topic counts), FIFO through every node, and the loss of the node that
//! leads the most groups while producers keep publishing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dsync_api::routes;
use dsync_api::shards::{ShardMap, HEADER_GROUP};
use dsync_tests::shard_workload::{first_deliveries, leaders, start, view, Plan};
use dsync_tests::{fetch_metrics, metric, wait_ok, Cluster};
use serde::Deserialize;
use serde_json::{json, Value};

const IDS: [u64; 5] = [1, 2, 3, 4, 5];
const GROUPS: usize = 4;

/// What `dsync shard init -o json` prints (and `cluster up` under `shards`).
#[derive(Debug, Deserialize)]
struct MapReport {
    state: String,
    map: ShardMap,
    #[serde(default)]
    leaders: BTreeMap<u64, u64>,
}

/// Node `id` serves exactly the groups the map places on it: its view has
/// the same map, lists every group, shows itself among the replicas of
/// each group it holds, and has data_dir/groups/<g>/ for those alone.
async fn hosts_as_placed(c: &Cluster, map: &ShardMap, id: u64) -> Result<(), String> {
    let s = view(c, id).await?;
    if &s.map != map {
        return Err(format!("node {id} has map {:?}, not {map:?}", s.map));
    }
    let listed: BTreeSet<u64> = s.groups.iter().map(|g| g.id).collect();
    let all: BTreeSet<u64> = std::iter::once(0)
        .chain(map.groups.iter().map(|g| g.id))
        .collect();
    if listed != all {
        return Err(format!("node {id} lists groups {listed:?}, not {all:?}"));
    }
    let placed: BTreeSet<u64> = map
        .groups
        .iter()
        .filter(|g| g.replicas.contains(&id))
        .map(|g| g.id)
        .collect();
    for gid in &placed {
        let g = s.groups.iter().find(|g| g.id == *gid).expect("listed");
        let replicas: BTreeSet<u64> = g.replicas.iter().map(|r| r.id).collect();
        let want: BTreeSet<u64> = map
            .group(*gid)
            .expect("in map")
            .replicas
            .iter()
            .copied()
            .collect();
        if replicas != want {
            return Err(format!(
                "node {id}: group {gid} has replicas {replicas:?}, the map {want:?}"
            ));
        }
    }
    let dir = c.node(id).data_dir.join("groups");
    let on_disk: BTreeSet<u64> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|g: &u64| *g != 0)
                .collect()
        })
        .unwrap_or_default();
    if on_disk != placed {
        return Err(format!(
            "node {id}: {} holds groups {on_disk:?}, the map places {placed:?}",
            dir.display()
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_groups_are_placed_hosted_and_routed_as_the_shard_map_says() {
    let c = Cluster::up(5, &[]);
    c.wait_leader(5).await;
    let out = c.dsync_ok(&[
        "shard",
        "init",
        "--groups",
        "4",
        "--replicas",
        "3",
        "-o",
        "json",
    ]);
    let report: MapReport = serde_json::from_slice(&out.stdout).expect("shard init json");
    assert_eq!(report.state, "created");
    let map = report.map;
    assert_eq!(
        map,
        ShardMap::initial(&IDS, GROUPS as u64, 3).unwrap(),
        "the first map places the groups over the current voters"
    );
    for g in &map.groups {
        let l = report
            .leaders
            .get(&g.id)
            .expect("shard init waits for every leader");
        assert!(
            g.replicas.contains(l),
            "group {} led by {l}, not a replica",
            g.id
        );
    }
    let led = wait_ok(Duration::from_secs(30), "every queue group led", || {
        leaders(&c, &map, &IDS)
    })
    .await;
    println!("leaders: {led:?}");

    // Every node serves, and keeps on disk, the groups placed on it alone.
    wait_ok(
        Duration::from_secs(30),
        "every node hosting what the map places on it",
        || async {
            for id in IDS {
                hosts_as_placed(&c, &map, id).await?;
            }
            Ok(())
        },
    )
    .await;

    // The ring spreads topic names evenly over the groups.
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for i in 0..1000 {
        *counts
            .entry(map.group_of(&format!("topic-{i}")))
            .or_default() += 1;
    }
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 4],
        "{counts:?}"
    );
    for (g, n) in &counts {
        assert!(
            (187..=313).contains(n),
            "group {g} got {n} of 1000 topics (mean 250 ± 25%): {counts:?}"
        );
    }

    // `shard locate`, the group header of a publish through any node, and
    // the stats agree with the map.
    let http = reqwest::Client::new();
    let mut expected: BTreeMap<u64, u64> = map.groups.iter().map(|g| (g.id, 0)).collect();
    for i in 0..16u64 {
        let topic = format!("located-{i}");
        let out = c.dsync_ok(&["shard", "locate", &topic, "-o", "json"]);
        let located: Value = serde_json::from_slice(&out.stdout).expect("locate json");
        let group = located["group"]["id"].as_u64().expect("group id");
        assert_eq!(located["epoch"], json!(map.epoch));
        assert_eq!(group, map.group_of(&topic), "{topic}");
        let node = IDS[i as usize % IDS.len()];
        let url = format!(
            "http://{}{}",
            c.node(node).addr,
            routes::path(routes::TOPIC_MESSAGES, &topic)
        );
        let resp = http
            .post(url)
            .json(&json!({"messages": [{"payload": {"i": i}}]}))
            .send()
            .await
            .expect("publish");
        assert_eq!(resp.status(), 201, "publish {topic} through node {node}");
        let header = resp
            .headers()
            .get(HEADER_GROUP)
            .map(|v| v.to_str().unwrap_or("").to_string());
        assert_eq!(
            header,
            Some(group.to_string()),
            "{topic} through node {node}"
        );
        let stats = c.client_for(node).queue_stats(&topic).await.expect("stats");
        assert_eq!(stats.group, group, "{topic}: stats name its group");
        *expected.get_mut(&group).expect("a queue group") += 1;
    }
    wait_ok(
        Duration::from_secs(20),
        "each group's leader counting its topics",
        || async {
            let led = leaders(&c, &map, &IDS).await?;
            for (g, want) in &expected {
                let s = view(&c, led[g]).await?;
                let have = s.groups.iter().find(|x| x.id == *g).map(|x| x.topics);
                if have != Some(*want) {
                    return Err(format!(
                        "group {g}: {have:?} topics on its leader, published {want}"
                    ));
                }
                let control = &s.groups[0];
                if control.holds_topics || control.topics != 0 {
                    return Err(format!("the control group holds topics: {control:?}"));
                }
            }
            Ok(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_topics_through_every_node_keep_fifo_order_and_lose_nothing() {
    let c = Cluster::up_with(5, &[], &["--shards", "4", "--shard-replicas", "3"]);
    // Re-running `cluster up` keeps the map of the same G, refuses another.
    let out = c.dsync_ok(&["cluster", "up", "--shards", "4", "-o", "json"]);
    let up: Value = serde_json::from_slice(&out.stdout).expect("cluster up json");
    let report: MapReport = serde_json::from_value(up["shards"].clone()).expect("shards report");
    assert_eq!(
        (report.state.as_str(), report.leaders.len()),
        ("existing", GROUPS)
    );
    let map = report.map;
    let again = c.dsync(&["cluster", "up", "--shards", "8"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "another G must be refused");
    assert!(
        stderr.contains("already has 4 queue group(s)") && stderr.contains("not 8"),
        "{stderr}"
    );

    let topics: Vec<String> = (0..64).map(|i| format!("fifo-{i:02}")).collect();
    let used: BTreeSet<u64> = topics.iter().map(|t| map.group_of(t)).collect();
    assert_eq!(used.len(), GROUPS, "the topics cover every group");
    let plan = Plan {
        topics: topics.clone(),
        messages: 40,
        batch: 8,
        visibility_ms: 30_000,
    };
    let node = |i: usize| IDS[i % IDS.len()];
    let run = start(
        &plan,
        |i| c.client_for(node(i)),
        |i| c.client_for(node(i + 2)),
    );
    let history = run.history.clone();
    let (report, stats) = run.drain(&c.client(), Duration::from_secs(180)).await;
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.acknowledged_enqueues, 64 * 40);
    for t in &topics {
        let order = first_deliveries(&history, t);
        assert_eq!(
            order,
            (0..40).collect::<Vec<u64>>(),
            "{t}: first deliveries out of FIFO order"
        );
        let s = &stats[t];
        assert_eq!(
            (s.enqueued_total, s.dead_lettered, s.group),
            (40, 0, map.group_of(t)),
            "{t}: {s:?}"
        );
        assert!(s.acked_total >= 40, "{t}: {s:?}");
    }
    println!(
        "{} messages on 64 topics over {GROUPS} groups, all delivered in order and acked; {} duplicate deliveries",
        report.acknowledged_enqueues, report.duplicates
    );
    each_group_writes_its_own_metrics(&c, &map).await;
}

/// After queue traffic, every node exports each group it hosts under its
/// own `group` label, and the control group's unlabelled series (and the
/// commit index `/v1/status` and `/ready` read from it) stay the control
/// group's: the queue groups' logs are far longer than its own.
async fn each_group_writes_its_own_metrics(c: &Cluster, map: &ShardMap) {
    let http = reqwest::Client::new();
    for id in IDS {
        let addr = c.node(id).addr.clone();
        let status = c.client_for(id).status().await.expect("status");
        let text = fetch_metrics(&addr).await;
        let control_commit = metric(&text, "dsync_raft_commit_index").expect("control commit");
        assert!(
            control_commit <= status.last_index as f64 && status.commit_index <= status.last_index,
            "node {id}: control commit {control_commit} / {} past its log's end {}",
            status.commit_index,
            status.last_index
        );
        for g in map.groups.iter().filter(|g| g.replicas.contains(&id)) {
            let label = format!("{{group=\"{}\"}}", g.id);
            let commit = metric(&text, &format!("dsync_group_raft_commit_index{label}"))
                .unwrap_or_else(|| panic!("node {id}: no commit index of group {}", g.id));
            let fsyncs = metric(
                &text,
                &format!("dsync_group_log_fsync_seconds_count{label}"),
            )
            .unwrap_or_else(|| panic!("node {id}: no log writes of group {}", g.id));
            assert!(commit > 0.0 && fsyncs > 0.0, "node {id} group {}", g.id);
        }
        wait_ok(Duration::from_secs(10), &format!("node {id} ready"), || {
            let http = http.clone();
            let addr = addr.clone();
            async move {
                let r = http
                    .get(format!("http://{addr}/ready"))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let code = r.status();
                let body = r.text().await.unwrap_or_default();
                code.is_success().then_some(()).ok_or(body)
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_node_that_leads_most_groups_loses_no_acknowledged_message() {
    let c = Cluster::up_with(5, &[], &["--shards", "4", "--shard-replicas", "3"]);
    let control = c.wait_leader(5).await;
    let map = view(&c, 1).await.expect("shards").map;
    assert_eq!(map.groups.len(), GROUPS);
    let led = wait_ok(Duration::from_secs(30), "every queue group led", || {
        leaders(&c, &map, &IDS)
    })
    .await;
    let count = |id: u64| led.values().filter(|l| **l == id).count();
    // Ties go to the control group's leader: its loss costs an election more.
    let victim = IDS
        .into_iter()
        .max_by_key(|id| (count(*id), *id == control))
        .expect("nodes");
    let survivors: Vec<u64> = IDS.into_iter().filter(|id| *id != victim).collect();

    let topics: Vec<String> = (0..32).map(|i| format!("failover-{i:02}")).collect();
    let plan = Plan {
        topics,
        messages: 60,
        batch: 1,
        visibility_ms: 3_000,
    };
    let total: u64 = 32 * 60;
    let node = |i: usize| survivors[i % survivors.len()];
    let mut run = start(
        &plan,
        |i| c.client_for(node(i)),
        |i| c.client_for(node(i + 1)),
    );
    run.published_at_least(total / 3).await;
    let published = run.published.clone();
    c.kill9(victim);
    let at_kill = published.load(std::sync::atomic::Ordering::Relaxed);
    println!("killed node {victim}, leader of {} group(s) (leaders {led:?}), at {at_kill} of {total} published", count(victim));
    assert!(
        at_kill < total,
        "the producers finished before the kill: the run is too short to test a failover"
    );

    let after = wait_ok(
        Duration::from_secs(30),
        "every queue group led by a survivor",
        || leaders(&c, &map, &survivors),
    )
    .await;
    println!("leaders after the kill: {after:?}");
    run.producers_done().await;
    let history = run.history.clone();
    let (report, stats) = run
        .drain(&c.client_for(survivors[0]), Duration::from_secs(180))
        .await;
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert_eq!(report.acknowledged_enqueues, total as usize);
    for (t, s) in &stats {
        assert_eq!((s.enqueued_total, s.dead_lettered), (60, 0), "{t}: {s:?}");
        assert_eq!(first_deliveries(&history, t).len(), 60, "{t}");
    }
    println!(
        "{total} messages acknowledged, all delivered and acked through the failover; {} duplicate deliveries",
        report.duplicates
    );
}
