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

use keepalive_lab_server::cli::{self, Arg, Flags, Spec, Usage, usage};
use keepalive_lab_server::sessions::key::InstructorKey;
use keepalive_lab_server::{Config, Lab, listener, say, say_err, tls};
use tokio::net::{TcpListener, TcpSocket};

const USAGE: &str = "\
usage: keepalive-lab [--port N] [--second-port N] [--bind ADDR] [--workshop] [--host-name NAME]
                     [--dist DIR] [--middlebox-port N] [--instructor-key KEY]
                     [--tls-port N] [--tls-h1-port N] [--tls-streams-port N]
                     [--tls-cert FILE --tls-key FILE]

  --port N                main port (default 8080; 0 picks a free one, and then every port
                          not given below is a free one too)
  --second-port N         a second origin for the pool lessons (default: port + 1)
  --bind ADDR             address to listen on (default 127.0.0.1, and then ::1 too; any other
                          address, e.g. 127.0.0.2 or ::1, is the only one)
  --workshop              serve a room: listen on every interface (0.0.0.0) unless --bind says
                          otherwise, and print the join link and the instructor link
  --host-name NAME        another name participants reach this machine by (repeatable), e.g.
                          lab.local: the lab answers to it and its certificate names it
  --dist DIR              the built frontend (default ./dist; a binary from `cargo xtask dist`
                          has the page built in and needs none)
  --middlebox-port N      the lab's middlebox, a NAT-like proxy in front of it (default: port + 2)
  --instructor-key KEY    the key for the whole-server view (default: random, printed at start)
  --tls-port N            HTTPS offering HTTP/2 and HTTP/1.1 by ALPN (default: port + 3)
  --tls-h1-port N         HTTPS offering only HTTP/1.1, to compare (default: port + 4)
  --tls-streams-port N    HTTPS with HTTP/2 allowing 4 streams at once per connection
                          (default: port + 5)
  --tls-cert FILE         the TLS ports' certificate chain (PEM); with --tls-key. Default: a
  --tls-key FILE          self-signed one made at start for localhost, 127.0.0.1, ::1, the
                          --bind address and each --host-name. Each file: a regular file of at
                          most 1 MiB

  -h, --help              this text
  -V, --version           the lab's version

subcommands (standalone tools):
  keepalive-lab middlebox --help    a NAT gateway / load balancer idle timeout in front of a TCP service on this machine
  keepalive-lab agent --help        a Node-style http.Agent client against an HTTP/1.1 server on this machine";

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
    /// Serve the lab (boxed: the options are large, the other answers empty).
    Run(Box<Options>),
    /// `--help`: the usage, on stdout.
    Help,
    /// `--version`.
    Version,
}

#[derive(Debug)]
struct Options {
    /// The lab's six ports, as asked (checked against each other in
    /// [`parse`], so a clash is a usage mistake before anything is bound).
    ports: Ports,
    /// The address to listen on: `--bind`, else 0.0.0.0 with
    /// `--workshop`, else 127.0.0.1.
    bind: IpAddr,
    host_names: Vec<String>,
    dist: PathBuf,
    key: InstructorKey,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

/// Where a port number came from, so that an error about it names the flag
/// to change (review L6: a clash of a default used to blame a flag the user
/// never gave).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortFrom {
    /// The flag was given (or, for `--port`, its default 8080).
    Given(&'static str),
    /// Not given: `--port` + `offset`, the flag's default.
    Default {
        /// The flag that would have given it.
        flag: &'static str,
        /// Its distance from the main port.
        offset: u16,
    },
}

/// One of the lab's ports: the number asked for (0: any free one) and
/// where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Port {
    /// The port asked for; 0 lets the kernel choose a free one.
    number: u16,
    /// The flag, or the default, that gave it: named in its errors.
    from: PortFrom,
}

