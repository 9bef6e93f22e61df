use anyhow::Context as _;
use musketeer_server::store::{MigrationReport, SCHEMA_VERSION, Store, StoreLocation};

use crate::cli::MigrateArgs;

/// `serve` migrates on start as well; this command lets an operator see (or do) it first, e.g.
/// before a maintenance window.
pub fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let data_dir = match args.store.location()? {
        StoreLocation::DataDir(dir) => dir,
        StoreLocation::Postgres(url) => return postgres(url, args.dry_run),
    };
    let dir = data_dir.display();
    let report = if args.dry_run {
        Store::migration_plan(&data_dir).with_context(|| format!("examining the store in {dir}"))?
    } else {
        Store::open_migrating(&data_dir)
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

/// A PostgreSQL store's schema moves forward by versioned SQL migrations, each in a transaction
/// (PostgreSQL's DDL is transactional, so no copy is made first; pg_dump before, if wanted).
fn postgres(url: String, dry_run: bool) -> anyhow::Result<()> {
    let steps = Store::migrate_postgres(&url, dry_run).with_context(|| {
        format!(
            "migrating the store {}",
            StoreLocation::Postgres(url.clone())
        )
    })?;
    let location = StoreLocation::Postgres(url);
    if steps.is_empty() {
        println!("The store {location} is up to date: nothing to do");
        return Ok(());
    }
    let done = if dry_run { "Would apply" } else { "Applied" };
    println!("{done} to the store {location}:");
    for step in &steps {
        println!("  {step}");
    }
    if dry_run {
        println!("Nothing was changed; run without --dry-run (or start `serve`) to do it");
    }
    Ok(())
}
