//! Batch results as researchers download them: one row per unit, as JSON lines or as CSV with
//! JSON object outputs flattened into columns.

use musketeer_protocol::{Base64Bytes, ResultRow, UnitState};
use serde_json::Value;

use super::lifecycle::{Unit, UnitStatus};

/// A unit's result row.
pub fn result_row(unit: &Unit) -> ResultRow {
    let (output, output_base64) = match unit.canonical_output() {
        Some(bytes) => match serde_json::from_slice::<Value>(bytes) {
            Ok(value) => (Some(value), None),
            Err(_) => (None, Some(Base64Bytes(bytes.to_vec()))),
        },
        None => (None, None),
    };
    let error = match &unit.status {
        UnitStatus::Failed { reason } => Some(reason.clone()),
        UnitStatus::Cancelled => Some("batch cancelled".to_owned()),
        _ => None,
    };
    let (input, input_base64) = unit.input.shown();
    ResultRow {
        unit_id: unit.id,
        input,
        input_base64,
        state: unit.state(),
        output,
        output_base64,
        error,
    }
}

/// One JSON line.
pub fn jsonl_line(row: &ResultRow) -> String {
    let mut line = serde_json::to_string(row).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    line.push('\n');
    line
}

const FIXED_COLUMNS: [&str; 4] = ["unit_id", "input", "state", "error"];
/// Column for outputs that are not JSON objects.
const OUTPUT_COLUMN: &str = "output";

/// The output columns of a CSV download, in first-seen order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CsvColumns {
    keys: Vec<String>,
}

impl CsvColumns {
    /// Add the columns a row needs.
    pub fn observe(&mut self, row: &ResultRow) {
        for record in records(row) {
            match record {
                Record::Object(map) => {
                    for key in map.keys() {
                        self.add(key);
                    }
                }
                Record::Plain(Some(_)) => self.add(OUTPUT_COLUMN),
                Record::Plain(None) => {}
            }
        }
    }

    fn add(&mut self, key: &str) {
        if !FIXED_COLUMNS.contains(&key) && !self.keys.iter().any(|k| k == key) {
            self.keys.push(key.to_owned());
        }
    }

    /// The header record.
    pub fn header(&self) -> Result<Vec<u8>, CsvError> {
        let cells = FIXED_COLUMNS
            .iter()
            .copied()
            .chain(self.keys.iter().map(String::as_str));
        write_records([cells])
    }

    /// The records of one unit: one, or one per element of an array-of-objects output.
    pub fn lines(&self, row: &ResultRow) -> Result<Vec<u8>, CsvError> {
        let state = match row.state {
            UnitState::Queued => "queued",
            UnitState::Running => "running",
            UnitState::Done => "done",
            UnitState::Failed => "failed",
            UnitState::Cancelled => "cancelled",
        };
        let input = match &row.input_base64 {
            Some(bytes) => base64_cell(bytes),
            None => cell(&row.input),
        };
        let fixed = [
            row.unit_id.to_string(),
            input,
            state.to_owned(),
            row.error.clone().unwrap_or_default(),
        ];
        let records = records(row).into_iter().map(|record| {
            let outputs = self.keys.iter().map(move |key| match &record {
                Record::Object(map) => map.get(key).map(cell).unwrap_or_default(),
                Record::Plain(Some(text)) if key == OUTPUT_COLUMN => text.clone(),
                Record::Plain(_) => String::new(),
            });
            fixed.iter().cloned().chain(outputs)
        });
        write_records(records)
    }
}

/// Writing CSV records into memory failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsvError {
    /// The csv crate refused a record.
    #[error("writing a CSV record: {0}")]
    Record(#[from] csv::Error),
    /// Flushing the records into the buffer failed.
    #[error("finishing CSV records: {0}")]
    Flush(#[from] std::io::Error),
}

/// RFC 4180 records (CRLF ends, quotes only where a cell needs them) in one buffer.
fn write_records<R, C>(records: impl IntoIterator<Item = R>) -> Result<Vec<u8>, CsvError>
where
    R: IntoIterator<Item = C>,
    C: AsRef<[u8]>,
{
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    for record in records {
        writer.write_record(record)?;
    }
    writer
        .into_inner()
        .map_err(|e| CsvError::Flush(e.into_error()))
}

enum Record<'a> {
    Object(&'a serde_json::Map<String, Value>),
    Plain(Option<String>),
}

fn records(row: &ResultRow) -> Vec<Record<'_>> {
    match (&row.output, &row.output_base64) {
        (Some(Value::Object(map)), _) => vec![Record::Object(map)],
        (Some(Value::Array(items)), _)
            if !items.is_empty() && items.iter().all(Value::is_object) =>
        {
            items
                .iter()
                .filter_map(Value::as_object)
                .map(Record::Object)
                .collect()
        }
        (Some(value), _) => vec![Record::Plain(Some(cell(value)))],
        (None, Some(bytes)) => vec![Record::Plain(Some(
            match std::str::from_utf8(bytes.as_slice()) {
                Ok(text) => text.to_owned(),
                Err(_) => base64_cell(bytes),
            },
        ))],
        (None, None) => vec![Record::Plain(None)],
    }
}

/// Bytes that are not text as a CSV cell: `base64:` and their standard base64.
fn base64_cell(bytes: &Base64Bytes) -> String {
    format!(
        "base64:{}",
        serde_json::to_value(bytes)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    )
}

