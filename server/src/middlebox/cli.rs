//! `keepalive-lab middlebox`: the middlebox in front of a TCP service on
//! this machine.
//!
//! ```text
//! keepalive-lab middlebox --listen 127.0.0.1:9000 --upstream 127.0.0.1:8080 --preset aws-nat --scale 100
//! ```
//!
//! prints one JSON line per event to stdout: first a `middlebox_started` line
//! that says the settings, the time scale in words and whether keep-alive
//! probes can be seen here, then one `middlebox` event per line (the lab's
//! [`protocol::ServerEvent::Middlebox`]), until Ctrl-C, SIGTERM or the end of
//! `--duration` (default 1 h, at most 24 h; then each open mapping's `closed`
//! line, and exit code 0). Bad flags get a message on stderr and exit code 2,
//! and so do a `--listen` or `--upstream` that is not a loopback address once
//! resolved (the house rule for fault tools: loopback only, bounded in count
//! and time, stops by itself; a non-loopback `--listen` would make it an open
//! relay) and the two resolving to the same socket; a port that cannot be
//! bound, or output that cannot be written, exit code 1 (said on stderr at
//! once). Nothing here panics when stdout or stderr fail (`--help >/dev/full`
//! exits 1).

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use protocol::{
    CUSTOM_MAX_MS, CUSTOM_MIN_MS, IN_FORCE_MIN_MS, MiddleboxPatch, MiddleboxSettings, Preset,
    SCALE_RANGE, ServerEvent, human_ms,
};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;

use super::preset::{cli_name, on_expiry_cli_name, parse_on_expiry, parse_preset};
use super::{Limits, Middlebox};

/// The usage line, also printed with every error.
pub const USAGE: &str = "usage: keepalive-lab middlebox --listen ADDR:PORT --upstream ADDR:PORT \
[--preset aws-nat|aws-nlb|azure-lb|gcp-nat|alb|custom] [--idle-timeout DURATION] \
[--on-expiry rst|rst-either|rst-both|silent|fin] [--scale N] [--max-mappings N] \
[--duration DURATION]";

/// `--duration` when not given: a middlebox left running stops by itself
/// (the house rule for fault tools: bounded in time).
pub const DEFAULT_DURATION_MS: u64 = 3_600_000;
/// Longest `--duration`: a day, so a forgotten middlebox is gone by the
/// next one.
pub const MAX_DURATION_FLAG_MS: u64 = 24 * 3_600_000;

/// What the standalone middlebox was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Where to listen (`127.0.0.1:9000`, `localhost:9000`).
    pub listen: String,
    /// The service to proxy (`127.0.0.1:8080`).
    pub upstream: String,
    /// The middlebox's settings, validated.
    pub settings: MiddleboxSettings,
    /// Mappings open at once.
    pub max_mappings: usize,
    /// How long it runs before it stops by itself, milliseconds
    /// (`--duration`; [`DEFAULT_DURATION_MS`] when not given).
    pub duration_ms: u64,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// `--help`.
    Help,
    /// `--version`.
    Version,
    /// Run the middlebox.
    Run(Options),
}

pub use crate::cli::Usage;
use crate::cli::{Arg, Failure, Flags, Spec, usage};

/// The flags, with what each takes.
const FLAGS: &[Spec] = &[
    Spec::value(
        "--listen",
        "ADDR:PORT, where clients connect",
        "127.0.0.1:9000",
    ),
    Spec::value(
        "--upstream",
        "ADDR:PORT, the service behind",
        "127.0.0.1:8080",
    ),
    Spec::value("--preset", "a preset", "aws-nat"),
    Spec::value("--idle-timeout", "a duration", "350s"),
    Spec::value(
        "--on-expiry",
        "rst, rst-either, rst-both, silent or fin",
        "rst",
    ),
    Spec::value("--scale", "a whole number", "100"),
    Spec::value("--max-mappings", "a number", "1024"),
    Spec::value("--duration", "a duration, at most 24h", "1h"),
];

/// A mistake as the tool prints it: what, the hint, then the usage line.
pub fn explain(mistake: &Usage) -> String {
    mistake.explain("keepalive-lab middlebox", USAGE)
}

/// The help text: usage, the presets with their numbers and sources, and
/// what the scale does.
pub fn help() -> String {
    let mut text = format!(
        "{USAGE}\n\nProxies TCP from --listen to --upstream and forgets idle connections the way a NAT gateway or load balancer does, printing one JSON line per event.\n\nPresets (the providers' documentation):\n"
    );
    for preset in Preset::ALL {
        let spec = preset.spec();
        text.push_str(&format!(
            "  {:<9} {}: {}\n",
            cli_name(preset),
            spec.name,
            spec.summary
        ));
        if !spec.source.is_empty() {
            text.push_str(&format!("            {}\n", spec.source));
        }
    }
    text.push_str(
        "\nDurations: 350s, 1500ms, 4m, 1h (a unit is required). Without --preset, --idle-timeout \
         makes a custom middlebox (on expiry rst unless --on-expiry says otherwise); with neither, \
         an AWS NAT gateway.\n--scale N divides every timeout by N (100: 350 s become 3.5 s); keep-alive \
         probe intervals are the peers' own and are not scaled.\n--max-mappings caps connections \
         held at once (default 1024; past it a client gets an RST).\n--duration stops it by itself after \
         that long (default 1h, at most 24h), as Ctrl-C does.\n--listen and --upstream must be \
         loopback addresses (127.0.0.1, [::1], localhost): the middlebox reproduces a fault on this \
         machine, and a non-loopback --listen would make it an open relay.\n",
    );
    text
}

