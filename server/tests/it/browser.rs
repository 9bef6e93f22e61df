//! The dashboard in a real browser: the `musketeer-server` binary on a loopback port, two hosts of
//! different architectures and a batch driven to completion through the HTTP API, and Debian's
//! headless Chromium, driven through ChromeDriver's WebDriver protocol, reading the pages. Saves
//! screenshots under `target/` (`dashboard-screenshot.png` and friends) for CI to keep.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages `chromium` and
//! `chromium-driver`; `.ci/run` installs them). Override with `MUSKETEER_CHROMIUM` and
//! `MUSKETEER_CHROMEDRIVER`.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use musketeer_protocol::{Backend, HostPlatform};
use serde_json::{Value, json};

use crate::cli::init;
use crate::support::{base64_encode, publish_body};

/// How long any one condition may take to become true.
const DEADLINE: Duration = Duration::from_secs(30);
/// Pause between checks of a condition.
const POLL: Duration = Duration::from_millis(100);

/// A child process killed (with its whole process group) when the test ends, pass or fail.
struct Killed {
    child: Child,
}

impl Killed {
    fn spawn(command: &mut Command) -> Killed {
        use std::os::unix::process::CommandExt as _;
        // Its own process group, so that the browsers ChromeDriver starts go with it.
        let child = command
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Killed { child }
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// Wait for `check` to give a value, failing with `what` and the last observation at the deadline.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let give_up = Instant::now() + DEADLINE;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= give_up => {
                panic!("timed out waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target>/tmp`.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap()
}

/// A WebDriver session.
struct Browser {
    http: reqwest::Client,
    session: String,
}

impl Browser {
    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.session);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert!(status.is_success(), "WebDriver {url}: {status} {answer}");
        answer["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn run(&self, script: &str, args: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The text of the first element matching `selector`, or "" if there is none.
    async fn text(&self, selector: &str) -> String {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';";
        self.run(script, json!([selector]))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn size(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG screenshot");
        let path = target_dir().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

fn platform(arch: &str, backend: Backend) -> HostPlatform {
    HostPlatform {
        arch: arch.into(),
        os: "linux".into(),
        client_version: "0.1.0".into(),
        wasmtime_version: "48.0.8".into(),
        backend,
        slots: 4,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_in_headless_chromium() {
    let chromium = executable("MUSKETEER_CHROMIUM", "/usr/bin/chromium");
    let chromedriver = executable("MUSKETEER_CHROMEDRIVER", "/usr/bin/chromedriver");

    // The real server binary, dashboard views public, on a free loopback port.
    let (dir, data, admin) = init();
    let mut server = Killed::spawn(
        Command::new(env!("CARGO_BIN_EXE_musketeer-server"))
            .args([
                "serve",
                "--public-dashboard",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let stdout = server.child.stdout.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let base = line_rx
        .recv_timeout(DEADLINE)
        .expect("the server prints its address")
        .rsplit_once(' ')
        .map(|(_, url)| url.to_owned())
        .unwrap();
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{base}{p}");

    // ChromeDriver on a free port, started with the flags that work on a closed network.
    let port = free_port();
    let _driver = Killed::spawn(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let driver = format!("http://127.0.0.1:{port}");
    wait_for("ChromeDriver to be ready", || {
        let http = http.clone();
        let driver = driver.clone();
        async move {
            let status: Value = http
                .get(format!("{driver}/status"))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            if status["value"]["ready"] == true {
                Ok(())
            } else {
                Err(status.to_string())
            }
        }
    })
    .await;
    let profile = tempfile::tempdir().unwrap();
    let args = [
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
    .collect::<Vec<_>>();
    let session: Value = http
        .post(format!("{driver}/session"))
        .json(
            &json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args}}}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = session["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no WebDriver session: {session}"));
    let browser = Browser {
        http: http.clone(),
        session: format!("{driver}/session/{id}"),
    };

    // Before any host joins: the hosts page says so.
    browser.open(&url("/#/hosts")).await;
    wait_for("the hosts page's empty state", || async {
        let text = browser.text("#view").await;
        if text.contains("No hosts yet") {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;

    // Populate through the API: an app, two hosts of different architectures, a quorum-2 batch
    // that both hosts compute in agreement.
    let key =
        musketeer_signing_keys::read_secret_key(&dir.path().join("keys/musketeer.key")).unwrap();
    let published = http
        .post(url("/api/v1/apps"))
        .bearer_auth(&admin)
        .json(&publish_body(&key, "stock-day", "1.2.0", b"\0asm module"))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 201);
    let batch: Value = http
        .post(url("/api/v1/batches"))
        .bearer_auth(&admin)
        .json(&json!({"app": "stock-day", "label": "May 2016",
            "inputs": (0..6).map(|i| json!({"stock": 2330 + i})).collect::<Vec<_>>(),
            "replication": {"min_quorum": 2}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hosts = [
        ("athos-desktop", platform("x86_64", Backend::Cranelift)),
        ("porthos-pi", platform("armv7", Backend::Pulley)),
    ];
    let mut reports = Vec::new();
    for (name, platform) in &hosts {
        let registered: Value = http
            .post(url("/api/v1/hosts/register"))
            .json(&json!({"name": name, "platform": platform}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = registered["host_token"].as_str().unwrap().to_owned();
        let fetched: Value = http
            .post(url("/api/v1/work/fetch"))
            .bearer_auth(&token)
            .json(&json!({"free_slots": 6, "platform": platform}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let results: Vec<Value> = fetched["assignments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let output = base64_encode(format!("close of {}", a["input"]).as_bytes());
                json!({"result_id": a["result_id"], "outcome": {"status": "success",
                    "output": output, "fuel_consumed": 81_234, "wall_ms": 35,
                    "stderr_tail": "fetched 1 day"}})
            })
            .collect();
        assert_eq!(results.len(), 6, "{fetched}");
        reports.push((token, json!({"results": results})));
    }
    let report = |(token, body): &(String, Value)| {
        http.post(url("/api/v1/work/report"))
            .bearer_auth(token)
            .json(body)
            .send()
    };
    // The first host reports now; the second once the browser watches (quorum 2: nothing is
    // done until then).
    assert_eq!(report(&reports[0]).await.unwrap().status(), 200);

    // The hosts page, still open, lists both hosts with their architectures as they join,
    // without a reload, anonymously (public dashboard).
    let table = wait_for("the hosts page to list both hosts", || async {
        let text = browser.text("#hosts-table").await;
        let all = [
            "athos-desktop",
            "x86_64",
            "cranelift",
            "porthos-pi",
            "armv7",
            "pulley",
        ];
        if all.iter().all(|w| text.contains(w)) {
            Ok(text)
        } else {
            Err(text)
        }
    })
    .await;
    assert!(table.contains("online"), "{table}");
    browser.screenshot("dashboard-hosts.png").await;

    // Overview, live: the chart fills when the second host reports, without a reload.
    let chart_total = || async {
        browser
            .run(
                "const c = document.getElementById('throughput-chart'); \
                 return c ? Number(c.dataset.total) : -1;",
                json!([]),
            )
            .await
            .as_i64()
            .unwrap_or(-1)
    };
    browser.open(&url("/#/")).await;
    wait_for("the overview with an empty chart", || async {
        match chart_total().await {
            0 => Ok(()),
            n => Err(format!("chart total {n}")),
        }
    })
    .await;
    assert!(browser.text("#view").await.contains("Hosts online"));
    assert_eq!(report(&reports[1]).await.unwrap().status(), 200);
    let total = wait_for("the throughput chart to have data", || async {
        match chart_total().await {
            n if n > 0 => Ok(n),
            n => Err(format!("chart total {n}")),
        }
    })
    .await;
    assert_eq!(total, 6, "six units finished");
    let bars = browser
        .run(
            "return [...document.querySelectorAll('#throughput-chart rect.bar')]\
             .filter(r => Number(r.getAttribute('height')) > 0).length;",
            json!([]),
        )
        .await;
    assert!(bars.as_u64().is_some_and(|n| n >= 1), "drawn bars: {bars}");
    let outcomes = browser.text(".legend").await;
    assert!(outcomes.contains("valid 12"), "{outcomes}");
    let shot = browser.screenshot("dashboard-screenshot.png").await;

    // A second batch whose only unit fails: its page shows the error text.
    let failing: Value = http
        .post(url("/api/v1/batches"))
        .bearer_auth(&admin)
        .json(
            &json!({"app": "stock-day", "label": "bad input", "inputs": [{"stock": "none"}],
            "replication": {"max_error_results": 0}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (athos, athos_platform) = (&reports[0].0, &hosts[0].1);
    let fetched: Value = http
        .post(url("/api/v1/work/fetch"))
        .bearer_auth(athos)
        .json(&json!({"free_slots": 1, "platform": athos_platform}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let failed_report = json!({"results": [{"result_id": fetched["assignments"][0]["result_id"],
        "outcome": {"status": "error", "kind": "task-error", "message": "unknown stock \"none\"",
            "stderr_tail": "<script>alert(1)</script>"}}]});
    assert_eq!(
        report(&(athos.clone(), failed_report))
            .await
            .unwrap()
            .status(),
        200
    );

    // Batches need a token; the page keeps it in sessionStorage and never shows it.
    browser.open(&url("/#/batches")).await;
    wait_for("the batches page to ask for a token", || async {
        let text = browser.text("#view").await;
        if text.contains("need a token") {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
    browser
        .run(
            "sessionStorage.setItem('musketeer.token', arguments[0]);",
            json!([admin]),
        )
        .await;
    browser.open(&url("/#/batches")).await;
    let progress = wait_for("the batch to show 100%", || async {
        let selector = format!(".batch[data-batch='{}'] [data-progress]", batch["batch_id"]);
        let text = browser.text(&selector).await;
        if text == "100%" {
            Ok(text)
        } else {
            Err(browser.text("#view").await)
        }
    })
    .await;
    assert_eq!(progress, "100%");
    let page = browser.text("#view").await;
    assert!(
        page.contains("May 2016") && page.contains("finished") && page.contains("bad input"),
        "{page}"
    );
    browser.screenshot("dashboard-batches.png").await;

    // The failing batch's page: the failure with its error text (task output stays text).
    browser
        .open(&url(&format!("/#/batch/{}", failing["batch_id"])))
        .await;
    wait_for("the failure's error text", || async {
        let text = browser.text("#view").await;
        if text.contains("unknown stock \"none\"") && text.contains("Failures 1") {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
    browser.screenshot("dashboard-failures.png").await;
    browser
        .open(&url(&format!("/#/unit/{}", failing["first_unit"])))
        .await;
    wait_for("the failed unit's replica log, as text", || async {
        let shown = browser
            .run(
                "document.querySelectorAll('details').forEach(d => d.open = true); \
                 return [document.querySelectorAll('#view script').length, \
                         document.getElementById('view').innerText];",
                json!([]),
            )
            .await;
        let text = shown[1].as_str().unwrap_or_default();
        if shown[0] == 0 && text.contains("<script>alert(1)</script>") {
            Ok(())
        } else {
            Err(shown.to_string())
        }
    })
    .await;

    // Batch page: its units; unit page: both replicas, on both hosts, valid, with their logs.
    let batch_id = &batch["batch_id"];
    browser.open(&url(&format!("/#/batch/{batch_id}"))).await;
    wait_for("the batch page", || async {
        let text = browser.text("#view").await;
        if text.contains("No failures.") && text.contains("100%") {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
    let first_unit = &batch["first_unit"];
    browser.open(&url(&format!("/#/unit/{first_unit}"))).await;
    let unit = wait_for("the unit page", || async {
        let text = browser.text("#view").await;
        if text.matches("valid").count() >= 2 && text.contains("porthos-pi") {
            Ok(text)
        } else {
            Err(text)
        }
    })
    .await;
    assert!(
        unit.contains("2330") && unit.contains("athos-desktop"),
        "{unit}"
    );
    browser.screenshot("dashboard-unit.png").await;

    // Host page: its recent units; apps page: the published version.
    browser.open(&url("/#/host/2")).await;
    wait_for("the host page", || async {
        let text = browser.text("#view").await;
        if text.contains("armv7") && text.matches("valid").count() >= 6 {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
    browser.open(&url("/#/apps")).await;
    wait_for("the apps page", || async {
        let text = browser.text("#apps-table").await;
        if text.contains("stock-day") && text.contains("1.2.0") {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
    browser.screenshot("dashboard-apps.png").await;

    let body = browser.text("body").await;
    assert!(!body.contains(&admin), "the page never shows the token");

    // Phone-sized: the hosts table becomes readable cards.
    browser.size(390, 844).await;
    browser.open(&url("/#/hosts")).await;
    wait_for("the hosts page on a phone", || async {
        let text = browser.text("#hosts-table").await;
        if text.contains("porthos-pi") {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
    browser.screenshot("dashboard-phone.png").await;

    browser.command(reqwest::Method::DELETE, "", None).await;

    // The same server's metrics, as a scraper sees them.
    let metrics = http
        .get(url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sample = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from\n{metrics}"))
    };
    assert_eq!(sample("musketeer_hosts_online"), 2.0);
    assert_eq!(sample("musketeer_units{state=\"done\"}"), 6.0);
    assert_eq!(sample("musketeer_units{state=\"failed\"}"), 1.0);
    assert!(sample("musketeer_store_bytes") > 0.0, "{metrics}");
    eprintln!("dashboard screenshots saved, e.g. {}", shot.display());
}
