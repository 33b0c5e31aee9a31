//! `keepalive-lab agent URL …`: the Node-style agent against an HTTP/1.1
//! server on this machine, one JSON line per event on stdout.
//!
//! ```text
//! keepalive-lab agent http://127.0.0.1:8080/api/fast --max-sockets 20 --every 3000 --count 5
//! ```
//!
//! Each line is an [`AgentEvent`] with `t_ms` (milliseconds since the run
//! started) added, its keys in alphabetical order at every level (so `t_ms`
//! is not first; read lines as JSON objects): the run's `started` line (options, the `Connection`
//! header its requests carry), then per request `queued` (with its
//! `Connection` header), `sent` (socket; `reused` as Node's
//! `request.reusedSocket`; `socket_requests`), `response`
//! (status, `Connection` and `Keep-Alive`), `done`, `timeout`, `error`,
//! `aborted`; per socket `socket`, `connect`, `keepalive`, `free` (pooled,
//! handed to a waiting request, or destroyed), `timeout`, `end`, `error`,
//! `close` (with `had_error` and why); and `finished`. Bad flags get a
//! message on stderr and exit code 2 (never a panic), and so does a URL whose
//! host is a name other than `localhost` (refused before it is looked up) or
//! an address that is not loopback (the house rule for load tools: loopback
//! only, bounded in count and time); `localhost` that cannot be resolved,
//! 1; output that cannot be written, 1, said on stderr at once and the run
//! stopped; a finished run (whatever its requests met), 0.
//! Ctrl-C or SIGTERM ends the run early: every socket is destroyed and the
//! `finished` line says `stopped` (exit code 0). Nothing here panics when
//! stdout or stderr fail (`--help >/dev/full` exits 1).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::{
    AgentEvent, AgentOptions, FinishReason, MAX_KEEP_ALIVE_MSECS, MAX_TIMEOUT_MS, Scheduling,
};

use super::engine::{Agent, AgentConfig, Destination, EventSink};
use super::run::{Plan, run as run_plan};

/// The usage line, also printed with every error.
pub const USAGE: &str = "usage: keepalive-lab agent URL [--keep-alive] [--keep-alive-msecs N] \
[--max-sockets N|Infinity] [--max-total-sockets N|Infinity] [--max-free-sockets N] \
[--scheduling lifo|fifo] [--timeout MS] [--request-timeout MS] [--every MS] [--count N] \
[--keep-alive-timeout-buffer MS] [--linger MS] [--method GET|HEAD] [--connection VALUE]";

/// Most requests in one run.
pub const MAX_COUNT: u32 = 10_000;
/// Longest `--every`.
pub const MAX_EVERY_MS: u64 = 60_000;
/// Longest planned run (`every × (count − 1) + linger`).
pub const MAX_PLANNED_MS: u64 = 600_000;
/// A run ends after this long whatever is left (responses still coming).
pub const MAX_DURATION: Duration = Duration::from_secs(900);
/// Sockets open at once, whatever `--max-sockets` says.
pub const SOCKET_CEILING: usize = 256;
/// Longest connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The URL as given.
    pub url: String,
    /// Host (as written, for `Host`) and port.
    pub host: String,
    /// The port.
    pub port: u16,
    /// Path and query.
    pub path: String,
    /// The agent's options, validated.
    pub agent: AgentOptions,
    /// `GET` or `HEAD`.
    pub method: String,
    /// A `Connection` header the requests set themselves.
    pub connection: Option<String>,
    /// Milliseconds between requests.
    pub every_ms: u64,
    /// How many requests.
    pub count: u32,
    /// Milliseconds to keep the agent after the last response.
    pub linger_ms: u64,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// `--help`.
    Help,
    /// `--version`.
    Version,
    /// Run.
    Run(Box<Options>),
}

pub use crate::cli::Usage;
use crate::cli::{Arg, Failure, Flags, Spec, usage};