/// Longest duration [`parse_duration`] reads, 1000 h: past every flag's own
/// range (the longest is `--duration`, 24 h), so that a number too large
/// for any of them is told "too long", not something about milliseconds.
const MAX_DURATION_MS: u64 = 1_000 * 3_600_000;

/// Parses `350s`, `1500ms`, `4m`, `1h`, `2.5s` into milliseconds.
///
/// The number is read as integers (its whole part and its decimal digits),
/// never as a float: `1.001s` is exactly 1001 ms and `4.1m` exactly
/// 246 000 ms, where `1.001 × 1000.0` is not a whole number in binary
/// floating point (review L4).
pub fn parse_duration(text: &str) -> Result<u64, Usage> {
    let hint = "write a number and a unit: 350s, 1500ms, 4m, 1h";
    let text = text.trim();
    if text.starts_with('-') {
        return Err(usage(
            format!("`{text}`: a duration cannot be negative"),
            hint,
        ));
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| usage(format!("the duration `{text}` has no unit"), hint))?;
    let (number, unit) = text.split_at(split);
    let per_unit: u64 = match unit.trim() {
        "ms" => 1,
        "s" | "sec" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        other => {
            return Err(usage(
                format!("`{other}` in `{text}` is not a unit of time"),
                hint,
            ));
        }
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    // `2.5`, `.5` and `5.` as before; at least one digit, one point at most.
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) || whole.len() + fraction.len() == 0 {
        return Err(usage(format!("`{text}` is not a duration"), hint));
    }
    let whole = if whole.is_empty() { "0" } else { whole };
    let too_long = || {
        usage(
            format!(
                "`{text}` is too long (at most {}h)",
                MAX_DURATION_MS / 3_600_000
            ),
            hint,
        )
    };
    // Whole part: saturates past u64 (then refused as too long).
    let whole_ms = whole
        .parse::<u64>()
        .ok()
        .and_then(|w| w.checked_mul(per_unit))
        .ok_or_else(too_long)?;
    // Fraction: `per_unit` has at most 7 digits, so only the first 7
    // decimals can contribute; any non-zero digit past what makes whole
    // milliseconds is refused below.
    let fraction = fraction.trim_end_matches('0');
    let mut scale = 1u64;
    let mut numerator = 0u64;
    for b in fraction.bytes() {
        if scale >= 10_000_000 {
            return Err(usage(
                format!("`{text}` is not a whole number of milliseconds"),
                hint,
            ));
        }
        numerator = numerator * 10 + u64::from(b - b'0');
        scale *= 10;
    }
    // `numerator / scale` of a unit, in ms: exact or refused.
    let fraction_ms = numerator * per_unit;
    if !fraction_ms.is_multiple_of(scale) {
        return Err(usage(
            format!("`{text}` is not a whole number of milliseconds"),
            hint,
        ));
    }
    let ms = whole_ms
        .checked_add(fraction_ms / scale)
        .ok_or_else(too_long)?;
    if ms > MAX_DURATION_MS {
        return Err(too_long());
    }
    Ok(ms)
}

/// A duration as the command line writes it: `350s`, `1500ms`.
fn flag_duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `--scale`: a whole number in [`SCALE_RANGE`].
fn parse_scale(value: &str) -> Result<u32, Usage> {
    let (low, high) = (SCALE_RANGE.start(), SCALE_RANGE.end());
    let hint =
        format!("give --scale {low} (real time) to {high}, e.g. --scale 100 (350 s become 3.5 s)");
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(usage(
            format!("--scale `{value}` is not a whole number"),
            hint,
        ));
    }
    match value.parse::<u32>() {
        Ok(scale) if SCALE_RANGE.contains(&scale) => Ok(scale),
        _ => Err(usage(format!("--scale {value} is out of range"), hint)),
    }
}

/// `--duration`: a duration from 1 ms to [`MAX_DURATION_FLAG_MS`], read like
/// the middlebox's other durations. Bounded because a fault tool must stop
/// by itself (the house rule); a day is long enough for any one session.
fn parse_run_duration(value: &str) -> Result<u64, Usage> {
    let ms = parse_duration(value)?;
    if ms == 0 || ms > MAX_DURATION_FLAG_MS {
        return Err(usage(
            format!("--duration {} is out of range", value.trim()),
            "give --duration 1ms to 24h, e.g. --duration 1h (the default)",
        ));
    }
    Ok(ms)
}

/// `--idle-timeout` against the preset's documented range, said in flags;
/// `given` is the value as written, echoed back as such.
fn check_idle_timeout(preset: Preset, ms: u64, given: &str) -> Result<(), Usage> {
    let spec = preset.spec();
    let (low, high) = spec.idle_timeout_range_ms;
    if (low..=high).contains(&ms) {
        return Ok(());
    }
    let custom = format!(
        "--preset custom takes any from {} to {}",
        flag_duration(CUSTOM_MIN_MS),
        flag_duration(CUSTOM_MAX_MS)
    );
    let got = if given.is_empty() {
        flag_duration(ms)
    } else {
        given.to_owned()
    };
    Err(if preset == Preset::Custom {
        usage(
            format!("--idle-timeout {got} is out of range for a custom middlebox"),
            format!(
                "give --idle-timeout {} to {}",
                flag_duration(low),
                flag_duration(high)
            ),
        )
    } else if low == high {
        usage(
            format!(
                "the {}'s idle timeout is fixed at {} (got --idle-timeout {got})",
                spec.name,
                human_ms(low)
            ),
            format!("leave --idle-timeout out; {custom}"),
        )
    } else {
        usage(
            format!("--idle-timeout {got} is out of range for the {}", spec.name),
            format!(
                "the {} takes --idle-timeout {} to {} (its documented range); {custom}",
                spec.name,
                flag_duration(low),
                flag_duration(high)
            ),
        )
    })
}

