//! What the command-line tests share: a private configuration per test, the `grantkit`
//! process, and a real headless Chromium driven through chromedriver.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

/// A user's machine: a private configuration and data directory.
pub struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config/grantkit/config.toml")
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The temporary directory of every `grantkit` process (created on first use).
    pub fn tmp(&self) -> PathBuf {
        let dir = self.dir.path().join("tmp");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Where the default store keeps tokens.
    pub fn store(&self) -> PathBuf {
        self.data().join("grantkit/tokens")
    }

    /// `grantkit ARGS` as this user, without a terminal and without colour settings.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_grantkit"));
        command
            .args(args)
            .env("GRANTKIT_CONFIG", self.config())
            .env("XDG_DATA_HOME", self.data())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("TMPDIR", self.tmp())
            .env_remove("NO_COLOR")
            .env_remove("GRANTKIT_LOG")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs `grantkit ARGS` to its end.
    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[], None).await
    }

    /// Runs `grantkit ARGS` with environment variables and standard input.
    pub async fn run_with(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> Output {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(text) = stdin {
            use tokio::io::AsyncWriteExt as _;
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(text.as_bytes()).await.unwrap();
        }
        tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("grantkit ends in time")
            .unwrap()
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running `grantkit` whose standard error is read line by line (where it tells the
/// user what to open).
pub struct Running {
    pub child: Child,
    pub stderr: Lines<BufReader<ChildStderr>>,
    pub seen: Vec<String>,
}

impl Running {
    pub fn start(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        Self {
            child,
            stderr,
            seen: Vec::new(),
        }
    }

    /// Reads standard error until a line satisfies `pick`; returns what it picked.
    pub async fn until<T>(&mut self, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), self.stderr.next_line())
                .await
                .expect("grantkit says something in time")
                .unwrap()
                .unwrap_or_else(|| panic!("grantkit ended without it; it said {:?}", self.seen));
            if let Some(found) = pick(&line) {
                self.seen.push(line);
                return found;
            }
            self.seen.push(line);
        }
    }

    /// Waits for the end; the returned output's standard error holds every line,
    /// including those `until` already read.
    pub async fn finish(mut self) -> Output {
        let mut rest = Vec::new();
        let drain = async {
            while let Ok(Some(line)) = self.stderr.next_line().await {
                rest.push(line);
            }
        };
        tokio::time::timeout(Duration::from_secs(120), drain)
            .await
            .expect("grantkit closes its standard error in time");
        let mut output =
            tokio::time::timeout(Duration::from_secs(120), self.child.wait_with_output())
                .await
                .expect("grantkit ends in time")
                .unwrap();
        self.seen.extend(rest);
        output.stderr = self.seen.join("\n").into_bytes();
        output
    }
}

/// The first `http…` URL in a line.
pub fn url_in(line: &str) -> Option<String> {
    let start = line.find("http")?;
    Some(line[start..].split_whitespace().next()?.to_owned())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real headless Chromium, driven through chromedriver (Debian's `chromium` and
/// `chromium-driver`).
pub struct Browser {
    pub client: fantoccini::Client,
    _driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Self {
        let driver_path = which("chromedriver")
            .expect("chromedriver is installed (Debian: apt-get install chromium chromium-driver)");
        let port = free_port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": which("chromium").expect("chromium is installed"),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let client = loop {
            match fantoccini::ClientBuilder::rustls()
                .expect("rustls")
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(err) if tokio::time::Instant::now() < deadline => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("chromedriver did not start: {err}"),
            }
        };
        Self {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// The page's text once `selector` is on it.
    pub async fn wait_for(&self, selector: &str) -> String {
        self.element(selector).await.text().await.unwrap()
    }

    /// The page's text once it contains `needle`: the page a click leads to, not the
    /// one still showing.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            // The element may go stale as the page changes under it: look again.
            if let Ok(body) = self.client.find(fantoccini::Locator::Css("body")).await
                && let Ok(text) = body.text().await
            {
                if text.contains(needle) {
                    return text;
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the page never said {needle:?}; it said {last:?}")
    }

    /// Clicks `selector` once it is on the page.
    pub async fn click(&self, selector: &str) {
        self.element(selector).await.click().await.unwrap();
    }

    /// Types `text` into the field `selector` once it is on the page.
    pub async fn type_into(&self, selector: &str, text: &str) {
        self.element(selector).await.send_keys(text).await.unwrap();
    }

    async fn element(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(fantoccini::Locator::Css(selector))
            .await
            .unwrap_or_else(|err| panic!("no `{selector}` on the page: {err}"))
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
}