/// The flags, with what each takes (Node's option names, in kebab case).
const FLAGS: &[Spec] = &[
    Spec::switch("--keep-alive"),
    Spec::value("--keep-alive-msecs", "milliseconds", "1000"),
    Spec::value("--max-sockets", "a number of sockets or Infinity", "10"),
    Spec::value(
        "--max-total-sockets",
        "a number of sockets or Infinity",
        "10",
    ),
    Spec::value("--max-free-sockets", "a number of sockets", "10"),
    Spec::value("--scheduling", "lifo or fifo", "lifo"),
    Spec::value("--timeout", "milliseconds", "1000"),
    Spec::value("--request-timeout", "milliseconds", "1000"),
    Spec::value("--keep-alive-timeout-buffer", "milliseconds", "1000"),
    Spec::value("--every", "milliseconds", "1000"),
    Spec::value("--count", "a number of requests", "10"),
    Spec::value("--linger", "milliseconds", "1000"),
    Spec::value("--method", "GET or HEAD", "GET"),
    Spec::value("--connection", "a header value", "close"),
];

/// A mistake as the tool prints it: what, the hint, then the usage line.
pub fn explain(mistake: &Usage) -> String {
    mistake.explain("keepalive-lab agent", USAGE)
}

/// The `--help` text.
pub fn help() -> String {
    format!(
        "{USAGE}\n\n\
Sends COUNT requests to URL (http:// only), one every EVERY ms, through a\n\
Node.js-style http.Agent, and prints one JSON line per event.\n\n\
  --keep-alive                 keep sockets in a free pool (Node's keepAlive; default off)\n\
  --keep-alive-msecs N         TCP keep-alive initial delay, ms (default 1000; whole\n\
                               seconds, rounded down; under 1000 leaves the system default)\n\
  --max-sockets N|Infinity     sockets per host:port (default Infinity; N 1 to {SOCKET_CEILING})\n\
  --max-total-sockets N|Infinity  sockets in total (default Infinity; N 1 to {SOCKET_CEILING})\n\
  --max-free-sockets N         free sockets kept per host:port (default 256)\n\
  --scheduling lifo|fifo       which free socket first (default lifo)\n\
  --timeout MS                 socket idle timeout (Node's agent timeout; default none)\n\
  --request-timeout MS         abort a request idle this long (axios' timeout)\n\
  --keep-alive-timeout-buffer MS  subtracted from a server's Keep-Alive: timeout (default 1000)\n\
  --every MS                   between requests (default 1000; 0: all at once; at most {MAX_EVERY_MS})\n\
  --count N                    requests (default 1, at most {MAX_COUNT})\n\
  --linger MS                  keep the agent after the last response (default 0)\n\
  --method GET|HEAD            (default GET)\n\
  --connection VALUE           a Connection header the requests set themselves\n\n\
The lab's bounds, where Node has none: at most {SOCKET_CEILING} sockets open at once, even\n\
with Infinity (past it requests wait); a run may plan at most {planned} s (every x (count - 1)\n\
+ linger) and ends after {longest} s whatever is left.\n\n\
The Connection header is keep-alive unless --keep-alive is off and --max-sockets is\n\
Infinity (then close); with keep-alive off and a finite --max-sockets it says keep-alive\n\
and the socket is still destroyed once its response has ended, unless a request is\n\
waiting for it (that request takes it, as Node's agent does).\n",
        planned = MAX_PLANNED_MS / 1000,
        longest = MAX_DURATION.as_secs(),
    )
}

/// `flag`'s example value from [`FLAGS`]: a hint must suggest a value the
/// flag accepts (review L5: every hint said 1000, which `--max-sockets`
/// refuses).
fn example(flag: &str) -> &'static str {
    FLAGS
        .iter()
        .find(|spec| spec.name == flag)
        .map_or("", |spec| spec.example)
}

