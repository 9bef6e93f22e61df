//! `export`: the whole store as a stream of JSON lines that any backend can import. The format
//! (docs/operator.md, "Moving a store"): a header line, one line per row of every table in
//! [`Table::ALL`] order and key order (`{"table","key","row"}`, the row bytes in base64), and a
//! trailer line with the row count per table and the sha256 of every byte before it. Rows are
//! written as they are read, so memory does not grow with the store.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use musketeer_server::store::Store;
use musketeer_server::store::rows::{RowKey, Table};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::cli::ExportArgs;

/// The header's `format`.
pub const FORMAT: &str = "musketeer-store-export";
/// The header's `format_version`: the layout of the lines, not of the rows (whose own version
/// is the store's `schema_version`).
pub const FORMAT_VERSION: u32 = 1;
/// What the trailer line starts with (a row line starts with `{"table"`).
pub const TRAILER_START: &[u8] = b"{\"trailer\"";

/// The first line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The store's schema version (that of its rows).
    pub schema_version: u64,
    /// Which project this is, for a reader.
    pub project: ProjectLabel,
}

/// The project's name and creation time, as the store's meta row has them.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProjectLabel {
    /// Display name.
    pub name: String,
    /// When the store was created.
    pub created_ms: u64,
}

/// A row line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowLine<'a> {
    /// [`Table::name`].
    #[serde(borrow)]
    pub table: &'a str,
    /// The key: a string or a number, as the table has.
    pub key: RowKey,
    /// The row bytes, base64 (standard alphabet, padded).
    #[serde(borrow)]
    pub row: std::borrow::Cow<'a, str>,
}

/// The last line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrailerLine {
    /// Its content.
    pub trailer: Trailer,
}

/// What the trailer checks.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trailer {
    /// Rows per table, every table named (0 for an empty one).
    pub rows: BTreeMap<String, u64>,
    /// sha256 (hex) of every byte before the trailer line.
    pub sha256: String,
}

/// A writer that hashes what goes through it.
struct Hashing<W> {
    inner: W,
    sha256: Sha256,
}

impl<W: std::io::Write> std::io::Write for Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(bytes)?;
        self.sha256.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let location = args.store.location()?;
    let dir = &location;
    // Before the output is created, so that a store in use leaves no empty file behind.
    let (store, schema_version) = Store::open_unmigrated_at(&location)
        .with_context(|| format!("opening the store {dir} (export needs the server stopped)"))?;
    let counts = match args.output.as_deref() {
        None | Some("-") => {
            let stdout = std::io::stdout().lock();
            write_export(&store, schema_version, BufWriter::new(stdout))
                .context("writing the export to stdout")?
        }
        Some(path) => {
            let path = Path::new(path);
            let file = File::create_new(path).with_context(|| {
                format!(
                    "cannot create {}: export writes a new file (remove the old one or pick \
                     another --output)",
                    path.display()
                )
            })?;
            let written =
                write_export(&store, schema_version, BufWriter::new(&file)).and_then(|counts| {
                    file.sync_all()?;
                    Ok(counts)
                });
            match written {
                Ok(counts) => counts,
                Err(error) => {
                    // Half an export would only be refused by import; do not leave it around.
                    let _ = std::fs::remove_file(path);
                    return Err(error)
                        .with_context(|| format!("writing the export to {}", path.display()));
                }
            }
        }
    };
    let total: u64 = counts.values().sum();
    eprintln!(
        "Exported {total} rows (schema {schema_version}) from {dir}: {}",
        summary(&counts)
    );
    Ok(())
}

/// "units 12, batches 1, ...": the tables that have rows.
pub fn summary(counts: &BTreeMap<String, u64>) -> String {
    Table::ALL
        .iter()
        .filter_map(|table| {
            let n = counts.get(table.name()).copied().unwrap_or(0);
            (n > 0).then(|| format!("{} {n}", table.name()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes the header, every row and the trailer; the row count per table.
fn write_export(
    store: &Store,
    schema_version: u64,
    out: impl std::io::Write,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut out = Hashing {
        inner: out,
        sha256: Sha256::new(),
    };
    let header = Header {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        schema_version,
        project: project_label(store)?,
    };
    serde_json::to_writer(&mut out, &header)?;
    out.write_all(b"\n")?;
    let mut counts = BTreeMap::new();
    let mut base64 = String::new();
    for table in Table::ALL {
        let mut rows = 0u64;
        store.visit_rows(table, |key, row| -> anyhow::Result<()> {
            base64.clear();
            base64::engine::general_purpose::STANDARD.encode_string(row, &mut base64);
            let line = RowLine {
                table: table.name(),
                key: key.clone(),
                row: base64.as_str().into(),
            };
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
            rows += 1;
            Ok(())
        })?;
        counts.insert(table.name().to_owned(), rows);
    }
    let trailer = TrailerLine {
        trailer: Trailer {
            rows: counts.clone(),
            sha256: hex::encode(out.sha256.finalize_reset()),
        },
    };
    serde_json::to_writer(&mut out.inner, &trailer)?;
    out.inner.write_all(b"\n")?;
    out.inner.flush()?;
    Ok(counts)
}

/// The project's name and creation time from its meta row, read leniently (any schema).
fn project_label(store: &Store) -> anyhow::Result<ProjectLabel> {
    let mut label = None;
    store.visit_rows(Table::Meta, |key, row| -> anyhow::Result<()> {
        if *key == RowKey::Text("project".into()) {
            label = Some(
                serde_json::from_slice::<ProjectLabel>(row)
                    .context("the store's project row does not decode")?,
            );
        }
        Ok(())
    })?;
    label.context("the store has no project row (meta \"project\"); it is not a complete store")
}
