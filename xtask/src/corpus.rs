//! `cargo xtask corpus`: the labelled detection corpus of issues 11 and 12, measured.
//!
//! 1. Bootstraps (scapy and dpkt in the test virtualenv) and builds the release `picket`.
//! 2. Runs `tests/corpus/generate.py`, which writes one capture per scenario and
//!    `manifest.json` (labels, parameters, expected counts).
//! 3. Runs `tests/corpus/check.py`, which recounts the manifest's counts from the bytes with
//!    dpkt and capinfos; any disagreement stops the task.
//! 4. Runs `picket analyze --json` on every capture and compares the alert starts with the
//!    label:
//!    - attack: detected when an alert start has the expected rule and scope and names the
//!      expected offender (`source.ip`, or an address in the expected CIDR) or target
//!      (`destination.ip`); several expectations are alternatives. NOISY when it is detected
//!      but a forbidden rule also fired or the alert starts exceed `max_episodes`. MISSED
//!      otherwise.
//!    - benign: quiet when no alert starts at all, FALSE ALARM otherwise.
//! 5. Prints the table, recall and the false-alarm rate, and writes `results.json`.
//!
//! It is a measuring tool: it exits 0 whatever the verdicts, unless `--assert` is given, when
//! any verdict other than detected/quiet fails it (for CI once the model is rebuilt).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    net::IpAddr,
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::{bootstrap, util};

/// Options of `cargo xtask corpus`.
#[derive(clap::Args)]
pub struct Options {
    /// Directory for the captures, the manifest and results.json [default: target/corpus].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Keep the captures afterwards (by default only manifest.json and results.json stay).
    #[arg(long)]
    keep: bool,
    /// Exit non-zero unless every attack is detected cleanly and every benign scenario is quiet.
    #[arg(long = "assert")]
    assert_all: bool,
    /// Only these scenarios (comma-separated names; see `tests/corpus/generate.py --list`).
    #[arg(long, value_name = "NAMES")]
    only: Option<String>,
    /// Scenarios generated and recounted in parallel.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
}

/// The verdict on one scenario.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Detected,
    Noisy,
    Missed,
    Quiet,
    FalseAlarm,
    Error,
}

impl Verdict {
    fn name(self) -> &'static str {
        match self {
            Verdict::Detected => "detected",
            Verdict::Noisy => "NOISY",
            Verdict::Missed => "MISSED",
            Verdict::Quiet => "quiet",
            Verdict::FalseAlarm => "FALSE ALARM",
            Verdict::Error => "ERROR",
        }
    }

    /// Whether this is what the label asks for.
    fn right(self) -> bool {
        matches!(self, Verdict::Detected | Verdict::Quiet)
    }
}

/// One alert start, as the comparison sees it.
struct Start {
    rule: String,
    scope: String,
    source: Option<String>,
    destination: Option<String>,
    source_prefix: Option<String>,
    /// Time of the start, ns since the Unix epoch.
    at_ns: Option<u64>,
}

impl Start {
    fn from_alert(alert: &Value) -> Self {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        Start {
            at_ns: alert["@timestamp"].as_str().and_then(rfc3339_ns),
            rule: text(&alert["rule"]["name"]).unwrap_or_default(),
            scope: text(&alert["picket"]["scope"]).unwrap_or_default(),
            source: text(&alert["source"]["ip"]),
            destination: text(&alert["destination"]["ip"]),
            source_prefix: text(&alert["picket"]["details"]["source_prefix"])
                .or_else(|| text(&alert["source"]["prefix"])),
        }
    }

    /// The offender (source scope) or target (destination scope) this start names.
    fn offender(&self) -> &str {
        let who = if self.scope == "destination" {
            &self.destination
        } else {
            &self.source
        };
        who.as_deref().unwrap_or("?")
    }