fn number<T: std::str::FromStr>(flag: &str, value: &str, what: &str) -> Result<T, Usage> {
    crate::cli::whole(value).ok_or_else(|| {
        usage(
            format!("{flag} takes {what}, got `{value}`"),
            format!("e.g. {flag} {}", example(flag)),
        )
    })
}

fn sockets(flag: &str, value: &str) -> Result<Option<u32>, Usage> {
    if value.eq_ignore_ascii_case("infinity") {
        return Ok(None);
    }
    let n: u32 = crate::cli::whole(value).ok_or_else(|| {
        usage(
            format!("{flag} takes a number of sockets or Infinity, got `{value}`"),
            format!("e.g. {flag} {} or {flag} Infinity", example(flag)),
        )
    })?;
    if n == 0 || n as usize > SOCKET_CEILING {
        return Err(usage(
            format!("{flag} {n} is out of range"),
            format!("give 1 to {SOCKET_CEILING}, or Infinity"),
        ));
    }
    Ok(Some(n))
}

/// `url` with its scheme `scheme` (`http://`) taken off, the scheme
/// matched without regard to case, as URLs' schemes are (RFC 3986 §3.1).
fn strip_scheme<'a>(url: &'a str, scheme: &str) -> Option<&'a str> {
    let head = url.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| &url[scheme.len()..])
}

/// The port of a URL's authority (`8080` of `127.0.0.1:8080`).
fn url_port(text: &str) -> Result<u16, Usage> {
    crate::cli::whole::<u16>(text)
        .filter(|p| *p != 0)
        .ok_or_else(|| {
            usage(
                format!("the URL's port must be a number from 1 to 65535, got `{text}`"),
                "e.g. http://127.0.0.1:8080/api/fast",
            )
        })
}

