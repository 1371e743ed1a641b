//! `dsync cert init`: a CA and node certificates, each with a finite
//! validity.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde::Serialize;
use time::OffsetDateTime;

use super::x509::display;
use crate::commands::EXIT_OK;
use crate::context::GlobalArgs;
use crate::duration::parse_duration;
use crate::secrets::write_private;

/// Node certificates: a year, so an expiry comes round while whoever set the
/// cluster up still remembers how to renew (`cert rotate`).
pub const NODE_VALIDITY: &str = "365d";
/// The CA: ten years; renewing it means new node certificates everywhere.
pub const CA_VALIDITY: &str = "3650d";
/// Certificates start this far in the past, so a peer whose clock is a few
/// minutes behind does not refuse a fresh one as not yet valid.
const BACKDATE: Duration = Duration::from_secs(300);

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Folder for the files [default: <DIR>/tls].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Number of node certificates.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=99))]
    pub nodes: u8,

    /// Names and IP addresses the node certificates are valid for (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1,localhost")]
    pub hosts: Vec<String>,

    /// How long the node certificates are valid, e.g. 90d, 365d; renew them
    /// with `dsync cert rotate`.
    #[arg(long, default_value = NODE_VALIDITY, value_parser = parse_duration, value_name = "DURATION")]
    pub validity: Duration,

    /// How long the CA is valid.
    #[arg(long, default_value = CA_VALIDITY, value_parser = parse_duration, value_name = "DURATION")]
    pub ca_validity: Duration,
}

/// How long what `init` issues is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub ca: Duration,
    pub node: Duration,
}

