//! The operator's views of the browser test: sign-in, the failures view with its filter and
//! pages, retrying units, cancel and download buttons, units tables with filter and pages, the
//! server status page and credit in human units. Each takes the open browser and checks what a
//! person would see.

use musketeer_protocol::credits_text;
use serde_json::json;

use super::webdriver::{Browser, wait_until};

/// Credits as the dashboard shows them: [`credits_text`] with thousands separators.
pub fn credits(fuel: u64) -> String {
    let text = credits_text(fuel);
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, "00"));
    format!("{}.{fraction}", thousands(whole))
}

/// `1234567` as `1,234,567`.
pub fn thousands(digits: &str) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Signs in through the form (the token goes to sessionStorage, never into the URL).
pub fn sign_in(browser: &Browser, token: &str) {
    browser.click("the sign-in prompt", "[data-action=sign-in]");
    browser.run(
        "document.getElementById('token-input').value = arguments[0]; \
         document.getElementById('sign-in-form').requestSubmit();",
        json!([token]),
    );
    browser.wait_text("the signed-in button", "#sign-in-button", &["Signed in"]);
    let stored = browser.run(
        "return sessionStorage.getItem('musketeer.token');",
        json!([]),
    );
    assert_eq!(stored, token, "the token is kept in sessionStorage");
    assert!(!browser.url().contains(token), "no token in the URL");
}

/// Sets a filter select and lets the page follow it.
pub fn choose(browser: &Browser, select: &str, value: &str) {
    browser.run(
        "const s = document.querySelector(arguments[0]); s.value = arguments[1]; \
         s.dispatchEvent(new Event('change', { bubbles: true }));",
        json!([select, value]),
    );
    wait_until(&format!("{select} = {value} in the URL"), || {
        let url = browser.url();
        if url.contains(&format!("={value}")) {
            Ok(())
        } else {
            Err(url)
        }
    });
}

