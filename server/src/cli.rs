//! What the binary's three command lines share (`keepalive-lab`,
//! `keepalive-lab middlebox`, `keepalive-lab agent`): a flag is written
//! `--name value` or `--name=value`, given once unless it may repeat, and a
//! mistake is explained, with what to write instead, never panicked on.

/// The binary's name and version.
pub const VERSION: &str = concat!("keepalive-lab ", env!("CARGO_PKG_VERSION"));

/// What `--version` prints, for each of the three: [`VERSION`] and, in a
/// binary built by `cargo xtask dist` (or `test`), the commit it was built
/// from, so a binary copied to a workshop machine says which lab it is.
pub fn version() -> String {
    match option_env!("KEEPALIVE_LAB_COMMIT") {
        Some(commit) if !commit.is_empty() => format!("{VERSION} (commit {commit})"),
        _ => VERSION.to_owned(),
    }
}

/// Writes `line` and a newline to stdout, then flushes it, and returns
/// any error instead of panicking as `println!` does.
///
/// Why: a console whose reader has gone (`keepalive-lab | tee log` after
/// Ctrl-C, `| head -1`, `>/dev/full`) must not end the tool with a panic
/// (exit 101) before its shutdown has run. Most callers ignore the result
/// ([`say!`](crate::say)); `--help` and `--version`, whose output is the
/// point, turn it into exit code 1.
pub fn say(line: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// [`say`] for stderr: a warning or an error that cannot be written is
/// lost rather than turned into a panic (`eprintln!`'s behaviour).
pub fn say_err(line: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    writeln!(err, "{line}")?;
    err.flush()
}

/// Prints `text` (a tool's help or version) on stdout with [`say`]: exit
/// code 0 once it is written, else 1 with the reason on stderr, since that
/// text was the whole point (review H1: `--help >/dev/full` used to panic
/// with exit code 101).
pub fn reply(tool: &str, text: &str) -> std::process::ExitCode {
    // The texts end with their own line break; `say` adds one.
    match say(format_args!("{}", text.strip_suffix('\n').unwrap_or(text))) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let _ = say_err(format_args!("{tool}: cannot write to stdout: {e}"));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `println!` that never panics: formats like it and writes through
/// [`cli::say`](crate::cli::say), ignoring a failed write (the console is
/// advisory; the tool goes on, and shuts down cleanly, without it).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = $crate::cli::say(::std::format_args!($($arg)*));
    }};
}

/// `eprintln!` that never panics: [`say!`](crate::say) for stderr, through
/// [`cli::say_err`](crate::cli::say_err).
#[macro_export]
macro_rules! say_err {
    ($($arg:tt)*) => {{
        let _ = $crate::cli::say_err(::std::format_args!($($arg)*));
    }};
}

/// Why a tool's run could not go on. A usage mistake that shows only once
/// an address is resolved (not loopback, or the middlebox's two addresses
/// the same socket) is told apart from an I/O failure, so that the command
/// line exits 2 for the one, as for any other bad argument, and 1 for the
/// other (`middlebox/cli.rs`, `agent/cli.rs`).
#[derive(Debug)]
pub enum Failure {
    /// An argument is refused (exit code 2).
    Usage(Usage),
    /// It could not listen, resolve or write its output (exit code 1).
    Io(std::io::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Usage(mistake) => write!(f, "{} (hint: {})", mistake.error, mistake.hint),
            Failure::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Failure {}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Io(e)
    }
}

impl From<Usage> for Failure {
    fn from(mistake: Usage) -> Failure {
        Failure::Usage(mistake)
    }
}

/// A command-line mistake: what was wrong, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// What was wrong.
    pub error: String,
    /// What to write instead.
    pub hint: String,
}

impl Usage {
    /// The mistake as `tool` prints it: what was wrong, the hint, then the
    /// tool's usage text.
    pub fn explain(&self, tool: &str, usage_text: &str) -> String {
        format!(
            "{tool}: {}\n  hint: {}\n{usage_text}",
            shortened(&self.error),
            self.hint
        )
    }
}

