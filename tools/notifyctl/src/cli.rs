//! Command-line parsing. Pure: turns the arguments into a [`Command`] or a [`UsageError`]
//! (exit code 2), without touching the environment or the network.

use std::str::FromStr;

use notify_kit::auth::TokenUse;
use notify_schemas::{headers::ErrorClass, Channel};
use uuid::Uuid;

/// The help text, printed by `notifyctl help` and after a usage error.
pub const USAGE: &str = "\
usage:
  notifyctl token --subject NAME [--scope SCOPE]... [--ttl-secs N] [--user]
      issue a JWT signed with APP_JWT_HS256_SECRET (or APP_JWT_RS256_PRIVATE_KEY[_FILE]),
      APP_JWT_ISSUER, APP_JWT_AUDIENCE; prints only the token

  notifyctl send --type email|push --user USER_ID --template CODE --request-id ID
                 [--var NAME=VALUE]... [--variables JSON] [--priority 1..10]
                 [--correlation-id ID] [--producer NAME]
      publish one notification request to notifications.requests, as an internal producer
      (validated with the API's rules first); the identity is NOTIFY_PRODUCER_TOKEN, or a
      producer token for NAME (default notifyctl) signed with APP_JWT_* (audience
      APP_INGEST_TOKEN_AUDIENCE, default notify-ingest). Needs APP_SCHEMA_REGISTRY_URL.

  notifyctl dlt list --channel email|push [--limit N] [--json] [--all] [--group NAME]
      the dead letters of the channel not replayed yet (--all: every one the topic still holds)

  notifyctl dlt replay --channel email|push [--notification-id ID]... [--error-class CLASS]
                       [--dry-run] [--limit N] [--json] [--group NAME]
      republish dead letters (all pending ones, or those matching every filter given) to the
      channel's request topic; CLASS is transient, permanent, poison or exhausted

  Kafka: APP_KAFKA_BOOTSTRAP (127.0.0.1:9092), APP_KAFKA_TOPIC_PREFIX (empty),
  APP_DLT_REPLAY_GROUP (<prefix>notifyctl-dlt-replay; --group overrides it).
  Results go to stdout, logs to stderr (RUST_LOG). Exit codes: 0 ok, 1 error, 2 usage.";

/// A command line that cannot be run as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Help,
    Token(TokenArgs),
    Send(SendArgs),
    DltList(ListArgs),
    DltReplay(ReplayArgs),
}

/// `notifyctl token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenArgs {
    pub subject: String,
    pub scopes: Vec<String>,
    pub ttl_secs: u64,
    pub token_use: TokenUse,
}

/// `notifyctl send`: one request, in the API's body format (validated when run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendArgs {
    /// The API body: `notification_type`, `user_id`, `template_code`, `variables`,
    /// `request_id`, `priority`.
    pub body: serde_json::Value,
    pub correlation_id: Option<String>,
    /// Subject of the producer token made when `NOTIFY_PRODUCER_TOKEN` is not set.
    pub producer: String,
}

/// `notifyctl dlt list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListArgs {
    pub channel: Channel,
    /// Show at most this many dead letters.
    pub limit: Option<usize>,
    /// JSON lines instead of a table.
    pub json: bool,
    /// Also the dead letters already replayed (every record the topic still holds).
    pub all: bool,
    /// Consumer group whose replay progress says what is pending (default from the environment).
    pub group: Option<String>,
}

/// `notifyctl dlt replay`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayArgs {
    pub channel: Channel,
    /// Only these notifications (any of them); empty: no filter on the id.
    pub notification_ids: Vec<Uuid>,
    /// Only dead letters of this class; `None`: no filter on the class.
    pub error_class: Option<String>,
    /// Say what would be republished; republish, record and commit nothing.
    pub dry_run: bool,
    /// Republish at most this many dead letters.
    pub limit: Option<usize>,
    pub json: bool,
    pub group: Option<String>,
}

impl ReplayArgs {
    /// Whether a filter was given: the replay is then *selective*.
    pub fn is_selective(&self) -> bool {
        !self.notification_ids.is_empty() || self.error_class.is_some()
    }
}

/// Arguments of one subcommand: `--flag value`, `--flag=value` and bare `--flag`.
struct Args<'a> {
    items: std::slice::Iter<'a, String>,
}

