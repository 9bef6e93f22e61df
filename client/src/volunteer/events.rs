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

#[cfg(test)]
mod tests {
    use super::{Events, LogFormat};

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
