//! Web security: which origins may drive the lab, and which `Host`s it answers.
//!
//! A page on any other site could otherwise fetch `/api/release` or open
//! `/api/events` from a participant's browser (CORS alone does not stop a
//! simple POST from having its effect), and DNS rebinding could make an
//! attacker's host name resolve to the lab. So the lab answers only requests
//! whose `Host` names one of its own origins, and accepts an `Origin` (CORS,
//! WebSocket, any request that sends one) only from its own origins: its
//! ports on `127.0.0.1`, `localhost`, `[::1]` and the address it is bound to.

use std::net::{IpAddr, SocketAddr};

/// The authority a request is addressed to, as the accept loop checks it
/// (`listener::Handler::foreign`): an absolute-form target's or HTTP/2's
/// `:authority` (RFC 9112 §3.2.2: `Host` is then ignored), else `Host`.
/// Whatever the lab writes back from it (the join code, a hint's URL) reads
/// it here, not `Host` alone (found in review: with an absolute-form target
/// the join code encoded an unchecked `Host`).
pub fn addressed_to<'a>(
    uri: &'a axum::http::Uri,
    headers: &'a axum::http::HeaderMap,
) -> Option<&'a [u8]> {
    uri.authority().map(|a| a.as_str().as_bytes()).or_else(|| {
        headers
            .get(axum::http::header::HOST)
            .map(axum::http::HeaderValue::as_bytes)
    })
}

/// The lab's own origins, derived from the addresses it listens on.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    /// Host names or address literals (IPv6 in brackets), lowercase.
    hosts: Vec<String>,
    /// Ports the lab listens on.
    ports: Vec<u16>,
    /// Its plain HTTP ports: its pages there are `http://` origins.
    plain_ports: Vec<u16>,
    /// Its TLS ports: its pages there are `https://` origins.
    tls_ports: Vec<u16>,
    /// Every `host:port` of the two above, as a browser writes it in a
    /// `Host` header: compared whole first (every request's `Host` comes
    /// here, bench figure 1); other spellings are parsed.
    authorities: Vec<String>,
    /// Every origin, as a browser writes it in an `Origin` header
    /// (`http://` with a plain port, `https://` with a TLS port): compared
    /// whole first, other spellings are parsed.
    origins: Vec<String>,
}

fn literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

impl Origins {
    /// The origins of a lab listening on `listeners` (plain HTTP), also
    /// reachable under the extra host names in `names` (e.g. a workshop
    /// machine's name).
    pub fn new(listeners: &[SocketAddr], names: &[String]) -> Origins {
        Origins::with_tls(listeners, &[], names)
    }

    /// [`Origins::new`], where the listeners in `tls` (also in `listeners`)
    /// speak HTTPS: a page there is an `https://` origin, elsewhere an
    /// `http://` one.
    pub fn with_tls(listeners: &[SocketAddr], tls: &[SocketAddr], names: &[String]) -> Origins {
        let mut hosts: Vec<String> = ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .map(|h| (*h).to_owned())
            .collect();
        for address in listeners {
            if !address.ip().is_unspecified() {
                hosts.push(literal(address.ip()));
            }
        }
        hosts.extend(names.iter().map(|n| n.to_ascii_lowercase()));
        hosts.sort();
        hosts.dedup();
        let mut ports: Vec<u16> = listeners.iter().map(SocketAddr::port).collect();
        ports.sort_unstable();
        ports.dedup();
        let kind = |secure: bool| {
            let mut ports: Vec<u16> = listeners
                .iter()
                .filter(|address| tls.contains(address) == secure)
                .map(SocketAddr::port)
                .collect();
            ports.sort_unstable();
            ports.dedup();
            ports
        };
        let (plain_ports, tls_ports) = (kind(false), kind(true));
        let joined = |prefix: &str, ports: &[u16]| -> Vec<String> {
            hosts
                .iter()
                .flat_map(|host| {
                    ports
                        .iter()
                        .map(move |port| format!("{prefix}{host}:{port}"))
                })
                .collect()
        };
        let authorities = joined("", &ports);
        let mut origins = joined("http://", &plain_ports);
        origins.extend(joined("https://", &tls_ports));
        Origins {
            hosts,
            ports,
            plain_ports,
            tls_ports,
            authorities,
            origins,
        }
    }

    /// `authority` as host and port (`default` when it names none), or
    /// `None` when the port is not a number.
    fn split(authority: &str, default: u16) -> Option<(&str, u16)> {
        let bytes = authority.as_bytes();
        match bytes.iter().rposition(|&b| b == b':') {
            Some(colon) if !bytes[colon..].contains(&b']') => authority[colon + 1..]
                .parse::<u16>()
                .ok()
                .map(|port| (&authority[..colon], port)),
            _ => Some((authority, default)),
        }
    }

