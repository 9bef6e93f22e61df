//! Volunteers in control: preferences (battery, schedule, CPU share) and `musketeer status`,
//! `pause` and `resume`, through the real binaries.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use musketeer_protocol::{BatchId, UnitState};
use musketeer_task_artifacts::{HOSTILE, PRIMES};

use crate::support::{Proc, Project, musketeer, musketeer_ok, path, primes_answer, wait_for};

/// Writes a fake `/sys/class/power_supply` with one mains supply.
fn mains(dir: &Path, online: bool) {
    let ac = dir.join("AC");
    std::fs::create_dir_all(&ac).expect("supply dir");
    std::fs::write(ac.join("type"), "Mains\n").expect("type");
    std::fs::write(ac.join("online"), if online { "1\n" } else { "0\n" }).expect("online");
}

/// `musketeer join` with extra environment variables (through `env`, which execs it: the
/// process is the client itself).
fn join_with_env(project: &Project, name: &str, envs: &[String], extra: &[&str]) -> Proc {
    let mut program: Vec<OsString> = vec!["env".into()];
    program.extend(envs.iter().map(OsString::from));
    program.push(musketeer().into());
    project.join_program(&program, name, 1, extra)
}

fn assert_primes_done(project: &Project, batch: BatchId, from: u64, to: u64) {
    let http = project.http();
    http.wait_finished(&project.researcher, batch);
    let rows = http.results(&project.researcher, batch);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, UnitState::Done, "{:?}", rows[0]);
    assert_eq!(rows[0].output, Some(primes_answer(from, to)));
}

/// Waits for a `suspended` event whose first reason is `reason`.
fn wait_suspended(client: &Proc, reason: &str) {
    let lines = client.stdout.clone();
    wait_for(&format!("work to be suspended ({reason})"), || {
        lines
            .events("suspended")
            .iter()
            .any(|e| e["reasons"][0]["reason"] == reason)
            .then_some(())
    });
}

fn wait_event(client: &Proc, event: &str, at_least: usize) {
    let lines = client.stdout.clone();
    wait_for(&format!("{at_least} {event} event(s)"), || {
        (lines.events(event).len() >= at_least).then_some(())
    });
}

/// CPU time (user + system, in clock ticks) the process has used: fields 14 and 15 of
/// /proc/PID/stat, which count every thread.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after_comm = &stat[stat.rfind(')').expect("(comm)") + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // After `(comm)` the state is field 3, so utime (14) and stime (15) are at 11 and 12.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// Waits until `pid` has used `ticks` more CPU time: its task computes (however loaded the
/// machine, it gets there).
fn wait_cpu_grows(pid: u32, ticks: u64) {
    let start = cpu_ticks(pid);
    wait_for(&format!("{ticks} ticks of CPU time"), || {
        (cpu_ticks(pid) >= start + ticks).then_some(())
    });
}

/// Held by the tests that measure CPU time, so that their spinning tasks do not compete.
static CPU_MEASUREMENT: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn measuring_cpu() -> std::sync::MutexGuard<'static, ()> {
    CPU_MEASUREMENT.lock().unwrap_or_else(|e| e.into_inner())
}

/// CPU ticks used by `pid` over `window`.
fn cpu_over(pid: u32, window: Duration) -> u64 {
    let before = cpu_ticks(pid);
    std::thread::sleep(window);
    cpu_ticks(pid) - before
}

/// Publishes the hostile task with enough fuel and wall time to spin for minutes.
fn publish_spinner(project: &Project) {
    let manifest = project.dir.path().join("spinner.manifest.json");
    let key = project.keys_dir().join("musketeer.key");
    musketeer_ok(
        &[
            "sign",
            "--key",
            path(&key),
            "--module",
            HOSTILE,
            "--app",
            "spinner",
            "--version",
            "1.0.0",
            "--fuel",
            "1000000000000000",
            "--timeout",
            "3600",
            "--out",
            path(&manifest),
        ],
        &[],
    );
    musketeer_ok(
        &[
            "publish",
            "--server",
            &project.url,
            "--manifest",
            path(&manifest),
            "--module",
            HOSTILE,
        ],
        &[("MUSKETEER_TOKEN", &project.publisher)],
    );
}

