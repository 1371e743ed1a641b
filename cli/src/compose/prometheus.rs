//! The Prometheus files of a compose cluster: the scrape config and the
//! alerting rules it loads, laid out as in the checked-in compose/ folder.

use std::path::Path;

use anyhow::Context;
use serde_json::json;

use super::{service, ALERTS_FILE, NODE_PORT, PROMETHEUS_FILE};

/// The checked-in rules, so a generated cluster folder alerts like compose/.
const ALERTS_YAML: &str = include_str!("../../../compose/prometheus/alerts.yml");

/// Writes prometheus.yml for these nodes and the rules it loads into `dir`.
pub fn write_prometheus(dir: &Path, ids: &[u64]) -> anyhow::Result<()> {
    let rules = dir.join(ALERTS_FILE);
    if let Some(parent) = rules.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&rules, ALERTS_YAML)
        .with_context(|| format!("cannot write {}", rules.display()))?;
    let config = dir.join(PROMETHEUS_FILE);
    std::fs::write(&config, prometheus_yaml(ids))
        .with_context(|| format!("cannot write {}", config.display()))
}

/// Prometheus scraping every node over the compose network.
pub fn prometheus_yaml(ids: &[u64]) -> String {
    let targets: Vec<String> = ids
        .iter()
        .map(|id| format!("{}:{NODE_PORT}", service(*id)))
        .collect();
    let doc = json!({
        "global": {"scrape_interval": "5s"},
        "rule_files": [ALERTS_FILE],
        "scrape_configs": [{
            "job_name": "dsync",
            "static_configs": [{"targets": targets}],
        }],
    });
    serde_yaml::to_string(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::{compose_yaml, Publish};
    use serde_json::Value;

    #[test]
    fn a_generated_folder_holds_the_rules_its_prometheus_config_loads() {
        let tmp = tempfile::tempdir().unwrap();
        write_prometheus(tmp.path(), &[1, 2]).unwrap();
        let text = std::fs::read_to_string(tmp.path().join(PROMETHEUS_FILE)).unwrap();
        let config: Value = serde_yaml::from_str(&text).unwrap();
        let rules = config["rule_files"][0].as_str().unwrap();
        let checked_in = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../compose")
            .join(rules);
        assert_eq!(
            std::fs::read_to_string(tmp.path().join(rules)).unwrap(),
            std::fs::read_to_string(checked_in).unwrap()
        );
        let compose: Value =
            serde_yaml::from_str(&compose_yaml(2, "i", Publish::Fixed(7000), false)).unwrap();
        let mount = format!("./{rules}:/etc/prometheus/{rules}:ro");
        assert!(
            compose["services"]["prometheus"]["volumes"]
                .as_array()
                .unwrap()
                .contains(&json!(mount)),
            "Prometheus in the container resolves {rules} beside its config"
        );
    }
}
