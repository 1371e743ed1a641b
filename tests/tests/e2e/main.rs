//! End-to-end tests: real clusters of the built `dsync` binary (`DSYNC_BIN`).
//!
//! One test binary for all of them: each binary links the whole server, and
//! two dozen of them took more disk and link time than the tests themselves.
//! `cargo test -p dsync-tests durability::` runs one module.

// Helpers for the modules below.
mod secured;
mod single_node;

mod api_errors;
mod backup;
mod bench;
mod cache;
mod cache_linearizable;
mod cert_rotation;
mod chaos;
mod cluster_basics;
mod completions;
mod compose;
mod compose_lifecycle;
mod dedup;
mod durability;
mod events;
mod faults;
mod forward_batch;
mod k8s_manifests;
mod leader_transfer;
mod lock_cli;
mod lock_waits;
mod locks;
mod metrics_drift;
mod openapi;
mod operator_bounds;
mod operator_compose;
mod peer_breaker;
mod pre_shards_fixture;
mod prometheus_rules;
mod queue;
mod scale;
mod security;
mod security_connections;
mod security_limits;
mod security_ownership;
mod security_scopes;
mod security_tables;
mod security_tls;
mod shard_backup;
mod shard_groups;
mod shard_leaders;
mod shard_move_faults;
mod shard_move_pause;
mod shard_partition;
mod shard_reshard;
mod shard_reshard_faults;
mod shard_reshard_pause;
mod shard_scale;
mod shards;
mod shutdown;
mod tui;
mod upgrade;
