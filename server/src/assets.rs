//! The page's files: from a directory (`--dist DIR`, development), or built
//! into the binary (`cargo xtask dist`: one self-contained file to copy to a
//! workshop machine).
//!
//! Embedding is a cargo feature, `embedded-assets`: the build reads the seven
//! files from `$KEEPALIVE_LAB_EMBED_DIR` (xtask sets it to the freshly built
//! `dist/`). Without the feature, nothing is embedded and the server serves
//! `Config::dist_dir`.

use std::path::Path;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::http::header::{ACCEPT_ENCODING, IF_MATCH, IF_RANGE, RANGE};

/// One file of the built page: as built and, when `cargo xtask build` wrote
/// a `NAME.gz` beside it, gzip-compressed. The same for both modes (built
/// in, or read from `--dist DIR` at each request), so both answer every
/// request alike (`routes::page_file`).
#[derive(Debug, Clone)]
pub struct File {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// The file.
    raw: Bytes,
    /// The same, gzip-compressed: what a browser that accepts gzip gets.
    gzip: Option<Bytes>,
    /// The entity tags of `raw` and `gzip`: two representations, two tags
    /// (RFC 9110 §8.8.3), each a hash of the bytes, so a rebuilt page gets
    /// new ones.
    etags: [String; 2],
}

/// What is sent for one request: the bytes of one representation of a
/// [`File`], its tag, and whether it is the gzip-compressed one.
#[derive(Debug, Clone, Copy)]
pub struct Representation<'a> {
    /// Its bytes.
    pub bytes: &'a Bytes,
    /// Its entity tag.
    pub etag: &'a str,
    /// `Content-Encoding: gzip`.
    pub gzip: bool,
}

/// The built page: `index.html`, and the wasm-bindgen glue and wasm module of
/// each of its three bundles (the lesson track, the workbench, the
/// instructor's view), each with the path the page asks for it at.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// `index.html` first.
    pub files: [(&'static str, File); 7],
}

#[cfg(feature = "embedded-assets")]
macro_rules! file {
    ($path:literal, $type:literal) => {
        (
            concat!("/", $path),
            File::new(
                $type,
                Bytes::from_static(include_bytes!(concat!(
                    env!("KEEPALIVE_LAB_EMBED_DIR"),
                    "/",
                    $path
                ))),
                Some(Bytes::from_static(include_bytes!(concat!(
                    env!("KEEPALIVE_LAB_EMBED_DIR"),
                    "/",
                    $path,
                    ".gz"
                )))),
            ),
        )
    };
}

/// The page built into this binary, if it was built with `embedded-assets`
/// (its tags worked out at the first call).
pub fn embedded() -> Option<&'static Embedded> {
    #[cfg(feature = "embedded-assets")]
    {
        static PAGE: std::sync::OnceLock<Embedded> = std::sync::OnceLock::new();
        Some(PAGE.get_or_init(|| Embedded {
            files: [
                file!("index.html", "text/html; charset=utf-8"),
                file!("app.js", "text/javascript"),
                file!("app_bg.wasm", "application/wasm"),
                file!("workbench.js", "text/javascript"),
                file!("workbench_bg.wasm", "application/wasm"),
                file!("instructor.js", "text/javascript"),
                file!("instructor_bg.wasm", "application/wasm"),
            ],
        }))
    }
    #[cfg(not(feature = "embedded-assets"))]
    {
        None
    }
}

impl Embedded {
    /// The file at `path` (`/app.js`…; `/` is `index.html`).
    pub fn file(&self, path: &str) -> Option<&File> {
        let path = if path == "/" { "/index.html" } else { path };
        self.files.iter().find(|(p, _)| *p == path).map(|(_, f)| f)
    }
}

/// The file at `path` (`/` is `index.html`) in `dir`, read now, with the
/// `NAME.gz` beside it if there is one. `None` when it is not there, or
/// when `path` is not a plain name under `dir`: only letters, digits, `.`,
/// `_` and `-` in each segment, no segment that starts with a dot (so no
/// `..` and no hidden file), no percent-escape, and never a `.gz` of its
/// own (it is another form of a page file, as in the single binary, which
/// has no such path).
pub async fn from_dir(dir: &Path, path: &str) -> Option<File> {
    let relative = if path == "/" {
        "index.html"
    } else {
        plain_relative(path)?
    };
    let at = dir.join(relative);
    let raw = tokio::fs::read(&at).await.ok()?;
    let mut gz = at.into_os_string();
    gz.push(".gz");
    let gzip = tokio::fs::read(&gz).await.ok();
    Some(File::new(
        content_type_of(relative),
        Bytes::from(raw),
        gzip.map(Bytes::from),
    ))
}

