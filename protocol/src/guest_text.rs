//! Text that a task module wrote (its error string, log lines, stderr) made safe to print or
//! store: a hostile module must not forge lines in a volunteer's log, move a terminal's cursor,
//! reverse the reading order of what follows, or fill a disk with one message.

use std::fmt::Write as _;

/// Escapes every character that could change how surrounding text is displayed and caps the
/// result at `max_len` bytes (on a character boundary, escapes included).
///
/// - C0 and C1 control characters, DEL and ESC become visible escapes: `\n`, `\r`, `\t`, `\0`,
///   `\\` for a backslash (so an escape in the output always came from this function), and
///   `\x1b`-style hex for the rest of the ASCII range, `\u{85}`-style for C1 controls.
/// - Unicode bidirectional controls (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069), the line
///   and paragraph separators (U+2028/9), and zero-width or invisible formatting characters
///   (U+200B–U+200D, U+2060–U+2064, U+FEFF) become `\u{202e}`-style escapes.
/// - Text longer than `max_len` is cut and ends with `…(+N bytes)`, where `N` counts the bytes
///   of the *original* text that were left out. The whole result, marker included, is at most
///   `max_len` bytes unless `max_len` is smaller than the marker itself.
pub fn sanitize(text: &str, max_len: usize) -> String {
    sanitize_with(text, max_len, false)
}

/// [`sanitize`] for text that is meant to have several lines (a stderr tail): line feeds stay,
/// everything else is escaped and capped the same way.
pub fn sanitize_lines(text: &str, max_len: usize) -> String {
    sanitize_with(text, max_len, true)
}

fn sanitize_with(text: &str, max_len: usize, keep_line_feeds: bool) -> String {
    let mut out = String::with_capacity(text.len().min(max_len));
    // Every character boundary so far: (bytes written, bytes of `text` consumed). Escaping
    // stops as soon as the output is over the cap, so a huge text costs little.
    let mut boundaries = Vec::new();
    for (index, c) in text.char_indices() {
        if out.len() > max_len {
            break;
        }
        boundaries.push((out.len(), index));
        if keep_line_feeds && c == '\n' {
            out.push(c);
        } else {
            push_escaped(c, &mut out);
        }
    }
    if out.len() <= max_len {
        return out;
    }
    // Too long: keep the longest prefix that leaves room for the marker.
    let (kept, consumed) = boundaries
        .iter()
        .rev()
        .copied()
        .find(|&(written, consumed)| written + marker_len(text.len() - consumed) <= max_len)
        .unwrap_or((0, 0));
    out.truncate(kept);
    let _ = write!(out, "…(+{} bytes)", text.len() - consumed);
    out
}

/// Bytes of the `…(+N bytes)` marker for `left_out` bytes.
fn marker_len(left_out: usize) -> usize {
    "…(+ bytes)".len() + decimal_digits(left_out)
}

fn decimal_digits(mut n: usize) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

/// Writes `c`, or its visible escape, into `piece`.
fn push_escaped(c: char, piece: &mut String) {
    match c {
        '\n' => piece.push_str("\\n"),
        '\r' => piece.push_str("\\r"),
        '\t' => piece.push_str("\\t"),
        '\0' => piece.push_str("\\0"),
        '\\' => piece.push_str("\\\\"),
        _ if c.is_ascii_control() => {
            let _ = write!(piece, "\\x{:02x}", u32::from(c));
        }
        _ if is_hidden_control(c) => {
            let _ = write!(piece, "\\u{{{:x}}}", u32::from(c));
        }
        _ => piece.push(c),
    }
}

/// Characters that are not ASCII controls but still change how text around them displays.
fn is_hidden_control(c: char) -> bool {
    c.is_control() // C1 controls U+0080..=U+009F
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

#[cfg(test)]
mod tests {
    use super::{sanitize, sanitize_lines};

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(sanitize("TWSE: 很抱歉 ok", 100), "TWSE: 很抱歉 ok");
    }

    #[test]
    fn line_breaks_and_terminal_escapes_become_visible() {
        assert_eq!(
            sanitize("done\n[host] forged line\r\x1b[31mred\x07\x7f", 200),
            "done\\n[host] forged line\\r\\x1b[31mred\\x07\\x7f"
        );
        assert_eq!(sanitize("tab\tnul\0", 200), "tab\\tnul\\0");
    }

    #[test]
    fn a_backslash_cannot_fake_an_escape() {
        assert_eq!(
            sanitize("\\n is not a newline", 200),
            "\\\\n is not a newline"
        );
    }

    #[test]
    fn bidi_separators_and_invisible_characters_are_escaped() {
        assert_eq!(
            sanitize("a\u{202e}b\u{2066}c\u{2028}d\u{200b}e\u{feff}f\u{85}", 200),
            "a\\u{202e}b\\u{2066}c\\u{2028}d\\u{200b}e\\u{feff}f\\u{85}"
        );
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary_with_a_marker() {
        let text = "é".repeat(100); // 200 bytes
        let cut = sanitize(&text, 50);
        assert!(cut.len() <= 50, "{} bytes: {cut}", cut.len());
        assert!(cut.ends_with(" bytes)"), "{cut}");
        let kept = cut.split('…').next().unwrap_or_default();
        assert_eq!(kept.len() % 2, 0);
        let left_out = 200 - kept.len();
        assert!(cut.ends_with(&format!("…(+{left_out} bytes)")), "{cut}");
    }

    #[test]
    fn escapes_count_against_the_cap() {
        let cut = sanitize(&"\n".repeat(100), 30);
        assert!(cut.len() <= 30, "{cut}");
        assert!(cut.starts_with("\\n\\n"), "{cut}");
        assert!(!cut.contains('\n'));
    }

    #[test]
    fn multi_line_text_keeps_only_its_line_feeds() {
        assert_eq!(
            sanitize_lines("one\ntwo\r\x1b[2K", 100),
            "one\ntwo\\r\\x1b[2K"
        );
    }

    #[test]
    fn text_that_fits_exactly_has_no_marker() {
        assert_eq!(sanitize("abcdef", 6), "abcdef");
        assert_eq!(sanitize("", 0), "");
    }

    proptest::proptest! {
        #[test]
        fn any_text_comes_out_as_one_bounded_line(text in proptest::prelude::any::<String>(), max_len in 24usize..300) {
            let clean = sanitize(&text, max_len);
            proptest::prop_assert!(clean.len() <= max_len, "{} > {max_len}", clean.len());
            proptest::prop_assert!(!clean.chars().any(|c| c.is_control() || super::is_hidden_control(c)), "{clean:?}");
            if clean.len() < text.len() || clean != text {
                // Either escaped or cut; an untouched text is returned as it was.
                proptest::prop_assert!(text.chars().any(|c| c.is_control() || super::is_hidden_control(c) || c == '\\') || text.len() > max_len);
            }
        }
    }
}
