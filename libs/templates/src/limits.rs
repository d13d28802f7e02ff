//! What bounds the memory and the output of a render, beside minijinja's fuel (which bounds
//! the instructions run, not the size of the values they build).
//!
//! 1. **No value is rebuilt from itself.** A doubling needs a name bound to the result of a
//!    computation on another bound name (`{% set b = a ~ a %}`, a loop over `[a ~ a]` inside
//!    a loop over `a`, `ns.s = ns.s ~ ns.s`, a macro calling itself with a doubled argument,
//!    a `recursive` loop, a `{% set %}…{% endset %}` block that emits another). So
//!    [`check_statements`] refuses, in every field, at creation and again at render time:
//!    `macro`, `call`, `filter` blocks, `recursive` loops and `set` blocks; and a `set`,
//!    `with` or `for` whose expression uses a name the template bound itself (a loop
//!    variable, a `set` name), unless the expression is a plain path into it (`item.lines`).
//!    Every bound value is then at most a piece of the variables or a single expression.
//! 2. **Expressions are bounded**: the string-building filters (`replace`, `join`, `indent`)
//!    refuse results over [`MAX_FIELD_BYTES`] before building them.
//! 3. **Output is bounded**: a field's output stops at [`MAX_FIELD_BYTES`] (a loop emitting
//!    a big value many times is stopped at the limit, not after).
//!
//! What remains is one expression's own intermediate values: at most a few times
//! [`MAX_FIELD_BYTES`] per operator in the expression (minijinja caps `string * n` at 100 MB
//! by itself), so bounded by the field's length.

use std::{cell::Cell, io, rc::Rc};

use minijinja::{
    value::{Kwargs, StringInput},
    Environment, Error, ErrorKind, State, Value,
};

/// The largest rendered field (and the largest result of a string-building filter): 1 MiB.
pub const MAX_FIELD_BYTES: usize = 1024 * 1024;