/// `path` without its leading `/`, if it is a plain name (see [`from_dir`]).
fn plain_relative(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    let plain = |segment: &str| {
        !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    (rest.split('/').all(plain) && !rest.ends_with(".gz")).then_some(rest)
}

/// The `Content-Type` of a file of the page, by its extension.
fn content_type_of(name: &str) -> &'static str {
    match name.rsplit_once('.').map_or("", |(_, extension)| extension) {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript",
        "wasm" => "application/wasm",
        "css" => "text/css",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

impl File {
    /// A file `raw` of `content_type`, and its compressed form `gzip`.
    pub fn new(content_type: &'static str, raw: Bytes, gzip: Option<Bytes>) -> File {
        let tag = |bytes: &[u8]| format!("\"{:016x}\"", fnv1a(bytes));
        let etags = [tag(&raw), gzip.as_deref().map_or_else(String::new, tag)];
        File {
            content_type,
            raw,
            gzip,
            etags,
        }
    }

    /// What goes to a client that takes gzip (`gzip`) or does not: the
    /// compressed form when there is one and the client takes it, else the
    /// file as built.
    pub fn representation(&self, gzip: bool) -> Representation<'_> {
        match &self.gzip {
            Some(compressed) if gzip => Representation {
                bytes: compressed,
                etag: &self.etags[1],
                gzip: true,
            },
            _ => Representation {
                bytes: &self.raw,
                etag: &self.etags[0],
                gzip: false,
            },
        }
    }
}

/// 64-bit FNV-1a: enough to tell two builds of a file apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether `If-Match` in `headers`, if any, holds for the representation
/// tagged `etag` (RFC 9110 §13.1.1): `*`, or a list naming it by strong
/// comparison (a weak tag never matches). No `If-Match`: it holds.
pub fn if_match(headers: &HeaderMap, etag: &str) -> bool {
    let mut values = headers.get_all(IF_MATCH).iter().peekable();
    if values.peek().is_none() {
        return true;
    }
    values
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t == etag)
}

/// Whether `If-None-Match` in `headers` names `etag` (or is `*`): the
/// client has that representation, and a 304 answers it (weak comparison,
/// RFC 9110 §13.1.2).
pub fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(axum::http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// Whether the request's `Accept-Encoding` takes gzip (RFC 9110 §12.5.3):
/// `gzip` or `x-gzip` or `*`, with a weight above zero, and not ruled out by
/// an explicit `gzip;q=0`.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut named = None;
    let mut any = false;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let weighted = parts
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .is_none_or(|(_, q)| q.trim().parse::<f32>().is_ok_and(|q| q > 0.0));
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                named = Some(named.unwrap_or(false) || weighted);
            } else if coding == "*" {
                any |= weighted;
            }
        }
    }
    named.unwrap_or(any)
}

/// What a GET's `Range` asks of a representation of `len` bytes whose tag is
/// `etag` (RFC 9110 §14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// The whole representation, 200: no `Range`, or one the server ignores
    /// (several ranges, another unit, a syntax error, an `If-Range` that
    /// does not name this representation, several `Range` fields).
    Whole,
    /// Bytes `start..=end`, 206 with `Content-Range`.
    Part { start: usize, end: usize },
    /// A range that starts past the end, 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Reads a GET's `Range` (and `If-Range`) in `headers`. Only a single
