//! `dsync cert`: the certificates of a TLS cluster.

pub mod init;
pub mod rotate;
pub mod show;
mod x509;

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
    /// Node certificates are valid for --validity (default one year, never
    /// past the CA), the CA for --ca-validity (default ten years); renew
    /// node certificates with `dsync cert rotate`.
    Init(init::InitArgs),
    /// Re-issue the node certificates from the existing CA, with new keys.
    ///
    /// Every node-<i>.pem in --out (default <DIR>/tls) is replaced by a
    /// certificate for the same hosts (or --hosts), valid for --validity
    /// from now, signed by ca.pem with ca.key; the CA stays as it is. The
    /// replaced certificate and key are kept as node-<i>.pem.old and
    /// node-<i>.key.old (replacing older .old files). Refused, changing
    /// nothing, without ca.key or when ca.key is not ca.pem's key. Nodes
    /// read their certificate when they start: restart them one at a time
    /// (`dsync node restart <id>`); old and new certificates share the CA,
    /// so restarted and not yet restarted nodes keep talking.
    Rotate(rotate::RotateArgs),
    /// List the certificates in --out (default <DIR>/tls) with their names,
    /// hosts and expiry.
    Show(show::ShowArgs),
}

pub async fn run(global: &GlobalArgs, cmd: CertCommand) -> anyhow::Result<i32> {
    match cmd {
        CertCommand::Init(a) => init::run(global, a),
        CertCommand::Rotate(a) => rotate::run(global, a),
        CertCommand::Show(a) => show::run(global, a),
    }
}
