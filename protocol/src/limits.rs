//! Limits on what travels to a volunteer, shared by both sides: the server refuses at submit
//! what a client could not take, and a client checks every assignment again before running it,
//! so one hostile input can neither stop a volunteer nor slip past an older server.

use serde_json::Value;

/// Deepest nesting of arrays and objects accepted in one unit's input (a bare scalar is depth
/// 0, `[1]` depth 1). serde_json refuses documents nested 128 deep; the fetch answer wraps each
/// input in 3 levels (answer, assignment list, assignment), so this stays far below that.
pub const MAX_INPUT_DEPTH: usize = 64;

/// Largest input, in bytes of its compact JSON ([`task_input_bytes`](crate::task_input_bytes)).
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;

/// Most assignments the server sends in one fetch answer.
pub const MAX_ASSIGNMENTS_PER_FETCH: u32 = 64;

/// Largest signed manifest text an assignment may carry (the signing-keys crate's
/// `SignedManifest::MAX_JSON_BYTES`; a client test keeps the two equal).
pub const MAX_SIGNED_MANIFEST_BYTES: usize = 1024 * 1024;

/// Room for one assignment at its largest input and manifest, with its other fields.
const MAX_ASSIGNMENT_BYTES: usize = MAX_INPUT_BYTES + MAX_SIGNED_MANIFEST_BYTES + 64 * 1024;

/// Room for the envelope and the cancelled list of a fetch answer.
const FETCH_ENVELOPE_BYTES: usize = 1024 * 1024;

/// Largest fetch answer any client reads: [`fetch_answer_cap`] of a full fetch.
pub const MAX_FETCH_ANSWER_BYTES: usize =
    MAX_ASSIGNMENTS_PER_FETCH as usize * MAX_ASSIGNMENT_BYTES + FETCH_ENVELOPE_BYTES;

/// Largest answer to a fetch asking for `free_slots` assignments: the server sends at most that
/// many (and at most [`MAX_ASSIGNMENTS_PER_FETCH`]), each at most its largest input and manifest.
pub fn fetch_answer_cap(free_slots: u32) -> usize {
    let assignments = free_slots.min(MAX_ASSIGNMENTS_PER_FETCH) as usize;
    assignments * MAX_ASSIGNMENT_BYTES + FETCH_ENVELOPE_BYTES
}

// A full answer always fits under the cap.
const _: () = assert!(
    MAX_FETCH_ANSWER_BYTES
        > MAX_ASSIGNMENTS_PER_FETCH as usize * (MAX_INPUT_BYTES + MAX_SIGNED_MANIFEST_BYTES)
);

/// Largest answer a client reads from an endpoint with a small, bounded answer (project info,
/// register, report acknowledgements, batch status, tokens).
pub const MAX_SMALL_ANSWER_BYTES: usize = 1024 * 1024;

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputLimitError {
    /// Arrays and objects nest deeper than [`MAX_INPUT_DEPTH`].
    #[error("input is nested more than {max} levels deep")]
    TooDeep {
        /// The largest accepted depth.
        max: usize,
    },
    /// The compact JSON is longer than [`MAX_INPUT_BYTES`].
    #[error("input is larger than {max} bytes as compact JSON")]
    TooLarge {
        /// The largest accepted size.
        max: usize,
    },
}

/// Checks one unit's input against [`MAX_INPUT_DEPTH`] and [`MAX_INPUT_BYTES`].
pub fn check_input(input: &Value) -> Result<(), InputLimitError> {
    if depth_exceeds(input, MAX_INPUT_DEPTH) {
        return Err(InputLimitError::TooDeep {
            max: MAX_INPUT_DEPTH,
        });
    }
    if compact_len_exceeds(input, MAX_INPUT_BYTES) {
        return Err(InputLimitError::TooLarge {
            max: MAX_INPUT_BYTES,
        });
    }
    Ok(())
}

/// True when arrays and objects nest deeper than `max`; iterative, so no input can exhaust the
/// checker's own stack.
fn depth_exceeds(input: &Value, max: usize) -> bool {
    let mut pending: Vec<(&Value, usize)> = vec![(input, 0)];
    while let Some((value, depth)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        let inner = depth + 1;
        if inner > max {
            return true;
        }
        pending.extend(children.map(|child| (child, inner)));
    }
    false
}

/// True when the compact JSON of `input` is longer than `max` bytes; stops writing at the limit.
fn compact_len_exceeds(input: &Value, max: usize) -> bool {
    struct Counter {
        written: usize,
        max: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.written += bytes.len();
            if self.written > self.max {
                // Stops serialization early: the answer is already known.
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { written: 0, max };
    // Key order does not change the length, so serde_json's own encoding counts the same bytes
    // as `task_input_bytes`.
    serde_json::to_writer(&mut counter, input).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> Value {
        let text = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn depth_limit_is_exact() {
        assert_eq!(check_input(&nested(MAX_INPUT_DEPTH)), Ok(()));
        assert_eq!(
            check_input(&nested(MAX_INPUT_DEPTH + 1)),
            Err(InputLimitError::TooDeep {
                max: MAX_INPUT_DEPTH
            })
        );
        assert!(check_input(&nested(125)).is_err());
        let mixed: Value = serde_json::from_str(r#"{"a":[{"b":[[{}]]}],"c":1}"#).unwrap();
        assert!(!depth_exceeds(&mixed, 6));
        assert!(depth_exceeds(&mixed, 5));
        assert!(!depth_exceeds(&Value::from("scalar"), 0));
    }

    #[test]
    fn the_fetch_answer_cap_follows_the_slots_asked_for() {
        assert_eq!(fetch_answer_cap(0), FETCH_ENVELOPE_BYTES);
        assert!(fetch_answer_cap(1) > MAX_INPUT_BYTES + MAX_SIGNED_MANIFEST_BYTES);
        assert!(fetch_answer_cap(1) < 4 << 20);
        assert_eq!(fetch_answer_cap(64), MAX_FETCH_ANSWER_BYTES);
        assert_eq!(fetch_answer_cap(u32::MAX), MAX_FETCH_ANSWER_BYTES);
    }

    #[test]
    fn size_limit_counts_compact_json_bytes() {
        // `"…"` takes two bytes of quotes around the text.
        let at_limit = Value::String("x".repeat(MAX_INPUT_BYTES - 2));
        assert_eq!(check_input(&at_limit), Ok(()));
        let over = Value::String("x".repeat(MAX_INPUT_BYTES - 1));
        assert_eq!(
            check_input(&over),
            Err(InputLimitError::TooLarge {
                max: MAX_INPUT_BYTES
            })
        );
        let value: Value = serde_json::from_str(r#"{"b":[1, 2], "a":"é\n"}"#).unwrap();
        assert!(!compact_len_exceeds(
            &value,
            crate::task_input_bytes(&value).len()
        ));
        assert!(compact_len_exceeds(
            &value,
            crate::task_input_bytes(&value).len() - 1
        ));
    }
}
