//! JSON conveniences for tasks whose input and output are JSON documents.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Decodes the task input as JSON.
///
/// The error text is `invalid input JSON: <serde_json message>`, ready to return from `run`.
pub fn parse_json<T: DeserializeOwned>(input: &[u8]) -> Result<T, String> {
    serde_json::from_slice(input).map_err(|e| format!("invalid input JSON: {e}"))
}

/// Encodes a task output as compact JSON.
///
/// The error text is `cannot encode output as JSON: <serde_json message>` (for example a map
/// with non-string keys).
pub fn to_json<T: Serialize + ?Sized>(output: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(output).map_err(|e| format!("cannot encode output as JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Input {
        n: u32,
    }

    #[test]
    fn parse_json_reports_the_decoder_error() {
        assert_eq!(parse_json::<Input>(br#"{"n":3}"#), Ok(Input { n: 3 }));
        let err = parse_json::<Input>(br#"{"n":"x"}"#).unwrap_err();
        assert!(err.starts_with("invalid input JSON: invalid type"), "{err}");
    }

    #[test]
    fn to_json_is_compact() {
        assert_eq!(to_json(&[1, 2]).unwrap(), b"[1,2]");
    }
}
