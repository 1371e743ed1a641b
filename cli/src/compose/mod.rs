//! The `compose` runtime: the same nodes as `local`, each in a container of
//! the `dsync` image (built offline by scripts/build-image.sh), on a private
//! Docker network with a named volume per node.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::commands::version::VersionInfo;

mod prometheus;
mod yaml;
pub use prometheus::write_prometheus;
pub use yaml::{
    compose_yaml, node_config_yaml, publish_entry, ComposeDoc, NodeService, Publish, NODE_CONFIG,
};

/// The port every node listens on inside its container.
pub const NODE_PORT: u16 = 7000;
pub const COMPOSE_FILE: &str = "docker-compose.yml";
pub const PROMETHEUS_FILE: &str = "prometheus.yml";
/// The alerting rules, relative to prometheus.yml (which Prometheus resolves
/// them against): the same layout as the checked-in compose/ folder.
pub const ALERTS_FILE: &str = "prometheus/alerts.yml";

/// What the cluster file records about a compose cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ComposeInfo {
    /// The compose project name (prefix of containers, network and volumes).
    pub project: String,
    pub file: PathBuf,
    /// The image of the cluster (each service names its own, which differs
    /// from this one only while `cluster upgrade --image` runs).
    pub image: String,
    /// Nodes run with token auth (`cluster up --auth token`): each service
    /// mounts the node config and the secrets.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auth: bool,
}

pub fn service(id: u64) -> String {
    format!("dsync-{id}")
}

/// A project name compose accepts, unique per cluster folder.
pub fn project_name(dir: &Path) -> String {
    let base: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(16)
        .collect();
    let hash = dir
        .to_string_lossy()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("dsync{base}{:06x}", hash & 0xff_ffff)
}

/// `docker compose` (v2 plugin) or `docker-compose` (v1), whichever works.
fn compose_command() -> anyhow::Result<Command> {
    let v2 = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if v2 {
        let mut c = Command::new("docker");
        c.arg("compose");
        return Ok(c);
    }
    let v1 = Command::new("docker-compose")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if v1 {
        return Ok(Command::new("docker-compose"));
    }
    bail!("neither `docker compose` nor `docker-compose` is available; install Docker Compose")
}

/// Runs one compose command for the project and returns its stdout.
pub fn compose(info: &ComposeInfo, args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = compose_command()?;
    cmd.arg("-p")
        .arg(&info.project)
        .arg("-f")
        .arg(&info.file)
        .args(args);
    let out = cmd
        .output()
        .with_context(|| format!("cannot run docker compose {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "docker compose {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The host address of a node's published port.
pub fn published_addr(info: &ComposeInfo, id: u64) -> anyhow::Result<String> {
    let out = compose(info, &["port", &service(id), &NODE_PORT.to_string()])?;
    let addr = out.trim();
    let port = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .with_context(|| format!("node {id} has no published port (compose said {addr:?})"))?;
    Ok(format!("127.0.0.1:{port}"))
}

/// Fails with a hint when the image is not built yet.
pub fn require_image(image: &str) -> anyhow::Result<()> {
    let ok = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .with_context(|| "cannot run docker; is Docker installed?")?
        .status
        .success();
    if !ok {
        bail!("image {image} does not exist; build it with scripts/build-image.sh");
    }
    Ok(())
}

/// The id of the container compose runs for node `id`, if one exists.
pub fn container(info: &ComposeInfo, id: u64) -> anyhow::Result<Option<String>> {
    let out = compose(info, &["ps", "-q", &service(id)])?;
    Ok(out
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string))
}

fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .with_context(|| "cannot run docker; is Docker installed?")?;
    if !out.status.success() {
        bail!(
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The id (`sha256:...`) of a local image.
pub fn image_id(image: &str) -> anyhow::Result<String> {
    require_image(image)?;
    docker(&["image", "inspect", "--format", "{{.Id}}", image])
}

/// The image id node `id`'s container was created from (None: no container).
pub fn container_image_id(info: &ComposeInfo, id: u64) -> anyhow::Result<Option<String>> {
    match container(info, id)? {
        Some(c) => Ok(Some(docker(&["inspect", "--format", "{{.Image}}", &c])?)),
        None => Ok(None),
    }
}

/// Runs `dsync version --output json` in a throwaway container of `image`:
/// the version and protocol its nodes would report.
pub fn probe_image(image: &str) -> anyhow::Result<VersionInfo> {
    require_image(image)?;
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "version",
        "--output",
        "json",
    ])?;
    serde_json::from_str(&out).with_context(|| {
        format!("{image}: `dsync version --output json` printed no version (is it a dsync image?)")
    })
}

/// Creates (or recreates, when its service changed) and starts the
/// containers of these nodes, leaving the others alone.
pub fn start_nodes(info: &ComposeInfo, ids: &[u64]) -> anyhow::Result<()> {
    let services: Vec<String> = ids.iter().map(|id| service(*id)).collect();
    let mut args = vec!["up", "-d", "--no-deps"];
    args.extend(services.iter().map(String::as_str));
    compose(info, &args)?;
    Ok(())
}

fn volume_name(info: &ComposeInfo, id: u64) -> String {
    format!("{}_{}-data", info.project, service(id))
}

/// Whether node `id`'s named volume exists (e.g. left by a failed removal).
pub fn volume_exists(info: &ComposeInfo, id: u64) -> anyhow::Result<bool> {
    let out = Command::new("docker")
        .args(["volume", "inspect", &volume_name(info, id)])
        .output()
        .with_context(|| "cannot run docker; is Docker installed?")?;
    Ok(out.status.success())
}

/// Stops and removes node `id`'s container and deletes its volume: its log
/// names it a member of an old configuration, which a future node with the
/// same id must never start from.
pub fn remove_node(info: &ComposeInfo, id: u64) -> anyhow::Result<()> {
    compose(info, &["rm", "--stop", "--force", &service(id)])?;
    if volume_exists(info, id)? {
        docker(&["volume", "rm", &volume_name(info, id)])?;
    }
    Ok(())
}

/// Makes the two secrets a secured cluster mounts readable by the image's
/// unprivileged user (uid 10001, not the host user who owns them): the
/// files become world-readable and their folder private to the owner, so
/// on the host only the owner still reaches them. The admin token stays
/// owner-only: it never goes into a container.
pub fn share_secrets(secrets: &crate::secrets::Secrets) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let chmod = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot change the mode of {}", path.display()))
    };
    if let Some(folder) = secrets.jwt_secret.parent() {
        chmod(folder, 0o700)?;
    }
    chmod(&secrets.jwt_secret, 0o644)?;
    chmod(&secrets.cluster_secret, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_are_lowercase_and_differ_by_folder() {
        let a = project_name(Path::new("/tmp/x/My Cluster"));
        let b = project_name(Path::new("/tmp/y/My Cluster"));
        assert_ne!(a, b);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }

    #[test]
    fn shared_secrets_are_readable_inside_a_private_folder() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let s = crate::secrets::Secrets::create(tmp.path()).unwrap();
        share_secrets(&s).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&tmp.path().join("secrets")), 0o700);
        assert_eq!(mode(&s.jwt_secret), 0o644);
        assert_eq!(mode(&s.cluster_secret), 0o644);
        assert_eq!(mode(&s.admin_token), 0o600);
    }
}
