//! What the volunteer sees: one human-readable line per event, or one JSON object per line.
//!
//! On a terminal every line is written at once. Otherwise (a pipe, a log file) a line that comes
//! after a quiet spell of [`FLUSH_DELAY`] is still written at once, so a watcher of a calm
//! volunteer sees each event as it happens; the lines that follow it closely are gathered and
//! written together at most [`FLUSH_DELAY`] later: two flushed writes per unit through a
//! contended stdout lock cost a busy volunteer more CPU than its no-op tasks. Nothing
//! is lost to the delay on a graceful stop: the lines are written before a request carries
//! results (so whoever sees the server count a result has seen its event), when a stop is
//! asked for, and before `join` returns.

use std::io::{IsTerminal as _, Write};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use musketeer_protocol::guest_text;

/// Longest a gathered line waits before it is written.
pub const FLUSH_DELAY: Duration = Duration::from_millis(50);

/// Gathered bytes beyond which the lines are written at once rather than at the next tick.
const MAX_PENDING: usize = 64 * 1024;

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
        STDOUT.write_line(&line);
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

/// Writes every gathered event line to stdout now.
pub fn flush() {
    STDOUT.flush();
}

/// The process's one stdout sink: every [`Events`] writes there, in emit order.
static STDOUT: LazyLock<Arc<LineSink<std::io::Stdout>>> = LazyLock::new(|| {
    let stdout = std::io::stdout();
    let gather = !stdout.is_terminal();
    LineSink::new(stdout, gather, FLUSH_DELAY)
});

/// Lines to a writer, each written at once or gathered and written by a flusher thread.
struct LineSink<W: Write + Send + 'static> {
    out: Mutex<W>,
    pending: Mutex<Pending>,
    /// Wakes the flusher when the first line of a batch arrives.
    wake: Condvar,
    gather: bool,
    /// [`FLUSH_DELAY`] outside tests.
    delay: Duration,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// The flusher thread runs (started with the first gathered line).
    flusher: bool,
    /// When lines were last written; `None` before the first.
    last_write: Option<Instant>,
}

impl<W: Write + Send + 'static> LineSink<W> {
    fn new(out: W, gather: bool, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            out: Mutex::new(out),
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            gather,
            delay,
        })
    }

    /// No line was written for a delay: the next one need not wait for company.
    fn quiet(&self, pending: &Pending) -> bool {
        pending
            .last_write
            .is_none_or(|written| written.elapsed() >= self.delay)
    }

    fn write_line(self: &Arc<Self>, line: &str) {
        let mut pending = lock(&self.pending);
        pending.bytes.extend_from_slice(line.as_bytes());
        pending.bytes.push(b'\n');
        let first_of_batch = pending.bytes.len() == line.len() + 1;
        if !self.gather
            || pending.bytes.len() >= MAX_PENDING
            || (first_of_batch && self.quiet(&pending))
        {
            self.write_out(pending);
            return;
        }
        if first_of_batch {
            // First line of a batch: the flusher writes it within FLUSH_DELAY.
            if !pending.flusher {
                let sink = Arc::clone(self);
                let started = std::thread::Builder::new()
                    .name("musketeer-events".into())
                    .spawn(move || sink.run_flusher());
                match started {
                    Ok(_) => pending.flusher = true,
                    // No thread, no gathering: write this line now (and retry next time).
                    Err(_) => return self.write_out(pending),
                }
            }
            self.wake.notify_one();
        }
    }

    fn flush(&self) {
        self.write_out(lock(&self.pending));
    }

    /// Writes the gathered lines; `out` is locked before `pending` is released, so batches
    /// reach the writer in the order their lines were emitted.
    fn write_out(&self, mut pending: MutexGuard<'_, Pending>) {
        if pending.bytes.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut pending.bytes);
        pending.last_write = Some(Instant::now());
        let mut out = lock(&self.out);
        drop(pending);
        // A closed stdout must not stop the volunteer's work.
        let _ = out.write_all(&bytes);
        let _ = out.flush();
    }

    fn run_flusher(&self) {
        loop {
            let mut pending = lock(&self.pending);
            while pending.bytes.is_empty() {
                pending = self.wake.wait(pending).unwrap_or_else(|e| e.into_inner());
            }
            drop(pending);
            std::thread::sleep(self.delay);
            self.flush();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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
    use super::{Events, FLUSH_DELAY, LineSink, LogFormat, cause_chain};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// A writer that keeps each `write` call apart, to count them.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);

    impl std::io::Write for Writes {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Writes {
        fn calls(&self) -> Vec<Vec<u8>> {
            self.0.lock().unwrap().clone()
        }
    }

    #[test]
    fn the_first_line_after_a_quiet_spell_is_written_at_once_and_the_next_ones_together() {
        let writes = Writes::default();
        // A long delay: nothing but the quiet spell and the flush writes in this test.
        let sink = LineSink::new(writes.clone(), true, Duration::from_secs(600));
        sink.write_line("first");
        assert_eq!(writes.calls(), vec![b"first\n".to_vec()]);
        for i in 0..100 {
            sink.write_line(&format!("line {i}"));
        }
        assert_eq!(writes.calls().len(), 1, "lines right after a write wait");
        sink.flush();
        let calls = writes.calls();
        assert_eq!(calls.len(), 2, "one write for the 100 gathered lines");
        let expected: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(String::from_utf8(calls[1].clone()).unwrap(), expected);
    }

    #[test]
    fn gathered_lines_are_written_within_the_delay_without_a_flush() {
        let writes = Writes::default();
        let sink = LineSink::new(writes.clone(), true, FLUSH_DELAY);
        sink.write_line("first");
        sink.write_line("second");
        let deadline = Instant::now() + FLUSH_DELAY + Duration::from_secs(10);
        while writes.calls().concat() != b"first\nsecond\n" {
            assert!(
                Instant::now() < deadline,
                "the lines were never written: {:?}",
                writes.calls()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn on_a_terminal_every_line_is_written_at_once() {
        let writes = Writes::default();
        let sink = LineSink::new(writes.clone(), false, FLUSH_DELAY);
        sink.write_line("one");
        sink.write_line("two");
        assert_eq!(writes.calls(), vec![b"one\n".to_vec(), b"two\n".to_vec()]);
    }

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