/// Checks that `text` looks like `HOST:PORT`. Port 0 is refused for
/// `--upstream`: nothing listens there, so every client would be refused
/// (review N4); for `--listen` it asks for any free port.
fn address(flag: &str, text: &str) -> Result<String, Usage> {
    let port = text
        .rsplit_once(':')
        .filter(|(host, _)| !host.is_empty())
        .and_then(|(_, port)| crate::cli::whole::<u16>(port));
    if port == Some(0) && flag == "--upstream" {
        return Err(usage(
            format!("--upstream `{text}` has port 0, where no service listens"),
            "give the service's port, e.g. --upstream 127.0.0.1:8080",
        ));
    }
    if port.is_some() {
        Ok(text.to_owned())
    } else {
        Err(usage(
            format!("{flag} `{text}` is not ADDR:PORT"),
            format!("e.g. {flag} 127.0.0.1:9000 (or [::1]:9000, localhost:9000)"),
        ))
    }
}

/// Parses the arguments after `middlebox` (a leading `middlebox` is skipped).
pub fn parse_args(args: &[String]) -> Result<Parsed, Usage> {
    let args = match args.first() {
        Some(first) if first == "middlebox" => &args[1..],
        _ => args,
    };
    let mut listen = None;
    let mut upstream = None;
    let mut preset = None;
    let mut idle_timeout_ms = None;
    // As the user wrote it, to echo it back (`0ms` is not "0s").
    let mut idle_timeout_text: Option<String> = None;
    let mut on_expiry = None;
    let mut scale = None;
    let mut max_mappings = None;
    let mut duration_ms = None;
    for arg in Flags::new(args, FLAGS) {
        let (flag, value) = match arg? {
            Arg::Help => return Ok(Parsed::Help),
            Arg::Version => return Ok(Parsed::Version),
            Arg::Flag(flag, value) => (flag, value.unwrap_or_default()),
            Arg::Positional(arg) => {
                return Err(usage(
                    format!("unexpected argument `{arg}`"),
                    "every setting is a flag, e.g. --listen 127.0.0.1:9000",
                ));
            }
        };
        match flag {
            "--listen" => listen = Some(address(flag, value)?),
            "--upstream" => upstream = Some(address(flag, value)?),
            "--preset" => {
                preset = Some(parse_preset(value).ok_or_else(|| {
                    usage(
                        format!("unknown preset `{value}`"),
                        "presets: aws-nat, aws-nlb, azure-lb, gcp-nat, alb, custom",
                    )
                })?);
            }
            "--idle-timeout" => {
                idle_timeout_ms = Some(parse_duration(value)?);
                idle_timeout_text = Some(value.trim().to_owned());
            }
            "--on-expiry" => {
                on_expiry = Some(parse_on_expiry(value).ok_or_else(|| {
                    usage(
                        format!("unknown --on-expiry `{value}`"),
                        "rst (AWS NAT), rst-either (AWS NLB), rst-both (Azure with TCP reset), silent, fin",
                    )
                })?);
            }
            "--scale" => scale = Some(parse_scale(value)?),
            "--duration" => duration_ms = Some(parse_run_duration(value)?),
            _ => {
                max_mappings = Some(
                    crate::cli::whole::<usize>(value)
                        .filter(|n| (1..=1_000_000).contains(n))
                        .ok_or_else(|| {
                            usage(
                                format!(
                                    "--max-mappings `{value}` is not a number from 1 to 1000000"
                                ),
                                "e.g. --max-mappings 1024",
                            )
                        })?,
                );
            }
        }
    }
    let listen = listen.ok_or_else(|| {
        usage(
            "--listen is required",
            "e.g. --listen 127.0.0.1:9000: where clients connect",
        )
    })?;
    let upstream = upstream.ok_or_else(|| {
        usage(
            "--upstream is required",
            "e.g. --upstream 127.0.0.1:8080: the service behind the middlebox",
        )
    })?;
    // An idle timeout without a preset is a custom middlebox.
    let preset = preset.unwrap_or(if idle_timeout_ms.is_some() {
        Preset::Custom
    } else {
        Preset::AwsNat
    });
    if let Some(ms) = idle_timeout_ms {
        check_idle_timeout(preset, ms, idle_timeout_text.as_deref().unwrap_or_default())?;
    }
    let base = preset.settings(1);
    let patch = MiddleboxPatch {
        preset: Some(preset),
        idle_timeout_ms,
        on_expiry,
        probes_refresh: None,
        scale,
    };
    let settings = base.patched(&patch).map_err(|body| {
        // The protocol's hints speak JSON; say it in flags.
        // Scale and idle timeout were checked above: what is left is the
        // expiry behaviour, or the floor on the scaled timeout.
        let offers = body.error.contains("does not offer");
        let hint = if offers {
            format!(
                "the {} offers --on-expiry {}; use --preset custom for any behaviour",
                preset.spec().name,
                preset
                    .spec()
                    .on_expiry_allowed
                    .iter()
                    .map(|o| on_expiry_cli_name(*o))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        } else {
            let idle_ms = idle_timeout_ms.unwrap_or(preset.spec().idle_timeout_ms);
            match idle_ms / IN_FORCE_MIN_MS {
                0 => "lengthen --idle-timeout".to_owned(),
                top => format!(
                    "lower --scale (at most {} for this timeout) or lengthen --idle-timeout",
                    top.min(u64::from(*SCALE_RANGE.end()))
                ),
            }
        };
        // The protocol's error names the JSON field (`on_expiry`); say the
        // flag the user typed instead (review N5).
        let error = match on_expiry {
            Some(asked) if offers => format!(
                "the {} does not offer --on-expiry {}",
                preset.spec().name,
                on_expiry_cli_name(asked)
            ),
            _ => body.error,
        };
        usage(error, hint)
    })?;
    Ok(Parsed::Run(Options {
        listen,
        upstream,
        settings,
        max_mappings: max_mappings.unwrap_or(Limits::default().max_mappings),
        duration_ms: duration_ms.unwrap_or(DEFAULT_DURATION_MS),
    }))
}

/// The first line the standalone middlebox prints.
#[derive(Debug, Serialize)]
struct Started<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    listen: String,
    /// The other addresses `--listen`'s name resolved to, each listened on
    /// with the same port.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    also_listening: Vec<String>,
    upstream: String,
    /// The other addresses `--upstream`'s name resolved to, tried in turn
    /// when `upstream` does not answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    upstream_fallbacks: Vec<String>,
    preset: &'a str,
    settings: &'a MiddleboxSettings,
    in_force_ms: u64,
    scale_words: String,
    on_expiry_words: &'static str,
    probes: &'static str,
    source: &'static str,
    max_mappings: usize,
    /// `--duration`: when it stops by itself, milliseconds after start.
    stops_after_ms: u64,
}

