//! The `musketeer` binary: glue between the CLI and the library.

use std::process::ExitCode;

use clap::Parser;
use musketeer_client::{cli, commands, volunteer};

/// Exit status when a task was refused or failed in the sandbox (setup errors exit 1).
const EXIT_TASK_FAILED: u8 = 3;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MUSKETEER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = cli::Cli::parse();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(failed) = error.downcast_ref::<commands::run::TaskRunFailed>() {
                eprintln!("error: {failed}");
                return ExitCode::from(EXIT_TASK_FAILED);
            }
            if let Some(io) = error.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return ExitCode::SUCCESS;
            }
            // The whole cause chain, each cause once: the root cause ("Connection refused")
            // is what says what to fix.
            let causes = error.chain().map(ToString::to_string);
            eprintln!("error: {}", volunteer::events::compact_chain(causes));
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: cli::Cli) -> anyhow::Result<()> {
    match cli.command {
        cli::Command::Keys {
            command: cli::KeysCommand::Generate { out },
        } => commands::keys::generate(&out),
        cli::Command::Keys {
            command:
                cli::KeysCommand::Rotate {
                    old,
                    new,
                    keep_old,
                    out,
                },
        } => commands::keys::rotate(&old, &new, !keep_old, &out),
        cli::Command::Sign(args) => commands::sign::sign(&args),
        cli::Command::Run(args) => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(commands::run::run(&args))
        }
        cli::Command::Join(args) => commands::join::join(args),
        #[cfg(unix)]
        cli::Command::Status(args) => commands::control::status(&args),
        #[cfg(unix)]
        cli::Command::Pause(args) => commands::control::pause(&args),
        #[cfg(unix)]
        cli::Command::Resume(args) => commands::control::resume(&args),
        #[cfg(not(unix))]
        cli::Command::Status(_) | cli::Command::Pause(_) | cli::Command::Resume(_) => {
            anyhow::bail!(
                "`musketeer status`, `pause` and `resume` talk to the client through a Unix \
                 socket, which this system does not have; edit preferences.toml instead"
            )
        }
        cli::Command::Submit(args) => commands::submit::submit(args),
        cli::Command::Batch { command } => commands::batch::batch(command),
        cli::Command::Publish(args) => commands::publish::publish(args),
        cli::Command::Hosts { command } => commands::hosts::hosts(command),
        cli::Command::Admin { command } => commands::admin::admin(command),
        cli::Command::Tokens { command } => commands::tokens::tokens(command),
    }
}
