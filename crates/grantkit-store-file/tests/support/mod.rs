//! Multi-process test support: worker processes are this test binary run again, on one
//! test, with the worker's arguments in an environment variable.
//!
//! A multi-process test starts with `if let Some(args) = worker_args() { … }`: in a worker it
//! plays its part and exits; in the parent it runs the test. Workers talk to the parent in
//! lines on stdout prefixed with `@@` (libtest prints its own lines too), and read lines
//! (such as `go`) from stdin.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const WORKER_ENV: &str = "GRANTKIT_FILE_STORE_TEST_WORKER";
const LINE_PREFIX: &str = "@@";
const ARG_SEPARATOR: char = '\u{1f}';

/// The worker's arguments, when this process is a worker.
pub fn worker_args() -> Option<Vec<String>> {
    let value = std::env::var(WORKER_ENV).ok()?;
    Some(value.split(ARG_SEPARATOR).map(str::to_owned).collect())
}

/// Runs a worker's part and ends the process: exit code 0 when `part` returns, libtest's
/// failure code when it panics.
pub fn run_worker(part: impl FnOnce()) -> ! {
    part();
    std::process::exit(0);
}

/// Sends a line to the parent.
pub fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    // Written straight to the file descriptor (libtest's capture only catches `print!`),
    // and flushed, so the parent sees it before anything that follows.
    let _ = writeln!(out, "{LINE_PREFIX}{line}");
    let _ = out.flush();
}

/// Blocks until the parent sends a line, and returns it.
pub fn wait_for_parent() -> String {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .expect("read from the parent");
    line.trim_end().to_owned()
}

/// A private directory for a test's store, under the target directory (a real disk).
pub fn test_dir(name: &str) -> tempfile::TempDir {
    let parent = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("grantkit-store-file-tests");
    std::fs::create_dir_all(&parent).expect("create the test directory");
    tempfile::Builder::new()
        .prefix(&format!("{name}-"))
        .tempdir_in(parent)
        .expect("create a temporary directory")
}

/// The store directory inside a test directory (created by the store itself).
pub fn store_path(dir: &Path) -> PathBuf {
    dir.join("store")
}

/// A worker process, killed when dropped.
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    name: String,
}

impl Worker {
    /// Starts this test binary again on the test `test`, as a worker with `args`.
    pub fn spawn(test: &str, args: &[&str]) -> Self {
        let exe = std::env::current_exe().expect("the test binary");
        let mut joined = String::new();
        for (i, arg) in args.iter().enumerate() {
            assert!(
                !arg.contains(ARG_SEPARATOR),
                "worker argument with a separator"
            );
            if i > 0 {
                joined.push(ARG_SEPARATOR);
            }
            joined.push_str(arg);
        }
        let mut child = Command::new(exe)
            .args(["--exact", test, "--nocapture", "--test-threads=1", "-q"])
            .env(WORKER_ENV, joined)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a worker process");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(message) = line.strip_prefix(LINE_PREFIX)
                    && sender.send(message.to_owned()).is_err()
                {
                    break;
                }
            }
        });
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
            name: format!(
                "{test} worker {}",
                args.first().copied().unwrap_or_default()
            ),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line from the worker; fails the test after `timeout` or when the worker
    /// ends first.
    pub fn next_line(&mut self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                panic!("{}: no line within {timeout:?}", self.name)
            }
            Err(RecvTimeoutError::Disconnected) => panic!(
                "{}: ended before sending a line (status {:?})",
                self.name,
                self.child.try_wait()
            ),
        }
    }

    /// Waits for a line starting with `prefix`, skipping others; returns the rest.
    pub fn expect(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.next_line(left);
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
        }
    }

    /// Every line received so far, without waiting (after the worker ended: all of them).
    pub fn drain(&mut self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Every remaining line until the worker's stdout closes.
    pub fn rest(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => return lines,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{}: output did not end within {timeout:?}", self.name)
                }
            }
        }
    }

    /// Sends a line to the worker.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to the worker");
        stdin.flush().expect("flush to the worker");
    }

    /// Kills the worker (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the worker to exit; kills it and fails after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the worker") {
                return status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!("{}: did not exit within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for a successful exit.
    pub fn succeed(&mut self, timeout: Duration) {
        let status = self.wait(timeout);
        assert!(status.success(), "{}: exited with {status}", self.name);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// Polls `check` every 20 ms until it holds; fails after `limit`.
pub fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "never happened within {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A runtime for a worker or a parent.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
