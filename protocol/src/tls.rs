//! The lab's TLS ports, as `GET /api/tls` lists them (issue 13).

use serde::{Deserialize, Serialize};

/// Where the lab speaks HTTPS: the ports offering HTTP/2 (ALPN `h2` and
/// `http/1.1`) and those offering only HTTP/1.1, each on every address it
/// listens on, and the streams one HTTP/2 connection may carry at once.
///
/// The lab also has an HTTP/2 port that allows only a few streams at once
/// per connection (`h2_limited`, `limited_streams`): there the browser
/// queues again, on one connection.
///
/// ```json
/// {"h2": ["127.0.0.1:8083", "[::1]:8083"], "http1_only": ["127.0.0.1:8084"], "max_concurrent_streams": 100, "h2_limited": ["127.0.0.1:8085"], "limited_streams": 4}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsListeners {
    /// Listener addresses offering `h2` and `http/1.1`.
    #[serde(default)]
    pub h2: Vec<String>,
    /// Listener addresses offering only `http/1.1`.
    #[serde(default)]
    pub http1_only: Vec<String>,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` on the HTTP/2 ports, when any.
    #[serde(default)]
    pub max_concurrent_streams: Option<u32>,
    /// Listener addresses offering `h2` and `http/1.1` with a small stream
    /// limit.
    #[serde(default)]
    pub h2_limited: Vec<String>,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` on the limited HTTP/2 ports.
    #[serde(default)]
    pub limited_streams: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_its_example() {
        let json = r#"{"h2": ["127.0.0.1:8083", "[::1]:8083"], "http1_only": ["127.0.0.1:8084"], "max_concurrent_streams": 100, "h2_limited": ["127.0.0.1:8085"], "limited_streams": 4}"#;
        let parsed: TlsListeners = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.h2.len(), 2);
        assert_eq!(parsed.max_concurrent_streams, Some(100));
        let again: TlsListeners =
            serde_json::from_str(&serde_json::to_string(&parsed).unwrap()).unwrap();
        assert_eq!(again, parsed);
        assert_eq!(
            serde_json::from_str::<TlsListeners>("{}").unwrap(),
            TlsListeners::default()
        );
    }
}
