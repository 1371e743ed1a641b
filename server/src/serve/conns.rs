//! The table of open connections: a cap on all of them and on those from
//! one client address, and, when the node is full, room made by closing
//! the oldest connection that is doing nothing (one that has not sent a
//! request yet first, then an idle keep-alive one) rather than refusing
//! the newcomer. Silent sockets therefore cannot starve anyone, peers
//! included: a peer's connection, once it has made a peer request, counts
//! against no client address and is never the one closed.
//!
//! A node whose every slot is busy (long polls, event streams) still
//! admits up to [`PEER_ROOM`] more connections *on probation*: a request on
//! one that is not a peer's is answered 503 and the connection closed. So
//! clients cannot take the slots a peer needs to replicate or forward. (The
//! per-address cap still applies before that: peers on the same host as a
//! client at its cap share its address.)

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Why a new connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address already has `max_per_client` connections open.
    PerClient,
    /// Every slot holds a connection with a request in flight, or a peer's.
    Full,
}

/// Connections admitted past the caps, until they prove to be peers'.
pub const PEER_ROOM: usize = 16;

pub struct Conns {
    max_total: usize,
    /// 0 = no per-address cap.
    max_per_client: usize,
    started: Instant,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    /// By id, so the first match of a scan is the oldest connection.
    open: BTreeMap<u64, Arc<Conn>>,
    /// Open connections per address, peers' excluded.
    per_client: HashMap<IpAddr, usize>,
    /// Connections on probation (see [`PEER_ROOM`]).
    probation: usize,
}

/// One open connection: what it is doing, for the idle watchdog and for
/// choosing whom to close.
pub struct Conn {
    id: u64,
    ip: IpAddr,
    in_flight: AtomicUsize,
    served: AtomicBool,
    peer: AtomicBool,
    /// Admitted past a cap: only a peer request may use it.
    probation: AtomicBool,
    /// Milliseconds from `Conns::started` to the end of the last request
    /// (or to the accept).
    idle_since_ms: AtomicU64,
    evict: Notify,
}

impl Conns {
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Conns> {
        Arc::new(Conns {
            max_total,
            max_per_client,
            started: Instant::now(),
            table: Mutex::default(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `ip`, closing an idle one if the node is full.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let mut t = self.table();
        let from_ip = t.per_client.get(&ip).copied().unwrap_or(0);
        if self.max_per_client > 0 && from_ip >= self.max_per_client {
            return Err(Refusal::PerClient);
        }
        let mut probation = false;
        if t.open.len() >= self.max_total {
            let idle = |c: &&Arc<Conn>| {
                !c.peer.load(Ordering::Acquire) && c.in_flight.load(Ordering::Acquire) == 0
            };
            let victim = t
                .open
                .values()
                .filter(idle)
                .find(|c| !c.served.load(Ordering::Acquire))
                .or_else(|| t.open.values().find(idle))
                .cloned();
            match victim {
                Some(victim) => {
                    t.remove(&victim);
                    victim.evict.notify_one();
                }
                None if t.probation < PEER_ROOM => probation = true,
                None => return Err(Refusal::Full),
            }
        }
        if probation {
            t.probation += 1;
        }
        t.next_id += 1;
        let conn = Arc::new(Conn {
            id: t.next_id,
            ip,
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            peer: AtomicBool::new(false),
            probation: AtomicBool::new(probation),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            evict: Notify::new(),
        });
        t.open.insert(conn.id, conn.clone());
        *t.per_client.entry(ip).or_insert(0) += 1;
        Ok(Slot {
            conns: self.clone(),
            conn,
        })
    }

    pub fn open(&self) -> usize {
        self.table().open.len()
    }
}

impl Table {
    fn remove(&mut self, c: &Conn) {
        if self.open.remove(&c.id).is_none() {
            return;
        }
        if c.probation.swap(false, Ordering::AcqRel) {
            self.probation -= 1;
        }
        if !c.peer.load(Ordering::Acquire) {
            self.uncount(c.ip);
        }
    }

    fn uncount(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_client.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&ip);
            }
        }
    }
}

/// A connection's place in the table, given back when it is dropped.
pub struct Slot {
    conns: Arc<Conns>,
    conn: Arc<Conn>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conns.table().remove(&self.conn);
    }
}

impl Slot {
    /// The handle requests on this connection carry (see [`ConnMark`]).
    pub fn mark(&self) -> ConnMark {
        ConnMark {
            conns: self.conns.clone(),
            conn: self.conn.clone(),
        }
    }

    /// Resolves when the table closed this connection to make room.
    pub async fn evicted(&self) {
        self.conn.evict.notified().await
    }

