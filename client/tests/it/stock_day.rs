//! The stock-day crawler against a local server that answers in TWSE's format.

use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use musketeer_task_artifacts::twse::{FeedServer, ORIGINAL_STOCK_IDS};
use serde_json::json;

use crate::support::{Signed, run_once, sandbox, serve, sign, test_limits};

const NINE_FIELDS_2356: &str = r#"{"stat":"OK","date":"20160501","title":"105年05月 2356 英業達 各日成交資訊",
"fields":["日期","成交股數","成交金額","開盤價","最高價","最低價","收盤價","漲跌價差","成交筆數"],
"data":[["105/05/27","5,614,182","110,879,335","19.70","19.85","19.65","19.80","+0.10","1,836"],
["105/05/30","8,245,000","164,105,311","19.85","20.00","19.80","19.95","+0.15","2,101"],
["105/05/31","12,345,678","247,962,118","19.95","20.20","19.90","20.10","+0.15","4,321"]],
"notes":["符號說明:+/-/X表示漲/跌/不比價"]}"#;

const TEN_FIELDS_1104: &str = r#"{"stat":"OK","date":"20160501","title":"105年05月 1104 環泥 各日成交資訊",
"fields":["日期","成交股數","成交金額","開盤價","最高價","最低價","收盤價","漲跌價差","成交筆數","註記"],
"data":[["105/05/30","301,000","5,297,600","17.60","17.65","17.55","17.60","-0.05","112",""],
["105/05/31","1,000,100","16,901,690","16.90","16.95","16.85","16.90","X0.00","403",""]]}"#;

const NO_TRADES_1218: &str = r#"{"stat":"OK","date":"20160501",
"fields":["日期","成交股數","成交金額","開盤價","最高價","最低價","收盤價","漲跌價差","成交筆數","註記"],
"data":[["105/05/31","0","0","--","--","--","--"," 0.00","0","停止交易"]]}"#;

const NO_DATA: &str = r#"{"stat":"很抱歉，沒有符合條件的資料!"}"#;

#[derive(serde::Deserialize)]
struct StockDayQuery {
    #[serde(rename = "stockNo")]
    stock_no: String,
    date: String,
    response: String,
}

fn twse_routes() -> Router {
    Router::new().route(
        "/rwd/zh/afterTrading/STOCK_DAY",
        get(|Query(q): Query<StockDayQuery>| async move {
            assert_eq!((q.date.as_str(), q.response.as_str()), ("20160501", "json"));
            match q.stock_no.as_str() {
                "2356" => NINE_FIELDS_2356,
                "1104" => TEN_FIELDS_1104,
                "1218" => NO_TRADES_1218,
                _ => NO_DATA,
            }
        }),
    )
}

async fn crawl(
    signed: &Signed,
    source: &str,
    stock: &str,
    all_days: bool,
) -> Result<String, String> {
    let input = json!({"stock_id": stock, "year": 2016, "month": 5, "source": source, "all_days": all_days});
    let result = run_once(&sandbox(), signed, input.to_string().as_bytes()).await;
    match result {
        Ok(out) => Ok(String::from_utf8(out.output).expect("UTF-8 output")),
        Err(error) => Err(format!("{}|{error}", error.kind())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_trading_day_in_original_column_order() {
    let feed = serve(twse_routes()).await;
    let signed = sign(
        musketeer_task_artifacts::STOCK_DAY,
        &[feed.allow()],
        test_limits(),
    );
    let source = feed.url("");
    assert_eq!(
        crawl(&signed, &source, "2356", false).await.unwrap(),
        r#"{"個股代號":"2356","日期":"105/05/31","成交股數":12345678,"成交金額":247962118,"開盤價":19.95,"最高價":20.2,"最低價":19.9,"收盤價":20.1,"漲跌價差":0.15,"成交筆數":4321}"#
    );
    // Ten fields, ex-rights `X0.00`.
    assert_eq!(
        crawl(&signed, &source, "1104", false).await.unwrap(),
        r#"{"個股代號":"1104","日期":"105/05/31","成交股數":1000100,"成交金額":16901690,"開盤價":16.9,"最高價":16.95,"最低價":16.85,"收盤價":16.9,"漲跌價差":0.0,"成交筆數":403}"#
    );
    // No trades: `--` prices are null.
    assert_eq!(
        crawl(&signed, &source, "1218", false).await.unwrap(),
        r#"{"個股代號":"1218","日期":"105/05/31","成交股數":0,"成交金額":0,"開盤價":null,"最高價":null,"最低價":null,"收盤價":null,"漲跌價差":0.0,"成交筆數":0}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_days_and_twse_refusals() {
    let feed = serve(twse_routes()).await;
    let signed = sign(
        musketeer_task_artifacts::STOCK_DAY,
        &[feed.allow()],
        test_limits(),
    );
    let source = feed.url("");
    let days: serde_json::Value =
        serde_json::from_str(&crawl(&signed, &source, "2356", true).await.unwrap()).unwrap();
    let days = days.as_array().expect("an array of days");
    assert_eq!(days.len(), 3);
    assert_eq!(days[0]["日期"], "105/05/27");
    assert_eq!(days[0]["成交股數"], 5_614_182);
    assert_eq!(days[0]["漲跌價差"], 0.1);

    let refused = crawl(&signed, &source, "9999", false).await.unwrap_err();
    assert_eq!(refused, "task-error|TWSE: 很抱歉，沒有符合條件的資料!");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawler_cannot_leave_its_allowlist() {
    let feed = serve(twse_routes()).await;
    let elsewhere = serve(twse_routes()).await;
    // Signed for `feed` only; asked to crawl `elsewhere`.
    let signed = sign(
        musketeer_task_artifacts::STOCK_DAY,
        &[feed.allow()],
        test_limits(),
    );
    let error = crawl(&signed, &elsewhere.url(""), "2356", false)
        .await
        .unwrap_err();
    assert!(error.contains("task-error|fetching"), "{error}");
    assert!(
        error.contains("not in the manifest's HTTP allowlist"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_feed_answers_all_thirty_original_stocks() {
    let feed = tokio::task::spawn_blocking(FeedServer::start)
        .await
        .unwrap()
        .expect("feed");
    let signed = sign(
        musketeer_task_artifacts::STOCK_DAY,
        &[feed.allow_prefix()],
        test_limits(),
    );
    for stock in ORIGINAL_STOCK_IDS {
        let row: serde_json::Value = serde_json::from_str(
            &crawl(&signed, &feed.base_url(), stock, false)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(row["個股代號"], stock);
        assert_eq!(row["日期"], "105/05/31");
    }
}
