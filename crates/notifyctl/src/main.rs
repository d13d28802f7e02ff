//! `notifyctl`: operator commands.
//!
//! - `notifyctl token --subject NAME [--scope S]... [--ttl-secs N] [--user]`: issues a JWT
//!   signed with the key material in `APP_JWT_*` (the same settings the services verify
//!   with). Prints only the token, for `TOKEN=$(notifyctl token ...)`.

use std::time::Duration;

use anyhow::{bail, Context};
use notify_kit::auth::{AuthSettings, JwtIssuer, TokenUse};

fn usage() -> ! {
    eprintln!(
        "usage: notifyctl token --subject NAME [--scope SCOPE]... [--ttl-secs N] [--user]\n\
         reads APP_JWT_HS256_SECRET (or APP_JWT_RS256_PRIVATE_KEY[_FILE]), APP_JWT_ISSUER, APP_JWT_AUDIENCE"
    );
    std::process::exit(2)
}

fn token(args: &[String]) -> anyhow::Result<()> {
    let mut subject = None;
    let mut scopes: Vec<String> = Vec::new();
    let mut ttl = 3600u64;
    let mut token_use = TokenUse::Service;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--subject" => subject = it.next().cloned(),
            "--scope" => scopes.push(it.next().cloned().unwrap_or_else(|| usage())),
            "--ttl-secs" => {
                ttl = it
                    .next()
                    .context("--ttl-secs needs a value")?
                    .parse()
                    .context("--ttl-secs must be a whole number")?
            }
            "--user" => token_use = TokenUse::User,
            other => bail!("unknown argument {other}"),
        }
    }
    let subject = subject.unwrap_or_else(|| usage());
    let settings = AuthSettings::from_env().context("JWT settings")?;
    let issuer = JwtIssuer::new(&settings)?;
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    println!(
        "{}",
        issuer.issue(&subject, token_use, &scopes, Duration::from_secs(ttl))?
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("token") => token(&args[1..]),
        _ => usage(),
    }
}
