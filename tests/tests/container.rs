//! The container image and the deployment's privileges (root).
//!
//! `cargo xtask image` builds the static binary and the `FROM scratch` image into a Docker
//! daemon this test starts (private state under /var/lib and /run, no bridge, no iptables
//! changes; stopped and removed at the end). Debian 12's Docker 20.10 cannot grant CAP_BPF
//! or CAP_PERFMON (moby#42012, fixed in Docker 23), so the image then runs on that daemon's
//! containerd and runc through `ctr` — the runtime stack of a Kubernetes node — with
//! exactly the DaemonSet's security context: every capability dropped but the ones its
//! manifest adds, read-only root filesystem, the runtime's default seccomp profile, the
//! DaemonSet's arguments and ConfigMap, NODE_NAME set, in a network namespace this test
//! made (the pod's "host network"). It attaches, serves /healthz and /readyz, and alerts on
//! a scan; without any one of the capabilities it exits naming the missing one.
//!
//! Also the systemd unit's model: a non-root user holding only the unit's
//! AmbientCapabilities runs picket with its locks in $RUNTIME_DIRECTORY.

use std::{path::Path, process::Command, time::Duration};

use tests::{
    Lab, Proc, alert_lines, http_get, output, picket_bin, require_root, require_tools, run_ok,
    temp_dir, wait_until, workspace_root,
};

const DOCKER_ROOT: &str = "/var/lib/picket-test-docker";
const DOCKER_EXEC: &str = "/run/picket-test-docker";
const DOCKER_SOCK: &str = "/run/picket-test-docker.sock";
const DOCKER_PID: &str = "/run/picket-test-docker.pid";
const TAG: &str = "picket:e2e-test";
const CONTAINERD_NS: &str = "picket-test";
/// Every Linux capability (0 to 40).
const ALL_CAPS: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

fn cap_bit(name: &str) -> u64 {
    let i = ALL_CAPS
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .unwrap_or_else(|| panic!("unknown capability {name}"));
    1 << i
}

/// Unmounts whatever is still mounted below `root` (left by an aborted run).
fn unmount_below(root: &str) {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(root))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = output(Command::new("umount").args(["-l", p]));
    }
}

fn remove_docker_state() {
    for root in [DOCKER_ROOT, DOCKER_EXEC] {
        unmount_below(root);
        let _ = std::fs::remove_dir_all(root);
    }
    let _ = std::fs::remove_file(DOCKER_SOCK);
    let _ = std::fs::remove_file(DOCKER_PID);
}

/// A Docker daemon of this test's own, stopped and removed on drop.
struct Dockerd {
    proc: Proc,
}

impl Dockerd {
    fn start() -> Dockerd {
        // A daemon left by an aborted run of this test holds the pid file.
        if let Ok(pid) = std::fs::read_to_string(DOCKER_PID)
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            // SAFETY: plain syscall; the pid file is this test's own.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            std::thread::sleep(Duration::from_secs(3));
        }
        remove_docker_state();
        let mut cmd = Command::new("dockerd");
        cmd.args(["--data-root", DOCKER_ROOT, "--exec-root", DOCKER_EXEC])
            .args([
                "--pidfile",
                DOCKER_PID,
                "--host",
                &format!("unix://{DOCKER_SOCK}"),
            ])
            .args(["--bridge", "none", "--iptables=false", "--ip6tables=false"])
            .args(["--ip-forward=false", "--ip-masq=false"]);
        let mut d = Dockerd {
            proc: Proc::spawn(cmd, "dockerd"),
        };
        let up = wait_until(Duration::from_secs(60), || {
            if d.proc.exited().is_some() {
                return Some(false);
            }
            output(d.docker().arg("info"))
                .status
                .success()
                .then_some(true)
        });
        assert_eq!(up, Some(true), "dockerd did not start\n{}", d.proc.logs());
        d
    }

    fn docker(&self) -> Command {
        let mut c = Command::new("docker");
        c.args(["--host", &format!("unix://{DOCKER_SOCK}")]);
        c
    }

    /// `ctr` on the daemon's containerd, in this test's containerd namespace.
    fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.args([
            "--address",
            &format!("{DOCKER_EXEC}/containerd/containerd.sock"),
            "--namespace",
            CONTAINERD_NS,
        ]);
        c
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.proc.stop();
        remove_docker_state();
    }
}