/// Waits until `status` shows a running unit whose task has begun (its module is ready).
fn wait_task_begins(data: &Path) {
    wait_for("a task to begin", || {
        status_json(data)["projects"]
            .as_array()?
            .iter()
            .flat_map(|project| project["running"].as_array().cloned().unwrap_or_default())
            .any(|unit| unit["preparing"] == false)
            .then_some(())
    });
}

fn status_json(data: &Path) -> serde_json::Value {
    let out = musketeer_ok(&["status", "--data-dir", path(data), "--json"], &[]);
    serde_json::from_str(&out).expect("status is JSON")
}

#[cfg(target_os = "linux")]
#[test]
fn on_battery_running_work_pauses_and_continues_on_mains() {
    let _alone = measuring_cpu();
    let project = Project::start();
    project.publish(PRIMES, "primes", "1.0.0", &[]);
    publish_spinner(&project);
    let power = project.dir.path().join("power");
    mains(&power, true);
    let client = join_with_env(
        &project,
        "athos",
        &[format!("MUSKETEER_POWER_SUPPLY_DIR={}", path(&power))],
        &["--nice", "0"],
    );
    crate::support::wait_idle(&client);
    project.submit_json("spinner", vec![serde_json::json!({"mode": "loop"})]);
    wait_event(&client, "started", 1);
    // Its module fetched and compiled, so that the CPU time below is the task's own.
    wait_task_begins(&project.client_dir("athos"));
    wait_cpu_grows(client.pid(), 50);

    // Unplugged: the running task stops where it is, and the volunteer hears why.
    mains(&power, false);
    wait_suspended(&client, "on-battery");
    let status = musketeer_ok(
        &["status", "--data-dir", path(&project.client_dir("athos"))],
        &[],
    );
    assert!(status.contains("work: suspended: on battery"), "{status}");
    assert!(status.contains("running: unit"), "{status}");
    let while_suspended = cpu_over(client.pid(), Duration::from_secs(2));
    assert!(
        while_suspended <= 20,
        "{while_suspended} ticks in 2 s on battery"
    );
    // Queued work waits too.
    let batch = project.submit_json("primes", vec![serde_json::json!({"from": 1, "to": 5000})]);

    // Plugged in again: the same task goes on.
    mains(&power, true);
    wait_event(&client, "resumed", 1);
    wait_cpu_grows(client.pid(), 50);
    assert_eq!(
        client.stdout.events("started").len(),
        1,
        "no task restarted"
    );
    drop(client);
    // The spinner holds the only slot: the primes unit was never started by this client.
    let rows = project.http().results(&project.researcher, batch);
    assert_ne!(rows[0].state, UnitState::Done);
}

