//! The middlebox: a TCP proxy that forgets idle connections the way a NAT
//! gateway or a load balancer does (issue #10).
//!
//! - [`Preset`] and [`PresetSpec`]: the providers' documented idle timeouts and
//!   what happens at expiry, each with its source;
//! - [`MiddleboxSettings`] / [`MiddleboxPatch`]: one owner's middlebox
//!   (`GET/PUT /api/middlebox`, `set_middlebox` on the WebSocket), with a
//!   **time scale** that divides every provider timeout;
//! - [`MiddleboxView`]: the answer to `GET/PUT /api/middlebox`;
//! - [`MiddleboxEvent`]: what happened to one mapping (one proxied connection
//!   pair), carried by `ServerEvent::Middlebox`.
//!
//! Words: the *client* is the inside (the browser, or whatever connects to the
//! middlebox), the *server* the outside (the lab's server, or the upstream
//! service of the standalone middlebox).

use serde::{Deserialize, Serialize};

use crate::{ConnId, ErrorBody, Micros, not_null};

/// Identifies one middlebox mapping (a client connection and the middlebox's
/// connection to the server) for the server's lifetime.
///
/// ```json
/// 4
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MappingId(pub u64);

impl std::fmt::Display for MappingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "m{}", self.0)
    }
}

/// What the middlebox does when a mapping's idle timeout expires.
///
/// ```json
/// "rst"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExpiry {
    /// The mapping is forgotten without a word; the next packet from the
    /// client (data, FIN or a keep-alive probe) is answered with an RST (AWS
    /// NAT gateway: it "returns an RST packet to any resources behind the NAT
    /// gateway that attempt to continue the connection"); what the server
    /// sends later is dropped (the lab's reading: AWS says nothing of the
    /// outside).
    Rst,
    /// The mapping is forgotten without a word; whichever side sends next
    /// gets an RST (AWS Network Load Balancer).
    RstEither,
    /// Both sides get an RST at the moment of expiry (Azure Load Balancer
    /// with "TCP reset on idle" enabled).
    RstBoth,
    /// Nothing is ever sent to either side; everything either side sends
    /// later is dropped (Azure Load Balancer's default, Google Cloud NAT).
    Silent,
    /// Both connections are closed (FIN) at the moment of expiry (a proxy
    /// such as an Application Load Balancer).
    Fin,
}

impl OnExpiry {
    /// Every behaviour, in the order the page offers them.
    pub const ALL: [OnExpiry; 5] = [
        OnExpiry::Rst,
        OnExpiry::RstEither,
        OnExpiry::RstBoth,
        OnExpiry::Silent,
        OnExpiry::Fin,
    ];

    /// The JSON name (`rst_either`).
    pub fn as_str(self) -> &'static str {
        match self {
            OnExpiry::Rst => "rst",
            OnExpiry::RstEither => "rst_either",
            OnExpiry::RstBoth => "rst_both",
            OnExpiry::Silent => "silent",
            OnExpiry::Fin => "fin",
        }
    }

    /// One line for a label.
    pub fn describe(self) -> &'static str {
        match self {
            OnExpiry::Rst => {
                "forgotten silently; the client's next packet gets an RST, the server's are dropped"
            }
            OnExpiry::RstEither => "forgotten silently; whichever side sends next gets an RST",
            OnExpiry::RstBoth => "an RST to both sides at once",
            OnExpiry::Silent => "forgotten silently; everything either side sends later is dropped",
            OnExpiry::Fin => "both connections closed (FIN) at once",
        }
    }
}

/// A provider whose documented idle behaviour the middlebox imitates.
///
/// ```json
/// "aws_nat"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// AWS NAT gateway.
    AwsNat,
    /// AWS Network Load Balancer (TCP listener).
    AwsNlb,
    /// Azure Load Balancer (Standard).
    AzureLb,
    /// Google Cloud NAT.
    GcpNat,
    /// An Application Load Balancer-like proxy.
    Alb,
    /// Any timeout and behaviour.
    Custom,
}

/// What the providers document, one [`Preset`] each. Numbers are the
/// providers' own (real time); the time scale divides them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetSpec {
    /// Which preset.
    pub preset: Preset,
    /// Its name for people ("AWS NAT gateway").
    pub name: &'static str,
    /// The default idle timeout, milliseconds.
    pub idle_timeout_ms: u64,
    /// The idle timeouts the provider allows, milliseconds (inclusive).
    pub idle_timeout_range_ms: (u64, u64),
    /// What happens at expiry by default.
    pub on_expiry: OnExpiry,
    /// The expiry behaviours the provider offers.
    pub on_expiry_allowed: &'static [OnExpiry],
    /// Whether packets without data (TCP keep-alive probes) keep a mapping
    /// alive. Packet-level devices (NAT, NLB, Azure LB) see every packet; a
    /// proxy that terminates TCP (ALB) counts only data.
    pub probes_refresh: bool,
    /// A shorter idle timeout for a connection that is closing (a FIN seen
    /// from either side while the other still sends), milliseconds, where
    /// the provider documents one (Cloud NAT's transitory timeout). Fixed at
    /// the provider's default.
    pub transitory_timeout_ms: Option<u64>,
    /// Where the numbers and the behaviour come from.
    pub source: &'static str,
    /// What the source says, in one sentence.
    pub summary: &'static str,
}

