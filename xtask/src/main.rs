//! Build automation for keepalive-lab (the `xtask` pattern): `cargo xtask …`.
//!
//! - `build`: compiles the frontend to wasm32 with the size profile, generates
//!   its JS glue with `wasm-bindgen-cli-support` used as a library (no CLI to
//!   install, nothing downloaded), and assembles `dist/`: the document and
//!   the glue without comments or indentation (`minify`), and each file
//!   gzip-compressed beside it for the server to send. `build --names DIR`
//!   assembles a copy that keeps the Rust functions' names, so a CPU profile
//!   of the page (`keepalive-lab-bench --profile`) names them.
//! - `run [SERVER FLAGS]`: `build`, then starts the server on `dist/`.
//! - `test`: `build`, installs Debian's Chromium and Node.js if they are
//!   missing (apt, as root or with sudo), then every test in the workspace
//!   (including the headless Chromium ones and the comparison with real
//!   Node.js), then `cargo fmt --check`, clippy and the
//!   docs' links (`cargo doc`, warnings denied). CI runs exactly this.
//! - `dist`: `build`, then one self-contained release binary with the page
//!   built in (`--features embedded-assets`); prints its path last.
//! - `bench [BENCH FLAGS]`: `build`, then the `bench/` harness, which writes
//!   `BENCHMARKS.md` (about 30 minutes on 2 cores).

