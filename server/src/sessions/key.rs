//! The instructor key: what reads or changes the whole server needs it.
//!
//! Random at start (printed on the console next to the URL) or set with
//! `--instructor-key`. Sent as `key=` in the URL (a browser's WebSocket
//! cannot set headers) or as `Authorization: Bearer KEY`. Compared in
//! constant time, so response timing does not leak how much of a guess was
//! right.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use crate::error::ApiError;

/// The instructor's secret.
#[derive(Clone)]
pub struct InstructorKey(String);

impl std::fmt::Debug for InstructorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InstructorKey(…)")
    }
}

/// Shortest key accepted from `--instructor-key`.
pub const MIN_KEY_LEN: usize = 8;

impl InstructorKey {
    /// A fresh random key (128 bits, hex).
    pub fn random() -> InstructorKey {
        // A machine without randomness cannot run a room safely; a key
        // nobody can guess is still better than none.
        InstructorKey(random_hex(16).unwrap_or_else(|_| {
            format!(
                "{:032x}",
                std::process::id() as u128 * 0x9e37_79b9_7f4a_7c15
            )
        }))
    }

    /// A key chosen by the instructor, checked for length and characters.
    pub fn parse(text: &str) -> Result<InstructorKey, String> {
        let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
        if text.len() < MIN_KEY_LEN || text.len() > 128 || !text.chars().all(ok) {
            return Err(format!(
                "--instructor-key takes {MIN_KEY_LEN} to 128 characters from A-Z a-z 0-9 - _ ."
            ));
        }
        Ok(InstructorKey(text.to_owned()))
    }

    /// The key as text (for the console and the instructor's URL).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is the key, in time independent of where it differs.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
        }
        diff == 0
    }

    /// Checks a request's credentials: `key=` from the query, the bearer
    /// token, or both. `Ok(false)`: none given. A wrong key is an error
    /// (403), never silently treated as "no key", wherever it is: with both,
    /// both must be right. A `Bearer` header without a token is an error
    /// too (400). The scheme's name is case-insensitive (RFC 9110 §11.1).
    /// Other schemes (`Basic` from a proxy in front of the lab) are not the
    /// lab's business and are ignored.
    pub fn check(&self, query_key: Option<&str>, headers: &HeaderMap) -> Result<bool, ApiError> {
        // Found in review: only the first of two `Authorization` fields was
        // read, and a bearer token that is not text passed as no key at all.
        let mut fields = headers.get_all(AUTHORIZATION).iter();
        let (first, second) = (fields.next(), fields.next());
        if second.is_some() {
            return Err(ApiError::bad_request(
                "more than one Authorization header",
                "send the instructor key once: Authorization: Bearer KEY, or key=KEY in the URL",
            ));
        }
        let bearer = match first.map(|v| bearer_token(v.as_bytes())) {
            None | Some(Bearer::OtherScheme) => None,
            Some(Bearer::Token(token)) => Some(token),
            Some(Bearer::NotText) => return Err(wrong_key()),
            Some(Bearer::Empty) => {
                return Err(ApiError::bad_request(
                    "Authorization: Bearer without a key",
                    "send the instructor key as Authorization: Bearer KEY, or key=KEY in the URL",
                ));
            }
        };
        let mut given = false;
        for candidate in [query_key, bearer].into_iter().flatten() {
            if !self.matches(candidate) {
                return Err(wrong_key());
            }
            given = true;
        }
        Ok(given)
    }
}

/// 403 for a wrong instructor key.
pub fn wrong_key() -> ApiError {
    ApiError::with_status(
        axum::http::StatusCode::FORBIDDEN,
        "that is not this server's instructor key",
        "the key is printed on the server's console when it starts (or set with \
         --instructor-key); participants need none",
    )
    .on_socket(
        "that is not this server's instructor key; use the one printed on its console at start",
    )
}

/// 403 for an instructor-only action without a key.
pub fn key_needed(what: &str) -> ApiError {
    ApiError::with_status(
        axum::http::StatusCode::FORBIDDEN,
        format!("{what} needs the instructor key"),
        "send key=… in the URL or Authorization: Bearer …; the key is printed on the \
         server's console when it starts",
    )
}

