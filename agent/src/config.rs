//! Settings: built-in defaults, overridden by a TOML file (`--config FILE`), overridden by
//! command-line flags. `picket config default` prints the documented defaults and
//! `picket config check FILE` reports every error of a file as `file:line:col: key: reason`.
//!
//! Every key of the file is optional. Keys are the long flag names with `_` for `-`
//! (`--poll-interval` is `poll_interval`), except `interfaces` (`--iface`), `egress`
//! (`--no-egress` sets it to false) and the `[metrics]` table (`--metrics-addr`,
//! `--metrics-top-k`); thresholds live in `[thresholds]`. `--duration` and `--config` are
//! flags only. A list given with flags (`--iface`, `--allow`) replaces the file's list.

use std::{
    fmt,
    net::SocketAddr,
    ops::Range,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow, bail};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

use picket_detect::detector::Thresholds;

use crate::{
    cli::{ConfigArgs, ConfigCommand, RunArgs},
    loader::{Hook, XdpModeArg},
    output::Format,
    parse::{EXAMPLE_METRICS_PORT, MAP_ENTRIES, MAX_TOP_K},
};

/// Everything the live agent is configured with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Interfaces to watch; empty: the interface of the default route.
    pub interfaces: Vec<String>,
    /// Ingress hook.
    pub hook: Hook,
    /// XDP attach mode.
    pub xdp_mode: XdpModeArg,
    /// Whether the TC egress program is attached.
    pub egress: bool,
    /// How often the maps are read.
    #[serde(with = "human_duration")]
    pub poll_interval: Duration,
    /// Window of the distinct port/host counts.
    #[serde(with = "human_duration")]
    pub window: Duration,
    /// Summary line period (zero: never).
    #[serde(with = "human_duration")]
    pub summary_interval: Duration,
    /// At most one update line per episode per this interval.
    #[serde(with = "human_duration")]
    pub update_interval: Duration,
    /// An episode ends after this long without a match.
    #[serde(with = "human_duration")]
    pub end_after: Duration,
    /// Offenders in these networks never raise alerts.
    #[serde(with = "networks")]
    pub allow: Vec<IpNet>,
    /// Output format.
    pub output: Format,
    /// Capacity of the per-source map.
    pub src_map_entries: u32,
    /// Capacity of the per-destination map.
    pub dst_map_entries: u32,
    /// Detection thresholds.
    pub thresholds: Thresholds,
    /// Directory of the evidence pcap files; none: no capture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_dir: Option<PathBuf>,
    /// Packet bytes captured per flagged source and alert episode.
    pub capture_bytes_per_alert: u64,
    /// Total size of the evidence files in `capture_dir`.
    pub capture_max_bytes: u64,
    /// Size at which a new evidence file is started.
    pub capture_file_bytes: u64,
    /// Metrics endpoint.
    pub metrics: MetricsSettings,
}

/// The `[metrics]` table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Where to serve `/metrics`, `/healthz` and `/readyz`; none: no endpoint.
    #[serde(with = "metrics_addr", skip_serializing_if = "Option::is_none")]
    pub addr: Option<SocketAddr>,
    /// How many offenders of open alerts to export with an `ip` label (0: none).
    pub top_k: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            interfaces: Vec::new(),
            hook: Hook::Xdp,
            xdp_mode: XdpModeArg::Auto,
            egress: true,
            poll_interval: Duration::from_secs(1),
            window: Duration::from_secs(10),
            summary_interval: Duration::from_secs(10),
            update_interval: Duration::from_secs(10),
            end_after: Duration::from_secs(5),
            allow: Vec::new(),
            output: Format::Auto,
            src_map_entries: agent_common::state::DEFAULT_SOURCES,
            dst_map_entries: agent_common::state::DEFAULT_DESTS,
            thresholds: Thresholds::default(),
            capture_dir: None,
            capture_bytes_per_alert: crate::evidence::DEFAULT_BYTES_PER_ALERT,
            capture_max_bytes: crate::evidence::DEFAULT_MAX_BYTES,
            capture_file_bytes: crate::evidence::DEFAULT_FILE_BYTES,
            metrics: MetricsSettings::default(),
        }
    }
}

