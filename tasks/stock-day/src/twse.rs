//! Parsing of TWSE's STOCK_DAY JSON answer into typed day rows.
//!
//! Every cell of the answer is a string: counts carry thousands separators (`"5,614,182"`),
//! prices two decimals (`"1,085.00"` above a thousand), the change a sign (`"+9.50"`,
//! `"-2.00"`, `" 0.00"`) or an `X` prefix on ex-rights / ex-dividend days (`"X0.00"`), and a day
//! without trades shows `"--"` for prices. The answer has nine columns, or ten with `註記`.

use serde::{Deserialize, Serialize};

/// One trading day, serialized with the original crawler's column names in its order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DayRow {
    /// Stock id, as requested.
    #[serde(rename = "個股代號")]
    pub stock_id: String,
    /// Date in the ROC calendar as TWSE writes it, e.g. `105/05/12`.
    #[serde(rename = "日期")]
    pub date: String,
    /// Shares traded.
    #[serde(rename = "成交股數")]
    pub shares: Option<u64>,
    /// Turnover in NT$.
    #[serde(rename = "成交金額")]
    pub turnover: Option<u64>,
    /// Opening price; `None` (JSON null) on a day without trades.
    #[serde(rename = "開盤價")]
    pub open: Option<f64>,
    /// Highest price.
    #[serde(rename = "最高價")]
    pub high: Option<f64>,
    /// Lowest price.
    #[serde(rename = "最低價")]
    pub low: Option<f64>,
    /// Closing price.
    #[serde(rename = "收盤價")]
    pub close: Option<f64>,
    /// Change from the previous close, signed; an ex-rights `X` prefix is dropped.
    #[serde(rename = "漲跌價差")]
    pub change: Option<f64>,
    /// Number of trades.
    #[serde(rename = "成交筆數")]
    pub trades: Option<u64>,
}

/// The parts of the answer this task reads; other keys (`title`, `notes`, ...) are ignored.
#[derive(Deserialize)]
struct Answer {
    stat: String,
    #[serde(default)]
    fields: Option<Vec<String>>,
    #[serde(default)]
    data: Option<Vec<Vec<String>>>,
}

/// The columns after the stock id, in the order of the original crawler and of TWSE's answer.
const COLUMNS: [&str; 9] = [
    "日期",
    "成交股數",
    "成交金額",
    "開盤價",
    "最高價",
    "最低價",
    "收盤價",
    "漲跌價差",
    "成交筆數",
];

/// Parses a STOCK_DAY answer into its rows, oldest first.
///
/// Errors: `TWSE: <stat>` when `stat` is not `OK` (TWSE's own message), `TWSE answer is not
/// the expected JSON: ...`, `TWSE answer has no rows`, `TWSE answer lacks the <name> column`,
/// `TWSE answer: row <n> has <k> cells`, and `TWSE answer: cannot parse <column> "<cell>" on
/// <date>`.
pub fn parse_answer(stock_id: &str, body: &[u8]) -> Result<Vec<DayRow>, String> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| format!("TWSE answer is not the expected JSON: {e}"))?;
    if answer.stat != "OK" {
        return Err(format!("TWSE: {}", answer.stat));
    }
    let index = column_index(answer.fields.as_deref())?;
    let data = answer.data.unwrap_or_default();
    if data.is_empty() {
        return Err("TWSE answer has no rows".to_owned());
    }
    data.iter()
        .enumerate()
        .map(|(n, row)| parse_row(stock_id, &index, n + 1, row))
        .collect()
}

/// Where each of [`COLUMNS`] sits in a row: by name when the answer lists its fields,
/// by position (nine or ten cells) when it does not.
fn column_index(fields: Option<&[String]>) -> Result<[usize; 9], String> {
    let mut index = [0, 1, 2, 3, 4, 5, 6, 7, 8];
    if let Some(fields) = fields {
        for (slot, name) in index.iter_mut().zip(COLUMNS) {
            *slot = fields
                .iter()
                .position(|f| f.trim() == name)
                .ok_or_else(|| format!("TWSE answer lacks the {name} column"))?;
        }
    }
    Ok(index)
}