/// `bytes` random bytes from the operating system, as lowercase hex.
pub fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0_u8; bytes];
    getrandom::fill(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// What an `Authorization` value says, as far as the lab is concerned.
enum Bearer<'a> {
    /// `Bearer TOKEN` (the scheme in any case).
    Token(&'a str),
    /// `Bearer` and nothing after it.
    Empty,
    /// `Bearer` and a token that is not text: never this server's key.
    NotText,
    /// Another scheme (whatever its bytes).
    OtherScheme,
}

fn bearer_token(value: &[u8]) -> Bearer<'_> {
    let value = value.trim_ascii();
    let (scheme, token) = match value.iter().position(|b| *b == b' ') {
        Some(space) => (&value[..space], &value[space + 1..]),
        None => (value, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Bearer::OtherScheme;
    }
    match token.trim_ascii() {
        [] => Bearer::Empty,
        token => std::str::from_utf8(token).map_or(Bearer::NotText, Bearer::Token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly() {
        let key = InstructorKey::parse("secret-key-1").unwrap();
        assert!(key.matches("secret-key-1"));
        assert!(!key.matches("secret-key-2"));
        assert!(!key.matches("secret-key-1x"));
        assert!(!key.matches(""));
        assert!(InstructorKey::parse("short").is_err());
        assert!(InstructorKey::parse("has space in it").is_err());
        assert_ne!(
            InstructorKey::random().as_str(),
            InstructorKey::random().as_str()
        );
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_other_schemes_are_refused() {
        let key = InstructorKey::parse("secret-key-1").unwrap();
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value.parse().unwrap());
            key.check(None, &headers).map_err(|e| e.status.as_u16())
        };
        assert_eq!(with("bearer secret-key-1"), Ok(true));
        assert_eq!(with("BEARER   secret-key-1"), Ok(true));
        assert_eq!(with("Bearer wrong"), Err(403));
        assert_eq!(
            with("Basic c2VjcmV0"),
            Ok(false),
            "a proxy's, not the lab's"
        );
        assert_eq!(with("Bearer"), Err(400));
        assert_eq!(with("bearer   "), Err(400));
        // Found in review: a token that is not text passed as no key, and a
        // second `Authorization` field was never read.
        let bytes = |value: &[u8], query: Option<&str>| {
            let mut headers = HeaderMap::new();
            headers.insert(
                AUTHORIZATION,
                axum::http::HeaderValue::from_bytes(value).unwrap(),
            );
            key.check(query, &headers).map_err(|e| e.status.as_u16())
        };
        assert_eq!(bytes(b"Bearer wrong\xe9", None), Err(403));
        assert_eq!(bytes(b"Bearer wrong\xe9", Some("secret-key-1")), Err(403));
        assert_eq!(bytes(b"Basic \xe9\xe9", None), Ok(false), "another scheme");
        let mut two = HeaderMap::new();
        two.append(AUTHORIZATION, "Bearer secret-key-1".parse().unwrap());
        two.append(AUTHORIZATION, "Bearer wrong".parse().unwrap());
        assert_eq!(
            key.check(None, &two).map_err(|e| e.status.as_u16()),
            Err(400)
        );
    }

    #[test]
    fn credentials_from_query_or_bearer_and_wrong_ones_refused() {
        let key = InstructorKey::parse("secret-key-1").unwrap();
        let mut headers = HeaderMap::new();
        assert!(!key.check(None, &headers).unwrap());
        assert!(key.check(Some("secret-key-1"), &headers).unwrap());
        assert_eq!(
            key.check(Some("nope"), &headers)
                .unwrap_err()
                .status
                .as_u16(),
            403
        );
        headers.insert(AUTHORIZATION, "Bearer secret-key-1".parse().unwrap());
        assert!(key.check(None, &headers).unwrap());
        assert!(
            key.check(Some("secret-key-1"), &headers).unwrap(),
            "both right"
        );
        let refused = |query: Option<&str>, headers: &HeaderMap| {
            key.check(query, headers).map_err(|e| e.status.as_u16())
        };
        assert_eq!(refused(Some("nope"), &headers), Err(403), "a wrong key=");
        headers.insert(AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert_eq!(
            refused(Some("secret-key-1"), &headers),
            Err(403),
            "a wrong bearer beside a right key="
        );
    }
}
