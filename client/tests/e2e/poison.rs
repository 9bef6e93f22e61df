//! Poisoned units among good ones: every volunteer survives, each poisoned unit fails with a
//! clear reason, and the good units finish.
//!
//! The server refuses a too-deep input at submit, so the deep input reaches the volunteers the
//! way it would from an older or compromised server: a loopback proxy between the volunteers
//! and the real server swaps it into the fetch answer. Before the client decoded assignments one
//! by one, that answer made every `musketeer join` exit with "recursion limit exceeded".

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use musketeer_protocol::{Replication, SubmitBatchRequest, UnitState, paths};
use musketeer_task_artifacts::HOSTILE;
use serde_json::{Value, json};

use crate::support::{Proc, Project, Proxy, wait_for, wait_idle};

/// The marker input the proxy replaces.
fn marker() -> Value {
    json!({"mode": "poison-deep"})
}

/// An input nested 125 deep: serde_json reads it alone, but not inside a fetch answer.
fn deep_input() -> Value {
    let text = format!("{}1{}", "[".repeat(125), "]".repeat(125));
    serde_json::from_str(&text).expect("125 levels parse on their own")
}

/// A proxy in front of `upstream` that swaps the deep input in for the marker in fetch answers,
/// counting the answers it changed in `poisoned`.
fn start_proxy(upstream: &str, poisoned: Arc<AtomicUsize>) -> Proxy {
    Proxy::rewriting(
        upstream,
        Arc::new(move |path, bytes| {
            if path.starts_with(paths::WORK_FETCH) {
                poison(&poisoned, bytes)
            } else {
                bytes
            }
        }),
    )
}

fn poison(poisoned: &AtomicUsize, bytes: Bytes) -> Bytes {
    let Ok(mut answer) = serde_json::from_slice::<Value>(&bytes) else {
        return bytes;
    };
    let mut swapped = false;
    if let Some(assignments) = answer["assignments"].as_array_mut() {
        for assignment in assignments {
            if assignment["input"] == marker() {
                assignment["input"] = deep_input();
                swapped = true;
            }
        }
    }
    if !swapped {
        return bytes;
    }
    poisoned.fetch_add(1, Ordering::SeqCst);
    // Writing JSON has no depth limit; only reading it does.
    Bytes::from(serde_json::to_vec(&answer).expect("serialize the poisoned answer"))
}

/// Whether the process is still running (not exited, not a zombie).
fn alive(process: &Proc) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", process.pid()))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .next()?
                .to_owned();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

#[test]
fn poisoned_units_fail_alone_and_every_volunteer_survives() {
    let mut project = Project::start();
    project.publish(HOSTILE, "hostile", "1.0.0", &[]);
    let poisoned = Arc::new(AtomicUsize::new(0));
    let proxy = start_proxy(&project.url, poisoned.clone());
    // The volunteers talk to the server through the proxy; the researcher talks to it directly.
    let server_url = std::mem::replace(&mut project.url, proxy.url.clone());
    let volunteers = [project.join("a", 1), project.join("b", 1)];
    project.url = server_url;
    for volunteer in &volunteers {
        wait_idle(volunteer);
    }

    let good = json!({"mode": "ok"});
    // A stack overflow is a hostile input the server accepts; the marker becomes the deep input.
    let stack_bomb = json!({"mode": "stack"});
    let inputs = vec![
        good.clone(),
        marker(),
        good.clone(),
        stack_bomb.clone(),
        good.clone(),
        good.clone(),
    ];
    let request = SubmitBatchRequest {
        app: "hostile".into(),
        version: None,
        inputs: inputs.clone(),
        // The first error fails a unit, so each poisoned unit fails on its first volunteer.
        replication: Replication {
            max_error_results: Some(0),
            ..Replication::default()
        },
        priority: 0,
        label: None,
        ..SubmitBatchRequest::default()
    };
    let http = project.http();
    let batch = http.submit(&project.researcher, &request);
    http.wait_finished(&project.researcher, batch.batch_id);

    let rows = http.results(&project.researcher, batch.batch_id);
    assert_eq!(rows.len(), inputs.len());
    for (row, input) in rows.iter().zip(&inputs) {
        if *input == good {
            assert_eq!(row.state, UnitState::Done, "{row:?}");
        } else {
            assert_eq!(row.state, UnitState::Failed, "{row:?}");
        }
    }
    assert!(poisoned.load(Ordering::SeqCst) >= 1);

    let deep = http.unit(&project.researcher, rows[1].unit_id);
    let reasons: Vec<&str> = deep
        .replicas
        .iter()
        .filter_map(|r| r.error.as_deref())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("bad-assignment: ")
                && r.contains("nested more than 64 levels deep")),
        "{reasons:?}"
    );
    let stack = http.unit(&project.researcher, rows[3].unit_id);
    let reasons: Vec<&str> = stack
        .replicas
        .iter()
        .filter_map(|r| r.error.as_deref())
        .collect();
    assert!(reasons.iter().any(|r| r.contains("stack")), "{reasons:?}");

    // Both volunteers are still running and still working: neither stopped, and the one that
    // refused the deep unit said so once.
    wait_for("the refusal to be logged", || {
        volunteers
            .iter()
            .any(|v| !v.stdout.events("bad-assignment").is_empty())
            .then_some(())
    });
    let refusals: usize = volunteers
        .iter()
        .map(|v| v.stdout.events("bad-assignment").len())
        .sum();
    assert_eq!(refusals, 1);
    for volunteer in &volunteers {
        assert!(alive(volunteer), "a volunteer exited");
        assert!(
            volunteer.stdout.events("stopped").is_empty(),
            "{:?}",
            volunteer.stdout.snapshot()
        );
    }
    // And they keep taking work after it.
    let more = http.submit(
        &project.researcher,
        &SubmitBatchRequest {
            inputs: vec![good.clone(), good.clone()],
            ..request
        },
    );
    let status = http.wait_finished(&project.researcher, more.batch_id);
    assert_eq!(status.counts.done, 2, "{status:?}");
}
