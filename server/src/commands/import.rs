//! `import`: a new store from an `export` stream. Every line is checked as it is read (format,
//! table and key order, base64) and rows go to a store file under a temporary name in the
//! target directory, in chunks; only when the trailer's counts and sha256 match is the last
//! chunk made durable and the file renamed to the store's name. A failure removes the file (and
//! the directory, if import made it), so `serve` never meets a partial store. Into PostgreSQL
//! (`--store`), the schema and every row go into one transaction that only a checked trailer
//! commits, under the lock a server holds.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context as _, bail, ensure};
use base64::Engine as _;
use musketeer_server::store::rows::{self, Commit, RowKey, Table};
use musketeer_server::store::{DB_FILE, SCHEMA_VERSION, Store, StoreError, StoreLocation};
use sha2::{Digest as _, Sha256};

use super::export::{FORMAT, FORMAT_VERSION, Header, RowLine, TRAILER_START, TrailerLine, summary};
use crate::cli::ImportArgs;

/// Rows per write transaction: large enough to amortise a commit, small enough that memory
/// stays flat (a chunk of unit rows is a few MB).
const CHUNK_ROWS: usize = 20_000;

pub fn run(args: ImportArgs) -> anyhow::Result<()> {
    let location = args.store.location()?;
    let input = open_input(&args.input)?;
    let (schema, counts) = match &location {
        StoreLocation::DataDir(dir) => import_into_dir(input, dir, &args.input)?,
        StoreLocation::Postgres(url) => import_into_postgres(input, url).with_context(|| {
            format!(
                "importing {} into {location} (nothing was created)",
                args.input
            )
        })?,
    };
    let total: u64 = counts.values().sum();
    println!(
        "Imported {total} rows into {location}: {}",
        summary(&counts)
    );
    if schema < SCHEMA_VERSION {
        println!(
            "The rows have schema {schema}: `serve` (or `migrate`) brings the store to schema \
             {SCHEMA_VERSION} when it first opens it, as for any store of an older release"
        );
    }
    Ok(())
}

