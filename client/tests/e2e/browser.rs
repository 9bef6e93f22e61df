//! The dashboard in a real browser during a live run: a real `musketeer-server` (dashboard views
//! public), two real `musketeer join` volunteers crawling the local TWSE-format feed with the
//! signed `stock-day` module, and Debian's headless Chromium reading the pages through
//! ChromeDriver (`browser/webdriver.rs`). Covers the operator's views too (`browser/operations.rs`):
//! sign-in, the failures view while units retry, cancel and download buttons, units tables with
//! filter and pages, the server status page, the state-over-time graph and credit. Saves
//! screenshots under `target/` (`dashboard-screenshot.png` and friends) for CI to keep.

mod operations;
mod webdriver;

use musketeer_protocol::{Replication, SubmitBatchRequest};
use musketeer_task_artifacts::STOCK_DAY;
use musketeer_task_artifacts::twse::{FeedServer, NO_DATA_STAT, ORIGINAL_STOCK_IDS};
use serde_json::{Value, json};

use crate::support::{Proc, Project, wait_for};
use operations::{batch_actions_and_pages, credits, failures_and_retrying, sign_in, thousands};
use webdriver::{Browser, wait_until};

/// What a client said when it joined.
struct Joined {
    name: &'static str,
    host_id: u64,
    backend: String,
}

fn joined(client: &Proc, name: &'static str) -> Joined {
    let lines = client.stdout.clone();
    let event = wait_for("the client to join", || {
        lines.events("joined").into_iter().next()
    });
    Joined {
        name,
        host_id: event["host_id"]
            .as_u64()
            .expect("host_id in the joined event"),
        backend: event["backend"]
            .as_str()
            .expect("backend in the joined event")
            .to_owned(),
    }
}

/// A stock-day input for the fixture feed.
fn stock(feed: &FeedServer, id: &str) -> Value {
    json!({"stock_id": id, "year": 2016, "month": 5, "source": feed.base_url()})
}

