//! The page's files: from a directory (`--dist DIR`, development), or built
//! into the binary (`cargo xtask dist`: one self-contained file to copy to a
//! workshop machine).
//!
//! Embedding is a cargo feature, `embedded-assets`: the build reads the three
//! files from `$KEEPALIVE_LAB_EMBED_DIR` (xtask sets it to the freshly built
//! `dist/`). Without the feature, nothing is embedded and the server serves
//! `Config::dist_dir`.

use std::path::Path;

/// The built page: `index.html`, the wasm-bindgen glue and the wasm module.
#[derive(Debug, Clone, Copy)]
pub struct Embedded {
    /// `index.html`.
    pub index: &'static [u8],
    /// `app.js`.
    pub app_js: &'static [u8],
    /// `app_bg.wasm`.
    pub app_wasm: &'static [u8],
}

/// The page built into this binary, if it was built with `embedded-assets`.
pub fn embedded() -> Option<Embedded> {
    #[cfg(feature = "embedded-assets")]
    {
        Some(Embedded {
            index: include_bytes!(concat!(env!("KEEPALIVE_LAB_EMBED_DIR"), "/index.html")),
            app_js: include_bytes!(concat!(env!("KEEPALIVE_LAB_EMBED_DIR"), "/app.js")),
            app_wasm: include_bytes!(concat!(env!("KEEPALIVE_LAB_EMBED_DIR"), "/app_bg.wasm")),
        })
    }
    #[cfg(not(feature = "embedded-assets"))]
    {
        None
    }
}

impl Embedded {
    /// The file at `path` (`/app.js`…) with its content type.
    pub fn file(&self, path: &str) -> Option<(&'static [u8], &'static str)> {
        match path {
            "/" | "/index.html" => Some((self.index, "text/html; charset=utf-8")),
            "/app.js" => Some((self.app_js, "text/javascript")),
            "/app_bg.wasm" => Some((self.app_wasm, "application/wasm")),
            _ => None,
        }
    }
}

/// Whether `dir` holds a built page.
pub fn dir_has_page(dir: &Path) -> bool {
    dir.join("index.html").is_file()
}
