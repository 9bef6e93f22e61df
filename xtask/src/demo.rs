//! `cargo xtask demo`: crawl the 30 stocks of the original experiment from a local TWSE-format
//! feed, each in the musketeer sandbox, and print the table.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use musketeer_task_artifacts::twse::{FeedServer, ORIGINAL_STOCK_IDS};

use crate::{cargo, root};

const COLUMNS: [&str; 10] = [
    "個股代號",
    "日期",
    "成交股數",
    "成交金額",
    "開盤價",
    "最高價",
    "最低價",
    "收盤價",
    "漲跌價差",
    "成交筆數",
];

pub fn run(_args: &[String]) -> Result<(), String> {
    eprintln!("== building the musketeer client (release) ==");
    cargo(&["build", "--release", "--quiet", "-p", "musketeer-client"])?;
    let musketeer = root().join("target/release/musketeer");
    let work = std::env::temp_dir().join(format!("musketeer-demo-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let result = demo(&musketeer, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn demo(musketeer: &PathBuf, work: &std::path::Path) -> Result<(), String> {
    let feed = FeedServer::start().map_err(|e| format!("cannot start the local feed: {e}"))?;
    eprintln!(
        "== local TWSE-format feed (synthetic May 2016 data) at {} ==",
        feed.base_url()
    );
    let keys = work.join("keys");
    let manifest = work.join("stock-day.manifest.json");
    let module = musketeer_task_artifacts::STOCK_DAY;
    let cache = work.join("cache");
    let key = keys.join("musketeer.key");
    let public = keys.join("musketeer.pub");
    let key_s = key.to_string_lossy().into_owned();
    let manifest_s = manifest.to_string_lossy().into_owned();
    run_tool(
        musketeer,
        &["keys", "generate", "--out", &keys.to_string_lossy()],
    )?;
    eprintln!(
        "== signing stock-day, allowed to reach only {} ==",
        feed.allow_prefix()
    );
    run_tool(
        musketeer,
        &[
            "sign",
            "--key",
            &key_s,
            "--module",
            module,
            "--app",
            "stock-day",
            "--version",
            "1.0.0",
            "--allow-http",
            &feed.allow_prefix(),
            "--out",
            &manifest_s,
        ],
    )?;
    eprintln!(
        "== crawling {} stocks in the sandbox ==",
        ORIGINAL_STOCK_IDS.len()
    );
    let started = Instant::now();
    let mut rows = Vec::new();
    for (done, stock_id) in ORIGINAL_STOCK_IDS.iter().enumerate() {
        let input = format!(
            r#"{{"stock_id":"{stock_id}","year":2016,"month":5,"source":"{}"}}"#,
            feed.base_url()
        );
        let output = Command::new(musketeer)
            .args(["run", "--manifest", &manifest_s, "--module", module])
            .args(["--trust", &public.to_string_lossy(), "--input", &input])
            .args([
                "--cache-dir",
                &cache.to_string_lossy(),
                "--run-id",
                stock_id,
            ])
            .output()
            .map_err(|e| format!("cannot run musketeer: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "stock {stock_id} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        rows.push(String::from_utf8_lossy(&output.stdout).trim().to_owned());
        eprint!(
            "\r[{:>2}/{}] {stock_id}",
            done + 1,
            ORIGINAL_STOCK_IDS.len()
        );
    }
    eprintln!();
    println!("{}", COLUMNS.join("\t"));
    for row in &rows {
        println!("{}", tabulate(row));
    }
    eprintln!(
        "== {} rows in {:.1} s; try `{} run --help` ==",
        rows.len(),
        started.elapsed().as_secs_f64(),
        musketeer.display()
    );
    Ok(())
}

/// One output object as tab-separated values in the original column order. The task writes
/// the keys in that order already, so the values are taken in sequence.
fn tabulate(json: &str) -> String {
    let inner = json.trim().trim_start_matches('{').trim_end_matches('}');
    inner
        .split(',')
        .filter_map(|pair| {
            pair.split_once(':')
                .map(|(_, v)| v.trim_matches('"').to_owned())
        })
        .collect::<Vec<_>>()
        .join("\t")
}

fn run_tool(program: &PathBuf, args: &[&str]) -> Result<(), String> {
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`musketeer {}` failed", args.join(" ")))
    }
}
