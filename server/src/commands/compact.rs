use musketeer_server::store::{Store, StoreLocation};

use crate::cli::CompactArgs;

/// Deleted batches free pages that redb reuses but never gives back to the filesystem; this
/// rewrites the file so that it does. PostgreSQL reuses and returns space itself (autovacuum).
pub fn run(args: CompactArgs) -> anyhow::Result<()> {
    let data_dir = match args.store.location()? {
        StoreLocation::DataDir(dir) => dir,
        StoreLocation::Postgres(_) => {
            println!(
                "Not needed for a PostgreSQL store: autovacuum makes the space of deleted rows \
                 reusable; `VACUUM FULL` (with the server stopped) gives it back to the disk"
            );
            return Ok(());
        }
    };
    let (before, after) = Store::compact(&data_dir)?;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "Compacted the store in {}: {:.1} MiB -> {:.1} MiB",
        data_dir.display(),
        mib(before),
        mib(after)
    );
    Ok(())
}