fn parse_row(
    stock_id: &str,
    index: &[usize; 9],
    number: usize,
    row: &[String],
) -> Result<DayRow, String> {
    let needed = index.iter().max().map_or(0, |m| m + 1);
    if row.len() < needed || row.len() > needed.max(10) {
        return Err(format!("TWSE answer: row {number} has {} cells", row.len()));
    }
    let cell = |column: usize| row[index[column]].as_str();
    let date = cell(0).trim().to_owned();
    let bad = |column: usize| {
        format!(
            "TWSE answer: cannot parse {} {:?} on {date}",
            COLUMNS[column],
            cell(column)
        )
    };
    let count = |column| parse_count(cell(column)).ok_or_else(|| bad(column));
    let price = |column| parse_price(cell(column)).ok_or_else(|| bad(column));
    Ok(DayRow {
        stock_id: stock_id.to_owned(),
        shares: count(1)?,
        turnover: count(2)?,
        open: price(3)?,
        high: price(4)?,
        low: price(5)?,
        close: price(6)?,
        change: parse_change(cell(7)).ok_or_else(|| bad(7))?,
        trades: count(8)?,
        date,
    })
}

/// `"--"` (no value) is `Some(None)`; a malformed cell is `None`.
fn no_value(cell: &str) -> bool {
    cell == "--"
}

/// `"5,614,182"` -> 5614182.
fn parse_count(cell: &str) -> Option<Option<u64>> {
    let cell = cell.trim();
    if no_value(cell) {
        return Some(None);
    }
    let digits: String = cell.chars().filter(|&c| c != ',').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Some)
}

/// `"1,085.50"` -> 1085.5. Only plain decimals are accepted (no exponent, `inf` or `NaN`).
fn parse_price(cell: &str) -> Option<Option<f64>> {
    let cell = cell.trim();
    if no_value(cell) {
        return Some(None);
    }
    parse_decimal(cell).map(Some)
}

/// `"+9.50"` -> 9.5, `"-2.00"` -> -2.0, `" 0.00"` -> 0.0, `"X0.00"` -> 0.0, `"--"` -> null.
fn parse_change(cell: &str) -> Option<Option<f64>> {
    let cell = cell.trim();
    if no_value(cell) {
        return Some(None);
    }
    // `X` marks an ex-rights / ex-dividend day; the number after it is the change.
    let cell = cell.strip_prefix('X').unwrap_or(cell).trim_start();
    if no_value(cell) {
        return Some(None);
    }
    let (negative, magnitude) = match cell.as_bytes().first() {
        Some(b'+') => (false, &cell[1..]),
        Some(b'-') => (true, &cell[1..]),
        _ => (false, cell),
    };
    let value = parse_decimal(magnitude)?;
    // Never emit `-0.0`: a zero change is written ` 0.00` or `-0.00` for the same day.
    Some(Some(if negative && value != 0.0 {
        -value
    } else {
        value
    }))
}

