//! `musketeer submit`: turn an inputs file into a batch, optionally wait and collect.

use std::io::Read as _;
use std::path::Path;

use anyhow::{Context, bail};
use musketeer_protocol::{Replication, ResultsFormat, SubmitBatchRequest};

use crate::cli::SubmitArgs;

pub fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    let api = super::connection::client(&args.server)?;
    let raw_inputs = match &args.lines {
        Some(path) => super::submit_lines::read_lines(path)?,
        None => Vec::new(),
    };
    let inputs = match &args.inputs {
        _ if args.lines.is_some() => Vec::new(),
        Some(path) => {
            let text = read_inputs(path)?;
            let inputs = parse_inputs(&text, args.input_template.as_deref())?;
            if inputs.is_empty() {
                bail!("{} has no inputs (one per line)", path.display());
            }
            inputs
        }
        None => args
            .input
            .iter()
            .map(|input| one_input(input))
            .collect::<anyhow::Result<_>>()?,
    };
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
        .map(|deadline| u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX));
    if args.stream
        && let Some(path) = &args.output
        && path.extension().and_then(|e| e.to_str()) == Some("csv")
    {
        bail!(
            "--stream writes JSON lines as units finish; name --output {} .jsonl (or download \
             the CSV afterwards with `musketeer batch results ID --output FILE.csv`)",
            path.display()
        );
    }
    let request = SubmitBatchRequest {
        app: args.app.clone(),
        version,
        inputs,
        raw_inputs,
        replication: Replication {
            min_quorum: args.quorum,
            delay_bound_ms,
            ..Replication::default()
        },
        priority: args.priority,
        label: args.label.clone(),
    };
    let runtime = super::connection::runtime()?;
    runtime.block_on(async {
        let response = match api.submit(&request).await {
            Ok(response) => response,
            Err(error) if args.lines.is_some() => {
                return Err(super::submit_lines::explain_refusal(error, api.base_url()));
            }
            Err(error) => return Err(error).context("submitting the batch failed"),
        };
        crate::note!(
            "submitted batch {} to {}: {} unit(s) of {} {}",
            response.batch_id,
            api.base_url(),
            response.n_units,
            args.app,
            response.version
        );
        if args.json {
            println!("{}", serde_json::to_string(&response)?);
        } else {
            println!("{}", response.batch_id);
        }
        if !args.wait {
            return Ok(());
        }
        let id = response.batch_id;
        let output = args.output.as_deref();
        let status = if args.stream {
            stream_to(&api, id, output).await?
        } else {
            wait_and_write(&api, id, response.n_units, output).await?
        };
        match super::batch::ended_with_failures(&status) {
            Some(failures) => Err(failures.into()),
            None => Ok(()),
        }
    })
}

/// Waits for batch `id` of `n_units` units, then writes its results to `output` or stdout. A
/// small batch written as JSON lines is collected while waiting (no download request after it).
async fn wait_and_write(
    api: &crate::api_client::ApiClient,
    id: musketeer_protocol::BatchId,
    n_units: u64,
    output: Option<&Path>,
) -> anyhow::Result<musketeer_protocol::BatchStatus> {
    use super::submit_collect::{MAX_COLLECTED_UNITS, Waited};
    // A name that says no format is refused before the wait, not after it.
    let format = super::batch::output_format(output, None)?;
    let ended = if format == ResultsFormat::Jsonl && n_units <= MAX_COLLECTED_UNITS {
        match super::submit_collect::wait_collecting(api, id).await? {
            Waited::Collected { status, lines } => {
                super::submit_collect::write_lines(&lines, output)?;
                return Ok(status);
            }
            Waited::Ended(status) => status,
            Waited::TooLarge => super::batch::wait(api, id).await?,
        }
    } else {
        super::batch::wait(api, id).await?
    };
    super::batch::write_results(api, id, output, None).await?;
    Ok(ended)
}

/// `--stream`: rows to `output` (JSON lines) or stdout as units finish.
async fn stream_to(
    api: &crate::api_client::ApiClient,
    id: musketeer_protocol::BatchId,
    output: Option<&Path>,
) -> anyhow::Result<musketeer_protocol::BatchStatus> {
    match output {
        Some(path) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let status = super::follow::stream_results(api, id, &mut file).await?;
            file.sync_all()
                .with_context(|| format!("cannot write {}", path.display()))?;
            crate::note!("results written to {}", path.display());
            Ok(status)
        }
        None => super::follow::stream_results(api, id, &mut std::io::stdout().lock()).await,
    }
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

/// `--input`: inline JSON, or `@FILE` holding one JSON value.
fn one_input(text: &str) -> anyhow::Result<serde_json::Value> {
    let (json, source) = match text.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("--input @{path}: cannot read the file"))?,
            format!("--input @{path}"),
        ),
        None => (text.to_owned(), format!("--input {text:?}")),
    };
    let value: serde_json::Value = serde_json::from_str(&json).with_context(|| {
        format!(
            "{source} is not one JSON value; quote text as JSON (e.g. --input '\"AAPL\"') or use \
             --inputs FILE with --input-template for plain lines"
        )
    })?;
    if let Err(error) = musketeer_protocol::check_input(&value) {
        bail!("{source}: {error}; volunteers cannot take it, make it smaller or flatter");
    }
    Ok(value)
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
    fn one_input_inline_or_from_a_file() {
        assert_eq!(
            one_input(r#"{"a": [1, 2]}"#).unwrap(),
            serde_json::json!({"a": [1, 2]})
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("one.json");
        std::fs::write(&file, "{\n  \"stock_id\": \"2330\",\n  \"year\": 2016\n}\n").unwrap();
        let value = one_input(&format!("@{}", file.display())).unwrap();
        assert_eq!(value, serde_json::json!({"stock_id": "2330", "year": 2016}));
        let err = format!("{:#}", one_input("AAPL").unwrap_err());
        assert!(
            err.starts_with("--input \"AAPL\" is not one JSON value"),
            "{err}"
        );
        let err = format!("{:#}", one_input("@/nonexistent/x.json").unwrap_err());
        assert!(err.contains("cannot read the file"), "{err}");
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
}