    /// Whether `host` is one of the lab's host names and `port` in `ports`.
    fn names(&self, host: &str, port: u16, ports: &[u16]) -> bool {
        ports.contains(&port) && self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Whether `bytes` (`host:port`, as in a `Host` header, as received) is
    /// the lab's authority.
    pub fn allows_authority(&self, bytes: &[u8]) -> bool {
        // Compared without allocating: every request's `Host` comes here.
        // As browsers write it (lower case): a plain comparison, several
        // times cheaper than one ignoring case byte by byte, and before the
        // bytes are checked to be text (bench figure 1).
        if self.authorities.iter().any(|own| own.as_bytes() == bytes) {
            return true;
        }
        std::str::from_utf8(bytes).is_ok_and(|authority| {
            Origins::split(authority, 80)
                .is_some_and(|(host, port)| self.names(host, port, &self.ports))
        })
    }

    /// Whether a request's `Origin` header is one of the lab's own origins:
    /// `http://` and one of its plain ports, or `https://` and one of its
    /// TLS ports (the scheme a page there really has), on one of its names.
    pub fn allows_origin(&self, origin: &str) -> bool {
        if self
            .origins
            .iter()
            .any(|own| own.as_bytes() == origin.as_bytes())
        {
            return true;
        }
        let (authority, ports, default) = if let Some(a) = origin.strip_prefix("http://") {
            (a, &self.plain_ports, 80)
        } else if let Some(a) = origin.strip_prefix("https://") {
            (a, &self.tls_ports, 443)
        } else {
            return false; // `null`, file://, chrome-extension://…
        };
        !authority.contains('/')
            && Origins::split(authority, default)
                .is_some_and(|(host, port)| self.names(host, port, ports))
    }

    /// Whether `origin` is the lab's own for a request that reached the lab
    /// at `local`: one of its origins, or that address itself (a workshop
    /// machine's LAN address, as the client reached it). The one test for
    /// both the accept loop's refusal of foreign pages and CORS
    /// (`routes::cors`), so that they cannot drift apart. The address is
    /// written out only when the origin is not one of the others.
    pub fn allows_origin_at(&self, origin: &str, local: SocketAddr) -> bool {
        if self.allows_origin(origin) {
            return true;
        }
        let scheme = if self.tls_ports.contains(&local.port()) {
            "https://"
        } else {
            "http://"
        };
        origin
            .strip_prefix(scheme)
            .is_some_and(|a| a.eq_ignore_ascii_case(&local.to_string()))
    }

    /// Whether `port` is one of the lab's TLS ports (`https://`, `wss://`).
    pub fn is_tls_port(&self, port: u16) -> bool {
        self.tls_ports.contains(&port)
    }

    /// The ports, for messages.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_origins_only() {
        let listeners = [
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            SocketAddr::from(([127, 0, 0, 1], 8081)),
        ];
        let o = Origins::new(&listeners, &[]);
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:8081",
            "http://[::1]:8080",
            "http://LOCALHOST:8080",
        ] {
            assert!(o.allows_origin(ok), "{ok}");
        }
        for bad in [
            "http://evil.example:8080",
            "http://127.0.0.1:9999",
            "null",
            "http://127.0.0.1:8080/path",
            "http://localhost.evil.example:8080",
            "file://",
            "http://127.0.0.1",
        ] {
            assert!(!o.allows_origin(bad), "{bad}");
        }
        assert!(o.allows_authority(b"127.0.0.1:8080"));
        assert!(o.allows_authority(b"[::1]:8081"));
        assert!(!o.allows_authority(b"rebound.example:8080"));
        assert!(!o.allows_authority(b"127.0.0.1:80x"));
        // Compared as they are first, parsed only if they are text (any
        // case of the lab's names), refused if they are not.
        assert!(o.allows_authority(b"LocalHost:8080"));
        assert!(!o.allows_authority(b"127.0.0.1:8080\xff"));
        assert!(!o.allows_authority(b"\xff127.0.0.1:8080"));
        // A page on a TLS port is an https:// origin, on a plain port an
        // http:// one: not the other way round.
        let tls_port = SocketAddr::from(([127, 0, 0, 1], 8083));
        let both = Origins::with_tls(&[listeners[0], tls_port], &[tls_port], &[]);
        assert!(both.allows_origin("http://127.0.0.1:8080"));
        assert!(both.allows_origin("https://localhost:8083"));
        assert!(!both.allows_origin("https://127.0.0.1:8080"));
        assert!(!both.allows_origin("http://127.0.0.1:8083"));
        assert!(
            !both.allows_origin("https://127.0.0.1"),
            "443 is not the lab's"
        );
        assert!(
            both.allows_authority(b"127.0.0.1:8083"),
            "its Host, either kind"
        );
        assert!(both.allows_origin_at("https://10.0.0.7:8083", "10.0.0.7:8083".parse().unwrap()));
        assert!(!both.allows_origin_at("http://10.0.0.7:8083", "10.0.0.7:8083".parse().unwrap()));
        assert!(!both.allows_origin_at("https://10.0.0.7:8080", "10.0.0.7:8080".parse().unwrap()));
        let lan = Origins::new(
            &[SocketAddr::from(([192, 168, 1, 5], 8080))],
            &["lab-box".into()],
        );
        assert!(lan.allows_origin("http://192.168.1.5:8080"));
        assert!(lan.allows_origin("http://lab-box:8080"));
    }
}
