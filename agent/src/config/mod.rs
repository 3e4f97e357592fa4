//! Settings: built-in defaults, overridden by a TOML file (`--config FILE`), overridden by
//! command-line flags. `picket config default` prints the documented defaults and
//! `picket config check FILE` reports every error of a file as `file:line:col: key: reason`.
//!
//! Every setting is declared once, in [`settings`]; the rest is made from that table:
//! - [`declare`], the macro that expands it, and the metadata types ([`Key`]).
//! - [`value`], per value type, how a flag, a file value, TOML and the help read it.
//! - [`check`], the declared checks ([`Check`]) and the cross-key ones ([`Problem`]).
//! - [`file`], reading a file, every error with its place ([`ConfigFile`]).
//! - [`default_toml`], `picket config default`.
//! - [`reload`], SIGHUP.
//!
//! Every key of the file is optional. Keys are the long flag names with `_` for `-`
//! (`--poll-interval` is `poll_interval`), except `interfaces` (`--iface`), `egress`
//! (`--no-egress` sets it to false) and the `[metrics]` table (`--metrics-addr`,
//! `--metrics-top-k`); thresholds live in `[thresholds]`. `--duration` and `--config` are
//! flags only. A list given with flags (`--iface`, `--allow`) replaces the file's list.
//! This module knows nothing of the command-line parser: `crate::cli` builds its flags from
//! [`KEYS`] and hands over a [`Flags`].

pub mod check;
pub mod declare;
pub mod default_toml;
pub mod file;
pub mod reload;
pub mod settings;
pub mod value;

use std::path::Path;

use anyhow::{Result, anyhow, bail};

pub use check::{Check, Problem};
pub use declare::{How, Key, Section};
pub use default_toml::default_toml;
pub use file::{ConfigFile, FileError, FileErrors};
pub use reload::reload;
pub use settings::{
    AlertmanagerSettings, BlockSettings, Flags, KEYS, MetricsSettings, Settings, flag_of,
};

impl Settings {
    /// Defaults, overridden by the file `config` (if any), overridden by `flags`.
    pub fn load(config: Option<&Path>, flags: &Flags) -> Result<Settings> {
        let base = match config {
            Some(path) => ConfigFile::read(path)?.settings()?,
            None => Settings::default(),
        };
        let merged = base.with_flags(flags);
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
}

/// `picket config default`.
pub fn print_default() -> Result<()> {
    print!("{}", default_toml());
    Ok(())
}

/// `picket config check FILE`: `FILE: ok`, or every error on standard error and a failure.
pub fn check_file(file: &Path) -> Result<()> {
    match ConfigFile::read(file)?.settings() {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use picket_detect::detector::{Rule, Thresholds};

    use super::{reload::table_of, *};
    use crate::{
        loader::{Hook, XdpModeArg},
        output::Format,
    };

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
            afpacket_ring_bytes: 4 << 20,
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
            ignore_scanners: vec!["10.0.0.5/32:9100".parse().unwrap()],
            ignore_scanned: vec![
                "192.0.2.0/24".parse().unwrap(),
                "[2001:db8::/32]:53".parse().unwrap(),
            ],
            output: Format::Json,
            src_map_entries: 1024,
            src_slots: 2048,
            dst_slots: 256,
            conv_slots: 4096,
            thresholds: Thresholds {
                port_scan_ports: 3,
                host_sweep_hosts: 4,
                scan_failure_ratio: 0.25,
                syn_flood_pps: 5.5,
                syn_flood_dst_pps: 6.0,
                syn_flood_dst_bps: 6.5,
                syn_flood_dst_ack_ratio: 0.7,
                udp_flood_pps: 8.0,
                udp_flood_dst_pps: 10.0,
                udp_flood_dst_bps: 11.0,
                icmp_flood_pps: 9.0,
                icmp_flood_dst_pps: 12.0,
                icmp_flood_dst_bps: 12.5,
                tcp_flood_pps: 13.0,
                tcp_flood_bps: 13.5,
                frag_flood_pps: 14.0,
                frag_flood_bps: 14.5,
                proto_flood_pps: 15.0,
                proto_flood_bps: 15.5,
                reflection_pps: 16.0,
                reflection_bps: 17.0,
            },
            capture_dir: Some("/tmp/evidence".into()),
            capture_bytes_per_alert: 1000,
            capture_max_bytes: 1_000_000,
            capture_file_bytes: 100_000,
            metrics: MetricsSettings {
                addr: Some("[::1]:9000".parse().unwrap()),
                top_k: 10,
                web_config: Some("/etc/picket/web.yml".into()),
            },
            block: BlockSettings {
                enabled: true,
                rules: vec![Rule::UdpFlood],
                ttl: Duration::from_secs(30),
                dry_run: true,
                max_sources: 10,
            },
            alertmanager: AlertmanagerSettings {
                urls: vec!["http://127.0.0.1:9093".into(), "https://am:9093/".into()],
                timeout: Duration::from_secs(3),
                resend_interval: Duration::from_secs(30),
                basic_auth_user: Some("picket".into()),
                password_file: Some("/etc/pw".into()),
                bearer_token_file: Some("/etc/token".into()),
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
            "picket.toml:4:8: hook: unknown variant `ebpf`, expected one of `auto`, `xdp`, `tc`, `afpacket`",
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