impl Port {
    /// The flag that gives this port.
    fn flag(&self) -> &'static str {
        match self.from {
            PortFrom::Given(flag) | PortFrom::Default { flag, .. } => flag,
        }
    }

    /// The port as an error message names it: `--tls-port 8083`, or `the
    /// default --tls-port (--port + 3 = 8083)`.
    fn describe(&self) -> String {
        match self.from {
            PortFrom::Given(flag) => format!("{flag} {}", self.number),
            PortFrom::Default { flag, offset } => {
                format!("the default {flag} (--port + {offset} = {})", self.number)
            }
        }
    }

    /// What to write instead when this port cannot be used, as `error`
    /// says why (found in review: an address this machine does not have,
    /// or a port below 1024 without root, was hinted as "another lab
    /// running?").
    fn remedy(&self, error: &std::io::Error) -> String {
        match error.kind() {
            std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::InvalidInput => {
                return "--bind names an address this machine does not have: give one of its \
                        own, or leave --bind out (127.0.0.1)"
                    .to_owned();
            }
            std::io::ErrorKind::PermissionDenied if self.number != 0 && self.number < 1024 => {
                return format!(
                    "ports below 1024 need root: give {} 1024 or above (0 picks a free one)",
                    self.flag()
                );
            }
            _ => {}
        }
        match self.from {
            PortFrom::Given("--port") if self.number == 0 => {
                "no free port was found: is this machine out of ports or descriptors?".to_owned()
            }
            PortFrom::Given("--port") => {
                "is another lab running? Give another --port (0 picks a free one)".to_owned()
            }
            PortFrom::Given(flag) => format!("give another {flag}"),
            PortFrom::Default { flag, .. } => format!("give {flag}, or another --port"),
        }
    }
}

/// The lab's six ports, in the order they are bound.
#[derive(Debug, Clone, Copy)]
struct Ports {
    /// `--port`: the page.
    main: Port,
    /// `--second-port`: a second origin, for the pool lessons.
    second: Port,
    /// `--middlebox-port`: the lab through its middlebox.
    middlebox: Port,
    /// `--tls-port`: HTTPS with HTTP/2 and HTTP/1.1.
    tls: Port,
    /// `--tls-h1-port`: HTTPS with HTTP/1.1 only.
    tls_h1: Port,
    /// `--tls-streams-port`: HTTPS with HTTP/2 limited to a few streams.
    tls_streams: Port,
}

impl Ports {
    /// The six ports from the flags given (`None`: not given): each
    /// default is `--port` + its offset, or a free port when `--port` is 0.
    /// Refuses, as one mistake each, defaults that do not fit under 65536
    /// (all of them at once) and two ports with the same number.
    fn plan(main: u16, given: [(&'static str, u16, Option<u16>); 5]) -> Result<Ports, Usage> {
        let mut overflow = Vec::new();
        let others = given.map(|(flag, offset, given)| {
            let from = match given {
                Some(_) => PortFrom::Given(flag),
                None => PortFrom::Default { flag, offset },
            };
            let number = match given {
                Some(p) => p,
                None if main == 0 => 0,
                None => main.checked_add(offset).unwrap_or_else(|| {
                    overflow.push(format!("{flag} (--port + {offset})"));
                    0
                }),
            };
            Port { number, from }
        });
        if !overflow.is_empty() {
            let flags: Vec<&str> = others
                .iter()
                .filter(|p| matches!(p.from, PortFrom::Default { .. }))
                .filter(|p| p.number == 0)
                .map(Port::flag)
                .collect();
            return Err(usage(
                format!(
                    "--port {main} leaves no room under 65536 for the default {}",
                    overflow.join(", ")
                ),
                format!("give a lower --port, or give {}", flags.join(", ")),
            ));
        }
        let [second, middlebox, tls, tls_h1, tls_streams] = others;
        let ports = Ports {
            main: Port {
                number: main,
                from: PortFrom::Given("--port"),
            },
            second,
            middlebox,
            tls,
            tls_h1,
            tls_streams,
        };
        let all = ports.all();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                if a.number == 0 || a.number != b.number {
                    continue;
                }
                // Name the default that collided, if one did: that is the
                // flag the user did not write and must now give.
                let (taken, by) = match (a.from, b.from) {
                    (_, PortFrom::Default { .. }) => (b, a),
                    _ => (a, b),
                };
                return Err(match taken.from {
                    PortFrom::Default { flag, .. } => usage(
                        format!("{} is taken by {}", taken.describe(), by.flag()),
                        format!("give {flag}, or another --port"),
                    ),
                    PortFrom::Given(_) => usage(
                        format!(
                            "{} and {} are the same port",
                            taken.describe(),
                            by.describe()
                        ),
                        "give each of the lab's six ports a different number",
                    ),
                });
            }
        }
        Ok(ports)
    }

