//! The secrets of a local secured cluster, under `<dir>/secrets/`: the
//! HS256 signing secret, the cluster secret peers present on `/raft/*`, and
//! an admin token the CLI uses when no `--token` is given.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use dsync_api::auth::{Role, TokenRequest};

/// Lifetime of the admin token `cluster up --auth token` leaves for the CLI.
const LOCAL_ADMIN_TTL_SECS: u64 = 365 * 24 * 3600;

pub struct Secrets {
    pub jwt_secret: PathBuf,
    pub cluster_secret: PathBuf,
    pub admin_token: PathBuf,
}

impl Secrets {
    pub fn at(dir: &Path) -> Secrets {
        let d = dir.join("secrets");
        Secrets {
            jwt_secret: d.join("jwt.secret"),
            cluster_secret: d.join("cluster.secret"),
            admin_token: d.join("admin.token"),
        }
    }

    /// Creates the secrets and the admin token (files readable by the owner only).
    pub fn create(dir: &Path) -> anyhow::Result<Secrets> {
        let s = Secrets::at(dir);
        let folder = dir.join("secrets");
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
        let jwt = random_secret();
        write_private(&s.jwt_secret, &jwt)?;
        write_private(&s.cluster_secret, &random_secret())?;
        let (token, _) = dsync_server::auth::mint_hs256(
            jwt.as_bytes(),
            &TokenRequest {
                subject: "admin".into(),
                role: Role::Admin,
                scopes: vec![],
                ttl_secs: LOCAL_ADMIN_TTL_SECS,
            },
        )
        .map_err(|e| anyhow::anyhow!("cannot sign the admin token: {}", e.message))?;
        write_private(&s.admin_token, &token)?;
        Ok(s)
    }

    /// The local admin token, if this folder holds a secured cluster.
    pub fn admin_token(dir: &Path) -> Option<String> {
        let t = std::fs::read_to_string(Secrets::at(dir).admin_token).ok()?;
        Some(t.trim().to_string()).filter(|t| !t.is_empty())
    }
}

/// 256 random bits as hex.
fn random_secret() -> String {
    (0..4)
        .map(|_| format!("{:016x}", rand::random::<u64>()))
        .collect()
}

pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_secrets_are_private_and_the_token_is_found() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(Secrets::admin_token(tmp.path()).is_none());
        let s = Secrets::create(tmp.path()).unwrap();
        let mode = std::fs::metadata(&s.jwt_secret)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&s.cluster_secret).unwrap().len(),
            64
        );
        assert_ne!(
            std::fs::read_to_string(&s.jwt_secret).unwrap(),
            std::fs::read_to_string(&s.cluster_secret).unwrap()
        );
        let token = Secrets::admin_token(tmp.path()).unwrap();
        assert_eq!(token.split('.').count(), 3);
    }
}
