//! Debian's headless Chromium driven through ChromeDriver's WebDriver protocol (plain HTTP with
//! reqwest), with blocking calls like the rest of the e2e suite.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages `chromium` and
//! `chromium-driver`; `.ci/run` installs them). Override with `MUSKETEER_CHROMIUM` and
//! `MUSKETEER_CHROMEDRIVER`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{DEADLINE, free_port};

/// Waits for `check` to give a value, failing with `what` and the last observation after
/// [`DEADLINE`] (what a page showed is the useful part of a failure here).
pub fn wait_until<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let give_up = Instant::now() + DEADLINE;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if Instant::now() >= give_up => {
                panic!("timed out waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A child process killed with its whole process group when dropped, pass or fail: the browsers
/// ChromeDriver starts go with it.
struct Killed(Child);

impl Killed {
    fn spawn(command: &mut Command) -> Killed {
        use std::os::unix::process::CommandExt as _;
        let child = command
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Killed(child)
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn executable(variable: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found: the browser test needs Debian's chromium and chromium-driver \
         (`apt-get install -y --no-install-recommends chromium chromium-driver`, as .ci/run does), \
         or {variable} pointing at it",
        path.display()
    );
    path
}

/// `target/`, where CI keeps the screenshots (`CARGO_TARGET_TMPDIR` is `<target>/tmp`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .expect("CARGO_TARGET_TMPDIR has a parent")
}

/// One WebDriver session in a fresh Chromium profile; the session, ChromeDriver and its browsers
/// end when this drops.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    session: String,
    // Dropped after the session is deleted (fields drop after `Drop::drop`), in this order.
    _driver: Killed,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts ChromeDriver on a free loopback port and opens a headless Chromium session with the
    /// flags that work on a closed network.
    pub fn start() -> Browser {
        let chromium = executable("MUSKETEER_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = executable("MUSKETEER_CHROMEDRIVER", "/usr/bin/chromedriver");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        let port = free_port();
        let driver = Killed::spawn(
            Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let base = format!("http://127.0.0.1:{port}");
        wait_until("ChromeDriver to be ready", || {
            let status: Value = runtime.block_on(async {
                let response = http.get(format!("{base}/status")).send().await;
                response
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())
            })?;
            if status["value"]["ready"] == true {
                Ok(())
            } else {
                Err(status.to_string())
            }
        });
        let profile = tempfile::tempdir().expect("profile dir");
        let args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--disable-crash-reporter",
            "--disable-breakpad",
            "--window-size=1280,900",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect();
        let capabilities = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args}}}});
        let session: Value = runtime
            .block_on(async {
                let response = http
                    .post(format!("{base}/session"))
                    .json(&capabilities)
                    .send()
                    .await?;
                response.json().await
            })
            .expect("ChromeDriver answers a new session");
        let id = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {session}"));
        Browser {
            session: format!("{base}/session/{id}"),
            runtime,
            http,
            _driver: driver,
            _profile: profile,
        }
    }

    /// One WebDriver command on the session; its `value`.
    fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.session);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, answer) = self
            .runtime
            .block_on(async {
                let response = request.send().await?;
                let status = response.status();
                Ok::<_, reqwest::Error>((status, response.json::<Value>().await?))
            })
            .unwrap_or_else(|e| panic!("WebDriver {url}: {e}"));
        assert!(status.is_success(), "WebDriver {url}: {status} {answer}");
        answer["value"].clone()
    }

    pub fn open(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})));
    }

    /// Runs `script` in the page (`arguments[i]` are `args`); what it returns.
    pub fn run(&self, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The text of the first element matching `selector`, or "" if there is none.
    pub fn text(&self, selector: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';";
        self.run(script, json!([selector]))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the text of `selector` contains every one of `needles`; that text.
    pub fn wait_text(&self, what: &str, selector: &str, needles: &[&str]) -> String {
        wait_until(what, || {
            let text = self.text(selector);
            if needles.iter().all(|n| text.contains(n)) {
                Ok(text)
            } else {
                Err(text)
            }
        })
    }

    /// Waits for an element matching `selector` and clicks it (in the page, so that a re-render
    /// between finding and clicking cannot lose the click).
    pub fn click(&self, what: &str, selector: &str) {
        let script = "const e = document.querySelector(arguments[0]); \
                      if (!e) return false; e.click(); return true;";
        wait_until(what, || match self.run(script, json!([selector])) {
            Value::Bool(true) => Ok(()),
            _ => Err(format!("no {selector} in {}", self.text("#view"))),
        });
    }

    /// The page's URL now.
    pub fn url(&self) -> String {
        self.run("return location.href;", json!([]))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn resize(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    /// Saves a PNG of the viewport as `target/<name>`; its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.command(reqwest::Method::GET, "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 screenshot"))
            .expect("base64 screenshot");
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
        let path = target_dir().join(name);
        std::fs::write(&path, bytes).expect("write the screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Best effort: ChromeDriver's process group is killed next anyway.
        let request = self
            .http
            .delete(&self.session)
            .timeout(Duration::from_secs(5));
        let _ = self.runtime.block_on(async { request.send().await });
    }
}