/// Splits an `http://` URL into host (as written), port and path with
/// query. The authority ends at the first `/`, `?` or `#`; a fragment is
/// dropped, as Node does (it is never sent).
fn split_url(url: &str) -> Result<(String, u16, String), Usage> {
    let Some(rest) = strip_scheme(url, "http://") else {
        let hint = if strip_scheme(url, "https://").is_some() {
            "the agent speaks plain HTTP/1.1 only; use an http:// URL"
        } else {
            "write a full URL, e.g. http://127.0.0.1:8080/api/fast"
        };
        return Err(usage(format!("`{url}` is not an http:// URL"), hint));
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_owned()),
        Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
        None => (rest, "/".to_owned()),
    };
    let path = path.split('#').next().unwrap_or("/").to_owned();
    if authority.is_empty() || authority.contains('@') {
        return Err(usage(
            format!("`{url}` has no usable host"),
            "e.g. http://127.0.0.1:8080/api/fast",
        ));
    }
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) || path.len() > 8192 {
        return Err(usage(
            "the path has spaces or control characters (or is over 8 KiB)",
            "percent-encode it, e.g. %20 for a space",
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (inside, after) = v6.split_once(']').ok_or_else(|| {
            usage(
                format!("`{authority}`: unclosed `[`"),
                "e.g. http://[::1]:8080/",
            )
        })?;
        let port = match after.strip_prefix(':') {
            Some(p) => url_port(p)?,
            None if after.is_empty() => 80,
            None => {
                return Err(usage(
                    format!("`{authority}` is not host:port"),
                    "e.g. http://[::1]:8080/",
                ));
            }
        };
        // Only an IPv6 address goes in brackets (RFC 3986 §3.2.2): `[]`
        // is a malformed URL, not a host to look up (review N6).
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(usage(
                format!("`[{inside}]` is not an IPv6 address"),
                "e.g. http://[::1]:8080/",
            ));
        }
        (format!("[{inside}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), url_port(p)?),
            None => (authority.to_owned(), 80),
        }
    };
    // A second `:` outside brackets (`h:80:90`) is a malformed authority,
    // not a host named `h:80` (review N6).
    if host.contains(':') && !host.starts_with('[') {
        return Err(usage(
            format!("`{authority}` is not host:port"),
            "one port, and an IPv6 address in brackets: e.g. http://[::1]:8080/",
        ));
    }
    if host.is_empty() {
        return Err(usage(
            format!("`{authority}` is not host:port"),
            "e.g. http://127.0.0.1:8080/api/fast",
        ));
    }
    Ok((host, port, path))
}

/// The ranges [`AgentOptions::validate`] holds the options to, said in
/// flags (its own words are the JSON API's).
fn check_ranges(agent: &AgentOptions) -> Result<(), Usage> {
    let out_of_range = |flag: &str, value: u64, hint: &str| {
        Err(usage(format!("{flag} {value} is out of range"), hint))
    };
    if !(1..=MAX_KEEP_ALIVE_MSECS).contains(&agent.keep_alive_msecs) {
        return out_of_range(
            "--keep-alive-msecs",
            agent.keep_alive_msecs,
            &format!(
                "give 1 to {MAX_KEEP_ALIVE_MSECS} ms, or leave the flag out for Node's default \
                 1000 (Node reads 0 as that default)"
            ),
        );
    }
    if agent.max_free_sockets == 0 {
        return out_of_range(
            "--max-free-sockets",
            0,
            "give 1 or more free sockets, or leave the flag out for Node's default 256 \
             (Node reads 0 as that default)",
        );
    }
    for (flag, value) in [
        ("--timeout", agent.timeout),
        ("--request-timeout", agent.request_timeout),
    ] {
        if let Some(ms) = value
            && !(1..=MAX_TIMEOUT_MS).contains(&ms)
        {
            return out_of_range(
                flag,
                ms,
                &format!("give 1 to {MAX_TIMEOUT_MS} ms, or leave {flag} out for none"),
            );
        }
    }
    if agent.agent_keep_alive_timeout_buffer > MAX_TIMEOUT_MS {
        return out_of_range(
            "--keep-alive-timeout-buffer",
            agent.agent_keep_alive_timeout_buffer,
            &format!(
                "give 0 to {MAX_TIMEOUT_MS} ms, or leave the flag out for Node's default 1000"
            ),
        );
    }
    // Anything else the protocol refuses (nothing, as it stands).
    agent.validate().map_err(|e| usage(e.error, e.hint))
}

/// Parses the arguments after `agent`.
pub fn parse_args(args: &[String]) -> Result<Parsed, Usage> {
    let mut url = None;
    let mut agent = AgentOptions::default();
    let mut method = "GET".to_owned();
    let mut connection = None;
    let mut every_ms = 1000u64;
    let mut count = 1u32;
    let mut linger_ms = 0u64;
    for arg in Flags::new(args, FLAGS) {
        let (arg, value) = match arg? {
            Arg::Help => return Ok(Parsed::Help),
            Arg::Version => return Ok(Parsed::Version),
            Arg::Flag(flag, value) => (flag, value.unwrap_or_default()),
            Arg::Positional(positional) => {
                if url.replace(positional.to_owned()).is_some() {
                    return Err(usage(
                        format!("a second URL `{positional}`"),
                        "give one URL",
                    ));
                }
                continue;
            }
        };
        match arg {
            "--keep-alive" => agent.keep_alive = true,
            "--keep-alive-msecs" => {
                agent.keep_alive_msecs = number(arg, value, "milliseconds")?;
            }
            "--max-sockets" => agent.max_sockets = sockets(arg, value)?,
            "--max-total-sockets" => agent.max_total_sockets = sockets(arg, value)?,
            "--max-free-sockets" => {
                agent.max_free_sockets = number(arg, value, "a number of sockets")?;
            }
            "--scheduling" => {
                agent.scheduling = match value {
                    "lifo" => Scheduling::Lifo,
                    "fifo" => Scheduling::Fifo,
                    other => {
                        return Err(usage(
                            format!("--scheduling takes lifo or fifo, got `{other}`"),
                            "--scheduling lifo (the most recently used free socket first)",
                        ));
                    }
                };
            }
            "--timeout" => agent.timeout = Some(number(arg, value, "milliseconds")?),
            "--request-timeout" => {
                agent.request_timeout = Some(number(arg, value, "milliseconds")?);
            }
            "--keep-alive-timeout-buffer" => {
                agent.agent_keep_alive_timeout_buffer = number(arg, value, "milliseconds")?;
            }
            "--every" => every_ms = number(arg, value, "milliseconds")?,
            "--count" => count = number(arg, value, "a number of requests")?,
            "--linger" => linger_ms = number(arg, value, "milliseconds")?,
            "--method" => {
                method = value.to_ascii_uppercase();
                if method != "GET" && method != "HEAD" {
                    return Err(usage(
                        format!("--method {method} is not supported"),
                        "the agent sends requests without a body: GET or HEAD",
                    ));
                }
            }
            _ => {
                if value.is_empty()
                    || value.len() > 64
                    || !value.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
                {
                    return Err(usage(
                        format!("--connection `{value}` is not a header value"),
                        "e.g. --connection close",
                    ));
                }
                connection = Some(value.to_owned());
            }
        }
    }
    let url = url.ok_or_else(|| {
        usage(
            "no URL",
            "e.g. keepalive-lab agent http://127.0.0.1:8080/api/fast",
        )
    })?;
    let (host, port, path) = split_url(&url)?;
    check_ranges(&agent)?;
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(usage(
            format!("--count {count} is out of range"),
            format!("give 1 to {MAX_COUNT}"),
        ));
    }
    if every_ms > MAX_EVERY_MS {
        return Err(usage(
            format!("--every {every_ms} is out of range"),
            format!("give 0 to {MAX_EVERY_MS} ms"),
        ));
    }
    let planned = every_ms
        .saturating_mul(u64::from(count - 1))
        .saturating_add(linger_ms);
    if planned > MAX_PLANNED_MS {
        return Err(usage(
            format!("the run would last {planned} ms (every × (count − 1) + linger)"),
            format!("keep it under {MAX_PLANNED_MS} ms: fewer requests, or less time between them"),
        ));
    }
    Ok(Parsed::Run(Box::new(Options {
        url,
        host,
        port,
        path,
        agent,
        method,
        connection,
        every_ms,
        count,
        linger_ms,
    })))
}