/// Why a run that went well ended: said on stderr when it stopped by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// `until` resolved (Ctrl-C or SIGTERM on the command line).
    Asked,
    /// `--duration` was over: it stopped by itself, as on Ctrl-C.
    DurationOver,
}

/// Resolves `HOST:PORT` to every address it names
/// ([`crate::cli::resolve_all`]), within [`crate::cli::LOOKUP_LIMIT`]. A name other than
/// `localhost`'s is refused unlooked-up ([`crate::cli::may_look_up`]).
async fn resolve(flag: &str, text: &str) -> Result<Vec<SocketAddr>, Failure> {
    if let Ok(address) = text.parse() {
        return Ok(vec![address]);
    }
    // Only an IPv6 address goes in brackets (RFC 3986 §3.2.2), closed
    // (found in review: `[::1` was told "`:` is a name", `[127.0.0.1]:0`
    // was taken).
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let Some((inside, after)) = rest.split_once(']') else {
                return Err(usage(
                    format!("{flag} {text}: unclosed `[`"),
                    format!("e.g. {flag} [::1]:9000"),
                )
                .into());
            };
            if inside.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(usage(
                    format!("{flag} {text}: `[{inside}]` is not an IPv6 address"),
                    format!(
                        "only an IPv6 address goes in brackets: e.g. {flag} [::1]:9000, or \
                         {flag} 127.0.0.1:9000"
                    ),
                )
                .into());
            }
            (inside, after.strip_prefix(':').unwrap_or(""))
        }
        None => text.rsplit_once(':').unwrap_or((text, "")),
    };
    let Some(asked) = crate::cli::looked_up_as(host) else {
        return Err(usage(
            format!("{flag} {text} is not a loopback address (`{host}` is a name, not looked up)"),
            format!(
                "the middlebox reproduces a fault on this machine only: name its sockets by \
                 address or localhost, e.g. {flag} 127.0.0.1:9000 (or [::1], localhost)"
            ),
        )
        .into());
    };
    let Some(port) = crate::cli::whole::<u16>(port) else {
        return Err(usage(
            format!("{flag} {text} has no port"),
            format!("write HOST:PORT, e.g. {flag} localhost:9000"),
        )
        .into());
    };
    Ok(crate::cli::resolve_all(&asked, port, &format!("{flag} {text}")).await?)
}

/// A socket the middlebox would listen on that is also one of its
/// upstream's, compared as sockets (`[::ffff:127.0.0.1]:P` is
/// `127.0.0.1:P`), every address of each side.
fn into_itself(listens: &[SocketAddr], upstreams: &[SocketAddr]) -> Option<SocketAddr> {
    let socket = |a: SocketAddr| (a.ip().to_canonical(), a.port());
    listens
        .iter()
        .copied()
        .find(|l| upstreams.iter().any(|u| socket(*l) == socket(*u)))
}

/// Listens on each of `addresses` (a name's), all on the port the first
/// got. An address this host cannot listen on (`::1` where IPv6 is off,
/// which `localhost` may still resolve to) is passed over while another
/// listens; any other failure is the run's. Where the port was left to the
/// system (`:0`), one free at the first address may be taken at the next:
/// then the whole is tried again, a few times.
async fn listen_on_each(addresses: &[SocketAddr]) -> io::Result<Vec<TcpListener>> {
    let mut tries = 0;
    loop {
        match listen_once(addresses).await {
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse
                    && addresses.first().is_some_and(|a| a.port() == 0)
                    && tries < 8 =>
            {
                tries += 1;
            }
            done => return done,
        }
    }
}