/// Most characters of a mistake's words printed whole: past it, its start
/// and its end are kept (the value quoted in it is what is long: found in
/// review, `--connection` with 100 KB echoed it all back).
const MISTAKE_CHARS: usize = 300;

/// `words` whole, or its first 200 and last 60 characters around an
/// ellipsis that says how many were left out.
fn shortened(words: &str) -> std::borrow::Cow<'_, str> {
    let count = words.chars().count();
    if count <= MISTAKE_CHARS {
        return words.into();
    }
    let head: String = words.chars().take(200).collect();
    let tail: String = words.chars().skip(count - 60).collect();
    format!("{head}…({} characters left out)…{tail}", count - 260).into()
}

/// Resolves at the first Ctrl-C (SIGINT) or, on Unix, SIGTERM (what `kill`,
/// systemd, Docker and CI runners send to stop a process): all three tools
/// shut down the same way on either. The handlers are installed when this is
/// called, not when the future is first polled, so a signal that comes while
/// the tool is still starting is not lost to the default action (which would
/// end the process with 130 or 143 and without its last lines). Call it
/// inside the runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        let mut terminate = signal(SignalKind::terminate()).ok();
        async move {
            // A handler that could not be installed never resolves.
            tokio::select! {
                () = received(interrupt.as_mut()) => {}
                () = received(terminate.as_mut()) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The next delivery of `signal`; never, without one.
#[cfg(unix)]
async fn received(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// The command line as text: each argument as UTF-8, or the first that is
/// not, as a [`Usage`] mistake naming it (found in review:
/// `std::env::args` panics on such an argument, exit 101, where every other
/// mistake is explained with exit 2). A path is text here too, so a file
/// whose name is not UTF-8 is reached through a link with a text name.
pub fn text_args(args: impl Iterator<Item = std::ffi::OsString>) -> Result<Vec<String>, Usage> {
    args.enumerate()
        .map(|(i, arg)| {
            arg.into_string().map_err(|arg| {
                usage(
                    format!(
                        "argument {} is not UTF-8 text: `{}`",
                        i + 1,
                        arg.to_string_lossy()
                    ),
                    "write every flag and value as UTF-8 text; for a file whose name is not, \
                     give a link to it with a UTF-8 name (`ln -s`)",
                )
            })
        })
        .collect()
}

/// `text` as a whole number of type `T` if it is one written in decimal
/// digits alone: no sign, no spaces (Rust's `parse` takes a leading `+`,
/// which one flag took and another refused; found in review).
pub fn whole<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A [`Usage`] from its two parts.
pub fn usage(error: impl Into<String>, hint: impl Into<String>) -> Usage {
    Usage {
        error: error.into(),
        hint: hint.into(),
    }
}

/// Whether a loopback-only tool may ask the resolver for `host` (a name or
/// an address, without brackets or port): an address, which is then checked
/// for loopback as it is, or `localhost` and the names under it, which are
/// loopback (RFC 6761 §6.3; checked again once resolved). Any other name is
/// refused before it is looked up, so that nothing about it leaves this
/// machine, not even a query to the resolver.
pub fn may_look_up(host: &str) -> bool {
    looked_up_as(host).is_some()
}

/// What a loopback-only tool asks the resolver for `host` ([`may_look_up`]):
/// an address as it is; `localhost` for `localhost` itself and for the names
/// under it or written with a final dot (which the hosts file answers: asked
/// as they are, the system resolver sent `x.localhost` and `localhost.` to
/// the network's DNS server, found in review; RFC 6761 §6.3 makes them
/// loopback whatever they are); `None` for any other name.
pub fn looked_up_as(host: &str) -> Option<String> {
    let lower = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if lower.parse::<std::net::IpAddr>().is_ok() {
        Some(lower)
    } else if lower == "localhost" || lower.ends_with(".localhost") {
        Some("localhost".to_owned())
    } else {
        None
    }
}

/// Longest a name's lookup may take (the system resolver's own retries can
/// take far longer when it is unreachable).
pub const LOOKUP_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Every address `host` (as [`looked_up_as`] gives it) resolves to with
/// `port`, in the order the loopback tools try them ([`connect_order`]),
/// within [`LOOKUP_LIMIT`]; `what` names it in errors. Every one, not the
/// first only (found in review): where `localhost` is `::1` first, as
/// glibc sorts it on a host with IPv6, a tool that took the first could
/// not reach a server on 127.0.0.1 alone.
pub async fn resolve_all(
    host: &str,
    port: u16,
    what: &str,
) -> std::io::Result<Vec<std::net::SocketAddr>> {
    use std::io::{Error, ErrorKind};
    let found = tokio::time::timeout(LOOKUP_LIMIT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::TimedOut,
                format!("{what}: no answer from the resolver within {LOOKUP_LIMIT:?}"),
            )
        })?
        .map_err(|e| Error::new(e.kind(), format!("{what}: {e}")))?;
    let mut all: Vec<std::net::SocketAddr> = Vec::new();
    for address in found {
        if !all.contains(&address) {
            all.push(address);
        }
    }
    if all.is_empty() {
        return Err(Error::other(format!("{what}: no address")));
    }
    Ok(connect_order(all))
}

/// The order in which Node's `net.connect` tries the addresses a name
/// resolved to (`autoSelectFamily`, on by default since v20.0.0): the
/// family of the first address first, then the other, alternating, each
/// family in the resolver's order (`lookupAndConnectMultiple` in
/// `lib/net.js`; docs: `socket.connect(options)`, "autoSelectFamily").
pub fn connect_order(addresses: Vec<std::net::SocketAddr>) -> Vec<std::net::SocketAddr> {
    let Some(first) = addresses.first() else {
        return addresses;
    };
    let first_v6 = first.is_ipv6();
    let (mut leading, mut other): (Vec<_>, Vec<_>) =
        addresses.into_iter().partition(|a| a.is_ipv6() == first_v6);
    let mut ordered = Vec::with_capacity(leading.len() + other.len());
    leading.reverse();
    other.reverse();
    while !leading.is_empty() || !other.is_empty() {
        ordered.extend(leading.pop());
        ordered.extend(other.pop());
    }
    ordered
}

/// How long each attempt but the last may take in [`connect_in_turn`]:
/// Node's `autoSelectFamilyAttemptTimeout`, 250 ms by default
/// (`net.getDefaultAutoSelectFamilyAttemptTimeout()`, v20 to v24).
pub const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(250);

/// Tries `attempt` on `first`, then each of `fallbacks`, until one succeeds, each
/// but the last within [`ATTEMPT_TIMEOUT`], as Node's `net.connect` does
/// with the addresses of a name (`autoSelectFamily`), and all of them by
/// `deadline` (the lab's bound on a connect; Node has none): what it made
/// and the address it reached, or every attempt's error, in order (one past
/// a limit as `TimedOut`).
pub async fn connect_in_turn<T, F, Fut>(
    first: std::net::SocketAddr,
    fallbacks: &[std::net::SocketAddr],
    deadline: tokio::time::Instant,
    mut attempt: F,
) -> Result<(T, std::net::SocketAddr), Vec<(std::net::SocketAddr, std::io::Error)>>
where
    F: FnMut(std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<T>>,
{
    let mut errors = Vec::new();
    let addresses = std::iter::once(first).chain(fallbacks.iter().copied());
    for (n, addr) in addresses.enumerate() {
        let until = if n < fallbacks.len() {
            deadline.min(tokio::time::Instant::now() + ATTEMPT_TIMEOUT)
        } else {
            deadline
        };
        let tried = tokio::time::timeout_at(until, attempt(addr))
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer in time",
                ))
            });
        match tried {
            Ok(made) => return Ok((made, addr)),
            Err(error) => errors.push((addr, error)),
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    Err(errors)
}