/// Smallest idle timeout the lab accepts for a custom middlebox.
pub const CUSTOM_MIN_MS: u64 = 100;
/// Largest idle timeout the lab accepts for a custom middlebox (2 hours, the
/// Linux default before the first keep-alive probe).
pub const CUSTOM_MAX_MS: u64 = 7_200_000;
/// Accepted time scales: real time (1) to ×1000.
pub const SCALE_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;
/// Shortest idle timeout in force (after scaling): timers and `TCP_INFO`
/// polls are not finer than this on a busy machine.
pub const IN_FORCE_MIN_MS: u64 = 50;

impl Preset {
    /// Every preset, in the order the page offers them.
    pub const ALL: [Preset; 6] = [
        Preset::AwsNat,
        Preset::AwsNlb,
        Preset::AzureLb,
        Preset::GcpNat,
        Preset::Alb,
        Preset::Custom,
    ];

    /// The JSON name (`aws_nat`).
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::AwsNat => "aws_nat",
            Preset::AwsNlb => "aws_nlb",
            Preset::AzureLb => "azure_lb",
            Preset::GcpNat => "gcp_nat",
            Preset::Alb => "alb",
            Preset::Custom => "custom",
        }
    }

    /// What the provider documents.
    pub fn spec(self) -> PresetSpec {
        match self {
            // "If a connection that's using a NAT gateway is idle for 350
            // seconds or more, the connection times out. When a connection
            // times out, a NAT gateway returns an RST packet to any resources
            // behind the NAT gateway that attempt to continue the connection
            // (it does not send a FIN packet)." Fix: send traffic, or TCP
            // keep-alive under 350 s. Not configurable.
            Preset::AwsNat => PresetSpec {
                preset: self,
                name: "AWS NAT gateway",
                idle_timeout_ms: 350_000,
                idle_timeout_range_ms: (350_000, 350_000),
                on_expiry: OnExpiry::Rst,
                on_expiry_allowed: &[OnExpiry::Rst],
                probes_refresh: true,
                transitory_timeout_ms: None,
                source: "https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-troubleshooting.html#nat-gateway-troubleshooting-timeout",
                summary: "350 s idle, fixed; the next packet from the inside gets an RST (no FIN); TCP keep-alive under 350 s keeps the connection",
            },
            // NLB tracks each TCP flow; idle 350 s by default, configurable
            // 60-6000 s (TLS listeners stay at 350 s): the update-idle-timeout
            // page ("If no data is sent through the connection by either the
            // client or target for longer than the idle timeout, the
            // connection is closed"). The RST to a client or target that
            // sends after expiry ("If a client or a target sends data after
            // the idle timeout period elapses, it receives a TCP RST
            // packet"), and keep-alive packets resetting the timer ("Clients
            // or targets can use TCP keepalive packets to reset the idle
            // timeout"), are in the Network Load Balancer guide's "Connection
            // idle timeout" (cited first; the blog post announced them); that
            // a FIN or a probe after expiry also gets the RST is the lab's
            // reading.
            Preset::AwsNlb => PresetSpec {
                preset: self,
                name: "AWS Network Load Balancer",
                idle_timeout_ms: 350_000,
                idle_timeout_range_ms: (60_000, 6_000_000),
                on_expiry: OnExpiry::RstEither,
                on_expiry_allowed: &[OnExpiry::RstEither],
                probes_refresh: true,
                transitory_timeout_ms: None,
                source: "https://docs.aws.amazon.com/elasticloadbalancing/latest/network/network-load-balancers.html#connection-idle-timeout (and https://docs.aws.amazon.com/elasticloadbalancing/latest/network/update-idle-timeout.html)",
                summary: "350 s idle by default (60-6000 s); a client or target that sends after expiry gets an RST",
            },
            // "Load Balancer's default behavior is to silently drop flows when
            // the idle timeout of a flow is reached. Enabling TCP reset causes
            // Load Balancer to send bidirectional TCP Resets (TCP RST packets)
            // on idle timeout" (to both endpoints, at the time of the
            // timeout). Idle timeout 4 minutes by default, 4-100 minutes.
            Preset::AzureLb => PresetSpec {
                preset: self,
                name: "Azure Load Balancer",
                idle_timeout_ms: 240_000,
                idle_timeout_range_ms: (240_000, 6_000_000),
                on_expiry: OnExpiry::Silent,
                on_expiry_allowed: &[OnExpiry::Silent, OnExpiry::RstBoth],
                probes_refresh: true,
                transitory_timeout_ms: None,
                source: "https://learn.microsoft.com/en-us/azure/load-balancer/load-balancer-tcp-reset",
                summary: "4 min idle by default (4-100 min); flows dropped silently, or an RST to both sides at once with \"TCP reset on idle\"",
            },
            // "TCP Established Connection Idle Timeout": 1200 s by default,
            // configurable (`--tcp-established-idle-timeout`). The
            // documentation describes no reset: the mapping is removed and
            // later packets go nowhere, so the lab drops them silently. The
            // lab accepts 30 s to 2 h (its own bounds, not Google's).
            // "TCP Transitory Connection Idle Timeout": 30 s by default (the
            // API's `tcpTransitoryIdleTimeoutSec`: "Defaults to 30s if not
            // set"), for connections not established. A user-space proxy
            // never sees a handshake in progress (the kernel completes it),
            // so the lab applies it to the other transitory state it can
            // see: a FIN from one side while the other still sends (the
            // lab's reading of "transitory"). Not configurable in the lab.
            Preset::GcpNat => PresetSpec {
                preset: self,
                name: "Google Cloud NAT",
                idle_timeout_ms: 1_200_000,
                idle_timeout_range_ms: (30_000, CUSTOM_MAX_MS),
                on_expiry: OnExpiry::Silent,
                on_expiry_allowed: &[OnExpiry::Silent],
                probes_refresh: true,
                transitory_timeout_ms: Some(30_000),
                source: "https://cloud.google.com/nat/docs/tune-nat-configuration#nat-timeouts (transitory: https://cloud.google.com/compute/docs/reference/rest/v1/routers, tcpTransitoryIdleTimeoutSec)",
                summary: "established TCP idle 1200 s by default (configurable); the mapping is removed without a reset; Google's 30 s for connections not established is applied here, in the lab's reading, to a half-closed one (a FIN seen)",
            },
            // ALB: connection idle timeout 60 s by default, 1-4000 s; "if no
            // data has been sent or received by the time that the idle timeout
            // period elapses, the load balancer closes the connection".
            // Elastic Load Balancing notes that "TCP keep-alive probes do not
            // prevent the load balancer from terminating the connection
            // because they do not send data in the payload" (Classic LB page).
            // A real ALB answers a request in flight with 504; a TCP-level
            // middlebox does not parse HTTP and only closes.
            Preset::Alb => PresetSpec {
                preset: self,
                name: "Application Load Balancer (like)",
                idle_timeout_ms: 60_000,
                idle_timeout_range_ms: (1_000, 4_000_000),
                on_expiry: OnExpiry::Fin,
                on_expiry_allowed: &[OnExpiry::Fin],
                probes_refresh: false,
                transitory_timeout_ms: None,
                source: "https://docs.aws.amazon.com/elasticloadbalancing/latest/application/edit-load-balancer-attributes.html#connection-idle-timeout (probes: https://docs.aws.amazon.com/elasticloadbalancing/latest/classic/config-idle-timeout.html)",
                summary: "60 s idle by default (1-4000 s), data only (keep-alive probes do not count); then the connections are closed (no 504: unlike a real ALB, a request in flight sees its connection closed)",
            },
            Preset::Custom => PresetSpec {
                preset: self,
                name: "custom",
                idle_timeout_ms: 350_000,
                idle_timeout_range_ms: (CUSTOM_MIN_MS, CUSTOM_MAX_MS),
                on_expiry: OnExpiry::Rst,
                on_expiry_allowed: &OnExpiry::ALL,
                probes_refresh: true,
                transitory_timeout_ms: None,
                source: "",
                summary: "any idle timeout and expiry behaviour",
            },
        }
    }

    /// The preset's settings at time scale `scale`.
    pub fn settings(self, scale: u32) -> MiddleboxSettings {
        let spec = self.spec();
        MiddleboxSettings {
            preset: self,
            idle_timeout_ms: spec.idle_timeout_ms,
            on_expiry: spec.on_expiry,
            probes_refresh: spec.probes_refresh,
            scale,
        }
    }
}

