//! Lock routes.

use std::time::Duration;

use reqwest::Method;

use super::{decode, CallOpts, Client, Result};
use crate::routes;

impl Client {
    /// Acquires a lock, waiting up to `req.wait_ms` in its queue. Safe to
    /// retry: the same owner re-acquiring gets the same grant back.
    pub async fn lock_acquire(
        &self,
        name: &str,
        req: &crate::locks::AcquireRequest,
    ) -> Result<crate::locks::AcquireResponse> {
        let opts = CallOpts {
            timeout: Some(self.config.request_timeout + Duration::from_millis(req.wait_ms)),
            idempotent: true,
            request_id: false,
        };
        let bytes = self
            .call_opts(
                Method::POST,
                &routes::path(routes::LOCK_ACQUIRE, name),
                Some(req),
                opts,
            )
            .await?;
        decode(&bytes)
    }

    pub async fn lock_release(
        &self,
        name: &str,
        owner: &str,
        token: u64,
    ) -> Result<crate::locks::ReleaseResponse> {
        let body = crate::locks::ReleaseRequest {
            owner: owner.to_string(),
            token,
        };
        self.call_once(
            Method::POST,
            &routes::path(routes::LOCK_RELEASE, name),
            Some(&body),
        )
        .await
    }

    pub async fn lock_keepalive(
        &self,
        name: &str,
        owner: &str,
        token: u64,
        ttl_ms: Option<u64>,
    ) -> Result<crate::locks::KeepaliveResponse> {
        let body = crate::locks::KeepaliveRequest {
            owner: owner.to_string(),
            token,
            ttl_ms,
        };
        let opts = CallOpts {
            timeout: None,
            idempotent: true,
            request_id: false,
        };
        let bytes = self
            .call_opts(
                Method::POST,
                &routes::path(routes::LOCK_KEEPALIVE, name),
                Some(&body),
                opts,
            )
            .await?;
        decode(&bytes)
    }

    pub async fn lock_get(&self, name: &str) -> Result<crate::locks::LockInfo> {
        self.call::<(), _>(Method::GET, &routes::path(routes::LOCK, name), None)
            .await
    }

    pub async fn locks(&self) -> Result<crate::locks::LockList> {
        self.call::<(), _>(Method::GET, routes::LOCKS, None).await
    }

    pub async fn lock_graph(&self) -> Result<crate::locks::LockGraph> {
        self.call::<(), _>(Method::GET, routes::LOCK_GRAPH, None)
            .await
    }

    /// Admin: drops every holder of `name` and grants to the next waiter.
    /// Not retried after a broken connection: a second force could evict
    /// the holder the first one let in.
    pub async fn lock_force_release(
        &self,
        name: &str,
    ) -> Result<crate::locks::ForceReleaseResponse> {
        self.call::<(), _>(
            Method::POST,
            &routes::path(routes::LOCK_FORCE_RELEASE, name),
            None,
        )
        .await
    }
}
