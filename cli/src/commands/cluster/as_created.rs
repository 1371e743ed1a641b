//! `cluster up` on an existing cluster starts it as it was created. Its
//! --auth and --tls flags shape a new cluster only: an open cluster's nodes,
//! tokens and Raft membership (addresses without `https://`) were set up
//! without them, so taking the flags as a request to secure it would either
//! do nothing while exiting 0, or half-do it.

use std::path::Path;

use anyhow::bail;

use super::up::UpAuth;
use crate::cluster_file::ClusterFile;

/// How an existing cluster was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Security {
    pub auth: bool,
    pub tls: bool,
}

/// Read from the nodes' configs (local) or the recorded project (compose).
pub(super) fn created_with(file: &ClusterFile) -> Security {
    if let Some(info) = &file.compose {
        return Security {
            auth: info.auth,
            tls: false,
        };
    }
    let Some(node) = file.nodes.first() else {
        return Security {
            auth: false,
            tls: false,
        };
    };
    let s = crate::local::security_of(&node.config, &node.dir);
    Security {
        auth: s.auth.is_some(),
        tls: s.tls.is_some(),
    }
}

/// Refuses flags that ask for other security than the cluster has; returns
/// notes for a secured cluster started without its flags.
pub(super) fn check(
    dir: &Path,
    created: Security,
    auth: Option<UpAuth>,
    tls: bool,
) -> anyhow::Result<Vec<String>> {
    let d = dir.display();
    let guide = "see \"Securing an existing cluster\" in docs/operations.md";
    let mut notes = Vec::new();
    match (auth, created.auth) {
        (Some(UpAuth::Token), false) => bail!(
            "the cluster in {d} was created without auth; --auth token applies to new clusters only and nothing was started or changed. \
             To require tokens on this cluster, stop it, create the secrets and add an auth section to every node.yaml, then start all nodes together ({guide}); \
             or create a secured cluster in another folder (dsync --dir OTHER cluster up --auth token)"
        ),
        (Some(UpAuth::None), true) => bail!(
            "the cluster in {d} was created with --auth token; `cluster up` does not turn auth off and nothing was started or changed. \
             Run `dsync cluster up` without --auth to start it as created"
        ),
        (None, true) => notes.push(format!(
            "the cluster in {d} was created with --auth token: starting it as created (the CLI uses {})",
            crate::secrets::Secrets::at(dir).admin_token.display()
        )),
        _ => {}
    }
    match (tls, created.tls) {
        (true, false) => bail!(
            "the cluster in {d} was created without TLS; --tls applies to new clusters only and nothing was started or changed. \
             Its members are recorded in the Raft log with plain addresses, so TLS cannot be switched on in place: \
             create a TLS cluster in another folder (dsync --dir OTHER cluster up --tls) and move the clients to it ({guide})"
        ),
        (false, true) => notes.push(format!(
            "the cluster in {d} was created with --tls: starting it as created (clients trust {})",
            dir.join("tls").join("ca.pem").display()
        )),
        _ => {}
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: Security = Security {
        auth: false,
        tls: false,
    };
    const SECURED: Security = Security {
        auth: true,
        tls: true,
    };

    #[test]
    fn an_open_cluster_refuses_auth_and_tls_flags() {
        let dir = Path::new("/srv/c");
        let err = check(dir, OPEN, Some(UpAuth::Token), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/srv/c was created without auth"), "{err}");
        assert!(err.contains("Securing an existing cluster"), "{err}");
        let err = check(dir, OPEN, None, true).unwrap_err().to_string();
        assert!(err.contains("/srv/c was created without TLS"), "{err}");
        assert!(check(dir, OPEN, None, false).unwrap().is_empty());
        assert!(check(dir, OPEN, Some(UpAuth::None), false)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_secured_cluster_starts_as_created_with_a_note() {
        let dir = Path::new("/srv/c");
        let notes = check(dir, SECURED, None, false).unwrap();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("created with --auth token"), "{notes:?}");
        assert!(notes[1].contains("/srv/c/tls/ca.pem"), "{notes:?}");
        assert!(check(dir, SECURED, Some(UpAuth::Token), true)
            .unwrap()
            .is_empty());
        let err = check(dir, SECURED, Some(UpAuth::None), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not turn auth off"), "{err}");
    }
}
