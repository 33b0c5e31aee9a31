//! The burst composer's settings, and their text form for a shareable URL
//! (`#count=12&endpoint=hang…`). Pure: tested on the host.

use protocol::{CloseMode, RaceClose};

/// Most requests in one burst.
pub const MAX_COUNT: u32 = 200;

/// Which endpoint each request of a burst calls, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/api/hang`: held until released.
    Hang,
    /// `/api/fast`.
    Fast,
    /// `/api/slow?ms=&phase=`.
    Slow {
        /// Delay.
        ms: u32,
        /// Delay the body rather than the head.
        body: bool,
    },
    /// `/api/drip?bytes=&chunks=&interval_ms=`.
    Drip {
        /// Body size.
        bytes: u32,
        /// Pieces.
        chunks: u32,
        /// Between pieces.
        interval_ms: u32,
    },
    /// `/api/drip?mode=heartbeat&interval_ms=&duration_ms=`: one byte every
    /// interval while the answer is prepared (the application's fix for a
    /// middlebox's idle timeout).
    Heartbeat {
        /// Between bytes.
        interval_ms: u32,
        /// How long the answer takes in all.
        duration_ms: u32,
    },
    /// `/api/close?mode=`.
    Close(CloseMode),
    /// `/api/fast?next=drop_fin|drop_rst`: each response marks its
    /// connection so that the *next* request on it is read and dropped
    /// unanswered: the keep-alive race on demand (the browser re-sends the
    /// dropped request silently on another connection).
    Race(RaceClose),
    /// `/api/sse?interval_ms=&count=` (fetched, so it holds a slot while it streams).
    Sse {
        /// Between events.
        interval_ms: u32,
        /// Events.
        count: u32,
    },
}

impl Endpoint {
    /// Every kind, with sensible parameters, in menu order.
    pub const KINDS: [Endpoint; 8] = [
        Endpoint::Hang,
        Endpoint::Fast,
        Endpoint::Slow {
            ms: 1000,
            body: false,
        },
        Endpoint::Drip {
            bytes: 2000,
            chunks: 10,
            interval_ms: 200,
        },
        Endpoint::Heartbeat {
            interval_ms: 1000,
            duration_ms: 6000,
        },
        Endpoint::Close(CloseMode::Header),
        Endpoint::Race(RaceClose::Fin),
        Endpoint::Sse {
            interval_ms: 500,
            count: 10,
        },
    ];

    /// Its name in menus and URLs.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Hang => "hang",
            Endpoint::Fast => "fast",
            Endpoint::Slow { .. } => "slow",
            Endpoint::Drip { .. } => "drip",
            Endpoint::Heartbeat { .. } => "heartbeat",
            Endpoint::Close(_) => "close",
            Endpoint::Race(_) => "race",
            Endpoint::Sse { .. } => "sse",
        }
    }

    /// Its entry in the composer's menu.
    pub fn menu_label(self) -> String {
        match self {
            Endpoint::Race(_) => "/api/fast, dropping the next request (keep-alive race)".into(),
            Endpoint::Heartbeat { .. } => "/api/drip, heartbeat (a byte while it prepares)".into(),
            other => format!("/api/{}", other.name()),
        }
    }

    /// Path and query (without `id`/`session`).
    pub fn path(self) -> String {
        match self {
            Endpoint::Hang => "/api/hang?".into(),
            Endpoint::Fast => "/api/fast?".into(),
            Endpoint::Slow { ms, body } => {
                format!(
                    "/api/slow?ms={ms}&phase={}&",
                    if body { "body" } else { "headers" }
                )
            }
            Endpoint::Drip {
                bytes,
                chunks,
                interval_ms,
            } => {
                format!("/api/drip?bytes={bytes}&chunks={chunks}&interval_ms={interval_ms}&")
            }
            Endpoint::Heartbeat {
                interval_ms,
                duration_ms,
            } => format!(
                "/api/drip?mode=heartbeat&interval_ms={interval_ms}&duration_ms={duration_ms}&"
            ),
            Endpoint::Close(mode) => format!("/api/close?mode={}&", mode.as_str()),
            Endpoint::Race(close) => format!("/api/fast?next=drop_{}&", race_name(close)),
            Endpoint::Sse { interval_ms, count } => {
                format!("/api/sse?interval_ms={interval_ms}&count={count}&")
            }
        }
    }
}