/// One problem with a setting: the key path (`thresholds.port_scan_ports`, `allow[1]`) and
/// why.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// Key path in the file.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl Settings {
    /// Defaults, overridden by the file of `--config` (if any), overridden by the flags.
    pub fn load(args: &RunArgs) -> Result<Settings> {
        let base = match &args.config {
            Some(path) => ConfigFile::read(path)?.settings()?,
            None => Settings::default(),
        };
        let merged = base.with_flags(args);
        let problems = merged.problems();
        if !problems.is_empty() {
            let lines: Vec<String> = problems
                .iter()
                .map(|p| format!("{} (--{}): {}", p.key, flag_of(&p.key), p.reason))
                .collect();
            bail!("invalid settings: {}", lines.join("; "));
        }
        Ok(merged)
    }

    /// These settings with every flag given in `args` applied over them.
    pub fn with_flags(mut self, args: &RunArgs) -> Settings {
        fn set<T: Clone>(slot: &mut T, flag: &Option<T>) {
            if let Some(v) = flag {
                *slot = v.clone();
            }
        }
        if !args.ifaces.is_empty() {
            self.interfaces = args.ifaces.clone();
        }
        set(&mut self.hook, &args.hook);
        set(&mut self.xdp_mode, &args.xdp_mode);
        if args.no_egress {
            self.egress = false;
        }
        set(&mut self.poll_interval, &args.poll_interval);
        set(&mut self.window, &args.window);
        set(&mut self.summary_interval, &args.summary_interval);
        set(&mut self.update_interval, &args.update_interval);
        set(&mut self.end_after, &args.end_after);
        if !args.allow.is_empty() {
            self.allow = args.allow.clone();
        }
        set(&mut self.output, &args.output);
        set(&mut self.src_map_entries, &args.src_map_entries);
        set(&mut self.dst_map_entries, &args.dst_map_entries);
        self.thresholds = args.thresholds.apply(self.thresholds);
        if args.metrics_addr.is_some() {
            self.metrics.addr = args.metrics_addr;
        }
        set(&mut self.metrics.top_k, &args.metrics_top_k);
        if args.capture_dir.is_some() {
            self.capture_dir = args.capture_dir.clone();
        }
        set(
            &mut self.capture_bytes_per_alert,
            &args.capture_bytes_per_alert,
        );
        set(&mut self.capture_max_bytes, &args.capture_max_bytes);
        set(&mut self.capture_file_bytes, &args.capture_file_bytes);
        self
    }

    /// Values out of range, and combinations that do not make sense.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |key: &str, reason: String| {
            out.push(Problem {
                key: key.into(),
                reason,
            })
        };
        for (i, name) in self.interfaces.iter().enumerate() {
            if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0']) {
                bad(
                    &format!("interfaces[{i}]"),
                    format!(
                        "{name:?} is not an interface name (1 to 15 characters, no '/' or space)"
                    ),
                );
            }
        }
        if self.poll_interval.is_zero() {
            bad("poll_interval", "must be greater than 0".into());
        } else if self.window < self.poll_interval {
            bad(
                "window",
                format!(
                    "{} must be at least poll_interval ({})",
                    humantime::format_duration(self.window),
                    humantime::format_duration(self.poll_interval)
                ),
            );
        }
        for (key, v) in [
            ("src_map_entries", self.src_map_entries),
            ("dst_map_entries", self.dst_map_entries),
        ] {
            if !MAP_ENTRIES.contains(&v) {
                bad(
                    key,
                    format!(
                        "{v} is out of range ({}..={})",
                        MAP_ENTRIES.start(),
                        MAP_ENTRIES.end()
                    ),
                );
            }
        }
        let t = &self.thresholds;
        for (key, v, min) in [
            ("port_scan_ports", t.port_scan_ports, 2),
            ("host_sweep_hosts", t.host_sweep_hosts, 2),
            ("syn_flood_dst_sources", t.syn_flood_dst_sources, 1),
        ] {
            if v < min {
                bad(
                    &format!("thresholds.{key}"),
                    format!("{v} is below the minimum {min}"),
                );
            }
        }
        for (key, v) in [
            ("syn_flood_pps", t.syn_flood_pps),
            ("syn_flood_dst_pps", t.syn_flood_dst_pps),
            ("udp_flood_pps", t.udp_flood_pps),
            ("icmp_flood_pps", t.icmp_flood_pps),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                bad(
                    &format!("thresholds.{key}"),
                    format!("{v} is not a positive number"),
                );
            }
        }
        if self.capture_bytes_per_alert == 0 {
            bad("capture_bytes_per_alert", "must be greater than 0".into());
        }
        let min_file = crate::evidence::MIN_FILE_BYTES;
        if self.capture_file_bytes < min_file {
            bad(
                "capture_file_bytes",
                format!(
                    "{} is below the minimum {min_file}",
                    self.capture_file_bytes
                ),
            );
        } else if self.capture_max_bytes < self.capture_file_bytes {
            bad(
                "capture_max_bytes",
                format!(
                    "{} must be at least capture_file_bytes ({})",
                    self.capture_max_bytes, self.capture_file_bytes
                ),
            );
        }
        if self.metrics.top_k > MAX_TOP_K {
            bad(
                "metrics.top_k",
                format!("{} is above the maximum {MAX_TOP_K}", self.metrics.top_k),
            );
        }
        out
    }

    /// A one-line description of what a reload from `self` to `new` changes, and which
    /// changes only take effect after a restart.
    pub fn describe_reload(&self, new: &Settings) -> String {
        let (old_v, new_v) = (table_of(self), table_of(new));
        let mut applied = Vec::new();
        let mut restart = Vec::new();
        for (key, value) in &new_v {
            let before = old_v.get(key);
            if before == Some(value) {
                continue;
            }
            let shown = |v: Option<&toml::Value>| v.map_or("(none)".into(), |v| v.to_string());
            let change = format!("{key} {} -> {}", shown(before), shown(Some(value)));
            if key.starts_with("thresholds.") || key == "allow" {
                applied.push(change);
            } else {
                restart.push(key.clone());
            }
        }
        let mut line = if applied.is_empty() {
            "thresholds and allowlist unchanged".to_string()
        } else {
            applied.join(", ")
        };
        if !restart.is_empty() {
            line.push_str(&format!(
                " (changes to {} take effect after a restart)",
                restart.join(", ")
            ));
        }
        line
    }
}

