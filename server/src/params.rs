//! Strict query-string parsing with errors that teach.
//!
//! axum's `Query` extractor answers bad input with plain text; the lab answers
//! every mistake with a JSON [`ApiError`] that names the parameter, the value
//! received, the accepted range and an example. Unknown parameters are
//! rejected too, so a typo (`msec=` for `ms=`) is caught instead of silently
//! ignored.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use protocol::SessionId;

use crate::error::ApiError;

/// Parameters every endpoint takes: the page's tag, its session, and the
/// instructor key, which is checked before routing and may come with any
/// request (found in review: `/api/fast?key=…` was a 400 though the same
/// key as `Authorization: Bearer` was taken).
pub const COMMON: [&str; 3] = ["id", "session", "key"];

/// Longest accepted value of the `id` tag, so a client cannot make the server
/// store (and echo in every event) arbitrarily large strings.
pub const MAX_TAG_LEN: usize = 128;

/// A parsed query string for one endpoint.
#[derive(Debug)]
pub struct Params {
    /// Which endpoint, for messages (`/api/slow`).
    endpoint: &'static str,
    /// Decoded `name -> value` pairs.
    values: BTreeMap<String, String>,
    /// An example of a good request, used as the hint.
    example: &'static str,
}

impl Params {
    /// Parses `raw` and rejects parameters not in `allowed` (plus [`COMMON`])
    /// or given twice.
    pub fn parse(
        endpoint: &'static str,
        raw: Option<&str>,
        allowed: &[&str],
        example: &'static str,
    ) -> Result<Params, ApiError> {
        let mut values = BTreeMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decoded(name).ok_or_else(|| not_utf8("a parameter's name", example))?;
            let value = decoded(value)
                .ok_or_else(|| not_utf8(&format!("the value of `{name}`"), example))?;
            if !allowed.contains(&name.as_ref()) && !COMMON.contains(&name.as_ref()) {
                let accepted: Vec<&str> = allowed
                    .iter()
                    .chain(COMMON.iter().filter(|c| !allowed.contains(c)))
                    .copied()
                    .collect();
                return Err(ApiError::bad_request(
                    format!("`{endpoint}` does not take a `{name}` parameter"),
                    format!(
                        "accepted parameters: {}; e.g. {example}",
                        accepted.join(", ")
                    ),
                ));
            }
            if values.insert(name.clone(), value).is_some() {
                return Err(ApiError::bad_request(
                    format!("`{name}` is given more than once"),
                    format!("send each parameter once; e.g. {example}"),
                ));
            }
        }
        let params = Params {
            endpoint,
            values,
            example,
        };
        // A malformed `session=` is refused by every endpoint, whether it
        // reads the session or not: the accept loop leaves such a request
        // to the endpoint rather than refusing it as one without a session
        // from another machine (`listener::Handler::admit`).
        params.session()?;
        Ok(params)
    }

    /// A whole number within `range`, or `default` when absent.
    pub fn u64_in(
        &self,
        name: &str,
        range: RangeInclusive<u64>,
        default: Option<u64>,
        unit: &str,
    ) -> Result<u64, ApiError> {
        let hint = || {
            format!(
                "send {name} between {} and {} ({unit}); e.g. {}",
                range.start(),
                range.end(),
                self.example
            )
        };
        let Some(text) = self.values.get(name) else {
            return default.ok_or_else(|| {
                ApiError::bad_request(
                    format!("`{}` needs a `{name}` parameter", self.endpoint),
                    hint(),
                )
            });
        };
        // ASCII digits only: Rust's `parse` also takes a leading `+`
        // (`%2B5`), and a space was trimmed; neither is a whole number as
        // documented (found in review).
        let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        let value: u64 = text.parse().ok().filter(|_| digits).ok_or_else(|| {
            ApiError::bad_request(
                format!("`{name}` must be a whole number of {unit}, got `{text}`"),
                hint(),
            )
        })?;
        if !range.contains(&value) {
            return Err(ApiError::bad_request(
                format!("`{name}` = {value} is out of range"),
                hint(),
            ));
        }
        Ok(value)
    }

    /// One of `choices`, or `default` when absent.
    pub fn one_of<T: Copy>(
        &self,
        name: &str,
        choices: &[(&str, T)],
        default: T,
    ) -> Result<T, ApiError> {
        let Some(text) = self.values.get(name) else {
            return Ok(default);
        };
        choices
            .iter()
            .find(|(word, _)| word == text)
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                let words: Vec<&str> = choices.iter().map(|(w, _)| *w).collect();
                ApiError::bad_request(
                    format!("`{name}` = `{text}` is not one of the accepted values"),
                    format!("send {name}={}; e.g. {}", words.join(" or "), self.example),
                )
            })
    }

    /// Refuses any of `names` that was given: parameters the endpoint takes,
    /// but not together with what else was sent (`what`, e.g. `mode=heartbeat`),
    /// so that a mix-up is reported instead of ignored.
    pub fn refuse_with(&self, names: &[&str], what: &str) -> Result<(), ApiError> {
        match names.iter().find(|name| self.values.contains_key(**name)) {
            None => Ok(()),
            Some(name) => Err(ApiError::bad_request(
                format!("`{}` does not take `{name}` with {what}", self.endpoint),
                format!("leave {name} out, or change {what}; e.g. {}", self.example),
            )),
        }
    }

    /// The optional session (`session=`), validated.
    pub fn session(&self) -> Result<Option<SessionId>, ApiError> {
        self.session_in(
            "session",
            "the page makes one per load; send session=s-123abc or leave it out",
        )
    }

    /// The session id given as `name`, if any; a malformed one is refused
    /// with `hint`.
    pub fn session_in(&self, name: &str, hint: &str) -> Result<Option<SessionId>, ApiError> {
        self.values
            .get(name)
            .map(|text| SessionId::parse(text).map_err(|error| ApiError::bad_request(error, hint)))
            .transpose()
    }

    /// The instructor key, if given as `key=` (accepted only by the endpoints
    /// that list it).
    pub fn key(&self) -> Option<&str> {
        self.values.get("key").map(String::as_str)
    }

    /// The optional `id` tag the page puts on each request (it makes every URL
    /// unique, which Chromium's cache lock needs, and lets the page find its
    /// requests in the event stream).
    pub fn tag(&self) -> Result<Option<String>, ApiError> {
        match self.values.get("id") {
            None => Ok(None),
            // Characters, as documented, not bytes: 128 × "é" is a tag.
            Some(tag) if tag.is_empty() || tag.chars().count() > MAX_TAG_LEN => {
                Err(ApiError::bad_request(
                    format!("`id` must be 1 to {MAX_TAG_LEN} characters long"),
                    format!("send a short tag; e.g. {}", self.example),
                ))
            }
            Some(tag) => Ok(Some(tag.clone())),
        }
    }
}

