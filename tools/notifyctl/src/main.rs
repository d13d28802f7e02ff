//! `notifyctl`: operator commands (`notifyctl help` lists them).
//!
//! - `notifyctl token --subject NAME [--scope S]... [--ttl-secs N] [--user]`: issues a JWT
//!   signed with the key material in `APP_JWT_*`. Prints only the token.
//! - `notifyctl send --type email|push --user ID --template CODE --request-id ID [--var N=V]...`:
//!   publishes one request to `notifications.requests` as an internal producer, through the
//!   producer library (`notify-producer`).
//! - `notifyctl dlt list --channel email|push [--limit N] [--json] [--all]`: the dead letters
//!   of a channel that were not replayed yet.
//! - `notifyctl dlt replay --channel email|push [--notification-id ID]... [--error-class C]
//!   [--dry-run] [--limit N] [--json]`: republishes dead letters to the channel's request
//!   topic, at least once, with durable progress (see `dlt`).
//!
//! Results go to stdout, logs to stderr. Exit codes: 0 done, 1 failed (configuration, broker,
//! I/O), 2 the command line is wrong.

mod cli;
mod dlt;
mod send;
mod stdout;
mod token;

use std::process::ExitCode;

use cli::Command;

/// Logs to stderr, human-readable; `RUST_LOG` overrides the default: `info` for notifyctl,
/// `warn` for the libraries, and nothing from the Kafka client itself, which repeats every
/// connection failure many times a second (the command's own error says what failed;
/// `RUST_LOG=librdkafka=warn,rdkafka=warn` shows them).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,notifyctl=info,librdkafka=off,rdkafka=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("notifyctl: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    init_logging();
    let result = match &command {
        Command::Help => stdout::line(cli::USAGE),
        Command::Token(args) => token::run(args),
        Command::Send(args) => send::run(args),
        Command::DltList(args) => dlt::list(args),
        Command::DltReplay(args) => dlt::replay(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("notifyctl: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