/// Settings as a flat map of dotted keys to values (for comparisons).
fn table_of(s: &Settings) -> std::collections::BTreeMap<String, toml::Value> {
    fn flatten(
        prefix: &str,
        table: toml::Table,
        out: &mut std::collections::BTreeMap<String, toml::Value>,
    ) {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => flatten(&key, t, out),
                v => {
                    out.insert(key, v);
                }
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    if let Ok(toml::Value::Table(t)) = toml::Value::try_from(s) {
        flatten("", t, &mut out);
    }
    out
}

/// The flag that sets a key.
fn flag_of(key: &str) -> String {
    let key = key.split('[').next().unwrap_or(key);
    match key {
        "interfaces" => "iface".into(),
        "egress" => "no-egress".into(),
        "metrics.addr" => "metrics-addr".into(),
        "metrics.top_k" => "metrics-top-k".into(),
        k => k.trim_start_matches("thresholds.").replace('_', "-"),
    }
}

/// An error located in a file.
#[derive(Clone, Debug, PartialEq)]
pub struct FileError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub col: usize,
    /// Key path, or empty for syntax errors.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// Every error of one file, printed one per line as `file:line:col: key: reason`.
#[derive(Clone, Debug)]
pub struct FileErrors {
    /// The file.
    pub path: PathBuf,
    /// Its errors, in file order.
    pub errors: Vec<FileError>,
}

impl fmt::Display for FileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: ", self.path.display(), e.line, e.col)?;
            if !e.key.is_empty() {
                write!(f, "{}: ", e.key)?;
            }
            write!(f, "{}", e.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for FileErrors {}

/// A configuration file's text.
pub struct ConfigFile {
    path: PathBuf,
    text: String,
}

impl ConfigFile {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read configuration file {}", path.display()))?;
        Ok(ConfigFile::from_text(path, text))
    }

    /// A file named `path` holding `text`.
    pub fn from_text(path: &Path, text: String) -> ConfigFile {
        ConfigFile {
            path: path.to_path_buf(),
            text,
        }
    }

    /// The settings of the file over the defaults, or every error in it.
    pub fn settings(&self) -> Result<Settings, FileErrors> {
        let (root, syntax) = DeTable::parse_recoverable(&self.text);
        if !syntax.is_empty() {
            let errors = syntax
                .iter()
                .map(|e| self.locate(e.span().unwrap_or(0..0), String::new(), e.message()))
                .collect();
            return Err(self.errors(errors));
        }
        // Deserialize; on an error, note it, drop the offending key or element (spans stay
        // those of the original text) and try again, so that every bad key is reported.
        let mut doc = root.clone();
        let mut errors = Vec::new();
        let mut dropped: Vec<String> = Vec::new();
        let settings = loop {
            let de = toml::de::Deserializer::from(doc.clone());
            match Settings::deserialize(de) {
                Ok(s) => break Some(s),
                Err(e) => {
                    let span = e.span().unwrap_or(0..0);
                    let path = path_at(root.get_ref(), &span);
                    let path = element_named(root.get_ref(), path, e.message());
                    let span = match path.last() {
                        Some(Seg::Index(_)) => span_of(root.get_ref(), &display_path(&path)),
                        _ => None,
                    }
                    .unwrap_or(span);
                    errors.push(self.locate(span, display_path(&path), e.message()));
                    if path.is_empty() || !remove_path(doc.get_mut(), &path) {
                        break None;
                    }
                    dropped.push(display_path(&path));
                }
            }
        };
        if let Some(s) = &settings {
            for p in s.problems() {
                // A check that involves a dropped key would be about its default: skip it.
                let involves_dropped = dropped
                    .iter()
                    .any(|d| d == &p.key || p.reason.contains(d.as_str()));
                if involves_dropped {
                    continue;
                }
                let span = span_of(root.get_ref(), &p.key).unwrap_or(0..0);
                errors.push(self.locate(span, p.key.clone(), &p.reason));
            }
        }
        match settings {
            Some(s) if errors.is_empty() => Ok(s),
            _ => Err(self.errors(errors)),
        }
    }

    fn errors(&self, mut errors: Vec<FileError>) -> FileErrors {
        errors.sort_by_key(|e| (e.line, e.col));
        errors.dedup();
        FileErrors {
            path: self.path.clone(),
            errors,
        }
    }

    fn locate(&self, span: Range<usize>, key: String, reason: &str) -> FileError {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.text[line_start..start].chars().count() + 1;
        FileError {
            line,
            col,
            key,
            reason: reason.trim().replace('\n', " "),
        }
    }
}

/// One step of a key path.
#[derive(Clone, Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn display_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end.max(outer.start + 1)
}

