//! Shared pieces of the end-to-end tests: a real server on `127.0.0.1:0`,
//! and a real headless Chromium driven over the DevTools protocol.
//!
//! # Layout
//!
//! - [`start_server`]: the lab's accept loop on an ephemeral loopback port,
//!   in this process, so tests can look at its [`Lab`] directly;
//! - [`chromium`]: launches Debian's Chromium with the flags from
//!   `docs/facts.md` and evaluates JavaScript in a page;
//! - [`dist_dir`]: where the built frontend is (`cargo xtask test` builds it);
//! - [`eventually`]: polls a condition with a deadline, for asynchronous facts.

pub mod chromium;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use keepalive_lab_server::{Config, Lab, listener};
use tokio::net::TcpListener;

/// The built frontend: `$KEEPALIVE_LAB_DIST`, else `<workspace>/dist`.
///
/// # Panics
///
/// When it has no `index.html`: the test cannot run without the page, and
/// must not pretend it did.
pub fn dist_dir() -> PathBuf {
    let dist = std::env::var_os("KEEPALIVE_LAB_DIST").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist"),
        PathBuf::from,
    );
    assert!(
        dist.join("index.html").is_file() && dist.join("app_bg.wasm").is_file(),
        "the frontend is not built in {}: run the tests with `cargo xtask test`, \
         which builds it first (or run `cargo xtask build`)",
        dist.display()
    );
    dist
}

/// Starts the lab on `127.0.0.1:0` with `config` and returns its address.
pub async fn start_server(config: Config) -> (SocketAddr, Lab) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral loopback port");
    let addr = listener.local_addr().expect("local address");
    let lab = Lab::new(config);
    tokio::spawn(listener::serve(listener, lab.clone()));
    (addr, lab)
}

/// Starts the lab on two ephemeral loopback ports (two origins, two browser
/// pools) and returns both addresses.
pub async fn start_server_with_second_origin(config: Config) -> (SocketAddr, SocketAddr, Lab) {
    let first = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let second = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addrs = (
        first.local_addr().expect("local address"),
        second.local_addr().expect("local address"),
    );
    let lab = Lab::new(Config {
        listeners: vec![addrs.0, addrs.1],
        ..config
    });
    tokio::spawn(listener::serve_all(vec![first, second], lab.clone()));
    (addrs.0, addrs.1, lab)
}

/// Starts the lab on two ephemeral loopback ports plus its middlebox on a
/// third (requests to it go through the middlebox to the lab), as `main.rs`
/// does. Returns the main and second addresses.
pub async fn start_lab_with_middlebox(config: Config) -> (SocketAddr, SocketAddr, Lab) {
    let first = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let second = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let middlebox = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addrs = (
        first.local_addr().expect("local address"),
        second.local_addr().expect("local address"),
    );
    let lab = Lab::new(Config {
        listeners: vec![addrs.0, addrs.1],
        ..config
    });
    tokio::spawn(keepalive_lab_server::middlebox::serve_all_in_lab(
        vec![middlebox],
        addrs.0,
        lab.clone(),
    ));
    tokio::spawn(listener::serve_all(vec![first, second], lab.clone()));
    (addrs.0, addrs.1, lab)
}

/// Polls `check` every 25 ms until it returns `Some`, or panics with `what`
/// after `limit`. The limit only stops a broken test; it asserts no speed.
pub async fn eventually<T>(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
