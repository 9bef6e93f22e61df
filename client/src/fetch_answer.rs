//! Decoding a fetch answer so that one bad assignment cannot fail the others.
//!
//! The envelope is read with each assignment kept as raw JSON text (serde_json skips raw values
//! without recursing, so no depth of nesting fails it); each assignment is then decoded and its
//! input checked against the protocol's limits on its own. What fails is kept as a
//! [`BadAssignment`] with the replica's id when that much can be read, so the volunteer reports
//! it as an error of that replica and carries on.

use musketeer_protocol::{Assignment, ReportAck, ResultId};
use serde::Deserialize;
use serde_json::value::RawValue;

/// A fetch answer whose assignments were decoded one by one.
#[derive(Debug)]
pub struct FetchAnswer {
    /// Each assignment of the answer, in order: decoded and within the limits, or why not.
    pub assignments: Vec<Result<Assignment, BadAssignment>>,
    /// Results from `in_flight` that are no longer needed.
    pub cancelled: Vec<ResultId>,
    /// Why the host gets no work at all now (banned, quarantined, daily quota used), if so.
    pub refusal: Option<String>,
    /// One per result the fetch carried; none from older servers (they ignore the results).
    pub acks: Vec<ReportAck>,
}

/// An assignment the client will not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAssignment {
    /// The replica, if its id could be read.
    pub result_id: Option<ResultId>,
    /// Why it was refused, in one line.
    pub reason: String,
}

#[derive(Deserialize)]
struct Envelope {
    assignments: Vec<Box<RawValue>>,
    cancelled: Vec<ResultId>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    acks: Vec<ReportAck>,
}

/// Just the id of an assignment; every other field is skipped without being decoded.
#[derive(Deserialize)]
struct IdOnly {
    result_id: ResultId,
}

/// Decodes a fetch answer; fails only when the envelope itself is not a fetch answer.
pub fn decode(bytes: &[u8]) -> Result<FetchAnswer, serde_json::Error> {
    let envelope: Envelope = serde_json::from_slice(bytes)?;
    Ok(FetchAnswer {
        assignments: envelope.assignments.iter().map(|raw| one(raw)).collect(),
        cancelled: envelope.cancelled,
        refusal: envelope.refusal,
        acks: envelope.acks,
    })
}

fn one(raw: &RawValue) -> Result<Assignment, BadAssignment> {
    match serde_json::from_str::<Assignment>(raw.get()) {
        Ok(assignment) => {
            // A JSON input's depth and size, a raw input's size; never both kinds at once.
            let checked = match assignment.unit_input() {
                Ok(input) => input.check().map_err(|error| error.to_string()),
                Err(why) => Err(why.to_owned()),
            };
            match checked {
                Ok(()) => Ok(assignment),
                Err(why) => Err(BadAssignment {
                    result_id: Some(assignment.result_id),
                    reason: format!("bad assignment: {why}"),
                }),
            }
        }
        Err(error) => Err(BadAssignment {
            result_id: serde_json::from_str::<IdOnly>(raw.get())
                .ok()
                .map(|id| id.result_id),
            reason: format!(
                "bad assignment: cannot decode it: {}",
                one_line(&error.to_string())
            ),
        }),
    }
}

/// Longest reason kept, in characters.
const MAX_REASON_CHARS: usize = 300;

