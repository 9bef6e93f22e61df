use anyhow::Context as _;
use musketeer_server::store::{MigrationReport, SCHEMA_VERSION, Store};

use crate::cli::MigrateArgs;

/// `serve` migrates on start as well; this command lets an operator see (or do) it first, e.g.
/// before a maintenance window.
pub fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let dir = args.data_dir.display();
    let report = if args.dry_run {
        Store::migration_plan(&args.data_dir)
            .with_context(|| format!("examining the store in {dir}"))?
    } else {
        Store::open_migrating(&args.data_dir)
            .with_context(|| format!("migrating the store in {dir}"))?
            .1
    };
    let Some(MigrationReport {
        from,
        to,
        backup,
        steps,
    }) = report
    else {
        println!("The store in {dir} is at schema {SCHEMA_VERSION}: nothing to do");
        return Ok(());
    };
    let (done, copied) = if args.dry_run {
        ("Would migrate", "would first be copied to")
    } else {
        ("Migrated", "was first copied to")
    };
    println!("{done} the store in {dir} from schema {from} to {to}:");
    println!("  the store {copied} {}", backup.display());
    for step in &steps {
        println!("  {step}");
    }
    if args.dry_run {
        println!("Nothing was changed; run without --dry-run (or start `serve`) to do it");
    }
    Ok(())
}
