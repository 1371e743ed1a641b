//! Key-value routes.

use reqwest::Method;

use super::{Client, Result};
use crate::routes;
use crate::types::*;

impl Client {
    pub async fn kv_put(
        &self,
        key: &str,
        value: serde_json::Value,
        if_version: Option<u64>,
    ) -> Result<KvPutResponse> {
        let body = KvPutRequest {
            value,
            if_version,
            fence: None,
        };
        self.call_once(Method::PUT, &routes::kv_key(key), Some(&body))
            .await
    }

    /// A write the store accepts only while `token` is the current grant of `lock`.
    pub async fn kv_put_fenced(
        &self,
        key: &str,
        value: serde_json::Value,
        if_version: Option<u64>,
        lock: &str,
        token: u64,
    ) -> Result<KvPutResponse> {
        let body = KvPutRequest {
            value,
            if_version,
            fence: Some(Fence {
                lock: lock.to_string(),
                token,
            }),
        };
        self.call_once(Method::PUT, &routes::kv_key(key), Some(&body))
            .await
    }

    pub async fn kv_get(&self, key: &str, consistency: Consistency) -> Result<KvItem> {
        let path = format!(
            "{}?consistency={}",
            routes::kv_key(key),
            consistency.as_str()
        );
        self.call::<(), _>(Method::GET, &path, None).await
    }

    pub async fn kv_delete(&self, key: &str, if_version: Option<u64>) -> Result<KvDeleteResponse> {
        let mut path = routes::kv_key(key);
        if let Some(v) = if_version {
            path.push_str(&format!("?if_version={v}"));
        }
        self.call_once::<(), _>(Method::DELETE, &path, None).await
    }

    pub async fn kv_list(
        &self,
        prefix: &str,
        limit: Option<usize>,
        consistency: Consistency,
    ) -> Result<KvListResponse> {
        let mut path = format!(
            "{}?prefix={}&consistency={}",
            routes::KV,
            routes::encode_segment(prefix),
            consistency.as_str()
        );
        if let Some(l) = limit {
            path.push_str(&format!("&limit={l}"));
        }
        self.call::<(), _>(Method::GET, &path, None).await
    }
}