impl<'a> Args<'a> {
    fn new(items: &'a [String]) -> Self {
        Self { items: items.iter() }
    }

    /// The next flag (`--name`) and its inline value (`--name=value`), if any.
    fn next_flag(&mut self) -> Result<Option<(&'a str, Option<&'a str>)>, UsageError> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        if !item.starts_with("--") {
            return Err(usage(format!("unexpected argument `{item}`")));
        }
        Ok(Some(match item.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (item.as_str(), None),
        }))
    }

    fn value(&mut self, flag: &str, inline: Option<&'a str>) -> Result<&'a str, UsageError> {
        match inline {
            Some(v) => Ok(v),
            None => self
                .items
                .next()
                .map(String::as_str)
                .ok_or_else(|| usage(format!("{flag} needs a value"))),
        }
    }

    fn parsed<T: FromStr>(&mut self, flag: &str, inline: Option<&'a str>, what: &str) -> Result<T, UsageError> {
        let v = self.value(flag, inline)?;
        v.trim()
            .parse()
            .map_err(|_| usage(format!("{flag} must be {what}, not `{v}`")))
    }
}

fn no_value(flag: &str, inline: Option<&str>) -> Result<(), UsageError> {
    match inline {
        Some(_) => Err(usage(format!("{flag} takes no value"))),
        None => Ok(()),
    }
}

fn limit<'a>(args: &mut Args<'a>, flag: &str, inline: Option<&'a str>) -> Result<usize, UsageError> {
    let n: usize = args.parsed(flag, inline, "a whole number greater than 0")?;
    if n == 0 {
        return Err(usage(format!("{flag} must be greater than 0")));
    }
    Ok(n)
}

fn channel<'a>(args: &mut Args<'a>, flag: &str, inline: Option<&'a str>) -> Result<Channel, UsageError> {
    args.value(flag, inline)?.parse().map_err(usage)
}

fn group<'a>(args: &mut Args<'a>, flag: &str, inline: Option<&'a str>) -> Result<String, UsageError> {
    let g = args.value(flag, inline)?.trim();
    if g.is_empty() {
        return Err(usage(format!("{flag} must not be empty")));
    }
    Ok(g.to_string())
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    match args.first().map(String::as_str) {
        None => Err(usage("a command is needed")),
        Some("help" | "--help" | "-h") => Ok(Command::Help),
        Some("token") => parse_token(&args[1..]).map(Command::Token),
        Some("send") => parse_send(&args[1..]).map(Command::Send),
        Some("dlt") => match args.get(1).map(String::as_str) {
            Some("list") => parse_list(&args[2..]).map(Command::DltList),
            Some("replay") => parse_replay(&args[2..]).map(Command::DltReplay),
            Some(other) => Err(usage(format!("unknown dlt command `{other}` (list or replay)"))),
            None => Err(usage("dlt needs a command: list or replay")),
        },
        Some(other) => Err(usage(format!("unknown command `{other}`"))),
    }
}

fn parse_token(items: &[String]) -> Result<TokenArgs, UsageError> {
    let mut subject = None;
    let mut scopes = Vec::new();
    let mut ttl_secs = 3600;
    let mut token_use = TokenUse::Service;
    let mut args = Args::new(items);
    while let Some((flag, inline)) = args.next_flag()? {
        match flag {
            "--subject" => subject = Some(args.value(flag, inline)?.to_string()),
            "--scope" => scopes.push(args.value(flag, inline)?.to_string()),
            "--ttl-secs" => ttl_secs = args.parsed(flag, inline, "a whole number of seconds")?,
            "--user" => {
                no_value(flag, inline)?;
                token_use = TokenUse::User;
            }
            other => return Err(usage(format!("unknown argument {other} for token"))),
        }
    }
    Ok(TokenArgs {
        subject: subject.ok_or_else(|| usage("token needs --subject"))?,
        scopes,
        ttl_secs,
        token_use,
    })
}

