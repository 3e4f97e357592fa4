//! Printing alert and summary lines on standard output, as text or JSON lines.

use std::io::{self, Write};

use serde::Serialize;

use picket_detect::{
    blocking::BlockEvent,
    document::{
        AlertDocument, BlockDocument, BlockFields, SummaryDocument, SummaryLine, alert_text,
        block_text, summary_text,
    },
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

/// The kernel's host name and the node name from [`NODE_NAME_ENV`], when set.
pub fn identity() -> (String, Option<String>) {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let node = std::env::var(NODE_NAME_ENV)
        .ok()
        .filter(|n| !n.trim().is_empty());
    (hostname, node)
}

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
        let (hostname, node) = identity();
        Printer {
            json,
            hostname,
            node,
        }
    }

    /// One JSON line.
    fn json_line(doc: &impl Serialize) -> io::Result<String> {
        serde_json::to_string(doc).map_err(io::Error::other)
    }

    /// The JSON document of an alert event, with the node name when known.
    fn alert_document(&self, e: &AlertEvent) -> AlertDocument {
        let doc = AlertDocument::new(e, &self.hostname);
        match &self.node {
            Some(node) => doc.on_node(node),
            None => doc,
        }
    }

    /// The JSON document of a summary, with the node name when known.
    fn summary_document(&self, s: &SummaryLine) -> SummaryDocument {
        let doc = SummaryDocument::new(s, &self.hostname);
        match &self.node {
            Some(node) => doc.on_node(node),
            None => doc,
        }
    }

    /// Prints one alert event.
    pub fn alert(&self, e: &AlertEvent) -> io::Result<()> {
        let line = if self.json {
            Self::json_line(&self.alert_document(e))?
        } else {
            alert_text(e)
        };
        emit(&line)
    }

    /// Prints one block event (`--block`).
    pub fn block(&self, e: &BlockEvent, fields: BlockFields) -> io::Result<()> {
        let line = if self.json {
            let doc = BlockDocument::new(e, fields, &self.hostname);
            let doc = match &self.node {
                Some(node) => doc.on_node(node),
                None => doc,
            };
            Self::json_line(&doc)?
        } else {
            block_text(e, fields.dry_run)
        };
        emit(&line)
    }

    /// Prints a summary.
    pub fn summary(&self, s: &SummaryLine) -> io::Result<()> {
        let line = if self.json {
            Self::json_line(&self.summary_document(s))?
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
            capture_drops: None,
        };
        let mut p = Printer {
            json: true,
            hostname: "vm".into(),
            node: Some("node-a".into()),
        };
        let v = serde_json::to_value(p.summary_document(&s)).unwrap();
        assert_eq!(v["observer"]["name"], "node-a");
        assert_eq!(v["observer"]["hostname"], "vm");
        assert_eq!(v["host"]["name"], "node-a");
        p.node = None;
        let v = serde_json::to_value(p.summary_document(&s)).unwrap();
        assert!(v.get("host").is_none() && v["observer"].get("name").is_none());
    }
}