/// The deepest key path whose key or value span holds `span`.
fn path_at(table: &DeTable<'_>, span: &Range<usize>) -> Vec<Seg> {
    for k in table.keys() {
        if contains(&k.span(), span) {
            return vec![Seg::Key(k.get_ref().to_string())];
        }
    }
    for (k, v) in table.iter() {
        let mut inner = value_path_at(v.get_ref(), span);
        if !inner.is_empty() || contains(&v.span(), span) {
            inner.insert(0, Seg::Key(k.get_ref().to_string()));
            return inner;
        }
    }
    Vec::new()
}

/// When `path` is an array and `message` quotes one of its strings (`"x" is not ...`), the
/// path of that element: errors from an element's own parser carry the array's span.
fn element_named(table: &DeTable<'_>, mut path: Vec<Seg>, message: &str) -> Vec<Seg> {
    let key = display_path(&path);
    let Some(DeValue::Array(items)) = value_at(table, &key) else {
        return path;
    };
    let named = items.iter().position(|item| {
        item.get_ref()
            .as_str()
            .is_some_and(|s| message.contains(&format!("{s:?}")))
    });
    if let Some(i) = named {
        path.push(Seg::Index(i));
    }
    path
}

fn value_path_at(value: &DeValue<'_>, span: &Range<usize>) -> Vec<Seg> {
    match value {
        DeValue::Table(t) => path_at(t, span),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let mut inner = value_path_at(item.get_ref(), span);
                if !inner.is_empty() || contains(&item.span(), span) {
                    inner.insert(0, Seg::Index(i));
                    return inner;
                }
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// Removes the key or array element at `path`; false when there is none.
fn remove_path(table: &mut DeTable<'_>, path: &[Seg]) -> bool {
    let Some((Seg::Key(first), rest)) = path.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return table.remove(first.as_str()).is_some();
    }
    match table.get_mut(first.as_str()).map(|v| v.get_mut()) {
        Some(value) => remove_in_value(value, rest),
        None => false,
    }
}

fn remove_in_value(value: &mut DeValue<'_>, path: &[Seg]) -> bool {
    match (value, path.split_first()) {
        (DeValue::Table(t), Some(_)) => remove_path(t, path),
        (DeValue::Array(items), Some((Seg::Index(i), rest))) => {
            if rest.is_empty() {
                if *i >= items.len() {
                    return false;
                }
                let mut kept = toml::de::DeArray::new();
                for (j, item) in items.iter().enumerate() {
                    if j != *i {
                        kept.push(item.clone());
                    }
                }
                *items = kept;
                true
            } else {
                items
                    .get_mut(*i)
                    .is_some_and(|item| remove_in_value(item.get_mut(), rest))
            }
        }
        _ => false,
    }
}

/// The value at a dotted key path (`a.b`, `allow[1]`), if present.
fn spanned_at<'a, 'i>(table: &'a DeTable<'i>, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
    let mut cur: Option<&Spanned<DeValue<'_>>> = None;
    for part in key.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let t = match cur.map(|v| v.get_ref()) {
            None => table,
            Some(DeValue::Table(t)) => t,
            Some(_) => return None,
        };
        cur = Some(t.get(name)?);
        if let Some(i) = index {
            match cur.map(|v| v.get_ref()) {
                Some(DeValue::Array(items)) => cur = Some(items.get(i)?),
                _ => return None,
            }
        }
    }
    cur
}