    /// The six, in the order they are bound.
    fn all(&self) -> [Port; 6] {
        [
            self.main,
            self.second,
            self.middlebox,
            self.tls,
            self.tls_h1,
            self.tls_streams,
        ]
    }
}

/// Whether `name` is a DNS name: dot-separated labels of 1 to 63 letters,
/// digits and hyphens, none starting or ending with a hyphen, at most 253
/// characters (review N3: `...` or `-` used to reach the certificate and
/// the Host check). A trailing dot (the root) is allowed.
fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Reads the lab's command line; a mistake comes back as the text to print
/// on stderr (`keepalive-lab: …`, a hint, the usage) before exit code 2.
fn parse(args: impl Iterator<Item = String>) -> Result<Command, String> {
    parse_flags(args).map_err(|m| m.explain("keepalive-lab", USAGE))
}

/// [`parse`], each mistake a [`Usage`] (what was wrong, what to write),
/// so that every one is printed the same way (review N2).
fn parse_flags(args: impl Iterator<Item = String>) -> Result<Command, Usage> {
    let mut bind = IpAddr::from([127, 0, 0, 1]);
    let (mut bind_given, mut workshop) = (false, false);
    let mut host_names: Vec<String> = Vec::new();
    let mut dist = PathBuf::from("dist");
    let mut key = None;
    let (mut tls_cert, mut tls_key) = (None, None);
    let (mut main_port, mut second, mut middlebox) = (8080, None, None);
    let (mut tls_port, mut tls_h1, mut tls_streams) = (None, None, None);
    let args: Vec<String> = args.collect();
    let port = |flag: &str, v: &str| {
        cli::whole::<u16>(v).ok_or_else(|| {
            let example = FLAGS
                .iter()
                .find(|s| s.name == flag)
                .map_or("", |s| s.example);
            usage(
                format!("{flag} takes 0 to 65535, got `{v}`"),
                format!("e.g. {flag} {example} (0 picks a free port)"),
            )
        })
    };
    for arg in Flags::new(&args, FLAGS) {
        let (flag, v) = match arg? {
            Arg::Help => return Ok(Command::Help),
            Arg::Version => return Ok(Command::Version),
            Arg::Flag(flag, value) => (flag, value.unwrap_or_default()),
            Arg::Positional(other) => {
                return Err(usage(
                    format!("unexpected argument `{other}`"),
                    "the lab takes only flags; the standalone tools are \
                     `keepalive-lab middlebox` and `keepalive-lab agent`",
                ));
            }
        };
        match flag {
            "--port" => main_port = port(flag, v)?,
            "--second-port" => second = Some(port(flag, v)?),
            "--middlebox-port" => middlebox = Some(port(flag, v)?),
            "--bind" => {
                bind = v.parse().map_err(|_| {
                    usage(
                        format!("--bind takes an IP address, got `{v}`"),
                        "e.g. --bind 127.0.0.1, --bind ::1 or --bind 0.0.0.0",
                    )
                })?;
                bind_given = true;
            }
            "--workshop" => workshop = true,
            "--host-name" => {
                if !is_dns_name(v) {
                    return Err(usage(
                        format!("--host-name takes a DNS name, got `{v}`"),
                        "labels of letters, digits and hyphens (not first or last) \
                         joined by dots, e.g. --host-name lab.local",
                    ));
                }
                let name = v.strip_suffix('.').unwrap_or(v).to_ascii_lowercase();
                if !host_names.contains(&name) {
                    host_names.push(name);
                }
            }
            "--dist" => dist = PathBuf::from(v),
            "--instructor-key" => {
                key = Some(
                    InstructorKey::parse(v)
                        .map_err(|e| usage(e, "e.g. --instructor-key a-long-secret"))?,
                );
            }
            "--tls-port" => tls_port = Some(port(flag, v)?),
            "--tls-streams-port" => tls_streams = Some(port(flag, v)?),
            "--tls-h1-port" => tls_h1 = Some(port(flag, v)?),
            "--tls-cert" => tls_cert = Some(PathBuf::from(v)),
            _ => tls_key = Some(PathBuf::from(v)),
        }
    }
    if workshop && !bind_given {
        bind = IpAddr::from([0, 0, 0, 0]);
    }
    if tls_cert.is_some() != tls_key.is_some() {
        return Err(usage(
            "--tls-cert and --tls-key go together",
            "give both, or neither for a certificate made at start",
        ));
    }
    let ports = Ports::plan(
        main_port,
        [
            ("--second-port", 1, second),
            ("--middlebox-port", 2, middlebox),
            ("--tls-port", 3, tls_port),
            ("--tls-h1-port", 4, tls_h1),
            ("--tls-streams-port", 5, tls_streams),
        ],
    )?;
    Ok(Command::Run(Box::new(Options {
        ports,
        bind,
        host_names,
        dist,
        key: key.unwrap_or_else(InstructorKey::random),
        tls_cert,
        tls_key,
    })))
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

/// A port the lab listens on, as bound.
struct Bound {
    /// On the bound address, and on `::1` beside 127.0.0.1.
    listeners: Vec<TcpListener>,
    /// The port actually bound (the kernel's choice for 0).
    port: u16,
    /// Whether `[::1]` answers on it (bound as `--bind ::1`, as the extra
    /// listener beside 127.0.0.1, or through `::`): only then is
    /// `http://localhost:PORT/` (which Chromium sends over `::1`) this lab
    /// (review L3).
    ipv6_loopback: bool,
}

/// Binds `port` on `bind`, and on `::1` too when `bind` is 127.0.0.1 (the
/// default: `localhost` is then a pool of its own). The error names the
/// flag or default that gave the port, and what to change (review L6).
async fn bind_origin(bind: IpAddr, port: Port) -> Result<Bound, String> {
    let address = SocketAddr::new(bind, port.number);
    let main = listen(address).map_err(|e| {
        format!(
            "cannot listen on {address} ({}): {e}\n  hint: {}",
            port.describe(),
            port.remedy(&e)
        )
    })?;
    let number = main.local_addr().map_err(|e| e.to_string())?.port();
    let mut listeners = vec![main];
    let mut ipv6_loopback =
        bind == IpAddr::from(Ipv6Addr::LOCALHOST) || bind == IpAddr::from(Ipv6Addr::UNSPECIFIED);
    if bind == IpAddr::from([127, 0, 0, 1]) {
        match listen(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), number)) {
            Ok(v6) => {
                listeners.push(v6);
                ipv6_loopback = true;
            }
            Err(e) => say_err!(
                "note: no IPv6 loopback on port {number} ({e}); `localhost` may still work over IPv4"
            ),
        }
    }
    Ok(Bound {
        listeners,
        port: number,
        ipv6_loopback,
    })
}

