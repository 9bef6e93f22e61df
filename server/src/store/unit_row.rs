//! The binary layout of `units` rows (docs/operator.md describes it). Units are the rows written
//! on every fetch and report, so they use a compact hand-written encoding instead of JSON: an
//! eighth of the bytes, no intermediate values, one buffer for all the units of a commit.
//!
//! Integers are unsigned LEB128 varints; byte strings are a varint length and the bytes. Layout:
//! format byte (1), id, batch, the five `Params` fields, status (tag 0 active, 1 done + canonical
//! index, 2 failed + reason, 3 cancelled), replica count, each replica (host: 0 none or 1 + id;
//! sent_ms; deadline_ms; stderr_tail; late 0 / 1 (format 2 only); state tag 0 unsent, 1 in
//! progress, 2 timed out, 3 success + output, fuel, wall_ms, validation 0 pending / 1 valid /
//! 2 invalid, 4 error + kind name + message, 5 not needed, 6 lost), and last the input as compact
//! JSON up to the end of the row. Format 1 rows (no late byte) are still read.
//!
//! A unit of raw input (`submit --lines`) is written as format 3: format 2 whose input is the
//! raw bytes up to the end of the row. JSON units keep writing format 2, so the stores of older
//! servers hold valid rows as they are (no migration), and a store without raw units still
//! opens in an older server.

use musketeer_protocol::{Base64Bytes, BatchId, ErrorKind, HostId, UnitId};

use super::codec::{Reader, bytes, varint};

use crate::domain::lifecycle::{
    Input, Params, Replica, ReplicaState, Unit, UnitStatus, Validation, kind_name,
};

/// The layout version in the first byte.
const FORMAT: u8 = 2;
/// The layout before replicas recorded whether they were reported late.
const FORMAT_WITHOUT_LATE: u8 = 1;
/// [`FORMAT`] with raw input bytes instead of JSON at the end.
const FORMAT_RAW_INPUT: u8 = 3;

/// Append `unit`'s row to `out`.
pub fn encode_unit(unit: &Unit, out: &mut Vec<u8>) {
    out.push(if unit.input.is_raw() {
        FORMAT_RAW_INPUT
    } else {
        FORMAT
    });
    varint(out, unit.id.0);
    varint(out, unit.batch.0);
    let p = unit.params();
    varint(out, p.min_quorum.into());
    varint(out, p.target_nresults.into());
    varint(out, p.max_error_results.into());
    varint(out, p.max_total_results.into());
    varint(out, p.delay_bound_ms);
    match &unit.status {
        UnitStatus::Active => out.push(0),
        UnitStatus::Done { canonical } => {
            out.push(1);
            varint(out, (*canonical).into());
        }
        UnitStatus::Failed { reason } => {
            out.push(2);
            bytes(out, reason.as_bytes());
        }
        UnitStatus::Cancelled => out.push(3),
    }
    varint(out, unit.replicas().len() as u64);
    for replica in unit.replicas() {
        match replica.host {
            None => out.push(0),
            Some(host) => {
                out.push(1);
                varint(out, host.0);
            }
        }
        varint(out, replica.sent_ms);
        varint(out, replica.deadline_ms);
        bytes(out, replica.stderr_tail.as_bytes());
        out.push(u8::from(replica.late));
        match &replica.state {
            ReplicaState::Unsent => out.push(0),
            ReplicaState::InProgress => out.push(1),
            ReplicaState::TimedOut => out.push(2),
            ReplicaState::Success {
                output,
                fuel,
                wall_ms,
                validation,
            } => {
                out.push(3);
                bytes(out, output.as_slice());
                varint(out, *fuel);
                varint(out, *wall_ms);
                out.push(match validation {
                    Validation::Pending => 0,
                    Validation::Valid => 1,
                    Validation::Invalid => 2,
                });
            }
            ReplicaState::Error { kind, message } => {
                out.push(4);
                bytes(out, kind_name(*kind).as_bytes());
                bytes(out, message.as_bytes());
            }
            ReplicaState::NotNeeded => out.push(5),
            ReplicaState::Lost => out.push(6),
        }
    }
    // A JSON input is kept as the compact text this row has always held.
    out.extend_from_slice(unit.input.stored_bytes());
}

