//! Language tags (a BCP-47 subset) and the fallback rule.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A language tag: a 2–3 letter language, an optional 4-letter script and an optional
/// region (2 letters or 3 digits), e.g. `en`, `fr`, `pt-BR`, `zh-Hant-TW`, `es-419`.
/// Parsing accepts any case and `_` as a separator and stores the canonical form
/// (`pt_br` → `pt-BR`), so two spellings of one language compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Language(String);

const REASON: &str =
    "must be a language tag such as `en`, `fr` or `pt-BR` (language, optional script, optional region)";

impl Language {
    /// Validates and canonicalises a tag; the error says what a tag looks like.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut parts = raw.split(['-', '_']);
        let language = parts.next().unwrap_or_default();
        if !(2..=3).contains(&language.len()) || !language.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(REASON.into());
        }
        let mut tag = language.to_ascii_lowercase();
        let mut rest: Vec<&str> = parts.collect();
        if rest.first().is_some_and(|s| is_script(s)) {
            let script = rest.remove(0);
            tag.push('-');
            tag.push_str(&script[..1].to_ascii_uppercase());
            tag.push_str(&script[1..].to_ascii_lowercase());
        }
        if let Some(region) = rest.first() {
            if !is_region(region) {
                return Err(REASON.into());
            }
            tag.push('-');
            tag.push_str(&region.to_ascii_uppercase());
            rest.remove(0);
        }
        if !rest.is_empty() {
            return Err(REASON.into());
        }
        Ok(Self(tag))
    }

    /// The canonical tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This tag and its parents, most specific first: `zh-Hant-TW` → `zh-Hant-TW`,
    /// `zh-Hant`, `zh`.
    pub fn fallback_chain(&self) -> Vec<Language> {
        let mut chain = vec![self.clone()];
        let mut tag = self.0.as_str();
        while let Some((parent, _)) = tag.rsplit_once('-') {
            chain.push(Self(parent.to_string()));
            tag = parent;
        }
        chain
    }
}

fn is_script(s: &str) -> bool {
    s.len() == 4 && s.bytes().all(|b| b.is_ascii_alphabetic())
}

fn is_region(s: &str) -> bool {
    (s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic()))
        || (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Language {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Language> for String {
    fn from(language: Language) -> Self {
        language.0
    }
}

/// Picks the language to use among `available`: the requested tag, then its parents
/// (`pt-BR` → `pt`), then `default`. `None` only when `default` is not available either.
pub fn resolve_language<'a>(
    requested: Option<&Language>,
    available: &'a [Language],
    default: &Language,
) -> Option<&'a Language> {
    requested
        .map(Language::fallback_chain)
        .unwrap_or_default()
        .iter()
        .chain(std::iter::once(default))
        .find_map(|wanted| available.iter().find(|a| *a == wanted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `ll[l][-Ssss][-RR|-999]`, the canonical form.
    fn regex_lite_canonical(tag: &str) -> bool {
        let mut parts = tag.split('-');
        let language = parts.next().unwrap_or_default();
        let mut ok = (2..=3).contains(&language.len()) && language.bytes().all(|b| b.is_ascii_lowercase());
        let mut rest: Vec<&str> = parts.collect();
        if rest.first().is_some_and(|s| s.len() == 4) {
            let script = rest.remove(0).as_bytes();
            ok &= script[0].is_ascii_uppercase() && script[1..].iter().all(u8::is_ascii_lowercase);
        }
        if let Some(region) = rest.first() {
            ok &= (region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase()))
                || (region.len() == 3 && region.bytes().all(|b| b.is_ascii_digit()));
            rest.remove(0);
        }
        ok && rest.is_empty()
    }

    fn lang(s: &str) -> Language {
        Language::parse(s).unwrap()
    }

    #[test]
    fn tags_are_canonicalised() {
        assert_eq!(lang("EN").as_str(), "en");
        assert_eq!(lang("pt_br").as_str(), "pt-BR");
        assert_eq!(lang("zh-hant-tw").as_str(), "zh-Hant-TW");
        assert_eq!(lang("es-419").as_str(), "es-419");
        assert_eq!(lang("sr-latn").as_str(), "sr-Latn");
    }

    #[test]
    fn malformed_tags_are_refused() {
        for bad in [
            "",
            "e",
            "engl",
            "en-",
            "en-U",
            "en-USA",
            "en-12",
            "pt-BR-x",
            "en US",
            "fr-Latn-FR-1",
            "12",
        ] {
            assert!(Language::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_chain_drops_subtags_one_by_one() {
        let chain: Vec<String> = lang("zh-Hant-TW")
            .fallback_chain()
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(chain, ["zh-Hant-TW", "zh-Hant", "zh"]);
    }

    #[test]
    fn resolution_falls_back_to_the_parent_then_the_default() {
        let available = [lang("en"), lang("pt"), lang("fr-CA")];
        let default = lang("en");
        let pick = |req: Option<&str>| {
            resolve_language(req.map(lang).as_ref(), &available, &default).map(|l| l.as_str().to_string())
        };
        assert_eq!(pick(Some("pt-BR")).as_deref(), Some("pt"));
        assert_eq!(pick(Some("fr-CA")).as_deref(), Some("fr-CA"));
        assert_eq!(pick(Some("fr")).as_deref(), Some("en"), "no child lookup");
        assert_eq!(pick(Some("de")).as_deref(), Some("en"));
        assert_eq!(pick(None).as_deref(), Some("en"));
        assert_eq!(resolve_language(Some(&lang("de")), &available, &lang("it")), None);
    }

    proptest! {
        #[test]
        fn canonical_tags_parse_to_themselves(
            l in "[a-z]{2,3}",
            s in proptest::option::of("[A-Z][a-z]{3}"),
            r in proptest::option::of("([A-Z]{2}|[0-9]{3})"),
        ) {
            let mut tag = l;
            for sub in [s, r].into_iter().flatten() {
                tag.push('-');
                tag.push_str(&sub);
            }
            let parsed = Language::parse(&tag).unwrap();
            prop_assert_eq!(parsed.as_str(), tag.as_str());
            prop_assert_eq!(Language::parse(&tag.to_lowercase()).unwrap(), parsed);
        }

        #[test]
        fn whatever_parses_is_canonical_and_case_blind(
            raw in prop_oneof!["\\PC{0,20}", "[a-zA-Z0-9_-]{0,14}", "[a-zA-Z]{2,3}([-_][a-zA-Z0-9]{2,4}){0,3}"],
        ) {
            match Language::parse(&raw) {
                Ok(parsed) => {
                    let canonical = regex_lite_canonical(parsed.as_str());
                    prop_assert!(canonical, "{:?} parsed to the non-canonical {:?}", raw, parsed.as_str());
                    // The same tag whatever the case or separator it was written with.
                    prop_assert_eq!(Language::parse(parsed.as_str()), Ok(parsed.clone()));
                    prop_assert_eq!(Language::parse(&raw.to_ascii_uppercase()), Ok(parsed.clone()));
                    prop_assert_eq!(Language::parse(&raw.replace('-', "_")), Ok(parsed.clone()));
                    prop_assert!(parsed.as_str().eq_ignore_ascii_case(&raw.replace('_', "-")));
                }
                Err(reason) => prop_assert_eq!(reason, REASON),
            }
        }
    }
}