/// An address as a URL and a `Host` header write it: IPv6 in brackets
/// (review M1: `http://::1:8080/` is not a URL).
fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The addresses and names participants are told to use, the first in
/// every printed link, in URL form ([`url_host`]): the bound address (or,
/// bound everywhere, each interface's IPv4 address), then each
/// `--host-name` (review M1, M2: with a loopback bind both used to be
/// replaced by 127.0.0.1).
fn hosts_for(bind: IpAddr, names: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = if bind.is_unspecified() {
        if_addrs::get_if_addrs()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| !i.is_loopback() && i.ip().is_ipv4())
            .map(|i| i.ip().to_string())
            .collect()
    } else {
        vec![url_host(bind)]
    };
    hosts.extend(names.iter().cloned());
    if hosts.is_empty() {
        hosts.push("127.0.0.1".to_owned());
    }
    hosts
}

async fn start(
    options: Options,
) -> Result<(Lab, tokio::task::JoinHandle<std::io::Result<()>>), String> {
    let ports = options.ports;
    let main = bind_origin(options.bind, ports.main).await?;
    let port = main.port;
    let localhost_too = main.ipv6_loopback;
    let mut listeners = main.listeners;
    let second = bind_origin(options.bind, ports.second).await?;
    listeners.extend(second.listeners);
    let second = second.port;
    let middlebox = bind_origin(options.bind, ports.middlebox).await?;
    let middlebox_port = middlebox.port;
    let tls_bound = bind_origin(options.bind, ports.tls).await?;
    let tls_port = tls_bound.port;
    let tls_h1_bound = bind_origin(options.bind, ports.tls_h1).await?;
    let tls_h1_port = tls_h1_bound.port;
    let tls_streams_bound = bind_origin(options.bind, ports.tls_streams).await?;
    let tls_streams_port = tls_streams_bound.port;
    let hosts = hosts_for(options.bind, &options.host_names);
    let tls_source = match (&options.tls_cert, &options.tls_key) {
        (Some(cert), Some(key)) => tls::CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        // Every name and address participants are told to use, so that the
        // HTTPS ports answer them with a matching certificate (IPv6 without
        // its URL brackets: the certificate names the address itself).
        _ => tls::CertSource::Generate {
            extra_names: hosts
                .iter()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
                .collect(),
        },
    };
    let identity = tls::Identity::load(&tls_source)?;
    let h2_config = tls::server_config(&identity, tls::Offer::H2AndHttp11)?;
    let h1_config = tls::server_config(&identity, tls::Offer::Http11Only)?;
    let mut tls_ports: Vec<_> = tls_bound
        .listeners
        .into_iter()
        .map(|l| (l, h2_config.clone(), tls::MAX_CONCURRENT_STREAMS))
        .collect();
    tls_ports.extend(
        tls_h1_bound
            .listeners
            .into_iter()
            .map(|l| (l, h1_config.clone(), tls::MAX_CONCURRENT_STREAMS)),
    );
    tls_ports.extend(
        tls_streams_bound
            .listeners
            .into_iter()
            .map(|l| (l, h2_config.clone(), tls::LIMITED_STREAMS)),
    );
    let addresses: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let key = options.key.clone();
    let (max_connections, open_files) = connections_that_fit(Config::default().max_connections);
    let lab = Lab::new(Config {
        max_connections,
        instructor_key: options.key,
        dist_dir: options.dist,
        listeners: addresses,
        // Every address and name participants are told to use (the join
        // link's is the first), so that a page opened by it may use the
        // lab's other ports: its second origin, middlebox and HTTPS ports.
        host_names: hosts.clone(),
        ..Config::default()
    });
    // The lab begins shutting down before this is printed, and a console
    // that cannot be written is ignored (review H1), so the banner never
    // stops the lab.
    let host = &hosts[0];
    if !options.bind.is_loopback() {
        say!(
            "WORKSHOP MODE: the lab listens on {} — anyone on this network can open it. \
             Each participant gets a session of their own; the instructor key below shows and \
             controls the whole room.",
            options.bind
        );
        for h in &hosts {
            say!("  participants join at: http://{h}:{port}/");
        }
        say!(
            "  instructor view (keep this link to yourself): http://{host}:{port}/#instructor&key={}",
            key.as_str()
        );
    } else {
        say!("keepalive-lab is running: open http://{host}:{port}/   (Ctrl-C stops it)");
        for name in &hosts[1..] {
            say!(
                "  also as http://{name}:{port}/ (where {name} leads to {})",
                options.bind
            );
        }
    }
    if let Some(limit) = open_files {
        say!(
            "  the open-file limit is {limit}: the lab serves at most {max_connections} \
             connections at once (raise it with `ulimit -Hn` for more)"
        );
    }
    say!("  second origin for the pool lessons: http://{host}:{second}/");
    say!(
        "  the lab through its middlebox (a NAT gateway's idle timeout, scaled): http://{host}:{middlebox_port}/"
    );
    say!("  HTTPS, HTTP/2 (one connection, many streams): https://{host}:{tls_port}/");
    say!("  HTTPS, HTTP/1.1 only (the same TLS, to compare): https://{host}:{tls_h1_port}/");
    say!(
        "  HTTPS, HTTP/2 with {} streams at once per connection: https://{host}:{tls_streams_port}/",
        tls::LIMITED_STREAMS
    );
    if identity.generated() {
        say!(
            "    (a certificate made at start for localhost, 127.0.0.1, ::1{}: the browser warns \
             once per origin; choose Advanced → Proceed, or give --tls-cert/--tls-key)",
            hosts
                .iter()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
                .filter(|h| !tls::cert::GENERATED_NAMES.contains(h))
                .map(|h| format!(", {h}"))
                .collect::<String>()
        );
    }
    if localhost_too {
        say!("  http://localhost:{port}/ is yet another pool (Chromium sends it over ::1)");
    }
    if options.bind.is_loopback() {
        // Workshop mode printed it with the join links. Found in review: a
        // teacher trying the lab alone had to build this link by hand.
        say!(
            "  instructor view (keep this link to yourself): http://{host}:{port}/#instructor&key={}",
            key.as_str()
        );
    }
    say!(
        "  instructor key (whole-server view; keep it to yourself): {}",
        key.as_str()
    );
    // The lab's middlebox forwards to the main port where it really
    // listens: the bound address, or loopback of the same family when bound
    // everywhere (review M1: it was 127.0.0.1 for any loopback address).
    let upstream = SocketAddr::new(
        match options.bind {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::from([127, 0, 0, 1]),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::from(Ipv6Addr::LOCALHOST),
            bound => bound,
        },
        port,
    );
    tokio::spawn(keepalive_lab_server::middlebox::serve_all_in_lab(
        middlebox.listeners,
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

fn main() -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => run_to_exit(runtime, lab_main()),
        Err(e) => {
            say_err!("keepalive-lab: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `main` to its exit code, then leaves at once: work still on the
/// runtime's blocking threads is abandoned rather than waited for. (Found in
/// review: `#[tokio::main]` drops its runtime, and the drop waits for every
/// blocking task, so a name lookup given up after
/// [`keepalive_lab_server::cli::LOOKUP_LIMIT`] still held the
/// agent's and middlebox's exit for as long as the system resolver retried.)
fn run_to_exit(runtime: tokio::runtime::Runtime, main: impl Future<Output = ExitCode>) -> ExitCode {
    let code = runtime.block_on(main);
    runtime.shutdown_background();
    code
}

async fn lab_main() -> ExitCode {
    // Logs go to stderr: the standalone tools' stdout is JSON lines only,
    // and the lab's stdout its console (the links to open).
    // `log_internal_errors(false)`: on a failed write to stderr the
    // subscriber would otherwise report it with `eprintln!`, which panics
    // (review H1); a log line that cannot be written is lost instead.
    tracing_subscriber::fmt()
        .log_internal_errors(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "keepalive_lab_server=info".into()),
        )
        .init();
    let args = match cli::text_args(std::env::args_os().skip(1)) {
        Ok(args) => args,
        Err(mistake) => {
            // The tool's name from the first argument, when that one is text.
            let (tool, usage) = match std::env::args_os()
                .nth(1)
                .and_then(|a| a.into_string().ok())
            {
                Some(sub) if sub == "middlebox" => (
                    "keepalive-lab middlebox",
                    keepalive_lab_server::middlebox::cli::USAGE,
                ),
                Some(sub) if sub == "agent" => (
                    "keepalive-lab agent",
                    keepalive_lab_server::agent::cli::USAGE,
                ),
                _ => ("keepalive-lab", USAGE),
            };
            say_err!("{}", mistake.explain(tool, usage));
            return ExitCode::from(2);
        }
    };
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
        Ok(Command::Run(options)) => *options,
        Ok(Command::Help) => return cli::reply("keepalive-lab", USAGE),
        Ok(Command::Version) => return cli::reply("keepalive-lab", &cli::version()),
        Err(message) => {
            say_err!("{message}");
            return ExitCode::from(2);
        }
    };
    if keepalive_lab_server::assets::embedded().is_none()
        && !options.dist.join("index.html").is_file()
    {
        say_err!(
            "warning: {} has no index.html; build the frontend with `cargo xtask build` \
             (or start with `cargo xtask run`)",
            options.dist.display()
        );
    }
    let shutdown = cli::shutdown_signal();
    let (lab, server) = match start(options).await {
        Ok(started) => started,
        Err(message) => {
            say_err!("keepalive-lab: {message}");
            return ExitCode::FAILURE;
        }
    };
    shutdown.await;
    // Shutdown first, then the console: its reader may be gone with the
    // same Ctrl-C (`keepalive-lab | tee log`), and the shutdown must not
    // depend on it (review H1).
    lab.begin_shutdown();
    say!("shutting down: closing every connection");
    match server.await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            say_err!("keepalive-lab: server error: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            say_err!("keepalive-lab: server task failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Descriptors kept aside from the connection cap: the lab's middlebox's
/// accepted ends (its 1 024 mappings; their upstream ends are lab
/// connections, budgeted below), the agent's sockets (64 runs of 32: an
/// agent's connection through the middlebox holds three descriptors here),
/// the listeners, the page's files and the process's own.
const RESERVED_FILES: u64 = 1024 + 64 * 32 + 256;

/// Raises the open-file limit as far as the connection cap needs (each
/// connection a room opens takes a descriptor) and returns the server-wide
/// connection cap that fits under the limit it got ([`cap_under`]), with
/// that limit when it lowered the cap.
#[cfg(unix)]
fn connections_that_fit(wanted: usize) -> (usize, Option<u64>) {
    let needed = (wanted as u64)
        .saturating_mul(2)
        .saturating_add(RESERVED_FILES);
    // A finite target: asking for the most there is failed where the hard
    // limit is "unlimited" (setrlimit refuses above the kernel's nr_open),
    // and the cap then stayed over a soft limit of 1 024 (found in review).
    let limit = match rlimit::increase_nofile_limit(needed) {
        Ok(limit) => Some(limit),
        // Refused: what the process has now still bounds it.
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE)
            .ok()
            .map(|(soft, _)| soft),
    };
    match limit {
        Some(limit) => {
            let cap = cap_under(limit, wanted);
            (cap, (cap < wanted).then_some(limit))
        }
        // Not known: the default stands, and the accept loop's backoff
        // handles running out.
        None => (wanted, None),
    }
}

/// Not a Unix: the limit is not known; the default stands, and the accept
/// loop's backoff handles running out.
#[cfg(not(unix))]
fn connections_that_fit(wanted: usize) -> (usize, Option<u64>) {
    (wanted, None)
}

/// The connection cap that fits `limit` open files: two descriptors per
/// connection (a TLS connection's second is its close watch; an agent's or
/// the middlebox's connection has its client end in this process too) after
/// [`RESERVED_FILES`]; a quarter of the limit when that leaves less; never
/// more than `wanted`.
fn cap_under(limit: u64, wanted: usize) -> usize {
    let budgeted = limit.saturating_sub(RESERVED_FILES) / 2;
    let cap = budgeted.max(limit / 4).max(1);
    usize::try_from(cap).unwrap_or(usize::MAX).min(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(line: &str) -> Result<Options, String> {
        match parse(line.split_whitespace().map(str::to_owned))? {
            Command::Run(options) => Ok(*options),
            other => Err(format!("{other:?}")),
        }
    }

    /// A port that cannot be bound is hinted by why (found in review: every
    /// failure read "is another lab running? Give another --port").
    #[test]
    fn a_port_that_cannot_be_bound_is_hinted_by_why() {
        use std::io::{Error, ErrorKind};
        let port = |number| Port {
            number,
            from: PortFrom::Given("--port"),
        };
        let hint = |number, kind| port(number).remedy(&Error::from(kind));
        assert!(hint(8080, ErrorKind::AddrInUse).contains("another lab running"));
        assert!(hint(0, ErrorKind::AddrNotAvailable).contains("--bind"));
        assert!(hint(8080, ErrorKind::InvalidInput).contains("--bind"));
        assert!(hint(80, ErrorKind::PermissionDenied).contains("below 1024 need root"));
        assert!(!hint(0, ErrorKind::AddrInUse).contains("another --port"));
    }

    #[test]
    fn the_connection_cap_leaves_two_descriptors_a_connection_and_a_reserve() {
        assert_eq!(cap_under(1_048_576, 8192), 8192, "plenty: the default");
        assert_eq!(
            cap_under(8192, 8192),
            (8192 - RESERVED_FILES as usize) / 2,
            "two each after the reserve"
        );
        assert_eq!(cap_under(1024, 8192), 256, "a quarter of a small limit");
        assert_eq!(cap_under(2, 8192), 1, "never none");
        for limit in [16, 1024, 2048, 4096, 16_384, 65_536] {
            let cap = cap_under(limit, usize::MAX) as u64;
            assert!(cap * 2 <= limit, "{limit}: {cap} connections cannot fit");
        }
    }

    /// The exit does not wait for a blocking task still running (a name
    /// lookup given up on): without `shutdown_background` this takes 20 s.
    #[test]
    fn the_exit_does_not_wait_for_a_lookup_given_up_on() {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let started = std::time::Instant::now();
        let code = run_to_exit(runtime, async {
            let stuck = tokio::task::spawn_blocking(|| {
                std::thread::sleep(std::time::Duration::from_secs(20));
            });
            let waited = tokio::time::timeout(std::time::Duration::from_millis(50), stuck).await;
            assert!(waited.is_err(), "the blocking task is still running");
            ExitCode::from(3)
        });
        assert_eq!(code, ExitCode::from(3));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the exit waited {:?} for the blocking task",
            started.elapsed()
        );
    }

    #[test]
    fn flags_take_a_space_or_an_equals_sign_and_host_names_repeat() {
        let o = parse_line("--port=0 --workshop --host-name A.local --host-name=b.local").unwrap();
        assert_eq!(o.ports.main.number, 0);
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

    /// Every value mistake is printed like a flag mistake: the tool's
    /// name, a hint, then the usage (review N2).
    #[test]
    fn value_mistakes_have_the_prefix_a_hint_and_the_usage() {
        for line in [
            "--port 70000",
            "--bind nope",
            "--host-name a..b",
            "--instructor-key short",
            "--tls-cert x",
            "serve",
            "--port 20000 --second-port 20003",
        ] {
            let message = parse_line(line).expect_err(line);
            assert!(message.starts_with("keepalive-lab: "), "{line}: {message}");
            assert!(message.contains("\n  hint: "), "{line}: {message}");
            assert!(message.ends_with(USAGE), "{line}: {message}");
        }
    }

    /// Host names are DNS names: dot-separated non-empty labels of letters,
    /// digits and hyphens, no hyphen first or last (review N3).
    #[test]
    fn host_names_must_be_dns_names() {
        for good in ["lab.local", "LAB-1.example.org", "a", "lab.local.", "x1"] {
            assert!(is_dns_name(good), "{good}");
        }
        let long_label = "a".repeat(64);
        for bad in [
            "",
            ".",
            "...",
            "-",
            "a..b",
            ".lab",
            "-lab.local",
            "lab-.local",
            "a b",
            "lab_1",
            "[::1]",
            long_label.as_str(),
        ] {
            assert!(!is_dns_name(bad), "{bad:?}");
            assert!(
                parse_line(&format!("--host-name={bad}")).is_err(),
                "{bad:?}"
            );
        }
        let o = parse_line("--host-name Lab.Local. --host-name lab.local").unwrap();
        assert_eq!(
            o.host_names,
            ["lab.local"],
            "lowercased, root dot dropped, once"
        );
    }

    /// Port clashes and overflows are usage mistakes found by `parse`
    /// (exit code 2), naming the flag to give: a default that collides is
    /// named as a default (review L6).
    #[test]
    fn port_mistakes_name_the_flag_that_gave_the_port() {
        let o = parse_line("--port 20000").unwrap();
        let numbers: Vec<u16> = o.ports.all().iter().map(|p| p.number).collect();
        assert_eq!(numbers, [20000, 20001, 20002, 20003, 20004, 20005]);
        let o = parse_line("--port 0 --tls-port 9000").unwrap();
        let numbers: Vec<u16> = o.ports.all().iter().map(|p| p.number).collect();
        assert_eq!(
            numbers,
            [0, 0, 0, 9000, 0, 0],
            "with --port 0 the others are free"
        );
        for (line, error, hint) in [
            (
                "--port 20000 --second-port 20003",
                "the default --tls-port (--port + 3 = 20003) is taken by --second-port",
                "give --tls-port, or another --port",
            ),
            (
                "--port 20000 --tls-port 20001",
                "the default --second-port (--port + 1 = 20001) is taken by --tls-port",
                "give --second-port, or another --port",
            ),
            (
                "--port 20000 --second-port 20000",
                "--port 20000 and --second-port 20000 are the same port",
                "give each of the lab's six ports a different number",
            ),
            (
                "--port 65533",
                "--port 65533 leaves no room under 65536 for the default --tls-port \
                 (--port + 3), --tls-h1-port (--port + 4), --tls-streams-port (--port + 5)",
                "give a lower --port, or give --tls-port, --tls-h1-port, --tls-streams-port",
            ),
        ] {
            let message = parse_line(line).expect_err(line);
            assert!(message.contains(error), "{line}: {message}");
            assert!(
                message.contains(&format!("hint: {hint}\n")),
                "{line}: {message}"
            );
        }
    }

    /// The links' host: the bound address itself, IPv6 in brackets, then
    /// each --host-name (review M1, M2).
    #[test]
    fn links_name_the_bound_address_and_the_host_names() {
        let names = ["lab.local".to_owned()];
        assert_eq!(
            hosts_for(IpAddr::from([127, 0, 0, 2]), &names),
            ["127.0.0.2", "lab.local"]
        );
        assert_eq!(hosts_for(Ipv6Addr::LOCALHOST.into(), &[]), ["[::1]"]);
        assert_eq!(hosts_for(IpAddr::from([127, 0, 0, 1]), &[]), ["127.0.0.1"]);
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
