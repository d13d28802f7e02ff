//! Rendering with minijinja.
//!
//! Undefined variables are errors (strict mode), so a notification is never delivered with
//! a hole in it; the error names the variable. Only `html_body` escapes variables.

use std::collections::BTreeSet;

use minijinja::{AutoEscape, Environment, ErrorKind, Template, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{
    content::{EmailContent, PushContent, TemplateContent},
    limits::{CappedWriter, MAX_FIELD_BYTES},
};

/// Upper bound on the work one field may take (minijinja "fuel": roughly instructions), so a
/// template with runaway loops fails instead of stalling a worker.
const FUEL_PER_FIELD: u64 = 500_000;

/// A rendered template: the same shape as its content, with every variable substituted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum Rendered {
    Email(EmailContent),
    Push(PushContent),
}

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The template uses a variable that was not supplied (`name` is its path, e.g. `name`
    /// or `order.total`).
    #[error("template variable `{name}` is not defined")]
    MissingVariable { name: String },
    /// A field is not a valid template.
    #[error("syntax error in `{field}`: {message}")]
    Syntax { field: String, message: String },
    /// Rendering failed for another reason (a filter on a wrong type, too much work).
    #[error("cannot render `{field}`: {message}")]
    Failed { field: String, message: String },
    /// A rendered field is not acceptable where it goes (a push image that is not https, a
    /// `javascript:` link): see [`crate::push`].
    #[error("rendered `{field}` {message}")]
    Invalid { field: String, message: String },
    /// The rendered field would be larger than the limit ([`crate::limits::MAX_FIELD_BYTES`]).
    #[error("rendered `{field}` is larger than {limit} bytes")]
    TooLarge { field: String, limit: usize },
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name == "html_body" {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_fuel(Some(FUEL_PER_FIELD));
    crate::limits::bound_filters(&mut env);
    // Bodies are delivered as written: a final newline is part of the text.
    env.set_keep_trailing_newline(true);
    env
}

fn describe(err: &minijinja::Error) -> String {
    let detail = err.detail().map_or_else(|| err.kind().to_string(), str::to_string);
    match err.line() {
        Some(line) => format!("{detail} (line {line})"),
        None => detail,
    }
}

fn compile<'env, 'src>(
    env: &'env Environment<'static>,
    field: &'src str,
    source: &'src str,
) -> Result<Template<'env, 'src>, RenderError> {
    crate::limits::check_statements(source).map_err(|message| RenderError::Syntax {
        field: field.to_string(),
        message,
    })?;
    env.template_from_named_str(field, source)
        .map_err(|e| RenderError::Syntax {
            field: field.to_string(),
            message: describe(&e),
        })
}

/// Names minijinja provides itself (`range`, `dict`, ...), not expected from the caller.
fn is_global(env: &Environment<'_>, name: &str) -> bool {
    env.globals().any(|(g, _)| g == name)
}

/// The part of `path` (`a.b.c`) that `variables` lacks: the first segment not found.
fn missing_part(variables: &Map<String, Value>, path: &str) -> Option<String> {
    let mut segments = path.split('.');
    let first = segments.next()?;
    let mut current = match variables.get(first) {
        Some(v) => v,
        None => return Some(first.to_string()),
    };
    let mut found = first.to_string();
    for segment in segments {
        found.push('.');
        found.push_str(segment);
        match current.as_object().and_then(|o| o.get(segment)) {
            Some(v) => current = v,
            None => return Some(found),
        }
    }
    None
}

/// Which variable an undefined-value error is about: the first undeclared variable the
/// caller did not supply, preferring one that appears on the failing line.
fn missing_variable(
    env: &Environment<'_>,
    template: &Template<'_, '_>,
    source: &str,
    variables: &Map<String, Value>,
    err: &minijinja::Error,
) -> String {
    let candidates: BTreeSet<String> = template
        .undeclared_variables(true)
        .iter()
        .filter(|path| !is_global(env, path.split('.').next().unwrap_or_default()))
        .filter_map(|path| missing_part(variables, path))
        .collect();
    let failing_line = err.line().and_then(|n| source.lines().nth(n.saturating_sub(1)));
    let on_line = failing_line.and_then(|line| candidates.iter().find(|c| line.contains(c.as_str())));
    on_line
        .or_else(|| candidates.iter().next())
        .cloned()
        .unwrap_or_else(|| match err.line() {
            Some(line) => format!("(an attribute or item used on line {line})"),
            None => "(unknown)".to_string(),
        })
}

fn render_field(
    env: &Environment<'static>,
    field: &'static str,
    source: &str,
    variables: &Map<String, Value>,
) -> Result<String, RenderError> {
    let template = compile(env, field, source)?;
    let mut out = CappedWriter::new(MAX_FIELD_BYTES);
    let exceeded = out.exceeded.clone();
    let rendered = template.render_captured_to(variables, &mut out);
    if exceeded.get() {
        return Err(RenderError::TooLarge {
            field: field.to_string(),
            limit: MAX_FIELD_BYTES,
        });
    }
    rendered.map_err(|e| match e.kind() {
        ErrorKind::UndefinedError => RenderError::MissingVariable {
            name: missing_variable(env, &template, source, variables, &e),
        },
        ErrorKind::SyntaxError => RenderError::Syntax {
            field: field.to_string(),
            message: describe(&e),
        },
        _ => RenderError::Failed {
            field: field.to_string(),
            message: describe(&e),
        },
    })?;
    String::from_utf8(out.out).map_err(|e| RenderError::Failed {
        field: field.to_string(),
        message: format!("output is not UTF-8: {e}"),
    })
}

fn render_optional(
    env: &Environment<'static>,
    field: &'static str,
    source: Option<&str>,
    variables: &Map<String, Value>,
) -> Result<Option<String>, RenderError> {
    source.map(|s| render_field(env, field, s, variables)).transpose()
}

/// Subjects and titles are one line: a line break (from a variable) would otherwise let a
/// value inject email headers.
fn single_line(rendered: String) -> String {
    if rendered.contains(['\r', '\n']) {
        rendered.replace("\r\n", " ").replace(['\r', '\n'], " ")
    } else {
        rendered
    }
}

/// Renders every field of `content` with `variables`. Line breaks in a rendered subject or
/// push title become spaces. A push is checked after rendering ([`crate::push`]): a link,
/// image or count it cannot carry is [`RenderError::Invalid`].
pub fn render(content: &TemplateContent, variables: &Map<String, Value>) -> Result<Rendered, RenderError> {
    let env = environment();
    Ok(match content {
        TemplateContent::Email(c) => Rendered::Email(EmailContent {
            subject: single_line(render_field(&env, "subject", &c.subject, variables)?),
            text_body: render_field(&env, "text_body", &c.text_body, variables)?,
            html_body: render_field(&env, "html_body", &c.html_body, variables)?,
        }),
        TemplateContent::Push(c) => Rendered::Push(crate::push::checked(PushContent {
            title: single_line(render_field(&env, "title", &c.title, variables)?),
            body: render_field(&env, "body", &c.body, variables)?,
            image_url: render_optional(&env, "image_url", c.image_url.as_deref(), variables)?,
            link_url: render_optional(&env, "link_url", c.link_url.as_deref(), variables)?,
            sound: render_optional(&env, "sound", c.sound.as_deref(), variables)?,
            badge: render_optional(&env, "badge", c.badge.as_deref(), variables)?,
            collapse_key: render_optional(&env, "collapse_key", c.collapse_key.as_deref(), variables)?,
            ttl_seconds: render_optional(&env, "ttl_seconds", c.ttl_seconds.as_deref(), variables)?,
        })?),
    })
}

/// Renders at most this many templates at once off the async runtime (one per CPU).
fn render_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, usize::from)))
}