/// One owner's middlebox (or the standalone middlebox's): an idle timeout,
/// what happens at its expiry, and the time scale.
///
/// ```json
/// {"preset": "aws_nat", "idle_timeout_ms": 350000, "on_expiry": "rst", "probes_refresh": true, "scale": 100}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiddleboxSettings {
    /// Whose documented behaviour this is, or `custom`.
    pub preset: Preset,
    /// The provider's idle timeout (real time, before scaling), milliseconds.
    pub idle_timeout_ms: u64,
    /// What happens at expiry.
    pub on_expiry: OnExpiry,
    /// Whether packets without data (TCP keep-alive probes) refresh a
    /// mapping. Fixed by every preset but `custom`.
    pub probes_refresh: bool,
    /// Every timeout is divided by this (1: real time; 100: 350 s become
    /// 3.5 s). Keep-alive probes are sent by the peers on their own clocks:
    /// the scale does not change their intervals.
    pub scale: u32,
}

impl Default for MiddleboxSettings {
    /// An AWS NAT gateway in real time.
    fn default() -> Self {
        Preset::AwsNat.settings(1)
    }
}

/// A change to [`MiddleboxSettings`]; absent fields stay as they are. Naming a
/// preset first resets the timeout, expiry behaviour and probe rule to the
/// preset's, then the other fields of the same patch apply.
///
/// ```json
/// {"preset": "azure_lb", "on_expiry": "rst_both", "scale": 60}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiddleboxPatch {
    /// See [`MiddleboxSettings::preset`].
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub preset: Option<Preset>,
    /// See [`MiddleboxSettings::idle_timeout_ms`].
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_timeout_ms: Option<u64>,
    /// See [`MiddleboxSettings::on_expiry`].
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub on_expiry: Option<OnExpiry>,
    /// See [`MiddleboxSettings::probes_refresh`].
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub probes_refresh: Option<bool>,
    /// See [`MiddleboxSettings::scale`].
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub scale: Option<u32>,
}

