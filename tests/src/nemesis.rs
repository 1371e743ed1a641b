//! The nemesis: injects faults into a running local cluster on a schedule
//! and heals them, recording what it did and when. One fault at a time, so
//! a quorum always comes back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dsync_api::types::Role;
use nix::sys::signal::Signal;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::Cluster;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// kill -9 a random node, restart it from its data.
    KillRandom,
    /// kill -9 the leader, restart it from its data.
    KillLeader,
    /// SIGSTOP a random node (the leader half the time), then SIGCONT.
    Pause,
    /// kill -9 every node at once during the load, then restart them all.
    KillAll,
    /// Cut a node (the leader half the time) off from its peers with drop
    /// rules in its network namespace, then heal. Needs a cluster made by
    /// [`Cluster::up_in_netns`].
    Partition,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::KillRandom,
        Fault::KillLeader,
        Fault::Pause,
        Fault::KillAll,
        Fault::Partition,
    ];
}

#[derive(Debug, Clone, Serialize)]
pub struct Injected {
    pub fault: Fault,
    pub nodes: Vec<u64>,
    pub at_ms: u64,
    pub healed_ms: u64,
}

/// Timing of the fault loop.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Quiet time before each fault.
    pub gap: Duration,
    /// How long a fault lasts before it is healed.
    pub hold: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            gap: Duration::from_millis(1500),
            // Longer than lease + election timeout, so a killed or paused
            // leader is replaced before it comes back.
            hold: Duration::from_millis(3000),
        }
    }
}

pub struct Nemesis {
    pub injected: Mutex<Vec<Injected>>,
    stop: AtomicBool,
    start: Instant,
}

impl Nemesis {
    pub fn new() -> Arc<Nemesis> {
        Arc::new(Nemesis {
            injected: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            start: Instant::now(),
        })
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Injects faults drawn from `kinds` until stopped; every fault is healed
    /// before this returns.
    pub async fn run(self: Arc<Self>, cluster: Arc<Cluster>, kinds: Vec<Fault>, s: Schedule) {
        let mut rng = rand::rngs::StdRng::from_entropy();
        while !self.stopped() {
            tokio::time::sleep(s.gap).await;
            if self.stopped() {
                break;
            }
            let Some(fault) = kinds.choose(&mut rng).copied() else {
                return;
            };
            let ids: Vec<u64> = cluster.nodes().iter().map(|n| n.id).collect();
            let leader = current_leader(&cluster).await;
            let victims = match fault {
                Fault::KillAll => ids.clone(),
                Fault::KillLeader => leader.into_iter().collect(),
                Fault::KillRandom => ids.choose(&mut rng).copied().into_iter().collect(),
                Fault::Pause | Fault::Partition => {
                    let pick = if rng.gen::<bool>() { leader } else { None };
                    pick.or_else(|| ids.choose(&mut rng).copied())
                        .into_iter()
                        .collect()
                }
            };
            if victims.is_empty() {
                continue;
            }
            let at_ms = self.ms();
            for id in &victims {
                match fault {
                    Fault::Pause => cluster.signal(*id, Signal::SIGSTOP),
                    Fault::Partition => net(&cluster)
                        .isolate(*id)
                        .unwrap_or_else(|e| panic!("partition node {id}: {e}")),
                    _ => cluster.kill9(*id),
                }
            }
            tokio::time::sleep(s.hold).await;
            match fault {
                Fault::Pause => {
                    for id in &victims {
                        cluster.signal(*id, Signal::SIGCONT);
                    }
                }
                Fault::Partition => {
                    for id in &victims {
                        net(&cluster)
                            .heal(*id)
                            .unwrap_or_else(|e| panic!("heal node {id}: {e}"));
                    }
                }
                _ => restart(&cluster).await,
            }
            self.injected
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Injected {
                    fault,
                    nodes: victims,
                    at_ms,
                    healed_ms: self.ms(),
                });
        }
    }

    /// Faults injected, by kind.
    pub fn summary(&self) -> Vec<(Fault, usize)> {
        let injected = self.injected.lock().unwrap_or_else(|p| p.into_inner());
        Fault::ALL
            .iter()
            .map(|f| (*f, injected.iter().filter(|i| i.fault == *f).count()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

fn net(cluster: &Cluster) -> &crate::netns::Net {
    cluster
        .net()
        .expect("partitions need a cluster made by Cluster::up_in_netns")
}

async fn current_leader(cluster: &Cluster) -> Option<u64> {
    cluster
        .statuses()
        .await
        .into_iter()
        .find(|s| s.role == Role::Leader)
        .map(|s| s.id)
}

/// `dsync cluster up` on the cluster's folder starts the stopped nodes from
/// their data and waits until they are voters again.
async fn restart(cluster: &Arc<Cluster>) {
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || {
        c.dsync_ok(&["cluster", "up", "--timeout", "60"]);
    })
    .await
    .expect("restart task");
}
