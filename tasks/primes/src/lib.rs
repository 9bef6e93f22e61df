//! `primes`: the CPU-bound task, used for the wasm/native speed benchmark.
//!
//! Input: `{"from":u64,"to":u64}` (both inclusive, `to` at most 10^12). Output:
//! `{"count":N,"last":P}` with the number of primes in the range and the largest of them (`null`
//! when there is none). Errors: `invalid input JSON: ...`, `invalid input: ...`.
//!
//! The kernel lives in `src/kernel.rs` with no dependencies, so a native benchmark can include
//! the same source with `#[path]`.

mod kernel;

use serde::{Deserialize, Serialize};

musketeer_task_sdk::task_json!(run);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Range {
    from: u64,
    to: u64,
}

#[derive(Debug, PartialEq, Serialize)]
struct Output {
    count: u64,
    last: Option<u64>,
}

fn run(range: Range) -> Result<Output, String> {
    if range.to > kernel::MAX_TO {
        return Err(format!(
            "invalid input: to = {} exceeds the maximum {}",
            range.to,
            kernel::MAX_TO
        ));
    }
    if range.from > range.to {
        return Err(format!(
            "invalid input: from = {} is greater than to = {}",
            range.from, range.to
        ));
    }
    let summary = kernel::count_primes(range.from, range.to);
    Ok(Output {
        count: summary.count,
        last: summary.last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_input_errors() {
        let out = run(Range { from: 1, to: 100 }).unwrap();
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"count":25,"last":97}"#
        );
        let none = run(Range { from: 90, to: 96 }).unwrap();
        assert_eq!(
            serde_json::to_string(&none).unwrap(),
            r#"{"count":0,"last":null}"#
        );
        let err = run(Range {
            from: 0,
            to: kernel::MAX_TO + 1,
        })
        .unwrap_err();
        assert!(err.starts_with("invalid input: to = "), "{err}");
        let err = run(Range { from: 5, to: 4 }).unwrap_err();
        assert!(err.starts_with("invalid input: from = 5"), "{err}");
    }
}