/// One flag a command line understands.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// `--name`.
    pub name: &'static str,
    /// What its value is, in words ("a port number"); `None` for a switch.
    pub value: Option<&'static str>,
    /// A value to show in a hint (`--scale 100`).
    pub example: &'static str,
    /// It may be given more than once (each adds).
    pub repeats: bool,
}

impl Spec {
    /// A flag taking `value`, e.g. `Spec::value("--port", "a port number", "8080")`.
    pub const fn value(name: &'static str, value: &'static str, example: &'static str) -> Spec {
        Spec {
            name,
            value: Some(value),
            example,
            repeats: false,
        }
    }

    /// A switch, e.g. `--workshop`.
    pub const fn switch(name: &'static str) -> Spec {
        Spec {
            name,
            value: None,
            example: "",
            repeats: false,
        }
    }

    /// The same flag, allowed more than once.
    pub const fn repeating(self) -> Spec {
        Spec {
            repeats: true,
            ..self
        }
    }
}

/// One item of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg<'a> {
    /// `-h` or `--help`.
    Help,
    /// `-V` or `--version`.
    Version,
    /// A known flag and its value (`None` for a switch).
    Flag(&'static str, Option<&'a str>),
    /// Anything that is not a flag (a URL, a subcommand's operand).
    Positional(&'a str),
}

