//! Network namespaces for partition faults (Linux, root, iproute2, nft).
//!
//! Each node runs in its own namespace with one veth into a bridge. The
//! bridge lives in a "hub" namespace rather than the root one: hosts running
//! Docker set the root FORWARD policy to DROP and have bridge netfilter on,
//! which would silently drop traffic between the nodes. A last veth joins
//! the hub to the root namespace, so the test process (clients, checker)
//! reaches every node at its own address, 10.222.<slot>.<id>, also while
//! that node is cut off from its peers.
//!
//! A partition is a pair of nft drop rules inside the victim's namespace
//! (input from, output to every peer): the node keeps running and serving
//! clients but neither sends to nor hears from the rest of the cluster.
//!
//! Every run claims a slot (a /24 and the names derived from it) by creating
//! `/run/dsync-netns/<slot>` atomically, with its pid inside. [`Net`]'s Drop
//! deletes the namespaces, which takes their veths and the bridge with
//! them, even when a test panics; slots whose owner died (a run killed with
//! -9) are swept, processes included, by the next run.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Set to 1 to skip the partition tests on a machine that cannot create
/// network namespaces (not root, no iproute2 or nft). Without it they fail.
pub const OPT_OUT_ENV: &str = "DSYNC_NO_NETNS";

const SLOTS_DIR: &str = "/run/dsync-netns";
const NAME: &str = "dsyncnet";
const TABLE: &str = "dsync_partition";
/// Slots are the third octet of 10.222.0.0/16.
const SLOTS: u32 = 250;

/// Whether the partition tests were opted out with [`OPT_OUT_ENV`].
pub fn opted_out() -> bool {
    std::env::var(OPT_OUT_ENV).is_ok_and(|v| v == "1")
}

/// One test run's namespaces: a hub with the bridge and one per node.
#[derive(Debug)]
pub struct Net {
    slot: u32,
    ids: Vec<u64>,
}

impl Net {
    /// Builds the namespaces for nodes `ids` (each id in 1..=250), or says
    /// clearly why it cannot.
    pub fn create(ids: &[u64]) -> Result<Net, String> {
        preflight()?;
        if let Some(bad) = ids.iter().find(|i| !(1..=250).contains(*i)) {
            return Err(format!("node id {bad} has no address in a /24"));
        }
        sweep_stale();
        let slot = claim_slot()?;
        // From here on Drop undoes whatever part was built.
        let net = Net {
            slot,
            ids: ids.to_vec(),
        };
        net.build()
            .map_err(|e| format!("cannot build the test network: {e}"))?;
        Ok(net)
    }

    /// The namespace node `id` runs in.
    pub fn ns(&self, id: u64) -> String {
        format!("{NAME}{}-n{id}", self.slot)
    }

    fn hub(&self) -> String {
        format!("{NAME}{}-hub", self.slot)
    }

    /// Node `id`'s address, reachable from the root namespace.
    pub fn addr(&self, id: u64) -> Ipv4Addr {
        Ipv4Addr::new(10, 222, self.slot as u8, id as u8)
    }

