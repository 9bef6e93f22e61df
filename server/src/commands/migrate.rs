use anyhow::Context as _;
use musketeer_server::store::{SCHEMA_VERSION, Store};

use crate::cli::MigrateArgs;

/// `serve` migrates on start as well; this command lets an operator see (or do) it first, e.g.
/// before a maintenance window.
pub fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let dir = args.data_dir.display();
    if args.dry_run {
        let plan = Store::migration_plan(&args.data_dir)
            .with_context(|| format!("examining the store in {dir}"))?;
        match plan {
            None => println!("The store in {dir} is at schema {SCHEMA_VERSION}: nothing to do"),
            Some(plan) => {
                println!(
                    "Would migrate the store in {dir} from schema {} to {}:",
                    plan.from, plan.to
                );
                println!("  copy it first to {}", plan.backup.display());
                for step in &plan.steps {
                    println!("  {step}");
                }
                println!("Nothing was changed; run without --dry-run (or start `serve`) to do it");
            }
        }
        return Ok(());
    }
    let (_, report) = Store::open_migrating(&args.data_dir)
        .with_context(|| format!("migrating the store in {dir}"))?;
    match report {
        None => println!("The store in {dir} is at schema {SCHEMA_VERSION}: nothing to do"),
        Some(report) => {
            println!(
                "Migrated the store in {dir} from schema {} to {}",
                report.from, report.to
            );
            println!("  the store before: {}", report.backup.display());
            for step in &report.steps {
                println!("  {step}");
            }
        }
    }
    Ok(())
}