/// Reads a command line against its flags: each [`Iterator::next`] is the
/// next [`Arg`], or the first mistake.
#[derive(Debug)]
pub struct Flags<'a> {
    args: std::slice::Iter<'a, String>,
    specs: &'static [Spec],
    seen: Vec<&'static str>,
}

impl<'a> Flags<'a> {
    /// The flags of `args`, which `specs` lists.
    pub fn new(args: &'a [String], specs: &'static [Spec]) -> Flags<'a> {
        Flags {
            args: args.iter(),
            specs,
            seen: Vec::new(),
        }
    }

    fn flag(&mut self, arg: &'a str) -> Result<Arg<'a>, Usage> {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (arg, None),
        };
        let Some(spec) = self.specs.iter().find(|s| s.name == name) else {
            let names: Vec<&str> = self.specs.iter().map(|s| s.name).collect();
            return Err(usage(
                format!("unknown flag `{name}`"),
                format!("the flags are {} (and --help, --version)", names.join(", ")),
            ));
        };
        if !spec.repeats && self.seen.contains(&spec.name) {
            return Err(usage(
                format!("{} is given twice", spec.name),
                "give each flag once",
            ));
        }
        self.seen.push(spec.name);
        let value = match (spec.value, inline) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(usage(
                    format!("{} takes no value", spec.name),
                    format!("write {} alone", spec.name),
                ));
            }
            (Some(_), Some(value)) => Some(value),
            (Some(what), None) => Some(self.args.next().map(String::as_str).ok_or_else(|| {
                usage(
                    format!("{} needs a value: {what}", spec.name),
                    format!("e.g. {} {}", spec.name, spec.example),
                )
            })?),
        };
        Ok(Arg::Flag(spec.name, value))
    }
}

impl<'a> Iterator for Flags<'a> {
    type Item = Result<Arg<'a>, Usage>;