/// Decoder errors quote the JSON they stumbled on, which the server's user chose: escape control
/// characters (no forged log lines or terminal escapes) and cap the length.
fn one_line(text: &str) -> String {
    let mut shown: String = text
        .chars()
        .take(MAX_REASON_CHARS)
        .flat_map(char::escape_default)
        .collect();
    if text.chars().nth(MAX_REASON_CHARS).is_some() {
        shown.push_str("...");
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use musketeer_protocol::UnitId;
    use serde_json::json;

    fn assignment(result: &str, input: &str) -> String {
        let manifest = json!({"manifest": {}, "signature": "x"});
        format!(
            r#"{{"result_id":"{result}","unit_id":{unit},"app":"demo","version":"1.0.0","module_sha256":"{hash}","module_size":3,"signed_manifest":{manifest},"input":{input},"deadline_ms":1,"limits":{{"fuel":1,"memory_bytes":1,"wall_time_ms":1,"output_bytes":1}}}}"#,
            unit = result.split('.').next().unwrap(),
            hash = "ab".repeat(32),
        )
    }

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    fn answer(assignments: &[String]) -> Vec<u8> {
        format!(
            r#"{{"assignments":[{}],"cancelled":["9.0"]}}"#,
            assignments.join(",")
        )
        .into_bytes()
    }

    #[test]
    fn a_deep_input_fails_only_its_own_assignment() {
        // 125 deep: within serde_json's limit for one assignment, beyond it for the whole answer
        // (which is what stopped every volunteer before).
        let bytes = answer(&[
            assignment("1.0", "{\"n\":1}"),
            assignment("2.0", &nested(125)),
            assignment("3.0", &nested(300)),
            assignment("4.0", "[2]"),
        ]);
        assert!(serde_json::from_slice::<musketeer_protocol::FetchResponse>(&bytes).is_err());
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.cancelled.len(), 1);
        let [first, second, third, fourth] = &decoded.assignments[..] else {
            panic!("{:?}", decoded.assignments)
        };
        assert_eq!(first.as_ref().unwrap().unit_id, UnitId(1));
        assert_eq!(fourth.as_ref().unwrap().unit_id, UnitId(4));
        let second = second.as_ref().unwrap_err();
        assert_eq!(second.result_id.map(|r| r.unit), Some(UnitId(2)));
        assert!(second.reason.contains("nested more than 64"), "{second:?}");
        let third = third.as_ref().unwrap_err();
        assert_eq!(third.result_id.map(|r| r.unit), Some(UnitId(3)));
        assert!(third.reason.contains("cannot decode"), "{third:?}");
    }

    #[test]
    fn raw_inputs_are_read_as_bytes_and_checked_for_size_and_shape() {
        let raw = |result: &str, input: &str, base64: &str| {
            assignment(result, input).replacen(
                "\"deadline_ms\"",
                &format!("\"input_base64\":\"{base64}\",\"deadline_ms\""),
                1,
            )
        };
        let too_long = "eHh4".repeat(musketeer_protocol::limits::MAX_INPUT_BYTES / 3 + 1);
        let decoded = decode(&answer(&[
            raw("1.0", "null", "YSAiYiI="),
            raw("2.0", "\"a\"", "YQ=="),
            raw("3.0", "null", &too_long),
        ]))
        .unwrap();
        let first = decoded.assignments[0].as_ref().unwrap();
        assert_eq!(
            first.unit_input(),
            Ok(musketeer_protocol::UnitInput::Raw(b"a \"b\"".to_vec()))
        );
        let both = decoded.assignments[1].as_ref().unwrap_err();
        assert!(
            both.reason.contains("both `input` and `input_base64`"),
            "{both:?}"
        );
        let long = decoded.assignments[2].as_ref().unwrap_err();
        assert!(long.reason.contains("larger than"), "{long:?}");
    }

    #[test]
    fn an_assignment_without_a_readable_id_is_kept_as_unknown() {
        let decoded = decode(&answer(&[
            r#"{"result_id":7}"#.to_owned(),
            "[1,2]".to_owned(),
            assignment("5.1", "null"),
        ]))
        .unwrap();
        assert_eq!(decoded.assignments[0].as_ref().unwrap_err().result_id, None);
        assert_eq!(decoded.assignments[1].as_ref().unwrap_err().result_id, None);
        assert!(decoded.assignments[2].is_ok());
    }

    #[test]
    fn reasons_are_one_short_line() {
        // The decoder quotes the 1000-character id it could not read.
        let bytes = answer(&[assignment(&format!("1.{}", "9".repeat(1000)), "null")]);
        let bad = decode(&bytes).unwrap().assignments.remove(0).unwrap_err();
        assert!(
            bad.reason.len() < 2 * MAX_REASON_CHARS,
            "{}",
            bad.reason.len()
        );
        assert_eq!(one_line("a\nb\u{1b}"), "a\\nb\\u{1b}");
    }

    #[test]
    fn the_servers_refusal_is_kept() {
        let answer =
            decode(br#"{"assignments":[],"cancelled":[],"refusal":"banned: forged outputs"}"#)
                .unwrap();
        assert_eq!(answer.refusal.as_deref(), Some("banned: forged outputs"));
        let answer = decode(br#"{"assignments":[],"cancelled":[]}"#).unwrap();
        assert_eq!(answer.refusal, None);
        assert!(answer.acks.is_empty(), "an older server sends no acks");
        let answer = decode(
            br#"{"assignments":[],"cancelled":[],"acks":[{"result_id":"4.1","status":"duplicate"}]}"#,
        )
        .unwrap();
        assert_eq!(
            answer.acks[0].status,
            musketeer_protocol::ReportStatus::Duplicate
        );
    }

    #[test]
    fn a_broken_envelope_is_an_error() {
        for bad in [
            &b"[]"[..],
            b"{\"assignments\":[}",
            b"",
            b"{\"cancelled\":[]}",
        ] {
            assert!(decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    proptest::proptest! {

        /// Any bytes at all: an answer or an error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode(&bytes);
        }

        /// However deep each input, every assignment gets its own verdict, in order, and only
        /// inputs within the limit are accepted.
        #[test]
        fn each_assignment_gets_its_own_verdict(depths in proptest::collection::vec(0usize..300, 1..8)) {
            let assignments: Vec<String> = depths
                .iter()
                .enumerate()
                .map(|(i, depth)| assignment(&format!("{}.0", i + 1), &nested(*depth)))
                .collect();
            let decoded = decode(&answer(&assignments)).unwrap();
            proptest::prop_assert_eq!(decoded.assignments.len(), depths.len());
            for ((i, depth), verdict) in depths.iter().enumerate().zip(&decoded.assignments) {
                let unit = UnitId(i as u64 + 1);
                match verdict {
                    Ok(a) => {
                        proptest::prop_assert!(*depth <= musketeer_protocol::limits::MAX_INPUT_DEPTH);
                        proptest::prop_assert_eq!(a.unit_id, unit);
                    }
                    Err(bad) => {
                        proptest::prop_assert!(*depth > musketeer_protocol::limits::MAX_INPUT_DEPTH);
                        proptest::prop_assert_eq!(bad.result_id.map(|r| r.unit), Some(unit));
                    }
                }
            }
        }
    }
}