/// The export to read: a file, or standard input for `-`.
fn open_input(input: &str) -> anyhow::Result<Box<dyn BufRead>> {
    if input == "-" {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let file = File::open(input).with_context(|| {
        format!("cannot read {input} (the file `musketeer-server export` wrote)")
    })?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
}

/// Import into a new store file in `data_dir`; the schema version and the rows per table.
fn import_into_dir(
    input: Box<dyn BufRead>,
    data_dir: &Path,
    input_name: &str,
) -> anyhow::Result<(u64, BTreeMap<String, u64>)> {
    let target = data_dir.join(DB_FILE);
    if data_dir.is_file() {
        return Err(StoreError::NotADirectory(data_dir.to_owned()).into());
    }
    if target.exists() {
        bail!(
            "{} already exists; import makes a new store and never overwrites one: give an \
             empty --data-dir",
            target.display()
        );
    }
    let made_dir = !data_dir.exists();
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    import_into(input, data_dir, &target)
        .inspect_err(|_| {
            if made_dir {
                // Only if empty: nothing of import's is left in it (the temp file is gone).
                let _ = std::fs::remove_dir(data_dir);
            }
        })
        .with_context(|| {
            format!(
                "importing {input_name} into {} (nothing was created)",
                data_dir.display()
            )
        })
}

/// Import into the PostgreSQL database at `url`, which must hold no musketeer store: the
/// schema and every row in one transaction, committed only once the trailer checks out
/// (dropping the store before that rolls it all back).
fn import_into_postgres(
    input: impl BufRead,
    url: &str,
) -> anyhow::Result<(u64, BTreeMap<String, u64>)> {
    let store = Store::create_empty_postgres(url)?;
    let mut reader = Reader::new(input);
    let schema = reader.header()?;
    // `serve` migrates older rows in a redb file only.
    ensure!(
        schema == SCHEMA_VERSION,
        "the export has rows of schema {schema}; a PostgreSQL store starts at schema \
         {SCHEMA_VERSION}: import it into a --data-dir first, run `musketeer-server migrate \
         --data-dir ...` there, and export that"
    );
    let counts = reader.rows(&store, schema)?;
    Ok((schema, counts))
}

/// Reads the stream into a temporary store file in `dir` and renames it to `target`; the
/// schema version and the rows per table.
fn import_into(
    input: impl BufRead,
    dir: &Path,
    target: &Path,
) -> anyhow::Result<(u64, BTreeMap<String, u64>)> {
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{DB_FILE}.import-"))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let store = Store::create_empty(temp.path())?;
    let mut reader = Reader::new(input);
    let schema = reader.header()?;
    let counts = reader.rows(&store, schema)?;
    drop(store);
    // No-clobber: a store made meanwhile by someone else is not replaced.
    temp.persist_noclobber(target).map_err(|error| {
        anyhow::Error::new(error.error).context(format!(
            "cannot rename the new store to {}",
            target.display()
        ))
    })?;
    // The rename is durable once the directory is.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok((schema, counts))
}

/// The stream, line by line, hashing what it reads.
struct Reader<R> {
    input: R,
    line: Vec<u8>,
    number: u64,
    sha256: Sha256,
}

impl<R: BufRead> Reader<R> {
    fn new(input: R) -> Self {
        Reader {
            input,
            line: Vec::new(),
            number: 0,
            sha256: Sha256::new(),
        }
    }

    /// The next line (with its newline), or false at the end of the input.
    fn next_line(&mut self) -> anyhow::Result<bool> {
        self.line.clear();
        self.number += 1;
        self.input
            .read_until(b'\n', &mut self.line)
            .with_context(|| format!("reading line {}", self.number))?;
        if self.line.is_empty() {
            return Ok(false);
        }
        ensure!(
            self.line.ends_with(b"\n"),
            "line {} ends without a newline: the export is truncated (copy it again, or export \
             again)",
            self.number
        );
        Ok(true)
    }

    /// Reads and checks the header; the schema version of the rows.
    fn header(&mut self) -> anyhow::Result<u64> {
        ensure!(
            self.next_line()?,
            "the input is empty: give the file `musketeer-server export` wrote"
        );
        self.sha256.update(&self.line);
        // Format and version first, so that a newer format says so rather than "unknown field".
        let probe: serde_json::Value = serde_json::from_slice(&self.line)
            .ok()
            .filter(|v: &serde_json::Value| v["format"] == FORMAT)
            .with_context(|| {
                format!("line 1 is not the header of a `musketeer-server export` ({FORMAT})")
            })?;
        let version = probe["format_version"].as_u64();
        ensure!(
            version == Some(u64::from(FORMAT_VERSION)),
            "line 1: export format version {}; this musketeer-server reads version \
             {FORMAT_VERSION}: import with the release that exported it, or a newer one",
            version.map_or_else(|| "missing".to_owned(), |v| v.to_string())
        );
        let header: Header =
            serde_json::from_slice(&self.line).context("line 1 is not a valid export header")?;
        rows::check_schema(header.schema_version, Path::new("in this export"))?;
        Ok(header.schema_version)
    }

    /// Reads every row into `store` and checks the trailer; the rows per table.
    fn rows(&mut self, store: &Store, schema: u64) -> anyhow::Result<BTreeMap<String, u64>> {
        let mut counts: BTreeMap<String, u64> = Table::ALL
            .iter()
            .map(|t| (t.name().to_owned(), 0))
            .collect();
        let mut last: Option<(Table, RowKey)> = None;
        let mut chunk: Vec<(RowKey, Vec<u8>)> = Vec::with_capacity(CHUNK_ROWS);
        loop {
            if !self.next_line()? {
                bail!(
                    "the input ends at line {} without its trailer: the export is truncated \
                     (copy it again, or export again)",
                    self.number - 1
                );
            }
            if self.line.starts_with(TRAILER_START) {
                break;
            }
            self.sha256.update(&self.line);
            let number = self.number;
            let (table, key, row) = parse_row(&self.line)
                .with_context(|| format!("line {number} is not a valid row"))?;
            if let Some((last_table, last_key)) = &last {
                ensure!(
                    (table, &key) > (*last_table, last_key),
                    "line {number}: {} row {key} comes after {} row {last_key}: the rows are \
                     out of order (the export was edited or reordered; export again)",
                    table.name(),
                    last_table.name()
                );
                if table != *last_table {
                    store.write_rows(*last_table, &chunk, Commit::Deferred)?;
                    chunk.clear();
                }
            }
            if table == Table::Meta && key == RowKey::Text("schema_version".into()) {
                ensure!(
                    row == schema.to_le_bytes(),
                    "line {number}: the schema_version row disagrees with the header's {schema}"
                );
            }
            *counts.entry(table.name().to_owned()).or_default() += 1;
            chunk.push((key.clone(), row));
            if chunk.len() >= CHUNK_ROWS {
                store.write_rows(table, &chunk, Commit::Deferred)?;
                chunk.clear();
            }
            last = Some((table, key));
        }
        self.check_trailer(&counts)?;
        let table = last.map_or(Table::Meta, |(table, _)| table);
        // The only durable commit: every chunk before it is on disk with it.
        store.write_rows(table, &chunk, Commit::Durable)?;
        Ok(counts)
    }

    /// Checks the trailer line just read against what came before, and that nothing follows.
    fn check_trailer(&mut self, counts: &BTreeMap<String, u64>) -> anyhow::Result<()> {
        let number = self.number;
        let trailer: TrailerLine = serde_json::from_slice(&self.line)
            .with_context(|| format!("line {number} is not a valid trailer"))?;
        let trailer = trailer.trailer;
        let sha256 = hex::encode(self.sha256.finalize_reset());
        ensure!(
            trailer.sha256 == sha256,
            "line {number}: the trailer's sha256 is {}, but the lines before it hash to \
             {sha256}: the export was changed or damaged (copy it again, or export again)",
            trailer.sha256
        );
        ensure!(
            trailer.rows == *counts,
            "line {number}: the trailer counts rows {:?}, but the export holds {counts:?}",
            trailer.rows
        );
        ensure!(
            !self.next_line()?,
            "line {}: more after the trailer (two exports joined?); give one export",
            self.number
        );
        Ok(())
    }
}

/// A row line's table, key and row bytes.
fn parse_row(line: &[u8]) -> anyhow::Result<(Table, RowKey, Vec<u8>)> {
    let row: RowLine = serde_json::from_slice(line)?;
    let table =
        Table::from_name(row.table).with_context(|| format!("unknown table {:?}", row.table))?;
    ensure!(
        matches!(row.key, RowKey::Text(_)) == table.text_keys(),
        "{} keys are {}, not {}",
        table.name(),
        if table.text_keys() { "text" } else { "ids" },
        row.key
    );
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(row.row.as_bytes())
        .context("the row bytes are not base64")?;
    Ok((table, row.key, bytes))
}
