//! What a rendered push notification may carry: checked once, at render time, so a bad link
//! or image is a permanent failure with its reason and is never sent.
//!
//! - `image_url`: an absolute `https` URL (the platforms fetch it; FCM and browsers refuse
//!   anything else);
//! - `link_url`: an absolute `https` URL or an app deep link (`myapp://orders/1`); refused:
//!   `http`, and the schemes that run or smuggle content (`javascript`, `data`, `vbscript`,
//!   `file`, `blob`, `about`, `filesystem`, `intent`, `content`);
//! - `badge`: a count (0..=99999); `ttl_seconds`: 0..=2419200 (28 days, FCM's maximum);
//!   `collapse_key`: 1 to 32 characters of `A-Z a-z 0-9 - _` (Web Push's `Topic` limit, so
//!   one key works on every platform); `sound`: at most 64 visible characters.
//!
//! An optional field that renders empty is treated as absent.

use crate::{content::PushContent, render::RenderError};

/// Longest URL accepted (in bytes).
pub const MAX_URL_LEN: usize = 2048;
/// Longest TTL accepted, in seconds (28 days).
pub const MAX_TTL_SECONDS: u32 = 2_419_200;
/// Largest badge count accepted.
pub const MAX_BADGE: u32 = 99_999;
/// Schemes a link may never have, whatever the app.
const REFUSED_SCHEMES: [&str; 10] = [
    "http",
    "javascript",
    "data",
    "vbscript",
    "file",
    "blob",
    "about",
    "filesystem",
    "intent",
    "content",
];

fn invalid(field: &str, message: impl Into<String>) -> RenderError {
    RenderError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// The scheme of `url` (lower-cased) when it starts with an RFC 3986 scheme and `:`.
fn scheme(url: &str) -> Option<String> {
    let (scheme, _) = url.split_once(':')?;
    let mut bytes = scheme.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    (first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))).then(|| scheme.to_ascii_lowercase())
}

/// Common shape of a URL: bounded, no white space or control characters.
fn check_url_shape(field: &str, url: &str) -> Result<String, RenderError> {
    if url.len() > MAX_URL_LEN {
        return Err(invalid(field, format!("is longer than {MAX_URL_LEN} bytes")));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(field, "contains white space or a control character"));
    }
    scheme(url).ok_or_else(|| invalid(field, "is not an absolute URL (no scheme)"))
}

/// An `https://host…` URL with a host.
fn is_https_with_host(url: &str) -> bool {
    let Some(rest) = url
        .get(..8)
        .filter(|s| s.eq_ignore_ascii_case("https://"))
        .map(|_| &url[8..])
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    !host.is_empty() && !host.starts_with(':')
}

fn check_image(url: &str) -> Result<(), RenderError> {
    let scheme = check_url_shape("image_url", url)?;
    if scheme != "https" {
        return Err(invalid(
            "image_url",
            format!("scheme `{scheme}:` is refused: images must be https"),
        ));
    }
    if !is_https_with_host(url) {
        return Err(invalid("image_url", "has no host"));
    }
    Ok(())
}

fn check_link(url: &str) -> Result<(), RenderError> {
    let scheme = check_url_shape("link_url", url)?;
    if REFUSED_SCHEMES.contains(&scheme.as_str()) {
        return Err(invalid(
            "link_url",
            format!("scheme `{scheme}:` is refused: a link must be https or an app deep link"),
        ));
    }
    if scheme == "https" && !is_https_with_host(url) {
        return Err(invalid("link_url", "has no host"));
    }
    Ok(())
}

fn count(field: &str, value: &str, max: u32) -> Result<(), RenderError> {
    match value.trim().parse::<u32>() {
        Ok(n) if n <= max => Ok(()),
        _ => Err(invalid(field, format!("must be a whole number from 0 to {max}"))),
    }
}

/// `None` for an absent or empty field.
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.trim().is_empty())
}