/// `fin` or `rst`.
pub fn race_name(close: RaceClose) -> &'static str {
    match close {
        RaceClose::Fin => "fin",
        RaceClose::Rst => "rst",
    }
}

/// How requests are fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// All started together (spaced by `spacing_ms`).
    Concurrent,
    /// Each after the previous one ended (then `spacing_ms`).
    Sequential,
}

/// `fetch`'s `priority` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Not set.
    Auto,
    /// `high`: jumps the browser's queue (it is not FIFO).
    High,
    /// `low`.
    Low,
}

impl Priority {
    /// Its `fetch` value (also its value in a link), `None` when not set.
    pub fn fetch_value(self) -> Option<&'static str> {
        match self {
            Priority::Auto => None,
            Priority::High => Some("high"),
            Priority::Low => Some("low"),
        }
    }
}

/// `fetch`'s `credentials` option: each mode is a separate connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Credentials {
    /// Not set (`same-origin`).
    Default,
    /// `omit`.
    Omit,
    /// `include`.
    Include,
}

impl Credentials {
    /// Its `fetch` value, `None` for the default.
    pub fn fetch_value(self) -> Option<&'static str> {
        match self {
            Credentials::Default => None,
            Credentials::Omit => Some("omit"),
            Credentials::Include => Some("include"),
        }
    }

    /// Name in menus and URLs.
    pub fn name(self) -> &'static str {
        match self {
            Credentials::Default => "default",
            Credentials::Omit => "omit",
            Credentials::Include => "include",
        }
    }
}

