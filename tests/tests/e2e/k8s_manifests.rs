//! Issue 8: the Kubernetes manifests are valid for the API server
//! (kubernetes-validate, strict) and wire dsync the way the server expects.

use std::path::PathBuf;
use std::process::Command;

fn k8s_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../compose/k8s")
}

fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .expect("compose/k8s")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn manifests_pass_strict_kubernetes_validation() {
    let files = manifests();
    assert!(
        files.len() >= 4,
        "expected the k8s manifests, found {files:?}"
    );
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .args(&files)
        .output()
        .expect("kubernetes-validate is installed (scripts/ensure-tools.sh installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(out.status.success(), "kubernetes-validate failed:\n{text}");
    for kind in [
        "statefulset/dsync",
        "service/dsync-peers",
        "service/dsync",
        "poddisruptionbudget/dsync",
        "configmap/dsync",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind}")),
            "{kind} not validated:\n{text}"
        );
    }
}

#[test]
fn the_statefulset_derives_ids_from_ordinals_and_probes_health_and_ready() {
    let docs: Vec<serde_yaml::Value> = manifests()
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("read manifest");
            serde_yaml::Deserializer::from_str(&text)
                .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
                .collect::<Vec<serde_yaml::Value>>()
        })
        .collect();
    let find = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(kind))
            .unwrap_or_else(|| panic!("no {kind}"))
            .clone()
    };
    let config = find("ConfigMap");
    assert_eq!(
        config["data"]["DSYNC_ID_FROM_HOSTNAME"],
        serde_yaml::Value::from("true")
    );
    let sts = find("StatefulSet");
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"],
        serde_yaml::Value::from("/ready")
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"]["path"],
        serde_yaml::Value::from("/health")
    );
    assert_eq!(
        sts["spec"]["serviceName"],
        serde_yaml::Value::from("dsync-peers")
    );
    let pdb = find("PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], serde_yaml::Value::from(2));
}
