use musketeer_server::store::Store;

use crate::cli::CompactArgs;

/// Deleted batches free pages that redb reuses but never gives back to the filesystem; this
/// rewrites the file so that it does.
pub fn run(args: CompactArgs) -> anyhow::Result<()> {
    let (before, after) = Store::compact(&args.data_dir)?;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "Compacted the store in {}: {:.1} MiB -> {:.1} MiB",
        args.data_dir.display(),
        mib(before),
        mib(after)
    );
    Ok(())
}