fn parse_decimal(text: &str) -> Option<f64> {
    let plain: String = text.chars().filter(|&c| c != ',').collect();
    let (int, frac) = plain.split_once('.').unwrap_or((&plain, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (plain.contains('.') && frac.is_empty()) {
        return None;
    }
    // Correctly rounded on every platform, so the output is the same everywhere.
    plain.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NINE_FIELDS: &str = r#"{"stat":"OK","date":"20160512","title":"105年05月 2356 英業達 各日成交資訊",
        "fields":["日期","成交股數","成交金額","開盤價","最高價","最低價","收盤價","漲跌價差","成交筆數"],
        "data":[
          ["105/05/03","5,614,182","107,061,567","19.15","19.20","18.95","19.05","-0.10","2,198"],
          ["105/05/12","12,345,678","1,234,567,890","1,085.00","1,090.50","1,080.00","1,089.50","+9.50","4,321"]
        ],
        "notes":["符號說明:+/-/X表示漲/跌/不比價"]}"#;

    const TEN_FIELDS: &str = r#"{"stat":"OK","date":"20240601","title":"113年06月 2330 台積電 各日成交資訊",
        "fields":["日期","成交股數","成交金額","開盤價","最高價","最低價","收盤價","漲跌價差","成交筆數","註記"],
        "data":[
          ["113/06/12","31,094,518","27,302,391,112","878.00","881.00","874.00","881.00","X0.00","43,190",""],
          ["113/06/13","0","0","--","--","--","--"," 0.00","0","停止交易"]
        ]}"#;

    #[test]
    fn nine_field_answer() {
        let rows = parse_answer("2356", NINE_FIELDS.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[1],
            DayRow {
                stock_id: "2356".into(),
                date: "105/05/12".into(),
                shares: Some(12_345_678),
                turnover: Some(1_234_567_890),
                open: Some(1085.0),
                high: Some(1090.5),
                low: Some(1080.0),
                close: Some(1089.5),
                change: Some(9.5),
                trades: Some(4321),
            }
        );
        assert_eq!(rows[0].change, Some(-0.1));
        assert_eq!(rows[0].shares, Some(5_614_182));
    }

    #[test]
    fn serialized_keys_keep_the_original_order() {
        let rows = parse_answer("2356", NINE_FIELDS.as_bytes()).unwrap();
        assert_eq!(
            serde_json::to_string(&rows[1]).unwrap(),
            r#"{"個股代號":"2356","日期":"105/05/12","成交股數":12345678,"成交金額":1234567890,"開盤價":1085.0,"最高價":1090.5,"最低價":1080.0,"收盤價":1089.5,"漲跌價差":9.5,"成交筆數":4321}"#
        );
    }

    #[test]
    fn ten_field_answer_with_ex_rights_and_no_trades() {
        let rows = parse_answer("2330", TEN_FIELDS.as_bytes()).unwrap();
        assert_eq!(rows[0].change, Some(0.0));
        assert_eq!(rows[0].turnover, Some(27_302_391_112));
        let quiet = &rows[1];
        assert_eq!(
            (quiet.open, quiet.high, quiet.low, quiet.close),
            (None, None, None, None)
        );
        assert_eq!(quiet.change, Some(0.0));
        assert_eq!(quiet.shares, Some(0));
        assert_eq!(
            serde_json::to_string(quiet).unwrap(),
            r#"{"個股代號":"2330","日期":"113/06/13","成交股數":0,"成交金額":0,"開盤價":null,"最高價":null,"最低價":null,"收盤價":null,"漲跌價差":0.0,"成交筆數":0}"#
        );
    }

    #[test]
    fn positional_columns_when_fields_are_missing() {
        let body = r#"{"stat":"OK","data":[["105/05/31","1,000","20,500","20.50","20.50","20.50","20.50","X-1.20","3"]]}"#;
        let rows = parse_answer("1101", body.as_bytes()).unwrap();
        assert_eq!(rows[0].change, Some(-1.2));
        assert_eq!(rows[0].trades, Some(3));
    }

    #[test]
    fn non_ok_stat_carries_twse_message() {
        let body = r#"{"stat":"很抱歉，沒有符合條件的資料!"}"#;
        assert_eq!(
            parse_answer("9999", body.as_bytes()).unwrap_err(),
            "TWSE: 很抱歉，沒有符合條件的資料!"
        );
    }

    #[test]
    fn malformed_answers_are_errors() {
        let cases = [
            ("<html>busy</html>", "TWSE answer is not the expected JSON"),
            (r#"{"stat":"OK","data":[]}"#, "TWSE answer has no rows"),
            (r#"{"stat":"OK"}"#, "TWSE answer has no rows"),
            (
                r#"{"stat":"OK","fields":["日期"],"data":[["105/05/12"]]}"#,
                "TWSE answer lacks the 成交股數 column",
            ),
            (
                r#"{"stat":"OK","data":[["105/05/12","1"]]}"#,
                "TWSE answer: row 1 has 2 cells",
            ),
            (
                r#"{"stat":"OK","data":[["105/05/12","1,0x0","1","1.00","1.00","1.00","1.00","+0.00","1"]]}"#,
                r#"TWSE answer: cannot parse 成交股數 "1,0x0" on 105/05/12"#,
            ),
            (
                r#"{"stat":"OK","data":[["105/05/12","1","1","NaN","1.00","1.00","1.00","+0.00","1"]]}"#,
                r#"TWSE answer: cannot parse 開盤價 "NaN" on 105/05/12"#,
            ),
            (
                r#"{"stat":"OK","data":[["105/05/12","1","1","1.00","1.00","1.00","1e3","+0.00","1"]]}"#,
                r#"TWSE answer: cannot parse 收盤價 "1e3" on 105/05/12"#,
            ),
            (
                r#"{"stat":"OK","data":[["105/05/12","1","1","1.00","1.00","1.00","1.00","+-1","1"]]}"#,
                r#"TWSE answer: cannot parse 漲跌價差 "+-1" on 105/05/12"#,
            ),
        ];
        for (body, expected) in cases {
            let err = parse_answer("2356", body.as_bytes()).unwrap_err();
            assert!(err.starts_with(expected), "{body}: {err}");
        }
    }

    #[test]
    fn change_spellings() {
        assert_eq!(parse_change("+9.50"), Some(Some(9.5)));
        assert_eq!(parse_change("-2.00"), Some(Some(-2.0)));
        assert_eq!(parse_change(" 0.00"), Some(Some(0.0)));
        assert_eq!(parse_change("-0.00").unwrap().unwrap().to_bits(), 0);
        assert_eq!(parse_change("X0.00"), Some(Some(0.0)));
        assert_eq!(parse_change("X+1.50"), Some(Some(1.5)));
        assert_eq!(parse_change("--"), Some(None));
        assert_eq!(parse_change("X"), None);
        assert_eq!(parse_change("1."), None);
        assert_eq!(parse_change(".5"), None);
    }
}
