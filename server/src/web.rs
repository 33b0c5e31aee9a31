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

/// The lab's own origins, derived from the addresses it listens on.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    /// Host names or address literals (IPv6 in brackets), lowercase.
    hosts: Vec<String>,
    /// Ports the lab listens on.
    ports: Vec<u16>,
    /// Every `host:port` of the two above, as a browser writes it in a
    /// `Host` header: compared whole first (every request's `Host` comes
    /// here, bench figure 1); other spellings are parsed.
    authorities: Vec<String>,
}

fn literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

impl Origins {
    /// The origins of a lab listening on `listeners`, also reachable under
    /// the extra host names in `names` (e.g. a workshop machine's name).
    pub fn new(listeners: &[SocketAddr], names: &[String]) -> Origins {
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
        let authorities = hosts
            .iter()
            .flat_map(|host| ports.iter().map(move |port| format!("{host}:{port}")))
            .collect();
        Origins {
            hosts,
            ports,
            authorities,
        }
    }

    /// Whether `authority` (`host:port`, as in a `Host` header) is the lab's.
    pub fn allows_authority(&self, authority: &str) -> bool {
        // Compared without allocating: every request's `Host` comes here.
        let bytes = authority.as_bytes();
        // As browsers write it (lower case): a plain comparison, several
        // times cheaper than one ignoring case byte by byte.
        if self.authorities.iter().any(|own| own.as_bytes() == bytes) {
            return true;
        }
        let (host, port) = match bytes.iter().rposition(|&b| b == b':') {
            Some(colon) if !bytes[colon..].contains(&b']') => {
                match authority[colon + 1..].parse::<u16>() {
                    Ok(port) => (&authority[..colon], port),
                    Err(_) => return false,
                }
            }
            _ => (authority, 80),
        };
        self.ports.contains(&port) && self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Whether a request's `Origin` header is one of the lab's own origins.
    pub fn allows_origin(&self, origin: &str) -> bool {
        let Some(authority) = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
        else {
            return false; // `null`, file://, chrome-extension://…
        };
        !authority.contains('/') && self.allows_authority(authority)
    }

    /// Whether `origin` is the lab's own for a request that reached the lab
    /// at `local`: one of its origins, or that address itself (a workshop
    /// machine's LAN address, as the client reached it). The one test for
    /// both the accept loop's refusal of foreign pages and CORS
    /// (`routes::cors`), so that they cannot drift apart. The address is
    /// written out only when the origin is not one of the others.
    pub fn allows_origin_at(&self, origin: &str, local: SocketAddr) -> bool {
        self.allows_origin(origin)
            || origin
                .strip_prefix("http://")
                .is_some_and(|a| a.eq_ignore_ascii_case(&local.to_string()))
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
        assert!(o.allows_authority("127.0.0.1:8080"));
        assert!(o.allows_authority("[::1]:8081"));
        assert!(!o.allows_authority("rebound.example:8080"));
        assert!(!o.allows_authority("127.0.0.1:80x"));
        let lan = Origins::new(
            &[SocketAddr::from(([192, 168, 1, 5], 8080))],
            &["lab-box".into()],
        );
        assert!(lan.allows_origin("http://192.168.1.5:8080"));
        assert!(lan.allows_origin("http://lab-box:8080"));
    }
}
