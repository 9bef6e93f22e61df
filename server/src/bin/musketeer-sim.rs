//! `musketeer-sim`: run the reputation simulator's standard scenarios over the pure domain and
//! print a markdown table (docs/benchmarks.md quotes it).
//!
//! Usage: `musketeer-sim [UNITS] [SEED]` (defaults 10000 and 1).

use std::process::ExitCode;

use musketeer_server::sim;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let parse = |arg: Option<String>, default: u64, what: &str| -> Result<u64, String> {
        arg.map_or(Ok(default), |a| {
            a.parse().map_err(|_| {
                format!(
                    "{what} must be a whole number, got {a:?}; usage: musketeer-sim [UNITS] [SEED]"
                )
            })
        })
    };
    let (units, seed) = match (
        parse(args.next(), 10_000, "UNITS"),
        parse(args.next(), 1, "SEED"),
    ) {
        (Ok(units), Ok(seed)) => (units, seed),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", sim::TABLE_HEADER);
    for scenario in sim::scenarios(units as usize, seed) {
        let summary = sim::run(&scenario);
        println!("{}", sim::row(&scenario, &summary));
    }
    ExitCode::SUCCESS
}