    /// Whether this start satisfies one expectation of the label, in a capture whose first
    /// packet came at `first_ns`.
    fn satisfies(&self, expect: &Value, first_ns: u64) -> bool {
        if expect["rule"].as_str() != Some(self.rule.as_str())
            || expect["scope"].as_str() != Some(self.scope.as_str())
        {
            return false;
        }
        if let Some(within) = expect["within_s"].as_f64() {
            let late = self
                .at_ns
                .is_none_or(|at| at.saturating_sub(first_ns) as f64 > within * 1e9);
            if late {
                return false;
            }
        }
        if let Some(want) = expect["source"].as_str() {
            let by_ip = self.source.as_deref().is_some_and(|ip| in_net(want, ip));
            let by_prefix = self.source_prefix.as_deref().is_some_and(|p| {
                p == want || p.split('/').next().is_some_and(|ip| in_net(want, ip))
            });
            if !(by_ip || by_prefix) {
                return false;
            }
        }
        if let Some(want) = expect["destination"].as_str()
            && !self
                .destination
                .as_deref()
                .is_some_and(|ip| in_net(want, ip))
        {
            return false;
        }
        true
    }
}

/// Whether address `ip` is `spec` (an address) or inside it (a CIDR).
fn in_net(spec: &str, ip: &str) -> bool {
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let (net, len) = match spec.split_once('/') {
        Some((net, len)) => (net, len.parse::<u32>().ok()),
        None => (spec, None),
    };
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    let (a, b, bits) = match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => (u128::from(n.to_bits()), u128::from(i.to_bits()), 32),
        (IpAddr::V6(n), IpAddr::V6(i)) => (n.to_bits(), i.to_bits(), 128),
        _ => return false,
    };
    let len = len.unwrap_or(bits).min(bits);
    if len == 0 {
        return true;
    }
    let shift = bits - len;
    (a >> shift) == (b >> shift)
}

/// The result of one scenario.
struct Row {
    name: String,
    label: String,
    expected: String,
    got: String,
    notes: String,
    verdict: Verdict,
    starts: usize,
    analyze_s: f64,
}

impl Options {
    /// What `cargo xtask test` runs: the whole corpus, every verdict asserted.
    pub fn asserting() -> Self {
        Options {
            out: None,
            keep: false,
            assert_all: true,
            only: None,
            jobs: 2,
        }
    }
}

