//! The bytes a task receives for a unit's input.
//!
//! Replicas are compared byte for byte and their fuel must match, so every client must hand a
//! task the very same bytes for the same input. serde_json's own encoding cannot promise that:
//! the order of an object's keys depends on its `preserve_order` cargo feature, which any crate
//! in a build can switch on (the server does, for its CSV columns). Hence this fixed encoding.

use serde_json::Value;

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
