//! `--via`: which node each bench client sends its requests to.

use std::time::Duration;

use dsync_api::{Client, ClientConfig};

use crate::context::{GlobalArgs, RequestError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// Client i sends to node i mod N and is never redirected, as clients
    /// behind a load balancer or a Kubernetes Service are: followers
    /// forward writes to the leader. On a failure it moves to the next node.
    Any,
    /// Every client follows the leader, so writes take no forwarding hop.
    Leader,
}

impl Via {
    pub fn name(self) -> &'static str {
        match self {
            Via::Any => "any",
            Via::Leader => "leader",
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct ViaArgs {
    /// Which node each client talks to.
    #[arg(long, value_enum, default_value_t = Via::Any)]
    pub via: Via,
}

/// The API clients of one bench: one per node with `--via any`, one that
/// follows the leader with `--via leader`. Cheap to clone (clients share
/// their connections).
#[derive(Clone)]
pub struct Targets {
    pub via: Via,
    clients: Vec<Client>,
    /// One line for stderr: where the requests go.
    pub described: String,
}

/// The node that bench client `client` is bound to, out of `nodes`.
pub fn node_of(client: u32, nodes: usize) -> usize {
    client as usize % nodes.max(1)
}

/// `endpoints` starting at index `first`, wrapping: the failover order of
/// a client bound to that node.
fn rotated(endpoints: &[String], first: usize) -> Vec<String> {
    let n = endpoints.len();
    (0..n).map(|k| endpoints[(first + k) % n].clone()).collect()
}

/// How many of `clients` land on each of `nodes` nodes.
fn spread(clients: u32, nodes: usize) -> Vec<u32> {
    let mut per = vec![0; nodes];
    for c in 0..clients {
        per[node_of(c, nodes)] += 1;
    }
    per
}

impl Targets {
    /// Builds the clients for `clients` bench clients; `tune` adjusts each
    /// client's config (timeouts). With `--via leader` it asks every node
    /// for its status first, so the client knows each node's id and goes to
    /// the leader from the first timed request on.
    pub async fn new(
        global: &GlobalArgs,
        via: Via,
        clients: u32,
        tune: impl Fn(&mut ClientConfig),
    ) -> anyhow::Result<Targets> {
        let endpoints = global.endpoints()?;
        let make = |endpoints: Vec<String>, follow: bool| {
            let mut c = ClientConfig::new(endpoints);
            c.token = global.token.clone();
            c.follow_leader = follow;
            tune(&mut c);
            Client::new(c).map_err(|e| anyhow::Error::from(RequestError(e)))
        };
        match via {
            Via::Any => {
                let clients_of: Vec<Client> = (0..endpoints.len())
                    .map(|i| make(rotated(&endpoints, i), false))
                    .collect::<anyhow::Result<_>>()?;
                let per = spread(clients, endpoints.len());
                let described = endpoints
                    .iter()
                    .zip(per)
                    .map(|(e, n)| format!("{n} on {e}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                Ok(Targets {
                    via,
                    clients: clients_of,
                    described: format!("via any: {described}; no leader following"),
                })
            }
            Via::Leader => {
                let client = make(endpoints.clone(), true)?;
                for i in 0..endpoints.len() {
                    client.prefer(i);
                    // A node that is down is only skipped: the calls then
                    // find the leader among the others.
                    let _ = client.status().await;
                }
                let leader = match client.status().await {
                    Ok(s) if s.leader == Some(s.id) => format!("node {} at {}", s.id, s.addr),
                    Ok(s) => match s.leader {
                        Some(l) => format!("node {l}"),
                        None => "none elected yet".to_string(),
                    },
                    Err(e) => format!("status failed: {}", RequestError(e)),
                };
                Ok(Targets {
                    via,
                    clients: vec![client],
                    described: format!("via leader: all {clients} on the leader ({leader})"),
                })
            }
        }
    }

    /// The API client of bench client `c`.
    pub fn client(&self, c: u32) -> &Client {
        &self.clients[node_of(c, self.clients.len())]
    }

    /// Every distinct API client: one per node with `--via any`.
    pub fn all(&self) -> &[Client] {
        &self.clients
    }
}

/// A short retry window: a stalled cluster should show up as errors in the
/// report, not as requests hanging past the end of the run.
pub fn bench_timeouts(c: &mut ClientConfig) {
    c.retry_for = Duration::from_secs(2);
    c.request_timeout = Duration::from_secs(5);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        via: ViaArgs,
    }

    #[test]
    fn any_is_the_default_and_leader_is_accepted() {
        assert_eq!(Cli::parse_from(["x"]).via.via, Via::Any);
        let leader = Cli::parse_from(["x", "--via", "leader"]).via.via;
        assert_eq!(leader, Via::Leader);
        assert_eq!(leader.name(), "leader");
        assert!(Cli::try_parse_from(["x", "--via", "follower"]).is_err());
    }

    #[test]
    fn clients_are_bound_round_robin() {
        assert_eq!(
            (0..7).map(|c| node_of(c, 3)).collect::<Vec<_>>(),
            [0, 1, 2, 0, 1, 2, 0]
        );
        assert_eq!(node_of(5, 1), 0);
        assert_eq!(spread(64, 3), [22, 21, 21]);
        assert_eq!(spread(2, 3), [1, 1, 0]);
    }

    #[test]
    fn a_bound_client_fails_over_in_ring_order() {
        let e: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert_eq!(rotated(&e, 0), ["a", "b", "c"]);
        assert_eq!(rotated(&e, 2), ["c", "a", "b"]);
    }
}
