//! Reading what `deploy/` holds: the Prometheus rules of the PrometheusRule manifest, and
//! the metric names a PromQL text uses.

/// Names of the `picket_*` metrics a PromQL text (rules, dashboard) refers to, with the
/// sample suffixes of histograms stripped.
pub fn metric_names(promql: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = promql;
    while let Some(i) = rest.find("picket_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].to_string();
        if !names.contains(&name) {
            names.push(name);
        }
        rest = &tail[end..];
    }
    names
}

/// The `spec` of `deploy/kubernetes/prometheusrule.yaml` as a Prometheus rules file (the
/// block below `spec:`, dedented by two spaces).
pub fn rules_file_of_prometheus_rule(manifest: &str) -> String {
    let (_, spec) = manifest
        .split_once("\nspec:\n")
        .expect("the PrometheusRule has a spec");
    spec.lines()
        .map(|l| l.strip_prefix("  ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
