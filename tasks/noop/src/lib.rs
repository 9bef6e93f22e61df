//! `noop`: returns its input unchanged.
//!
//! The smallest possible task, used to measure the host's per-task overhead (instantiate, copy
//! the input in, call `run`, copy the output out). Any bytes are valid input; it never fails.

musketeer_task_sdk::task!(echo);

fn echo(input: &[u8]) -> Result<Vec<u8>, String> {
    Ok(input.to_vec())
}

#[cfg(test)]
mod tests {
    #[test]
    fn echoes_any_bytes() {
        let input = [0u8, 255, b'{', 0xC3];
        assert_eq!(super::echo(&input).unwrap(), input);
    }
}