/// A containerd task, killed and removed on drop.
struct Task<'a> {
    dockerd: &'a Dockerd,
    name: String,
    proc: Proc,
}

impl Drop for Task<'_> {
    fn drop(&mut self) {
        let _ = output(
            self.dockerd
                .ctr()
                .args(["tasks", "kill", "--signal", "SIGKILL", &self.name]),
        );
        self.proc.stop();
        let _ = output(self.dockerd.ctr().args(["tasks", "rm", "-f", &self.name]));
        let _ = output(self.dockerd.ctr().args(["containers", "rm", &self.name]));
    }
}

/// What the DaemonSet's container gets.
struct PodSpec {
    add: Vec<String>,
    args: Vec<String>,
    config: String,
}

fn pod_spec() -> PodSpec {
    let k8s = workspace_root().join("deploy/kubernetes");
    let ds = std::fs::read_to_string(k8s.join("daemonset.yaml")).unwrap();
    let list = |key: &str| -> Vec<String> {
        let line = ds
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no `{key}` in daemonset.yaml"));
        line.trim_matches(|c| c == '[' || c == ']' || c == ' ')
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .collect()
    };
    assert_eq!(list("drop:"), ["ALL"]);
    for needed in [
        "privileged: false",
        "allowPrivilegeEscalation: false",
        "readOnlyRootFilesystem: true",
        "type: RuntimeDefault",
        "mountPath: /run/picket",
        "mountPath: /etc/picket",
        "fieldPath: spec.nodeName",
        "hostNetwork: true",
    ] {
        assert!(ds.contains(needed), "daemonset.yaml lacks {needed:?}");
    }
    let (_, after) = ds.split_once("args:\n").expect("args in daemonset.yaml");
    let args = after
        .lines()
        .map_while(|l| l.trim().strip_prefix("- "))
        .map(str::to_string)
        .collect();
    let cm = std::fs::read_to_string(k8s.join("configmap.yaml")).unwrap();
    PodSpec {
        add: list("add:"),
        args,
        config: configmap_toml(&cm),
    }
}

/// The `picket.toml` of the ConfigMap (the block scalar, dedented).
fn configmap_toml(cm: &str) -> String {
    let (_, block) = cm
        .split_once("picket.toml: |\n")
        .expect("picket.toml in configmap");
    block
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Effective, permitted and bounding capability masks of a process.
fn caps_of(pid: u32) -> [u64; 3] {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(u64::MAX)
    };
    [get("CapEff:"), get("CapPrm:"), get("CapBnd:")]
}

fn run_pod<'a>(
    dockerd: &'a Dockerd,
    lab: &Lab,
    dir: &Path,
    name: &str,
    caps: &[String],
    spec: &PodSpec,
) -> Task<'a> {
    let run_dir = dir.join(format!("{name}-run"));
    std::fs::create_dir_all(&run_dir).unwrap();
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, &spec.config).unwrap();
    let mut cmd = dockerd.ctr();
    cmd.args(["run", "--rm", "--seccomp", "--read-only"])
        .arg("--with-ns")
        .arg(format!("network:{}", lab.victim.path().display()))
        .args(["--env", "NODE_NAME=test-node"])
        .arg("--mount")
        .arg(format!(
            "type=bind,src={},dst=/run/picket,options=rbind:rw",
            run_dir.display()
        ))
        .arg("--mount")
        .arg(format!(
            "type=bind,src={},dst=/etc/picket/picket.toml,options=rbind:ro",
            config.display()
        ));
    // `drop: [ALL]` then `add`: ctr applies its drops after its adds, so drop the rest.
    for c in ALL_CAPS.iter().filter(|c| !caps.iter().any(|k| k == *c)) {
        cmd.args(["--cap-drop", &format!("CAP_{c}")]);
    }
    for c in caps {
        cmd.args(["--cap-add", &format!("CAP_{c}")]);
    }
    cmd.arg(format!("docker.io/library/{TAG}"))
        .arg(name)
        .arg("/usr/bin/picket")
        .args(&spec.args);
    Task {
        dockerd,
        name: name.into(),
        proc: Proc::spawn(cmd, name),
    }
}

