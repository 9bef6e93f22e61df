use super::*;
use std::time::Duration;

use musketeer_protocol::{Base64Bytes, Outcome, UnitId};

fn result(unit: u64, replica: u32) -> ResultReport {
    ResultReport {
        result_id: ResultId {
            unit: UnitId(unit),
            replica,
        },
        outcome: Outcome::Success {
            output: Base64Bytes(format!("output of {unit}").into_bytes()),
            fuel_consumed: unit,
            wall_ms: 1,
            stderr_tail: String::new(),
        },
    }
}

fn open(dir: &Path) -> Spool {
    Spool::open(dir.to_path_buf()).unwrap()
}

fn waiting_units(spool: &Spool) -> Vec<u64> {
    spool.ids(usize::MAX).iter().map(|id| id.unit.0).collect()
}

#[tokio::test]
async fn results_survive_a_restart_until_removed() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    spool.push(result(42, 1)).await.unwrap();
    spool.push(result(43, 1)).await.unwrap();
    drop(spool);
    let spool = open(dir.path());
    assert_eq!(spool.pending(10), vec![result(42, 1), result(43, 1)]);
    spool.remove(result(42, 1).result_id);
    drop(spool);
    assert_eq!(waiting_units(&open(dir.path())), vec![43]);
}

#[tokio::test]
async fn a_pushed_result_is_held_but_reported_only_once_released() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    spool.push(result(8, 1)).await.unwrap();
    assert_eq!(waiting_units(&spool), vec![8]);
    assert!(spool.pending(10).is_empty());
    spool.release(result(8, 1).result_id);
    spool.synced().await;
    assert_eq!(spool.pending(10), vec![result(8, 1)]);
}

#[tokio::test]
async fn a_written_result_frees_its_caller_but_is_reported_only_once_synced() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    // Another thread holds the syncer back until told (no lock held across an await here).
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (let_go_tx, let_go_rx) = std::sync::mpsc::channel::<()>();
    let durability = spool.durability.clone();
    let holder = std::thread::spawn(move || {
        let _held = durability.hold_syncs.lock().unwrap();
        held_tx.send(()).unwrap();
        let _ = let_go_rx.recv();
    });
    held_rx.recv().unwrap();
    // Returns on the write alone: the syncer cannot sync while the test holds it.
    tokio::time::timeout(Duration::from_secs(30), spool.push(result(3, 1)))
        .await
        .expect("push waits only for the write")
        .unwrap();
    spool.release(result(3, 1).result_id);
    assert_eq!(waiting_units(&spool), vec![3]);
    assert!(!spool.has_reportable());
    assert!(
        spool.pending(10).is_empty(),
        "reported before it was synced"
    );
    let_go_tx.send(()).unwrap();
    holder.join().unwrap();
    spool.synced().await;
    assert!(spool.has_reportable());
    assert_eq!(spool.pending(10), vec![result(3, 1)]);
}

#[tokio::test]
async fn the_reporter_is_told_when_results_become_durable() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    spool.push(result(4, 1)).await.unwrap();
    spool.release(result(4, 1).result_id);
    // The syncer's notice is kept until the reporter waits, so it cannot be missed.
    tokio::time::timeout(Duration::from_secs(30), async {
        while !spool.has_reportable() {
            spool.on_synced().notified().await;
        }
    })
    .await
    .expect("told of the sync");
    assert_eq!(spool.pending(10), vec![result(4, 1)]);
}

#[tokio::test]
async fn results_written_before_a_drop_are_on_disk_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    spool.push(result(11, 1)).await.unwrap();
    // Queued, not awaited: the drop writes and syncs it.
    spool.push_soon(result(12, 1)).unwrap();
    drop(spool);
    let spool = open(dir.path());
    // Loaded from disk: durable, so reportable at once.
    assert_eq!(spool.pending(10), vec![result(11, 1), result(12, 1)]);
}

#[tokio::test]
async fn discarded_results_stay_gone_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    for replica in 1..=3 {
        spool.push(result(7, replica)).await.unwrap();
    }
    assert_eq!(spool.discard_all(), 3);
    assert!(spool.is_empty());
    drop(spool);
    assert!(open(dir.path()).is_empty());
}

#[tokio::test]
async fn results_pushed_together_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(open(dir.path()));
    let pushes: Vec<_> = (1..=64)
        .map(|unit| {
            let spool = spool.clone();
            tokio::spawn(async move { spool.push(result(unit, 1)).await })
        })
        .collect();
    for push in pushes {
        push.await.unwrap().unwrap();
    }
    drop(spool);
    assert_eq!(
        waiting_units(&open(dir.path())),
        (1..=64).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_torn_last_record_is_dropped_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    spool.push(result(1, 1)).await.unwrap();
    spool.push(result(2, 1)).await.unwrap();
    drop(spool);
    let log = dir.path().join(LOG_NAME);
    let whole = std::fs::metadata(&log).unwrap().len();
    // A crash in the middle of an append: half of a third record.
    let torn = frame(&RecordRef::Result {
        report: &result(3, 1),
    })
    .unwrap();
    let mut file = OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(&torn[..torn.len() / 2]).unwrap();
    drop(file);

    let spool = open(dir.path());
    assert_eq!(waiting_units(&spool), vec![1, 2]);
    assert_eq!(std::fs::metadata(&log).unwrap().len(), whole);
    spool.push(result(4, 1)).await.unwrap();
    drop(spool);
    assert_eq!(waiting_units(&open(dir.path())), vec![1, 2, 4]);
}

#[tokio::test]
async fn a_record_with_a_bad_checksum_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path());
    for unit in 1..=3 {
        spool.push(result(unit, 1)).await.unwrap();
    }
    drop(spool);
    let log = dir.path().join(LOG_NAME);
    let mut bytes = std::fs::read(&log).unwrap();
    let first = frame(&RecordRef::Result {
        report: &result(1, 1),
    })
    .unwrap()
    .len();
    // One flipped bit inside the second record's payload.
    bytes[first + HEADER_BYTES + 5] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();
    assert_eq!(waiting_units(&open(dir.path())), vec![1, 3]);
}

#[tokio::test]
async fn a_mostly_acknowledged_log_is_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open_compacting_after(dir.path().to_path_buf(), 8).unwrap();
    for unit in 1..=10 {
        spool.push(result(unit, 1)).await.unwrap();
    }
    for unit in 1..=9 {
        spool.remove(result(unit, 1).result_id);
    }
    drop(spool);
    let loaded = read_log(&dir.path().join(LOG_NAME)).unwrap();
    // 10 results and 9 tombstones were written; a rewrite keeps far fewer records.
    assert!(loaded.records < 8, "{} records left", loaded.records);
    assert_eq!(
        loaded
            .entries
            .keys()
            .map(|id| id.unit.0)
            .collect::<Vec<_>>(),
        vec![10]
    );
    assert!(!dir.path().join("spool.log.tmp").exists());
}

#[tokio::test]
async fn the_one_file_per_result_spool_of_older_clients_is_moved_in_once() {
    let dir = tempfile::tempdir().unwrap();
    for unit in [5, 6] {
        let report = result(unit, 2);
        std::fs::write(
            dir.path().join(format!("{}.json", report.result_id)),
            serde_json::to_vec(&report).unwrap(),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("9.1.json"), b"not a result").unwrap();

    let spool = open(dir.path());
    assert_eq!(spool.pending(10), vec![result(5, 2), result(6, 2)]);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, vec![LOG_NAME.to_owned()]);
    spool.remove(result(5, 2).result_id);
    drop(spool);
    assert_eq!(waiting_units(&open(dir.path())), vec![6]);
}