/// `part` of a query percent-decoded as `application/x-www-form-urlencoded`
/// says (`+` is a space, `%XX` a byte, any other `%` itself, as
/// `form_urlencoded::parse` reads it), or `None` when the bytes are not
/// UTF-8. Found in review: `form_urlencoded` replaces such bytes with U+FFFD,
/// so `id=%ff` was echoed and recorded as `�`, which was never sent.
pub(crate) fn decoded(part: &str) -> Option<String> {
    let hex = |b: &u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let byte = match bytes[at] {
            b'+' => b' ',
            b'%' => match (
                bytes.get(at + 1).and_then(hex),
                bytes.get(at + 2).and_then(hex),
            ) {
                (Some(high), Some(low)) => {
                    at += 2;
                    high * 16 + low
                }
                _ => b'%',
            },
            other => other,
        };
        out.push(byte);
        at += 1;
    }
    String::from_utf8(out).ok()
}

/// The refusal of a query part (`what`) whose percent-decoding is not UTF-8.
fn not_utf8(what: &str, example: &str) -> ApiError {
    ApiError::bad_request(
        format!("{what} is not UTF-8 once percent-decoded"),
        format!("percent-encode text as UTF-8 (é is %C3%A9); e.g. {example}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Params, ApiError> {
        Params::parse("/api/slow", Some(raw), &["ms"], "/api/slow?ms=100")
    }

    #[test]
    fn accepts_numbers_in_range_and_defaults() {
        let p = parse("ms=250&id=a%20b").unwrap();
        assert_eq!(p.u64_in("ms", 0..=1000, None, "ms").unwrap(), 250);
        assert_eq!(p.tag().unwrap().as_deref(), Some("a b"));
        let mode = parse("")
            .unwrap()
            .one_of("ms", &[("a", 1), ("b", 2)], 0)
            .unwrap();
        assert_eq!(mode, 0);
        let err = parse("ms=c")
            .unwrap()
            .one_of("ms", &[("a", 1), ("b", 2)], 0)
            .unwrap_err();
        assert!(err.body.hint.contains("ms=a or b"), "{err:?}");
        let empty = parse("").unwrap();
        assert_eq!(empty.u64_in("ms", 0..=1000, Some(7), "ms").unwrap(), 7);
        assert_eq!(empty.tag().unwrap(), None);
    }

    #[test]
    fn rejects_with_messages_that_name_the_problem() {
        let cases = [
            ("ms=abc", "whole number"),
            ("ms=-1", "whole number"),
            ("ms=1001", "out of range"),
            ("ms=99999999999999999999999", "whole number"),
            ("", "needs a `ms`"),
        ];
        for (raw, expected) in cases {
            let err = parse(raw)
                .and_then(|p| p.u64_in("ms", 0..=1000, None, "ms"))
                .unwrap_err();
            assert!(err.body.error.contains(expected), "{raw}: {err:?}");
            assert!(err.body.hint.contains("between 0 and 1000"), "{raw}");
        }
        assert!(parse("msec=5").unwrap_err().body.error.contains("`msec`"));
        assert!(
            parse("msec=5")
                .unwrap_err()
                .body
                .hint
                .contains("ms, id, session")
        );
        // A malformed session is refused by the parse itself, whatever
        // the endpoint then reads.
        assert!(parse("session=a%20b").is_err());
        assert_eq!(
            parse("session=s-1").unwrap().session().unwrap(),
            Some(SessionId::parse("s-1").unwrap())
        );
        assert!(
            parse("ms=1&ms=2")
                .unwrap_err()
                .body
                .error
                .contains("more than once")
        );
        let long = format!("id={}", "x".repeat(MAX_TAG_LEN + 1));
        assert!(parse(&long).unwrap().tag().is_err());
        assert!(parse("id=").unwrap().tag().is_err());
        // Whole numbers are ASCII digits: no sign, no space (`+` in a query
        // is a space).
        for raw in [
            "ms=%2B5",
            "ms=+5",
            "ms=%205",
            "ms=5%20",
            "ms=",
            "ms=%EF%BC%95",
        ] {
            let err = parse(raw)
                .and_then(|p| p.u64_in("ms", 0..=1000, None, "ms"))
                .unwrap_err();
            assert!(err.body.error.contains("whole number"), "{raw}: {err:?}");
        }
        // Bytes that are not UTF-8, in a value or a name, are refused
        // (naming which), not recorded as U+FFFD, which was never sent.
        for (raw, which) in [
            ("id=%ff", "`id`"),
            ("ms=1&id=a%C3", "`id`"),
            ("session=%80", "`session`"),
            ("%ff=1", "name"),
        ] {
            let err = parse(raw).unwrap_err();
            assert!(err.body.error.contains("not UTF-8"), "{raw}: {err:?}");
            assert!(err.body.error.contains(which), "{raw}: {err:?}");
            assert!(err.body.hint.contains("/api/slow?ms=100"), "{raw}");
        }
        // What form_urlencoded reads, read the same.
        for raw in [
            "id=a+b%20c",
            "id=%C3%A9%E2%82%AC",
            "id=%EF%BF%BD",
            "id=100%",
            "id=%zz%4",
            "id=a=b",
            "&&id=x&&ms=1&",
            "id",
            "ms=7&id=%41%62",
        ] {
            let ours = parse(raw).unwrap().values;
            let theirs: BTreeMap<String, String> = form_urlencoded::parse(raw.as_bytes())
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(ours, theirs, "{raw}");
        }
        assert_eq!(
            parse("ms=0042")
                .unwrap()
                .u64_in("ms", 0..=1000, None, "ms")
                .unwrap(),
            42
        );
        let accented = |n: usize| format!("id={}", "%C3%A9".repeat(n));
        assert!(parse(&accented(MAX_TAG_LEN)).unwrap().tag().is_ok());
        assert!(parse(&accented(MAX_TAG_LEN + 1)).unwrap().tag().is_err());
    }
}
