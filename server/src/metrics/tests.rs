use super::*;

#[test]
fn per_topic_gauges_follow_the_stats() {
    let m = Metrics::new();
    let stats: dsync_api::queue::TopicStats = serde_json::from_value(serde_json::json!({
        "topic": "jobs", "ready": 3, "in_flight": 1, "delayed": 0, "dead_lettered": 2,
        "enqueued_total": 9, "acked_total": 5, "redelivered_total": 1, "oldest_age_ms": 1500,
        "max_attempts": 10, "visibility_ms": 30000, "max_message_bytes": 262144, "retention_ms": 1000
    }))
    .unwrap();
    m.refresh_topics(&[(2, stats.clone())]);
    let text = m.render();
    assert!(
        text.contains("dsync_topic_ready{topic=\"jobs\",group=\"2\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("dsync_topic_dead_lettered{topic=\"jobs\",group=\"2\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("dsync_topic_oldest_age_seconds{topic=\"jobs\",group=\"2\"} 1.5"),
        "{text}"
    );
    // The group moved away from this node: its topic's series go.
    m.refresh_topics(&[]);
    let text = m.render();
    assert!(!text.contains("dsync_topic_ready{"), "{text}");
}

#[test]
fn peer_breaker_gauges_follow_the_peers() {
    use dsync_api::breaker::BreakerState;
    use dsync_api::types::PeerStatus;
    let peer = |id, breaker| PeerStatus {
        id,
        breaker,
        consecutive_failures: 0,
    };
    let m = Metrics::new();
    m.refresh_peer_breakers(&[peer(2, BreakerState::Open), peer(3, BreakerState::Closed)]);
    let text = m.render();
    assert!(
        text.contains("dsync_peer_breaker_state{peer=\"2\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("dsync_peer_breaker_state{peer=\"3\"} 0"),
        "{text}"
    );
    m.refresh_peer_breakers(&[peer(3, BreakerState::HalfOpen)]);
    let text = m.render();
    assert!(!text.contains("peer=\"2\""), "a removed peer stays: {text}");
    assert!(
        text.contains("dsync_peer_breaker_state{peer=\"3\"} 1"),
        "{text}"
    );
}

#[test]
fn renders_prometheus_text_with_route_labels() {
    let m = Metrics::new();
    m.term.set(4);
    m.requests
        .get_or_create(&RouteLabels {
            method: "PUT",
            route: "/v1/kv/{*key}".into(),
            status: 200,
        })
        .observe(0.001);
    let text = m.render();
    assert!(text.contains("dsync_raft_term 4"), "{text}");
    assert!(text.contains("dsync_http_request_duration_seconds_count{method=\"PUT\",route=\"/v1/kv/{*key}\",status=\"200\"} 1"), "{text}");
    assert!(text.ends_with("# EOF\n"));
}