/// Where the burst goes: each is its own browser pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The page's own origin.
    Same,
    /// The lab's second port.
    SecondPort,
    /// Same port, the other name (`localhost` ⇄ `127.0.0.1`).
    OtherHost,
    /// The lab through its middlebox (a NAT gateway's idle timeout).
    Middlebox,
    /// The lab's HTTPS port that offers HTTP/2 (and HTTP/1.1) by ALPN:
    /// browsers choose HTTP/2.
    TlsH2,
    /// The lab's HTTPS port that offers only HTTP/1.1: the same TLS, the
    /// browser's HTTP/1.1 pool.
    TlsH1,
    /// The lab's HTTPS port with HTTP/2 and a small
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`.
    TlsH2Limited,
}

impl Target {
    /// Name in menus and URLs.
    pub fn name(self) -> &'static str {
        match self {
            Target::Same => "same",
            Target::SecondPort => "second-port",
            Target::OtherHost => "other-host",
            Target::Middlebox => "middlebox",
            Target::TlsH2 => "https-h2",
            Target::TlsH1 => "https-h1",
            Target::TlsH2Limited => "https-h2-limited",
        }
    }

    /// Over HTTPS (the browser must accept the lab's certificate first).
    pub fn is_tls(self) -> bool {
        matches!(self, Target::TlsH2 | Target::TlsH1 | Target::TlsH2Limited)
    }
}

/// The lab's ports beyond the page's own and the second one, as the server
/// lists them (`GET /api/middlebox`, `GET /api/tls`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtherPorts {
    /// The middlebox's port.
    pub middlebox: Option<u16>,
    /// The HTTPS port offering HTTP/2.
    pub tls_h2: Option<u16>,
    /// The HTTPS port offering only HTTP/1.1.
    pub tls_h1: Option<u16>,
    /// The HTTPS port offering HTTP/2 with a small stream limit.
    pub tls_h2_limited: Option<u16>,
}

/// The port of a listener address (`127.0.0.1:8083`, `[::1]:8083`).
pub fn port_of(address: &str) -> Option<u16> {
    address.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
}

/// Everything the composer sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurstSettings {
    /// Requests (1 to [`MAX_COUNT`]).
    pub count: u32,
    /// What each calls.
    pub endpoint: Endpoint,
    /// Together or one after another.
    pub order: Order,
    /// Pause between starts (concurrent) or after each end (sequential).
    pub spacing_ms: u32,
    /// `fetch` priority.
    pub priority: Priority,
    /// `fetch` credentials mode.
    pub credentials: Credentials,
    /// Abort a request after this long (the axios `timeout`), if set.
    pub timeout_ms: Option<u32>,
    /// Which origin.
    pub target: Target,
    /// POST instead of GET.
    pub post: bool,
    /// Use the same URL for every request (and the default cache mode), to
    /// show Chromium's cache lock serialising them.
    pub identical_url: bool,
}

impl Default for BurstSettings {
    fn default() -> Self {
        BurstSettings {
            count: 12,
            endpoint: Endpoint::Hang,
            order: Order::Concurrent,
            spacing_ms: 0,
            priority: Priority::Auto,
            credentials: Credentials::Default,
            timeout_ms: None,
            target: Target::Same,
            post: false,
            identical_url: false,
        }
    }
}

fn parse_u32(value: &str, max: u32) -> Option<u32> {
    value.parse::<u32>().ok().filter(|v| *v <= max)
}

impl BurstSettings {
    /// The settings as `key=value&…` (for the URL fragment). Only values that
    /// differ from the defaults are written, so links stay short.
    pub fn to_fragment(self) -> String {
        let d = BurstSettings::default();
        let mut parts = vec![
            format!("count={}", self.count),
            format!("endpoint={}", self.endpoint.name()),
        ];
        match self.endpoint {
            Endpoint::Slow { ms, body } => {
                parts.push(format!("ms={ms}"));
                if body {
                    parts.push("phase=body".into());
                }
            }
            Endpoint::Drip {
                bytes,
                chunks,
                interval_ms,
            } => {
                parts.push(format!(
                    "bytes={bytes}&chunks={chunks}&interval_ms={interval_ms}"
                ));
            }
            Endpoint::Heartbeat {
                interval_ms,
                duration_ms,
            } => parts.push(format!(
                "interval_ms={interval_ms}&duration_ms={duration_ms}"
            )),
            Endpoint::Close(mode) => parts.push(format!("mode={}", mode.as_str())),
            Endpoint::Race(close) => parts.push(format!("drop={}", race_name(close))),
            Endpoint::Sse { interval_ms, count } => {
                parts.push(format!("interval_ms={interval_ms}&events={count}"));
            }
            Endpoint::Hang | Endpoint::Fast => {}
        }
        if self.order != d.order {
            parts.push("order=sequential".into());
        }
        if self.spacing_ms != d.spacing_ms {
            parts.push(format!("spacing_ms={}", self.spacing_ms));
        }
        if let Some(priority) = self.priority.fetch_value() {
            parts.push(format!("priority={priority}"));
        }
        if self.credentials != d.credentials {
            parts.push(format!("credentials={}", self.credentials.name()));
        }
        if let Some(ms) = self.timeout_ms {
            parts.push(format!("timeout_ms={ms}"));
        }
        if self.target != d.target {
            parts.push(format!("target={}", self.target.name()));
        }
        if self.post {
            parts.push("method=post".into());
        }
        if self.identical_url {
            parts.push("identical_url=1".into());
        }
        parts.join("&")
    }

    /// Reads settings back from [`BurstSettings::to_fragment`]'s text.
    /// Unknown keys and bad values are skipped (a hand-edited link still
    /// opens), each with a note of what was ignored.
    pub fn from_fragment(text: &str) -> (BurstSettings, Vec<String>) {
        let mut s = BurstSettings::default();
        let mut ignored = Vec::new();
        let pairs: Vec<(&str, &str)> = text
            .trim_start_matches('#')
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect();
        let get = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let num = |key: &str, default: u32, max: u32| {
            get(key).and_then(|v| parse_u32(v, max)).unwrap_or(default)
        };
        for (key, value) in &pairs {
            let ok = match *key {
                "count" => parse_u32(value, MAX_COUNT)
                    .filter(|c| *c >= 1)
                    .map(|c| s.count = c)
                    .is_some(),
                "endpoint" => {
                    let found = Endpoint::KINDS.iter().find(|e| e.name() == *value).copied();
                    if let Some(kind) = found {
                        s.endpoint = match kind {
                            Endpoint::Slow { .. } => Endpoint::Slow {
                                ms: num("ms", 1000, 120_000),
                                body: get("phase") == Some("body"),
                            },
                            Endpoint::Drip { .. } => Endpoint::Drip {
                                bytes: num("bytes", 2000, 1_048_576).max(1),
                                chunks: num("chunks", 10, 1000).max(1),
                                interval_ms: num("interval_ms", 200, 120_000),
                            },
                            Endpoint::Heartbeat { .. } => Endpoint::Heartbeat {
                                interval_ms: num("interval_ms", 1000, 120_000).max(1),
                                duration_ms: num("duration_ms", 6000, 120_000).max(1),
                            },
                            Endpoint::Close(_) => Endpoint::Close(
                                CloseMode::ALL
                                    .into_iter()
                                    .find(|m| Some(m.as_str()) == get("mode"))
                                    .unwrap_or(CloseMode::Header),
                            ),
                            Endpoint::Race(_) => Endpoint::Race(if get("drop") == Some("rst") {
                                RaceClose::Rst
                            } else {
                                RaceClose::Fin
                            }),
                            Endpoint::Sse { .. } => Endpoint::Sse {
                                interval_ms: num("interval_ms", 500, 60_000).max(100),
                                count: num("events", 10, 10_000).max(1),
                            },
                            other => other,
                        };
                    }
                    found.is_some()
                }
                "ms" | "phase" | "bytes" | "chunks" | "interval_ms" | "duration_ms" | "mode"
                | "events" | "drop" => true,
                "order" => match *value {
                    "sequential" => {
                        s.order = Order::Sequential;
                        true
                    }
                    "concurrent" => {
                        s.order = Order::Concurrent;
                        true
                    }
                    _ => false,
                },
                "spacing_ms" => parse_u32(value, 60_000).map(|v| s.spacing_ms = v).is_some(),
                "priority" => match *value {
                    "high" => {
                        s.priority = Priority::High;
                        true
                    }
                    "low" => {
                        s.priority = Priority::Low;
                        true
                    }
                    "auto" => {
                        s.priority = Priority::Auto;
                        true
                    }
                    _ => false,
                },
                "credentials" => match *value {
                    "omit" => {
                        s.credentials = Credentials::Omit;
                        true
                    }
                    "include" => {
                        s.credentials = Credentials::Include;
                        true
                    }
                    "default" => {
                        s.credentials = Credentials::Default;
                        true
                    }
                    _ => false,
                },
                "timeout_ms" => parse_u32(value, 600_000)
                    .filter(|v| *v > 0)
                    .map(|v| s.timeout_ms = Some(v))
                    .is_some(),
                "target" => match *value {
                    "same" => {
                        s.target = Target::Same;
                        true
                    }
                    "second-port" => {
                        s.target = Target::SecondPort;
                        true
                    }
                    "other-host" => {
                        s.target = Target::OtherHost;
                        true
                    }
                    "middlebox" => {
                        s.target = Target::Middlebox;
                        true
                    }
                    "https-h2" => {
                        s.target = Target::TlsH2;
                        true
                    }
                    "https-h1" => {
                        s.target = Target::TlsH1;
                        true
                    }
                    "https-h2-limited" => {
                        s.target = Target::TlsH2Limited;
                        true
                    }
                    _ => false,
                },
                "method" => match *value {
                    "post" => {
                        s.post = true;
                        true
                    }
                    "get" => {
                        s.post = false;
                        true
                    }
                    _ => false,
                },
                "identical_url" => {
                    s.identical_url = *value == "1";
                    true
                }
                _ => false,
            };
            if !ok {
                ignored.push(format!("{key}={value}"));
            }
        }
        (s, ignored)
    }

    /// Why these settings cannot be fired, if they cannot.
    pub fn problem(&self) -> Option<String> {
        if !(1..=MAX_COUNT).contains(&self.count) {
            return Some(format!("send 1 to {MAX_COUNT} requests"));
        }
        if let Endpoint::Drip { bytes, chunks, .. } = self.endpoint
            && chunks > bytes
        {
            return Some("a drip needs at least as many bytes as chunks".into());
        }
        None
    }
}

/// The page's own origin, split up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageOrigin {
    /// `http:` or `https:`.
    pub scheme: String,
    /// `127.0.0.1`, `localhost`, `[::1]`…
    pub host: String,
    /// The port.
    pub port: u16,
}

impl PageOrigin {
    /// `http://127.0.0.1:8080`.
    pub fn origin(&self) -> String {
        format!("{}//{}:{}", self.scheme, self.host, self.port)
    }
}

