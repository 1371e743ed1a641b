//! Node status, membership, auth and leadership routes.

use reqwest::Method;

use super::{Client, Result};
use crate::routes;
use crate::types::*;

impl Client {
    /// `GET /v1/shards` (from the leader, which knows match indexes).
    pub async fn shards(&self) -> Result<crate::shards::ShardsStatus> {
        self.call::<(), _>(Method::GET, routes::SHARDS, None).await
    }

    /// `POST /v1/shards`: the first shard map of a cluster without one.
    pub async fn shards_init(
        &self,
        req: &crate::shards::InitShards,
    ) -> Result<crate::shards::ShardMap> {
        self.call(Method::POST, routes::SHARDS, Some(req)).await
    }

    /// `POST /v1/shards/leaders`: each queue group to its preferred leader.
    pub async fn balance_leaders(&self) -> Result<Vec<crate::shards::GroupMove>> {
        self.call::<(), _>(Method::POST, routes::SHARDS_LEADERS, None)
            .await
    }

    /// `POST /v1/shards/rebalance`: plan replica moves, and start them
    /// unless `dry_run`.
    pub async fn shards_rebalance(
        &self,
        req: &crate::shards::RebalanceRequest,
    ) -> Result<crate::shards::RebalancePlan> {
        self.call(Method::POST, routes::SHARDS_REBALANCE, Some(req))
            .await
    }

    /// `POST /v1/shards/reshard`: plan a change of the number of queue
    /// groups, and start moving topics unless `dry_run`.
    pub async fn shards_reshard(
        &self,
        req: &crate::shards::ReshardRequest,
    ) -> Result<crate::shards::ReshardPlan> {
        self.call(Method::POST, routes::SHARDS_RESHARD, Some(req))
            .await
    }

    /// `GET /v1/shards/jobs`: the running shard job, then finished ones.
    pub async fn shard_jobs(&self) -> Result<Vec<crate::shards::ShardJob>> {
        self.call::<(), _>(Method::GET, routes::SHARDS_JOBS, None)
            .await
    }

    /// `GET /v1/shards/jobs/{id}`: one shard job; `not_found` until the
    /// node answering has applied it (or once it is too old to be kept).
    pub async fn shard_job(&self, id: u64) -> Result<crate::shards::ShardJob> {
        let path = routes::path(routes::SHARDS_JOB, &id.to_string());
        self.call::<(), _>(Method::GET, &path, None).await
    }

    pub async fn status(&self) -> Result<NodeStatus> {
        self.call::<(), _>(Method::GET, routes::STATUS, None).await
    }

    pub async fn node_status(&self, endpoint: &str) -> Result<NodeStatus> {
        self.call_node(endpoint, routes::STATUS).await
    }

    pub async fn join(&self, id: u64, addr: &str) -> Result<MembershipResponse> {
        let body = JoinRequest {
            id,
            addr: addr.to_string(),
            voter: true,
        };
        self.call(Method::POST, routes::MEMBERS, Some(&body)).await
    }

    /// Who the node takes this client's credentials for.
    pub async fn whoami(&self) -> Result<crate::auth::WhoAmI> {
        self.call::<(), _>(Method::GET, routes::AUTH_WHOAMI, None)
            .await
    }

    /// Asks the node to sign a token (admin; HS256 nodes only).
    pub async fn create_token(
        &self,
        req: &crate::auth::TokenRequest,
    ) -> Result<crate::auth::TokenResponse> {
        self.call(Method::POST, routes::AUTH_TOKENS, Some(req))
            .await
    }

    /// Hands leadership to `to` (or the most caught-up follower). A retry is
    /// harmless: once `to` leads, a repeat returns at once.
    pub async fn leader_transfer(&self, to: Option<u64>) -> Result<LeaderTransferResponse> {
        let body = LeaderTransferRequest { to };
        self.call(Method::POST, routes::LEADER_TRANSFER, Some(&body))
            .await
    }
}
