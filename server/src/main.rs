//! `keepalive-lab`: serve the lab until Ctrl-C or SIGTERM.
//!
//! One binary, three tools: `keepalive-lab [FLAGS]` serves the lab (the
//! default); the standalone tools are subcommands (see [`main`]).
//!
//! Listens on two ports (two origins, so two browser connection pools), each
//! on IPv4 loopback and, where available, IPv6 loopback too: Chromium sends
//! `localhost` over `::1`, which makes `localhost` a third pool to compare.
//! Usually started by `cargo xtask run`, which builds the frontend first.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use keepalive_lab_server::cli::{Arg, Flags, Spec, Usage};
use keepalive_lab_server::sessions::key::InstructorKey;
use keepalive_lab_server::{Config, Lab, listener, tls};
use tokio::net::{TcpListener, TcpSocket};

const USAGE: &str = "\
usage: keepalive-lab [--port N] [--second-port N] [--bind ADDR] [--workshop] [--host-name NAME]
                     [--dist DIR] [--middlebox-port N] [--instructor-key KEY]
                     [--tls-port N] [--tls-h1-port N] [--tls-streams-port N]
                     [--tls-cert FILE --tls-key FILE]

  --port N                main port (default 8080; 0 picks a free one)
  --second-port N         a second origin for the pool lessons (default: port + 1)
  --bind ADDR             address to listen on (default 127.0.0.1, plus ::1 when it is loopback)
  --workshop              serve a room: listen on every interface (0.0.0.0) unless --bind says
                          otherwise, and print the join link and the instructor link
  --host-name NAME        another name participants reach this machine by (repeatable), e.g. lab.local
  --dist DIR              the built frontend (default ./dist; a binary from `cargo xtask dist`
                          has the page built in and needs none)
  --middlebox-port N      the lab's middlebox, a NAT-like proxy in front of it (default: port + 2)
  --instructor-key KEY    the key for the whole-server view (default: random, printed at start)
  --tls-port N            HTTPS offering HTTP/2 and HTTP/1.1 by ALPN (default: port + 3)
  --tls-h1-port N         HTTPS offering only HTTP/1.1, to compare (default: port + 4)
  --tls-streams-port N    HTTPS with HTTP/2 allowing 4 streams at once per connection
                          (default: port + 5)
  --tls-cert FILE         the TLS ports' certificate chain (PEM); with --tls-key. Default: a
  --tls-key FILE          self-signed one made at start for localhost, 127.0.0.1 and ::1

  -h, --help              this text
  -V, --version           the lab's version

subcommands (standalone tools):
  keepalive-lab middlebox --help    a NAT gateway / load balancer idle timeout in front of any TCP service
  keepalive-lab agent --help        a Node-style http.Agent client against any HTTP/1.1 server";

/// Command-line options.
/// The flags, with what each takes (`keepalive_lab_server::cli`: `--flag
/// value` or `--flag=value`, each once but `--host-name`).
const FLAGS: &[Spec] = &[
    Spec::value("--port", "a port number", "8080"),
    Spec::value("--second-port", "a port number", "8081"),
    Spec::value("--middlebox-port", "a port number", "8082"),
    Spec::value("--bind", "an IP address", "127.0.0.1"),
    Spec::switch("--workshop"),
    Spec::value("--host-name", "a host name", "lab.local").repeating(),
    Spec::value("--dist", "a directory", "dist"),
    Spec::value("--instructor-key", "a key", "a-long-secret"),
    Spec::value("--tls-port", "a port number", "8083"),
    Spec::value("--tls-h1-port", "a port number", "8084"),
    Spec::value("--tls-streams-port", "a port number", "8085"),
    Spec::value("--tls-cert", "a PEM file", "cert.pem"),
    Spec::value("--tls-key", "a PEM file", "key.pem"),
];

