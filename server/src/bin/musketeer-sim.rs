//! `musketeer-sim`: run the reputation simulator's standard scenarios over the pure domain and
//! print a markdown table (docs/benchmarks.md quotes it).
//!
//! Usage: `musketeer-sim [UNITS] [SEED] [BATCH_SHARE]` (defaults 10000, 1 and 100: the largest
//! percent of the batch one host may take, `serve --max-batch-share`).

use std::process::ExitCode;

use musketeer_server::sim;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let parse = |arg: Option<String>, default: u64, what: &str| -> Result<u64, String> {
        arg.map_or(Ok(default), |a| {
            a.parse().map_err(|_| {
                format!(
                    "{what} must be a whole number, got {a:?}; usage: musketeer-sim [UNITS] [SEED] [BATCH_SHARE]"
                )
            })
        })
    };
    let (units, seed, share) = match (
        parse(args.next(), 10_000, "UNITS"),
        parse(args.next(), 1, "SEED"),
        parse(args.next(), 100, "BATCH_SHARE"),
    ) {
        (Ok(_), Ok(_), Ok(share)) if !(1..=100).contains(&share) => {
            eprintln!("error: BATCH_SHARE must be a percent from 1 to 100, got {share}");
            return ExitCode::FAILURE;
        }
        (Ok(units), Ok(seed), Ok(share)) => (units, seed, share as u32),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", sim::TABLE_HEADER);
    for mut scenario in sim::scenarios(units as usize, seed) {
        scenario.policy.max_batch_share_percent = share;
        let summary = sim::run(&scenario);
        println!("{}", sim::row(&scenario, &summary));
    }
    ExitCode::SUCCESS
}
