//! Cache routes.

use reqwest::Method;

use super::{Client, Result};
use crate::routes;

impl Client {
    /// Reads through the cache of the node this client prefers.
    pub async fn cache_get(&self, key: &str) -> Result<crate::cache::CacheItem> {
        self.call::<(), _>(Method::GET, &routes::path(routes::CACHE_KEY, key), None)
            .await
    }

    pub async fn cache_put(
        &self,
        key: &str,
        value: serde_json::Value,
    ) -> Result<crate::cache::CachePutResponse> {
        let body = crate::cache::CachePutRequest { value };
        self.call(
            Method::PUT,
            &routes::path(routes::CACHE_KEY, key),
            Some(&body),
        )
        .await
    }

    pub async fn cache_delete(&self, key: &str) -> Result<crate::cache::CacheDeleteResponse> {
        self.call::<(), _>(Method::DELETE, &routes::path(routes::CACHE_KEY, key), None)
            .await
    }

    pub async fn cache_states(&self, key: &str) -> Result<crate::cache::CacheStates> {
        self.call::<(), _>(
            Method::GET,
            &routes::path(routes::CACHE_KEY_STATES, key),
            None,
        )
        .await
    }

    pub async fn cache_stats(&self) -> Result<crate::cache::CacheStats> {
        self.call::<(), _>(Method::GET, routes::CACHE, None).await
    }

    pub async fn cache_lines(&self) -> Result<crate::cache::CacheLines> {
        self.call::<(), _>(Method::GET, routes::CACHE_LINES, None)
            .await
    }
}