    fn build(&self) -> Result<(), String> {
        let hub = self.hub();
        let uplink = uplink_name(self.slot);
        run("ip", &["netns", "add", &hub])?;
        ip_in(&hub, &["link", "set", "lo", "up"])?;
        ip_in(&hub, &["link", "add", "br0", "type", "bridge"])?;
        ip_in(&hub, &["link", "set", "br0", "up"])?;
        run(
            "ip",
            &[
                "link", "add", &uplink, "type", "veth", "peer", "name", "uplink", "netns", &hub,
            ],
        )?;
        ip_in(&hub, &["link", "set", "uplink", "master", "br0"])?;
        ip_in(&hub, &["link", "set", "uplink", "up"])?;
        let host = format!("10.222.{}.254/24", self.slot);
        run("ip", &["addr", "add", &host, "dev", &uplink])?;
        run("ip", &["link", "set", &uplink, "up"])?;
        for &id in &self.ids {
            let ns = self.ns(id);
            let port = format!("n{id}");
            run("ip", &["netns", "add", &ns])?;
            ip_in(
                &hub,
                &[
                    "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            )?;
            ip_in(&hub, &["link", "set", &port, "master", "br0"])?;
            ip_in(&hub, &["link", "set", &port, "up"])?;
            let addr = format!("{}/24", self.addr(id));
            ip_in(&ns, &["addr", "add", &addr, "dev", "eth0"])?;
            ip_in(&ns, &["link", "set", "eth0", "up"])?;
            ip_in(&ns, &["link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Cuts node `id` off from every other node, both ways. Clients in the
    /// root namespace still reach it.
    pub fn isolate(&self, id: u64) -> Result<(), String> {
        let peers: Vec<String> = self
            .ids
            .iter()
            .filter(|p| **p != id)
            .map(|p| self.addr(*p).to_string())
            .collect();
        if peers.is_empty() {
            return Ok(());
        }
        let set = peers.join(", ");
        let rules = format!(
            "table inet {TABLE} {{\n\
             chain input {{ type filter hook input priority 0; policy accept; ip saddr {{ {set} }} drop; }}\n\
             chain output {{ type filter hook output priority 0; policy accept; ip daddr {{ {set} }} drop; }}\n\
             }}\n"
        );
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let file = dir.path().join("partition.nft");
        std::fs::write(&file, rules).map_err(|e| e.to_string())?;
        let file = file.to_string_lossy().into_owned();
        run("ip", &["netns", "exec", &self.ns(id), "nft", "-f", &file])
    }

    /// Removes node `id`'s partition rules.
    pub fn heal(&self, id: u64) -> Result<(), String> {
        let ns = self.ns(id);
        let listed = run_out("ip", &["netns", "exec", &ns, "nft", "list", "tables"])?;
        if !listed.contains(TABLE) {
            return Ok(());
        }
        run(
            "ip",
            &[
                "netns", "exec", &ns, "nft", "delete", "table", "inet", TABLE,
            ],
        )
    }

    /// Whether node `id` is cut off right now (for tests of this module).
    pub fn is_isolated(&self, id: u64) -> bool {
        run_out(
            "ip",
            &["netns", "exec", &self.ns(id), "nft", "list", "tables"],
        )
        .is_ok_and(|t| t.contains(TABLE))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        teardown(self.slot);
    }
}

fn uplink_name(slot: u32) -> String {
    format!("{NAME}{slot}")
}

fn slot_dir(slot: u32) -> PathBuf {
    Path::new(SLOTS_DIR).join(slot.to_string())
}

/// Kills whatever still runs in the slot's namespaces, deletes them (their
/// veths and the bridge go with them) and frees the slot.
fn teardown(slot: u32) {
    let prefix = format!("{NAME}{slot}-");
    for ns in namespaces().into_iter().filter(|n| n.starts_with(&prefix)) {
        if let Ok(pids) = run_out("ip", &["netns", "pids", &ns]) {
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = run("ip", &["netns", "delete", &ns]);
    }
    // Normally gone with the hub; not if the hub was never created.
    let uplink = uplink_name(slot);
    if run_out("ip", &["link", "show", &uplink]).is_ok() {
        let _ = run("ip", &["link", "delete", &uplink]);
    }
    let _ = std::fs::remove_dir_all(slot_dir(slot));
}

fn namespaces() -> Vec<String> {
    run_out("ip", &["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Frees the slots of runs that died without cleaning up, and namespaces
/// of ours that no slot claims.
fn sweep_stale() {
    let mut live = Vec::new();
    for slot in 0..SLOTS {
        let Ok(owner) = std::fs::read_to_string(slot_dir(slot).join("owner")) else {
            continue;
        };
        let alive = owner
            .trim()
            .parse::<u32>()
            .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if alive {
            live.push(slot);
        } else {
            teardown(slot);
        }
    }
    for ns in namespaces() {
        let slot = ns
            .strip_prefix(NAME)
            .and_then(|r| r.split('-').next())
            .and_then(|s| s.parse::<u32>().ok());
        // A slot just claimed may not have written its owner yet.
        if let Some(slot) = slot.filter(|s| !live.contains(s) && !slot_dir(*s).exists()) {
            teardown(slot);
        }
    }
}

/// Claims a free slot whose subnet no interface of this host uses.
fn claim_slot() -> Result<u32, String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    std::fs::create_dir_all(SLOTS_DIR).map_err(|e| format!("cannot create {SLOTS_DIR}: {e}"))?;
    let used = run_out("ip", &["-4", "-o", "addr", "show"])?;
    let start = std::process::id() + NEXT.fetch_add(1, Ordering::Relaxed) * 7;
    for k in 0..SLOTS {
        let slot = (start + k) % SLOTS + 1;
        if slot >= SLOTS {
            continue;
        }
        if used.contains(&format!(" 10.222.{slot}.")) {
            continue;
        }
        let dir = slot_dir(slot);
        if std::fs::create_dir(&dir).is_ok() {
            std::fs::write(dir.join("owner"), std::process::id().to_string())
                .map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
            return Ok(slot);
        }
    }
    Err(format!("no free slot left under {SLOTS_DIR}"))
}

fn preflight() -> Result<(), String> {
    let hint = format!(
        "partition tests need root on Linux with iproute2 and nftables \
         (scripts/ensure-tools.sh installs them); set {OPT_OUT_ENV}=1 to skip them"
    );
    for (tool, arg) in [("ip", "-V"), ("nft", "--version")] {
        match Command::new(tool).arg(arg).output() {
            Ok(o) if o.status.success() => {}
            _ => return Err(format!("`{tool}` is not available: {hint}")),
        }
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("");
    if euid != "0" {
        return Err(format!("not running as root (euid {euid:?}): {hint}"));
    }
    Ok(())
}

fn ip_in(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    run("ip", &all)
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    run_out(cmd, args).map(|_| ())
}

fn run_out(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