/// Entry point of `cargo xtask corpus`.
pub fn main(opts: &Options) -> Result<()> {
    bootstrap::ensure(bootstrap::Needs::Build)?;
    bootstrap::corpus_tools()?;
    util::build_agent(false)?;
    let picket = util::picket_bin();

    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| util::target_dir().join("corpus"));
    let out = if out.is_absolute() {
        out
    } else {
        std::env::current_dir()?.join(out)
    };
    if out.exists() {
        // Stale captures of scenarios that were renamed would otherwise linger.
        for entry in fs::read_dir(&out).with_context(|| format!("cannot read {}", out.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "pcap") {
                fs::remove_file(&path)?;
            }
        }
    }
    fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let python = bootstrap::test_venv().join("bin").join("python");
    let corpus_src = util::workspace_root().join("tests/corpus");

    println!("\n== generating the corpus into {} ==", out.display());
    let started = Instant::now();
    let mut generate = util::cmd(&python);
    generate
        .arg(corpus_src.join("generate.py"))
        .arg(&out)
        .args(["--jobs", &opts.jobs.to_string()]);
    if let Some(only) = &opts.only {
        generate.args(["--only", only]);
    }
    util::run(&mut generate)?;
    let generate_s = started.elapsed().as_secs_f64();

    println!("\n== independent counts (dpkt, capinfos) ==");
    let started = Instant::now();
    util::run(
        util::cmd(&python)
            .arg(corpus_src.join("check.py"))
            .arg(&out)
            .env("CORPUS_CHECK_JOBS", opts.jobs.to_string()),
    )?;
    let check_s = started.elapsed().as_secs_f64();

    let manifest_path = out.join("manifest.json");
    let manifest: Value = serde_json::from_str(
        &fs::read_to_string(&manifest_path)
            .with_context(|| format!("cannot read {}", manifest_path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", manifest_path.display()))?;
    let scenarios = manifest["scenarios"]
        .as_array()
        .context("manifest.json has no scenarios")?;

    println!("\n== picket analyze ({}) ==", picket.display());
    let started = Instant::now();
    let mut rows = Vec::new();
    for scenario in scenarios {
        rows.push(judge(&picket, &out, scenario)?);
    }
    let analyze_s = started.elapsed().as_secs_f64();

    let report = table(&rows);
    println!("\n{report}");
    let attacks: Vec<_> = rows.iter().filter(|r| r.label == "attack").collect();
    let benign: Vec<_> = rows.iter().filter(|r| r.label == "benign").collect();
    let detected = attacks
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Detected | Verdict::Noisy))
        .count();
    let noisy = attacks
        .iter()
        .filter(|r| r.verdict == Verdict::Noisy)
        .count();
    let alarms = benign
        .iter()
        .filter(|r| r.verdict == Verdict::FalseAlarm)
        .count();
    let errors = rows.iter().filter(|r| r.verdict == Verdict::Error).count();
    let pct = |n: usize, d: usize| {
        if d == 0 {
            0.0
        } else {
            100.0 * n as f64 / d as f64
        }
    };
    println!(
        "recall: {detected}/{} attacks detected ({:.0} %), {noisy} of them NOISY (a forbidden rule or too many episodes)",
        attacks.len(),
        pct(detected, attacks.len())
    );
    println!(
        "false alarms: {alarms}/{} benign scenarios raised an alert ({:.0} %)",
        benign.len(),
        pct(alarms, benign.len())
    );
    if errors > 0 {
        println!("errors: {errors} scenario(s) could not be analyzed");
    }
    println!(
        "time: generate {generate_s:.1} s, independent counts {check_s:.1} s, picket analyze {analyze_s:.1} s"
    );

    let results = json!({
        "recall": { "detected": detected, "attacks": attacks.len(), "noisy": noisy },
        "false_alarms": { "alarms": alarms, "benign": benign.len() },
        "errors": errors,
        "seconds": { "generate": generate_s, "check": check_s, "analyze": analyze_s },
        "scenarios": rows.iter().map(|r| json!({
            "name": r.name, "label": r.label, "expected": r.expected, "got": r.got,
            "notes": r.notes, "verdict": r.verdict.name(), "alert_starts": r.starts,
            "analyze_s": r.analyze_s,
        })).collect::<Vec<_>>(),
    });
    let results_path = out.join("results.json");
    fs::write(
        &results_path,
        serde_json::to_string_pretty(&results)? + "\n",
    )
    .with_context(|| format!("cannot write {}", results_path.display()))?;
    fs::write(out.join("table.txt"), &report)?;
    println!("results: {}", results_path.display());

    if !opts.keep {
        for scenario in scenarios {
            if let Some(file) = scenario["file"].as_str() {
                let _ = fs::remove_file(out.join(file));
            }
        }
        println!("captures removed (--keep keeps them)");
    }

    let wrong = rows.iter().filter(|r| !r.verdict.right()).count();
    if opts.assert_all && wrong > 0 {
        bail!("{wrong} of {} scenarios have the wrong verdict", rows.len());
    }
    Ok(())
}

