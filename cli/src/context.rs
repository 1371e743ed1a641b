//! Global flags and what every client command derives from them: the
//! endpoints (flag, env, or the local cluster file), the API client, and how
//! API failures are worded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use dsync_api::client::ClientError;
use dsync_api::{Client, ClientConfig};

use crate::cluster_file::ClusterFile;
use crate::output::Output;

#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Nodes to talk to, as host:port (comma-separated). Default: the nodes of
    /// the local cluster in --dir.
    #[arg(
        long,
        global = true,
        env = "DSYNC_ENDPOINTS",
        value_delimiter = ',',
        value_name = "HOST:PORT,..."
    )]
    pub endpoints: Vec<String>,

    /// Bearer token sent with every request.
    #[arg(long, global = true, env = "DSYNC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Output format of results (progress and hints always go to stderr).
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// Folder of the local cluster: `cluster up` keeps its files there, other
    /// commands read <DIR>/cluster.yaml for endpoints when none are given.
    #[arg(long, global = true, env = "DSYNC_DIR", default_value = ".dsync")]
    pub dir: PathBuf,
}

/// One node a command addresses; `id` is known when it came from the cluster file.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub addr: String,
    pub id: Option<u64>,
}

impl GlobalArgs {
    /// `--dir` as an absolute path, so files written into it stay valid
    /// whatever folder later commands run from.
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        Ok(std::path::absolute(&self.dir)?)
    }

    /// The nodes to address: `--endpoints`/`DSYNC_ENDPOINTS`, else the local
    /// cluster file.
    pub fn targets(&self) -> anyhow::Result<Vec<Target>> {
        let given: Vec<Target> = self
            .endpoints
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .map(|e| Target {
                addr: e.to_string(),
                id: None,
            })
            .collect();
        if !given.is_empty() {
            return Ok(given);
        }
        let dir = self.dir()?;
        match ClusterFile::load(&dir)? {
            Some(file) if !file.nodes.is_empty() => Ok(file
                .nodes
                .iter()
                .map(|n| Target {
                    addr: n.addr.clone(),
                    id: Some(n.id),
                })
                .collect()),
            _ => bail!("{}", no_endpoints_message(&dir)),
        }
    }

    pub fn endpoints(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.targets()?.into_iter().map(|t| t.addr).collect())
    }

    /// A leader-following client over [`targets`](Self::targets).
    pub fn client(&self) -> anyhow::Result<Client> {
        self.client_with(|_| {})
    }

    /// Like [`client`](Self::client), with its timeouts adjusted by `tune`.
    pub fn client_with(&self, tune: impl FnOnce(&mut ClientConfig)) -> anyhow::Result<Client> {
        let mut config = ClientConfig::new(self.endpoints()?);
        config.token = self.token.clone();
        tune(&mut config);
        Client::new(config).map_err(|e| RequestError(e).into())
    }
}

fn no_endpoints_message(dir: &Path) -> String {
    format!(
        "no endpoints: pass --endpoints HOST:PORT[,...] or set DSYNC_ENDPOINTS, \
         or start a local cluster with `dsync cluster up` (no cluster file at {})",
        ClusterFile::path(dir).display()
    )
}

/// A failed API call, worded `<code>: <message>` like the server's error body.
#[derive(Debug)]
pub struct RequestError(pub ClientError);

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            ClientError::Api { error, .. } => {
                write!(f, "{}: {}", error.code, error.message)?;
                if !error.details.is_empty() {
                    let details = serde_json::Value::Object(error.details.clone());
                    write!(f, " {details}")?;
                }
                Ok(())
            }
            ClientError::Transport(m) => write!(f, "unavailable: {m}"),
            ClientError::NoEndpoints => f.write_str("invalid_argument: no endpoints configured"),
        }
    }
}

impl std::error::Error for RequestError {}

/// Turns client results into `anyhow` results that print as `<code>: <message>`.
pub trait RequestExt<T> {
    fn api(self) -> anyhow::Result<T>;
}

impl<T> RequestExt<T> for Result<T, ClientError> {
    fn api(self) -> anyhow::Result<T> {
        self.map_err(|e| RequestError(e).into())
    }
}

/// Runs `fut` but gives up after `limit`, as a transport error.
pub async fn within<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
        Err(ClientError::Transport(format!(
            "no answer within {} ms",
            limit.as_millis()
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsync_api::{ApiError, ErrorCode};

    fn args(dir: &Path, endpoints: &[&str]) -> GlobalArgs {
        GlobalArgs {
            endpoints: endpoints.iter().map(|s| s.to_string()).collect(),
            token: None,
            output: Output::Table,
            dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn explicit_endpoints_win_and_blanks_are_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let got = args(tmp.path(), &["a:1", " ", "b:2"]).endpoints().unwrap();
        assert_eq!(got, vec!["a:1", "b:2"]);
    }

    #[test]
    fn without_endpoints_or_cluster_file_the_error_says_what_to_do() {
        let tmp = tempfile::tempdir().unwrap();
        let err = args(tmp.path(), &[]).endpoints().unwrap_err().to_string();
        assert!(err.contains("--endpoints"), "{err}");
        assert!(err.contains("dsync cluster up"), "{err}");
        assert!(err.contains("cluster.yaml"), "{err}");
    }

    #[test]
    fn api_errors_read_code_then_message() {
        let e = RequestError(ClientError::Api {
            status: 409,
            error: ApiError::new(ErrorCode::Conflict, "version mismatch")
                .with_detail("current_version", 7),
        });
        assert_eq!(
            e.to_string(),
            r#"conflict: version mismatch {"current_version":7}"#
        );
        let e = RequestError(ClientError::Transport("refused".into()));
        assert_eq!(e.to_string(), "unavailable: refused");
    }
}