fn parse_send(items: &[String]) -> Result<SendArgs, UsageError> {
    use serde_json::{json, Map, Value};
    let mut body = Map::new();
    let mut variables = Map::new();
    let mut correlation_id = None;
    let mut producer = "notifyctl".to_string();
    let mut args = Args::new(items);
    while let Some((flag, inline)) = args.next_flag()? {
        let field = match flag {
            "--type" => "notification_type",
            "--user" => "user_id",
            "--template" => "template_code",
            "--request-id" => "request_id",
            "--priority" => {
                let p: i64 = args.parsed(flag, inline, "a whole number from 1 to 10")?;
                body.insert("priority".into(), json!(p));
                continue;
            }
            "--var" => {
                let v = args.value(flag, inline)?;
                let (name, value) = v
                    .split_once('=')
                    .ok_or_else(|| usage(format!("--var takes NAME=VALUE, not `{v}`")))?;
                variables.insert(name.to_string(), Value::String(value.to_string()));
                continue;
            }
            "--variables" => {
                let v = args.value(flag, inline)?;
                match serde_json::from_str::<Value>(v) {
                    Ok(Value::Object(m)) => variables.extend(m),
                    _ => return Err(usage("--variables must be a JSON object")),
                }
                continue;
            }
            "--correlation-id" => {
                correlation_id = Some(args.value(flag, inline)?.to_string());
                continue;
            }
            "--producer" => {
                producer = group(&mut args, flag, inline)?;
                continue;
            }
            other => return Err(usage(format!("unknown argument {other} for send"))),
        };
        body.insert(field.into(), Value::String(args.value(flag, inline)?.to_string()));
    }
    for (flag, field) in [
        ("--type", "notification_type"),
        ("--user", "user_id"),
        ("--template", "template_code"),
        ("--request-id", "request_id"),
    ] {
        if !body.contains_key(field) {
            return Err(usage(format!("send needs {flag}")));
        }
    }
    body.insert("variables".into(), Value::Object(variables));
    Ok(SendArgs {
        body: Value::Object(body),
        correlation_id,
        producer,
    })
}

fn parse_list(items: &[String]) -> Result<ListArgs, UsageError> {
    let mut out = ListArgs {
        channel: Channel::Email,
        limit: None,
        json: false,
        all: false,
        group: None,
    };
    let mut channel_given = false;
    let mut args = Args::new(items);
    while let Some((flag, inline)) = args.next_flag()? {
        match flag {
            "--channel" => {
                out.channel = channel(&mut args, flag, inline)?;
                channel_given = true;
            }
            "--limit" => out.limit = Some(limit(&mut args, flag, inline)?),
            "--json" => {
                no_value(flag, inline)?;
                out.json = true;
            }
            "--all" => {
                no_value(flag, inline)?;
                out.all = true;
            }
            "--group" => out.group = Some(group(&mut args, flag, inline)?),
            other => return Err(usage(format!("unknown argument {other} for dlt list"))),
        }
    }
    if !channel_given {
        return Err(usage("dlt list needs --channel email|push"));
    }
    Ok(out)
}