/// Runs `picket analyze --json` on one scenario's capture and compares with its label.
fn judge(picket: &Path, dir: &Path, scenario: &Value) -> Result<Row> {
    let name = scenario["name"]
        .as_str()
        .context("scenario without a name")?;
    let file = dir.join(
        scenario["file"]
            .as_str()
            .context("scenario without a file")?,
    );
    let label = scenario["label"].as_str().unwrap_or("?").to_owned();
    let expects = scenario["expect"].as_array().cloned().unwrap_or_default();
    let forbid: Vec<&str> = scenario["forbid"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let max_episodes = scenario["max_episodes"].as_u64();
    let expected = if label == "benign" {
        "no alert".to_owned()
    } else {
        expects
            .iter()
            .map(describe_expect)
            .collect::<Vec<_>>()
            .join(" or ")
    };

    let started = Instant::now();
    let mut command = util::cmd(picket);
    command
        .arg("analyze")
        .arg(&file)
        .args(["--json", "--no-progress"]);
    let output = command
        .output()
        .with_context(|| format!("could not start `{}`", util::display(&command)))?;
    let analyze_s = started.elapsed().as_secs_f64();
    let parsed = if output.status.success() {
        serde_json::from_slice::<Value>(&output.stdout).map_err(|e| e.to_string())
    } else {
        Err(format!(
            "exit {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    };
    let report = match parsed {
        Ok(report) => report,
        Err(error) => {
            println!("{name}: picket analyze failed: {error}");
            return Ok(Row {
                name: name.to_owned(),
                label,
                expected,
                got: format!("analyze failed: {error}"),
                notes: String::new(),
                verdict: Verdict::Error,
                starts: 0,
                analyze_s,
            });
        }
    };
    let starts: Vec<Start> = report["alerts"]
        .as_array()
        .map(|alerts| {
            alerts
                .iter()
                .filter(|a| a["event"]["action"].as_str() == Some("start"))
                .map(Start::from_alert)
                .collect()
        })
        .unwrap_or_default();

    let mut notes = Vec::new();
    let verdict = if label == "benign" {
        if starts.is_empty() {
            Verdict::Quiet
        } else {
            Verdict::FalseAlarm
        }
    } else {
        let first_ns = scenario["first_ns"].as_u64().unwrap_or(0);
        let hit = starts
            .iter()
            .any(|s| expects.iter().any(|e| s.satisfies(e, first_ns)));
        let forbidden: Vec<&str> = forbid
            .iter()
            .copied()
            .filter(|rule| starts.iter().any(|s| s.rule == *rule))
            .collect();
        if !forbidden.is_empty() {
            notes.push(format!("forbidden: {}", forbidden.join(", ")));
        }
        let too_many = max_episodes.is_some_and(|max| starts.len() as u64 > max);
        if let Some(max) = max_episodes
            && too_many
        {
            notes.push(format!("{} episodes > {max}", starts.len()));
        }
        match (hit, forbidden.is_empty() && !too_many) {
            (true, true) => Verdict::Detected,
            (true, false) => Verdict::Noisy,
            (false, _) => Verdict::Missed,
        }
    };
    let got = describe_starts(&starts);
    println!(
        "{name}: {} alert start(s), {} ({analyze_s:.1} s)",
        starts.len(),
        verdict.name()
    );
    Ok(Row {
        name: name.to_owned(),
        label,
        expected,
        got,
        notes: notes.join("; "),
        verdict,
        starts: starts.len(),
        analyze_s,
    })
}

fn short_scope(scope: &str) -> &str {
    match scope {
        "source" => "src",
        "destination" => "dst",
        other => other,
    }
}

fn describe_expect(e: &Value) -> String {
    let who = e["source"]
        .as_str()
        .or_else(|| e["destination"].as_str())
        .unwrap_or("");
    let within = e["within_s"]
        .as_f64()
        .map(|s| format!(" within {s} s"))
        .unwrap_or_default();
    format!(
        "{}/{} {who}{within}",
        e["rule"].as_str().unwrap_or("?"),
        short_scope(e["scope"].as_str().unwrap_or("?"))
    )
}

/// Nanoseconds since the Unix epoch of a UTC RFC 3339 time as picket writes it
/// (`2026-12-01T12:00:06.003Z`).
fn rfc3339_ns(t: &str) -> Option<u64> {
    let t = t.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut h = hms.splitn(3, ':').map(str::parse::<u64>);
    let (hh, mm, ss) = (h.next()?.ok()?, h.next()?.ok()?, h.next()?.ok()?);
    let frac_ns = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        digits.parse::<u64>().ok()?
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000) + frac_ns)
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn rfc3339_times_read_as_epoch_nanoseconds() {
        // The corpus's first packet: 2026-12-01T12:00:00Z is 1 796 126 400 s.
        assert_eq!(
            super::rfc3339_ns("2026-12-01T12:00:00Z"),
            Some(1_796_126_400_000_000_000)
        );
        assert_eq!(
            super::rfc3339_ns("2026-12-01T12:00:06.003Z"),
            Some(1_796_126_406_003_000_000)
        );
        assert_eq!(super::rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(super::rfc3339_ns("garbage"), None);
    }
}

/// The alert starts grouped by rule and scope, with their offenders (or how many).
fn describe_starts(starts: &[Start]) -> String {
    if starts.is_empty() {
        return "-".to_owned();
    }
    let mut groups: BTreeMap<(String, String), Vec<&str>> = BTreeMap::new();
    for s in starts {
        groups
            .entry((s.rule.clone(), s.scope.clone()))
            .or_default()
            .push(s.offender());
    }
    groups
        .iter()
        .map(|((rule, scope), who)| {
            let mut distinct: Vec<&str> = who.clone();
            distinct.sort_unstable();
            distinct.dedup();
            let names = if distinct.len() <= 2 {
                distinct.join(",")
            } else {
                format!("{} offenders", distinct.len())
            };
            let times = if who.len() > 1 {
                format!(" ×{}", who.len())
            } else {
                String::new()
            };
            format!("{rule}/{} {names}{times}", short_scope(scope))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The results as an aligned text table.
fn table(rows: &[Row]) -> String {
    let header = ["scenario", "label", "expected", "got", "verdict"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let verdict = if r.notes.is_empty() {
                r.verdict.name().to_owned()
            } else {
                format!("{} ({})", r.verdict.name(), r.notes)
            };
            [
                r.name.clone(),
                r.label.clone(),
                r.expected.clone(),
                r.got.clone(),
                verdict,
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[&str]| {
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                let _ = write!(out, "{cell}");
            } else {
                let pad = w - cell.chars().count();
                let _ = write!(out, "{cell}{}  ", " ".repeat(pad));
            }
        }
        out.push('\n');
    };
    line(&mut out, &header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(
        &mut out,
        &rule.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for row in &cells {
        line(
            &mut out,
            &row.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(rule: &str, scope: &str, src: Option<&str>, dst: Option<&str>) -> Start {
        Start {
            rule: rule.into(),
            scope: scope.into(),
            source: src.map(Into::into),
            destination: dst.map(Into::into),
            source_prefix: None,
            at_ns: Some(5_000_000_000),
        }
    }

    #[test]
    fn cidr_containment() {
        assert!(in_net("203.0.113.9", "203.0.113.9"));
        assert!(!in_net("203.0.113.9", "203.0.113.10"));
        assert!(in_net("203.0.113.0/24", "203.0.113.77"));
        assert!(!in_net("203.0.113.0/25", "203.0.113.200"));
        assert!(in_net(
            "2001:db8:bad:1::/64",
            "2001:db8:bad:1:dead:beef:1:2"
        ));
        assert!(!in_net("2001:db8:bad:1::/64", "2001:db8:bad:2::1"));
        assert!(!in_net("2001:db8::/32", "203.0.113.9"));
    }

    #[test]
    fn expectation_needs_rule_scope_and_party() {
        let e = json!({"rule": "port_scan", "scope": "source", "source": "203.0.113.9"});
        assert!(start("port_scan", "source", Some("203.0.113.9"), None).satisfies(&e, 0));
        assert!(!start("port_scan", "source", Some("203.0.113.8"), None).satisfies(&e, 0));
        assert!(!start("port_scan", "destination", Some("203.0.113.9"), None).satisfies(&e, 0));
        assert!(!start("host_sweep", "source", Some("203.0.113.9"), None).satisfies(&e, 0));
        let d =
            json!({"rule": "syn_flood", "scope": "destination", "destination": "198.51.100.80"});
        assert!(start("syn_flood", "destination", None, Some("198.51.100.80")).satisfies(&d, 0));
        assert!(!start("syn_flood", "destination", None, Some("198.51.100.81")).satisfies(&d, 0));
    }

    #[test]
    fn a_late_start_misses_a_latency_bound() {
        let e = json!({"rule": "port_scan", "scope": "source", "within_s": 60.0});
        let s = start("port_scan", "source", Some("203.0.113.9"), None);
        assert!(s.satisfies(&e, 0));
        assert!(!s.satisfies(
            &json!({"rule": "port_scan", "scope": "source", "within_s": 4.0}),
            0
        ));
    }

    #[test]
    fn prefix_offender() {
        let e = json!({"rule": "port_scan", "scope": "source", "source": "2001:db8:bad:1::/64"});
        let mut s = start("port_scan", "source", None, None);
        assert!(!s.satisfies(&e, 0));
        s.source_prefix = Some("2001:db8:bad:1::/64".into());
        assert!(s.satisfies(&e, 0));
    }
}