#[test]
fn image_runs_with_exactly_the_daemonsets_capabilities() {
    require_root();
    require_tools(&["dockerd", "docker", "ctr", "nmap"]);
    let spec = pod_spec();
    assert_eq!(spec.add, ["BPF", "NET_ADMIN", "PERFMON"]);
    let dir = temp_dir("container");
    let lab = Lab::new();
    // The pod's host network: picket watches the default-route interface, as in a node.
    lab.victim.ip(&[
        "route",
        "add",
        "default",
        "via",
        &lab.veth.attacker_v4.to_string(),
    ]);
    let dockerd = Dockerd::start();

    // The image, as `cargo xtask image` builds it, into this test's daemon.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run_ok(
        Command::new(cargo)
            .current_dir(workspace_root())
            .env("DOCKER_HOST", format!("unix://{DOCKER_SOCK}"))
            .args(["xtask", "image", "--tag", TAG]),
    );
    let layers = run_ok(dockerd.docker().args([
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}} {{.Size}} {{json .Config.Entrypoint}}",
        TAG,
    ]));
    let mut parts = layers.split_whitespace();
    assert_eq!(parts.next(), Some("1"), "FROM scratch + one COPY: {layers}");
    let size: u64 = parts.next().unwrap().parse().unwrap();
    assert!(size < 30_000_000, "image of {size} bytes");
    assert_eq!(parts.next(), Some(r#"["/usr/bin/picket"]"#));
    // Into containerd, which runs it (as the kubelet's runtime would).
    let mut save = dockerd.docker();
    let archive = dir.path().join("image.tar");
    run_ok(save.args(["save", "--output"]).arg(&archive).arg(TAG));
    run_ok(dockerd.ctr().args(["images", "import"]).arg(&archive));

    // Exactly the DaemonSet's capabilities: attaches, reports, alerts.
    let mut pod = run_pod(&dockerd, &lab, dir.path(), "pod", &spec.add, &spec);
    pod.proc
        .wait_for("the watching line", Duration::from_secs(30), |_, err| {
            err.contains("picket: watching")
        });
    let pid = wait_until(Duration::from_secs(5), || {
        let tasks = run_ok(dockerd.ctr().args(["tasks", "ls"]));
        tasks.lines().find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some("pod")).then(|| f.next()?.parse::<u32>().ok())?
        })
    })
    .expect("the pod's task pid");
    let want: u64 = spec.add.iter().map(|c| cap_bit(c)).sum();
    assert_eq!(caps_of(pid), [want; 3], "effective, permitted, bounding");
    let err = pod.proc.stderr();
    // The default hook on a veth is TC, said with its reason.
    assert!(
        err.contains(&format!(
            "picket: hook tc on {}: veth driver: veth: XDP costs",
            lab.veth.victim_if
        )) && err.contains(&format!(
            "picket: attached tc ingress to {}",
            lab.veth.victim_if
        )),
        "{err}"
    );
    let metrics = "http://127.0.0.1:9464";
    let health = http_get(&lab.victim, &format!("{metrics}/healthz"), &[], &[]).expect("/healthz");
    assert_eq!(health.status, 200);
    let ready = wait_until(Duration::from_secs(10), || {
        http_get(&lab.victim, &format!("{metrics}/readyz"), &[], &[])
            .ok()
            .filter(|r| r.status == 200)
    });
    assert!(ready.is_some(), "/readyz\n{}", pod.proc.logs());

    lab.scan("1-100");
    pod.proc
        .wait_for("a port_scan alert", Duration::from_secs(15), |out, _| {
            !alert_lines(out, "port_scan").is_empty()
        });
    let alert = alert_lines(&pod.proc.stdout(), "port_scan").remove(0);
    assert_eq!(alert["source"]["ip"], lab.veth.attacker_v4.to_string());
    assert_eq!(alert["observer"]["name"], "test-node");
    assert_eq!(alert["host"]["name"], "test-node");
    run_ok(
        dockerd
            .ctr()
            .args(["tasks", "kill", "--signal", "SIGTERM", "pod"]),
    );
    let status = pod.proc.wait_exit(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        pod.proc.logs()
    );
    drop(pod);

    // Any one capability fewer: a clear refusal naming it.
    for missing in &spec.add {
        let caps: Vec<String> = spec.add.iter().filter(|c| c != &missing).cloned().collect();
        let name = format!("no-{}", missing.to_lowercase().replace('_', "-"));
        let mut task = run_pod(&dockerd, &lab, dir.path(), &name, &caps, &spec);
        let status = task.proc.wait_exit(Duration::from_secs(30));
        assert!(
            status.is_some_and(|s| !s.success()),
            "{status:?}\n{}",
            task.proc.logs()
        );
        let err = task.proc.stderr();
        let named = err
            .split_once("picket: error: missing capabilities: ")
            .and_then(|(_, rest)| rest.split_once(" ("))
            .map(|(list, _)| list);
        assert_eq!(named, Some(format!("CAP_{missing}").as_str()), "{err}");
    }
}

