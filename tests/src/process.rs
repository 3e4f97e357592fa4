//! Running commands: to completion ([`output`], [`run_ok`]), or in the background under the
//! guard [`Proc`], which collects the process's output and ends it on drop.

use std::{
    io::Read,
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{Arc, Mutex},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

/// How long picket, and whatever is left in a namespace being deleted, get between SIGTERM
/// and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(3);

/// Runs `cmd` to completion and returns its output; panics if it cannot be started.
pub fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs `cmd`, panics (with its stderr) unless it succeeds, and returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends `sig` to process `pid`.
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: plain syscall on a pid we started.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// Waits up to `timeout` for `child` to exit.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

/// Sends SIGTERM to `child`, waits up to `grace`, then SIGKILLs it; returns its exit status
/// (None if it could not be reaped).
pub fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    signal(child.id(), libc::SIGTERM);
    if let Some(status) = wait_timeout(child, grace) {
        return Some(status);
    }
    let _ = child.kill();
    child.wait().ok()
}

/// Polls `f` every 200 ms until it returns `Some` or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// One output stream of a [`Proc`], copied into memory by a reader thread.
#[derive(Debug)]
struct Captured {
    buf: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl Captured {
    fn new(stream: Option<impl Read + Send + 'static>) -> Captured {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let reader = stream.map(|mut stream| {
            let buf = Arc::clone(&buf);
            thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                while let Ok(n @ 1..) = stream.read(&mut chunk) {
                    buf.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
            })
        });
        Captured { buf, reader }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }

    /// True once the writing end is closed and everything was read.
    fn done(&self) -> bool {
        self.reader.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

/// A background process whose stdout and stderr are collected in memory; ended (SIGTERM,
/// then SIGKILL after [`Proc::GRACE`]) on drop.
#[derive(Debug)]
pub struct Proc {
    what: String,
    child: Child,
    status: Option<ExitStatus>,
    out: Captured,
    err: Captured,
}

/// What a finished [`Proc`] left.
#[derive(Debug)]
pub struct Finished {
    /// Exit status (None if it had to be killed and could not be reaped).
    pub status: Option<ExitStatus>,
    /// True when it was still running at the deadline and had to be ended.
    pub timed_out: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Finished {
    /// True if it exited with status 0 on its own.
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.is_some_and(|s| s.success())
    }
}

impl Proc {
    /// How long [`Proc::stop`] waits between SIGTERM and SIGKILL (dockerd needs seconds to
    /// stop its containerd).
    pub const GRACE: Duration = Duration::from_secs(10);

    /// How long, once the process has exited, its output may take to be read to the end (a
    /// descendant that keeps the pipes open must not hang the test).
    const DRAIN: Duration = Duration::from_secs(2);

    /// Starts `cmd` with no stdin and its output collected; `what` names it in messages.
    pub fn spawn(mut cmd: Command, what: &str) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({cmd:?}): {e}"));
        let out = Captured::new(child.stdout.take());
        let err = Captured::new(child.stderr.take());
        Proc {
            what: what.into(),
            child,
            status: None,
            out,
            err,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it runs, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Everything it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.out.text()
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.err.text()
    }

    /// Its output, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.what,
            self.stdout(),
            self.what,
            self.stderr()
        )
    }

    /// Its exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits (at most [`Proc::DRAIN`]) for the rest of the output of an exited process.
    fn drain(&self) {
        let deadline = Instant::now() + Self::DRAIN;
        while !(self.out.done() && self.err.done()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `pred(stdout, stderr)` holds; panics with the logs if `timeout` passes
    /// or the process exits first.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str, &str) -> bool) {
        let start = Instant::now();
        loop {
            if pred(&self.stdout(), &self.stderr()) {
                return;
            }
            if let Some(status) = self.exited() {
                // One last look: the line may have come with the exit.
                self.drain();
                if pred(&self.stdout(), &self.stderr()) {
                    return;
                }
                panic!(
                    "{} exited ({status}) before {what}\n{}",
                    self.what,
                    self.logs()
                );
            }
            if start.elapsed() > timeout {
                panic!(
                    "no {what} from {} within {timeout:?}\n{}",
                    self.what,
                    self.logs()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for a stderr line starting with `prefix` (as [`Proc::wait_for`]) and returns
    /// the first such line.
    pub fn wait_stderr_line(&mut self, prefix: &str, timeout: Duration) -> String {
        self.wait_for(&format!("a {prefix:?} line"), timeout, |_, err| {
            err.lines().any(|l| l.starts_with(prefix))
        });
        self.stderr()
            .lines()
            .find(|l| l.starts_with(prefix))
            .expect("the line was seen")
            .to_string()
    }

    /// Sends `sig`.
    pub fn signal(&self, sig: libc::c_int) {
        signal(self.pid(), sig);
    }

    /// Waits up to `timeout` for it to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, up to [`Proc::GRACE`], then SIGKILL; returns the exit status (None if it
    /// could not be reaped).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if self.exited().is_none() {
            self.status = terminate(&mut self.child, Self::GRACE);
        }
        self.status
    }

    /// Waits up to `timeout` for it to exit (then ends it with [`Proc::stop`]) and returns
    /// what it left.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let mut status = self.wait_exit(timeout);
        let timed_out = status.is_none();
        if timed_out {
            status = self.stop();
        }
        self.drain();
        Finished {
            status,
            timed_out,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}
