//! One module, every architecture: an amd64 client (Cranelift), an ARMv7 client under `qemu-arm`
//! (Pulley, `pulley32`) and an arm64 client under `qemu-aarch64` (Cranelift) join one server.
//! Quorum-3 batches send every unit to all three, so a unit validates only if the three
//! architectures return identical bytes; the test also checks that their fuel is identical and
//! that a trapping unit is an error on every architecture, never a mismatch. It covers the
//! crawler, the word count, the float corner cases, an integer CPU task, and a task growing its
//! memory past a 32-bit host's initial reservation. Last, alone (each emulated client compiles
//! its 18 MB module first), the crawler written in Python (`stock-day-py`) and in JavaScript
//! (`stock-day-js`, a 12 MB module).
//!
//! Ignored by a plain `cargo test`: it needs the cross-built clients and qemu-user.
//! `cargo xtask cross` (part of `cargo xtask test`) builds them and runs it.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use musketeer_protocol::{
    Backend, BatchId, HostId, ReplicaOutcome, Replication, ResultRow, SubmitBatchRequest, UnitState,
};
use musketeer_task_artifacts::twse::{FeedServer, ORIGINAL_STOCK_IDS};
use musketeer_task_artifacts::{
    FLOAT_CORNERS, HOSTILE, PRIMES, STOCK_DAY, STOCK_DAY_JS, STOCK_DAY_PY, WORD_COUNT,
};
use serde_json::{Value, json};

use crate::demo::check_against_feed;
use crate::support::{Http, Project, musketeer, primes_answer, wait_idle};

/// One volunteer machine of the test.
struct Volunteer {
    /// Host name it joins with.
    name: &'static str,
    /// The command that runs its `musketeer` binary.
    command: Vec<OsString>,
    /// `std::env::consts::ARCH` as its client reports it.
    arch: &'static str,
    backend: Backend,
}

