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
        [
            "index.html",
            "app_bg.wasm",
            "workbench_bg.wasm",
            "instructor_bg.wasm",
            "app_bg.wasm.gz",
        ]
        .iter()
        .all(|file| dist.join(file).is_file()),
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

/// The lab's default configuration, serving the built page ([`dist_dir`]).
pub fn page_config() -> Config {
    Config {
        dist_dir: dist_dir(),
        ..Config::default()
    }
}

/// Starts the lab with [`page_config`] on an ephemeral loopback port: the
/// opening of every browser test that needs nothing else.
pub async fn start_page_server() -> (SocketAddr, Lab) {
    start_server(page_config()).await
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

/// The lab's plain-HTTP address and its HTTPS ports (a certificate made at
/// start), as [`start_lab_with_tls`] returns them.
#[derive(Debug, Clone, Copy)]
pub struct TlsLab {
    /// The page's origin (HTTP/1.1).
    pub http: SocketAddr,
    /// HTTPS offering `h2` and `http/1.1` by ALPN.
    pub h2: SocketAddr,
    /// HTTPS offering only `http/1.1`.
    pub h1: SocketAddr,
    /// HTTPS offering `h2` with [`keepalive_lab_server::tls::LIMITED_STREAMS`]
    /// streams at once per connection.
    pub h2_limited: SocketAddr,
}

/// Starts the lab on an ephemeral loopback port plus its three HTTPS ports
/// (HTTP/2 and HTTP/1.1 by ALPN; HTTP/1.1 only; HTTP/2 with a small stream
/// limit), as `main.rs` does.
pub async fn start_lab_with_tls(config: Config) -> (TlsLab, Lab) {
    use keepalive_lab_server::tls;
    let bind = async || TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (http, h2, h1, limited) = (bind().await, bind().await, bind().await, bind().await);
    let address = |l: &TcpListener| l.local_addr().expect("local address");
    let addrs = TlsLab {
        http: address(&http),
        h2: address(&h2),
        h1: address(&h1),
        h2_limited: address(&limited),
    };
    let lab = Lab::new(Config {
        listeners: vec![addrs.http],
        ..config
    });
    let identity = tls::Identity::generate(&[]).expect("a certificate for 127.0.0.1");
    let offers = [
        (h2, tls::Offer::H2AndHttp11, tls::MAX_CONCURRENT_STREAMS),
        (h1, tls::Offer::Http11Only, tls::MAX_CONCURRENT_STREAMS),
        (limited, tls::Offer::H2AndHttp11, tls::LIMITED_STREAMS),
    ];
    let ports = offers
        .into_iter()
        .map(|(listener, offer, streams)| {
            let config = tls::server_config(&identity, offer).expect("a TLS configuration");
            (listener, config, streams)
        })
        .collect();
    tokio::spawn(tls::serve_ports(ports, lab.clone()));
    tokio::spawn(listener::serve_all(vec![http], lab.clone()));
    (addrs, lab)
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
