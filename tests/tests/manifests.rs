//! Static checks of `deploy/` (no root needed): the Kubernetes manifests against the
//! Kubernetes schemas (kubernetes-validate, offline, strict, oldest and newest bundled
//! versions) and yamllint; the PrometheusRule's rules with `promtool check rules`; the
//! Grafana dashboard parses; the ConfigMap holds exactly `picket config default`; the
//! ServiceMonitor finds the Service; the systemd unit passes `systemd-analyze verify`; the
//! Dockerfile builds FROM scratch.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;
use tests::{
    output, picket_bin, require_tools, rules_file_of_prometheus_rule, run_ok, temp_dir,
    workspace_root,
};

fn deploy() -> PathBuf {
    workspace_root().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `$KUBERNETES_VALIDATE`, else the virtualenv `cargo xtask bootstrap` makes, else `PATH`.
fn kubernetes_validate() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBERNETES_VALIDATE") {
        return p.into();
    }
    let venv = workspace_root().join("target/test-tools/venv/bin/kubernetes-validate");
    if venv.is_file() {
        return venv;
    }
    require_tools(&["kubernetes-validate"]);
    "kubernetes-validate".into()
}

/// The manifests that are Kubernetes resources with published schemas.
fn core_manifests() -> Vec<PathBuf> {
    [
        "namespace.yaml",
        "serviceaccount.yaml",
        "configmap.yaml",
        "daemonset.yaml",
        "service.yaml",
    ]
    .iter()
    .map(|f| deploy().join("kubernetes").join(f))
    .collect()
}

#[test]
fn manifests_validate_against_kubernetes_schemas() {
    let tool = kubernetes_validate();
    for version in ["1.25.0", "1.37.0"] {
        let out = output(
            Command::new(&tool)
                .args(["--strict", "--kubernetes-version", version])
                .args(core_manifests()),
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "kubernetes-validate {version}:\n{text}"
        );
        assert_eq!(
            text.matches(" passed for resource ").count(),
            core_manifests().len(),
            "{text}"
        );
    }
    // The validator does reject what Kubernetes would: a misspelt field.
    let dir = temp_dir("kv");
    let bad = dir.path().join("daemonset.yaml");
    let ds = read(&deploy().join("kubernetes/daemonset.yaml"));
    std::fs::write(
        &bad,
        ds.replace("readOnlyRootFilesystem", "readOnlyRootFileSystem"),
    )
    .unwrap();
    let out = output(Command::new(&tool).arg("--strict").arg(&bad));
    assert!(!out.status.success());
}

#[test]
fn yaml_is_lint_clean() {
    require_tools(&["yamllint"]);
    run_ok(
        Command::new("yamllint")
            .arg("--strict")
            .arg("--config-file")
            .arg(deploy().join(".yamllint.yaml"))
            .arg(deploy().join("kubernetes")),
    );
}

#[test]
fn prometheus_rules_pass_promtool() {
    require_tools(&["promtool"]);
    let dir = temp_dir("rules");
    let rules = dir.path().join("rules.yml");
    let manifest = read(&deploy().join("kubernetes/prometheusrule.yaml"));
    std::fs::write(&rules, rules_file_of_prometheus_rule(&manifest)).unwrap();
    let out = run_ok(
        Command::new("promtool")
            .args(["check", "rules"])
            .arg(&rules),
    );
    assert!(out.contains("SUCCESS: 8 rules found"), "{out}");
}

#[test]
fn grafana_dashboard_parses_and_queries_picket() {
    let text = read(&deploy().join("kubernetes/grafana-dashboard.json"));
    let d: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(d["uid"], "picket");
    let panels = d["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    let mut ids = Vec::new();
    for p in panels {
        ids.push(p["id"].as_u64().expect("panel id"));
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            assert!(expr.contains("picket_"), "{expr}");
            assert_eq!(
                expr.matches('(').count(),
                expr.matches(')').count(),
                "{expr}"
            );
        }
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
}

#[test]
fn configmap_holds_the_default_configuration() {
    let cm = read(&deploy().join("kubernetes/configmap.yaml"));
    let (_, block) = cm.split_once("picket.toml: |\n").expect("picket.toml key");
    let toml: String = block
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    let default = run_ok(Command::new(picket_bin()).args(["config", "default"]));
    assert_eq!(
        toml, default,
        "regenerate configmap.yaml from `picket config default`"
    );
}

#[test]
fn service_monitor_selects_the_service_and_its_port() {
    let svc = read(&deploy().join("kubernetes/service.yaml"));
    let sm = read(&deploy().join("kubernetes/servicemonitor.yaml"));
    let ds = read(&deploy().join("kubernetes/daemonset.yaml"));
    for text in [&svc, &sm, &ds] {
        assert!(text.contains("app.kubernetes.io/name: picket"));
    }
    assert!(svc.contains("- name: metrics") && sm.contains("- port: metrics"));
    assert!(ds.contains("- name: metrics\n              containerPort: 9464"));
    assert!(ds.contains("--metrics-addr=0.0.0.0:9464"));
    assert!(ds.contains("prometheus.io/port: \"9464\""));
}

#[test]
fn systemd_unit_verifies() {
    require_tools(&["systemd-analyze"]);
    let dir = temp_dir("unit");
    let unit = read(&deploy().join("picket.service"));
    let bin = picket_bin();
    let patched = unit.replace("/usr/local/bin/picket", &bin.to_string_lossy());
    let path = dir.path().join("picket.service");
    std::fs::write(&path, patched).unwrap();
    let out = output(Command::new("systemd-analyze").arg("verify").arg(&path));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
}

#[test]
fn dockerfile_builds_from_scratch() {
    let text = read(&deploy().join("Dockerfile"));
    let instructions: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !l.starts_with(' '))
        .collect();
    assert_eq!(instructions[0], "FROM scratch");
    assert!(instructions.contains(&"COPY picket /usr/bin/picket"));
    assert!(instructions.contains(&r#"ENTRYPOINT ["/usr/bin/picket"]"#));
}
