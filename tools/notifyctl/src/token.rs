//! `notifyctl token`: issues a JWT signed with the key material in `APP_JWT_*` (the same
//! settings the services verify with). Prints only the token, for `TOKEN=$(notifyctl token …)`.

use std::time::Duration;

use anyhow::Context;
use notify_kit::auth::{AuthSettings, JwtIssuer};

use crate::cli::TokenArgs;

pub fn run(args: &TokenArgs) -> anyhow::Result<()> {
    let settings = AuthSettings::from_env().context("JWT settings")?;
    let issuer = JwtIssuer::new(&settings)?;
    let scopes: Vec<&str> = args.scopes.iter().map(String::as_str).collect();
    let token = issuer.issue(
        &args.subject,
        args.token_use,
        &scopes,
        Duration::from_secs(args.ttl_secs),
    )?;
    crate::stdout::line(&token)
}
