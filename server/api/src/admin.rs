//! Operator calls of the typed client: membership removal, backups, drain.

use std::time::Duration;

use reqwest::Method;

use crate::client::{CallOpts, Client, ClientError, Result};
use crate::routes;
use crate::types::{DrainResponse, MembershipResponse};

/// A backup carries the whole state: give it longer than a normal call.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(120);

impl Client {
    /// Removes a member; the leader refuses if too few voters would remain
    /// healthy. Safe to retry: removing a non-member is `not_found`.
    pub async fn remove_member(&self, id: u64) -> Result<MembershipResponse> {
        self.call::<(), _>(Method::DELETE, &routes::member(id), None)
            .await
    }

    /// A backup file of the cluster's state at a linearizable point;
    /// `progress` sees (announced length, bytes so far) as pieces arrive.
    pub async fn backup(&self, mut progress: impl FnMut(Option<u64>, u64)) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.download(routes::BACKUP, BACKUP_TIMEOUT, |total, piece| {
            out.extend_from_slice(piece);
            progress(total, out.len() as u64);
        })
        .await?;
        Ok(out)
    }

    /// Drains the node this client talks to (build it with that one endpoint).
    pub async fn drain(&self) -> Result<DrainResponse> {
        let bytes = self
            .call_opts::<()>(Method::POST, routes::NODE_DRAIN, None, CallOpts::default())
            .await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Transport(format!("bad response body: {e}")))
    }

    /// Ends the drain of the node this client talks to.
    pub async fn undrain(&self) -> Result<DrainResponse> {
        let bytes = self
            .call_opts::<()>(
                Method::DELETE,
                routes::NODE_DRAIN,
                None,
                CallOpts {
                    timeout: None,
                    idempotent: true,
                    request_id: false,
                },
            )
            .await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Transport(format!("bad response body: {e}")))
    }
}