    /// Resolves once the connection has had no request in flight for
    /// `limit`, counted from the accept or from the end of its last request.
    pub async fn silent_for(&self, limit: Duration) {
        loop {
            let wait = match self.idle() {
                Some(idle) if idle >= limit => return,
                Some(idle) => limit - idle,
                None => limit,
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn idle(&self) -> Option<Duration> {
        let c = &self.conn;
        (c.in_flight.load(Ordering::Acquire) == 0).then(|| {
            let since = c.idle_since_ms.load(Ordering::Acquire);
            Duration::from_millis(self.conns.now_ms().saturating_sub(since))
        })
    }
}

/// Carried by each request (an extension), so the server can say what the
/// connection is doing: a request started, or it proved to be a peer's.
#[derive(Clone)]
pub struct ConnMark {
    conns: Arc<Conns>,
    conn: Arc<Conn>,
}

impl ConnMark {
    /// One request in flight until the returned guard is dropped (with the
    /// response body, or with the request if it is abandoned).
    pub fn begin(&self) -> Busy {
        self.conn.served.store(true, Ordering::Release);
        self.conn.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// The connection carries a peer's traffic: it no longer counts against
    /// its address and is never closed to make room.
    pub fn mark_peer(&self) {
        let mut t = self.conns.table();
        if !self.conn.peer.swap(true, Ordering::AcqRel) && t.open.contains_key(&self.conn.id) {
            t.uncount(self.conn.ip);
            if self.conn.probation.swap(false, Ordering::AcqRel) {
                t.probation -= 1;
            }
        }
    }

    /// Whether a request that is not a peer's must be turned away here:
    /// the connection was admitted past a cap and has not proved a peer's.
    pub fn on_probation(&self) -> bool {
        self.conn.probation.load(Ordering::Acquire)
    }
}

pub struct Busy(ConnMark);

impl Drop for Busy {
    fn drop(&mut self) {
        let c = &self.0.conn;
        c.idle_since_ms
            .store(self.0.conns.now_ms(), Ordering::Release);
        c.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_address_is_capped_and_a_closed_connection_gives_its_slot_back() {
        let conns = Conns::new(100, 2);
        let a = conns.admit(ip(1)).unwrap();
        let _b = conns.admit(ip(1)).unwrap();
        assert_eq!(conns.admit(ip(1)).err(), Some(Refusal::PerClient));
        assert!(conns.admit(ip(2)).is_ok());
        drop(a);
        assert!(conns.admit(ip(1)).is_ok());
    }

    #[test]
    fn a_full_node_closes_the_oldest_silent_connection_then_an_idle_one_never_a_busy_one() {
        let conns = Conns::new(3, 0);
        let served = conns.admit(ip(1)).unwrap();
        drop(served.mark().begin());
        let silent = conns.admit(ip(2)).unwrap();
        let busy = conns.admit(ip(3)).unwrap();
        let _req = busy.mark().begin();
        // Full: the silent one goes first, although the served one is older.
        let d = conns.admit(ip(4)).unwrap();
        assert!(silent.conn.evict.notified().now_or_never_ready());
        assert!(!served.conn.evict.notified().now_or_never_ready());
        assert_eq!(conns.open(), 3);
        let _d_req = d.mark().begin();
        // Then the idle keep-alive one.
        let e = conns.admit(ip(5)).unwrap();
        assert!(served.conn.evict.notified().now_or_never_ready());
        let _e_req = e.mark().begin();
        // Every slot busy: the newcomer is on probation, nobody is closed.
        let f = conns.admit(ip(6)).unwrap();
        assert!(f.mark().on_probation());
        assert_eq!(conns.open(), 4);
        drop(f);
        // Dropping the evicted connections' slots does not free a second slot.
        drop((silent, served));
        assert_eq!(conns.open(), 3);
    }

    #[test]
    fn a_peer_connection_counts_against_no_address_and_is_never_closed() {
        let conns = Conns::new(2, 1);
        let p = conns.admit(ip(1)).unwrap();
        p.mark().mark_peer();
        let c = conns.admit(ip(1)).unwrap();
        // Full, and the only candidate is the client connection.
        let _n = conns.admit(ip(2)).unwrap();
        assert!(c.conn.evict.notified().now_or_never_ready());
        assert!(!p.conn.evict.notified().now_or_never_ready());
        drop(p);
        assert_eq!(conns.open(), 1);
    }

    #[test]
    fn past_the_cap_only_peers_get_in_and_only_so_many_wait_to_prove_it() {
        let conns = Conns::new(1, 0);
        let busy = conns.admit(ip(1)).unwrap();
        let _req = busy.mark().begin();
        assert!(!busy.mark().on_probation());
        // Full of busy clients: probation.
        let mut waiting: Vec<Slot> = (0..PEER_ROOM)
            .map(|_| {
                let s = conns.admit(ip(2)).expect("room for peers");
                // Busy, so none is closed to make room for the next.
                std::mem::forget(s.mark().begin());
                s
            })
            .collect();
        assert!(waiting.iter().all(|s| s.mark().on_probation()));
        assert_eq!(conns.admit(ip(2)).err(), Some(Refusal::Full));
        // One proves a peer's: it stays, off probation, and frees a place.
        let peer = waiting.pop().unwrap();
        peer.mark().mark_peer();
        assert!(!peer.mark().on_probation());
        let again = conns.admit(ip(2)).expect("a place came back");
        assert!(again.mark().on_probation());
        let _again_req = again.mark().begin();
        assert_eq!(conns.admit(ip(3)).err(), Some(Refusal::Full));
        // Closing one on probation gives its place back too.
        drop(waiting.pop());
        let last = conns.admit(ip(3)).expect("a place came back");
        let _last_req = last.mark().begin();
        assert_eq!(conns.admit(ip(3)).err(), Some(Refusal::Full));
    }

    /// Whether a notification is already stored, without waiting for one.
    trait Ready {
        fn now_or_never_ready(self) -> bool;
    }
    impl<F: std::future::Future> Ready for F {
        fn now_or_never_ready(self) -> bool {
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            let mut f = std::pin::pin!(self);
            f.as_mut().poll(&mut cx).is_ready()
        }
    }
}