/// Refuses a destination that is not a loopback address: the lab's tools
/// reproduce behaviour on one machine, and a load tool aimed elsewhere is a
/// small load generator (the house rule; review M3). `::ffff:127.0.0.1`
/// counts as the IPv4 address it is.
fn loopback_only(url: &str, bare: &str, addr: SocketAddr) -> Result<(), Usage> {
    if addr.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    let resolved = if bare == addr.ip().to_string() {
        String::new()
    } else {
        format!(" (`{bare}` resolves to {})", addr.ip())
    };
    Err(usage(
        format!("`{url}` is not on a loopback address{resolved}"),
        format!(
            "the agent runs against a server on this machine only: e.g. http://127.0.0.1:{}/ \
             (or [::1], localhost)",
            addr.port()
        ),
    ))
}

/// Refuses a destination named by a host name other than `localhost`'s,
/// before it is looked up ([`crate::cli::may_look_up`]).
fn not_looked_up(url: &str, bare: &str, port: u16) -> Usage {
    usage(
        format!("`{url}` is not on a loopback address (`{bare}` is a name, not looked up)"),
        format!(
            "the agent runs against a server on this machine only, named by its address or \
             localhost: e.g. http://127.0.0.1:{port}/ (or [::1], localhost)"
        ),
    )
}