fn parse_replay(items: &[String]) -> Result<ReplayArgs, UsageError> {
    let mut out = ReplayArgs {
        channel: Channel::Email,
        notification_ids: Vec::new(),
        error_class: None,
        dry_run: false,
        limit: None,
        json: false,
        group: None,
    };
    let mut channel_given = false;
    let mut args = Args::new(items);
    while let Some((flag, inline)) = args.next_flag()? {
        match flag {
            "--channel" => {
                out.channel = channel(&mut args, flag, inline)?;
                channel_given = true;
            }
            "--notification-id" => {
                let id: Uuid = args.parsed(flag, inline, "a UUID")?;
                if !out.notification_ids.contains(&id) {
                    out.notification_ids.push(id);
                }
            }
            "--error-class" => {
                let class: ErrorClass = args
                    .value(flag, inline)?
                    .trim()
                    .parse()
                    .map_err(|e| usage(format!("--error-class: {e}")))?;
                if out.error_class.is_some() {
                    return Err(usage("--error-class may be given once"));
                }
                out.error_class = Some(class.as_str().to_string());
            }
            "--dry-run" => {
                no_value(flag, inline)?;
                out.dry_run = true;
            }
            "--limit" => out.limit = Some(limit(&mut args, flag, inline)?),
            "--json" => {
                no_value(flag, inline)?;
                out.json = true;
            }
            "--group" => out.group = Some(group(&mut args, flag, inline)?),
            other => return Err(usage(format!("unknown argument {other} for dlt replay"))),
        }
    }
    if !channel_given {
        return Err(usage("dlt replay needs --channel email|push"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Command, UsageError> {
        let args: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        parse(&args)
    }

    #[test]
    fn list_takes_a_channel_a_limit_and_json() {
        assert_eq!(
            p("dlt list --channel push --limit 5 --json").unwrap(),
            Command::DltList(ListArgs {
                channel: Channel::Push,
                limit: Some(5),
                json: true,
                all: false,
                group: None,
            })
        );
        assert_eq!(
            p("dlt list --channel=email --all --group=g1").unwrap(),
            Command::DltList(ListArgs {
                channel: Channel::Email,
                limit: None,
                json: false,
                all: true,
                group: Some("g1".into()),
            })
        );
    }

    #[test]
    fn replay_collects_every_filter() {
        let a = "0190a0b2-7c6e-7d1e-8f00-000000000001";
        let b = "0190a0b2-7c6e-7d1e-8f00-000000000002";
        let Command::DltReplay(r) = p(&format!(
            "dlt replay --channel email --notification-id {a} --notification-id={b} --notification-id {a} --error-class permanent --dry-run --limit 3"
        ))
        .unwrap() else {
            panic!("not a replay")
        };
        assert_eq!(r.channel, Channel::Email);
        assert_eq!(r.notification_ids.len(), 2, "a repeated id counts once");
        assert_eq!(r.error_class.as_deref(), Some("permanent"));
        assert!(r.dry_run && r.is_selective());
        assert_eq!(r.limit, Some(3));
        let Command::DltReplay(r) = p("dlt replay --channel push").unwrap() else {
            panic!("not a replay")
        };
        assert!(!r.is_selective() && !r.dry_run);
    }

    #[test]
    fn mistakes_are_usage_errors_that_say_what_is_wrong() {
        for (line, says) in [
            ("", "a command is needed"),
            ("frobnicate", "unknown command"),
            ("dlt", "list or replay"),
            ("dlt purge --channel email", "unknown dlt command"),
            ("dlt list", "--channel"),
            ("dlt list --channel sms", "unknown channel"),
            ("dlt list --channel", "needs a value"),
            ("dlt list --channel email --limit ten", "--limit must be"),
            ("dlt list --channel email --limit 0", "greater than 0"),
            ("dlt list --channel email --json=yes", "takes no value"),
            ("dlt list --channel email extra", "unexpected argument"),
            ("dlt replay --channel email --notification-id 42", "a UUID"),
            (
                "dlt replay --channel email --error-class fatal",
                "--error-class: unknown error class `fatal` (expected one of transient, permanent, poison, exhausted)",
            ),
            ("dlt replay --channel email --bogus", "unknown argument --bogus"),
            ("dlt replay --channel email --group=", "must not be empty"),
            ("token", "--subject"),
            ("token --subject s --ttl-secs soon", "--ttl-secs must be"),
        ] {
            let err = p(line).expect_err(line);
            assert!(err.0.contains(says), "`{line}`: `{}` does not say `{says}`", err.0);
        }
    }

    #[test]
    fn send_builds_the_api_body_from_its_flags() {
        let Command::Send(args) = p("send --type email --user u-1 --template welcome_email --request-id r-1 --var name=Ada --var link=https://x.test/a=b --priority 8 --producer billing").unwrap() else {
            panic!("not send");
        };
        assert_eq!(
            args.body,
            serde_json::json!({
                "notification_type": "email", "user_id": "u-1", "template_code": "welcome_email",
                "request_id": "r-1", "priority": 8,
                "variables": {"name": "Ada", "link": "https://x.test/a=b"}
            })
        );
        assert_eq!(args.producer, "billing");
        let err = p("send --type email --user u-1 --template t").unwrap_err();
        assert_eq!(err.0, "send needs --request-id");
        assert!(p("send --var novalue").is_err());
    }

    #[test]
    fn token_keeps_its_arguments() {
        assert_eq!(
            p("token --subject ops --scope a --scope b --ttl-secs 60 --user").unwrap(),
            Command::Token(TokenArgs {
                subject: "ops".into(),
                scopes: vec!["a".into(), "b".into()],
                ttl_secs: 60,
                token_use: TokenUse::User,
            })
        );
    }
}