/// The capabilities of `AmbientCapabilities=` in deploy/picket.service.
fn unit_capabilities() -> Vec<String> {
    let unit = std::fs::read_to_string(workspace_root().join("deploy/picket.service")).unwrap();
    let ambient = unit
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .expect("AmbientCapabilities in the unit");
    let bounding = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("CapabilityBoundingSet in the unit");
    assert_eq!(ambient, bounding);
    assert!(unit.contains("\nDynamicUser=yes\n") && unit.contains("\nRuntimeDirectory=picket\n"));
    ambient
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_string())
        .collect()
}

#[test]
fn non_root_with_the_units_ambient_capabilities_detects() {
    require_root();
    require_tools(&["setpriv", "nmap"]);
    let caps = unit_capabilities();
    assert_eq!(caps, ["BPF", "NET_ADMIN", "PERFMON"]);
    let dir = temp_dir("unit");
    let lab = Lab::new();
    // The unit's RuntimeDirectory=, owned by the (dynamic) user.
    let runtime = dir.path().join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    run_ok(Command::new("chown").arg("65534:65534").arg(&runtime));
    // The tests' binary may sit below a directory `nobody` cannot enter: use a copy.
    let bin = dir.path().join("picket");
    std::fs::copy(picket_bin(), &bin).unwrap();
    run_ok(Command::new("chmod").arg("0755").arg(dir.path()));
    let set = |caps: &[String]| {
        caps.iter()
            .map(|c| format!("+{}", c.to_lowercase()))
            .collect::<Vec<_>>()
            .join(",")
    };
    let spawn = |caps: &[String], what: &str| {
        let mut cmd = lab.victim.exec("setpriv");
        cmd.env("RUNTIME_DIRECTORY", &runtime)
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--no-new-privs",
            ])
            .arg(format!("--inh-caps=-all{}", prefixed(&set(caps))))
            .arg(format!("--ambient-caps=-all{}", prefixed(&set(caps))))
            .arg(format!("--bounding-set=-all{}", prefixed(&set(caps))))
            .arg(&bin)
            .args(["--iface", &lab.veth.victim_if, "--output", "json"])
            .args(["--summary-interval", "0s"]);
        Proc::spawn(cmd, what)
    };

    let mut picket = spawn(&caps, "picket-unit");
    picket.wait_for("the watching line", Duration::from_secs(20), |_, err| {
        err.contains("picket: watching")
    });
    let want: u64 = caps.iter().map(|c| cap_bit(c)).sum();
    assert_eq!(caps_of(picket.pid()), [want; 3]);
    let uid = std::fs::read_to_string(format!("/proc/{}/status", picket.pid()))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|u| u.split_whitespace().next().unwrap().to_string())
        })
        .unwrap();
    assert_eq!(uid, "65534");
    let suffix = format!("-{}.lock", lab.veth.victim_if);
    assert!(
        std::fs::read_dir(&runtime).is_ok_and(|d| d
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(&suffix))),
        "expected picket's interface lock in {}",
        runtime.display()
    );
    lab.scan("1-100");
    picket.wait_for("a port_scan alert", Duration::from_secs(15), |out, _| {
        !alert_lines(out, "port_scan").is_empty()
    });
    let status = picket.stop().unwrap();
    assert!(status.success(), "{status}\n{}", picket.logs());

    // Without ambient capabilities, the same user is refused with the full list.
    let mut bare = spawn(&[], "picket-bare");
    let status = bare.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(!status.success());
    assert!(
        bare.stderr()
            .contains("missing capabilities: CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN"),
        "{}",
        bare.logs()
    );
}

fn prefixed(list: &str) -> String {
    if list.is_empty() {
        String::new()
    } else {
        format!(",{list}")
    }
}
