//! `cargo xtask run`: build release and exec `picket` on the default-route interface.

use std::os::unix::process::CommandExt as _;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{bootstrap, util};

/// Options of `cargo xtask run`.
#[derive(clap::Args)]
pub struct Options {
    /// Arguments for `picket` (put them after `--`); `--iface <default-route dev>` is
    /// added unless they contain `--iface`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PICKET_ARGS"
    )]
    args: Vec<String>,
}

/// Entry point of `cargo xtask run`; on success it never returns (the process becomes `picket`).
pub fn main(opts: &Options) -> Result<()> {
    bootstrap::ensure(bootstrap::Needs::Build)?;
    util::build_agent(false)?;

    let mut command = util::cmd(util::picket_bin());
    let has_iface = opts
        .args
        .iter()
        .any(|arg| arg == "--iface" || arg.starts_with("--iface="));
    if !has_iface {
        command.arg("--iface").arg(default_route_dev()?);
    }
    command.args(&opts.args);
    println!("$ {}", util::display(&command));
    // exec so that signals (Ctrl-C, SIGTERM) reach picket directly.
    let error = command.exec();
    Err(error).with_context(|| format!("could not exec {}", util::picket_bin().display()))
}

/// The interface of the first default route, from `ip -j route show default`.
pub fn default_route_dev() -> Result<String> {
    let output = util::cmd("ip")
        .args(["-j", "route", "show", "default"])
        .output()
        .context("could not run `ip` (install iproute2)")?;
    if !output.status.success() {
        bail!(
            "`ip -j route show default` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse_default_dev(&output.stdout)
}

fn parse_default_dev(json: &[u8]) -> Result<String> {
    let routes: Value =
        serde_json::from_slice(json).context("could not parse `ip -j route show default`")?;
    match routes.get(0).and_then(|route| route.get("dev")) {
        Some(Value::String(dev)) => Ok(dev.clone()),
        _ => bail!(
            "no default route found; pass the interface yourself: cargo xtask run -- --iface <dev>"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_default_dev;

    #[test]
    fn first_default_route_dev() {
        let json = br#"[{"dst":"default","gateway":"10.0.0.1","dev":"eth0","flags":[]},
                        {"dst":"default","gateway":"10.0.1.1","dev":"wlan0","flags":[]}]"#;
        assert_eq!(parse_default_dev(json).unwrap(), "eth0");
    }

    #[test]
    fn no_default_route() {
        assert!(parse_default_dev(b"[]").is_err());
        assert!(parse_default_dev(b"[{}]").is_err());
    }
}