/// One try of [`listen_on_each`].
async fn listen_once(addresses: &[SocketAddr]) -> io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    let mut port = addresses.first().map_or(0, SocketAddr::port);
    let mut passed_over = Vec::new();
    for address in addresses {
        let address = SocketAddr::new(address.ip(), port);
        match TcpListener::bind(address).await {
            Ok(listener) => {
                port = listener.local_addr()?.port();
                listeners.push(listener);
            }
            // EAFNOSUPPORT: IPv6 switched off at boot (`ipv6.disable=1`),
            // which std leaves uncategorised.
            Err(e)
                if addresses.len() > 1
                    && (matches!(
                        e.kind(),
                        io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
                    ) || e.raw_os_error() == Some(libc::EAFNOSUPPORT)) =>
            {
                passed_over.push(format!("{address}: {e}"));
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot listen on {address}: {e}"),
                ));
            }
        }
    }
    if listeners.is_empty() {
        return Err(io::Error::other(format!(
            "cannot listen on any address: {}",
            passed_over.join("; ")
        )));
    }
    Ok(listeners)
}

/// Refuses `address` (what `flag`'s `text` resolved to) unless it is a
/// loopback address: the lab is for reproducing a fault on one machine, and
/// a non-loopback `--listen` would make the middlebox an open relay to its
/// upstream (the house rule for fault tools; review M3). An IPv4 address
/// written as IPv6 (`::ffff:127.0.0.1`) counts as what it is.
fn loopback_only(flag: &str, text: &str, address: SocketAddr) -> Result<(), Usage> {
    if address.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    let resolved = if text == address.to_string() {
        String::new()
    } else {
        format!(" (it resolves to {address})")
    };
    Err(usage(
        format!("{flag} {text} is not a loopback address{resolved}"),
        format!(
            "the middlebox reproduces a fault on this machine only, so that it never becomes an \
             open relay: give a loopback address, e.g. {flag} 127.0.0.1:{} (or [::1], localhost)",
            address.port()
        ),
    ))
}

/// Runs the middlebox for `options`, writing JSON lines to `out`, until
/// `until` resolves or `options.duration_ms` has passed (then every open
/// mapping is closed the same way, and says so in its `closed` line). If
/// `out` fails, it stops at once and returns that error.
pub async fn run<W>(
    options: Options,
    out: W,
    until: impl Future<Output = ()>,
) -> Result<Stopped, Failure>
where
    W: Write + Send + 'static,
{
    // A name (`localhost`) may resolve to several addresses: the
    // middlebox listens on each (found in review: on the first alone, a
    // `localhost` that is `::1` first left clients of 127.0.0.1 refused),
    // and each mapping connects to the first upstream that answers.
    let listens = resolve("--listen", &options.listen).await?;
    let upstreams = resolve("--upstream", &options.upstream).await?;
    for listen in &listens {
        loopback_only("--listen", &options.listen, *listen)?;
    }
    for upstream in &upstreams {
        loopback_only("--upstream", &options.upstream, *upstream)?;
    }
    let upstream = upstreams[0];
    // Each client would be proxied back into the middlebox itself, mapping
    // after mapping until the cap (review N4). Compared as the sockets they
    // are: `[::ffff:127.0.0.1]:P` is `127.0.0.1:P`; every address of each
    // side (found in review: `--listen 127.0.0.1:9000 --upstream
    // localhost:9000` where localhost is `::1` first reached the middlebox
    // through its second address).
    if let Some(listen) = into_itself(&listens, &upstreams) {
        return Err(usage(
            format!(
                "--listen {} and --upstream {} are the same socket ({listen})",
                options.listen, options.upstream
            ),
            "the middlebox would proxy into itself: give --upstream the service's own port",
        )
        .into());
    }
    let listeners = listen_on_each(&listens).await?;
    // One developer's machine: every client is this machine, so no share.
    let limits = Limits {
        max_mappings: options.max_mappings,
        max_mappings_per_client: options.max_mappings,
        ..Limits::default()
    };
    let settings = options.settings;
    let middlebox = Middlebox::standalone_to(&upstreams, settings.clone(), limits);
    let mut bound = Vec::new();
    for listener in &listeners {
        bound.push(listener.local_addr()?.to_string());
    }
    let started = Started {
        kind: "middlebox_started",
        listen: bound.remove(0),
        also_listening: bound,
        upstream: upstream.to_string(),
        upstream_fallbacks: upstreams[1..].iter().map(SocketAddr::to_string).collect(),
        preset: cli_name(settings.preset),
        settings: &settings,
        in_force_ms: settings.in_force_ms(),
        scale_words: settings.scale_words(),
        on_expiry_words: settings.on_expiry.describe(),
        probes: if Middlebox::probes_visible() {
            "keep-alive probes are seen through TCP_INFO (tcpi_segs_in)"
        } else {
            "keep-alive probes cannot be seen here (no TCP_INFO on this platform): they never refresh a mapping"
        },
        source: settings.preset.spec().source,
        max_mappings: options.max_mappings,
        stops_after_ms: options.duration_ms,
    };
    let first = serde_json::to_string(&started).map_err(io::Error::other)?;
    let mut events = middlebox.events();
    // Told when the printer fails, so that the middlebox stops at once
    // instead of proxying on with nobody told (review L7).
    let (failed, printer_failed) = tokio::sync::oneshot::channel::<()>();
    // A blocking thread writes the lines: a slow stdout never stalls the
    // proxy, it only makes this receiver lag (then `events_dropped`).
    let printer = tokio::task::spawn_blocking(move || -> io::Result<()> {
        let mut out = out;
        let mut print = move || -> io::Result<()> {
            writeln!(out, "{first}")?;
            out.flush()?;
            loop {
                let line = match events.blocking_recv() {
                    Ok(event) => serde_json::to_string(&*event).map_err(io::Error::other)?,
                    Err(RecvError::Lagged(count)) => {
                        serde_json::to_string(&ServerEvent::EventsDropped { count })
                            .map_err(io::Error::other)?
                    }
                    Err(RecvError::Closed) => return Ok(()),
                };
                writeln!(out, "{line}")?;
                out.flush()?;
            }
        };
        let printed =
            print().map_err(|e| io::Error::new(e.kind(), format!("cannot write its output: {e}")));
        if printed.is_err() {
            let _ = failed.send(());
        }
        printed
    });
    let mut serve = tokio::task::JoinSet::new();
    for listener in listeners {
        let serving = middlebox.clone();
        serve.spawn(async move { serving.serve(listener).await });
    }
    let stopped = tokio::select! {
        () = until => Stopped::Asked,
        () = tokio::time::sleep(Duration::from_millis(options.duration_ms)) => Stopped::DurationOver,
        // The printer's error is returned below.
        Ok(()) = printer_failed => Stopped::Asked,
    };
    middlebox.stop();
    while serve.join_next().await.is_some() {}
    // The last handle on the event stream: dropping it ends the printer once
    // it has written everything.
    drop(middlebox);
    printer.await.map_err(io::Error::other)??;
    Ok(stopped)
}