#[test]
fn dashboard_in_headless_chromium_with_two_volunteers() {
    let feed = FeedServer::start().expect("feed");
    let project = Project::start_with(&["--public-dashboard"]);
    project.publish(STOCK_DAY, "stock-day", "1.2.0", &[feed.allow_prefix()]);
    let http = project.http();
    let url = |p: &str| format!("{}{p}", project.url);
    let browser = Browser::start();

    // Before any host joins: the hosts page says so.
    browser.open(&url("/#/hosts"));
    browser.wait_text("the hosts page's empty state", "#view", &["No hosts yet"]);

    // Two volunteers join. The page, still open, lists them as they join, without a reload,
    // anonymously (public dashboard), with what each client reported: its name, this machine's
    // architecture and OS, its version and its backend.
    let athos = project.join("athos", 2);
    let porthos = project.join_with("porthos", 2, &["--max-task-memory", "512"]);
    let hosts = [joined(&athos, "athos"), joined(&porthos, "porthos")];
    let arch_os = format!("{} / {}", std::env::consts::ARCH, std::env::consts::OS);
    for host in &hosts {
        let row = format!("#hosts-table tr[data-host='{}']", host.host_id);
        browser.wait_text(
            &format!("the hosts page to list {}", host.name),
            &row,
            &[
                host.name,
                &arch_os,
                env!("CARGO_PKG_VERSION"),
                &host.backend,
                "online",
            ],
        );
    }

    // Overview, live: the chart is empty until the volunteers finish a quorum-2 batch, then fills
    // without a reload. `chart` reads its total (-1 without a chart) and the outcomes' legend.
    let chart = || {
        let shown = browser.run(
            "const c = document.getElementById('throughput-chart'); \
             const legend = document.getElementById('outcomes-legend'); \
             return [c ? Number(c.dataset.total) : -1, legend ? legend.innerText : ''];",
            json!([]),
        );
        let legend = shown[1].as_str().unwrap_or_default().to_owned();
        (shown[0].as_i64().unwrap_or(-1), legend)
    };
    browser.open(&url("/#/"));
    wait_until("the overview with an empty chart", || match chart() {
        (0, _) => Ok(()),
        shown => Err(format!("{shown:?}")),
    });
    browser.wait_text(
        "both hosts online",
        "#hosts-card",
        &["Hosts online", "2 / 2"],
    );
    let samples = || {
        browser
            .run(
                "const c = document.getElementById('state-chart'); \
                 return c ? Number(c.dataset.samples) : -1;",
                json!([]),
            )
            .as_i64()
            .unwrap_or(-1)
    };
    assert!(samples() >= 1, "the state chart has the sample of now");
    let batch = http.submit(
        &project.researcher,
        &SubmitBatchRequest {
            app: "stock-day".into(),
            version: None,
            inputs: ORIGINAL_STOCK_IDS[..6]
                .iter()
                .map(|id| stock(&feed, id))
                .collect(),
            replication: Replication {
                min_quorum: Some(2),
                ..Replication::default()
            },
            priority: 0,
            label: Some("May 2016".into()),
            ..SubmitBatchRequest::default()
        },
    );
    // Six units, each validated by the two hosts agreeing.
    wait_until(
        "the throughput chart to count the six units",
        || match chart() {
            (6, legend) if legend.contains("valid 12") => Ok(()),
            shown => Err(format!("{shown:?}")),
        },
    );
    let bars = browser.run(
        "return [...document.querySelectorAll('#throughput-chart rect.bar')]\
         .filter(r => Number(r.getAttribute('height')) > 0).length;",
        json!([]),
    );
    assert!(bars.as_u64().is_some_and(|n| n >= 1), "drawn bars: {bars}");
    browser.wait_text("the state chart's legend", "#state-legend", &["done 6"]);
    let shot = browser.screenshot("dashboard-screenshot.png");

    // The server status page: units by app, and each host's results and credit in the window.
    browser.open(&url("/#/status"));
    browser.wait_text(
        "the app's counts",
        "#app-status tr[data-app='stock-day'] td[data-label=Done]",
        &["6"],
    );
    let listed = http.hosts(&project.admin).hosts;
    for host in &hosts {
        let fuel = listed
            .iter()
            .find(|h| h.id.0 == host.host_id)
            .map(|h| h.credit)
            .expect("the host in the API's list");
        let row = format!("#host-rates tr[data-host='{}']", host.host_id);
        browser.wait_text(
            &format!("{}'s results", host.name),
            &format!("{row} td[data-label=Results]"),
            &["6"],
        );
        browser.wait_text(
            &format!("{}'s credit", host.name),
            &format!("{row} td[data-label=Credit]"),
            &[&credits(fuel)],
        );
    }
    browser.screenshot("dashboard-status.png");

    // A second batch whose units the task rejects on both hosts (the same error from a quorum of
    // two fails a unit with the task's words):
    // a stock the feed does not know, and a stock id that is markup.
    let failing = http.submit(
        &project.researcher,
        &SubmitBatchRequest {
            app: "stock-day".into(),
            version: None,
            inputs: vec![
                stock(&feed, "9999"),
                stock(&feed, "<script>alert(1)</script>"),
            ],
            replication: Replication {
                min_quorum: Some(2),
                ..Replication::default()
            },
            priority: 0,
            label: Some("bad input".into()),
            ..SubmitBatchRequest::default()
        },
    );
    // A unit that needs three agreeing results from two hosts: after both report the task's
    // error it waits for a third host, retrying, until its batch is cancelled.
    let retried = http.submit(
        &project.researcher,
        &SubmitBatchRequest {
            app: "stock-day".into(),
            version: None,
            inputs: vec![stock(&feed, "9999")],
            replication: Replication {
                min_quorum: Some(3),
                ..Replication::default()
            },
            priority: 0,
            label: Some("retry".into()),
            ..SubmitBatchRequest::default()
        },
    );

    // Batches need a token: the sign-in form keeps it in sessionStorage, never in a URL.
    browser.open(&url("/#/batches"));
    browser.wait_text(
        "the batches page to ask for a sign-in",
        "#view",
        &["need you to sign in"],
    );
    sign_in(&browser, &project.researcher);
    let progress = format!(".batch[data-batch='{}'] [data-progress]", batch.batch_id.0);
    wait_until("the batch to show 100%", || match browser.text(&progress) {
        text if text == "100%" => Ok(()),
        _ => Err(browser.text("#view")),
    });
    browser.wait_text(
        "both batches listed, the bad one failed",
        "#view",
        &["May 2016", "finished", "bad input", "failed 2"],
    );
    browser.screenshot("dashboard-batches.png");

    // The task's words as each replica reported them.
    let refusal = format!("task-error: TWSE: {NO_DATA_STAT}");
    failures_and_retrying(
        &browser,
        &url,
        &refusal,
        failing.batch_id.0,
        retried.batch_id.0,
    );

    // The markup unit's page: the error stays text, on both hosts' replicas.
    let markup_unit = failing.first_unit.0 + 1;
    browser.open(&url(&format!("/#/unit/{markup_unit}")));
    wait_until("the failed unit's errors, as text", || {
        let shown = browser.run(
            "return [document.querySelectorAll('#view script').length, \
                     document.getElementById('view').innerText];",
            json!([]),
        );
        let text = shown[1].as_str().unwrap_or_default();
        let shown_as_text = text.matches("<script>alert(1)</script>").count() >= 3;
        if shown[0] == 0 && shown_as_text && text.contains("athos") && text.contains("porthos") {
            Ok(())
        } else {
            Err(shown.to_string())
        }
    });

    // The good batch's page: its units; a unit page: both replicas, on both hosts, valid.
    browser.open(&url(&format!("/#/batch/{}", batch.batch_id.0)));
    browser.wait_text("the batch page", "#view", &["No failed replicas.", "100%"]);
    batch_actions_and_pages(&browser, &url, batch.batch_id.0);
    browser.open(&url(&format!("/#/unit/{}", batch.first_unit.0)));
    let unit = wait_until("the unit page", || {
        let text = browser.text("#view");
        let replicas = browser.run(
            "return [...document.querySelectorAll('#view td[data-label=Outcome]')]\
             .filter(td => td.innerText.trim() === 'valid').length;",
            json!([]),
        );
        if replicas == 2 && text.contains("athos") && text.contains("porthos") {
            Ok(text)
        } else {
            Err(text)
        }
    });
    assert!(unit.contains(ORIGINAL_STOCK_IDS[0]), "{unit}");
    browser.screenshot("dashboard-unit.png");

    // A host page: what the client reported and its recent units (one replica of every unit).
    let porthos_host = &hosts[1];
    let porthos_fuel = http
        .hosts(&project.admin)
        .hosts
        .iter()
        .find(|h| h.id.0 == porthos_host.host_id)
        .map(|h| h.credit)
        .expect("porthos in the API's list");
    browser.open(&url(&format!("/#/host/{}", porthos_host.host_id)));
    browser.wait_text(
        "the host page",
        "#view",
        &[
            "porthos",
            std::env::consts::ARCH,
            &porthos_host.backend,
            "up to 512.0 MiB",
            "6 succeeded · 3 failed · 0 invalid",
            &format!(" credits ({} fuel)", thousands(&porthos_fuel.to_string())),
        ],
    );

    // Apps page: the published version and its allowlist.
    browser.open(&url("/#/apps"));
    browser.wait_text(
        "the apps page",
        "#apps-table",
        &["stock-day", "1.2.0", &feed.allow_prefix()],
    );
    let heading = browser.wait_text("the apps page's count", "#view h1", &["1 version"]);
    assert!(!heading.contains("versions"), "{heading}");
    browser.screenshot("dashboard-apps.png");

    // The hosts page after the run: each host with its work.
    browser.open(&url("/#/hosts"));
    for host in &hosts {
        let row = format!("#hosts-table tr[data-host='{}']", host.host_id);
        let text = wait_until(&format!("{}'s counts", host.name), || {
            let succeeded = browser.text(&format!("{row} td[data-label=Succeeded]"));
            let failed = browser.text(&format!("{row} td[data-label=Failed]"));
            if succeeded.trim() == "6" && failed.trim() == "3" {
                Ok(browser.text(&row))
            } else {
                Err(browser.text(&row))
            }
        });
        assert!(text.contains(&arch_os) && text.contains("online"), "{text}");
    }
    browser.screenshot("dashboard-hosts.png");

    let body = browser.text("body");
    assert!(
        !body.contains(&project.researcher),
        "the page never shows the token"
    );
    let links = browser.run(
        "return [...document.querySelectorAll('a')].map(a => a.href).join(' ');",
        json!([]),
    );
    assert!(
        !links.as_str().unwrap_or_default().contains("token"),
        "no link carries a token: {links}"
    );

    // The state graph keeps samples (every 10 s: the one at start, a later one, and now's) and
    // shows the failed units.
    browser.open(&url("/#/"));
    wait_until("a later state sample", || match samples() {
        n if n >= 3 => Ok(()),
        n => Err(format!("{n} samples")),
    });
    browser.wait_text("the state legend", "#state-legend", &["done 6", "failed 2"]);
    browser.screenshot("dashboard-state.png");

    // Phone-sized: the hosts table becomes readable cards.
    browser.resize(390, 844);
    browser.open(&url("/#/hosts"));
    browser.wait_text(
        "the hosts page on a phone",
        "#hosts-table",
        &["athos", "porthos"],
    );
    browser.screenshot("dashboard-phone.png");
    drop(browser);

    // The same server's metrics, as an anonymous scraper sees them.
    let metrics = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async { reqwest::get(url("/metrics")).await?.text().await })
        .expect("GET /metrics");
    let sample = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from\n{metrics}"))
    };
    assert_eq!(sample("musketeer_hosts_online"), 2.0);
    assert_eq!(sample("musketeer_units{state=\"done\"}"), 6.0);
    assert_eq!(sample("musketeer_units{state=\"failed\"}"), 2.0);
    assert!(sample("musketeer_store_bytes") > 0.0, "{metrics}");
    eprintln!("dashboard screenshots saved, e.g. {}", shot.display());
}