/// Milliseconds as people say them: `350 s`, `3.5 s`, `4 min`, `500 ms`.
pub fn human_ms(ms: u64) -> String {
    human_us(ms.saturating_mul(1000))
}

/// Microseconds as people say them (see [`human_ms`]), to the thousandth of
/// the unit, half up. Whole numbers only: the page's wasm carries no float
/// formatting (`bench/src/causes.md`, figure 5).
pub fn human_us(us: u64) -> String {
    if us >= 120_000_000 && us.is_multiple_of(60_000_000) {
        return format!("{} min", us / 60_000_000);
    }
    // Thousandths of the unit: of a millisecond, the microseconds themselves;
    // of a second, whole milliseconds, rounded.
    let (thousandths, unit) = if us >= 1_000_000 {
        (us.saturating_add(500) / 1000, "s")
    } else {
        (us, "ms")
    };
    let (whole, frac) = (thousandths / 1000, thousandths % 1000);
    if frac == 0 {
        format!("{whole} {unit}")
    } else {
        let digits = format!("{frac:03}");
        format!("{whole}.{} {unit}", digits.trim_end_matches('0'))
    }
}

impl MiddleboxSettings {
    /// The idle timeout in force, after scaling, in microseconds.
    pub fn in_force_us(&self) -> u64 {
        self.idle_timeout_ms.saturating_mul(1000) / u64::from(self.scale.max(1))
    }

    /// The idle timeout in force, after scaling, in whole milliseconds.
    pub fn in_force_ms(&self) -> u64 {
        self.in_force_us() / 1000
    }

    /// The idle timeout in force once a FIN has been seen (see
    /// [`PresetSpec::transitory_timeout_ms`]), after scaling, in
    /// microseconds: the shorter of it and [`Self::in_force_us`], never
    /// under [`IN_FORCE_MIN_MS`]; `None` where the preset has none.
    pub fn transitory_in_force_us(&self) -> Option<u64> {
        let ms = self.preset.spec().transitory_timeout_ms?;
        let scaled = ms.saturating_mul(1000) / u64::from(self.scale.max(1));
        Some(scaled.max(IN_FORCE_MIN_MS * 1000).min(self.in_force_us()))
    }

    /// The time scale in words, for the page and the standalone middlebox's
    /// first line.
    pub fn scale_words(&self) -> String {
        let real = human_ms(self.idle_timeout_ms);
        if self.scale <= 1 {
            format!(
                "real time (scale 1): the idle timeout is the provider's own {real}; \
                 keep-alive probes run on the peers' own clocks"
            )
        } else {
            format!(
                "time scale ×{}: every provider timeout is divided by {} ({real} become {}); \
                 keep-alive probe intervals are the peers' own, not scaled by the middlebox \
                 (the lab's server, through the lab's middlebox, divides its own by the scale)",
                self.scale,
                self.scale,
                human_us(self.in_force_us())
            )
        }
    }

    /// The settings with `patch` applied, or what is wrong with them.
    pub fn patched(&self, patch: &MiddleboxPatch) -> Result<MiddleboxSettings, ErrorBody> {
        let mut next = self.clone();
        if let Some(preset) = patch.preset {
            next.preset = preset;
            if preset != Preset::Custom {
                let spec = preset.spec();
                next.idle_timeout_ms = spec.idle_timeout_ms;
                next.on_expiry = spec.on_expiry;
                next.probes_refresh = spec.probes_refresh;
            }
        }
        if let Some(ms) = patch.idle_timeout_ms {
            next.idle_timeout_ms = ms;
        }
        if let Some(on_expiry) = patch.on_expiry {
            next.on_expiry = on_expiry;
        }
        if let Some(on) = patch.probes_refresh {
            next.probes_refresh = on;
        }
        if let Some(scale) = patch.scale {
            next.scale = scale;
        }
        next.validate()?;
        Ok(next)
    }