/// [`render`] on Tokio's blocking pool, at most one render per CPU at a time, so that a
/// costly template (up to its fuel and size limits) never holds an async worker thread
/// (which would stall every other request or message on it). A render that panics is a
/// [`RenderError::Failed`], not a crash.
pub async fn render_blocking(content: TemplateContent, variables: Map<String, Value>) -> Result<Rendered, RenderError> {
    let _slot = render_slots().acquire().await.map_err(|_| RenderError::Failed {
        field: "(all)".into(),
        message: "the render pool is closed".into(),
    })?;
    tokio::task::spawn_blocking(move || render(&content, &variables))
        .await
        .unwrap_or_else(|e| {
            Err(RenderError::Failed {
                field: "(all)".into(),
                message: format!("the render failed: {e}"),
            })
        })
}

/// Every field that is not a valid template, as [`RenderError::Syntax`] (empty when all
/// compile).
pub fn check_syntax(content: &TemplateContent) -> Vec<RenderError> {
    let env = environment();
    content
        .fields()
        .into_iter()
        .filter_map(|(field, source)| compile(&env, field, source).err())
        .collect()
}

/// The top-level variables the template reads, sorted (minijinja's own globals such as
/// `range` excluded). A variable used only with a `default` filter is listed too.
pub fn required_variables(content: &TemplateContent) -> Result<Vec<String>, RenderError> {
    let env = environment();
    let mut names = BTreeSet::new();
    for (field, source) in content.fields() {
        let template = compile(&env, field, source)?;
        names.extend(
            template
                .undeclared_variables(false)
                .into_iter()
                .filter(|n| !is_global(&env, n)),
        );
    }
    Ok(names.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn welcome() -> TemplateContent {
        TemplateContent::Email(EmailContent {
            subject: "Welcome, {{ name }} & co".into(),
            text_body: "Hello {{ name }},\nconfirm at {{ link }}\n".into(),
            html_body: "<p>Hello <b>{{ name }}</b>, <a href=\"{{ link }}\">confirm</a></p>".into(),
        })
    }

    fn order_push() -> TemplateContent {
        TemplateContent::Push(PushContent {
            title: "Order {{ order.id }} shipped".into(),
            body: "{{ items | length }} item(s){% for i in items %} · {{ i }}{% endfor %}".into(),
            link_url: Some("https://shop.test/orders/{{ order.id }}".into()),
            ..PushContent::default()
        })
    }

    #[test]
    fn an_email_renders_with_html_escaped_only_in_the_html_body() {
        let out = render(
            &welcome(),
            &vars(json!({"name": "<Tom & \"Jerry\">", "link": "https://x.test/c?a=1&b=2"})),
        )
        .unwrap();
        insta::assert_json_snapshot!("welcome_email_escaping", out);
        let Rendered::Email(email) = out else {
            panic!("not an email")
        };
        assert!(email.subject.contains("<Tom & \"Jerry\">"));
        assert!(email.text_body.contains("<Tom & \"Jerry\">"));
        assert!(email.html_body.contains("&lt;Tom &amp; &quot;Jerry&quot;&gt;"));
        assert!(!email.html_body.contains("<Tom"));
        assert!(email.html_body.starts_with("<p>Hello <b>"), "markup is kept");
    }

    #[test]
    fn a_push_renders_nested_values_loops_and_filters() {
        let out = render(
            &order_push(),
            &vars(json!({"order": {"id": "A-17"}, "items": ["tea", "<mug>"]})),
        )
        .unwrap();
        insta::assert_json_snapshot!("order_push", out);
    }

    #[test]
    fn the_safe_filter_lets_a_template_opt_out_of_escaping() {
        let content = TemplateContent::Email(EmailContent {
            subject: "s".into(),
            text_body: "t".into(),
            html_body: "{{ banner | safe }} {{ banner }}".into(),
        });
        let Rendered::Email(email) = render(&content, &vars(json!({"banner": "<hr>"}))).unwrap() else {
            panic!("not an email")
        };
        insta::assert_snapshot!(email.html_body, @"<hr> &lt;hr&gt;");
    }

    #[test]
    fn line_breaks_cannot_reach_a_subject() {
        let out = render(
            &welcome(),
            &vars(json!({"name": "Ann\r\nBcc: evil@example.com", "link": "l"})),
        )
        .unwrap();
        let Rendered::Email(email) = out else {
            panic!("not an email")
        };
        assert_eq!(email.subject, "Welcome, Ann Bcc: evil@example.com & co");
        assert!(email.text_body.contains("Ann\r\nBcc"), "bodies keep their lines");
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = render(&welcome(), &vars(json!({"name": "Ann"}))).unwrap_err();
        assert_eq!(err, RenderError::MissingVariable { name: "link".into() });
        assert_eq!(err.to_string(), "template variable `link` is not defined");
    }

    #[test]
    fn a_missing_nested_attribute_is_named_by_its_path() {
        let err = render(&order_push(), &vars(json!({"order": {}, "items": []}))).unwrap_err();
        assert_eq!(
            err,
            RenderError::MissingVariable {
                name: "order.id".into()
            }
        );
        let err = render(&order_push(), &vars(json!({"items": []}))).unwrap_err();
        assert_eq!(err, RenderError::MissingVariable { name: "order".into() });
    }

    #[test]
    fn a_default_filter_covers_a_missing_variable() {
        let content = TemplateContent::Push(PushContent {
            title: "Hi {{ name | default('there') }}".into(),
            body: "b".into(),
            ..PushContent::default()
        });
        let Rendered::Push(push) = render(&content, &Map::new()).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(push.title, "Hi there");
    }

    #[test]
    fn a_syntax_error_names_the_field() {
        let content = TemplateContent::Email(EmailContent {
            subject: "ok".into(),
            text_body: "Hello {{ name".into(),
            html_body: "{% if %}".into(),
        });
        let errors = check_syntax(&content);
        let fields: Vec<_> = errors
            .iter()
            .map(|e| match e {
                RenderError::Syntax { field, .. } => field.as_str(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(fields, ["text_body", "html_body"]);
        assert!(matches!(
            render(&content, &Map::new()),
            Err(RenderError::Syntax { field, .. }) if field == "text_body"
        ));
        assert!(check_syntax(&welcome()).is_empty());
    }

    #[test]
    fn required_variables_lists_top_level_names_without_globals() {
        assert_eq!(required_variables(&welcome()).unwrap(), ["link", "name"]);
        let content = TemplateContent::Push(PushContent {
            title: "{% for i in range(3) %}{{ i }}{% endfor %} {{ user.first }}".into(),
            body: "{% set local = 1 %}{{ local }} {{ count }}".into(),
            image_url: Some("{{ img }}".into()),
            ..PushContent::default()
        });
        assert_eq!(required_variables(&content).unwrap(), ["count", "img", "user"]);
    }

    fn push_title(title: &str) -> TemplateContent {
        TemplateContent::Push(PushContent {
            title: title.into(),
            body: "b".into(),
            ..PushContent::default()
        })
    }

    #[test]
    fn a_template_that_doubles_a_string_26_times_fails_fast_with_a_clear_error() {
        let started = std::time::Instant::now();
        let doubling =
            "{% set ns = namespace(s='x') %}{% for i in range(26) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}";
        let err = render(&push_title(doubling), &Map::new()).unwrap_err();
        assert!(
            matches!(&err, RenderError::Syntax { field, message } if field == "title" && message.contains("grow without bound")),
            "{err}"
        );
        let nested = "{% for a in [x ~ x] %}{% for b in [a ~ a] %}{% for c in [b ~ b] %}{{ c }}{% endfor %}{% endfor %}{% endfor %}";
        assert!(matches!(
            render(&push_title(nested), &vars(json!({"x": "y"}))),
            Err(RenderError::Syntax { .. })
        ));
        assert_eq!(
            check_syntax(&push_title(doubling)).len(),
            1,
            "refused when the template is saved"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn output_over_the_limit_stops_at_the_limit() {
        let started = std::time::Instant::now();
        let big = "x".repeat(10_000);
        // 100,000 × 10 kB = 1 GB if it ran to the end.
        let err = render(
            &push_title("{% for i in range(100000) %}{{ big }}{% endfor %}"),
            &vars(json!({ "big": big })),
        )
        .unwrap_err();
        assert_eq!(
            err,
            RenderError::TooLarge {
                field: "title".into(),
                limit: MAX_FIELD_BYTES
            }
        );
        assert_eq!(
            err.to_string(),
            format!("rendered `title` is larger than {MAX_FIELD_BYTES} bytes")
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn string_building_filters_refuse_results_over_the_limit_before_building_them() {
        let x = "a".repeat(2_000);
        for title in [
            "{{ x | replace('a', x) | replace('a', x) }}",
            "{{ ([x] * 1000) | join(x) }}",
            "{{ x | indent(2000000) }}",
        ] {
            let err = render(&push_title(title), &vars(json!({ "x": x }))).unwrap_err();
            assert!(
                matches!(&err, RenderError::Failed { message, .. } if message.contains("larger than")),
                "{title}: {err}"
            );
        }
        let Rendered::Push(p) = render(&push_title("{{ 'ab' | replace('a', 'x') }}"), &Map::new()).unwrap() else {
            panic!("not a push")
        };
        assert_eq!(p.title, "xb");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn render_blocking_runs_off_the_async_thread() {
        let runtime_thread = std::thread::current().id();
        let content = push_title("{{ name }}");
        let out = render_blocking(content, vars(json!({"name": "Ann"}))).await.unwrap();
        assert_eq!(
            out,
            Rendered::Push(PushContent {
                title: "Ann".into(),
                body: "b".into(),
                ..PushContent::default()
            })
        );
        // A render that runs until its fuel is spent: had it run on this (the runtime's only)
        // thread, it would be over by the time the spawned task yields back to the test.
        let slow = push_title("{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}");
        let render = tokio::spawn(render_blocking(slow, Map::new()));
        tokio::task::yield_now().await;
        assert!(
            !render.is_finished(),
            "the runtime thread is free while the template renders"
        );
        assert!(matches!(render.await.unwrap(), Err(RenderError::Failed { .. })));
        assert_eq!(std::thread::current().id(), runtime_thread);
    }

    #[test]
    fn a_variable_that_renders_a_javascript_link_is_refused_at_render_time() {
        let content = TemplateContent::Push(PushContent {
            title: "t".into(),
            body: "b".into(),
            link_url: Some("{{ link }}".into()),
            ..PushContent::default()
        });

        let err = render(&content, &vars(json!({"link": "javascript:alert(document.cookie)"}))).unwrap_err();

        assert!(
            matches!(&err, RenderError::Invalid { field, .. } if field == "link_url"),
            "{err:?}"
        );
        assert!(err.to_string().contains("`javascript:` is refused"), "{err}");
    }

    #[test]
    fn runaway_templates_run_out_of_fuel() {
        let content = TemplateContent::Push(PushContent {
            title: "{% for a in range(1000) %}{% for b in range(1000) %}x{% endfor %}{% endfor %}".into(),
            body: "b".into(),
            ..PushContent::default()
        });
        assert!(matches!(
            render(&content, &Map::new()),
            Err(RenderError::Failed { field, .. }) if field == "title"
        ));
    }
}
