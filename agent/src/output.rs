//! Printing alert and summary lines on standard output, as text or JSON lines.

use std::io::{self, Write};

use serde_json::{Value, json};

use picket_detect::{
    document::{SummaryLine, alert_json, alert_text, summary_json, summary_text},
    episodes::AlertEvent,
};

/// Output format.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Text on a terminal, JSON lines otherwise.
    Auto,
    /// Readable text.
    Text,
    /// JSON lines.
    Json,
}

/// Environment variable naming the node (Kubernetes: `spec.nodeName` through the downward
/// API); when set, every JSON line carries it as `observer.name` and `host.name`.
pub const NODE_NAME_ENV: &str = "NODE_NAME";

/// Writes alert and summary lines to standard output, flushing each line.
pub struct Printer {
    json: bool,
    hostname: String,
    node: Option<String>,
}

impl Printer {
    /// A printer for `format` (auto: text on a terminal).
    pub fn new(format: Format) -> Self {
        let json = match format {
            Format::Auto => !std::io::IsTerminal::is_terminal(&io::stdout()),
            Format::Text => false,
            Format::Json => true,
        };
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let node = std::env::var(NODE_NAME_ENV)
            .ok()
            .filter(|n| !n.trim().is_empty());
        Printer {
            json,
            hostname,
            node,
        }
    }

    /// Adds the node name to a JSON line.
    fn with_node(&self, mut v: Value) -> Value {
        if let Some(node) = &self.node {
            v["observer"]["name"] = json!(node);
            v["host"] = json!({ "name": node });
        }
        v
    }

    /// Prints one alert event.
    pub fn alert(&self, e: &AlertEvent) -> io::Result<()> {
        let line = if self.json {
            self.with_node(alert_json(e, &self.hostname)).to_string()
        } else {
            alert_text(e)
        };
        emit(&line)
    }

    /// Prints a summary.
    pub fn summary(&self, s: &SummaryLine) -> io::Result<()> {
        let line = if self.json {
            self.with_node(summary_json(s, &self.hostname)).to_string()
        } else {
            summary_text(s)
        };
        emit(&line)
    }
}

fn emit(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_carry_the_node_name_when_known() {
        let s = SummaryLine {
            at_ns: 0,
            interval_s: 1.0,
            packets_per_s: 0.0,
            bytes_per_s: 0.0,
            egress_packets_per_s: 0.0,
            parse_errors: 0,
            fragments: 0,
            sources: (0, 16),
            dests: (0, 16),
            map_failures: 0,
            deferred: 0,
            top: Vec::new(),
        };
        let mut p = Printer {
            json: true,
            hostname: "vm".into(),
            node: Some("node-a".into()),
        };
        let v = p.with_node(summary_json(&s, &p.hostname));
        assert_eq!(v["observer"]["name"], "node-a");
        assert_eq!(v["observer"]["hostname"], "vm");
        assert_eq!(v["host"]["name"], "node-a");
        p.node = None;
        let v = p.with_node(summary_json(&s, &p.hostname));
        assert!(v.get("host").is_none() && v["observer"].get("name").is_none());
    }
}