/// The text of every row of `table`, as the page shows them.
pub fn rows(browser: &Browser, table: &str) -> Vec<String> {
    let shown = browser.run(
        "return [...document.querySelectorAll(arguments[0] + ' tbody tr')].map(r => r.innerText);",
        json!([table]),
    );
    shown
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Follows "Next page" from `start` (a URL ending in `#/…`) until the last page; every row's
/// `data-{key}`, in order.
pub fn walk_pages(browser: &Browser, start: &str, table: &str, key: &str) -> Vec<String> {
    browser.open(start);
    let mut seen = Vec::new();
    // The view names the route it shows (`data-route`): a page is read only once it shows the
    // route asked for, never a stale one.
    let mut route = start
        .split_once('#')
        .map(|(_, fragment)| format!("#{fragment}"))
        .expect("a start URL with a fragment");
    loop {
        let page = wait_until(&format!("the page {route}"), || {
            let shown = browser.run(
                "const view = document.getElementById('view'); \
                 return [view.dataset.route, \
                 [...view.querySelectorAll(arguments[0] + ' tbody tr')]\
                 .map(r => r.dataset[arguments[1]]), \
                 view.querySelector('[data-page=next]')?.getAttribute('href') ?? null];",
                json!([table, key]),
            );
            if shown[0] == route.as_str() {
                Ok(shown)
            } else {
                Err(shown.to_string())
            }
        });
        let keys = page[1].as_array().cloned().unwrap_or_default();
        assert!(!keys.is_empty(), "an empty page at {route}");
        seen.extend(keys.iter().filter_map(|k| k.as_str().map(str::to_owned)));
        let Some(next) = page[2].as_str() else {
            return seen;
        };
        route = next.to_owned();
        browser.click("the next page link", "[data-page=next]");
    }
}

#[test]
fn dashboard_credits_have_thousands_separators() {
    assert_eq!(credits(929_939_720_241), "929.94");
    assert_eq!(credits(1_234_567_000_000_000), "1,234,567.00");
    assert_eq!(credits(2_140_000), "0.00214");
    assert_eq!(credits(0), "0.00");
}

/// The failures view while a unit retries (filter, pages, links from the overview), the retried
/// batch's page (counts, unit filter, cancel) and the failing batch's page.
pub fn failures_and_retrying(
    browser: &Browser,
    url: &dyn Fn(&str) -> String,
    refusal: &str,
    failing: u64,
    retried: u64,
) {
    // Both hosts' errors show while the unit waits for a third result, retrying.
    browser.open(&url("/#/failures?state=retrying"));
    let shown = wait_until("the retrying unit's two failed replicas", || {
        let shown = rows(browser, "#failures-table");
        let retrying = shown
            .iter()
            .all(|r| r.contains("retrying") && r.contains(refusal));
        if shown.len() == 2 && retrying {
            Ok(shown)
        } else {
            Err(format!("{shown:?} in {}", browser.text("#view")))
        }
    });
    for host in ["athos", "porthos"] {
        assert!(shown.iter().any(|r| r.contains(host)), "{host}: {shown:?}");
    }
    browser.screenshot("dashboard-failures.png");

    // Filtered to units that failed: the failing batch's four replicas, markup kept as text.
    choose(browser, "#failure-state", "failed");
    browser.wait_text(
        "the failed units' replicas",
        "#view",
        &["4 failed replicas", "<script>alert(1)</script>", refusal],
    );
    let scripts = browser.run(
        "return document.querySelectorAll('#view script').length;",
        json!([]),
    );
    assert_eq!(scripts, 0, "the task's words stay text");

    // Two a page: every failed replica once.
    let paged = walk_pages(
        browser,
        &url("/#/failures?limit=2"),
        "#failures-table",
        "result",
    );
    let mut distinct = paged.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!((paged.len(), distinct.len()), (6, 6), "{paged:?}");

    // The overview explains "Units failed" beside the failed replicas and links to them.
    browser.open(&url("/#/"));
    browser.wait_text(
        "the failed units card",
        "#failed-card",
        &["Units failed", "6 failed replicas", "1 unit retrying"],
    );
    browser.click("the errors link", "#outcomes-legend a[data-link=failures]");
    browser.wait_text(
        "the failures view from the overview",
        "#view h1",
        &["Failures", "6 failed replicas"],
    );

    // The retried batch: its counts, its retrying unit through the filter, then cancelled.
    browser.open(&url(&format!("/#/batch/{retried}")));
    browser.wait_text(
        "the retried batch's counts",
        "#view",
        &["retrying 1", "2 failed replicas"],
    );
    choose(browser, "#unit-state", "retrying");
    browser.wait_text("the retrying unit", "#units-table", &["retrying"]);
    browser.screenshot("dashboard-retrying.png");
    browser.click("the cancel button", "[data-action=cancel]");
    browser.click("the cancel confirmation", "[data-action=cancel-confirm]");
    browser.wait_text("the cancelled batch", "#view h1", &["cancelled"]);

    // The failing batch's page: its failures with the task's words.
    browser.open(&url(&format!("/#/batch/{failing}")));
    browser.wait_text(
        "the failing batch's failures",
        "#view",
        &[
            "4 failed replicas",
            "2 units failed",
            refusal,
            "<script>alert(1)</script>",
        ],
    );
}

/// A finished batch's page: downloads, no cancel, units in pages and filtered.
pub fn batch_actions_and_pages(browser: &Browser, url: &dyn Fn(&str) -> String, batch: u64) {
    browser.click(
        "the JSONL download",
        "[data-action=download][data-format=jsonl]",
    );
    let jsonl = format!("Saved batch-{batch}.jsonl: 6 lines");
    browser.wait_text("the JSONL download", "#download-note", &[&jsonl]);
    browser.click(
        "the CSV download",
        "[data-action=download][data-format=csv]",
    );
    let csv = format!("Saved batch-{batch}.csv");
    browser.wait_text("the CSV download", "#download-note", &[&csv]);
    let cancel = browser.run(
        "return document.querySelector('[data-action=cancel]') === null;",
        json!([]),
    );
    assert_eq!(cancel, true, "a finished batch has no cancel button");
    browser.screenshot("dashboard-batch.png");

    let units = walk_pages(
        browser,
        &url(&format!("/#/batch/{batch}?limit=4")),
        "#units-table",
        "unit",
    );
    assert_eq!(units.len(), 6, "{units:?}");
    choose(browser, "#unit-state", "failed");
    browser.wait_text("no failed unit", "#view", &["No unit matches."]);
}
