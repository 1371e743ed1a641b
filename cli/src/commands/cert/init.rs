//! `dsync cert init`: a CA and node certificates.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use serde::Serialize;

use crate::commands::EXIT_OK;
use crate::context::GlobalArgs;
use crate::secrets::write_private;

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
}

#[derive(Debug, Serialize)]
pub struct Created {
    pub ca: PathBuf,
    pub nodes: Vec<(PathBuf, PathBuf)>,
}

pub fn run(global: &GlobalArgs, args: InitArgs) -> anyhow::Result<i32> {
    let out = match args.out {
        Some(o) => o,
        None => global.dir()?.join("tls"),
    };
    let created = init(&out, args.nodes, &args.hosts)?;
    global.output.print(&created, || {
        let mut text = format!("CA: {}\n", created.ca.display());
        for (cert, key) in &created.nodes {
            text.push_str(&format!("node: {} {}\n", cert.display(), key.display()));
        }
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

pub fn init(out: &Path, nodes: u8, hosts: &[String]) -> anyhow::Result<Created> {
    let ca_path = out.join("ca.pem");
    if ca_path.exists() {
        bail!(
            "{} already exists; remove it or pick another --out",
            ca_path.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "dsync cluster CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    std::fs::write(&ca_path, ca.pem())?;
    write_private(&out.join("ca.key"), &ca_key.serialize_pem())?;
    let mut created = Created {
        ca: ca_path,
        nodes: Vec::new(),
    };
    for i in 1..=u64::from(nodes) {
        let mut p = CertificateParams::new(hosts.to_vec())?;
        p.distinguished_name
            .push(DnType::CommonName, format!("dsync node {i}"));
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &ca, &ca_key)?;
        let (cert_path, key_path) = node_files(out, i);
        std::fs::write(&cert_path, cert.pem())?;
        write_private(&key_path, &key.serialize_pem())?;
        created.nodes.push((cert_path, key_path));
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_a_ca_and_loadable_node_certificates() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("tls");
        let c = init(&out, 2, &["127.0.0.1".into(), "localhost".into()]).unwrap();
        assert_eq!(c.nodes.len(), 2);
        let (cert, key) = node_files(&out, 2);
        dsync_server::tls::Tls::load(&dsync_server::tls::TlsConfig {
            cert_file: cert,
            key_file: key,
            ca_file: c.ca,
        })
        .unwrap();
        assert!(init(&out, 1, &[]).is_err(), "an existing CA is kept");
    }
}