/// `keepalive-lab middlebox …`: `args` are the arguments after the
/// subcommand. Exit code 0 after Ctrl-C, SIGTERM or `--duration` (or
/// `--help`, `--version`), 2 for bad flags (a non-loopback address among
/// them), 1 when it cannot listen, resolve an address or write its output.
pub async fn run_cli(args: Vec<String>) -> ExitCode {
    let options = match parse_args(&args) {
        Ok(Parsed::Help) => return crate::cli::reply("keepalive-lab middlebox", &help()),
        Ok(Parsed::Version) => {
            return crate::cli::reply("keepalive-lab middlebox", &crate::cli::version());
        }
        Ok(Parsed::Run(options)) => options,
        Err(mistake) => {
            crate::say_err!("{}", explain(&mistake));
            return ExitCode::from(2);
        }
    };
    let duration_ms = options.duration_ms;
    match run(options, io::stdout(), crate::cli::shutdown_signal()).await {
        Ok(Stopped::Asked) => ExitCode::SUCCESS,
        Ok(Stopped::DurationOver) => {
            crate::say_err!(
                "keepalive-lab middlebox: stopped by itself after {} (its --duration; \
                 give a longer one, at most 24h, to keep it running)",
                human_ms(duration_ms)
            );
            ExitCode::SUCCESS
        }
        Err(Failure::Usage(mistake)) => {
            crate::say_err!("{}", explain(&mistake));
            ExitCode::from(2)
        }
        Err(Failure::Io(e)) => {
            crate::say_err!("keepalive-lab middlebox: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::OnExpiry;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    /// Brackets hold an IPv6 address and are closed; a port is digits
    /// alone (found in review: `[::1` was "a name", `[127.0.0.1]:0` and
    /// `127.0.0.1:+1` were taken).
    #[tokio::test]
    async fn a_bracket_holds_an_ipv6_address_and_a_port_is_digits() {
        for (text, words) in [
            ("[::1", "unclosed `[`"),
            ("[127.0.0.1]:0", "`[127.0.0.1]` is not an IPv6 address"),
            ("[localhost]:9000", "is not an IPv6 address"),
            ("127.0.0.1:+1", "has no port"),
            ("[::1]", "has no port"),
            ("localhost:-1", "has no port"),
        ] {
            match resolve("--listen", text).await {
                Err(Failure::Usage(mistake)) => {
                    assert!(mistake.error.contains(words), "{text}: {}", mistake.error);
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let a = |text: &str| text.parse::<SocketAddr>().expect("an address");
        assert_eq!(
            resolve("--listen", "[::1]:9000").await.expect("an address"),
            vec![a("[::1]:9000")]
        );
        assert_eq!(
            resolve("--listen", "127.0.0.1:9000")
                .await
                .expect("an address"),
            vec![a("127.0.0.1:9000")]
        );
    }

    /// Proxying into itself is found at any address of either side, not
    /// only at the first of each (`localhost` as `::1`, then 127.0.0.1).
    #[test]
    fn proxying_into_itself_is_found_at_any_address() {
        let a = |text: &str| text.parse::<SocketAddr>().expect("an address");
        let localhost = [a("[::1]:9000"), a("127.0.0.1:9000")];
        assert_eq!(
            into_itself(&[a("127.0.0.1:9000")], &localhost),
            Some(a("127.0.0.1:9000"))
        );
        assert_eq!(
            into_itself(&localhost, &[a("[::ffff:127.0.0.1]:9000")]),
            Some(a("127.0.0.1:9000"))
        );
        assert_eq!(into_itself(&localhost, &[a("127.0.0.1:9001")]), None);
    }

    /// A name's addresses are all listened on, with the port the first
    /// got (127.0.0.2 standing in for `::1`: on Linux all of 127.0.0.0/8 is
    /// loopback); an address this host has not is passed over while
    /// another listens.
    #[tokio::test]
    async fn each_address_of_a_name_is_listened_on_with_one_port() {
        let a = |text: &str| text.parse::<SocketAddr>().expect("an address");
        let listeners = listen_on_each(&[a("127.0.0.1:0"), a("127.0.0.2:0")])
            .await
            .expect("both listen");
        let bound: Vec<SocketAddr> = listeners
            .iter()
            .map(|l| l.local_addr().expect("bound"))
            .collect();
        assert_eq!(bound.len(), 2);
        assert_eq!(bound[0].port(), bound[1].port());
        assert_eq!(bound[1].ip(), a("127.0.0.2:0").ip());
        for address in &bound {
            tokio::net::TcpStream::connect(address)
                .await
                .expect("connects");
        }
        // 192.0.2.1 (TEST-NET-1) is no address of this host.
        let one = listen_on_each(&[a("192.0.2.1:0"), a("127.0.0.1:0")])
            .await
            .expect("the loopback one listens");
        assert_eq!(one.len(), 1);
        assert!(listen_on_each(&[a("192.0.2.1:0")]).await.is_err());
    }

    fn run_options(text: &str) -> Options {
        match parse_args(&args(text)) {
            Ok(Parsed::Run(options)) => options,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("350s").unwrap(), 350_000);
        assert_eq!(parse_duration("1500ms").unwrap(), 1_500);
        assert_eq!(parse_duration("4m").unwrap(), 240_000);
        assert_eq!(parse_duration("4min").unwrap(), 240_000);
        assert_eq!(parse_duration("2.5s").unwrap(), 2_500);
        assert_eq!(parse_duration("1h").unwrap(), 3_600_000);
        for bad in ["350", "s", "3x", "-1s", "1.5ms", "", "1e3s", "..s"] {
            let error = parse_duration(bad).unwrap_err();
            assert!(error.hint.contains("350s, 1500ms"), "{bad}: {error:?}");
        }
    }

    /// Review L4: decimals are exact (no float rounding), and the two
    /// misleading messages say what is wrong.
    #[test]
    fn decimal_durations_are_exact_and_mistakes_are_named() {
        for (text, ms) in [
            ("1.001s", 1_001),
            ("4.1m", 246_000),
            ("0.1s", 100),
            ("2.50s", 2_500),
            (".5s", 500),
            ("5.s", 5_000),
            ("0.0001h", 360),
            ("1.2345h", 4_444_200),
            ("1000h", 3_600_000_000),
        ] {
            assert_eq!(parse_duration(text), Ok(ms), "{text}");
        }
        for (text, words) in [
            ("99999999999h", "too long (at most 1000h)"),
            ("1000.001h", "too long (at most 1000h)"),
            ("999999999999999999999999s", "too long"),
            ("-1s", "a duration cannot be negative"),
            ("1.0005s", "not a whole number of milliseconds"),
            ("1.00000001h", "not a whole number of milliseconds"),
            ("1.2.3s", "is not a duration"),
            (".s", "is not a duration"),
        ] {
            let mistake = parse_duration(text).unwrap_err();
            assert!(mistake.error.contains(words), "{text}: {mistake:?}");
        }
    }

    /// Review M3: a fault tool stops by itself; review N4 and N5.
    #[test]
    fn duration_upstream_port_and_expiry_words() {
        let base = "--listen 127.0.0.1:0 --upstream 127.0.0.1:1";
        assert_eq!(run_options(base).duration_ms, 3_600_000, "1h by default");
        assert_eq!(
            run_options(&format!("{base} --duration 90m")).duration_ms,
            5_400_000
        );
        assert_eq!(
            run_options(&format!("{base} --duration 24h")).duration_ms,
            86_400_000
        );
        for (text, words) in [
            (
                format!("{base} --duration 24.001h"),
                "--duration 24.001h is out of range",
            ),
            (
                format!("{base} --duration 0s"),
                "--duration 0s is out of range",
            ),
            (format!("{base} --duration 5"), "no unit"),
            (
                "--listen 127.0.0.1:0 --upstream 127.0.0.1:0".to_owned(),
                "port 0",
            ),
            (
                format!("{base} --preset alb --on-expiry rst"),
                "does not offer --on-expiry rst",
            ),
            (
                format!("{base} --idle-timeout 0ms"),
                "--idle-timeout 0ms is out of range",
            ),
        ] {
            let mistake = parse_args(&args(&text)).unwrap_err();
            assert!(mistake.error.contains(words), "{text}: {mistake:?}");
            assert!(!mistake.error.contains("on_expiry"), "{text}: {mistake:?}");
            assert!(!mistake.hint.is_empty(), "{text}");
        }
    }

    #[test]
    fn presets_set_their_documented_values() {
        let base = "--listen 127.0.0.1:0 --upstream 127.0.0.1:1";
        let nat = run_options(base);
        assert_eq!(nat.settings, Preset::AwsNat.settings(1), "the default");
        let nat = run_options(&format!("middlebox {base} --preset aws-nat --scale 100"));
        assert_eq!(nat.settings.in_force_ms(), 3_500);
        assert_eq!(nat.max_mappings, 1024);
        let nlb = run_options(&format!("{base} --preset aws-nlb --idle-timeout 60s"));
        assert_eq!(
            (nlb.settings.idle_timeout_ms, nlb.settings.on_expiry),
            (60_000, OnExpiry::RstEither)
        );
        let azure = run_options(&format!("{base} --preset azure-lb --on-expiry rst-both"));
        assert_eq!(
            (azure.settings.idle_timeout_ms, azure.settings.on_expiry),
            (240_000, OnExpiry::RstBoth)
        );
        let gcp = run_options(&format!("{base} --preset=gcp-nat"));
        assert_eq!(gcp.settings.idle_timeout_ms, 1_200_000);
        let alb = run_options(&format!("{base} --preset alb --max-mappings 8"));
        assert_eq!(alb.settings.on_expiry, OnExpiry::Fin);
        assert!(!alb.settings.probes_refresh);
        assert_eq!(alb.max_mappings, 8);
        let custom = run_options(&format!("{base} --idle-timeout 1500ms --on-expiry silent"));
        assert_eq!(custom.settings.preset, Preset::Custom);
        assert_eq!(
            (custom.settings.idle_timeout_ms, custom.settings.on_expiry),
            (1_500, OnExpiry::Silent)
        );
        assert_eq!(parse_args(&args("--help")), Ok(Parsed::Help));
        assert_eq!(parse_args(&args("--version")), Ok(Parsed::Version));
        assert!(help().contains("aws-nat") && help().contains("https://"));
    }

    #[test]
    fn bad_flags_say_what_is_wrong() {
        let base = "--listen 127.0.0.1:0 --upstream 127.0.0.1:1";
        for (text, words) in [
            ("--upstream 127.0.0.1:1", "--listen is required"),
            ("--listen 127.0.0.1:0", "--upstream is required"),
            (&format!("{base} --bogus 1"), "unknown flag `--bogus`"),
            (&format!("{base} --preset aws"), "unknown preset"),
            (
                &format!("{base} --preset aws-nat --idle-timeout 60s"),
                "fixed at 350 s",
            ),
            (
                &format!("{base} --preset aws-nlb --idle-timeout 10s"),
                "out of range",
            ),
            (
                &format!("{base} --preset aws-nat --on-expiry silent"),
                "does not offer",
            ),
            (&format!("{base} --on-expiry never"), "unknown --on-expiry"),
            (&format!("{base} --scale 0"), "out of range"),
            (&format!("{base} --scale x"), "not a whole number"),
            (&format!("{base} --idle-timeout 5"), "no unit"),
            (&format!("{base} --scale"), "needs a value"),
            (&format!("{base} --scale 2 --scale 3"), "twice"),
            (&format!("{base} --max-mappings 0"), "--max-mappings"),
            ("--listen nowhere --upstream 127.0.0.1:1", "not ADDR:PORT"),
            (&format!("{base} stray"), "unexpected argument"),
        ] {
            let error = parse_args(&args(text)).unwrap_err();
            assert!(error.error.contains(words), "{text}: {error:?}");
            assert!(!error.hint.is_empty());
            assert!(explain(&error).contains("usage: keepalive-lab middlebox"));
        }
    }

    #[test]
    fn range_mistakes_state_the_range_and_the_flag_to_change() {
        let base = "--listen 127.0.0.1:0 --upstream 127.0.0.1:1";
        for (flags, error, hint) in [
            (
                "--idle-timeout 1s --scale 1000",
                "under the middlebox's 50 ms floor",
                "lower --scale (at most 20 for this timeout) or lengthen --idle-timeout",
            ),
            (
                "--idle-timeout 0s",
                "--idle-timeout 0s is out of range for a custom middlebox",
                "give --idle-timeout 100ms to 7200s",
            ),
            (
                "--preset custom --idle-timeout 3h",
                "--idle-timeout 3h is out of range for a custom middlebox",
                "give --idle-timeout 100ms to 7200s",
            ),
            (
                "--preset aws-nlb --idle-timeout 10s",
                "--idle-timeout 10s is out of range for the AWS Network Load Balancer",
                "takes --idle-timeout 60s to 6000s",
            ),
            (
                "--preset aws-nat --idle-timeout 60s",
                "fixed at 350 s (got --idle-timeout 60s)",
                "leave --idle-timeout out; --preset custom takes any from 100ms to 7200s",
            ),
            (
                "--scale 99999999999",
                "--scale 99999999999 is out of range",
                "give --scale 1 (real time) to 1000",
            ),
            (
                "--scale 1001",
                "--scale 1001 is out of range",
                "give --scale 1 (real time) to 1000",
            ),
            (
                "--scale -5",
                "--scale `-5` is not a whole number",
                "give --scale 1 (real time) to 1000",
            ),
        ] {
            let text = format!("{base} {flags}");
            let mistake = parse_args(&args(&text)).unwrap_err();
            assert!(mistake.error.contains(error), "{flags}: {mistake:?}");
            assert!(mistake.hint.contains(hint), "{flags}: {mistake:?}");
            // Not the JSON API's words, and not the wrong remedy.
            for wrong in ["idle_timeout_ms", "send ", "{", "use --preset custom"] {
                assert!(
                    !mistake.error.contains(wrong) && !mistake.hint.contains(wrong),
                    "{flags}: {mistake:?}"
                );
            }
        }
    }
}