/// The native client and the two cross-built ones behind qemu-user.
fn volunteers() -> Vec<Volunteer> {
    let native = musketeer();
    // target/<profile>/musketeer -> target/
    let target_dir = native
        .parent()
        .and_then(Path::parent)
        .expect("the client binary lives in target/<profile>/");
    let emulated = |triple: &str, qemu: &str, sysroot: &str| -> Vec<OsString> {
        let binary = target_dir.join(triple).join("release").join("musketeer");
        assert!(
            binary.exists(),
            "{} is missing: build the cross clients with `cargo xtask cross` \
             (or `cargo build --release -p musketeer-client --target {triple}`)",
            binary.display()
        );
        let qemu = find_program(&[qemu, &format!("{qemu}-static")]).unwrap_or_else(|| {
            panic!("{qemu} not found: install Debian's qemu-user (`apt-get install qemu-user`)")
        });
        assert!(
            Path::new(sysroot).join("lib").is_dir(),
            "{sysroot}/lib is missing: install Debian's cross C libraries \
             (`apt-get install libc6-dev-armhf-cross libc6-dev-arm64-cross`)"
        );
        vec![qemu.into(), "-L".into(), sysroot.into(), binary.into()]
    };
    vec![
        Volunteer {
            name: "amd64",
            command: vec![native.clone().into()],
            arch: "x86_64",
            backend: Backend::Cranelift,
        },
        Volunteer {
            name: "armv7",
            command: emulated(
                "armv7-unknown-linux-gnueabihf",
                "qemu-arm",
                "/usr/arm-linux-gnueabihf",
            ),
            arch: "arm",
            backend: Backend::Pulley,
        },
        Volunteer {
            name: "arm64",
            command: emulated(
                "aarch64-unknown-linux-gnu",
                "qemu-aarch64",
                "/usr/aarch64-linux-gnu",
            ),
            arch: "aarch64",
            backend: Backend::Cranelift,
        },
    ]
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Every unit to all three hosts; all three must agree, and an error on each fails the unit
/// (more than two errors; a host never gets two replicas of one unit).
fn all_three() -> Replication {
    Replication {
        min_quorum: Some(3),
        target_nresults: Some(3),
        max_error_results: Some(2),
        ..Replication::default()
    }
}

fn submit(http: &Http, token: &str, app: &str, inputs: Vec<Value>) -> BatchId {
    let request = SubmitBatchRequest {
        app: app.into(),
        version: None,
        inputs,
        replication: all_three(),
        priority: 0,
        label: Some(format!("cross-arch {app}")),
        ..SubmitBatchRequest::default()
    };
    http.submit(token, &request).batch_id
}

#[test]
#[ignore = "needs the cross-built ARM clients and qemu-user: run by `cargo xtask cross`"]
fn one_module_gives_identical_bytes_and_fuel_on_every_architecture() {
    let volunteers = volunteers();
    let feed = FeedServer::start().expect("feed");
    // Every unit must be run on all three architectures: no host, however many results it has
    // had validated, may run one alone.
    let project = Project::start_with(&["--no-adaptive-replication"]);
    project.publish(STOCK_DAY, "stock-day", "1.0.0", &[feed.allow_prefix()]);
    project.publish(WORD_COUNT, "word-count", "1.0.0", &[]);
    project.publish(FLOAT_CORNERS, "float-corners", "1.0.0", &[]);
    project.publish(PRIMES, "primes", "1.0.0", &[]);
    project.publish(HOSTILE, "hostile", "1.0.0", &[]);
    project.publish(
        STOCK_DAY_PY,
        "stock-day-py",
        "1.0.0",
        &[feed.allow_prefix()],
    );
    project.publish(
        STOCK_DAY_JS,
        "stock-day-js",
        "1.0.0",
        &[feed.allow_prefix()],
    );

    let clients: Vec<_> = volunteers
        .iter()
        .map(|v| project.join_program(&v.command, v.name, 1, &[]))
        .collect();
    clients.iter().for_each(wait_idle);

    let http = project.http();
    let hosts = http.hosts(&project.admin).hosts;
    let mut arch_of: BTreeMap<HostId, &str> = BTreeMap::new();
    for volunteer in &volunteers {
        let host = hosts
            .iter()
            .find(|h| h.name == volunteer.name)
            .unwrap_or_else(|| panic!("{} not among the hosts: {hosts:?}", volunteer.name));
        let platform = host.platform.as_ref().expect("platform reported");
        assert_eq!(platform.arch, volunteer.arch, "{host:?}");
        assert_eq!(platform.backend, volunteer.backend, "{host:?}");
        arch_of.insert(host.id, volunteer.arch);
    }

    let token = &project.researcher;
    let stocks = &ORIGINAL_STOCK_IDS[..3]; // the third answers with TWSE's newer 10 fields
    let source = feed.base_url();
    let stock_day = submit(
        &http,
        token,
        "stock-day",
        stocks
            .iter()
            .map(|id| json!({"stock_id": id, "year": 2016, "month": 5, "source": source}))
            .collect(),
    );
    let texts = [
        "the cat the dog",
        "Line 1: The quick brown fox; don't jump. The END, the end! Ünïcode café CAFÉ 日本語 Ελληνικά",
    ];
    let word_count = submit(
        &http,
        token,
        "word-count",
        texts.iter().map(|t| json!(t)).collect(),
    );
    let floats = submit(&http, token, "float-corners", vec![json!({})]);
    let primes = submit(
        &http,
        token,
        "primes",
        vec![
            json!({"from": 1, "to": 200_000}),
            json!({"from": 999_000, "to": 1_000_000}),
        ],
    );
    // 240 MiB: more than a 32-bit host's initial 64 MiB reservation, under the default limit.
    let memory = submit(
        &http,
        token,
        "hostile",
        vec![json!({"mode": "memory", "mib": 240})],
    );
    let stack = submit(&http, token, "hostile", vec![json!({"mode": "stack"})]);

    for batch in [stock_day, word_count, floats, primes, memory] {
        http.wait_finished(token, batch);
        let rows = http.results(token, batch);
        assert!(!rows.is_empty());
        for row in &rows {
            assert_eq!(row.state, UnitState::Done, "{row:?}");
            assert_agreed_by_all_three(&http, token, row, &arch_of);
        }
        if batch == stock_day {
            for (row, id) in rows.iter().zip(stocks) {
                check_against_feed(id, row.output.as_ref().expect("JSON output"));
            }
        } else if batch == word_count {
            assert_eq!(
                rows[0].output,
                Some(json!({"total": 4, "unique": 3, "words": [
                    {"word": "the", "count": 2}, {"word": "cat", "count": 1},
                    {"word": "dog", "count": 1}]})),
            );
        } else if batch == floats {
            let cases = rows[0].output.as_ref().and_then(|o| o["cases"].as_array());
            assert!(cases.is_some_and(|c| c.len() > 10), "{rows:?}");
        } else if batch == memory {
            let output = rows[0].output_base64.as_ref().map(|b| b.0.as_slice());
            assert_eq!(output, Some(&b"allocated 240 MiB"[..]), "{rows:?}");
        } else {
            assert_eq!(rows[0].output, Some(primes_answer(1, 200_000)));
            assert_eq!(rows[1].output, Some(primes_answer(999_000, 1_000_000)));
        }
    }

    // Unbounded recursion overflows at a depth that differs between backends: it must be an
    // error result on every architecture, and the unit fails rather than being "invalid".
    http.wait_finished(token, stack);
    let rows = http.results(token, stack);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, UnitState::Failed, "{rows:?}");
    let unit = http.unit(token, rows[0].unit_id);
    let mut errored_on = BTreeSet::new();
    // Replicas added after an error wait unsent for a fourth host; the unit fails first.
    for replica in unit.replicas.iter().filter(|r| r.host.is_some()) {
        assert_eq!(replica.outcome, ReplicaOutcome::Error, "{unit:?}");
        let error = replica.error.as_deref().unwrap_or_default();
        assert!(error.starts_with("stack-overflow"), "{unit:?}");
        errored_on.insert(arch_of[&replica.host.expect("sent to a host")]);
    }
    assert_eq!(errored_on.len(), 3, "{unit:?}");

    // The Python crawler, one stock with TWSE's ten fields: submitted after everything else so
    // that its compile under qemu holds up no other batch.
    let python = submit(
        &http,
        token,
        "stock-day-py",
        vec![json!({"stock_id": stocks[2], "year": 2016, "month": 5, "source": source})],
    );
    http.wait_finished_within(token, python, PYTHON_DEADLINE);
    let rows = http.results(token, python);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, UnitState::Done, "{rows:?}");
    assert_agreed_by_all_three(&http, token, &rows[0], &arch_of);
    check_against_feed(stocks[2], rows[0].output.as_ref().expect("JSON output"));

    // The JavaScript crawler, the same stock, after the Python one for the same reason.
    let javascript = submit(
        &http,
        token,
        "stock-day-js",
        vec![json!({"stock_id": stocks[2], "year": 2016, "month": 5, "source": source})],
    );
    http.wait_finished_within(token, javascript, PYTHON_DEADLINE);
    let js_rows = http.results(token, javascript);
    assert_eq!(js_rows.len(), 1);
    assert_eq!(js_rows[0].state, UnitState::Done, "{js_rows:?}");
    assert_agreed_by_all_three(&http, token, &js_rows[0], &arch_of);
    assert_eq!(
        js_rows[0].output, rows[0].output,
        "the Python crawler's answer"
    );

    for host in http.hosts(&project.admin).hosts {
        assert_eq!(host.invalid, 0, "no result may disagree: {host:?}");
        assert!(
            host.credit > 0,
            "every architecture earned credit: {host:?}"
        );
    }
}