/// Checks a rendered push notification and normalises it: empty optional fields become
/// absent, counts are trimmed.
pub fn checked(mut push: PushContent) -> Result<PushContent, RenderError> {
    if let Some(url) = present(&push.image_url) {
        check_image(url)?;
    }
    if let Some(url) = present(&push.link_url) {
        check_link(url)?;
    }
    if let Some(badge) = present(&push.badge) {
        count("badge", badge, MAX_BADGE)?;
    }
    if let Some(ttl) = present(&push.ttl_seconds) {
        count("ttl_seconds", ttl, MAX_TTL_SECONDS)?;
    }
    if let Some(key) = present(&push.collapse_key) {
        if key.len() > 32 || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(invalid(
                "collapse_key",
                "must be 1 to 32 characters of A-Z, a-z, 0-9, `-` and `_`",
            ));
        }
    }
    if let Some(sound) = present(&push.sound) {
        if sound.chars().count() > 64 || sound.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid("sound", "must be at most 64 visible characters"));
        }
    }
    for field in [
        &mut push.image_url,
        &mut push.link_url,
        &mut push.sound,
        &mut push.badge,
        &mut push.collapse_key,
        &mut push.ttl_seconds,
    ] {
        *field = present(field).map(|v| v.trim().to_string());
    }
    Ok(push)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn push(image: Option<&str>, link: Option<&str>) -> PushContent {
        PushContent {
            title: "t".into(),
            body: "b".into(),
            image_url: image.map(str::to_string),
            link_url: link.map(str::to_string),
            ..PushContent::default()
        }
    }

    fn refused_field(p: PushContent) -> String {
        match checked(p) {
            Err(RenderError::Invalid { field, .. }) => field,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn https_images_and_https_or_deep_links_pass() {
        for link in [
            "https://shop.test/o/1?x=y#z",
            "myapp://orders/1",
            "com.shop.app:/orders",
        ] {
            assert!(
                checked(push(Some("https://img.test/a.png"), Some(link))).is_ok(),
                "{link}"
            );
        }
    }

    #[test]
    fn images_that_are_not_https_are_refused() {
        for image in [
            "http://img.test/a.png",
            "data:image/png;base64,AAAA",
            "//img.test/a.png",
            "https://",
            "https:///a",
        ] {
            assert_eq!(refused_field(push(Some(image), None)), "image_url", "{image}");
        }
    }

    #[test]
    fn links_that_run_or_smuggle_content_are_refused_with_their_scheme() {
        for link in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,x",
            "http://shop.test",
            "file:///etc/passwd",
            "vbscript:x",
            "intent://x#Intent;end",
        ] {
            let err = checked(push(None, Some(link))).unwrap_err();
            let RenderError::Invalid { field, message } = &err else {
                panic!("{err:?}")
            };
            assert_eq!(field, "link_url");
            assert!(message.contains("is refused"), "{link}: {message}");
        }
        assert_eq!(refused_field(push(None, Some("https://shop.test/a b"))), "link_url");
        assert_eq!(refused_field(push(None, Some("no scheme"))), "link_url");
    }

    #[test]
    fn counts_keys_and_sounds_are_checked_and_empty_fields_become_absent() {
        let ok = checked(PushContent {
            badge: Some(" 3 ".into()),
            ttl_seconds: Some("3600".into()),
            collapse_key: Some("order-17".into()),
            sound: Some("default".into()),
            image_url: Some(String::new()),
            ..push(None, None)
        })
        .unwrap();
        assert_eq!(ok.badge.as_deref(), Some("3"));
        assert_eq!(ok.image_url, None);
        for (p, field) in [
            (
                PushContent {
                    badge: Some("-1".into()),
                    ..push(None, None)
                },
                "badge",
            ),
            (
                PushContent {
                    ttl_seconds: Some("2419201".into()),
                    ..push(None, None)
                },
                "ttl_seconds",
            ),
            (
                PushContent {
                    collapse_key: Some("a".repeat(33)),
                    ..push(None, None)
                },
                "collapse_key",
            ),
            (
                PushContent {
                    collapse_key: Some("a/b".into()),
                    ..push(None, None)
                },
                "collapse_key",
            ),
            (
                PushContent {
                    sound: Some("a b".into()),
                    ..push(None, None)
                },
                "sound",
            ),
        ] {
            assert_eq!(refused_field(p), field);
        }
    }

    proptest! {
        #[test]
        fn a_link_with_a_refused_scheme_is_refused_whatever_follows(
            scheme in prop::sample::select(REFUSED_SCHEMES.to_vec()),
            rest in "[A-Za-z0-9/._%()-]{0,40}",
        ) {
            let link = format!("{scheme}:{rest}");
            prop_assert_eq!(refused_field(push(None, Some(&link))), "link_url");
        }
    }
}
