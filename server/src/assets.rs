//! The page's files: from a directory (`--dist DIR`, development), or built
//! into the binary (`cargo xtask dist`: one self-contained file to copy to a
//! workshop machine).
//!
//! Embedding is a cargo feature, `embedded-assets`: the build reads the seven
//! files from `$KEEPALIVE_LAB_EMBED_DIR` (xtask sets it to the freshly built
//! `dist/`). Without the feature, nothing is embedded and the server serves
//! `Config::dist_dir`.

use std::path::Path;

use axum::http::HeaderMap;
use axum::http::header::ACCEPT_ENCODING;

/// One file of the built page, as built and gzip-compressed (`NAME.gz`,
/// written by `cargo xtask build`).
#[derive(Debug, Clone)]
pub struct File {
    /// Where the page asks for it (`/app.js`).
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// The file.
    pub raw: &'static [u8],
    /// The same, gzip-compressed: what a browser that accepts gzip gets.
    pub gzip: &'static [u8],
    /// The entity tags of `raw` and `gzip`: two representations, two tags
    /// (RFC 9110 §8.8.3), each a hash of the bytes, so a rebuilt page gets
    /// new ones.
    etags: [String; 2],
}

/// The built page: `index.html`, and the wasm-bindgen glue and wasm module of
/// each of its three bundles (the lesson track, the workbench, the
/// instructor's view).
#[derive(Debug, Clone)]
pub struct Embedded {
    /// `index.html` first.
    pub files: [File; 7],
}

#[cfg(feature = "embedded-assets")]
macro_rules! file {
    ($path:literal, $type:literal) => {
        File::new(
            concat!("/", $path),
            $type,
            include_bytes!(concat!(env!("KEEPALIVE_LAB_EMBED_DIR"), "/", $path)),
            include_bytes!(concat!(env!("KEEPALIVE_LAB_EMBED_DIR"), "/", $path, ".gz")),
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
        self.files.iter().find(|f| f.path == path)
    }
}

impl File {
    /// A file `raw` served at `path`, and its compressed form `gzip`.
    pub fn new(
        path: &'static str,
        content_type: &'static str,
        raw: &'static [u8],
        gzip: &'static [u8],
    ) -> File {
        let tag = |bytes: &[u8]| format!("\"{:016x}\"", fnv1a(bytes));
        File {
            path,
            content_type,
            raw,
            gzip,
            etags: [tag(raw), tag(gzip)],
        }
    }

    /// The entity tag of the file as built (`gzip` false) or compressed.
    pub fn etag(&self, gzip: bool) -> &str {
        &self.etags[usize::from(gzip)]
    }
}

/// 64-bit FNV-1a: enough to tell two builds of a file apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
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

/// Whether `dir` holds a built page.
pub fn dir_has_page(dir: &Path) -> bool {
    dir.join("index.html").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "/app.js",
            "text/javascript",
            b"// app",
            b"\x1f\x8b compressed",
        );
        let (raw, gzip) = (file.etag(false), file.etag(true));
        assert_ne!(raw, gzip);
        assert_eq!(raw, file.etag(false), "the same tag every time");
        assert!(
            raw.starts_with('"') && raw.ends_with('"') && raw.len() == 18,
            "{raw}"
        );
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(axum::http::header::IF_NONE_MATCH, value.parse().unwrap());
            headers
        };
        assert!(not_modified(&with(raw), raw));
        assert!(
            not_modified(&with(&format!("W/{raw}")), raw),
            "weak comparison"
        );
        assert!(
            not_modified(&with(&format!("\"x\", {gzip}")), gzip),
            "a list"
        );
        assert!(not_modified(&with("*"), raw));
        assert!(!not_modified(&with(gzip), raw), "the other representation");
        assert!(!not_modified(&HeaderMap::new(), raw));
    }
}