    fn next(&mut self) -> Option<Self::Item> {
        let arg = self.args.next()?.as_str();
        Some(match arg {
            "-h" | "--help" => Ok(Arg::Help),
            "-V" | "--version" => Ok(Arg::Version),
            flag if flag.starts_with('-') && flag.len() > 1 => self.flag(flag),
            positional => Ok(Arg::Positional(positional)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_number_is_decimal_digits_alone() {
        assert_eq!(whole::<u16>("8080"), Some(8080));
        assert_eq!(whole::<u16>("0"), Some(0));
        assert_eq!(whole::<u16>("007"), Some(7));
        for text in ["+5", "-1", "", " 5", "5 ", "1e3", "5.0", "65536", "٣"] {
            assert_eq!(whole::<u16>(text), None, "{text}");
        }
        assert_eq!(whole::<u64>("18446744073709551615"), Some(u64::MAX));
        assert_eq!(whole::<u64>("18446744073709551616"), None);
    }

    const SPECS: &[Spec] = &[
        Spec::value("--port", "a port number", "8080"),
        Spec::switch("--workshop"),
        Spec::value("--host-name", "a host name", "lab.local").repeating(),
    ];

    fn read(line: &str) -> Result<Vec<Arg<'static>>, Usage> {
        let args: &'static [String] = line
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .leak();
        Flags::new(args, SPECS).collect()
    }

    #[test]
    fn addresses_are_tried_alternating_families_from_the_first_ones() {
        let a = |text: &str| text.parse::<std::net::SocketAddr>().expect("an address");
        assert_eq!(
            connect_order(vec![
                a("[::1]:80"),
                a("[::2]:80"),
                a("127.0.0.1:80"),
                a("127.0.0.2:80")
            ]),
            [
                a("[::1]:80"),
                a("127.0.0.1:80"),
                a("[::2]:80"),
                a("127.0.0.2:80")
            ]
        );
        assert_eq!(
            connect_order(vec![a("127.0.0.1:80"), a("[::1]:80"), a("[::2]:80")]),
            [a("127.0.0.1:80"), a("[::1]:80"), a("[::2]:80")]
        );
        assert_eq!(connect_order(vec![a("127.0.0.1:80")]), [a("127.0.0.1:80")]);
        assert!(connect_order(Vec::new()).is_empty());
    }

    /// Real sockets: a port nobody listens on refuses, and the next
    /// address is tried; every refusal is kept when none answers.
    #[tokio::test]
    async fn each_address_is_tried_in_turn_until_one_accepts() {
        let listening = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let open = listening.local_addr().expect("an address");
        let closed = {
            let gone = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            gone.local_addr().expect("an address")
        };
        let connect = |addr| tokio::net::TcpStream::connect(addr);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let (stream, reached) = connect_in_turn(closed, &[open], deadline, connect)
            .await
            .expect("the second accepts");
        assert_eq!(reached, open);
        assert_eq!(stream.peer_addr().expect("connected"), open);
        let errors = connect_in_turn(closed, &[closed], deadline, connect)
            .await
            .expect_err("nobody listens");
        assert_eq!(errors.len(), 2);
        assert!(
            errors
                .iter()
                .all(|(addr, e)| *addr == closed
                    && e.kind() == std::io::ErrorKind::ConnectionRefused)
        );
    }

    /// An address that never answers (a listener whose accept queue is
    /// full drops the SYN, on Linux) is given up after the attempt timeout,
    /// not the whole deadline, and the next is reached; as the last
    /// address it has the deadline, and its error is a `TimedOut`.
    #[tokio::test]
    async fn a_silent_address_is_given_up_after_the_attempt_timeout() {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind("127.0.0.1:0".parse().expect("an address"))
            .expect("bind");
        let full = socket.listen(1).expect("listen");
        let silent = full.local_addr().expect("an address");
        let mut fillers = Vec::new();
        for _ in 0..4 {
            let connect = tokio::net::TcpStream::connect(silent);
            if let Ok(Ok(s)) =
                tokio::time::timeout(std::time::Duration::from_millis(200), connect).await
            {
                fillers.push(s);
            }
        }
        let listening = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let open = listening.local_addr().expect("an address");
        let connect = |addr| tokio::net::TcpStream::connect(addr);
        let started = tokio::time::Instant::now();
        let deadline = started + std::time::Duration::from_secs(10);
        let (_, reached) = connect_in_turn(silent, &[open], deadline, connect)
            .await
            .expect("the second accepts");
        assert_eq!(reached, open);
        let took = started.elapsed();
        assert!(
            took >= ATTEMPT_TIMEOUT && took < std::time::Duration::from_secs(5),
            "{took:?}"
        );
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(400);
        let errors = connect_in_turn(open, &[silent], deadline, |addr| async move {
            if addr == open {
                Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
            } else {
                tokio::net::TcpStream::connect(addr).await
            }
        })
        .await
        .expect_err("the last never answers");
        let kinds: Vec<std::io::ErrorKind> = errors.iter().map(|(_, e)| e.kind()).collect();
        assert_eq!(
            kinds,
            [
                std::io::ErrorKind::ConnectionRefused,
                std::io::ErrorKind::TimedOut
            ]
        );
        drop(fillers);
    }

    #[test]
    fn a_long_value_in_a_mistake_is_shortened_around_its_ends() {
        let short = usage("--connection `close` is not a header value", "e.g. close");
        assert!(
            short
                .explain("t", "usage")
                .starts_with("t: --connection `close` is not")
        );
        let long = usage(
            format!(
                "--connection `{}` is not a header value",
                "x".repeat(100_000)
            ),
            "e.g. close",
        );
        let told = long.explain("t", "usage");
        let first = told.lines().next().unwrap();
        assert!(first.chars().count() < 320, "{} characters", first.len());
        assert!(first.starts_with("t: --connection `xxx"), "{first}");
        assert!(first.ends_with("` is not a header value"), "{first}");
        assert!(first.contains("…(99777 characters left out)…"), "{first}");
    }

    #[test]
    fn flags_read_with_a_space_or_an_equals_sign() {
        assert_eq!(
            read("--port 9000 --workshop --host-name=a.local --host-name b.local url").unwrap(),
            [
                Arg::Flag("--port", Some("9000")),
                Arg::Flag("--workshop", None),
                Arg::Flag("--host-name", Some("a.local")),
                Arg::Flag("--host-name", Some("b.local")),
                Arg::Positional("url"),
            ]
        );
        assert_eq!(read("-h").unwrap(), [Arg::Help]);
        assert_eq!(read("-V --version").unwrap(), [Arg::Version, Arg::Version]);
        assert_eq!(read("--port=").unwrap(), [Arg::Flag("--port", Some(""))]);
    }

    #[test]
    fn mistakes_are_explained_with_a_hint() {
        for (line, error, hint) in [
            (
                "--bogus 1",
                "unknown flag `--bogus`",
                "the flags are --port",
            ),
            (
                "--port",
                "--port needs a value: a port number",
                "e.g. --port 8080",
            ),
            (
                "--port 1 --port=2",
                "--port is given twice",
                "give each flag once",
            ),
            (
                "--workshop=yes",
                "--workshop takes no value",
                "write --workshop alone",
            ),
        ] {
            let mistake = read(line).expect_err(line);
            assert_eq!(mistake.error, error, "{line}");
            assert!(mistake.hint.starts_with(hint), "{line}: {}", mistake.hint);
        }
    }

    #[test]
    fn only_addresses_and_localhost_are_looked_up() {
        for host in [
            "127.0.0.1",
            "::1",
            "192.0.2.1",
            "localhost",
            "LocalHost.",
            "lab.localhost",
        ] {
            assert!(may_look_up(host), "{host}");
        }
        for host in [
            "example.com",
            "localhost.example.com",
            "notlocalhost",
            "my-laptop",
            "",
        ] {
            assert!(!may_look_up(host), "{host}");
        }
    }

    /// The resolver is asked for `localhost` itself (the hosts file's), not
    /// for a name under it or with a final dot (found in review: those went
    /// to the network's DNS server, and `localhost.` failed).
    #[test]
    fn a_name_under_localhost_is_looked_up_as_localhost() {
        for host in ["localhost", "LocalHost.", "lab.localhost", "a.b.localhost."] {
            assert_eq!(looked_up_as(host).as_deref(), Some("localhost"), "{host}");
        }
        assert_eq!(looked_up_as("127.0.0.1").as_deref(), Some("127.0.0.1"));
        assert_eq!(looked_up_as("::1").as_deref(), Some("::1"));
        assert_eq!(looked_up_as("example.com"), None);
    }
}
