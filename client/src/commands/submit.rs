//! `musketeer submit`: turn an inputs file into a batch, optionally wait and collect.

use std::io::Read as _;
use std::path::Path;

use anyhow::{Context, bail};
use musketeer_protocol::{Replication, SubmitBatchRequest};

use crate::cli::SubmitArgs;

pub fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let api = super::connection::client(&args.server)?;
    let text = read_inputs(&args.inputs)?;
    let inputs = parse_inputs(&text, args.input_template.as_deref())?;
    if inputs.is_empty() {
        bail!("{} has no inputs (one per line)", args.inputs.display());
    }
    let version = args
        .version
        .as_deref()
        .map(|v| {
            semver::Version::parse(v)
                .with_context(|| format!("--version {v:?} is not a semantic version like 1.2.0"))
        })
        .transpose()?;
    let delay_bound_ms = args
        .deadline
        .as_deref()
        .map(|d| parse_duration_ms(d).with_context(|| format!("--deadline {d:?}")))
        .transpose()?;
    let request = SubmitBatchRequest {
        app: args.app.clone(),
        version,
        inputs,
        replication: Replication {
            min_quorum: args.quorum,
            delay_bound_ms,
            ..Replication::default()
        },
        priority: args.priority,
        label: args.label.clone(),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let response = api
            .submit(&request)
            .await
            .context("submitting the batch failed")?;
        eprintln!(
            "submitted batch {} to {}: {} unit(s) of {} {}",
            response.batch_id,
            api.base_url(),
            response.n_units,
            args.app,
            response.version
        );
        println!("{}", response.batch_id);
        if args.wait {
            let status = super::batch::wait(&api, response.batch_id).await?;
            super::batch::write_results(&api, response.batch_id, args.output.as_deref(), None)
                .await?;
            if status.counts.failed > 0 {
                eprintln!(
                    "{} unit(s) failed; their rows carry the error",
                    status.counts.failed
                );
            }
        }
        Ok(())
    })
}

fn read_inputs(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read inputs from stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read inputs file {}", path.display()))
}

/// One JSON value per non-empty line; with a template, each line is a plain string put in
/// place of `{}`.
pub fn parse_inputs(text: &str, template: Option<&str>) -> anyhow::Result<Vec<serde_json::Value>> {
    if let Some(template) = template
        && !template.contains("{}")
    {
        bail!("--input-template must contain {{}} where each line goes");
    }
    let mut inputs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let json = match template {
            Some(template) => {
                let quoted = serde_json::Value::String(line.to_owned()).to_string();
                template.replace("{}", &quoted)
            }
            None => line.to_owned(),
        };
        let value = serde_json::from_str(&json).with_context(|| match template {
            Some(_) => format!("line {}: the template does not make valid JSON: {json}", index + 1),
            None => format!(
                "line {} is not JSON; use --input-template for plain lines, e.g. --input-template '{{\"id\":{{}}}}'",
                index + 1
            ),
        })?;
        // The server refuses the whole batch for one such input; say which line it is.
        if let Err(error) = musketeer_protocol::check_input(&value) {
            bail!(
                "line {}: {error}; volunteers cannot take it, make it smaller or flatter",
                index + 1
            );
        }
        inputs.push(value);
    }
    Ok(inputs)
}

/// `90s`, `10m`, `2h`, `1d` as milliseconds.
pub fn parse_duration_ms(text: &str) -> anyhow::Result<u64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .context("expected a number and a unit, e.g. 90s, 10m, 2h")?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("the unit must be ms, s, m, h or d"),
    };
    Ok(number.saturating_mul(scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_and_templates() {
        let inputs = parse_inputs("{\"a\":1}\n\n[2]\n", None).unwrap();
        assert_eq!(
            inputs,
            vec![serde_json::json!({"a":1}), serde_json::json!([2])]
        );
        let inputs = parse_inputs("1101\n1102 \n", Some(r#"{"stock_id":{},"year":2016}"#)).unwrap();
        assert_eq!(
            inputs[1],
            serde_json::json!({"stock_id":"1102","year":2016})
        );
        let err = parse_inputs("AAPL\n", None).unwrap_err();
        assert!(format!("{err:#}").contains("--input-template"), "{err:#}");
        assert!(parse_inputs("x", Some("no placeholder")).is_err());
    }

    #[test]
    fn inputs_beyond_the_protocol_limits_name_their_line() {
        let deep = format!("{}1{}", "[".repeat(65), "]".repeat(65));
        let err = parse_inputs(&format!("1\n\n{deep}\n"), None).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.starts_with("line 3: input is nested more than 64"),
            "{text}"
        );
        let flat = format!("{}1{}", "[".repeat(64), "]".repeat(64));
        assert_eq!(parse_inputs(&flat, None).unwrap().len(), 1);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("90s").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("2h").unwrap(), 7_200_000);
        for bad in ["", "s", "10", "10y", "-1s"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
