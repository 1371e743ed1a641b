//! `dsync cert`: the certificates of a TLS cluster.

pub mod init;

use clap::Subcommand;

use crate::context::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Create a cluster CA and a certificate for each node (rcgen).
    ///
    /// Writes ca.pem, ca.key, node-<i>.pem and node-<i>.key into --out
    /// (default <DIR>/tls). Node certificates name --hosts and serve both as
    /// server certificates and as the client certificates peers present on
    /// /raft/*: a node accepts Raft RPCs only from certificates this CA
    /// signed. Clients need only ca.pem (DSYNC_CA_CERT) to trust the nodes.
    Init(init::InitArgs),
}

pub async fn run(global: &GlobalArgs, cmd: CertCommand) -> anyhow::Result<i32> {
    match cmd {
        CertCommand::Init(a) => init::run(global, a),
    }
}
