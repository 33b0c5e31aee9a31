//! HTTPS beside HTTP: the lab's TLS ports, where browsers speak HTTP/2.
//!
//! Browsers speak HTTP/2 only over TLS, and choose it by ALPN. The lab opens
//! two TLS ports with the same certificate and the same router:
//!
//! - the **h2 port** (`--tls-port`, default main port + 3) offers ALPN `h2`
//!   and `http/1.1`: a browser picks `h2`, and 12 requests become 12 streams
//!   of one connection;
//! - the **h1 port** (`--tls-h1-port`, default + 4) offers only `http/1.1`,
//!   so a comparison holds everything but the protocol equal (TLS, the
//!   certificate, the host): the browser's six-connection pool again;
//! - the **limited h2 port** (`--tls-streams-port`, default + 5) is the h2
//!   port with `SETTINGS_MAX_CONCURRENT_STREAMS` [`LIMITED_STREAMS`]: the
//!   browser queues again, on one connection. (A session's own stream limit
//!   is not possible: SETTINGS are sent when the connection opens, before
//!   any request names a session, and hyper cannot change them later.)
//!
//! [`cert`] makes the certificate (self-signed at start for `localhost`,
//! `127.0.0.1` and `::1`, or the instructor's own PEM files); [`serve`] runs
//! the accept loop: the handshake over a [`TrackedStream`](crate::conn::TrackedStream)
//! (so bytes, resets and the close are tracked like any connection), then
//! hyper's HTTP/2 or HTTP/1.1 server through the lab's own
//! [`Handler`](crate::listener) and router.
//!
//! On an HTTP/2 connection (see `Conn::secured`): each stream is a request
//! in the usual vocabulary (`request_started` with `seq` = the n-th stream
//! whose head arrived, `response_started`, `request_finished`); no
//! `Connection`/`Keep-Alive` header is added (illegal in HTTP/2); the idle
//! timeout, the lab's shutdown and the TLS port's own end send `GOAWAY` and
//! the close is recorded as `idle_timeout` / `shutdown`; the client's own
//! end is `peer_closed`. At most [`MAX_CONCURRENT_STREAMS`] streams run at
//! once per connection (hyper's `SETTINGS_MAX_CONCURRENT_STREAMS`). Every
//! `RST_STREAM` and `GOAWAY` frame, either way, is recorded from the frame
//! itself (`stream_reset`, `goaway`): hyper reports none of them, so
//! `frames.rs` reads them between rustls and hyper.

pub mod cert;
mod frames;
pub mod serve;

use std::sync::Arc;

use tokio_rustls::rustls;

pub use cert::{CertSource, Identity};
pub use serve::{serve_all, serve_ports};

/// `SETTINGS_MAX_CONCURRENT_STREAMS` the lab announces on every HTTP/2
/// connection: the most requests one connection carries at once. Well over
/// a burst's size, so the browser's pool is not what limits HTTP/2.
pub const MAX_CONCURRENT_STREAMS: u32 = 100;

/// `SETTINGS_MAX_CONCURRENT_STREAMS` on the limited HTTP/2 port: fewer than
/// a burst of 12, so the queue moves from the browser's pool to the streams.
pub const LIMITED_STREAMS: u32 = 4;

/// ALPN token of HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN token of HTTP/1.1.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Which protocols a TLS port offers by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// `h2` first, then `http/1.1` (browsers pick `h2`).
    H2AndHttp11,
    /// `http/1.1` only: the same TLS, the browser's HTTP/1.1 pool.
    Http11Only,
}

/// The rustls server configuration of a port offering `offer` with
/// `identity`'s certificate (ring as the crypto provider: it builds without
/// cmake or nasm).
pub fn server_config(
    identity: &Identity,
    offer: Offer,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(identity.chain(), identity.key())
        .map_err(|e| match e {
            // A certificate that does not parse is not a mismatch (found in
            // review: a bad PEM body was told as "do not go together").
            rustls::Error::InvalidCertificate(_) => {
                format!("TLS: the certificate cannot be read: {e}")
            }
            _ => format!("TLS: the certificate and key do not go together: {e}"),
        })?;
    config.alpn_protocols = match offer {
        Offer::H2AndHttp11 => vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()],
        Offer::Http11Only => vec![ALPN_HTTP11.to_vec()],
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::{LIMITED_STREAMS, MAX_CONCURRENT_STREAMS};

    /// The HTTP/2 lessons' words name the stream limits this server
    /// announces (found in review: typed into the text, tied to nothing).
    #[test]
    fn the_http2_lessons_say_the_stream_limits_the_ports_announce() {
        let text = |id: &str| {
            let t = &protocol::lesson_entry(id).text;
            format!("{} {}", t.prompt, t.why)
        };
        let all = format!("the lab says {MAX_CONCURRENT_STREAMS}");
        assert!(text("http2").contains(&all), "{}", text("http2"));
        let here = format!("SETTINGS_MAX_CONCURRENT_STREAMS ({MAX_CONCURRENT_STREAMS} here)");
        assert!(text("http2-eventsource").contains(&here));
        let limited = format!("takes at most {LIMITED_STREAMS} ");
        let limit = text("http2-stream-limit");
        assert!(limit.contains(&limited), "{limit}");
        assert!(limit.contains(&format!("the lab says {LIMITED_STREAMS} on")));
    }
}
