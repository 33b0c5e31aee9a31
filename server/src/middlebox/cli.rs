//! `keepalive-lab middlebox`: the middlebox in front of any TCP service.
//!
//! ```text
//! keepalive-lab middlebox --listen 127.0.0.1:9000 --upstream 127.0.0.1:8080 --preset aws-nat --scale 100
//! ```
//!
//! prints one JSON line per event to stdout: first a `middlebox_started` line
//! that says the settings, the time scale in words and whether keep-alive
//! probes can be seen here, then one `middlebox` event per line (the lab's
//! [`protocol::ServerEvent::Middlebox`]), until Ctrl-C or SIGTERM (then each
//! open mapping's `closed` line, and exit code 0). Bad flags get a
//! message on stderr and exit code 2; a port that cannot be bound, exit code 1.

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

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
[--on-expiry rst|rst-either|rst-both|silent|fin] [--scale N] [--max-mappings N]";

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
use crate::cli::{Arg, Flags, Spec, usage};

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
         held at once (default 1024; past it a client gets an RST).\n",
    );
    text
}

/// Parses `350s`, `1500ms`, `4m`, `1h`, `2.5s` into milliseconds.
pub fn parse_duration(text: &str) -> Result<u64, Usage> {
    let hint = "write a number and a unit: 350s, 1500ms, 4m, 1h";
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| usage(format!("the duration `{text}` has no unit"), hint))?;
    let (number, unit) = text.split_at(split);
    let per_unit: f64 = match unit.trim() {
        "ms" => 1.0,
        "s" | "sec" => 1_000.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        other => {
            return Err(usage(
                format!("`{other}` in `{text}` is not a unit of time"),
                hint,
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| usage(format!("`{text}` is not a duration"), hint))?;
    let ms = value * per_unit;
    if !ms.is_finite() || !(0.0..=1e15).contains(&ms) || ms.fract() != 0.0 {
        return Err(usage(
            format!("`{text}` is not a whole number of milliseconds"),
            hint,
        ));
    }
    Ok(ms as u64)
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

/// `--idle-timeout` against the preset's documented range, said in flags.
fn check_idle_timeout(preset: Preset, ms: u64) -> Result<(), Usage> {
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
    let got = flag_duration(ms);
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

/// Checks that `text` looks like `HOST:PORT`.
fn address(flag: &str, text: &str) -> Result<String, Usage> {
    let ok = text
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if ok {
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
    let mut on_expiry = None;
    let mut scale = None;
    let mut max_mappings = None;
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
            "--idle-timeout" => idle_timeout_ms = Some(parse_duration(value)?),
            "--on-expiry" => {
                on_expiry = Some(parse_on_expiry(value).ok_or_else(|| {
                    usage(
                        format!("unknown --on-expiry `{value}`"),
                        "rst (AWS NAT), rst-either (AWS NLB), rst-both (Azure with TCP reset), silent, fin",
                    )
                })?);
            }
            "--scale" => scale = Some(parse_scale(value)?),
            _ => {
                max_mappings = Some(
                    value
                        .parse::<usize>()
                        .ok()
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
        check_idle_timeout(preset, ms)?;
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
        let hint = if body.error.contains("does not offer") {
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
        usage(body.error, hint)
    })?;
    Ok(Parsed::Run(Options {
        listen,
        upstream,
        settings,
        max_mappings: max_mappings.unwrap_or(Limits::default().max_mappings),
    }))
}

/// The first line the standalone middlebox prints.
#[derive(Debug, Serialize)]
struct Started<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    listen: String,
    upstream: String,
    preset: &'a str,
    settings: &'a MiddleboxSettings,
    in_force_ms: u64,
    scale_words: String,
    on_expiry_words: &'static str,
    probes: &'static str,
    source: &'static str,
    max_mappings: usize,
}

/// Resolves `HOST:PORT` (the first address).
async fn resolve(flag: &str, text: &str) -> io::Result<SocketAddr> {
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    tokio::net::lookup_host(text)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("{flag} {text}: {e}")))?
        .next()
        .ok_or_else(|| io::Error::other(format!("{flag} {text}: no address")))
}

/// Runs the middlebox for `options`, writing JSON lines to `out`, until
/// `until` resolves.
pub async fn run<W>(options: Options, out: W, until: impl Future<Output = ()>) -> io::Result<()>
where
    W: Write + Send + 'static,
{
    let listen = resolve("--listen", &options.listen).await?;
    let upstream = resolve("--upstream", &options.upstream).await?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
    // One developer's machine: every client is this machine, so no share.
    let limits = Limits {
        max_mappings: options.max_mappings,
        max_mappings_per_client: options.max_mappings,
        ..Limits::default()
    };
    let settings = options.settings;
    let middlebox = Middlebox::standalone(upstream, settings.clone(), limits);
    let started = Started {
        kind: "middlebox_started",
        listen: listener.local_addr()?.to_string(),
        upstream: upstream.to_string(),
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
    };
    let first = serde_json::to_string(&started).map_err(io::Error::other)?;
    let mut events = middlebox.events();
    // A blocking thread writes the lines: a slow stdout never stalls the
    // proxy, it only makes this receiver lag (then `events_dropped`).
    let printer = tokio::task::spawn_blocking(move || -> io::Result<()> {
        let mut out = out;
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
    });
    let serving = middlebox.clone();
    let serve = tokio::spawn(async move { serving.serve(listener).await });
    until.await;
    middlebox.stop();
    let _ = serve.await;
    // The last handle on the event stream: dropping it ends the printer once
    // it has written everything.
    drop(middlebox);
    printer.await.map_err(io::Error::other)?
}

/// `keepalive-lab middlebox …`: `args` are the arguments after the
/// subcommand. Exit code 0 after Ctrl-C or SIGTERM (or `--help`, `--version`), 2 for bad flags, 1
/// when it cannot listen or resolve an address.
pub async fn run_cli(args: Vec<String>) -> ExitCode {
    let options = match parse_args(&args) {
        Ok(Parsed::Help) => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("{}", crate::cli::version());
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(options)) => options,
        Err(mistake) => {
            eprintln!("{}", explain(&mistake));
            return ExitCode::from(2);
        }
    };
    match run(options, io::stdout(), crate::cli::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keepalive-lab middlebox: {e}");
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
                "--idle-timeout 10800s is out of range for a custom middlebox",
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
