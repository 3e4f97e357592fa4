//! `picket analyze --flows FILE`: every TCP and UDP flow of the report, one row each, as CSV
//! or JSON lines, for pandas and spreadsheets.
//!
//! Columns (CSV header, JSON keys): `proto` (`tcp`/`udp`), `client`, `client_port`, `server`,
//! `server_port`, `first_seen`, `last_seen` (RFC 3339), `duration_s`, `packets_to_server`,
//! `packets_to_client`, `bytes_to_server`, `bytes_to_client` (wire bytes), `flags` (TCP
//! flags seen, `SYN,ACK,…`), `handshake`, `outcome` (TCP; empty for UDP), `app`, `app_name`
//! (see the report's flow fields). Rows: TCP flows then UDP flows, each by bytes.

use std::io::Write;

use anyhow::{Result, bail};
use serde::Serialize;

use super::report::{Flow, Report};

/// The file format of `--flows`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl FlowFormat {
    /// The format a file name asks for: `.csv` is CSV, `.jsonl`/`.ndjson`/`.json` JSON lines.
    pub fn from_path(path: &std::path::Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Ok(FlowFormat::Csv),
            Some(e)
                if ["jsonl", "ndjson", "json"]
                    .iter()
                    .any(|x| e.eq_ignore_ascii_case(x)) =>
            {
                Ok(FlowFormat::JsonLines)
            }
            _ => bail!(
                "--flows {}: name the file .csv or .jsonl (the extension chooses the format)",
                path.display()
            ),
        }
    }
}

#[derive(Serialize)]
struct Row<'a> {
    proto: &'static str,
    client: &'a str,
    client_port: u16,
    server: &'a str,
    server_port: u16,
    first_seen: &'a str,
    last_seen: &'a str,
    duration_s: f64,
    packets_to_server: u64,
    packets_to_client: u64,
    bytes_to_server: u64,
    bytes_to_client: u64,
    flags: &'a str,
    handshake: &'a str,
    outcome: &'a str,
    app: &'a str,
    app_name: &'a str,
}

fn row<'a>(proto: &'static str, f: &'a Flow, tcp: Option<(&'a str, &'a str, &'a str)>) -> Row<'a> {
    let (flags, handshake, outcome) = tcp.unwrap_or_default();
    Row {
        proto,
        client: &f.client,
        client_port: f.client_port,
        server: &f.server,
        server_port: f.server_port,
        first_seen: &f.first_seen,
        last_seen: &f.last_seen,
        duration_s: f.duration_s,
        packets_to_server: f.packets_to_server,
        packets_to_client: f.packets_to_client,
        bytes_to_server: f.bytes_to_server,
        bytes_to_client: f.bytes_to_client,
        flags,
        handshake,
        outcome,
        app: f.app,
        app_name: &f.app_name,
    }
}

/// Writes every flow of `report` to `out`; returns the rows written.
pub fn write(report: &Report, format: FlowFormat, out: impl Write) -> Result<u64> {
    let rows = report
        .tcp
        .flows
        .iter()
        .map(|t| row("tcp", &t.flow, Some((&t.flags, t.handshake, t.outcome))))
        .chain(report.udp.flows.iter().map(|u| row("udp", u, None)));
    let mut n = 0;
    match format {
        FlowFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            for r in rows {
                w.serialize(r)?;
                n += 1;
            }
            w.flush()?;
        }
        FlowFormat::JsonLines => {
            let mut w = std::io::BufWriter::new(out);
            for r in rows {
                serde_json::to_writer(&mut w, &r)?;
                w.write_all(b"\n")?;
                n += 1;
            }
            w.flush()?;
        }
    }
    Ok(n)
}