/// The origin a burst aimed at `target` goes to, given the page's origin and
/// the server's listeners (`127.0.0.1:8081`, `[::1]:8081`…).
pub fn resolve_origin(
    target: Target,
    page: &PageOrigin,
    listeners: &[String],
    ports: OtherPorts,
) -> Result<String, String> {
    let https = |port: Option<u16>, what: &str, flag: &str| {
        port.map(|port| format!("https://{}:{port}", page.host))
            .ok_or_else(|| format!("the server serves no HTTPS port {what} (start it with {flag})"))
    };
    match target {
        Target::Same => Ok(page.origin()),
        Target::Middlebox => ports
            .middlebox
            .map(|port| format!("{}//{}:{port}", page.scheme, page.host))
            .ok_or_else(|| "the server runs no middlebox (start it with --middlebox-port)".into()),
        Target::TlsH2 => https(ports.tls_h2, "offering HTTP/2", "--tls-port"),
        Target::TlsH1 => https(ports.tls_h1, "offering only HTTP/1.1", "--tls-h1-port"),
        Target::TlsH2Limited => https(
            ports.tls_h2_limited,
            "with HTTP/2 limited to 4 streams",
            "--tls-streams-port",
        ),
        Target::SecondPort => listeners
            .iter()
            .filter_map(|l| port_of(l))
            .find(|p| *p != page.port && Some(*p) != ports.middlebox)
            .map(|port| format!("{}//{}:{port}", page.scheme, page.host))
            .ok_or_else(|| {
                "the server listens on no second port (start it with --second-port)".into()
            }),
        Target::OtherHost => {
            let other = match page.host.as_str() {
                "127.0.0.1" => "localhost",
                "localhost" => "127.0.0.1",
                other => {
                    return Err(format!(
                        "the page was opened as {other}; open it as http://127.0.0.1:{} to compare localhost with 127.0.0.1",
                        page.port
                    ));
                }
            };
            Ok(format!("{}//{other}:{}", page.scheme, page.port))
        }
    }
}

