//! The page's files: from a directory (`--dist DIR`, development), or built
//! into the binary (`cargo xtask dist`: one self-contained file to copy to a
//! workshop machine).
//!
//! Embedding is a cargo feature, `embedded-assets`: the build reads the seven
//! files from `$KEEPALIVE_LAB_EMBED_DIR` (xtask sets it to the freshly built
//! `dist/`). Without the feature, nothing is embedded and the server serves
//! `Config::dist_dir`.

use std::path::Path;

/// The built page: `index.html`, and the wasm-bindgen glue and wasm module of
/// each of its three bundles (the lesson track, the workbench, the
/// instructor's view).
#[derive(Debug, Clone, Copy)]
pub struct Embedded {
    /// `index.html`.
    pub index: &'static [u8],
    /// `app.js`.
    pub app_js: &'static [u8],
    /// `app_bg.wasm`.
    pub app_wasm: &'static [u8],
    /// `workbench.js`.
    pub workbench_js: &'static [u8],
    /// `workbench_bg.wasm`.
    pub workbench_wasm: &'static [u8],
    /// `instructor.js`.
    pub instructor_js: &'static [u8],
    /// `instructor_bg.wasm`.
    pub instructor_wasm: &'static [u8],
}

/// The page built into this binary, if it was built with `embedded-assets`.
pub fn embedded() -> Option<Embedded> {
    #[cfg(feature = "embedded-assets")]
    {
        Some(Embedded {
            index: include_bytes!(concat!(env!("KEEPALIVE_LAB_EMBED_DIR"), "/index.html")),
            app_js: include_bytes!(concat!(env!("KEEPALIVE_LAB_EMBED_DIR"), "/app.js")),
            app_wasm: include_bytes!(concat!(env!("KEEPALIVE_LAB_EMBED_DIR"), "/app_bg.wasm")),
            workbench_js: include_bytes!(concat!(env!("KEEPALIVE_LAB_EMBED_DIR"), "/workbench.js")),
            workbench_wasm: include_bytes!(concat!(
                env!("KEEPALIVE_LAB_EMBED_DIR"),
                "/workbench_bg.wasm"
            )),
            instructor_js: include_bytes!(concat!(
                env!("KEEPALIVE_LAB_EMBED_DIR"),
                "/instructor.js"
            )),
            instructor_wasm: include_bytes!(concat!(
                env!("KEEPALIVE_LAB_EMBED_DIR"),
                "/instructor_bg.wasm"
            )),
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
            "/workbench.js" => Some((self.workbench_js, "text/javascript")),
            "/workbench_bg.wasm" => Some((self.workbench_wasm, "application/wasm")),
            "/instructor.js" => Some((self.instructor_js, "text/javascript")),
            "/instructor_bg.wasm" => Some((self.instructor_wasm, "application/wasm")),
            _ => None,
        }
    }
}

/// Whether `dir` holds a built page.
pub fn dir_has_page(dir: &Path) -> bool {
    dir.join("index.html").is_file()
}
