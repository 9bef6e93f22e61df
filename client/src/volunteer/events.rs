//! What the volunteer sees: one human-readable line per event, or one JSON object per line.

use std::io::Write as _;

use musketeer_protocol::guest_text;

/// Longest human-readable event line.
const MAX_TEXT_LINE: usize = 8 * 1024;

/// Output format of `musketeer join`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (`{"event": ..., ...}`), for machines.
    Json,
}

/// Writes events to stdout.
#[derive(Debug, Clone)]
pub struct Events {
    format: LogFormat,
    name: String,
}

impl Events {
    /// Events of the host called `name`.
    pub fn new(format: LogFormat, name: &str) -> Self {
        Self {
            format,
            name: name.to_owned(),
        }
    }

    /// Emits `event` with `fields` (JSON) or `text` (human).
    pub fn emit(&self, event: &str, fields: serde_json::Value, text: impl AsRef<str>) {
        let line = self.line(event, fields, text.as_ref());
        let mut stdout = std::io::stdout().lock();
        // A closed stdout must not stop the volunteer's work.
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }

    /// The one line `emit` prints.
    fn line(&self, event: &str, fields: serde_json::Value, text: &str) -> String {
        match self.format {
            // One event, one line: whatever the text carries (a task's error words are already
            // escaped, but a server's message or a host name may not be), nothing in it can
            // end the line or drive the terminal.
            LogFormat::Text => {
                guest_text::sanitize(&format!("[{}] {}", self.name, text), MAX_TEXT_LINE)
            }
            // serde_json escapes every control character in strings.
            LogFormat::Json => {
                let mut object = serde_json::Map::new();
                object.insert("event".into(), event.into());
                object.insert("host".into(), self.name.clone().into());
                if let serde_json::Value::Object(extra) = fields {
                    object.extend(extra);
                }
                serde_json::Value::Object(object).to_string()
            }
        }
    }
}

/// `error` and every error under it, on one line: "outer: cause: root cause".
///
/// A cause whose text the line already holds is left out: many errors quote their source in
/// their own message (reqwest's "error sending request" would otherwise appear twice), and the
/// root cause ("Connection refused") is what tells the volunteer what to fix.
pub fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
    compact_chain(std::iter::successors(Some(error), |e| e.source()).map(|e| e.to_string()))
}

/// Joins error messages, outermost first, with ": ", leaving out those already said.
pub fn compact_chain(messages: impl IntoIterator<Item = String>) -> String {
    let mut line = String::new();
    for message in messages {
        let message = message.trim();
        if message.is_empty() || line.contains(message) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(message);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::{Events, LogFormat, cause_chain};

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Leaf(&'static str);

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Wrapper {
        text: &'static str,
        source: Box<dyn std::error::Error + 'static>,
    }

    #[test]
    fn the_root_cause_is_kept_and_repeats_are_dropped() {
        // Shaped like a refused connection under reqwest: the outer error quotes its source.
        let error = Wrapper {
            text: "cannot reach the server: error sending request for url (http://x/)",
            source: Box::new(Wrapper {
                text: "error sending request for url (http://x/)",
                source: Box::new(Wrapper {
                    text: "client error (Connect)",
                    source: Box::new(Leaf("Connection refused (os error 111)")),
                }),
            }),
        };
        assert_eq!(
            cause_chain(&error),
            "cannot reach the server: error sending request for url (http://x/): \
             client error (Connect): Connection refused (os error 111)"
        );
        assert_eq!(cause_chain(&Leaf("alone")), "alone");
    }

    #[test]
    fn an_event_is_one_line_whatever_its_text() {
        let forged = "failed: bad\n[h1] 42.0 done\u{1b}[2K";
        let text = Events::new(LogFormat::Text, "h1").line("error", serde_json::json!({}), forged);
        assert_eq!(text, "[h1] failed: bad\\n[h1] 42.0 done\\x1b[2K");
        let json = Events::new(LogFormat::Json, "h1").line(
            "error",
            serde_json::json!({ "message": forged }),
            forged,
        );
        assert_eq!(json.lines().count(), 1);
        assert!(!json.contains('\u{1b}'), "{json}");
    }
}