/// range is served; anything else is ignored, as §14.2 allows, and the
/// whole representation is sent.
pub fn ranged(headers: &HeaderMap, len: usize, etag: &str) -> Ranged {
    let mut values = headers.get_all(RANGE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Ranged::Whole;
    };
    // `If-Range` with an entity tag: strong comparison (§13.1.5); a date
    // never matches, since the built-in page has no `Last-Modified`.
    if let Some(condition) = headers.get(IF_RANGE)
        && condition.to_str().ok().map(str::trim) != Some(etag)
    {
        return Ranged::Whole;
    }
    let Some((unit, set)) = value.to_str().ok().and_then(|v| v.split_once('=')) else {
        return Ranged::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let number = |text: &str| {
        let text = text.trim();
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse::<u64>().unwrap_or(u64::MAX))
    };
    let (first, last, len64) = (first.trim(), last.trim(), len as u64);
    let (start, end) = if first.is_empty() {
        // `-N`: the last N bytes.
        let Some(suffix) = number(last) else {
            return Ranged::Whole;
        };
        if suffix == 0 || len == 0 {
            return Ranged::Unsatisfiable;
        }
        (len64.saturating_sub(suffix), len64 - 1)
    } else {
        // `A-` and `A-B`.
        let (Some(start), end) = (number(first), number(last)) else {
            return Ranged::Whole;
        };
        if (end.is_none() && !last.is_empty()) || end.is_some_and(|end| end < start) {
            return Ranged::Whole;
        }
        if start >= len64 {
            return Ranged::Unsatisfiable;
        }
        (start, end.map_or(len64 - 1, |end| end.min(len64 - 1)))
    };
    Ranged::Part {
        start: usize::try_from(start).unwrap_or(len),
        end: usize::try_from(end).unwrap_or(len),
    }
}

