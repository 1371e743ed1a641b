//! `dsync cert rotate`: new node certificates (and keys) from the existing
//! CA, so nodes restarted one at a time keep trusting each other: old and
//! new certificates chain to the same CA.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use rcgen::KeyPair;
use serde::Serialize;

use super::init::{ca_params, issue_node, node_files, until, NODE_VALIDITY};
use super::x509::{display, parse, read_pem};
use crate::commands::EXIT_OK;
use crate::context::GlobalArgs;
use crate::duration::parse_duration;
use crate::secrets::write_private;

#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// Folder of ca.pem, ca.key and node-<i>.pem/.key [default: <DIR>/tls].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// How long the new certificates are valid, e.g. 90d, 365d (never past
    /// the CA's own expiry).
    #[arg(long, default_value = NODE_VALIDITY, value_parser = parse_duration, value_name = "DURATION")]
    pub validity: Duration,

    /// Names and IP addresses for the new certificates (comma-separated)
    /// [default: those of each certificate being replaced].
    #[arg(long, value_delimiter = ',')]
    pub hosts: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Rotated {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Where the replaced certificate and key now are (only those there
    /// were: a missing key leaves none).
    pub previous: Vec<PathBuf>,
    pub hosts: Vec<String>,
    pub valid_until: String,
    /// Set when the CA expires before the requested validity ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capped_by_ca: Option<String>,
}

pub fn run(global: &GlobalArgs, args: RotateArgs) -> anyhow::Result<i32> {
    let out = match args.out {
        Some(o) => o,
        None => global.dir()?.join("tls"),
    };
    let rotated = rotate(&out, args.validity, &args.hosts)?;
    global.output.print(&rotated, || {
        let mut text = String::new();
        for r in &rotated {
            let name = |p: &PathBuf| {
                p.file_name().map_or(p.display().to_string(), |n| {
                    n.to_string_lossy().into_owned()
                })
            };
            let kept: Vec<String> = r.previous.iter().map(name).collect();
            let kept = match kept.as_slice() {
                [cert, key] => {
                    format!("the previous certificate and key are kept as {cert} and {key}")
                }
                [one] => format!("the previous file is kept as {one}; there was no other"),
                _ => "there were no previous files".into(),
            };
            text.push_str(&format!(
                "{}: re-issued for {}, valid until {} ({kept})\n",
                r.cert.display(),
                r.hosts.join(","),
                r.valid_until,
            ));
            if let Some(ca) = &r.capped_by_ca {
                text.push_str(&format!(
                    "  shortened to the CA's expiry ({ca}): renew the CA before then\n"
                ));
            }
        }
        text
    })?;
    eprintln!(
        "nodes read their certificate when they start: restart them one at a time to serve the new ones (`dsync node restart <id>` on a local cluster)"
    );
    Ok(EXIT_OK)
}

/// Re-issues every `node-<i>.pem` in `out`.
pub fn rotate(out: &Path, validity: Duration, hosts: &[String]) -> anyhow::Result<Vec<Rotated>> {
    let ca_path = out.join("ca.pem");
    let key_path = out.join("ca.key");
    if !ca_path.exists() {
        bail!(
            "no CA in {} (no ca.pem): create one with `dsync cert init`",
            out.display()
        );
    }
    let ca_info = read_pem(&ca_path)?;
    let key_pem = match std::fs::read_to_string(&key_path) {
        Ok(k) => k,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} is missing: node certificates can only be re-issued with the CA's private key. Restore it from where you keep it, \
             or create a new CA elsewhere (`dsync cert init --out NEW`): nodes of different CAs refuse each other, so they then all restart together",
            key_path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", key_path.display())),
    };
    let ca_key =
        KeyPair::from_pem(&key_pem).map_err(|e| anyhow::anyhow!("{}: {e}", key_path.display()))?;
    // rcgen signs with a CA certificate object; the one rebuilt from the
    // same name and key issues certificates that chain to ca.pem.
    let ca = ca_params()?.self_signed(&ca_key)?;
    let rebuilt = parse(ca.der())?;
    if rebuilt.public_key != ca_info.public_key {
        bail!(
            "{} is not the key of {}",
            key_path.display(),
            ca_path.display()
        );
    }
    if rebuilt.subject != ca_info.subject {
        bail!(
            "{} was not made by `dsync cert init` (its subject differs): issue node certificates with the tool that made it",
            ca_path.display()
        );
    }
    let ids = node_ids(out)?;
    if ids.is_empty() {
        bail!("no node certificates (node-<i>.pem) in {}", out.display());
    }
    let wanted = until(validity).context("--validity")?;
    let not_after = wanted.min(ca_info.not_after);
    let capped = (not_after < wanted).then(|| display(ca_info.not_after));
    // Every certificate is issued before any file moves, so a failure
    // leaves the folder as it was.
    let mut issued = Vec::new();
    for id in ids {
        let (cert, key) = node_files(out, id);
        let hosts = match hosts {
            [] => read_pem(&cert)?.hosts,
            given => given.to_vec(),
        };
        if hosts.is_empty() {
            bail!("{} names no hosts: give them with --hosts", cert.display());
        }
        let (pem, new_key) = issue_node(id, &hosts, not_after, &ca, &ca_key)?;
        issued.push((cert, key, hosts, pem, new_key));
    }
    let mut rotated = Vec::new();
    for (cert, key, hosts, pem, new_key) in issued {
        let (cert_new, key_new) = (aside(&cert, "new"), aside(&key, "new"));
        std::fs::write(&cert_new, pem)
            .with_context(|| format!("cannot write {}", cert_new.display()))?;
        write_private(&key_new, &new_key.serialize_pem())?;
        let mut previous = Vec::new();
        for (current, new) in [(&cert, &cert_new), (&key, &key_new)] {
            let kept = old(current);
            if current.exists() {
                rename(current, &kept)?;
                previous.push(kept);
            } else {
                // A *.old from an earlier rotation would pose as this one's.
                remove_stale(&kept)?;
            }
            rename(new, current)?;
        }
        rotated.push(Rotated {
            cert,
            key,
            previous,
            hosts,
            valid_until: display(not_after),
            capped_by_ca: capped.clone(),
        });
    }
    Ok(rotated)
}

