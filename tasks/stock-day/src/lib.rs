//! `stock-day`: the original musketeer crawler as a task module.
//!
//! Input: `{"stock_id":"2356","year":2016,"month":5}`, optionally with `"source"` (base URL of a
//! TWSE-compatible server, default `https://www.twse.com.tw`) and `"all_days": true`.
//!
//! The task GETs `{source}/rwd/zh/afterTrading/STOCK_DAY?date=YYYYMM01&stockNo=ID&response=json`
//! through the host and answers the month's last trading day as one JSON object (every day, as
//! an array, with `all_days`), keys in the original order:
//! `個股代號, 日期, 成交股數, 成交金額, 開盤價, 最高價, 最低價, 收盤價, 漲跌價差, 成交筆數`.
//! Counts are integers, prices and the change JSON numbers (shortest form: `"19.50"` becomes
//! `19.5`), `--` is `null`, the date stays the ROC string `105/05/12`, and the ex-rights `X` of a
//! change is dropped (`"X0.00"` becomes `0.0`). A tenth column (`註記`) is ignored.
//!
//! Errors (the run's error string): `invalid input JSON: ...`, `invalid input: ...`,
//! `fetching <url>: <host error>`, `HTTP <status> from <url>`, `TWSE: <TWSE's stat message>`,
//! and `TWSE answer ...` for an answer that does not parse (see [`twse::parse_answer`]).

mod request;
mod twse;

use musketeer_task_sdk::{HttpError, HttpResponse, http_get, log, parse_json, progress, to_json};
use request::Request;

musketeer_task_sdk::task!(run);

/// TWSE answers the JSON report to any client; saying who we are is polite.
const REQUEST_HEADERS: &[(&str, &str)] = &[
    ("Accept", "application/json"),
    ("User-Agent", "musketeer-stock-day/0.1"),
];

fn run(input: &[u8]) -> Result<Vec<u8>, String> {
    run_with(input, |url| http_get(url, REQUEST_HEADERS))
}

/// The whole task with the HTTP GET passed in, so it runs natively in tests.
fn run_with(
    input: &[u8],
    fetch: impl FnOnce(&str) -> Result<HttpResponse, HttpError>,
) -> Result<Vec<u8>, String> {
    let request: Request = parse_json(input)?;
    request.validate()?;
    let url = request.url();
    log(&format!("GET {url}"));
    let response = fetch(&url).map_err(|e| format!("fetching {url}: {e}"))?;
    if response.status != 200 {
        return Err(format!("HTTP {} from {url}", response.status));
    }
    let rows = twse::parse_answer(&request.stock_id, &response.body)?;
    progress(1.0);
    if request.all_days {
        to_json(&rows)
    } else {
        // `parse_answer` never returns an empty list.
        to_json(&rows.last())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"{"stat":"OK","fields":["日期","成交股數","成交金額","開盤價","最高價","最低價","收盤價","漲跌價差","成交筆數"],
        "data":[["105/05/11","2,000","39,000","19.50","19.50","19.50","19.50","-0.50","2"],
                ["105/05/12","1,000","20,500","20.50","20.50","20.50","20.50","+1.00","1"]]}"#;

    fn ok(body: &str) -> impl FnOnce(&str) -> Result<HttpResponse, HttpError> {
        let body = body.as_bytes().to_vec();
        move |_| {
            Ok(HttpResponse {
                status: 200,
                headers: vec![],
                body,
            })
        }
    }

    #[test]
    fn last_day_by_default() {
        let mut asked = String::new();
        let out = run_with(
            br#"{"stock_id":"2356","year":2016,"month":5,"source":"http://127.0.0.1:9"}"#,
            |url| {
                asked = url.to_owned();
                ok(ANSWER)(url)
            },
        )
        .unwrap();
        assert_eq!(
            asked,
            "http://127.0.0.1:9/rwd/zh/afterTrading/STOCK_DAY?date=20160501&stockNo=2356&response=json"
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"個股代號":"2356","日期":"105/05/12","成交股數":1000,"成交金額":20500,"開盤價":20.5,"最高價":20.5,"最低價":20.5,"收盤價":20.5,"漲跌價差":1.0,"成交筆數":1}"#
        );
    }

    #[test]
    fn all_days_is_an_array() {
        let out = run_with(
            br#"{"stock_id":"2356","year":2016,"month":5,"all_days":true}"#,
            ok(ANSWER),
        )
        .unwrap();
        let rows: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["日期"], "105/05/11");
        assert_eq!(rows[0]["漲跌價差"], -0.5);
    }

    #[test]
    fn http_failures_are_clear_errors() {
        let input = br#"{"stock_id":"2356","year":2016,"month":5}"#;
        let err = run_with(input, |_| Err(HttpError::Timeout)).unwrap_err();
        assert_eq!(
            err,
            "fetching https://www.twse.com.tw/rwd/zh/afterTrading/STOCK_DAY?date=20160501&stockNo=2356&response=json: request timed out"
        );
        let err = run_with(input, |_| {
            Ok(HttpResponse {
                status: 503,
                headers: vec![],
                body: vec![],
            })
        })
        .unwrap_err();
        assert!(
            err.starts_with("HTTP 503 from https://www.twse.com.tw/"),
            "{err}"
        );
    }

    #[test]
    fn bad_input_never_fetches() {
        let err = run_with(b"{", |_| panic!("fetched")).unwrap_err();
        assert!(err.starts_with("invalid input JSON:"), "{err}");
        let err = run_with(br#"{"stock_id":"2356","year":2016,"month":13}"#, |_| {
            panic!("fetched")
        })
        .unwrap_err();
        assert!(err.starts_with("invalid input: month"), "{err}");
    }

    #[test]
    fn twse_refusal_is_the_error() {
        let err = run_with(
            br#"{"stock_id":"2356","year":2016,"month":5}"#,
            ok(r#"{"stat":"很抱歉，沒有符合條件的資料!"}"#),
        )
        .unwrap_err();
        assert_eq!(err, "TWSE: 很抱歉，沒有符合條件的資料!");
    }
}
