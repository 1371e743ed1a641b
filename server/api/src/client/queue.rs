//! Queue routes.

use std::time::Duration;

use reqwest::Method;

use super::{decode, CallOpts, Client, Result};
use crate::routes;

impl Client {
    pub async fn queue_push(
        &self,
        topic: &str,
        messages: Vec<crate::queue::NewMessage>,
    ) -> Result<crate::queue::EnqueueResponse> {
        let body = crate::queue::EnqueueRequest::Batch { messages };
        self.call_once(
            Method::POST,
            &routes::path(routes::TOPIC_MESSAGES, topic),
            Some(&body),
        )
        .await
    }

    /// Receives up to `req.max` messages, long-polling up to `req.wait_ms`.
    pub async fn queue_consume(
        &self,
        topic: &str,
        req: &crate::queue::ConsumeRequest,
    ) -> Result<crate::queue::ConsumeResponse> {
        let opts = CallOpts {
            timeout: Some(self.config.request_timeout + Duration::from_millis(req.wait_ms)),
            idempotent: false,
            request_id: false,
        };
        let bytes = self
            .call_opts(
                Method::POST,
                &routes::path(routes::TOPIC_CONSUME, topic),
                Some(req),
                opts,
            )
            .await?;
        decode(&bytes)
    }

    /// `verb` is `ack`, `nack` or `extend`.
    pub async fn queue_receipts(
        &self,
        topic: &str,
        verb: &str,
        req: &crate::queue::ReceiptsRequest,
    ) -> Result<crate::queue::ReceiptsResponse> {
        let path = format!("{}/{verb}", routes::path(routes::TOPIC, topic));
        self.call_once(Method::POST, &path, Some(req)).await
    }

    pub async fn queue_stats(&self, topic: &str) -> Result<crate::queue::TopicStats> {
        self.call::<(), _>(Method::GET, &routes::path(routes::TOPIC, topic), None)
            .await
    }

    pub async fn queues(&self) -> Result<crate::queue::TopicList> {
        self.call::<(), _>(Method::GET, routes::QUEUES, None).await
    }

    pub async fn queue_redrive(&self, topic: &str) -> Result<crate::queue::RedriveResponse> {
        self.call::<(), _>(
            Method::POST,
            &routes::path(routes::TOPIC_REDRIVE, topic),
            None,
        )
        .await
    }

    pub async fn queue_settings(
        &self,
        topic: &str,
        settings: &crate::queue::TopicSettings,
    ) -> Result<crate::queue::TopicStats> {
        self.call(
            Method::PUT,
            &routes::path(routes::TOPIC, topic),
            Some(settings),
        )
        .await
    }
}