/// Decode a row written by [`encode_unit`]; the error says what is wrong with it.
pub fn decode_unit(row: &[u8]) -> Result<Unit, String> {
    let mut r = Reader::new(row);
    let format = r.byte()?;
    if ![FORMAT, FORMAT_WITHOUT_LATE, FORMAT_RAW_INPUT].contains(&format) {
        return Err(format!("unknown unit row format {format}"));
    }
    let id = UnitId(r.varint()?);
    let batch = BatchId(r.varint()?);
    let params = Params {
        min_quorum: r.u32()?,
        target_nresults: r.u32()?,
        max_error_results: r.u32()?,
        max_total_results: r.u32()?,
        delay_bound_ms: r.varint()?,
    };
    let status = match r.byte()? {
        0 => UnitStatus::Active,
        1 => UnitStatus::Done {
            canonical: r.u32()?,
        },
        2 => UnitStatus::Failed {
            reason: r.string()?,
        },
        3 => UnitStatus::Cancelled,
        tag => return Err(format!("unknown unit status tag {tag}")),
    };
    let n = r.varint()?;
    // Each replica takes at least 5 bytes; refuse counts the row cannot hold before allocating.
    if n > (row.len() / 5) as u64 {
        return Err(format!("replica count {n} exceeds the row"));
    }
    let mut replicas = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let host = match r.byte()? {
            0 => None,
            1 => Some(HostId(r.varint()?)),
            tag => return Err(format!("unknown host tag {tag}")),
        };
        let sent_ms = r.varint()?;
        let deadline_ms = r.varint()?;
        let stderr_tail = r.string()?;
        let late = match format {
            FORMAT_WITHOUT_LATE => false,
            _ => match r.byte()? {
                0 => false,
                1 => true,
                tag => return Err(format!("unknown late flag {tag}")),
            },
        };
        let state = match r.byte()? {
            0 => ReplicaState::Unsent,
            1 => ReplicaState::InProgress,
            2 => ReplicaState::TimedOut,
            3 => ReplicaState::Success {
                output: Base64Bytes(r.bytes()?.to_vec()),
                fuel: r.varint()?,
                wall_ms: r.varint()?,
                validation: match r.byte()? {
                    0 => Validation::Pending,
                    1 => Validation::Valid,
                    2 => Validation::Invalid,
                    tag => return Err(format!("unknown validation tag {tag}")),
                },
            },
            4 => {
                let name = r.string()?;
                let kind: ErrorKind = serde_json::from_value(serde_json::Value::String(name))
                    .map_err(|e| format!("bad error kind: {e}"))?;
                ReplicaState::Error {
                    kind,
                    message: r.string()?,
                }
            }
            5 => ReplicaState::NotNeeded,
            6 => ReplicaState::Lost,
            tag => return Err(format!("unknown replica state tag {tag}")),
        };
        replicas.push(Replica {
            host,
            sent_ms,
            deadline_ms,
            stderr_tail,
            late,
            state,
        });
    }
    let input = match format {
        FORMAT_RAW_INPUT => Input::raw(r.rest()),
        _ => std::str::from_utf8(r.rest())
            .map_err(|e| format!("bad input: {e}"))
            .and_then(|text| Input::json_text(text).map_err(|e| format!("bad input: {e}")))?,
    };
    Unit::from_parts(id, batch, params, input, status, replicas).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use musketeer_protocol::UnitInput;
    use serde_json::json;

    /// The row of a fresh unit with one replica and `input`, written out field by field.
    fn fresh_row(min_quorum: u8, input: &[u8]) -> Vec<u8> {
        let mut row = vec![FORMAT, 7, 2];
        // Params: quorum, target, max errors, max total, then 3,600,000 ms as a varint.
        row.extend_from_slice(&[min_quorum, 1, 3, 6, 0x80, 0xdd, 0xdb, 0x01]);
        // Active; one replica: no host, sent 0, deadline 0, no log, not late, unsent.
        row.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        row.extend_from_slice(input);
        row
    }

    #[test]
    fn a_fresh_unit_writes_the_row_layout_byte_for_byte() {
        let params = Params {
            delay_bound_ms: 3_600_000,
            ..Params::resolve(&Default::default()).unwrap()
        };
        let input = json!({"b": [1, "x"], "a": 2.5});
        let unit = Unit::new(UnitId(7), BatchId(2), params, input);
        let mut row = Vec::new();
        encode_unit(&unit, &mut row);
        let expected = fresh_row(1, br#"{"b":[1,"x"],"a":2.5}"#);
        assert_eq!(row, expected);
        assert_eq!(decode_unit(&expected).unwrap(), unit);
    }

    #[test]
    fn rows_with_settings_beyond_their_limits_are_refused() {
        assert!(decode_unit(&fresh_row(64, b"1")).is_ok());
        let error = decode_unit(&fresh_row(65, b"1")).unwrap_err();
        assert!(error.contains("out of range"), "{error}");
    }

    fn replica(host: Option<u64>, state: ReplicaState) -> Replica {
        Replica {
            host: host.map(HostId),
            sent_ms: 1_700_000_000_123,
            deadline_ms: 1_700_003_600_123,
            stderr_tail: "last line\n".into(),
            late: host.is_some_and(|h| h % 2 == 0),
            state,
        }
    }

    fn every_state() -> Vec<Replica> {
        vec![
            replica(None, ReplicaState::Unsent),
            replica(Some(1), ReplicaState::InProgress),
            replica(Some(u64::MAX), ReplicaState::TimedOut),
            replica(
                Some(3),
                ReplicaState::Success {
                    output: Base64Bytes(vec![0, 255, 7]),
                    fuel: u64::MAX,
                    wall_ms: 12,
                    validation: Validation::Valid,
                },
            ),
            replica(
                Some(4),
                ReplicaState::Success {
                    output: Base64Bytes(vec![]),
                    fuel: 0,
                    wall_ms: 0,
                    validation: Validation::Invalid,
                },
            ),
            replica(
                Some(5),
                ReplicaState::Error {
                    kind: ErrorKind::FuelExhausted,
                    message: "out of fuel ✓".into(),
                },
            ),
            replica(None, ReplicaState::NotNeeded),
            replica(Some(6), ReplicaState::Lost),
        ]
    }

    #[test]
    fn every_status_and_replica_state_round_trips() {
        let statuses = [
            UnitStatus::Active,
            UnitStatus::Done { canonical: 3 },
            UnitStatus::Failed {
                reason: "too many errors".into(),
            },
            UnitStatus::Cancelled,
        ];
        for status in statuses {
            let unit = Unit::from_parts(
                UnitId(300),
                BatchId(2),
                Params {
                    min_quorum: 2,
                    target_nresults: 3,
                    max_error_results: 0,
                    max_total_results: 64,
                    delay_bound_ms: 3_600_000,
                },
                json!({"z": [1, 2.5, "x"], "a": null, "m": {"k": true}}).into(),
                status,
                every_state(),
            )
            .unwrap();
            let mut row = Vec::new();
            encode_unit(&unit, &mut row);
            let back = decode_unit(&row).unwrap();
            assert_eq!(back, unit);
            // Key order of the input is kept (CSV columns follow it).
            assert_eq!(
                serde_json::to_string(&back.input.json_value().unwrap()).unwrap(),
                r#"{"z":[1,2.5,"x"],"a":null,"m":{"k":true}}"#
            );
        }
    }

    #[test]
    fn format_1_rows_without_the_late_byte_still_read() {
        let mut unit = Unit::new(
            UnitId(7),
            BatchId(2),
            Params::resolve(&Default::default()).unwrap(),
            json!({"n": 1}),
        );
        unit.assign(HostId(3), 5);
        let mut row = Vec::new();
        encode_unit(&unit, &mut row);
        // The only replica ends with its late byte and its state tag (1: in progress).
        let input_len = unit.input.stored_bytes().len();
        let late_at = row.len() - input_len - 2;
        assert_eq!(&row[late_at..late_at + 2], &[0, 1]);
        let mut old = row.clone();
        old[0] = FORMAT_WITHOUT_LATE;
        old.remove(late_at);
        assert_eq!(decode_unit(&old).unwrap(), unit);
    }

    #[test]
    fn raw_inputs_round_trip_byte_for_byte_and_json_rows_keep_format_2() {
        let params = Params::resolve(&Default::default()).unwrap();
        // Empty, non-UTF-8 and JSON-looking bytes alike stay raw.
        for bytes in [&b""[..], b"caf\xe9 \"q\"\t\\", b"{\"a\":1}\r"] {
            let mut unit = Unit::new(
                UnitId(9),
                BatchId(4),
                params,
                UnitInput::Raw(bytes.to_vec()),
            );
            unit.assign(HostId(2), 5);
            let mut row = Vec::new();
            encode_unit(&unit, &mut row);
            assert_eq!(row[0], FORMAT_RAW_INPUT);
            assert!(row.ends_with(bytes));
            assert_eq!(decode_unit(&row).unwrap(), unit);
        }
        let mut row = Vec::new();
        encode_unit(
            &Unit::new(UnitId(9), BatchId(4), params, json!("x")),
            &mut row,
        );
        assert_eq!(row[0], FORMAT);
        assert!(row.ends_with(br#""x""#));
    }

    #[test]
    fn truncated_or_foreign_rows_are_errors() {
        let unit = Unit::new(
            UnitId(1),
            BatchId(1),
            Params::resolve(&Default::default()).unwrap(),
            json!({"n": 1}),
        );
        let mut row = Vec::new();
        encode_unit(&unit, &mut row);
        for len in 0..row.len() {
            assert!(decode_unit(&row[..len]).is_err(), "prefix of {len} bytes");
        }
        assert!(decode_unit(b"{\"id\":1}").is_err());
        assert!(decode_unit(&[FORMAT, 0xff, 0xff, 0xff]).is_err());
    }
}
