//! `cargo xtask image`: a static (musl) release `picket` and the `FROM scratch` container
//! image of `deploy/Dockerfile`, built with Docker (dockerd is started if it is not running).

use std::{
    fs,
    path::PathBuf,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    bootstrap,
    util::{self, cargo, cmd, find_program, is_root, target_dir, workspace_root},
};

/// The target of the static binary.
pub const MUSL: &str = "x86_64-unknown-linux-musl";
/// Where a dockerd started by this task logs.
const DOCKERD_LOG: &str = "/var/log/picket-xtask-dockerd.log";
/// How long to wait for a freshly started dockerd.
const DOCKERD_START: Duration = Duration::from_secs(60);

/// Options of `cargo xtask image`.
#[derive(clap::Args)]
pub struct Options {
    /// Image name and tag.
    #[arg(long, default_value = concat!("picket:", env!("CARGO_PKG_VERSION")))]
    tag: String,
}

/// Entry point of `cargo xtask image`.
pub fn main(opts: &Options) -> Result<()> {
    bootstrap::ensure(bootstrap::Needs::Build)?;
    let bin = build_static()?;
    ensure_dockerd()?;
    // The build context holds only the binary, so nothing else is sent to the daemon.
    let context = target_dir().join("image-context");
    fs::create_dir_all(&context).with_context(|| format!("cannot create {}", context.display()))?;
    fs::copy(&bin, context.join("picket"))
        .with_context(|| format!("cannot copy {} into the build context", bin.display()))?;
    let dockerfile = workspace_root().join("deploy/Dockerfile");
    util::run(
        cmd(docker()?)
            .args(["build", "--file"])
            .arg(&dockerfile)
            .args(["--tag", &opts.tag])
            .arg(&context),
    )?;
    println!("ok: image {} (static {})", opts.tag, bin.display());
    Ok(())
}

/// Adds the musl target if missing and builds `picket` for it; returns the binary's path.
pub fn build_static() -> Result<PathBuf> {
    let installed = cmd("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("could not run rustup")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == MUSL)
    {
        println!("ok: rust target {MUSL} present");
    } else {
        println!("installing rust target {MUSL}");
        util::run(cmd("rustup").args(["target", "add", MUSL]))?;
    }
    // The daemon alone: `picket analyze` (charts, PNG, fonts) is left out of the image. ring
    // (rustls) compiles C and assembly, with musl's gcc wrapper for this target.
    util::run(
        cmd(cargo())
            .env("CC_x86_64_unknown_linux_musl", "musl-gcc")
            .args([
                "build",
                "--release",
                "--target",
                MUSL,
                "--package",
                "agent",
                "--no-default-features",
            ]),
    )?;
    let bin = target_dir().join(MUSL).join("release").join("picket");
    if !bin.is_file() {
        bail!("{} was not built", bin.display());
    }
    Ok(bin)
}

fn docker() -> Result<PathBuf> {
    find_program("docker").context("docker not found: `apt-get install docker.io`")
}

fn docker_answers() -> Result<bool> {
    Ok(Command::new(docker()?)
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success()))
}

/// Makes sure a Docker daemon answers; starts the local `dockerd` in the background (left
/// running, logging to [`DOCKERD_LOG`]) when none does and `DOCKER_HOST` is not set.
pub fn ensure_dockerd() -> Result<()> {
    if docker_answers()? {
        println!("ok: docker daemon answers");
        return Ok(());
    }
    if let Some(host) = std::env::var_os("DOCKER_HOST") {
        bail!(
            "the docker daemon at DOCKER_HOST={} does not answer",
            host.to_string_lossy()
        );
    }
    if !is_root() {
        bail!("no docker daemon answers and starting dockerd needs root");
    }
    let dockerd =
        find_program("dockerd").context("dockerd not found: `apt-get install docker.io`")?;
    let log =
        fs::File::create(DOCKERD_LOG).with_context(|| format!("cannot create {DOCKERD_LOG}"))?;
    println!(
        "starting {} in the background (log: {DOCKERD_LOG})",
        dockerd.display()
    );
    let mut command = Command::new(dockerd);
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Its own process group: Ctrl-C on this task does not stop the daemon.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().context("could not start dockerd")?;
    let start = Instant::now();
    while start.elapsed() < DOCKERD_START {
        if let Some(status) = child.try_wait()? {
            bail!("dockerd exited at once ({status}); see {DOCKERD_LOG}");
        }
        if docker_answers()? {
            println!("ok: dockerd started (pid {})", child.id());
            return Ok(());
        }
        thread::sleep(Duration::from_millis(250));
    }
    bail!("dockerd did not answer within {DOCKERD_START:?}; see {DOCKERD_LOG}")
}