/// What the lab's command line asks for.
#[derive(Debug)]
enum Command {
    /// Serve the lab.
    Run(Options),
    /// `--help`: the usage, on stdout.
    Help,
    /// `--version`.
    Version,
}

#[derive(Debug)]
struct Options {
    port: u16,
    second_port: Option<u16>,
    middlebox_port: Option<u16>,
    bind: IpAddr,
    /// `--bind` was given (else `--workshop` picks 0.0.0.0).
    bind_given: bool,
    workshop: bool,
    host_names: Vec<String>,
    dist: PathBuf,
    key: InstructorKey,
    tls_port: Option<u16>,
    tls_h1_port: Option<u16>,
    tls_streams_port: Option<u16>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut options = Options {
        port: 8080,
        second_port: None,
        middlebox_port: None,
        bind: IpAddr::from([127, 0, 0, 1]),
        bind_given: false,
        workshop: false,
        host_names: Vec::new(),
        dist: PathBuf::from("dist"),
        key: InstructorKey::random(),
        tls_port: None,
        tls_h1_port: None,
        tls_streams_port: None,
        tls_cert: None,
        tls_key: None,
    };
    let args: Vec<String> = args.collect();
    let port = |flag: &str, v: &str| {
        v.parse::<u16>()
            .map_err(|_| format!("{flag} takes 0 to 65535, got `{v}`"))
    };
    let explain = |m: Usage| m.explain("keepalive-lab", USAGE);
    for arg in Flags::new(&args, FLAGS) {
        let (flag, v) = match arg.map_err(explain)? {
            Arg::Help => return Ok(Command::Help),
            Arg::Version => return Ok(Command::Version),
            Arg::Flag(flag, value) => (flag, value.unwrap_or_default()),
            Arg::Positional(other) => {
                return Err(format!("unexpected argument `{other}`\n\n{USAGE}"));
            }
        };
        match flag {
            "--port" => options.port = port(flag, v)?,
            "--second-port" => options.second_port = Some(port(flag, v)?),
            "--middlebox-port" => options.middlebox_port = Some(port(flag, v)?),
            "--bind" => {
                options.bind = v.parse().map_err(|_| {
                    format!("--bind takes an IP address such as 127.0.0.1 or ::1, got `{v}`")
                })?;
                options.bind_given = true;
            }
            "--workshop" => options.workshop = true,
            "--host-name" => {
                let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
                if v.is_empty() || v.len() > 253 || !v.chars().all(ok) {
                    return Err(format!(
                        "--host-name takes a DNS name such as lab.local, got `{v}`"
                    ));
                }
                options.host_names.push(v.to_ascii_lowercase());
            }
            "--dist" => options.dist = PathBuf::from(v),
            "--instructor-key" => options.key = InstructorKey::parse(v)?,
            "--tls-port" => options.tls_port = Some(port(flag, v)?),
            "--tls-streams-port" => options.tls_streams_port = Some(port(flag, v)?),
            "--tls-h1-port" => options.tls_h1_port = Some(port(flag, v)?),
            "--tls-cert" => options.tls_cert = Some(PathBuf::from(v)),
            _ => options.tls_key = Some(PathBuf::from(v)),
        }
    }
    if options.workshop && !options.bind_given {
        options.bind = IpAddr::from([0, 0, 0, 0]);
    }
    if options.tls_cert.is_some() != options.tls_key.is_some() {
        return Err(
            "--tls-cert and --tls-key go together: give both, or neither for a \
                    certificate made at start"
                .to_owned(),
        );
    }
    Ok(Command::Run(options))
}

/// The port of a TLS listener: `given`, or the main port + `offset` (0 when
/// the main port was 0), never one of the lab's other ports.
fn tls_port_for(
    given: Option<u16>,
    asked: u16,
    port: u16,
    offset: u16,
    flag: &str,
    taken: &[u16],
) -> Result<u16, String> {
    let chosen = match given {
        Some(p) => p,
        None if asked == 0 => 0,
        None => port
            .checked_add(offset)
            .ok_or_else(|| format!("--port {port} leaves no room for {flag}; give {flag}"))?,
    };
    if chosen != 0 && taken.contains(&chosen) {
        return Err(format!(
            "{flag} must differ from the lab's other ports ({taken:?})"
        ));
    }
    Ok(chosen)
}