mod minify;

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const WASM_PROFILE: &str = "wasm-release";
/// The frontend's pages, one wasm bundle each: the lesson track (the landing
/// page), the workbench and the instructor's view (`frontend/src/bin/`).
const PAGES: [&str; 3] = ["app", "workbench", "instructor"];
const USAGE: &str = "\
usage: cargo xtask <command>

  build                 build the frontend into dist/
  build --names DIR     the same, keeping function names (for CPU profiles), into DIR
  run [SERVER FLAGS]    build, then start the lab (flags: --port N, --bind ADDR)
  test                  build, then run every test, then fmt, clippy and doc-link checks
  dist                  one self-contained release binary with the page built in; prints its path
  bench [BENCH FLAGS]   build, then measure the lab against plain axum into BENCHMARKS.md
                        (about 30 minutes on 2 cores; flags: see `cargo run -p keepalive-lab-bench -- --help`)";

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let mut args = env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    let outcome = match command.as_deref() {
        Some("build") => match rest.as_slice() {
            [] => build().map(|_| ()),
            [flag, dir] if flag == "--names" => build_into(Path::new(dir), true).map(|_| ()),
            _ => Err(format!("`build` takes nothing or `--names DIR`\n\n{USAGE}")),
        },
        Some("run") => build().and_then(|dist| run(&dist, &rest)),
        Some("test") => build().and_then(|dist| test(&dist)),
        Some("bench") => build().and_then(|dist| bench(&dist, &rest)),
        Some("dist") => build().and_then(|dist| {
            let binary = single_binary(&dist, true)?;
            println!("{}", binary.display());
            Ok(())
        }),
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut command = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

fn status(command: &mut Command) -> Result {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}

/// Makes sure rustup has the wasm32 target for the pinned toolchain. This
/// environment sets `RUSTUP_AUTO_INSTALL=0`, so nobody else will add it.
fn ensure_wasm_target() -> Result {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(root())
        .output();
    match installed {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains(WASM_TARGET) => Ok(()),
        Ok(_) => {
            eprintln!("xtask: adding the {WASM_TARGET} target with rustup");
            status(
                Command::new("rustup")
                    .args(["target", "add", WASM_TARGET])
                    .current_dir(root()),
            )
        }
        // No rustup: the toolchain came from elsewhere; let cargo say what is missing.
        Err(_) => Ok(()),
    }
}

/// Builds the frontend and assembles `dist/`; returns its path.
fn build() -> Result<PathBuf> {
    build_into(&root().join("dist"), false)
}

/// Builds the frontend and assembles it in `dist`; with `names`, the wasm
/// keeps every function's name (its name section, which the same compiled
/// wasm has and the shipped build drops).
fn build_into(dist: &Path, names: bool) -> Result<PathBuf> {
    ensure_wasm_target()?;
    let root = root();
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let mut build = cargo();
    // Every page: the lesson track (`app`), the workbench and the instructor's.
    status(build.args([
        "build",
        "--package",
        "keepalive-lab-frontend",
        "--bins",
        "--target",
        WASM_TARGET,
        "--profile",
        WASM_PROFILE,
    ]))?;
    fs::create_dir_all(dist).map_err(|e| format!("cannot create {}: {e}", dist.display()))?;
    for page in PAGES {
        let wasm = target_dir
            .join(WASM_TARGET)
            .join(WASM_PROFILE)
            .join(format!("{page}.wasm"));
        if names || is_newer(&wasm, &dist.join(format!("{page}_bg.wasm"))) {
            let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
            bindgen
                .input_path(&wasm)
                .out_name(page)
                // Every function's name, the Rust code's and wasm-bindgen's
                // shims': only a debugger or a profile reads them. (Dropped
                // here, not by `strip = "symbols"` in the profile, which
                // drops the section that tells wasm-bindgen the wasm's
                // features too, and it warns.)
                .remove_name_section(!names)
                .remove_producers_section(true)
                .typescript(false)
                .web(true)
                .map_err(|e| format!("wasm-bindgen: {e}"))?;
            bindgen
                .generate(dist)
                .map_err(|e| format!("wasm-bindgen could not process {}: {e}", wasm.display()))?;
        }
    }
    // The document and the glue are sent without comments or indentation.
    write_minified(&root.join("index.html"), &dist.join("index.html"))?;
    for page in PAGES {
        let glue = dist.join(format!("{page}.js"));
        write_minified(&glue, &glue)?;
    }
    let files = [
        "index.html",
        "app_bg.wasm",
        "app.js",
        "workbench_bg.wasm",
        "workbench.js",
        "instructor_bg.wasm",
        "instructor.js",
    ];
    for name in files {
        gzip_beside(&dist.join(name))?;
    }
    let sizes = files[1..]
        .iter()
        .map(|name| {
            let size = |name: &str| fs::metadata(dist.join(name)).map_or(0, |m| m.len()) / 1024;
            format!(
                "{name} {} KiB (gzip {})",
                size(name),
                size(&format!("{name}.gz"))
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    eprintln!("xtask: frontend built into {} ({sizes})", dist.display());
    Ok(dist.to_path_buf())
}

/// Writes `source` as sent ([`minify::page_text`]) to `output`, only when
/// that changes `output`: an unchanged file keeps its time, and so its `.gz`.
fn write_minified(source: &Path, output: &Path) -> Result {
    let text =
        fs::read_to_string(source).map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    let sent = minify::page_text(&text).map_err(|e| format!("{}: {e}", source.display()))?;
    if fs::read_to_string(output).is_ok_and(|old| old == sent) {
        return Ok(());
    }
    fs::write(output, sent).map_err(|e| format!("cannot write {}: {e}", output.display()))
}

/// Writes `file` gzip-compressed beside it (`NAME.gz`) when the file is
/// newer: the server sends it, with `Content-Encoding: gzip`, to a browser
/// that accepts gzip (every browser over HTTP), so the page's download is its
/// compressed size (bench figure 5). Compressed with zopfli, which any gzip
/// reader reads: it searches longer than zlib's best level for the same
/// format, and the page's wasm comes out 4.5 % smaller (190.8 KB → 182.3 KB,
/// November 2026; `bench/src/causes.md`, figure 5).
fn gzip_beside(file: &Path) -> Result {
    let mut name = file.as_os_str().to_owned();
    name.push(".gz");
    let output = PathBuf::from(name);
    if !is_newer(file, &output) {
        return Ok(());
    }
    let raw = fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut gzip = Vec::with_capacity(raw.len() / 2);
    // 50 iterations, not the default 15: 0.04 KB less of the lesson track
    // (December 2026), for about 7 s more of build (`bench/src/causes.md`,
    // figure 5). More block splits than the default's 15 gained nothing
    // (30) or lost 2.8 KB (unlimited).
    let options = zopfli::Options {
        iteration_count: std::num::NonZeroU64::new(50).unwrap_or(std::num::NonZeroU64::MIN),
        ..zopfli::Options::default()
    };
    zopfli::compress(options, zopfli::Format::Gzip, raw.as_slice(), &mut gzip)
        .map_err(|e| format!("cannot compress {}: {e}", file.display()))?;
    fs::write(&output, gzip).map_err(|e| format!("cannot write {}: {e}", output.display()))
}

/// True when `source` was modified after `output` (or `output` is missing).
fn is_newer(source: &Path, output: &Path) -> bool {
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(source), modified(output)) {
        (Some(s), Some(o)) => s > o,
        _ => true,
    }
}

fn run(dist: &Path, server_flags: &[String]) -> Result {
    status(
        cargo()
            .args([
                "run",
                "--release",
                "--package",
                "keepalive-lab-server",
                "--bin",
                "keepalive-lab",
                "--",
                "--dist",
            ])
            .arg(dist)
            .args(server_flags),
    )
}

/// Builds the server with the page in `dist` built in (`embedded-assets`):
/// one file that serves the whole lab. `release` for `cargo xtask dist`; the
/// tests use a debug build (much faster, the same embedding). Returns its path.
fn single_binary(dist: &Path, release: bool) -> Result<PathBuf> {
    let dist = fs::canonicalize(dist).map_err(|e| format!("{}: {e}", dist.display()))?;
    let mut command = cargo();
    command.args([
        "build",
        "--package",
        "keepalive-lab-server",
        "--bin",
        "keepalive-lab",
        "--features",
        "embedded-assets",
    ]);
    if release {
        command.arg("--release");
    }
    if let Some(commit) = commit() {
        command.env("KEEPALIVE_LAB_COMMIT", commit);
    }
    status(command.env("KEEPALIVE_LAB_EMBED_DIR", &dist))?;
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let binary = target_dir
        .join(if release { "release" } else { "debug" })
        .join("keepalive-lab");
    if !binary.is_file() {
        return Err(format!(
            "the build said nothing, but {} is missing",
            binary.display()
        ));
    }
    // Copied aside: a later `cargo build`/`cargo test` without the feature
    // writes a binary without the page to the same path.
    let aside = target_dir
        .join("single")
        .join(if release { "release" } else { "debug" });
    fs::create_dir_all(&aside).map_err(|e| format!("cannot create {}: {e}", aside.display()))?;
    let copy = aside.join("keepalive-lab");
    fs::copy(&binary, &copy).map_err(|e| format!("cannot copy {}: {e}", binary.display()))?;
    Ok(copy)
}

/// The commit being built (`git rev-parse --short HEAD`, with `+changes`
/// when the tree has uncommitted ones), for the single binary's
/// `--version`; none outside a git checkout.
fn commit() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let head = git(&["rev-parse", "--short", "HEAD"]).filter(|h| !h.is_empty())?;
    let changed = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    Some(if changed {
        format!("{head}+changes")
    } else {
        head
    })
}

/// Runs the benchmark harness (`bench/`), which writes `BENCHMARKS.md`.
fn bench(dist: &Path, bench_flags: &[String]) -> Result {
    status(
        cargo()
            .args(["run", "--release", "--package", "keepalive-lab-bench", "--"])
            .args(["--out", "BENCHMARKS.md", "--dist"])
            .arg(dist)
            .args(bench_flags),
    )
}

/// A program some tests run, found at `$VAR` else at Debian's `path`, and
/// installed from Debian's `package` when it is missing.
struct Needed {
    /// What it is, for the messages.
    name: &'static str,
    /// Which tests need it.
    for_what: &'static str,
    /// The environment variable that points at another copy.
    var: &'static str,
    /// Where Debian's package puts it.
    path: &'static str,
    /// Debian's package.
    package: &'static str,
}

/// Chromium, for the end-to-end tests.
const CHROMIUM: Needed = Needed {
    name: "Chromium",
    for_what: "the browser tests",
    var: "CHROME",
    path: "/usr/bin/chromium",
    package: "chromium",
};

/// Node.js, for the comparison of the lab's agent with real Node
/// (`tests/tests/real_node.rs`).
const NODE: Needed = Needed {
    name: "Node.js",
    for_what: "the real-Node comparison",
    var: "NODE",
    path: "/usr/bin/node",
    package: "nodejs",
};

/// Installs `needed` from Debian's packages when its tests would not find
/// it, so that `cargo xtask test` alone runs every test on a fresh machine.
/// Only from the package registry (apt), and only as root or with sudo;
/// otherwise it says what to run (the tests then fail with the same advice).
fn ensure(needed: &Needed) -> Result {
    let path = env::var_os(needed.var).map_or_else(|| PathBuf::from(needed.path), PathBuf::from);
    if path.is_file() {
        return Ok(());
    }
    if env::var_os(needed.var).is_some() {
        return Err(format!(
            "${} points at {}, which does not exist",
            needed.var,
            path.display()
        ));
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let apt = |args: &[&str]| {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        status(&mut command)
    };
    let Needed {
        name,
        for_what,
        var,
        package,
        ..
    } = needed;
    eprintln!("xtask: {for_what} need {name}; installing Debian's package `{package}`");
    apt(&["update", "-qq"])
        .and_then(|()| apt(&["install", "-y", "-qq", package]))
        .map_err(|e| {
            format!(
                "{e}\n{for_what} need {name}: install it with \
                 `sudo apt-get install -y {package}`, or point ${var} at another copy"
            )
        })
}

fn test(dist: &Path) -> Result {
    ensure(&CHROMIUM)?;
    ensure(&NODE)?;
    // The single binary, for the test that runs it from an empty folder.
    let binary = single_binary(dist, false)?;
    let dist_env: (&str, &OsStr) = ("KEEPALIVE_LAB_DIST", dist.as_os_str());
    status(
        cargo()
            .args(["test", "--workspace", "--all-targets"])
            .env(dist_env.0, dist_env.1)
            .env("KEEPALIVE_LAB_BINARY", &binary),
    )?;
    status(cargo().args(["test", "--workspace", "--doc"]))?;
    status(cargo().args(["fmt", "--all", "--", "--check"]))?;
    status(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // Every intra-doc link resolves. The crates' layout docs link their
    // private modules on purpose: documented with the private items, they
    // resolve, so that one lint is allowed.
    status(
        cargo()
            .args([
                "doc",
                "--workspace",
                "--no-deps",
                "--document-private-items",
            ])
            .env(
                "RUSTDOCFLAGS",
                "-D warnings -A rustdoc::private-intra-doc-links",
            ),
    )?;
    eprintln!("xtask: all tests passed, formatting, lints and doc links are clean");
    Ok(())
}