#[test]
fn pause_status_and_resume_through_the_binary() {
    let project = Project::start();
    project.publish(PRIMES, "primes", "1.0.0", &[]);
    let client = project.join("athos", 1);
    let data = project.client_dir("athos");
    crate::support::wait_idle(&client);
    let first = project.submit_json("primes", vec![serde_json::json!({"from": 1, "to": 20000})]);
    assert_primes_done(&project, first, 1, 20000);

    // The volunteer's own credit, read from the server with the host's token.
    let credited = wait_for("the credit to show", || {
        let status = status_json(&data);
        (status["projects"][0]["host"]["credit"]
            .as_u64()
            .unwrap_or(0)
            > 0)
        .then_some(status)
    });
    assert_eq!(credited["suspended"], serde_json::json!([]));
    assert_eq!(credited["projects"][0]["host"]["succeeded"], 1);
    let text = musketeer_ok(&["status", "--data-dir", path(&data)], &[]);
    assert!(
        text.contains("work: running") && text.contains("credit: "),
        "{text}"
    );

    let said = musketeer_ok(&["pause", "--for", "1h", "--data-dir", path(&data)], &[]);
    assert!(said.contains("paused for 3600 s"), "{said}");
    wait_suspended(&client, "user-paused");
    let paused = status_json(&data);
    assert_eq!(paused["suspended"][0]["reason"], "user-paused");
    assert!(paused["suspended"][0]["until_unix_s"].as_u64().is_some());

    // Nothing is computed while paused: the client fetches nothing more, and work that a
    // fetch already under way brings is held at its start.
    let second = project.submit_json("primes", vec![serde_json::json!({"from": 1, "to": 30000})]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(client.stdout.events("finished").len(), 1);
    let counts = project
        .http()
        .status(&project.researcher, second)
        .expect("status")
        .counts;
    assert_eq!(counts.done, 0, "{counts:?}");

    musketeer_ok(&["resume", "--data-dir", path(&data)], &[]);
    wait_event(&client, "resumed", 1);
    assert_primes_done(&project, second, 1, 30000);
}

#[test]
fn a_schedule_suspends_outside_its_hours_and_preferences_are_read_again() {
    let project = Project::start();
    project.publish(PRIMES, "primes", "1.0.0", &[]);
    let data = project.client_dir("athos");
    std::fs::create_dir_all(&data).expect("data dir");
    // A range that leaves out this minute and the next (UTC, set below as the client's zone).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        / 60
        % 1440;
    let start = (now + 2) % 1440;
    let range = format!(
        "{:02}:{:02}-{:02}:{:02}",
        start / 60,
        start % 60,
        now / 60,
        now % 60
    );
    let prefs = data.join("preferences.toml");
    std::fs::write(&prefs, format!("schedule = \"{range}\"\n")).expect("preferences");
    let client = join_with_env(&project, "athos", &["TZ=UTC".into()], &[]);
    wait_suspended(&client, "outside-schedule");
    let batch = project.submit_json("primes", vec![serde_json::json!({"from": 1, "to": 1000})]);

    // The volunteer widens the schedule; the client reads the file again and works.
    std::fs::write(&prefs, "schedule = \"00:00-24:00\"\n").expect("preferences");
    wait_event(&client, "resumed", 1);
    assert_primes_done(&project, batch, 1, 1000);
    let announced = client.stdout.events("preferences");
    assert!(
        announced
            .iter()
            .any(|e| e["preferences"]["schedule"] == "00:00-24:00"),
        "the change is announced: {announced:?}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn half_the_cpu_share_uses_clearly_less_cpu_time() {
    let _alone = measuring_cpu();
    let project = Project::start();
    publish_spinner(&project);
    // Both at once, so that whatever else loads the machine weighs on both alike.
    let full = project.join_with("full", 1, &["--nice", "0"]);
    let half = project.join_with("half", 1, &["--nice", "0", "--cpu-percent", "50"]);
    crate::support::wait_idle(&full);
    crate::support::wait_idle(&half);
    project.submit_json("spinner", vec![serde_json::json!({"mode": "loop"}); 2]);
    wait_event(&full, "started", 1);
    wait_event(&half, "started", 1);
    let window = Duration::from_secs(6);
    let pids = [full.pid(), half.pid()];
    let before = pids.map(cpu_ticks);
    std::thread::sleep(window);
    let used = [0, 1].map(|i| cpu_ticks(pids[i]) - before[i]);
    let ratio = used[1] as f64 / used[0] as f64;
    eprintln!(
        "CPU ticks over {window:?}: 100% {} / 50% {} = {ratio:.2}",
        used[0], used[1]
    );
    assert!(used[1] > 0, "the throttled client computed");
    // About 0.5 on an idle machine; on a loaded one both clients get only what the others
    // leave, which brings the two closer (0.6-0.7 measured at a load average of 15 on 2 cores).
    assert!(
        ratio < 0.75,
        "at 50% the client used {ratio:.2} of the CPU time it used at 100%"
    );
}

#[test]
fn bad_preferences_and_no_client_are_said_plainly() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("preferences.toml"), "cpu_precent = 50\n").expect("write");
    let joined = Command::new(musketeer())
        .args(["join", "http://127.0.0.1:9", "--data-dir", path(dir.path())])
        .output()
        .expect("run musketeer");
    assert!(!joined.status.success());
    let said = String::from_utf8_lossy(&joined.stderr);
    assert!(
        said.contains("cpu_precent") && said.contains("preferences"),
        "{said}"
    );

    let status = Command::new(musketeer())
        .args(["status", "--data-dir", path(dir.path())])
        .output()
        .expect("run musketeer");
    assert!(!status.status.success());
    let said = String::from_utf8_lossy(&status.stderr);
    assert!(said.contains("no musketeer client is running"), "{said}");
}