/// Runs `options`, writing one JSON line per event to `out`, until done or
/// `until` resolves (then the run ends as `stopped`). If `out` fails, the
/// run is stopped at once and that error returned.
pub async fn run<W>(
    options: Options,
    out: W,
    until: impl std::future::Future<Output = ()>,
) -> Result<FinishReason, Failure>
where
    W: Write + Send + 'static,
{
    let bare = options.host.trim_start_matches('[').trim_end_matches(']');
    let Some(asked) = crate::cli::looked_up_as(bare) else {
        return Err(Failure::Usage(not_looked_up(
            &options.url,
            bare,
            options.port,
        )));
    };
    // Every address the name resolves to, each of them loopback; the
    // first is tried first, the others when it fails (Node's
    // `autoSelectFamily`).
    let resolved =
        crate::cli::resolve_all(&asked, options.port, &format!("cannot resolve `{bare}`")).await?;
    for addr in &resolved {
        loopback_only(&options.url, bare, *addr).map_err(Failure::Usage)?;
    }
    let (addr, fallbacks) = (resolved[0], resolved[1..].to_vec());
    // Node writes the port in `Host` unless it is the default one.
    let host = if options.port == 80 {
        options.host.clone()
    } else {
        format!("{}:{}", options.host, options.port)
    };
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    // Told when the writer fails, so that the run stops at once instead of
    // carrying out its whole plan with nobody told (review L7).
    let (failed, writer_failed) = tokio::sync::oneshot::channel::<()>();
    let writer = std::thread::spawn(move || -> io::Result<()> {
        let mut out = out;
        let write = move || -> io::Result<()> {
            for line in rx {
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
                out.flush()?;
            }
            Ok(())
        };
        let written =
            write().map_err(|e| io::Error::new(e.kind(), format!("cannot write its output: {e}")));
        if written.is_err() {
            let _ = failed.send(());
        }
        written
    });
    let started = Instant::now();
    let sink: EventSink = Arc::new(move |event: AgentEvent| {
        let _ = tx.send(line(started, &event));
    });
    let agent = Agent::new(
        AgentConfig {
            options: options.agent.clone(),
            ceiling: Some(SOCKET_CEILING),
            connect_timeout: CONNECT_TIMEOUT,
            binder: None,
        },
        sink,
    );
    let path = options.path.clone();
    let plan = Plan {
        dest: Destination {
            addr,
            fallbacks,
            host,
        },
        method: options.method.clone(),
        path: Box::new(move |_| path.clone()),
        connection: options.connection.clone(),
        every: Duration::from_millis(options.every_ms),
        count: options.count,
        linger: Duration::from_millis(options.linger_ms),
        max_duration: MAX_DURATION,
        url: options.url.clone(),
    };
    let reason = run_plan(agent, plan, async {
        tokio::select! {
            () = until => {}
            // The writer's error is returned below.
            Ok(()) = writer_failed => {}
        }
        FinishReason::Stopped
    })
    .await;
    // The sink (and its sender) went with the agent: the writer ends once
    // every line is written.
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .map_err(io::Error::other)?
        .map_err(|_| io::Error::other("the output thread panicked"))??;
    Ok(reason)
}

/// One output line: the event with `t_ms` added (`serde_json::Map` keeps
/// keys sorted, so it lands among them alphabetically).
fn line(started: Instant, event: &AgentEvent) -> String {
    let t_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    let mut map = serde_json::Map::new();
    map.insert("t_ms".into(), serde_json::json!(t_ms));
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(event) {
        map.extend(fields);
    }
    serde_json::Value::Object(map).to_string()
}

