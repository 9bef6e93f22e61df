//! The `musketeer` binary: glue between the CLI and the library.

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser};
use musketeer_client::{cli, commands, exit};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // MUSKETEER_LOG, when set, says exactly what to log; -v raises the default.
    let default_level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MUSKETEER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    commands::set_quiet(cli.quiet);
    match dispatch(cli) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(error) => {
            if let Some(io) = error.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return ExitCode::from(exit::OK);
            }
            let (status, text) = exit::report(&error);
            eprintln!("{text}");
            ExitCode::from(status)
        }
    }
}

fn dispatch(cli: cli::Cli) -> anyhow::Result<()> {
    match cli.command {
        cli::Command::Keys {
            command: cli::KeysCommand::Generate { out, json },
        } => commands::keys::generate(&out, json),
        cli::Command::Keys {
            command:
                cli::KeysCommand::Rotate {
                    old,
                    new,
                    keep_old,
                    out,
                    json,
                },
        } => commands::keys::rotate(&old, &new, !keep_old, &out, json),
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
        #[cfg(unix)]
        cli::Command::Projects(args) => commands::projects::projects(&args),
        #[cfg(unix)]
        cli::Command::Detach(args) => commands::projects::detach(&args),
        #[cfg(not(unix))]
        cli::Command::Status(_)
        | cli::Command::Pause(_)
        | cli::Command::Resume(_)
        | cli::Command::Projects(_)
        | cli::Command::Detach(_) => {
            anyhow::bail!(
                "`musketeer status`, `pause`, `resume`, `projects` and `detach` talk to the \
                 client through a Unix socket, which this system does not have; edit \
                 preferences.toml instead"
            )
        }
        cli::Command::Submit(args) => commands::submit::submit(args),
        cli::Command::Apps { command } => commands::apps::apps(command),
        cli::Command::Batch { command } => commands::batch::batch(command),
        cli::Command::Publish(args) => commands::publish::publish(args),
        cli::Command::Hosts { command } => commands::hosts::hosts(command),
        cli::Command::Admin { command } => commands::admin::admin(command),
        cli::Command::Tokens { command } => commands::tokens::tokens(command),
        cli::Command::Completions { shell } => {
            let mut command = cli::Cli::command();
            clap_complete::generate(shell, &mut command, "musketeer", &mut std::io::stdout());
            Ok(())
        }
        cli::Command::Man { out } => commands::man::write_man_pages(cli::Cli::command(), &out),
    }
}
