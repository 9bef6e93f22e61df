//! The bytes a task receives for a unit's input.
//!
//! Replicas are compared byte for byte and their fuel must match, so every client must hand a
//! task the very same bytes for the same input. serde_json's own encoding cannot promise that:
//! the order of an object's keys depends on its `preserve_order` cargo feature, which any crate
//! in a build can switch on (the server does, for its CSV columns). Hence this fixed encoding.
//!
//! A unit's input is a JSON value, or raw bytes (`musketeer submit --lines`: one line each)
//! that reach the task unchanged; [`UnitInput`] is either.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Base64Bytes;
use crate::limits::{InputLimitError, MAX_INPUT_BYTES, check_input};

/// A unit's input as the researcher submitted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UnitInput {
    /// A JSON value; the task receives [`task_input_bytes`] of it.
    Json(Value),
    /// Bytes handed to the task exactly as submitted (a line of `submit --lines`).
    Raw(Vec<u8>),
}

impl UnitInput {
    /// The bytes the task receives, the same on every client.
    pub fn task_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Self::Json(value) => Cow::Owned(task_input_bytes(value)),
            Self::Raw(bytes) => Cow::Borrowed(bytes),
        }
    }

    /// The JSON value of a JSON input.
    pub fn json(&self) -> Option<&Value> {
        match self {
            Self::Json(value) => Some(value),
            Self::Raw(_) => None,
        }
    }

    /// The bytes of a raw input.
    pub fn raw(&self) -> Option<&[u8]> {
        match self {
            Self::Json(_) => None,
            Self::Raw(bytes) => Some(bytes),
        }
    }

    /// Whether only clients that declare the raw-input capability may run it.
    pub fn is_raw(&self) -> bool {
        matches!(self, Self::Raw(_))
    }

    /// Checks the input against the protocol's limits: a JSON value's depth and compact size
    /// ([`check_input`]), raw bytes' length.
    pub fn check(&self) -> Result<(), InputLimitError> {
        match self {
            Self::Json(value) => check_input(value),
            Self::Raw(bytes) if bytes.len() > MAX_INPUT_BYTES => Err(InputLimitError::TooLarge {
                max: MAX_INPUT_BYTES,
            }),
            Self::Raw(_) => Ok(()),
        }
    }

    /// How results and unit views show the input: `(input, input_base64)`. A JSON input is
    /// itself; raw bytes that are UTF-8 are a JSON string of that text; other raw bytes are
    /// `null` with the exact bytes in `input_base64` (as outputs use `output_base64`).
    pub fn shown(&self) -> (Value, Option<Base64Bytes>) {
        match self {
            Self::Json(value) => (value.clone(), None),
            Self::Raw(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => (Value::String(text.to_owned()), None),
                Err(_) => (Value::Null, Some(Base64Bytes(bytes.clone()))),
            },
        }
    }
}

impl From<Value> for UnitInput {
    fn from(value: Value) -> Self {
        Self::Json(value)
    }
}

/// Compact JSON (no whitespace) with every object's keys in byte order, at every depth; arrays
/// keep their order; strings and numbers exactly as serde_json writes them.
pub fn task_input_bytes(input: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_sorted(input, &mut out);
    out
}

fn write_sorted(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(b':');
                write_sorted(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_sorted(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(scalar: &Value, out: &mut Vec<u8>) {
    // Writing a string, number, bool or null into a Vec has no way to fail.
    serde_json::to_writer(&mut *out, scalar).expect("a JSON scalar serializes into memory");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_at_every_depth_whatever_the_insertion_order() {
        let mut inner = serde_json::Map::new();
        inner.insert("z".into(), Value::from(1));
        inner.insert("a".into(), Value::from("é\"\n"));
        let mut outer = serde_json::Map::new();
        outer.insert("stock_id".into(), Value::from("2356"));
        outer.insert(
            "list".into(),
            Value::Array(vec![Value::Object(inner), Value::Null]),
        );
        outer.insert("month".into(), Value::from(5));
        outer.insert("Year".into(), Value::from(2016.5));
        assert_eq!(
            String::from_utf8(task_input_bytes(&Value::Object(outer))).unwrap(),
            r#"{"Year":2016.5,"list":[{"a":"é\"\n","z":1},null],"month":5,"stock_id":"2356"}"#
        );
    }

    #[test]
    fn raw_inputs_reach_the_task_unchanged_and_show_as_text_or_base64() {
        let line = b"say \"hi\"\tC:\\dir".to_vec();
        let raw = UnitInput::Raw(line.clone());
        assert_eq!(raw.task_bytes().as_ref(), line.as_slice());
        assert_eq!(raw.shown(), (Value::from("say \"hi\"\tC:\\dir"), None));
        let latin1 = UnitInput::Raw(vec![b'c', 0xe9, b'!']);
        assert_eq!(latin1.task_bytes().as_ref(), b"c\xe9!");
        assert_eq!(
            latin1.shown(),
            (Value::Null, Some(Base64Bytes(vec![b'c', 0xe9, b'!'])))
        );
        // The same text as a JSON input is quoted and escaped for the task.
        let json = UnitInput::from(Value::from("say \"hi\""));
        assert_eq!(json.task_bytes().as_ref(), br#""say \"hi\"""#);
        assert!(raw.is_raw() && !json.is_raw());
    }

    #[test]
    fn raw_inputs_are_limited_by_length_only() {
        let at_limit = UnitInput::Raw(vec![b'['; MAX_INPUT_BYTES]);
        assert_eq!(at_limit.check(), Ok(()));
        let over = UnitInput::Raw(vec![b'x'; MAX_INPUT_BYTES + 1]);
        assert_eq!(
            over.check(),
            Err(InputLimitError::TooLarge {
                max: MAX_INPUT_BYTES
            })
        );
    }

    #[test]
    fn non_objects_are_plain_compact_json() {
        for (value, text) in [
            (serde_json::json!("the cat"), r#""the cat""#),
            (serde_json::json!([3, 1, 2]), "[3,1,2]"),
            (serde_json::json!(-0.5), "-0.5"),
            (serde_json::json!({}), "{}"),
        ] {
            assert_eq!(String::from_utf8(task_input_bytes(&value)).unwrap(), text);
        }
    }
}