    /// Checks the settings against the preset's documented range and the
    /// lab's bounds.
    pub fn validate(&self) -> Result<(), ErrorBody> {
        let error = |error: String, hint: String| Err(ErrorBody::new(error, hint));
        if !SCALE_RANGE.contains(&self.scale) {
            return error(
                format!("`scale` = {} is out of range", self.scale),
                format!(
                    "send scale between {} (real time) and {}, e.g. {{\"scale\": 100}} (350 s become 3.5 s)",
                    SCALE_RANGE.start(),
                    SCALE_RANGE.end()
                ),
            );
        }
        let spec = self.preset.spec();
        let (low, high) = spec.idle_timeout_range_ms;
        if !(low..=high).contains(&self.idle_timeout_ms) {
            let got = human_ms(self.idle_timeout_ms);
            return if low == high {
                error(
                    format!(
                        "the {}'s idle timeout is fixed at {} (got {got})",
                        spec.name,
                        human_ms(low)
                    ),
                    format!(
                        "leave idle_timeout_ms out, or send {{\"preset\": \"custom\", \"idle_timeout_ms\": {}}} for any timeout",
                        self.idle_timeout_ms
                    ),
                )
            } else {
                // "the custom" names nothing (found in review).
                let what = match spec.preset {
                    Preset::Custom => "a custom middlebox".to_owned(),
                    _ => format!("the {}", spec.name),
                };
                error(
                    format!(
                        "`idle_timeout_ms` = {} ({got}) is out of range for {what}",
                        self.idle_timeout_ms
                    ),
                    format!(
                        "send idle_timeout_ms between {low} and {high} ({} to {}), or {{\"preset\": \"custom\"}} for any timeout from {CUSTOM_MIN_MS} to {CUSTOM_MAX_MS}",
                        human_ms(low),
                        human_ms(high)
                    ),
                )
            };
        }
        if !spec.on_expiry_allowed.contains(&self.on_expiry) {
            let allowed: Vec<&str> = spec.on_expiry_allowed.iter().map(|o| o.as_str()).collect();
            return error(
                format!(
                    "the {} does not offer on_expiry `{}`",
                    spec.name,
                    self.on_expiry.as_str()
                ),
                format!(
                    "send on_expiry {}, or {{\"preset\": \"custom\"}} for any behaviour",
                    allowed.join(" or ")
                ),
            );
        }
        if self.preset != Preset::Custom && self.probes_refresh != spec.probes_refresh {
            return error(
                format!(
                    "on the {}, keep-alive probes {} a mapping",
                    spec.name,
                    if spec.probes_refresh {
                        "do refresh"
                    } else {
                        "do not refresh"
                    }
                ),
                "leave probes_refresh out, or send {\"preset\": \"custom\"} to choose".into(),
            );
        }
        if self.in_force_us() < IN_FORCE_MIN_MS * 1000 {
            return error(
                format!(
                    "{} at scale {} is {} in force, under the middlebox's {IN_FORCE_MIN_MS} ms floor",
                    human_ms(self.idle_timeout_ms),
                    self.scale,
                    human_us(self.in_force_us())
                ),
                "lower the scale or lengthen the idle timeout".into(),
            );
        }
        Ok(())
    }
}

/// Answer to `GET /api/middlebox` and `PUT /api/middlebox`: the caller's
/// middlebox and where it listens.
///
/// ```json
/// {"settings": {"preset": "aws_nat", "idle_timeout_ms": 350000, "on_expiry": "rst", "probes_refresh": true, "scale": 100}, "in_force_ms": 3500, "scale_words": "time scale ×100: every provider timeout is divided by 100 (350 s become 3.5 s); keep-alive probe intervals are the peers' own, not scaled by the middlebox (the lab's server, through the lab's middlebox, divides its own by the scale)", "probes_visible": true, "listeners": ["127.0.0.1:8082"], "locked": false}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MiddleboxView {
    /// The settings new mappings of the caller get.
    pub settings: MiddleboxSettings,
    /// The idle timeout in force after scaling, milliseconds.
    pub in_force_ms: u64,
    /// The time scale in words ([`MiddleboxSettings::scale_words`]).
    pub scale_words: String,
    /// Whether the middlebox can see keep-alive probes (Linux `TCP_INFO`).
    /// When `false`, probes cannot be seen here and never refresh a mapping.
    pub probes_visible: bool,
    /// Where the lab's middlebox listens (an origin of its own: requests to
    /// it go through the middlebox to the lab's server).
    pub listeners: Vec<String>,
    /// The instructor has locked the room: everyone runs the defaults.
    #[serde(default)]
    pub locked: bool,
}