impl BurstSettings {
    /// The URL of request `n` (from 1) of run `run`: unique via `id=` unless
    /// the burst uses identical URLs; always with the page's session.
    pub fn url(&self, origin: &str, run: u32, n: u32, session: &str) -> (String, String) {
        let tag = format!("b{run}-{n}");
        let path = self.endpoint.path();
        let url = if self.identical_url {
            format!("{origin}{path}session={session}")
        } else {
            format!("{origin}{path}id={tag}&session={session}")
        };
        (tag, url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_for_each_target() {
        let page = PageOrigin {
            scheme: "http:".into(),
            host: "127.0.0.1".into(),
            port: 8080,
        };
        let listeners = [
            "127.0.0.1:8080".to_owned(),
            "[::1]:8080".into(),
            "127.0.0.1:8081".into(),
            "[::1]:8081".into(),
        ];
        assert_eq!(
            resolve_origin(Target::Same, &page, &listeners, OtherPorts::default()).unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            resolve_origin(Target::SecondPort, &page, &listeners, OtherPorts::default()).unwrap(),
            "http://127.0.0.1:8081"
        );
        assert_eq!(
            resolve_origin(Target::OtherHost, &page, &listeners, OtherPorts::default()).unwrap(),
            "http://localhost:8080"
        );
        let local = PageOrigin {
            host: "localhost".into(),
            ..page.clone()
        };
        assert_eq!(
            resolve_origin(Target::OtherHost, &local, &listeners, OtherPorts::default()).unwrap(),
            "http://127.0.0.1:8080"
        );
        let lan = PageOrigin {
            host: "10.1.2.3".into(),
            ..page.clone()
        };
        assert!(
            resolve_origin(Target::OtherHost, &lan, &listeners, OtherPorts::default())
                .unwrap_err()
                .contains("127.0.0.1:8080")
        );
        assert!(
            resolve_origin(
                Target::SecondPort,
                &page,
                &listeners[..2],
                OtherPorts::default()
            )
            .is_err()
        );
        let ports = OtherPorts {
            middlebox: Some(8082),
            tls_h2: Some(8083),
            tls_h1: Some(8084),
            tls_h2_limited: Some(8085),
        };
        assert_eq!(
            resolve_origin(Target::TlsH2, &page, &listeners, ports).unwrap(),
            "https://127.0.0.1:8083"
        );
        assert_eq!(
            resolve_origin(Target::TlsH1, &page, &listeners, ports).unwrap(),
            "https://127.0.0.1:8084"
        );
        assert_eq!(
            resolve_origin(Target::TlsH2Limited, &page, &listeners, ports).unwrap(),
            "https://127.0.0.1:8085"
        );
        assert_eq!(
            resolve_origin(Target::Middlebox, &page, &listeners, ports).unwrap(),
            "http://127.0.0.1:8082"
        );
        // Each HTTPS target names its own flag when its port is missing.
        for (target, flag) in [
            (Target::TlsH2, "--tls-port"),
            (Target::TlsH1, "--tls-h1-port"),
            (Target::TlsH2Limited, "--tls-streams-port"),
        ] {
            let error =
                resolve_origin(target, &page, &listeners, OtherPorts::default()).unwrap_err();
            assert!(error.contains(flag), "{target:?}: {error}");
        }
    }

    #[test]
    fn urls_are_unique_unless_identical_is_asked_for() {
        let s = BurstSettings::default();
        assert_eq!(
            s.url("http://h:1", 3, 2, "s-x"),
            (
                "b3-2".into(),
                "http://h:1/api/hang?id=b3-2&session=s-x".into()
            )
        );
        let same = BurstSettings {
            identical_url: true,
            endpoint: Endpoint::Fast,
            ..s
        };
        assert_eq!(
            same.url("http://h:1", 3, 2, "s-x").1,
            "http://h:1/api/fast?session=s-x"
        );
        assert_eq!(
            same.url("http://h:1", 3, 2, "s-x").1,
            same.url("http://h:1", 3, 9, "s-x").1
        );
    }

    #[test]
    fn defaults_make_a_short_link_and_come_back() {
        let d = BurstSettings::default();
        assert_eq!(d.to_fragment(), "count=12&endpoint=hang");
        assert_eq!(BurstSettings::from_fragment(&d.to_fragment()), (d, vec![]));
    }

    #[test]
    fn every_setting_survives_the_round_trip() {
        let cases = [
            BurstSettings {
                count: 200,
                endpoint: Endpoint::Slow {
                    ms: 2500,
                    body: true,
                },
                order: Order::Sequential,
                spacing_ms: 50,
                priority: Priority::High,
                credentials: Credentials::Omit,
                timeout_ms: Some(1500),
                target: Target::SecondPort,
                post: true,
                identical_url: true,
            },
            BurstSettings {
                endpoint: Endpoint::Drip {
                    bytes: 99,
                    chunks: 3,
                    interval_ms: 7,
                },
                credentials: Credentials::Include,
                target: Target::OtherHost,
                priority: Priority::Low,
                ..BurstSettings::default()
            },
            BurstSettings {
                endpoint: Endpoint::Close(CloseMode::MidBody),
                ..BurstSettings::default()
            },
            BurstSettings {
                endpoint: Endpoint::Heartbeat {
                    interval_ms: 700,
                    duration_ms: 9000,
                },
                target: Target::Middlebox,
                ..BurstSettings::default()
            },
            BurstSettings {
                endpoint: Endpoint::Sse {
                    interval_ms: 250,
                    count: 4,
                },
                ..BurstSettings::default()
            },
            BurstSettings {
                endpoint: Endpoint::Fast,
                ..BurstSettings::default()
            },
        ];
        for s in cases {
            let text = s.to_fragment();
            assert_eq!(BurstSettings::from_fragment(&text), (s, vec![]), "{text}");
        }
    }

    #[test]
    fn hand_edited_links_open_with_notes_about_what_was_ignored() {
        let (s, ignored) = BurstSettings::from_fragment(
            "#count=999&endpoint=teleport&priority=urgent&colour=red&count=5",
        );
        assert_eq!(s.count, 5, "the valid count wins");
        assert_eq!(s.endpoint, Endpoint::Hang);
        assert_eq!(
            ignored,
            vec![
                "count=999",
                "endpoint=teleport",
                "priority=urgent",
                "colour=red"
            ]
        );
        let (s, _) = BurstSettings::from_fragment("endpoint=slow&ms=abc");
        assert_eq!(
            s.endpoint,
            Endpoint::Slow {
                ms: 1000,
                body: false
            },
            "bad numbers fall back"
        );
    }

    #[test]
    fn paths_carry_the_parameters() {
        assert_eq!(
            Endpoint::Slow { ms: 5, body: true }.path(),
            "/api/slow?ms=5&phase=body&"
        );
        assert_eq!(
            Endpoint::Close(CloseMode::Rst).path(),
            "/api/close?mode=rst&"
        );
        assert!(
            BurstSettings {
                endpoint: Endpoint::Drip {
                    bytes: 2,
                    chunks: 3,
                    interval_ms: 0
                },
                ..BurstSettings::default()
            }
            .problem()
            .is_some()
        );
    }
}