/// Connections the kernel queues before the lab accepts them. tokio's
/// default (128) drops the SYNs of a room of laptops opening six connections
/// each at once, and each dropped one waits a 1 s retry (seen in the bench).
/// The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 1024;

fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Binds `port` on `bind`, and on `::1` too when `bind` is IPv4 loopback.
/// Returns the listeners and the port actually bound (for `--port 0`).
async fn bind_origin(bind: IpAddr, port: u16) -> Result<(Vec<TcpListener>, u16), String> {
    let main = listen(SocketAddr::new(bind, port)).map_err(|e| {
        format!(
            "cannot listen on {}: {e}\nIs another lab running? Try another --port.",
            SocketAddr::new(bind, port)
        )
    })?;
    let port = main.local_addr().map_err(|e| e.to_string())?.port();
    let mut listeners = vec![main];
    if bind == IpAddr::from([127, 0, 0, 1]) {
        match listen(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port)) {
            Ok(v6) => listeners.push(v6),
            Err(e) => eprintln!(
                "note: no IPv6 loopback on port {port} ({e}); `localhost` may still work over IPv4"
            ),
        }
    }
    Ok((listeners, port))
}

async fn start(
    options: Options,
) -> Result<(Lab, tokio::task::JoinHandle<std::io::Result<()>>), String> {
    let (mut listeners, port) = bind_origin(options.bind, options.port).await?;
    let second = match options.second_port {
        Some(p) => p,
        None if options.port == 0 => 0,
        None => port
            .checked_add(1)
            .ok_or("--port 65535 leaves no room for the second port; give --second-port")?,
    };
    if second == port {
        return Err(format!("--second-port must differ from --port ({port})"));
    }
    let (more, second) = bind_origin(options.bind, second).await?;
    listeners.extend(more);
    let middlebox_port = match options.middlebox_port {
        Some(p) => p,
        None if options.port == 0 => 0,
        None => port.checked_add(2).ok_or(
            "--port 65534 or more leaves no room for the middlebox; give --middlebox-port",
        )?,
    };
    if middlebox_port == port || middlebox_port == second {
        return Err(format!(
            "--middlebox-port must differ from the lab's ports ({port}, {second})"
        ));
    }
    let (middlebox_listeners, middlebox_port) = bind_origin(options.bind, middlebox_port).await?;
    let taken = [port, second, middlebox_port];
    let tls_port = tls_port_for(
        options.tls_port,
        options.port,
        port,
        3,
        "--tls-port",
        &taken,
    )?;
    let (tls_listeners, tls_port) = bind_origin(options.bind, tls_port).await?;
    let taken = [port, second, middlebox_port, tls_port];
    let tls_h1_port = tls_port_for(
        options.tls_h1_port,
        options.port,
        port,
        4,
        "--tls-h1-port",
        &taken,
    )?;
    let (tls_h1_listeners, tls_h1_port) = bind_origin(options.bind, tls_h1_port).await?;
    let taken = [port, second, middlebox_port, tls_port, tls_h1_port];
    let tls_streams_port = tls_port_for(
        options.tls_streams_port,
        options.port,
        port,
        5,
        "--tls-streams-port",
        &taken,
    )?;
    let (tls_streams_listeners, tls_streams_port) =
        bind_origin(options.bind, tls_streams_port).await?;
    // The addresses participants can use: loopback for this machine; every
    // interface's address when the lab listens on all of them.
    let hosts: Vec<String> = if options.bind.is_loopback() {
        vec!["127.0.0.1".to_owned()]
    } else if options.bind.is_unspecified() {
        let mut hosts: Vec<String> = if_addrs::get_if_addrs()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| !i.is_loopback() && i.ip().is_ipv4())
            .map(|i| i.ip().to_string())
            .collect();
        hosts.extend(options.host_names.iter().cloned());
        if hosts.is_empty() {
            hosts.push("127.0.0.1".to_owned());
        }
        hosts
    } else {
        let mut hosts = vec![options.bind.to_string()];
        hosts.extend(options.host_names.iter().cloned());
        hosts
    };
    let tls_source = match (&options.tls_cert, &options.tls_key) {
        (Some(cert), Some(key)) => tls::CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        // Every name and address participants are told to use, so that the
        // HTTPS ports in a workshop answer them with a matching certificate.
        _ => tls::CertSource::Generate {
            extra_names: hosts.clone(),
        },
    };
    let identity = tls::Identity::load(&tls_source)?;
    let h2_config = tls::server_config(&identity, tls::Offer::H2AndHttp11)?;
    let h1_config = tls::server_config(&identity, tls::Offer::Http11Only)?;
    let mut tls_ports: Vec<_> = tls_listeners
        .into_iter()
        .map(|l| (l, h2_config.clone(), tls::MAX_CONCURRENT_STREAMS))
        .collect();
    tls_ports.extend(
        tls_h1_listeners
            .into_iter()
            .map(|l| (l, h1_config.clone(), tls::MAX_CONCURRENT_STREAMS)),
    );
    tls_ports.extend(
        tls_streams_listeners
            .into_iter()
            .map(|l| (l, h2_config.clone(), tls::LIMITED_STREAMS)),
    );
    let addresses: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let key = options.key.clone();
    let lab = Lab::new(Config {
        instructor_key: options.key,
        dist_dir: options.dist,
        listeners: addresses.clone(),
        // Every address and name participants are told to use (the join
        // link's is the first), so that a page opened by it may use the
        // lab's other ports: its second origin, middlebox and HTTPS ports.
        host_names: hosts.clone(),
        ..Config::default()
    });
    let host = &hosts[0];
    if !options.bind.is_loopback() {
        println!(
            "WORKSHOP MODE: the lab listens on {} — anyone on this network can open it. \
             Each participant gets a session of their own; the instructor key below shows and \
             controls the whole room.",
            options.bind
        );
        for h in &hosts {
            println!("  participants join at: http://{h}:{port}/");
        }
        println!(
            "  instructor view (keep this link to yourself): http://{host}:{port}/#instructor&key={}",
            key.as_str()
        );
    } else {
        println!("keepalive-lab is running: open http://{host}:{port}/   (Ctrl-C stops it)");
    }
    println!("  second origin for the pool lessons: http://{host}:{second}/");
    println!(
        "  the lab through its middlebox (a NAT gateway's idle timeout, scaled): http://{host}:{middlebox_port}/"
    );
    println!("  HTTPS, HTTP/2 (one connection, many streams): https://{host}:{tls_port}/");
    println!("  HTTPS, HTTP/1.1 only (the same TLS, to compare): https://{host}:{tls_h1_port}/");
    println!(
        "  HTTPS, HTTP/2 with {} streams at once per connection: https://{host}:{tls_streams_port}/",
        tls::LIMITED_STREAMS
    );
    if identity.generated() {
        println!(
            "    (a certificate made at start for localhost, 127.0.0.1, ::1{}: the browser warns \
             once per origin; choose Advanced → Proceed, or give --tls-cert/--tls-key)",
            hosts
                .iter()
                .filter(|h| h.as_str() != "127.0.0.1")
                .map(|h| format!(", {h}"))
                .collect::<String>()
        );
    }
    if addresses.iter().any(|a| a.is_ipv6()) {
        println!("  http://localhost:{port}/ is yet another pool (Chromium sends it over ::1)");
    }
    println!(
        "  instructor key (whole-server view; keep it to yourself): {}",
        key.as_str()
    );
    let upstream = SocketAddr::new(
        if options.bind.is_unspecified() || options.bind.is_loopback() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            options.bind
        },
        port,
    );
    tokio::spawn(keepalive_lab_server::middlebox::serve_all_in_lab(
        middlebox_listeners,
        upstream,
        lab.clone(),
    ));
    tokio::spawn(tls::serve_ports(tls_ports, lab.clone()));
    let server = tokio::spawn(listener::serve_all(listeners, lab.clone()));
    Ok((lab, server))
}