/// Whether `dir` holds a built page.
pub fn dir_has_page(dir: &Path) -> bool {
    dir.join("index.html").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accepts(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, value.parse().unwrap());
        accepts_gzip(&headers)
    }

    #[test]
    fn gzip_is_sent_only_where_accept_encoding_takes_it() {
        // Chromium over HTTP, and over HTTPS.
        assert!(accepts("gzip, deflate"));
        assert!(accepts("gzip, deflate, br, zstd"));
        assert!(accepts("GZIP;q=0.5"));
        assert!(accepts("x-gzip"));
        assert!(accepts("*"));
        assert!(accepts("br, *;q=0.1"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("gzip; q=0.000, *"), "named beats *");
        assert!(!accepts("identity"));
        assert!(!accepts("br"));
        assert!(!accepts("*;q=0"));
        assert!(!accepts("gzip;q=zero"), "a weight that is not a number");
        assert!(!accepts_gzip(&HeaderMap::new()), "no header: identity");
    }

    #[test]
    fn a_tag_the_client_has_is_not_modified_and_each_representation_has_its_own() {
        let file = File::new(
            "text/javascript",
            Bytes::from_static(b"// app"),
            Some(Bytes::from_static(b"\x1f\x8b compressed")),
        );
        let (raw, gzip) = (file.representation(false), file.representation(true));
        assert!(!raw.gzip && gzip.gzip);
        assert_eq!(&raw.bytes[..], b"// app");
        let (raw, gzip) = (raw.etag, gzip.etag);
        assert_ne!(raw, gzip);
        assert_eq!(
            raw,
            file.representation(false).etag,
            "the same tag every time"
        );
        assert!(
            raw.starts_with('"') && raw.ends_with('"') && raw.len() == 18,
            "{raw}"
        );
        let with = |name, value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, value.parse().unwrap());
            headers
        };
        let none_match = |value: &str| with(axum::http::header::IF_NONE_MATCH, value);
        assert!(not_modified(&none_match(raw), raw));
        assert!(
            not_modified(&none_match(&format!("W/{raw}")), raw),
            "weak comparison"
        );
        assert!(
            not_modified(&none_match(&format!("\"x\", {gzip}")), gzip),
            "a list"
        );
        assert!(not_modified(&none_match("*"), raw));
        assert!(
            !not_modified(&none_match(gzip), raw),
            "the other representation"
        );
        assert!(!not_modified(&HeaderMap::new(), raw));
        // If-Match: strong comparison (§13.1.1).
        let if_matches = |value: &str| if_match(&with(IF_MATCH, value), raw);
        assert!(if_match(&HeaderMap::new(), raw), "no If-Match holds");
        assert!(if_matches(raw));
        assert!(if_matches("*"));
        assert!(if_matches(&format!("\"x\", {raw}")), "a list");
        assert!(!if_matches(&format!("W/{raw}")), "a weak tag never matches");
        assert!(!if_matches(gzip), "the other representation");
        assert!(!if_matches("\"0000000000000000\""));
    }

    #[test]
    fn a_file_without_a_compressed_form_is_sent_as_built_to_every_client() {
        let file = File::new("text/html; charset=utf-8", Bytes::from_static(b"<p>"), None);
        let sent = file.representation(true);
        assert!(!sent.gzip);
        assert_eq!(&sent.bytes[..], b"<p>");
        assert_eq!(sent.etag, file.representation(false).etag);
    }

    #[test]
    fn only_plain_names_under_the_directory_are_files_of_the_page() {
        for plain in ["/app.js", "/index.html", "/bare.html", "/a/b-c_d.1.js"] {
            assert_eq!(plain_relative(plain), Some(&plain[1..]), "{plain}");
        }
        for refused in [
            "/../etc/passwd",
            "/a/../b.js",
            "/.hidden",
            "/a/.b/c",
            "/%2e%2e/x",
            "/app.js.gz",
            "//app.js",
            "/a//b",
            "/dir/",
            "/a\\b",
            "/a b.js",
            "app.js",
            "",
        ] {
            assert_eq!(plain_relative(refused), None, "{refused}");
        }
        assert_eq!(content_type_of("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type_of("app_bg.wasm"), "application/wasm");
        assert_eq!(content_type_of("LICENSE"), "application/octet-stream");
    }

    #[test]
    fn one_byte_range_is_served_and_anything_else_is_the_whole_file() {
        let tag = "\"00000000000000aa\"";
        let ask = |range: &[&str], if_range: Option<&str>| {
            let mut headers = HeaderMap::new();
            for r in range {
                headers.append(RANGE, HeaderValue::from_str(r).unwrap());
            }
            if let Some(v) = if_range {
                headers.insert(IF_RANGE, HeaderValue::from_str(v).unwrap());
            }
            ranged(&headers, 100, tag)
        };
        let part = |start, end| Ranged::Part { start, end };
        assert_eq!(ask(&[], None), Ranged::Whole);
        assert_eq!(ask(&["bytes=0-9"], None), part(0, 9));
        assert_eq!(ask(&["Bytes = 10-"], None), part(10, 99));
        assert_eq!(ask(&["bytes=90-500"], None), part(90, 99));
        assert_eq!(ask(&["bytes=-5"], None), part(95, 99));
        assert_eq!(ask(&["bytes=-500"], None), part(0, 99));
        assert_eq!(ask(&["bytes=99-99"], None), part(99, 99));
        assert_eq!(ask(&["bytes=0-99999999999999999999999"], None), part(0, 99));
        // Past the end, or an empty suffix: 416.
        assert_eq!(ask(&["bytes=100-"], None), Ranged::Unsatisfiable);
        assert_eq!(ask(&["bytes=100-200"], None), Ranged::Unsatisfiable);
        assert_eq!(ask(&["bytes=-0"], None), Ranged::Unsatisfiable);
        assert_eq!(
            ask(&["bytes=99999999999999999999-"], None),
            Ranged::Unsatisfiable
        );
        // Ignored (§14.2): the whole file.
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=1-2x",
            "bytes=-",
            "bytes=+1-2",
            "bytes 0-1",
            "",
        ] {
            assert_eq!(ask(&[ignored], None), Ranged::Whole, "{ignored}");
        }
        assert_eq!(ask(&["bytes=0-1", "bytes=2-3"], None), Ranged::Whole);
        // `If-Range`: only this representation's tag keeps the range.
        assert_eq!(ask(&["bytes=0-1"], Some(tag)), part(0, 1));
        assert_eq!(ask(&["bytes=0-1"], Some("\"other\"")), Ranged::Whole);
        assert_eq!(
            ask(&["bytes=0-1"], Some(&format!("W/{tag}"))),
            Ranged::Whole
        );
        assert_eq!(
            ask(&["bytes=0-1"], Some("Sat, 01 Jan 2000 00:00:00 GMT")),
            Ranged::Whole
        );
        // An empty file has no range to give.
        let headers = HeaderMap::from_iter([(RANGE, HeaderValue::from_static("bytes=0-"))]);
        assert_eq!(ranged(&headers, 0, tag), Ranged::Unsatisfiable);
    }
}