/// Which peer of a mapping: the client (inside) or the server (outside).
///
/// ```json
/// "client"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The inside: the browser, or whatever connected to the middlebox.
    Client,
    /// The outside: the lab's server, or the standalone middlebox's upstream.
    Server,
}

/// What refreshed a mapping's idle timer.
///
/// ```json
/// "probe"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshCause {
    /// Bytes passed through.
    Data,
    /// A segment without new data arrived (a TCP keep-alive probe, with no
    /// octet or one old one), seen as `tcpi_segs_in` rising with no new byte
    /// received and nothing acknowledged.
    Probe,
    /// Segments without new data while a window was closed: that side's
    /// zero-window probes (it has data for the middlebox, whose socket
    /// toward it advertises a window of 0), or its answers to the
    /// middlebox's own (the middlebox has data for it and it advertises 0).
    /// Packets a NAT sees too, so they refresh where probes do; not TCP
    /// keep-alive. Told by `tcpi_rcv_wnd` and `tcpi_snd_wnd` (Linux 5.4;
    /// `tcpi_rcv_wnd` is newer than 6.1, whose kernels report the first kind
    /// as `probe`).
    WindowProbe,
}

/// Who ended a mapping.
///
/// ```json
/// "middlebox"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// The client closed or reset its connection.
    Client,
    /// The server closed or reset its connection.
    Server,
    /// The middlebox itself (expiry, its linger cap, shutdown).
    Middlebox,
}

/// How a mapping's connections ended.
///
/// ```json
/// "rst"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseHow {
    /// An orderly close.
    Fin,
    /// A reset.
    Rst,
}

