//! Word frequencies of a text.

use std::collections::HashMap;

use serde::Serialize;

/// The task output: `{"total":N,"unique":M,"words":[{"word":"the","count":3},...]}`.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Frequencies {
    /// Number of words in the text.
    pub total: u64,
    /// Number of distinct words.
    pub unique: u64,
    /// Every distinct word with its count, by count descending, then by word (byte order).
    pub words: Vec<WordCount>,
}

/// One distinct word and how often it occurs.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct WordCount {
    /// The word, lowercased.
    pub word: String,
    /// Occurrences in the text.
    pub count: u64,
}

/// Counts the words of `text`.
///
/// A word is a maximal run of alphanumeric characters (Unicode), where an apostrophe between two
/// such characters stays inside the word (`don't`, `o'clock`); words are lowercased (Unicode
/// rules). Scripts written without spaces (Chinese, Japanese) therefore count a whole run of
/// characters as one word.
pub fn count_words(text: &str) -> Frequencies {
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut total = 0;
    for word in words(text) {
        total += 1;
        *counts.entry(word.to_lowercase()).or_default() += 1;
    }
    let mut words: Vec<WordCount> = counts
        .into_iter()
        .map(|(word, count)| WordCount { word, count })
        .collect();
    // The hash map's order depends on its random seed; this sort makes the output deterministic.
    words.sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.word.cmp(&b.word)));
    Frequencies {
        total,
        unique: words.len() as u64,
        words,
    }
}

fn is_apostrophe(c: char) -> bool {
    c == '\'' || c == '\u{2019}'
}

/// The words of `text`, in order, not yet lowercased.
fn words(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let start = rest.find(char::is_alphanumeric)?;
        let tail = &rest[start..];
        let mut end = tail.len();
        let mut chars = tail.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c.is_alphanumeric() {
                continue;
            }
            let inner_apostrophe =
                is_apostrophe(c) && chars.peek().is_some_and(|&(_, n)| n.is_alphanumeric());
            if !inner_apostrophe {
                end = i;
                break;
            }
        }
        rest = &tail[end..];
        Some(&tail[..end])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(f: &Frequencies) -> Vec<(&str, u64)> {
        f.words.iter().map(|w| (w.word.as_str(), w.count)).collect()
    }

    #[test]
    fn counts_and_orders_by_count_then_word() {
        let f = count_words("One for all, all for one! ALL for... one?");
        assert_eq!(f.total, 9);
        assert_eq!(f.unique, 3);
        assert_eq!(pairs(&f), [("all", 3), ("for", 3), ("one", 3)]);

        let f = count_words("b a c b c c");
        assert_eq!(pairs(&f), [("c", 3), ("b", 2), ("a", 1)]);
    }

    #[test]
    fn apostrophes_inside_words_only() {
        let f = count_words("Don't 'quote' me, o’clock's rock'n'roll '");
        assert_eq!(
            pairs(&f),
            [
                ("don't", 1),
                ("me", 1),
                ("o’clock's", 1),
                ("quote", 1),
                ("rock'n'roll", 1)
            ]
        );
    }

    #[test]
    fn unicode_words_and_digits() {
        let f = count_words("Ünïcode ünïcode 2016 個股代號 2016-05-12");
        assert_eq!(
            pairs(&f),
            [
                ("2016", 2),
                ("ünïcode", 2),
                ("05", 1),
                ("12", 1),
                ("個股代號", 1)
            ]
        );
    }

    #[test]
    fn empty_text() {
        let f = count_words("  \n\t ... ");
        assert_eq!(
            f,
            Frequencies {
                total: 0,
                unique: 0,
                words: vec![]
            }
        );
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"total":0,"unique":0,"words":[]}"#
        );
    }
}