/// The ids of the `node-<i>.pem` files in `out`, in order.
fn node_ids(out: &Path) -> anyhow::Result<Vec<u64>> {
    let entries =
        std::fs::read_dir(out).with_context(|| format!("cannot read {}", out.display()))?;
    let mut ids: Vec<u64> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("node-")?
                .strip_suffix(".pem")?
                .parse()
                .ok()
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

fn aside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{suffix}"));
    PathBuf::from(name)
}

fn old(path: &Path) -> PathBuf {
    aside(path, "old")
}

fn remove_stale(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::rename(from, to)
        .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))
}

#[cfg(test)]
mod tests {
    use super::super::init::{init, Validity};
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn tls_config(out: &Path, id: u64) -> dsync_server::tls::TlsConfig {
        let (cert_file, key_file) = node_files(out, id);
        dsync_server::tls::TlsConfig {
            cert_file,
            key_file,
            ca_file: out.join("ca.pem"),
        }
    }

    #[test]
    fn rotation_reissues_under_the_same_ca_keeping_hosts_and_the_old_files() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("tls");
        let hosts = ["10.0.0.5".to_string(), "dsync.internal".to_string()];
        init(&out, 2, &hosts, Validity::default()).unwrap();
        let ca_before = std::fs::read(out.join("ca.pem")).unwrap();
        let old_cert = std::fs::read(node_files(&out, 1).0).unwrap();
        let old_key = std::fs::read(node_files(&out, 1).1).unwrap();

        let rotated = rotate(&out, 30 * DAY, &[]).unwrap();
        assert_eq!(rotated.len(), 2);
        assert_eq!(
            std::fs::read(out.join("ca.pem")).unwrap(),
            ca_before,
            "the CA is kept"
        );
        assert_eq!(std::fs::read(out.join("node-1.pem.old")).unwrap(), old_cert);
        assert_eq!(std::fs::read(out.join("node-1.key.old")).unwrap(), old_key);
        assert_ne!(
            std::fs::read(node_files(&out, 1).1).unwrap(),
            old_key,
            "a new key"
        );
        let ca = read_pem(&out.join("ca.pem")).unwrap();
        let node = read_pem(&node_files(&out, 1).0).unwrap();
        assert_eq!(node.issuer, ca.subject);
        assert_eq!(node.hosts, hosts);
        let left = node.not_after - time::OffsetDateTime::now_utc();
        assert!((left - time::Duration::days(30)).abs() < time::Duration::minutes(1));
        dsync_server::tls::Tls::load(&tls_config(&out, 2)).unwrap();
        assert!(!out.join("node-1.pem.new").exists());

        let again = rotate(&out, DAY, &["other.host".into()]).unwrap();
        assert_eq!(again[0].hosts, ["other.host"]);
        assert_eq!(read_pem(&out.join("node-1.pem.old")).unwrap().hosts, hosts);
    }

    #[test]
    fn a_missing_key_is_reported_as_such_and_no_older_key_poses_as_the_previous() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("tls");
        init(&out, 1, &["127.0.0.1".into()], Validity::default()).unwrap();
        rotate(&out, DAY, &[]).unwrap();
        let (cert, key) = node_files(&out, 1);
        std::fs::remove_file(&key).unwrap();
        let rotated = rotate(&out, DAY, &[]).unwrap();
        assert_eq!(rotated[0].previous, [old(&cert)]);
        assert!(!old(&key).exists(), "the key of two rotations ago stayed");
        dsync_server::tls::Tls::load(&tls_config(&out, 1)).unwrap();
    }

    #[test]
    fn a_validity_past_the_cas_expiry_is_shortened_and_said() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("tls");
        let v = Validity {
            ca: 10 * DAY,
            node: DAY,
        };
        init(&out, 1, &["a".into()], v).unwrap();
        let r = rotate(&out, 365 * DAY, &[]).unwrap();
        assert!(r[0].capped_by_ca.is_some());
        let ca = read_pem(&out.join("ca.pem")).unwrap();
        assert_eq!(
            read_pem(&node_files(&out, 1).0).unwrap().not_after,
            ca.not_after
        );
    }

    #[test]
    fn without_the_ca_key_or_a_ca_nothing_is_touched() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("tls");
        init(&out, 1, &["a".into()], Validity::default()).unwrap();
        std::fs::remove_file(out.join("ca.key")).unwrap();
        let before = std::fs::read(node_files(&out, 1).0).unwrap();
        let err = rotate(&out, DAY, &[]).unwrap_err().to_string();
        assert!(err.contains("ca.key is missing"), "{err}");
        assert_eq!(std::fs::read(node_files(&out, 1).0).unwrap(), before);
        assert!(!out.join("node-1.pem.old").exists());
        let err = rotate(&tmp.path().join("none"), DAY, &[]).unwrap_err();
        assert!(err.to_string().contains("cert init"), "{err}");
    }

    #[test]
    fn another_cas_key_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        init(&a, 1, &["a".into()], Validity::default()).unwrap();
        init(&b, 1, &["a".into()], Validity::default()).unwrap();
        std::fs::copy(b.join("ca.key"), a.join("ca.key")).unwrap();
        let err = rotate(&a, DAY, &[]).unwrap_err().to_string();
        assert!(err.contains("is not the key of"), "{err}");
    }
}