/// A JSON value as a CSV cell: strings bare, null empty, anything else compact JSON.
fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use musketeer_protocol::UnitId;
    use serde_json::json;

    use super::*;

    fn row(id: u64, input: Value, output: Option<Value>, state: UnitState) -> ResultRow {
        ResultRow {
            unit_id: UnitId(id),
            input,
            input_base64: None,
            state,
            output,
            output_base64: None,
            error: None,
        }
    }

    fn csv(rows: &[ResultRow]) -> String {
        let mut columns = CsvColumns::default();
        rows.iter().for_each(|r| columns.observe(r));
        let mut out = columns.header().unwrap();
        rows.iter()
            .for_each(|r| out.extend(columns.lines(r).unwrap()));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn object_outputs_become_columns_in_first_seen_order() {
        let rows = [
            row(
                1,
                json!("2330"),
                Some(json!({"date": "2016-05-03", "close": 150.5})),
                UnitState::Done,
            ),
            row(
                2,
                json!({"id": "2317"}),
                Some(json!({"date": "2016-05-03", "volume": 7})),
                UnitState::Done,
            ),
            row(3, json!("9999"), None, UnitState::Failed),
        ];
        assert_eq!(
            csv(&rows),
            "unit_id,input,state,error,date,close,volume\r\n\
             1,2330,done,,2016-05-03,150.5,\r\n\
             2,\"{\"\"id\"\":\"\"2317\"\"}\",done,,2016-05-03,,7\r\n\
             3,9999,failed,,,,\r\n"
        );
    }

    #[test]
    fn array_of_objects_gives_one_row_each_and_scalars_one_output_column() {
        let rows = [
            row(
                1,
                json!(1),
                Some(json!([{"a": 1}, {"a": 2}])),
                UnitState::Done,
            ),
            row(2, json!(2), Some(json!("plain, text")), UnitState::Done),
        ];
        assert_eq!(
            csv(&rows),
            "unit_id,input,state,error,a,output\r\n1,1,done,,1,\r\n1,1,done,,2,\r\n2,2,done,,,\"plain, text\"\r\n"
        );
    }

    #[test]
    fn nasty_cells_read_back_unchanged() {
        let nasty = "comma, \"quote\" and\nnewline\r\nCRLF, ünïcode";
        let mut failed = row(2, json!("a,b"), None, UnitState::Failed);
        failed.error = Some("trap: \"unreachable\"\nat line 3".to_owned());
        let rows = [
            row(
                1,
                json!({"k": "v,\""}),
                Some(json!({"text": nasty, "odd, \"key\"": "x"})),
                UnitState::Done,
            ),
            failed,
        ];
        let text = csv(&rows);
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            header,
            ["unit_id", "input", "state", "error", "text", "odd, \"key\""]
        );
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), 2, "{text}");
        assert_eq!(
            records[0].iter().collect::<Vec<_>>(),
            ["1", "{\"k\":\"v,\\\"\"}", "done", "", nasty, "x"]
        );
        assert_eq!(
            records[1].iter().collect::<Vec<_>>(),
            [
                "2",
                "a,b",
                "failed",
                "trap: \"unreachable\"\nat line 3",
                "",
                ""
            ]
        );
    }

    #[test]
    fn non_json_output_is_base64_in_jsonl() {
        let mut unit = Unit::new(
            UnitId(4),
            musketeer_protocol::BatchId(1),
            super::super::lifecycle::Params::resolve(&Default::default()).unwrap(),
            json!("x"),
        );
        let idx = unit.assign(musketeer_protocol::HostId(1), 0).unwrap();
        unit.report(
            idx,
            musketeer_protocol::HostId(1),
            super::super::lifecycle::Reported::Success {
                output: vec![0xff, 0],
                fuel: 1,
                wall_ms: 1,
                stderr_tail: String::new(),
            },
        );
        let row = result_row(&unit);
        assert_eq!(
            jsonl_line(&row),
            "{\"unit_id\":4,\"input\":\"x\",\"state\":\"done\",\"output_base64\":\"/wA=\"}\n"
        );
    }

    #[test]
    fn raw_inputs_show_as_text_or_base64_in_jsonl_and_csv() {
        let params = super::super::lifecycle::Params::resolve(&Default::default()).unwrap();
        let raw = |id, bytes: &[u8]| {
            Unit::new(
                UnitId(id),
                musketeer_protocol::BatchId(1),
                params,
                musketeer_protocol::UnitInput::Raw(bytes.to_vec()),
            )
        };
        let text = result_row(&raw(1, b"say \"hi\"\t\\"));
        assert_eq!(
            jsonl_line(&text),
            "{\"unit_id\":1,\"input\":\"say \\\"hi\\\"\\t\\\\\",\"state\":\"queued\"}\n"
        );
        let latin1 = result_row(&raw(2, b"caf\xe9"));
        assert_eq!(
            jsonl_line(&latin1),
            "{\"unit_id\":2,\"input\":null,\"input_base64\":\"Y2Fm6Q==\",\"state\":\"queued\"}\n"
        );
        assert_eq!(
            csv(&[text, latin1]),
            "unit_id,input,state,error\r\n1,\"say \"\"hi\"\"\t\\\",queued,\r\n2,base64:Y2Fm6Q==,queued,\r\n"
        );
    }
}