/// Compiling the 18 MB Python module (or the 12 MB JavaScript one) under qemu takes minutes
/// (docs/benchmarks.md, "Python beside Rust"), longer than `support::DEADLINE`.
const PYTHON_DEADLINE: Duration = Duration::from_secs(1800);

/// The unit's canonical result was agreed by one replica on each architecture, with equal fuel.
fn assert_agreed_by_all_three(
    http: &Http,
    token: &str,
    row: &ResultRow,
    arch_of: &BTreeMap<HostId, &str>,
) {
    let unit = http.unit(token, row.unit_id);
    let valid: Vec<_> = unit
        .replicas
        .iter()
        .filter(|r| r.outcome == ReplicaOutcome::Valid)
        .collect();
    let archs: BTreeSet<&str> = valid
        .iter()
        .map(|r| arch_of[&r.host.expect("a valid replica has a host")])
        .collect();
    assert_eq!(
        archs.len(),
        3,
        "one valid replica per architecture: {unit:?}"
    );
    let fuel: BTreeSet<Option<u64>> = valid.iter().map(|r| r.fuel).collect();
    assert_eq!(fuel.len(), 1, "identical fuel everywhere: {unit:?}");
    let fuel = fuel.first().copied().flatten().expect("fuel reported");
    // The CI log's record of what agreed (docs/benchmarks.md quotes it).
    eprintln!(
        "cross-arch: unit {} ({}) agreed on {archs:?} with fuel {fuel}",
        unit.id.0, unit.input
    );
}
