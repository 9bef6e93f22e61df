//! A local TWSE-format feed for tests and the demo: the "daily trading of one stock for one
//! month" answers for the 30 stock ids of the original experiment, May 2016.
//!
//! The numbers are **synthetic** (derived from the stock id, not real market data), but every
//! answer has TWSE's exact shape: string cells with thousands separators, two-decimal prices,
//! signed changes, an `X` prefix on an ex-rights day, `--` on a day without trades, 9-field
//! answers and 10-field answers (with `註記`), and a non-OK `stat` for anything else.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The 30 stock ids the original experiment submitted, in its order.
pub const ORIGINAL_STOCK_IDS: [&str; 30] = [
    "1101", "1102", "1103", "1104", "1108", "1109", "1110", "1201", "1203", "1210", "1213", "1215",
    "1216", "1217", "1218", "1219", "1220", "1225", "1227", "1229", "1231", "1232", "1233", "1234",
    "1235", "1236", "1256", "1702", "1737", "1301",
];

/// The columns of the original experiment's table, in its order (what `stock-day` outputs).
pub const COLUMNS: [&str; 10] = [
    "個股代號",
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

/// TWSE's answer when nothing matches.
pub const NO_DATA_STAT: &str = "很抱歉，沒有符合條件的資料!";

/// Trading days of May 2016 in the fixture (ROC calendar): the weekdays from 5/3 (5/2 was the
/// Labour Day holiday).
const MAY_2016_DAYS: [&str; 21] = [
    "105/05/03",
    "105/05/04",
    "105/05/05",
    "105/05/06",
    "105/05/09",
    "105/05/10",
    "105/05/11",
    "105/05/12",
    "105/05/13",
    "105/05/16",
    "105/05/17",
    "105/05/18",
    "105/05/19",
    "105/05/20",
    "105/05/23",
    "105/05/24",
    "105/05/25",
    "105/05/26",
    "105/05/27",
    "105/05/30",
    "105/05/31",
];

const FIELDS_9: &str =
    r#"["日期","成交股數","成交金額","開盤價","最高價","最低價","收盤價","漲跌價差","成交筆數"]"#;
const FIELDS_10: &str = r#"["日期","成交股數","成交金額","開盤價","最高價","最低價","收盤價","漲跌價差","成交筆數","註記"]"#;

/// The JSON body TWSE would answer for `stockNo=stock_id&date=date` (`YYYYMMDD`).
pub fn stock_day_answer(stock_id: &str, date: &str) -> String {
    let Some(index) = ORIGINAL_STOCK_IDS.iter().position(|id| *id == stock_id) else {
        return no_data();
    };
    if !date.starts_with("201605") || date.len() != 8 {
        return no_data();
    }
    let ten_fields = index % 3 == 2; // every third stock answers with the newer 10 fields
    let mut seed = stock_id.bytes().fold(0x9E37_79B9_u64, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    let mut next = move || {
        // xorshift: deterministic noise per stock.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut close_cents: i64 = 1_000 + (next() % 9_000) as i64; // 10.00 .. 99.99
    let mut rows = Vec::with_capacity(MAY_2016_DAYS.len());
    for (day_index, day) in MAY_2016_DAYS.iter().enumerate() {
        let last_day = day_index == MAY_2016_DAYS.len() - 1;
        // Stock 1218 did not trade on the last day; stock 1104 went ex-rights on it.
        if last_day && stock_id == "1218" {
            let mut cells = vec![
                day.to_string(),
                "0".into(),
                "0".into(),
                "--".into(),
                "--".into(),
                "--".into(),
                "--".into(),
                " 0.00".into(),
                "0".into(),
            ];
            if ten_fields {
                cells.push(String::new());
            }
            rows.push(cells);
            continue;
        }
        let step = (next() % 61) as i64 - 30; // -0.30 .. +0.30
        let open = close_cents;
        let close = (close_cents + step).max(100);
        let high = open.max(close) + (next() % 20) as i64;
        let low = (open.min(close) - (next() % 20) as i64).max(50);
        let shares = 50_000 + next() % 20_000_000;
        let turnover = shares * close as u64 / 100;
        let trades = 20 + next() % 9_000;
        let change = close - close_cents;
        let change_text = if last_day && stock_id == "1104" {
            format!("X{}", price(change.abs()))
        } else if change > 0 {
            format!("+{}", price(change))
        } else if change < 0 {
            format!("-{}", price(-change))
        } else {
            " 0.00".into()
        };
        close_cents = close;
        let mut cells = vec![
            day.to_string(),
            thousands(shares),
            thousands(turnover),
            price(open),
            price(high),
            price(low),
            price(close),
            change_text,
            thousands(trades),
        ];
        if ten_fields {
            cells.push(String::new());
        }
        rows.push(cells);
    }
    let data: Vec<String> = rows
        .iter()
        .map(|cells| {
            let quoted: Vec<String> = cells.iter().map(|c| format!("\"{c}\"")).collect();
            format!("[{}]", quoted.join(","))
        })
        .collect();
    format!(
        r#"{{"stat":"OK","date":"{date}","title":"105年05月 {stock_id} 各日成交資訊","fields":{},"data":[{}],"notes":["符號說明:+/-/X表示漲/跌/不比價","當日統計資訊含一般、零股、盤後定價、鉅額交易，不含拍賣、標購。"]}}"#,
        if ten_fields { FIELDS_10 } else { FIELDS_9 },
        data.join(",")
    )
}

fn no_data() -> String {
    format!(r#"{{"stat":"{NO_DATA_STAT}"}}"#)
}

fn price(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A TWSE-format HTTP feed on 127.0.0.1, stopped when dropped. Serves
/// `GET /rwd/zh/afterTrading/STOCK_DAY?date=YYYYMMDD&stockNo=ID&response=json`.
pub struct FeedServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl FeedServer {
    /// Binds a free loopback port and serves on a background thread.
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let (stop_flag, counter) = (stop.clone(), requests.clone());
        let thread = std::thread::Builder::new()
            .name("twse-feed".into())
            .spawn(move || {
                while !stop_flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            counter.fetch_add(1, Ordering::Relaxed);
                            std::thread::spawn(move || {
                                let _ = handle(stream);
                            });
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })?;
        Ok(Self {
            addr,
            stop,
            requests,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT` — the `source` of a stock-day input.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The allowlist entry for this feed: `http://127.0.0.1:PORT/`.
    pub fn allow_prefix(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Connections served so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn handle(stream: TcpStream) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_owned())
            .unwrap_or_default()
    };
    let (status, body) = if path == "/rwd/zh/afterTrading/STOCK_DAY" {
        (
            "200 OK",
            stock_day_answer(&param("stockNo"), &param("date")),
        )
    } else {
        ("404 Not Found", r#"{"stat":"not found"}"#.to_owned())
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_have_twse_shape() {
        let body = stock_day_answer("1104", "20160501");
        assert!(body.starts_with(r#"{"stat":"OK""#));
        assert!(
            body.contains(r#"","X"#),
            "the ex-rights day carries an X-prefixed change"
        );
        assert!(stock_day_answer("1218", "20160501").contains(r#""--""#));
        assert!(stock_day_answer("1103", "20160501").contains("註記"));
        assert_eq!(
            stock_day_answer("9999", "20160501"),
            format!(r#"{{"stat":"{NO_DATA_STAT}"}}"#)
        );
        assert_eq!(thousands(5_614_182), "5,614,182");
        assert_eq!(thousands(999), "999");
    }
}