impl Default for Validity {
    fn default() -> Self {
        let days = |d: &str| parse_duration(d).unwrap_or(Duration::from_secs(86_400));
        Validity {
            ca: days(CA_VALIDITY),
            node: days(NODE_VALIDITY),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Created {
    pub ca: PathBuf,
    pub ca_valid_until: String,
    pub nodes: Vec<(PathBuf, PathBuf)>,
    pub nodes_valid_until: String,
}

pub fn run(global: &GlobalArgs, args: InitArgs) -> anyhow::Result<i32> {
    let out = match args.out {
        Some(o) => o,
        None => global.dir()?.join("tls"),
    };
    let validity = Validity {
        ca: args.ca_validity,
        node: args.validity,
    };
    let created = init(&out, args.nodes, &args.hosts, validity)?;
    global.output.print(&created, || {
        let mut text = format!(
            "CA: {} (valid until {})\n",
            created.ca.display(),
            created.ca_valid_until
        );
        for (cert, key) in &created.nodes {
            text.push_str(&format!("node: {} {}\n", cert.display(), key.display()));
        }
        text.push_str(&format!(
            "node certificates valid until {}: renew them with `dsync cert rotate`\n",
            created.nodes_valid_until
        ));
        text
    })?;
    Ok(EXIT_OK)
}

/// Node `i`'s certificate and key in `out`.
pub fn node_files(out: &Path, i: u64) -> (PathBuf, PathBuf) {
    (
        out.join(format!("node-{i}.pem")),
        out.join(format!("node-{i}.key")),
    )
}

/// `validity` from now, refusing zero and dates past year 9999.
pub fn until(validity: Duration) -> anyhow::Result<OffsetDateTime> {
    if validity.is_zero() {
        bail!("a certificate validity must be longer than zero");
    }
    time::Duration::try_from(validity)
        .ok()
        .and_then(|v| OffsetDateTime::now_utc().checked_add(v))
        .filter(|t| t.year() <= 9999)
        .context("that validity ends after the year 9999")
}

fn starts() -> OffsetDateTime {
    OffsetDateTime::now_utc() - BACKDATE
}

/// The CA's name and uses. `cert rotate` rebuilds the CA certificate from
/// these and the CA key to sign with, so they must not change.
pub fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "dsync cluster CA");
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

/// A certificate for node `i` naming `hosts`, valid until `not_after`,
/// signed by the CA; returns its PEM and its new key.
pub fn issue_node(
    i: u64,
    hosts: &[String],
    not_after: OffsetDateTime,
    ca: &Certificate,
    ca_key: &KeyPair,
) -> anyhow::Result<(String, KeyPair)> {
    let mut p = CertificateParams::new(hosts.to_vec())?;
    p.distinguished_name
        .push(DnType::CommonName, format!("dsync node {i}"));
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.not_before = starts();
    p.not_after = not_after;
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, ca, ca_key)?;
    Ok((cert.pem(), key))
}

pub fn init(
    out: &Path,
    nodes: u8,
    hosts: &[String],
    validity: Validity,
) -> anyhow::Result<Created> {
    let ca_path = out.join("ca.pem");
    if ca_path.exists() {
        bail!(
            "{} already exists; remove it or pick another --out (to renew node certificates, use `dsync cert rotate`)",
            ca_path.display()
        );
    }
    let ca_until = until(validity.ca).context("--ca-validity")?;
    // A node certificate is worthless once its CA has expired.
    let node_until = until(validity.node).context("--validity")?.min(ca_until);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut ca_params = ca_params()?;
    ca_params.not_before = starts();
    ca_params.not_after = ca_until;
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    std::fs::write(&ca_path, ca.pem())
        .with_context(|| format!("cannot write {}", ca_path.display()))?;
    write_private(&out.join("ca.key"), &ca_key.serialize_pem())?;
    let mut created = Created {
        ca: ca_path,
        ca_valid_until: display(ca_until),
        nodes: Vec::new(),
        nodes_valid_until: display(node_until),
    };
    for i in 1..=u64::from(nodes) {
        let (pem, key) = issue_node(i, hosts, node_until, &ca, &ca_key)?;
        let (cert_path, key_path) = node_files(out, i);
        std::fs::write(&cert_path, pem)
            .with_context(|| format!("cannot write {}", cert_path.display()))?;
        write_private(&key_path, &key.serialize_pem())?;
        created.nodes.push((cert_path, key_path));
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::super::x509::read_pem;
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    /// `d` is `days` long, give or take the test's own run time (validity is
    /// counted from when the certificate is made, to the second).
    fn assert_about(d: time::Duration, days: i64) {
        let off = (d - time::Duration::days(days)).abs();
        assert!(off < time::Duration::minutes(1), "{d} is not {days} days");
    }

    #[test]
    fn init_writes_a_ca_and_loadable_node_certificates() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("tls");
        let hosts = ["127.0.0.1".into(), "localhost".into()];
        let c = init(&out, 2, &hosts, Validity::default()).unwrap();
        assert_eq!(c.nodes.len(), 2);
        let (cert, key) = node_files(&out, 2);
        dsync_server::tls::Tls::load(&dsync_server::tls::TlsConfig {
            cert_file: cert,
            key_file: key,
            ca_file: c.ca,
        })
        .unwrap();
        let err = init(&out, 1, &[], Validity::default()).unwrap_err();
        assert!(
            err.to_string().contains("cert rotate"),
            "an existing CA is kept: {err}"
        );
    }

    #[test]
    fn certificates_expire_after_their_validity_by_default_one_year_and_ten() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("tls");
        let now = OffsetDateTime::now_utc();
        init(&out, 1, &["localhost".into()], Validity::default()).unwrap();
        let ca = read_pem(&out.join("ca.pem")).unwrap();
        let node = read_pem(&node_files(&out, 1).0).unwrap();
        assert_about(node.not_after - now, 365);
        assert_about(ca.not_after - now, 3650);
        assert!(node.not_before < now && now - node.not_before < time::Duration::minutes(10));
        assert_eq!(node.issuer, ca.subject);
        assert_eq!(node.hosts, ["localhost"]);
    }

    #[test]
    fn validity_is_configurable_and_capped_by_the_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let v = Validity {
            ca: 30 * DAY,
            node: 7 * DAY,
        };
        init(&tmp.path().join("a"), 1, &["a".into()], v).unwrap();
        let node = read_pem(&node_files(&tmp.path().join("a"), 1).0).unwrap();
        assert_about(node.not_after - now, 7);
        let v = Validity {
            ca: 30 * DAY,
            node: 90 * DAY,
        };
        init(&tmp.path().join("b"), 1, &["a".into()], v).unwrap();
        let node = read_pem(&node_files(&tmp.path().join("b"), 1).0).unwrap();
        let ca = read_pem(&tmp.path().join("b/ca.pem")).unwrap();
        assert_eq!(node.not_after, ca.not_after);
    }

    #[test]
    fn zero_and_endless_validities_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        for (ca, node) in [(DAY, Duration::ZERO), (DAY * 4_000_000, DAY)] {
            let err = init(&tmp.path().join("x"), 1, &[], Validity { ca, node }).unwrap_err();
            assert!(format!("{err:#}").contains("validity"), "{err:#}");
            assert!(!tmp.path().join("x").exists(), "nothing written");
        }
    }
}