/// `keepalive-lab agent …`: `args` are the arguments after the subcommand.
/// Exit code 0 when the run ends (or `--help`, `--version`), 2 for bad flags
/// (a host that is not loopback among them), 1 when the host cannot be
/// resolved or the output cannot be written.
pub async fn run_cli(args: Vec<String>) -> ExitCode {
    let options = match parse_args(&args) {
        Ok(Parsed::Help) => return crate::cli::reply("keepalive-lab agent", &help()),
        Ok(Parsed::Version) => {
            return crate::cli::reply("keepalive-lab agent", &crate::cli::version());
        }
        Ok(Parsed::Run(options)) => *options,
        Err(mistake) => {
            crate::say_err!("{}", explain(&mistake));
            return ExitCode::from(2);
        }
    };
    match run(options, io::stdout(), crate::cli::shutdown_signal()).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(Failure::Usage(mistake)) => {
            crate::say_err!("{}", explain(&mistake));
            ExitCode::from(2)
        }
        Err(Failure::Io(e)) => {
            crate::say_err!("keepalive-lab agent: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    fn options(text: &str) -> Options {
        match parse_args(&args(text)) {
            Ok(Parsed::Run(options)) => *options,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn flags_map_to_node_options() {
        let o = options(
            "http://127.0.0.1:8080/api/fast?x=1 --keep-alive --keep-alive-msecs 1500 --max-sockets 2 \
             --max-total-sockets Infinity --max-free-sockets 1 --scheduling fifo --timeout 4000 \
             --request-timeout 500 --every 3000 --count 5",
        );
        assert_eq!(
            (o.host.as_str(), o.port, o.path.as_str()),
            ("127.0.0.1", 8080, "/api/fast?x=1")
        );
        assert!(o.agent.keep_alive);
        assert_eq!(o.agent.keep_alive_msecs, 1500);
        assert_eq!(o.agent.max_sockets, Some(2));
        assert_eq!(o.agent.max_total_sockets, None);
        assert_eq!(o.agent.scheduling, Scheduling::Fifo);
        assert_eq!(
            (o.agent.timeout, o.agent.request_timeout),
            (Some(4000), Some(500))
        );
        assert_eq!((o.every_ms, o.count), (3000, 5));
        let o = options("http://[::1]/");
        assert_eq!((o.host.as_str(), o.port), ("[::1]", 80));
        assert_eq!(options("http://localhost:9").path, "/");
    }

    #[test]
    fn mistakes_are_explained_not_panicked_on() {
        for bad in [
            "",
            "https://example.com/",
            "ftp://x/",
            "http://",
            "http://h:0/",
            "http://h:99999/",
            "http://h/ --count 0",
            "http://h/ --count 10001",
            "http://h/ --count many",
            // A sign is not a digit (found in review: `+3` ran 3).
            "http://h/ --count +3",
            "http://h:+8080/",
            "http://h/ --max-sockets +2",
            "http://h/ --timeout -5",
            "http://h/ --max-sockets 0",
            "http://h/ --max-sockets",
            "http://h/ --scheduling random",
            "http://h/ --timeout 0",
            "http://h/ --every 60001",
            "http://h/ --every 60000 --count 100",
            "http://h/ --method POST",
            "http://h/ --frobnicate",
            "http://h/ http://i/",
            "http://h/ --keep-alive-msecs 0",
        ] {
            let error = parse_args(&args(bad)).expect_err(bad);
            assert!(!error.error.is_empty() && !error.hint.is_empty(), "{bad}");
            assert!(explain(&error).contains(USAGE), "{bad}");
        }
        assert_eq!(parse_args(&args("--help")), Ok(Parsed::Help));
        assert_eq!(parse_args(&args("--version")), Ok(Parsed::Version));
    }

    /// Review L5: the hint after a bad value names a value the same flag
    /// then accepts.
    #[test]
    fn every_hint_suggests_a_value_its_flag_accepts() {
        for spec in FLAGS.iter().filter(|spec| spec.value.is_some()) {
            let flag = spec.name;
            if flag == "--scheduling" || flag == "--method" || flag == "--connection" {
                continue; // words, not numbers: their hints are their own
            }
            let bad = format!("http://127.0.0.1:1/ {flag} INF");
            let mistake = parse_args(&args(&bad)).expect_err(&bad);
            let suggested = mistake
                .hint
                .strip_prefix("e.g. ")
                .and_then(|h| h.split(" or ").next())
                .unwrap_or_else(|| panic!("{bad}: {mistake:?}"));
            let again = format!("http://127.0.0.1:1/ {suggested}");
            assert!(
                matches!(parse_args(&args(&again)), Ok(Parsed::Run(_))),
                "{bad}: the hint `{suggested}` is refused: {:?}",
                parse_args(&args(&again))
            );
        }
    }

    /// Review N6: a malformed authority is a usage mistake, not a host to
    /// look up.
    #[test]
    fn malformed_authorities_are_usage_mistakes() {
        for bad in [
            "http://[]:80/",
            "http://[]/",
            "http://[nope]:80/",
            "http://h:80:90/",
            "http://::1:80/",
        ] {
            let mistake = parse_args(&args(bad)).expect_err(bad);
            assert!(mistake.hint.contains("http://"), "{bad}: {mistake:?}");
        }
        let o = options("http://[::ffff:127.0.0.1]:8080/");
        assert_eq!((o.host.as_str(), o.port), ("[::ffff:127.0.0.1]", 8080));
    }

    #[test]
    fn urls_end_the_authority_at_a_fragment_and_take_any_case_scheme() {
        for (url, path) in [
            ("http://127.0.0.1:8080#frag", "/"),
            ("http://127.0.0.1:8080/x?y=1#frag", "/x?y=1"),
            ("http://127.0.0.1:8080?q#f", "/?q"),
            ("HTTP://127.0.0.1:8080/ok", "/ok"),
            ("Http://127.0.0.1:8080/ok", "/ok"),
        ] {
            let o = options(url);
            assert_eq!(
                (o.host.as_str(), o.port, o.path.as_str()),
                ("127.0.0.1", 8080, path),
                "{url}"
            );
        }
        let https = parse_args(&args("HTTPS://127.0.0.1/")).unwrap_err();
        assert!(https.hint.contains("plain HTTP/1.1"), "{https:?}");
    }

    #[test]
    fn mistakes_name_the_flags_not_the_json_fields() {
        let url = "http://127.0.0.1:8080/";
        for (text, error, hint) in [
            (
                "http://127.0.0.1:99999/".to_owned(),
                "the URL's port must be a number from 1 to 65535, got `99999`",
                "e.g. http://127.0.0.1:8080/api/fast",
            ),
            (
                "http://127.0.0.1:0/".to_owned(),
                "from 1 to 65535, got `0`",
                "e.g. http://",
            ),
            (
                format!("{url} --keep-alive-timeout-buffer 600001"),
                "--keep-alive-timeout-buffer 600001 is out of range",
                "give 0 to 600000 ms",
            ),
            (
                format!("{url} --timeout 0"),
                "--timeout 0 is out of range",
                "leave --timeout out for none",
            ),
            (
                format!("{url} --request-timeout 600001"),
                "--request-timeout 600001 is out of range",
                "leave --request-timeout out for none",
            ),
            (
                format!("{url} --keep-alive-msecs 0"),
                "--keep-alive-msecs 0 is out of range",
                "give 1 to 7200000 ms",
            ),
            (
                format!("{url} --max-free-sockets 0"),
                "--max-free-sockets 0 is out of range",
                "give 1 or more",
            ),
            (
                format!("{url} --max-sockets 0"),
                "--max-sockets 0 is out of range",
                "give 1 to 256, or Infinity",
            ),
        ] {
            let mistake = parse_args(&args(&text)).unwrap_err();
            assert!(mistake.error.contains(error), "{text}: {mistake:?}");
            assert!(mistake.hint.contains(hint), "{text}: {mistake:?}");
            // The JSON API's words have no place here.
            for json in ["null", "send ", "_"] {
                assert!(
                    !mistake.error.contains(json) && !mistake.hint.contains(json),
                    "{text}: {mistake:?}"
                );
            }
            assert!(!mistake.hint.contains("the URL's port 1000"), "{mistake:?}");
        }
    }
}
