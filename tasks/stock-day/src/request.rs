//! The task input and the TWSE URL it maps to.

use serde::Deserialize;

/// Where the report is fetched from when the input names no `source`.
pub const DEFAULT_SOURCE: &str = "https://www.twse.com.tw";

/// `{"stock_id":"2356","year":2016,"month":5}` plus optional `source` and `all_days`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// TWSE security code, e.g. `"2356"` or `"0050"` (a string: leading zeros matter).
    pub stock_id: String,
    /// Gregorian year, four digits.
    pub year: u16,
    /// Month, 1 to 12.
    pub month: u8,
    /// Base URL of a TWSE-compatible server; defaults to [`DEFAULT_SOURCE`].
    #[serde(default)]
    pub source: Option<String>,
    /// Return every trading day of the month instead of the last one.
    #[serde(default)]
    pub all_days: bool,
}

impl Request {
    /// Checks the fields that end up in the URL, so no input can change its shape.
    pub fn validate(&self) -> Result<(), String> {
        let id = &self.stock_id;
        if id.is_empty() || id.len() > 12 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "invalid input: stock_id {id:?} must be 1 to 12 ASCII letters or digits"
            ));
        }
        if !(1000..=9999).contains(&self.year) {
            return Err(format!(
                "invalid input: year {} must have four digits",
                self.year
            ));
        }
        if !(1..=12).contains(&self.month) {
            return Err(format!(
                "invalid input: month {} must be 1 to 12",
                self.month
            ));
        }
        if let Some(source) = &self.source {
            let rest = source
                .strip_prefix("https://")
                .or_else(|| source.strip_prefix("http://"));
            let ok = rest.is_some_and(|r| {
                !r.is_empty() && !r.contains(['?', '#']) && !r.contains(char::is_whitespace)
            });
            if !ok {
                return Err(format!(
                    "invalid input: source {source:?} must be an http(s) base URL without query or fragment"
                ));
            }
        }
        Ok(())
    }

    /// The STOCK_DAY report URL for this stock and month.
    pub fn url(&self) -> String {
        let source = self.source.as_deref().unwrap_or(DEFAULT_SOURCE);
        format!(
            "{}/rwd/zh/afterTrading/STOCK_DAY?date={:04}{:02}01&stockNo={}&response=json",
            source.trim_end_matches('/'),
            self.year,
            self.month,
            self.stock_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> Result<Request, String> {
        let r: Request = serde_json::from_str(json).map_err(|e| e.to_string())?;
        r.validate().map(|()| r)
    }

    #[test]
    fn default_source_url() {
        let r = request(r#"{"stock_id":"2356","year":2016,"month":5}"#).unwrap();
        assert_eq!(
            r.url(),
            "https://www.twse.com.tw/rwd/zh/afterTrading/STOCK_DAY?date=20160501&stockNo=2356&response=json"
        );
        assert!(!r.all_days);
    }

    #[test]
    fn custom_source_loses_its_trailing_slash() {
        let r = request(
            r#"{"stock_id":"0050","year":2024,"month":12,"source":"http://127.0.0.1:8080/","all_days":true}"#,
        )
        .unwrap();
        assert_eq!(
            r.url(),
            "http://127.0.0.1:8080/rwd/zh/afterTrading/STOCK_DAY?date=20241201&stockNo=0050&response=json"
        );
        assert!(r.all_days);
    }

    #[test]
    fn rejects_inputs_that_would_bend_the_url() {
        for (json, needle) in [
            (r#"{"stock_id":"23&x=1","year":2016,"month":5}"#, "stock_id"),
            (r#"{"stock_id":"","year":2016,"month":5}"#, "stock_id"),
            (r#"{"stock_id":"2356","year":16,"month":5}"#, "year"),
            (r#"{"stock_id":"2356","year":2016,"month":13}"#, "month"),
            (r#"{"stock_id":"2356","year":2016,"month":0}"#, "month"),
            (
                r#"{"stock_id":"2356","year":2016,"month":5,"source":"ftp://x"}"#,
                "source",
            ),
            (
                r#"{"stock_id":"2356","year":2016,"month":5,"source":"http://x/?a"}"#,
                "source",
            ),
            (
                r#"{"stock_id":"2356","year":2016,"month":5,"source":"https://"}"#,
                "source",
            ),
        ] {
            let err = request(json).unwrap_err();
            assert!(
                err.starts_with("invalid input:") && err.contains(needle),
                "{json}: {err}"
            );
        }
    }

    #[test]
    fn rejects_unknown_and_missing_fields() {
        assert!(request(r#"{"stock_id":"2356","year":2016}"#).is_err());
        assert!(request(r#"{"stock_id":"2356","year":2016,"month":5,"day":1}"#).is_err());
        assert!(request(r#"{"stock_id":2356,"year":2016,"month":5}"#).is_err());
    }
}
