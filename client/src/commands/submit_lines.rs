//! `musketeer submit --lines FILE|-`: each line's bytes are one unit's input, handed to the task
//! unchanged (no JSON quoting or escapes).

use std::io::Read as _;
use std::path::Path;

use anyhow::{Context, bail};
use musketeer_protocol::{Base64Bytes, ErrorCode, UnitInput};

use crate::api_client::ApiError;

/// The lines of `path` (`-`: stdin), read as bytes.
pub fn read_lines(path: &Path) -> anyhow::Result<Vec<Base64Bytes>> {
    let bytes = if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("--lines -: cannot read stdin")?;
        bytes
    } else {
        std::fs::read(path).with_context(|| format!("--lines: cannot read {}", path.display()))?
    };
    let lines = split_lines(&bytes)?;
    if lines.is_empty() {
        bail!(
            "--lines {} has no lines; give a file with one input per line",
            path.display()
        );
    }
    Ok(lines)
}

/// One input per line. A line ends at `\n`, and a `\r` just before it belongs to the terminator
/// (CRLF files read as LF ones); nothing after the last `\n` is not a line. Every other byte,
/// invalid UTF-8 included, stays as it is, and empty lines are empty inputs.
pub fn split_lines(bytes: &[u8]) -> anyhow::Result<Vec<Base64Bytes>> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    body.split(|&byte| byte == b'\n')
        .enumerate()
        .map(|(index, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let input = UnitInput::Raw(line.to_vec());
            if let Err(error) = input.check() {
                bail!(
                    "line {}: {error}; split it or pass the data another way",
                    index + 1
                );
            }
            Ok(Base64Bytes(line.to_vec()))
        })
        .collect()
}

/// A server that predates raw inputs reads a `--lines` body without its required `inputs` and
/// refuses it; say so instead of echoing the decoder.
pub fn explain_refusal(error: ApiError, server: &str) -> anyhow::Error {
    match &error {
        ApiError::Server {
            code: ErrorCode::InvalidJson,
            message,
            ..
        } if message.contains("missing field `inputs`") => anyhow::anyhow!(
            "the server at {server} is too old for --lines (it does not know raw inputs); \
             upgrade it, or submit JSON lines with --inputs FILE --input-template '{{}}'"
        ),
        _ => anyhow::Error::new(error).context("submitting the batch failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
        split_lines(bytes)
            .unwrap()
            .into_iter()
            .map(Base64Bytes::into_inner)
            .collect()
    }

    #[test]
    fn lines_keep_their_bytes_and_lose_only_their_terminator() {
        let text = b"plain\r\nsay \"hi\"\tC:\\dir\n\ncaf\xe9\r\r\nlast";
        assert_eq!(
            lines(text),
            vec![
                b"plain".to_vec(),
                b"say \"hi\"\tC:\\dir".to_vec(),
                Vec::new(),
                b"caf\xe9\r".to_vec(),
                b"last".to_vec(),
            ]
        );
        // A final terminator ends the last line; it does not start an empty one.
        assert_eq!(lines(b"a\nb\n"), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(lines(b"a\n\n"), vec![b"a".to_vec(), Vec::new()]);
        assert_eq!(lines(b"\n"), vec![Vec::<u8>::new()]);
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn an_oversized_line_is_named() {
        let long = vec![b'x'; musketeer_protocol::limits::MAX_INPUT_BYTES + 1];
        let mut text = b"short\n".to_vec();
        text.extend(&long);
        let error = format!("{:#}", split_lines(&text).unwrap_err());
        assert!(error.starts_with("line 2: input is larger than"), "{error}");
    }

    #[test]
    fn an_old_servers_refusal_says_to_upgrade_it() {
        // The words axum's JSON extractor answers with in servers before raw inputs.
        let old = ApiError::Server {
            status: 400,
            code: ErrorCode::InvalidJson,
            message: "Failed to deserialize the JSON body into the target type: missing field \
                      `inputs` at line 1 column 40"
                .into(),
        };
        let text = format!("{:#}", explain_refusal(old, "http://127.0.0.1:1"));
        assert!(
            text.starts_with("the server at http://127.0.0.1:1 is too old for --lines"),
            "{text}"
        );
        let other = ApiError::Server {
            status: 404,
            code: ErrorCode::NotFound,
            message: "app \"x\" has no published version".into(),
        };
        let text = format!("{:#}", explain_refusal(other, "http://127.0.0.1:1"));
        assert!(text.starts_with("submitting the batch failed"), "{text}");
    }
}
