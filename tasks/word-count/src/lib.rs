//! `word-count`: word frequencies of a UTF-8 text (the original author's earlier experiment).
//!
//! Input: the text itself, as UTF-8 bytes (not JSON). Output:
//! `{"total":N,"unique":M,"words":[{"word":"the","count":3},...]}`, words lowercased and sorted by
//! count descending, then by word, so the same text always gives the same bytes. See
//! [`count::count_words`] for what a word is. Error: `input is not UTF-8: <detail>`.

mod count;

use musketeer_task_sdk::to_json;

musketeer_task_sdk::task!(run);

fn run(input: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(input).map_err(|e| format!("input is not UTF-8: {e}"))?;
    to_json(&count::count_words(text))
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_output_and_utf8_error() {
        assert_eq!(
            super::run(b"a b a").unwrap(),
            br#"{"total":3,"unique":2,"words":[{"word":"a","count":2},{"word":"b","count":1}]}"#
        );
        let err = super::run(b"caf\xC3").unwrap_err();
        assert!(err.starts_with("input is not UTF-8: "), "{err}");
    }
}
