//! `cargo xtask install`: the release `picket`, its systemd unit (`deploy/picket.service`)
//! and the default configuration, under `--destdir` (default `/`) and `--prefix` (default
//! `/usr/local`). An existing configuration file is kept.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    bootstrap,
    util::{self, workspace_root},
};

/// Where the unit file in `deploy/` expects the binary.
const UNIT_BINARY: &str = "/usr/local/bin/picket";
/// The unit file's installed path (below `--destdir`).
const UNIT_PATH: &str = "etc/systemd/system/picket.service";
/// The configuration file's installed path (below `--destdir`).
const CONFIG_PATH: &str = "etc/picket/picket.toml";

/// Options of `cargo xtask install`.
#[derive(clap::Args)]
pub struct Options {
    /// Installation prefix of the binary (`<prefix>/bin/picket`).
    #[arg(long, default_value = "/usr/local")]
    prefix: PathBuf,
    /// Staging root prepended to every installed path (packaging, tests).
    #[arg(long, default_value = "/")]
    destdir: PathBuf,
    /// Install this binary instead of building the release one.
    #[arg(long, value_name = "FILE")]
    binary: Option<PathBuf>,
}

/// Entry point of `cargo xtask install`.
pub fn main(opts: &Options) -> Result<()> {
    let binary = match &opts.binary {
        Some(b) => b.clone(),
        None => {
            bootstrap::ensure(bootstrap::Needs::Build)?;
            util::build_agent(false)?;
            util::picket_bin()
        }
    };
    let unit = fs::read_to_string(workspace_root().join("deploy/picket.service"))
        .context("cannot read deploy/picket.service")?;
    let installed = install(&binary, &unit, &opts.prefix, &opts.destdir)?;
    for line in &installed {
        println!("{line}");
    }
    if opts.destdir == Path::new("/") {
        println!("next: systemctl daemon-reload && systemctl enable --now picket");
    }
    Ok(())
}

/// `root` joined with the absolute `path`.
fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

/// Installs `binary`, the unit text `unit` (its ExecStart pointed at the installed binary)
/// and, unless one exists, the default configuration printed by `binary config default`.
/// Returns one line per file.
pub fn install(binary: &Path, unit: &str, prefix: &Path, destdir: &Path) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let bin_path = prefix.join("bin").join("picket");
    let bin_target = under(destdir, &bin_path);
    let bytes = fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    write_file(&bin_target, &bytes, 0o755)?;
    done.push(format!("installed {}", bin_target.display()));

    if !unit.contains(UNIT_BINARY) {
        bail!("deploy/picket.service does not start {UNIT_BINARY}");
    }
    let unit = unit.replace(UNIT_BINARY, &bin_path.to_string_lossy());
    let unit_target = under(destdir, Path::new(UNIT_PATH));
    write_file(&unit_target, unit.as_bytes(), 0o644)?;
    done.push(format!("installed {}", unit_target.display()));

    let config_target = under(destdir, Path::new(CONFIG_PATH));
    if config_target.exists() {
        done.push(format!("kept existing {}", config_target.display()));
    } else {
        let out = Command::new(binary)
            .args(["config", "default"])
            .output()
            .with_context(|| format!("cannot run {} config default", binary.display()))?;
        if !out.status.success() {
            bail!(
                "`{} config default` failed: {}",
                binary.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        write_file(&config_target, &out.stdout, 0o644)?;
        done.push(format!("installed {}", config_target.display()));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_binary_unit_and_config_under_destdir_and_keeps_a_config() {
        let root = std::env::temp_dir().join(format!("xtask-install-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let fake = root.join("fake-picket");
        fs::write(&fake, "#!/bin/sh\necho 'poll_interval = \"1s\"'\n").unwrap();
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
        let unit = fs::read_to_string(workspace_root().join("deploy/picket.service")).unwrap();
        let dest = root.join("dest");

        let lines = install(&fake, &unit, Path::new("/opt/picket"), &dest).unwrap();
        assert_eq!(lines.len(), 3, "{lines:?}");
        let bin = dest.join("opt/picket/bin/picket");
        assert_eq!(
            fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let installed_unit = fs::read_to_string(dest.join(UNIT_PATH)).unwrap();
        assert!(installed_unit.contains("ExecStart=/opt/picket/bin/picket "));
        assert!(!installed_unit.contains(UNIT_BINARY));
        let config = dest.join(CONFIG_PATH);
        assert_eq!(
            fs::read_to_string(&config).unwrap(),
            "poll_interval = \"1s\"\n"
        );

        // A second install keeps the (possibly edited) configuration.
        fs::write(&config, "window = \"20s\"\n").unwrap();
        let lines = install(&fake, &unit, Path::new("/opt/picket"), &dest).unwrap();
        assert!(lines[2].starts_with("kept existing"), "{lines:?}");
        assert_eq!(fs::read_to_string(&config).unwrap(), "window = \"20s\"\n");
        fs::remove_dir_all(&root).unwrap();
    }
}