/// Why a field's statements are refused (see the module documentation), or `Ok`.
pub fn check_statements(source: &str) -> Result<(), String> {
    let mut bound: Vec<String> = vec!["loop".into()];
    for tag in tags(source) {
        let mut words = tag.split_whitespace();
        let Some(keyword) = words.next() else { continue };
        match keyword {
            "macro" | "call" | "filter" => {
                return Err(format!(
                    "`{{% {keyword} %}}` is not allowed in notification templates (it can build values without bound)"
                ))
            }
            "for" => {
                let rest = tag["for".len()..].trim();
                let Some((targets, iterable)) = rest.split_once(" in ") else {
                    continue;
                };
                if ends_with_word(iterable, "recursive") {
                    return Err("recursive loops are not allowed in notification templates".into());
                }
                let iterable = iterable.split(" if ").next().unwrap_or(iterable);
                refuse_self_reference("a loop", iterable, &bound)?;
                bound.extend(identifiers(targets));
            }
            "set" | "with" => {
                let rest = tag[keyword.len()..].trim();
                if keyword == "set" && !rest.contains('=') {
                    return Err("`{% set %}…{% endset %}` blocks are not allowed in notification templates; use `{% set name = … %}`".into());
                }
                for assignment in split_assignments(rest) {
                    let Some((target, value)) = assignment.split_once('=') else {
                        continue;
                    };
                    refuse_self_reference(&format!("`{{% {keyword} {} %}}`", target.trim()), value, &bound)?;
                    bound.extend(identifiers(target).into_iter().take(1));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The insides of every `{% … %}` tag, whitespace-control markers removed.
fn tags(source: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("%}") else { break };
        out.push(after[..end].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace()));
        rest = &after[end + 2..];
    }
    out
}

fn ends_with_word(s: &str, word: &str) -> bool {
    s.split_whitespace().last() == Some(word)
}

/// `a = 1, b = x` → [`a = 1`, `b = x`] (commas inside brackets or strings kept).
fn split_assignments(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut quote, mut start) = (Vec::new(), 0i32, None::<char>, 0);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// The identifiers of an expression outside string literals, attribute names excluded.
fn identifiers(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = expr.char_indices().peekable();
    let mut quote = None::<char>;
    let mut previous = ' ';
    while let Some((i, c)) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            previous = c;
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if d.is_ascii_alphanumeric() || d == '_' {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            if previous != '.' {
                out.push(expr[i..end].to_string());
            }
            previous = 'a';
            continue;
        }
        if !c.is_whitespace() {
            previous = c;
        }
    }
    out
}

/// `name`, `name.attr`, `name[0]`, `name['key']`: no computation.
fn is_plain_path(expr: &str) -> bool {
    let expr = expr.trim();
    let mut rest = expr;
    let ident_len = |s: &str| {
        s.char_indices()
            .take_while(|(i, c)| c.is_ascii_alphabetic() || *c == '_' || (*i > 0 && c.is_ascii_digit()))
            .count()
    };
    let n = ident_len(rest);
    if n == 0 {
        return false;
    }
    rest = &rest[n..];
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let n = ident_len(r);
            if n == 0 {
                return false;
            }
            rest = &r[n..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else { return false };
            let index = r[..end].trim();
            let literal = index.chars().all(|c| c.is_ascii_digit())
                || (index.len() >= 2
                    && (index.starts_with('\'') && index.ends_with('\'')
                        || index.starts_with('"') && index.ends_with('"'))
                    && !index[1..index.len() - 1].contains(['\'', '"']));
            if index.is_empty() || !literal {
                return false;
            }
            rest = &r[end + 1..];
        } else {
            return false;
        }
    }
    true
}

fn refuse_self_reference(what: &str, expr: &str, bound: &[String]) -> Result<(), String> {
    if is_plain_path(expr) {
        return Ok(());
    }
    match identifiers(expr).into_iter().find(|id| bound.contains(id)) {
        None => Ok(()),
        Some(name) => Err(format!(
            "{what} may not compute a new value from `{name}`, which the template bound itself \
             (a value rebuilt from itself can grow without bound); use the variables directly"
        )),
    }
}

/// A writer that takes at most `limit` bytes, then fails and says so.
pub struct CappedWriter {
    pub out: Vec<u8>,
    limit: usize,
    pub exceeded: Rc<Cell<bool>>,
}

impl CappedWriter {
    pub fn new(limit: usize) -> Self {
        Self {
            out: Vec::new(),
            limit,
            exceeded: Rc::new(Cell::new(false)),
        }
    }
}

impl io::Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.len() + buf.len() > self.limit {
            self.exceeded.set(true);
            return Err(io::Error::other("output limit reached"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn too_large(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("{what} would be larger than {MAX_FIELD_BYTES} bytes"),
    )
}

/// Replaces the string-building filters with versions that refuse a result over
/// [`MAX_FIELD_BYTES`] before building it.
pub fn bound_filters(env: &mut Environment<'static>) {
    env.add_filter(
        "replace",
        |state: &State, value: StringInput<'_>, from: StringInput<'_>, to: StringInput<'_>| {
            let (v, f) = (value.as_str(), from.as_str());
            let matches = if f.is_empty() {
                v.chars().count() + 1
            } else {
                v.matches(f).count()
            };
            if v.len().saturating_add(matches.saturating_mul(to.as_str().len())) > MAX_FIELD_BYTES {
                return Err(too_large("the result of `replace`"));
            }
            minijinja::filters::replace(state, value, from, to)
        },
    );
    env.add_filter(
        "join",
        |state: &State, value: &Value, joiner: Option<StringInput<'_>>| {
            let joiner_len = joiner.as_ref().map_or(0, |j| j.as_str().len());
            let mut total = 0usize;
            if let Some(s) = value.as_str() {
                total = s.len().saturating_add(s.chars().count().saturating_mul(joiner_len));
            } else if !value.is_undefined() && !value.is_none() {
                for item in value.try_iter()? {
                    total = total.saturating_add(item.to_string().len() + joiner_len);
                    if total > MAX_FIELD_BYTES {
                        break;
                    }
                }
            }
            if total > MAX_FIELD_BYTES {
                return Err(too_large("the result of `join`"));
            }
            minijinja::filters::join(state, value, joiner)
        },
    );
    env.add_filter(
        "indent",
        |value: StringInput<'_>, width: Option<usize>, first: Option<bool>, blank: Option<bool>, kwargs: Kwargs| {
            let per_line = match width {
                Some(w) => w,
                None => kwargs.peek::<Option<usize>>("width")?.unwrap_or(4),
            };
            let lines = value.as_str().split('\n').count();
            if value.as_str().len().saturating_add(lines.saturating_mul(per_line)) > MAX_FIELD_BYTES {
                return Err(too_large("the result of `indent`"));
            }
            minijinja::filters::indent(value, width, first, blank, kwargs)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_building_statements_are_refused() {
        for source in [
            "{% set a = x ~ x %}{% set b = a ~ a %}{{ b }}",
            "{% set ns = namespace(s='x') %}{% for i in range(26) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
            "{% for a in [x ~ x] %}{% for b in [a ~ a] %}{{ b }}{% endfor %}{% endfor %}",
            "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s }}{% endif %}{% endmacro %}{{ d('x', 26) }}",
            "{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}",
            "{% set a %}{{ x }}{{ x }}{% endset %}",
            "{%- with a = x ~ x, b = a ~ a -%}{{ b }}{% endwith %}",
            "{% filter upper %}{{ x }}{% endfilter %}",
        ] {
            assert!(check_statements(source).is_err(), "{source}");
        }
    }

    #[test]
    fn ordinary_statements_pass() {
        for source in [
            "{% for item in order.items %}{% for line in item.lines %}{{ line }}{% endfor %}{% endfor %}",
            "{% set greeting = 'Hello ' ~ name %}{{ greeting }}",
            "{% for i in range(3) if i > 0 %}{{ i }}{% endfor %}",
            "{% set first = items[0] %}{% set label = first['name'] %}{{ label }}",
            "{% if a ~ a == 'xx' %}y{% endif %}",
        ] {
            assert_eq!(check_statements(source), Ok(()), "{source}");
        }
    }
}