/// jemalloc instead of the system allocator: a held connection's memory is
/// 12.8 KB with it against 16.3 KB with glibc's malloc and 24.7 KB with
/// mimalloc (bench figure 2, 10 000 held connections; see
/// bench/src/causes.md).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // Logs go to stderr: the standalone tools' stdout is JSON lines only,
    // and the lab's stdout its console (the links to open).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "keepalive_lab_server=info".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("middlebox") => {
            return keepalive_lab_server::middlebox::cli::run_cli(args[1..].to_vec()).await;
        }
        Some("agent") => {
            return keepalive_lab_server::agent::cli::run_cli(args[1..].to_vec()).await;
        }
        _ => {}
    }
    let options = match parse(args.into_iter()) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("{}", keepalive_lab_server::cli::version());
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if keepalive_lab_server::assets::embedded().is_none()
        && !options.dist.join("index.html").is_file()
    {
        eprintln!(
            "warning: {} has no index.html; build the frontend with `cargo xtask build` \
             (or start with `cargo xtask run`)",
            options.dist.display()
        );
    }
    let shutdown = keepalive_lab_server::cli::shutdown_signal();
    let (lab, server) = match start(options).await {
        Ok(started) => started,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    shutdown.await;
    println!("shutting down: closing every connection");
    lab.begin_shutdown();
    match server.await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("server error: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("server task failed: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(line: &str) -> Result<Options, String> {
        match parse(line.split_whitespace().map(str::to_owned))? {
            Command::Run(options) => Ok(options),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn flags_take_a_space_or_an_equals_sign_and_host_names_repeat() {
        let o = parse_line("--port=0 --workshop --host-name A.local --host-name=b.local").unwrap();
        assert_eq!(o.port, 0);
        assert!(o.workshop);
        assert_eq!(
            o.bind,
            IpAddr::from([0, 0, 0, 0]),
            "a workshop listens everywhere"
        );
        assert_eq!(o.host_names, ["a.local", "b.local"]);
    }

    #[test]
    fn mistakes_say_what_is_wrong_and_show_the_usage() {
        for (line, words) in [
            ("--bogus", "unknown flag `--bogus`"),
            ("--port", "--port needs a value"),
            ("--port 1 --port 2", "--port is given twice"),
            ("--workshop=yes", "--workshop takes no value"),
            ("--port 70000", "--port takes 0 to 65535"),
            ("serve", "unexpected argument `serve`"),
        ] {
            let message = parse_line(line).expect_err(line);
            assert!(message.contains(words), "{line}: {message}");
        }
        assert!(parse_line("--bogus").unwrap_err().ends_with(USAGE));
        let alone = |flag: &str| parse(std::iter::once(flag.to_owned()));
        assert!(matches!(alone("--help"), Ok(Command::Help)));
        assert!(matches!(alone("-V"), Ok(Command::Version)));
        assert!(matches!(alone("--version"), Ok(Command::Version)));
    }

    #[test]
    fn the_usage_line_and_the_list_name_every_flag() {
        let (line, list) = USAGE
            .split_once("\n\n")
            .expect("a usage line, then the list");
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == '[' || c == ']')
            .collect();
        for spec in FLAGS {
            assert!(
                words.contains(&spec.name),
                "the usage line lacks {}",
                spec.name
            );
            assert!(
                list.contains(&format!("  {} ", spec.name)),
                "the list lacks {}",
                spec.name
            );
        }
    }
}