/// What happened to one mapping, in `ServerEvent::Middlebox`.
///
/// ```json
/// {"kind": "expired", "idle_ms": 3502, "on_expiry": "rst"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MiddleboxEvent {
    /// A client connected and the middlebox connected to the server. In the
    /// lab, announced once the client's first request line names its session
    /// (or once anything else happens first), with the settings it runs.
    ///
    /// ```json
    /// {"kind": "opened", "client": "127.0.0.1:50412", "upstream": "127.77.0.1:50413", "conn": 12, "accepted_us": 1000, "settings": {"preset": "aws_nat", "idle_timeout_ms": 350000, "on_expiry": "rst", "probes_refresh": true, "scale": 100}, "in_force_ms": 3500, "probes_visible": true}
    /// ```
    Opened {
        /// The client's address.
        client: String,
        /// The middlebox's own address towards the server: in the lab, the
        /// `peer` of the server's `connection_opened` (over IPv4, one of the
        /// lab's own addresses 127.77.0.1 to .254, in turn).
        #[serde(default)]
        upstream: Option<String>,
        /// In the lab, the server's connection for it, when already known.
        #[serde(default)]
        conn: Option<ConnId>,
        /// When the client's connection was accepted.
        accepted_us: Micros,
        /// The settings it runs (read once, when it is attributed).
        settings: MiddleboxSettings,
        /// The idle timeout in force after scaling, milliseconds.
        in_force_ms: u64,
        /// Whether keep-alive probes can be seen (Linux `TCP_INFO`); when
        /// `false`, probes cannot be seen here and never refresh it.
        probes_visible: bool,
    },
    /// Traffic refreshed the idle timer. Aggregated: at most one flush per
    /// mapping every 100 ms, one event per side and cause, with counts.
    ///
    /// ```json
    /// {"kind": "refreshed", "side": "server", "by": "probe", "bytes": 0, "count": 1}
    /// ```
    Refreshed {
        /// Whose packets.
        side: Side,
        /// Data, a keep-alive probe or a window probe.
        by: RefreshCause,
        /// Bytes from that side that reached the middlebox (0 for probes):
        /// reported when it reads them, or earlier, when a look at
        /// its socket finds them there unread (it reads no more from
        /// a side while its buffer toward the other is full; they refresh the
        /// timer all the same, as at a NAT they would have passed). Not yet
        /// delivered. Each is later either forwarded (`closed`'s
        /// `client_bytes` / `server_bytes`) or dropped (`closed`'s
        /// `dropped_bytes`), never both. The lab's own mapping of a page's
        /// events socket does not report the server's data on it here
        /// (the page would hear its own events as traffic); its `closed`
        /// totals count it.
        bytes: u64,
        /// Reads or looks that found data (data), or probes, since the last
        /// event of this kind.
        count: u32,
    },
    /// The idle timeout expired: the mapping is forgotten.
    ///
    /// ```json
    /// {"kind": "expired", "idle_ms": 3502, "on_expiry": "rst"}
    /// ```
    ///
    /// ```json
    /// {"kind": "expired", "idle_ms": 301, "on_expiry": "silent", "transitory": true}
    /// ```
    Expired {
        /// How long it had been idle.
        idle_ms: u64,
        /// What happens now.
        on_expiry: OnExpiry,
        /// The timer that expired was the shorter one for a closing
        /// connection ([`PresetSpec::transitory_timeout_ms`]): a FIN had
        /// been seen from one side.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        transitory: bool,
    },
    /// Something arrived for a forgotten mapping and was not forwarded; or
    /// bytes a side sent after the mapping was over, while the middlebox
    /// waited for what it had written to that side to go out. Aggregated
    /// like `refreshed`.
    ///
    /// ```json
    /// {"kind": "dropped", "side": "server", "bytes": 161, "count": 1, "probes": 0}
    /// ```
    Dropped {
        /// Who sent it.
        side: Side,
        /// Bytes of data dropped.
        bytes: u64,
        /// Reads of data dropped.
        count: u32,
        /// Segments without data (keep-alive or window probes) that arrived. Not
        /// forwarded, but acknowledged by the lab's own kernel (a user-space
        /// proxy cannot leave them unanswered): a real middlebox leaves them
        /// unanswered, and the sender's keep-alive then fails (`ETIMEDOUT`)
        /// after its probe count.
        #[serde(default)]
        probes: u32,
    },
    /// The middlebox answered with (or sent) a TCP reset.
    ///
    /// ```json
    /// {"kind": "rst_sent", "side": "client"}
    /// ```
    RstSent {
        /// To whom.
        side: Side,
    },
    /// A connection was refused: the middlebox holds its cap of mappings, or
    /// the server could not be reached. The client gets an RST.
    ///
    /// ```json
    /// {"kind": "refused", "client": "127.0.0.1:50500", "reason": "1024 mappings open, the middlebox's cap"}
    /// ```
    Refused {
        /// The client's address.
        client: String,
        /// Why.
        reason: String,
    },
    /// Both connections are gone; the mapping's totals.
    ///
    /// ```json
    /// {"kind": "closed", "by": "server", "how": "fin", "after_expiry": true, "client_bytes": 120, "server_bytes": 0, "dropped_bytes": 161}
    /// ```
    Closed {
        /// Who ended it.
        by: Party,
        /// How. The middlebox's own close is `rst` when either side's went
        /// out as a reset: a close meant in order with bytes that side sent
        /// still unread (the kernel answers such a close with a RST), or
        /// with bytes written toward that side that never went out (that
        /// side was reset, losing them: `rst_sent`). A side that resets
        /// while those bytes wait is the record's end (`by` that side,
        /// `rst`).
        how: CloseHow,
        /// Whether it had expired first.
        after_expiry: bool,
        /// Bytes forwarded from the client to the server (written to it;
        /// when that connection ended in the middlebox's reset, only what
        /// its kernel had sent: the rest was lost with its send queue; in the
        /// server's own, also not what came after its FIN and it never
        /// acknowledged).
        client_bytes: u64,
        /// Bytes forwarded from the server to the client (likewise).
        server_bytes: u64,
        /// Bytes that reached the middlebox and were never forwarded, both
        /// sides: dropped after expiry, still in its buffers or unread in
        /// its sockets when it expired or stopped (or when one side reset),
        /// read and dropped while a side's last bytes waited to go out, or
        /// lost with a reset's send queue. With the two above, every byte
        /// `refreshed` and `dropped` reported.
        dropped_bytes: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lessons' words that state a provider's rules cite the preset's
    /// source (found in review: the lesson track showed AWS's rules without
    /// it; only the workbench's panel named it).
    #[test]
    fn lessons_that_state_a_providers_rules_cite_its_source() {
        let mut citing = 0;
        for (provider, preset) in [
            ("AWS", Preset::AwsNat),
            ("Azure", Preset::AzureLb),
            ("Google", Preset::GcpNat),
        ] {
            // The source's first address (some add a second in brackets).
            let source = preset.spec().source.split(' ').next().unwrap_or_default();
            for lesson in crate::lesson::LESSONS {
                if lesson.text.why.contains(provider) {
                    assert!(lesson.text.why.contains(source), "{}", lesson.id);
                    citing += 1;
                }
            }
        }
        assert!(citing >= 5, "{citing}");
    }

    #[test]
    fn presets_carry_their_documented_numbers_and_sources() {
        let nat = Preset::AwsNat.spec();
        assert_eq!(nat.idle_timeout_ms, 350_000);
        assert_eq!(nat.on_expiry, OnExpiry::Rst);
        assert_eq!(
            Preset::AwsNlb.spec().idle_timeout_range_ms,
            (60_000, 6_000_000)
        );
        assert_eq!(Preset::AzureLb.spec().idle_timeout_ms, 240_000);
        assert_eq!(Preset::AzureLb.spec().on_expiry, OnExpiry::Silent);
        assert_eq!(Preset::GcpNat.spec().idle_timeout_ms, 1_200_000);
        assert_eq!(Preset::Alb.spec().idle_timeout_ms, 60_000);
        assert!(!Preset::Alb.spec().probes_refresh);
        for preset in Preset::ALL {
            let spec = preset.spec();
            assert_eq!(spec.preset, preset);
            assert!(
                preset == Preset::Custom || spec.source.starts_with("https://"),
                "{preset:?} cites its source"
            );
            assert!(spec.on_expiry_allowed.contains(&spec.on_expiry));
            preset.settings(100).validate().unwrap();
            let json = serde_json::to_value(preset).unwrap();
            assert_eq!(json, preset.as_str());
        }
        for on_expiry in OnExpiry::ALL {
            assert_eq!(serde_json::to_value(on_expiry).unwrap(), on_expiry.as_str());
        }
    }

    /// A timeout out of a preset's range names the preset; a custom one is
    /// "a custom middlebox" (found in review: "out of range for the custom").
    #[test]
    fn an_out_of_range_timeout_names_what_it_is_out_of_range_for() {
        let mut custom = Preset::Custom.settings(1);
        custom.idle_timeout_ms = 0;
        let error = custom.validate().expect_err("0 ms is out of range");
        assert!(
            error
                .error
                .ends_with("is out of range for a custom middlebox"),
            "{}",
            error.error
        );
        let mut alb = Preset::Alb.settings(1);
        alb.idle_timeout_ms = 0;
        let error = alb.validate().expect_err("0 ms is out of range");
        assert!(
            error
                .error
                .ends_with(&format!("for the {}", Preset::Alb.spec().name)),
            "{}",
            error.error
        );
    }

    #[test]
    fn the_scale_divides_the_timeout_and_is_said_in_words() {
        let settings = Preset::AwsNat.settings(100);
        assert_eq!(settings.in_force_ms(), 3_500);
        assert!(
            settings.scale_words().contains("×100"),
            "{}",
            settings.scale_words()
        );
        assert!(settings.scale_words().contains("350 s become 3.5 s"));
        assert!(
            Preset::AwsNat
                .settings(1)
                .scale_words()
                .starts_with("real time")
        );
        assert_eq!(human_ms(240_000), "4 min");
        assert_eq!(human_ms(60_000), "60 s");
        assert_eq!(human_ms(1_500), "1.5 s");
        assert_eq!(human_ms(500), "500 ms");
        assert_eq!(human_us(3_500_000), "3.5 s");
        assert_eq!(human_us(1_234_567), "1.235 s");
        assert_eq!(human_us(1_000_400), "1 s");
        assert_eq!(human_us(999_999), "999.999 ms");
        assert_eq!(human_us(2_500), "2.5 ms");
        assert_eq!(human_us(0), "0 ms");
    }

    #[test]
    fn patches_follow_the_preset_and_refuse_what_the_provider_does_not_offer() {
        let nat = Preset::AwsNat.settings(100);
        let azure: MiddleboxPatch =
            serde_json::from_str(r#"{"preset": "azure_lb", "on_expiry": "rst_both"}"#).unwrap();
        let next = nat.patched(&azure).unwrap();
        assert_eq!(next.idle_timeout_ms, 240_000);
        assert_eq!(next.on_expiry, OnExpiry::RstBoth);
        assert_eq!(next.scale, 100, "absent fields stay");
        let custom: MiddleboxPatch =
            serde_json::from_str(r#"{"preset": "custom", "idle_timeout_ms": 2500, "scale": 1}"#)
                .unwrap();
        let next = nat.patched(&custom).unwrap();
        assert_eq!(
            (next.idle_timeout_ms, next.on_expiry),
            (2_500, OnExpiry::Rst)
        );
        for (bad, words) in [
            (r#"{"idle_timeout_ms": 60000}"#, "fixed at 350 s"),
            (
                r#"{"preset": "aws_nlb", "idle_timeout_ms": 1000}"#,
                "out of range",
            ),
            (r#"{"on_expiry": "silent"}"#, "does not offer"),
            (r#"{"probes_refresh": false}"#, "probes do refresh"),
            (r#"{"scale": 0}"#, "out of range"),
            (r#"{"scale": 1001}"#, "out of range"),
            (
                r#"{"preset": "custom", "idle_timeout_ms": 1000, "scale": 100}"#,
                "floor",
            ),
        ] {
            let patch: MiddleboxPatch = serde_json::from_str(bad).unwrap();
            let error = nat.patched(&patch).unwrap_err();
            assert!(error.error.contains(words), "{bad}: {error:?}");
            assert!(!error.hint.is_empty());
        }
        for malformed in [
            r#"{"timeout": 5}"#,
            r#"{"preset": "aws-nat"}"#,
            r#"{"scale": null}"#,
            r#"{"scale": -1}"#,
        ] {
            assert!(
                serde_json::from_str::<MiddleboxPatch>(malformed).is_err(),
                "{malformed}"
            );
        }
    }
}