fn value_at<'a, 'i>(table: &'a DeTable<'i>, key: &str) -> Option<&'a DeValue<'i>> {
    spanned_at(table, key).map(|v| v.get_ref())
}

fn span_of(table: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    spanned_at(table, key).map(|v| v.span())
}

/// Durations as strings such as "1s", "500ms", "2m".
mod human_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        crate::parse::parse_duration(&text).map_err(|e| D::Error::custom(format!("{text:?}: {e}")))
    }
}

/// Networks as strings: CIDRs or bare addresses.
mod networks {
    use ipnet::IpNet;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(nets: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(nets.iter().map(|n| n.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        // Each element separately, so that an error points at the element.
        let items = Vec::<Net>::deserialize(d)?;
        Ok(items.into_iter().map(|n| n.0).collect())
    }

    struct Net(IpNet);

    impl<'de> Deserialize<'de> for Net {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let text = String::deserialize(d)?;
            crate::parse::parse_net(&text)
                .map(Net)
                .map_err(D::Error::custom)
        }
    }
}

/// The metrics address as a string (see [`parse_metrics_addr`]).
mod metrics_addr {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(a: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match a {
            Some(a) => s.serialize_str(&a.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        crate::parse::parse_metrics_addr(&text)
            .map(Some)
            .map_err(D::Error::custom)
    }
}

/// The documented default configuration file: every key at its default value.
pub fn default_toml() -> String {
    let d = Settings::default();
    let t = &d.thresholds;
    let dur = |v: Duration| humantime::format_duration(v).to_string();
    format!(
        r#"# Picket configuration (TOML). Every key is optional: a missing key takes the value shown,
# which is the built-in default. Command-line flags override this file (a list given with
# flags replaces the file's list). Check a file with `picket config check FILE`.
# SIGHUP makes a running picket reload [thresholds] and `allow` from this file; other keys
# take effect at the next start.

# Interfaces to watch (--iface). Empty: the interface of the default route.
interfaces = []
# Ingress hook (--hook): "xdp" or "tc". The TC egress program is attached too unless
# egress = false.
hook = "{hook}"
# XDP attach mode (--xdp-mode): "auto" (driver, else skb), "driver" or "skb".
xdp_mode = "{xdp_mode}"
# Attach the TC egress program, which sees the SYN-ACKs and RSTs of floods (--no-egress: false).
egress = {egress}
# How often the maps are read (--poll-interval): "500ms", "1s", "2m", ...
poll_interval = "{poll}"
# Window of the distinct port and host counts (--window); at least poll_interval.
window = "{window}"
# How often a summary line is printed (--summary-interval); "0s": never.
summary_interval = "{summary}"
# At most one update line per alert episode per this interval (--update-interval).
update_interval = "{update}"
# An alert episode ends after this long without a match (--end-after).
end_after = "{end}"
# Never alert on offenders in these networks (--allow): CIDRs or addresses, e.g.
# allow = ["10.0.0.0/8", "2001:db8::1"]
allow = []
# Output format (--output): "auto" (text on a terminal, JSON lines otherwise), "text", "json".
output = "{output}"
# Capacity of the per-source LRU map (--src-map-entries), {min}..{max}; 832 bytes each.
src_map_entries = {src}
# Capacity of the per-destination LRU map (--dst-map-entries), {min}..{max}.
dst_map_entries = {dst}
# Evidence capture (--capture-dir): the first 256 bytes of each packet from a source with an
# open alert, written to picket-<UTC time>-<n>.pcap files in this directory. Absent: none.
# capture_dir = "/var/lib/picket/evidence"
# Packet bytes captured per flagged source and alert episode (--capture-bytes-per-alert).
capture_bytes_per_alert = {cbpa}
# Total size of the pcap files in capture_dir; the oldest are deleted to stay under it
# (--capture-max-bytes); at least capture_file_bytes.
capture_max_bytes = {cmb}
# A new pcap file is started at this size (--capture-file-bytes), at least {min_file}.
capture_file_bytes = {cfb}

# Detection thresholds (--port-scan-ports, ...). A rule fires when one offender crosses its
# bar; see README.md, "Rules and defaults", for why each default is where it is.
[thresholds]
# port_scan: distinct destination ports probed by one source per window (at least 2).
port_scan_ports = {psp}
# host_sweep: distinct destination hosts probed by one source per window (at least 2).
host_sweep_hosts = {hsh}
# syn_flood: SYNs per second from one source.
syn_flood_pps = {sfp:?}
# syn_flood (destination): SYNs per second towards one destination ...
syn_flood_dst_pps = {sfdp:?}
# ... from at least this many distinct sources in the window (at least 1).
syn_flood_dst_sources = {sfds}
# udp_flood: UDP packets per second from one source.
udp_flood_pps = {ufp:?}
# icmp_flood: ICMP and ICMPv6 packets per second from one source.
icmp_flood_pps = {ifp:?}

# Prometheus/OpenMetrics endpoint: /metrics, /healthz, /readyz.
[metrics]
# Listen address (--metrics-addr): "ADDR:PORT", or "PORT" for 127.0.0.1:PORT. Absent: no
# endpoint. Anything but loopback exposes the metrics to the network.
# addr = "127.0.0.1:{port}"
# Export the K offenders of open alerts with their address as an `ip` label
# (--metrics-top-k), 0..{max_k}; 0: no address labels at all.
top_k = {top_k}
"#,
        hook = enum_name(&d.hook),
        xdp_mode = enum_name(&d.xdp_mode),
        egress = d.egress,
        poll = dur(d.poll_interval),
        window = dur(d.window),
        summary = dur(d.summary_interval),
        update = dur(d.update_interval),
        end = dur(d.end_after),
        output = enum_name(&d.output),
        min = MAP_ENTRIES.start(),
        max = MAP_ENTRIES.end(),
        src = d.src_map_entries,
        dst = d.dst_map_entries,
        psp = t.port_scan_ports,
        hsh = t.host_sweep_hosts,
        sfp = t.syn_flood_pps,
        sfdp = t.syn_flood_dst_pps,
        sfds = t.syn_flood_dst_sources,
        ufp = t.udp_flood_pps,
        ifp = t.icmp_flood_pps,
        port = EXAMPLE_METRICS_PORT,
        max_k = MAX_TOP_K,
        top_k = d.metrics.top_k,
        cbpa = d.capture_bytes_per_alert,
        cmb = d.capture_max_bytes,
        cfb = d.capture_file_bytes,
        min_file = crate::evidence::MIN_FILE_BYTES,
    )
}

/// The name a value enum has in files (its serde name, also its flag value).
fn enum_name<T: Serialize>(v: &T) -> String {
    match toml::Value::try_from(v) {
        Ok(toml::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// On SIGHUP: the settings from the file and the flags again, or `None` (after one line on
/// stderr saying why) when there is no file or it is invalid. Only thresholds and the
/// allowlist are meant to be applied; the line says which other changes need a restart.
pub fn reload(args: &RunArgs, current: &Settings) -> Option<Settings> {
    let Some(path) = &args.config else {
        eprintln!("picket: SIGHUP: nothing to reload (no --config file)");
        return None;
    };
    match Settings::load(args) {
        Ok(new) => {
            eprintln!(
                "picket: reloaded {}: {}",
                path.display(),
                current.describe_reload(&new)
            );
            Some(new)
        }
        Err(e) => {
            let e = format!("{e:#}").replace('\n', "; ");
            eprintln!(
                "picket: reload of {} failed, keeping the current settings: {e}",
                path.display()
            );
            None
        }
    }
}

/// `picket config ...`.
pub fn command(args: &ConfigArgs) -> Result<()> {
    match &args.command {
        ConfigCommand::Default => {
            print!("{}", default_toml());
            Ok(())
        }
        ConfigCommand::Check { file } => {
            let settings = ConfigFile::read(file)?.settings();
            match settings {
                Ok(_) => {
                    println!("{}: ok", file.display());
                    Ok(())
                }
                Err(e) => {
                    eprintln!("{e}");
                    let n = e.errors.len();
                    Err(anyhow!(
                        "{}: {n} error{}",
                        file.display(),
                        if n == 1 { "" } else { "s" }
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::Cli;

    fn parse(text: &str) -> Result<Settings, FileErrors> {
        ConfigFile::from_text(Path::new("picket.toml"), text.to_string()).settings()
    }

    fn errors(text: &str) -> Vec<String> {
        parse(text)
            .expect_err("the file should be rejected")
            .to_string()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn run_args(flags: &[&str]) -> RunArgs {
        let mut argv = vec!["picket"];
        argv.extend_from_slice(flags);
        Cli::try_parse_from(argv).expect("flags parse").run
    }

    #[test]
    fn default_file_parses_back_to_the_defaults() {
        assert_eq!(parse(&default_toml()).unwrap(), Settings::default());
        assert_eq!(parse("").unwrap(), Settings::default());
    }

    #[test]
    fn every_key_is_documented_in_the_default_file() {
        // Uncomment the optional keys (commented out because they have no default) ...
        let text = default_toml()
            .replace("# addr = ", "addr = ")
            .replace("# capture_dir = ", "capture_dir = ");
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed.metrics.addr, Some("127.0.0.1:9464".parse().unwrap()));
        assert!(parsed.capture_dir.is_some());
        // ... then every key of fully populated settings must appear in the file.
        let mut full = Settings::default();
        full.metrics.addr = parsed.metrics.addr;
        full.capture_dir = parsed.capture_dir.clone();
        let documented = table_of(&parse(&text).unwrap());
        for key in table_of(&full).keys() {
            assert!(
                documented.contains_key(key),
                "{key} is not in the default file"
            );
        }
        assert_eq!(table_of(&full).len(), documented.len());
    }

    #[test]
    fn every_key_round_trips_through_serialization() {
        let mut s = Settings {
            interfaces: vec!["eth0".into(), "eth1".into()],
            hook: Hook::Tc,
            xdp_mode: XdpModeArg::Skb,
            egress: false,
            poll_interval: Duration::from_millis(500),
            window: Duration::from_secs(30),
            summary_interval: Duration::ZERO,
            update_interval: Duration::from_secs(60),
            end_after: Duration::from_secs(7),
            allow: vec![
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::1/128".parse().unwrap(),
            ],
            output: Format::Json,
            src_map_entries: 1024,
            dst_map_entries: 512,
            thresholds: Thresholds {
                port_scan_ports: 3,
                host_sweep_hosts: 4,
                syn_flood_pps: 5.5,
                syn_flood_dst_pps: 6.0,
                syn_flood_dst_sources: 7,
                udp_flood_pps: 8.0,
                icmp_flood_pps: 9.0,
            },
            capture_dir: Some("/tmp/evidence".into()),
            capture_bytes_per_alert: 1000,
            capture_max_bytes: 1_000_000,
            capture_file_bytes: 100_000,
            metrics: MetricsSettings {
                addr: Some("[::1]:9000".parse().unwrap()),
                top_k: 10,
            },
        };
        let text = toml::to_string(&s).unwrap();
        assert_eq!(parse(&text).unwrap(), s, "{text}");
        // Every field differs from its default, so no key is silently ignored.
        let (a, b) = (table_of(&s), table_of(&Settings::default()));
        for (k, v) in &a {
            assert_ne!(b.get(k), Some(v), "{k} equals its default");
        }
        s.metrics.addr = None;
        assert_eq!(parse(&toml::to_string(&s).unwrap()).unwrap(), s);
    }

    #[test]
    fn bad_files_get_every_error_with_line_column_and_key() {
        let text = r#"poll_interval = "fast"
window = "10s"
allow = ["10.0.0.0/8", "not-a-net", "192.0.2.1"]
hook = "ebpf"
colour = "blue"

[thresholds]
port_scan_ports = "many"
host_sweep_hosts = 1
syn_flood_pps = -3.0
port_scan_prots = 10

[metrics]
addr = "localhost"
"#;
        let got = errors(text);
        let want = [
            "picket.toml:1:17: poll_interval: \"fast\": expected",
            "picket.toml:3:24: allow[1]: \"not-a-net\" is not a CIDR or IP address",
            "picket.toml:4:8: hook: unknown variant `ebpf`, expected `xdp` or `tc`",
            "picket.toml:5:1: colour: unknown field `colour`",
            "picket.toml:8:19: thresholds.port_scan_ports: invalid type: string \"many\", expected u32",
            "picket.toml:9:20: thresholds.host_sweep_hosts: 1 is below the minimum 2",
            "picket.toml:10:17: thresholds.syn_flood_pps: -3 is not a positive number",
            "picket.toml:11:1: thresholds.port_scan_prots: unknown field `port_scan_prots`",
            "picket.toml:14:8: metrics.addr: \"localhost\" is not ADDR:PORT or PORT",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.starts_with(w), "got {g:?}, want {w:?}…");
        }
    }

    #[test]
    fn syntax_errors_are_located() {
        let got = errors("window = \"10s\"\nhook = \n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("picket.toml:2:"), "{got:?}");
        let got = errors("[thresholds]\nport_scan_ports = 3\n[thresholds]\n");
        assert!(got[0].starts_with("picket.toml:3:"), "{got:?}");
    }

    #[test]
    fn cross_key_checks_point_at_the_key() {
        let got = errors("poll_interval = \"5s\"\nwindow = \"2s\"\n");
        assert_eq!(
            got,
            ["picket.toml:2:10: window: 2s must be at least poll_interval (5s)"]
        );
        // Not reported against a default that replaced a bad value.
        let got = errors("poll_interval = \"20s\"\nwindow = 3\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("window: invalid type"), "{got:?}");
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let file = parse(
            "poll_interval = \"2s\"\nwindow = \"20s\"\nallow = [\"10.0.0.0/8\"]\n\
             interfaces = [\"eth0\"]\negress = true\n[thresholds]\nport_scan_ports = 50\n\
             host_sweep_hosts = 70\n[metrics]\naddr = \"0.0.0.0:9464\"\n",
        )
        .unwrap();
        let args = run_args(&[
            "--window",
            "30s",
            "--port-scan-ports",
            "5",
            "--no-egress",
            "--allow",
            "192.0.2.0/24",
            "--metrics-addr",
            "9000",
        ]);
        let s = file.clone().with_flags(&args);
        assert_eq!(s.poll_interval, Duration::from_secs(2)); // file
        assert_eq!(s.window, Duration::from_secs(30)); // flag
        assert_eq!(s.summary_interval, Duration::from_secs(10)); // default
        assert_eq!(s.thresholds.port_scan_ports, 5);
        assert_eq!(s.thresholds.host_sweep_hosts, 70);
        assert!(!s.egress);
        assert_eq!(s.interfaces, ["eth0"]);
        assert_eq!(s.allow, ["192.0.2.0/24".parse::<IpNet>().unwrap()]);
        assert_eq!(s.metrics.addr, Some("127.0.0.1:9000".parse().unwrap()));
        // No flags: the file as is.
        assert_eq!(file.clone().with_flags(&run_args(&[])), file);
    }

    #[test]
    fn help_shows_the_built_in_defaults() {
        use clap::CommandFactory as _;
        let help = Cli::command().render_long_help().to_string();
        let d = Settings::default();
        let dur = |v: Duration| humantime::format_duration(v).to_string();
        for (flag, want) in [
            ("--hook", "xdp".to_string()),
            ("--xdp-mode", "auto".into()),
            ("--poll-interval", dur(d.poll_interval)),
            ("--window", dur(d.window)),
            ("--summary-interval", dur(d.summary_interval)),
            ("--update-interval", dur(d.update_interval)),
            ("--end-after", dur(d.end_after)),
            ("--output", "auto".into()),
            ("--src-map-entries", d.src_map_entries.to_string()),
            ("--dst-map-entries", d.dst_map_entries.to_string()),
            ("--metrics-top-k", d.metrics.top_k.to_string()),
            (
                "--capture-bytes-per-alert",
                d.capture_bytes_per_alert.to_string(),
            ),
            ("--capture-max-bytes", d.capture_max_bytes.to_string()),
            ("--capture-file-bytes", d.capture_file_bytes.to_string()),
            (
                "--port-scan-ports",
                d.thresholds.port_scan_ports.to_string(),
            ),
            (
                "--host-sweep-hosts",
                d.thresholds.host_sweep_hosts.to_string(),
            ),
            ("--syn-flood-pps", d.thresholds.syn_flood_pps.to_string()),
            (
                "--syn-flood-dst-pps",
                d.thresholds.syn_flood_dst_pps.to_string(),
            ),
            (
                "--syn-flood-dst-sources",
                d.thresholds.syn_flood_dst_sources.to_string(),
            ),
            ("--udp-flood-pps", d.thresholds.udp_flood_pps.to_string()),
            ("--icmp-flood-pps", d.thresholds.icmp_flood_pps.to_string()),
        ] {
            let at = help
                .find(&format!("{flag} "))
                .unwrap_or_else(|| panic!("{flag} missing from help"));
            let section = &help[at..];
            let end = section[2..].find("\n  -").map_or(section.len(), |i| i + 2);
            assert!(
                section[..end].contains(&format!("[default: {want}]")),
                "{flag}: want [default: {want}] in {:?}",
                &section[..end]
            );
        }
    }

    #[test]
    fn reload_description_lists_applied_and_restart_only_changes() {
        let old = Settings::default();
        let mut new = old.clone();
        new.thresholds.port_scan_ports = 20;
        new.window = Duration::from_secs(30);
        assert_eq!(
            old.describe_reload(&new),
            "thresholds.port_scan_ports 30 -> 20 (changes to window take effect after a restart)"
        );
        assert_eq!(
            old.describe_reload(&old),
            "thresholds and allowlist unchanged"
        );
    }
}
