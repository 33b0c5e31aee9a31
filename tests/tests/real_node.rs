//! The lab's Node-style agent against real Node.js, on the same server, by
//! what that server recorded.
//!
//! `server/src/agent/` claims to behave like Node's `http.Agent`, rule by
//! rule (its rule table in `agent/mod.rs` cites Node's source for each).
//! Reading Node's source proves what the lab's authors understood; only
//! running the real thing proves the lab behaves as it does. So every
//! scenario here runs twice against one lab server started in this process:
//! once with the lab's agent (its command line, `keepalive-lab agent URL
//! FLAGS`, run in-process), once with real Node (`tests/node/agent.js`, a
//! plain `new http.Agent(options)` taking the very same flags), each side
//! under a session of its own carrying the scenario's server policy. Then
//! what the **server** saw of each is compared: the connections, in the
//! order they opened; on each, its requests (their `seq` and the
//! `Connection` header they carried, the status and how each ended) and
//! why and when it closed. Per request, what the client reports is compared
//! too: whether the request had a reused socket (Node's
//! `request.reusedSocket`) and how it ended (status, error code, abort).
//!
//! Each side must match the figures the review against Node v20 recorded
//! (`expect`, `closes_at`: the scenario's facts, written down, not taken
//! from either side), and the two sides must match each other. Where a
//! scenario is about time, close times must agree within [`TOLERANCE`];
//! elsewhere times are not compared. A scenario whose connections race
//! each other (which socket the agent keeps) is compared as a multiset.
//!
//! The lifo/fifo scenarios (s06, s07) hold three requests on three sockets
//! and release them one at a time, each only once the client has pooled the
//! previous socket, so both sides' free lists are built in the same order
//! whatever the machine's load.
//!
//! Node versions: the lab follows v24; the figures were recorded with
//! v20.20.2. No scenario sets `agentKeepAliveTimeoutBuffer` (read only by
//! v24.7+ / v22.20+; v20 keeps a fixed 1000 ms), so v20 and v24 agree on all
//! of them. Node 18 or later is required, checked before each scenario; the
//! two about the server's `Keep-Alive` hint (s12, s14) need Node 20 or later
//! ([`HINT_NODE_MAJOR`]): Node 18.20.4, Debian bookworm's `nodejs`, does not
//! read the hint at all, and those two fail on it, saying so.
//!
//! Node is `$NODE`, else `/usr/bin/node` (Debian's `nodejs`). Without it the
//! tests fail and say how to install it: they never skip. Loopback only;
//! every run is bounded (a few seconds each).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keepalive_lab_server::agent::cli;
use keepalive_lab_server::sessions::{Access, Owner};
use keepalive_lab_server::{Config, Lab};
use keepalive_lab_tests::{eventually, start_server};
use protocol::{ConnId, PolicyPatch, ReleaseRequest, RequestId, ServerEvent};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// How far two close times (and a close time and its expected figure) may
/// be apart. The review saw both sides within 100 ms of each other.
const TOLERANCE: u64 = 150;

/// Longest one side's run may take: a safety net, not a speed claim.
const RUN_LIMIT: Duration = Duration::from_secs(20);

/// Longest the server may take to record the close of a run's connections
/// after the run ended: a safety net, not a speed claim. Longer than the
/// server's idle timeout (5 s by default), which closes any connection a
/// client left open. (It was 5 s, and s02's Node side once gave up on a CI
/// machine; the failure now names the connections still open and prints
/// the server's events.)
const CLOSE_LIMIT: Duration = Duration::from_secs(10);

/// Oldest Node major the comparison accepts.
const MIN_NODE_MAJOR: u64 = 18;

/// Oldest Node major that reads the server's `Keep-Alive: timeout=N` hint
/// (less its 1000 ms buffer), as the lab does: Node 18.20.4 (Debian
/// bookworm's `nodejs`) never reads it (its `keepSocketAlive` only sets the
/// agent's `timeout`), Node 20.20.2 does. Scenarios about the hint need it.
const HINT_NODE_MAJOR: u64 = 20;

/// One scenario: the same flags for both sides.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    /// `s04`... as in the review (`/work/review-node.md`'s numbering).
    name: &'static str,
    /// Path and query on the lab's server.
    path: &'static str,
    /// The server policy for the scenario's sessions (`PUT /api/config`'s
    /// body), if any.
    policy: Option<&'static str>,
    /// `keepalive-lab agent` flags, word by word.
    flags: &'static str,
    /// The server's record, one entry per connection in the order they
    /// opened (see [`Conn::signature`]).
    expect: &'static [&'static str],
    /// When each connection closed, ms after the first one opened (same
    /// order as `expect`); empty: the scenario is not about time.
    closes_at: &'static [u64],
    /// Per request, what the client reports (see [`requests`]).
    requests: &'static [&'static str],
    /// Which connection is which varies from run to run: compare the
    /// connections as a multiset (and their close times sorted).
    any_order: bool,
    /// Release `/api/hang` requests in a fixed order (lifo/fifo).
    hangs: bool,
    /// The oldest Node major whose agent has the rule the scenario is about.
    min_node: u64,
}

const BASE: Scenario = Scenario {
    name: "",
    path: "/api/fast",
    policy: None,
    flags: "",
    expect: &[],
    closes_at: &[],
    requests: &[],
    any_order: false,
    hangs: false,
    min_node: MIN_NODE_MAJOR,
};

// ---------------------------------------------------------------------------
// The two sides.

/// Who ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Lab,
    Node,
}

/// What one side's run left: the server's events in its window and the
/// client's own JSON lines.
#[derive(Debug)]
struct Run {
    events: Vec<ServerEvent>,
    lines: Vec<Value>,
}

/// Where Node is: `$NODE`, else Debian's `/usr/bin/node`.
fn node_path() -> PathBuf {
    std::env::var_os("NODE").map_or_else(|| PathBuf::from("/usr/bin/node"), PathBuf::from)
}

/// `tests/node/agent.js`.
fn node_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node/agent.js")
}

/// Lines written by the lab's command line, as JSON, as they come.
#[derive(Debug, Clone, Default)]
struct Lines {
    partial: Arc<Mutex<Vec<u8>>>,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut partial = self.partial.lock().unwrap();
        partial.extend_from_slice(buf);
        while let Some(end) = partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = partial.drain(..=end).collect();
            push_line(&self.lines, &String::from_utf8_lossy(&line));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn push_line(lines: &Mutex<Vec<Value>>, line: &str) {
    let line = line.trim();
    if line.is_empty() {
        return;
    }
    let value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
    lines.lock().unwrap().push(value);
}

/// Runs `scenario` on one side against `lab` at `addr`, under a fresh
/// session with the scenario's policy, and returns what the server saw
/// (every connection opened from the start of the run until all of them
/// have closed) and the client's lines.
async fn run_side(lab: &Lab, addr: SocketAddr, scenario: &Scenario, side: Side) -> Run {
    let name = scenario.name;
    let session = lab
        .sessions()
        .issue(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)))
        .expect("a session");
    let owner = Owner::Session(session.clone());
    if let Some(policy) = scenario.policy {
        let patch: PolicyPatch = serde_json::from_str(policy).expect("a policy patch");
        lab.set_policy(&owner, &patch)
            .unwrap_or_else(|e| panic!("{name}: policy {policy} refused: {e:?}"));
    }
    let sep = if scenario.path.contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!("http://{addr}{}{sep}session={session}", scenario.path);
    let mut args = vec![url];
    args.extend(scenario.flags.split_whitespace().map(str::to_owned));

    // The server's events, from before the first connection. Collected as
    // they come (the hang scenarios' script reads them), and at the end
    // drained to the last one emitted: a collector stopped without draining
    // lost the last connection's events when it lagged behind on a loaded
    // machine (seen in CI: s03's third connection missing from the record).
    let events: Arc<Mutex<Vec<ServerEvent>>> = Arc::default();
    let mut receiver = lab.subscribe(None).1;
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let collector = tokio::spawn({
        let events = events.clone();
        async move {
            loop {
                tokio::select! {
                    received = receiver.recv() => match received {
                        Ok(event) => events.lock().unwrap().push(event),
                        Err(RecvError::Lagged(n)) => panic!("fell {n} events behind the server"),
                        Err(RecvError::Closed) => return,
                    },
                    _ = &mut stopped => loop {
                        match receiver.try_recv() {
                            Ok(event) => events.lock().unwrap().push(event),
                            Err(TryRecvError::Lagged(n)) => {
                                panic!("fell {n} events behind the server")
                            }
                            Err(_) => return,
                        }
                    },
                }
            }
        }
    });

    let lines: Arc<Mutex<Vec<Value>>> = Arc::default();
    let client = {
        let lines = lines.clone();
        let args = args.clone();
        async move {
            match side {
                Side::Lab => run_lab(name, &args, lines).await,
                Side::Node => run_node(name, &args, &lines).await,
            }
        }
    };
    let script = async {
        if scenario.hangs {
            release_in_order(lab, &events, &lines, &owner).await;
        }
    };
    let ((), ()) = tokio::time::timeout(RUN_LIMIT, async { tokio::join!(client, script) })
        .await
        .unwrap_or_else(|_| panic!("{name}: the {side:?} run took over {RUN_LIMIT:?}"));

    // Every connection the run opened has closed (the agent destroys its
    // sockets as it ends; the server's close may come a moment later): none
    // is open in the server's own table, so every close has been emitted.
    let deadline = tokio::time::Instant::now() + CLOSE_LIMIT;
    loop {
        let open = still_open(&events.lock().unwrap());
        if open.is_empty() && lab.tracker().open_count() == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: the {side:?} run's connections {open:?} were still open {CLOSE_LIMIT:?} \
             after it ended; the server's events:\n{:#?}",
            events.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = stop.send(());
    collector.await.expect("the collector");
    let events = std::mem::take(&mut *events.lock().unwrap());
    let lines = std::mem::take(&mut *lines.lock().unwrap());
    Run { events, lines }
}

/// Connections in `events` opened and not (yet) closed.
fn still_open(events: &[ServerEvent]) -> Vec<ConnId> {
    let mut open = Vec::new();
    for event in events {
        match event {
            ServerEvent::ConnectionOpened { conn, .. } => open.push(*conn),
            ServerEvent::ConnectionClosed { conn, .. } => open.retain(|c| c != conn),
            _ => {}
        }
    }
    open
}

/// [`node_path`], which must exist: the comparison never skips.
fn require_node() -> PathBuf {
    let node = node_path();
    assert!(
        node.is_file(),
        "Node.js is needed for the real-Node comparison but {} does not exist.\n\
         Install it with `sudo apt-get install -y nodejs` (Debian/Ubuntu; `cargo xtask test` \
         does this), or point $NODE at a Node.js {MIN_NODE_MAJOR}+ binary.",
        node.display()
    );
    node
}

/// The installed Node's version (`20.20.2`) and major.
async fn node_version() -> (String, u64) {
    let node = require_node();
    let output = Command::new(&node)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("could not run {} --version: {e}", node.display()));
    let version = String::from_utf8_lossy(&output.stdout)
        .trim()
        .trim_start_matches('v')
        .to_owned();
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("{} --version said `{version}`", node.display()));
    (version, major)
}

/// Runs the lab's agent (its command line, in-process) with `args`, its
/// lines into `lines`.
async fn run_lab(name: &str, args: &[String], lines: Arc<Mutex<Vec<Value>>>) {
    let cli::Parsed::Run(options) =
        cli::parse_args(args).unwrap_or_else(|e| panic!("{name}: the lab refuses {args:?}: {e:?}"))
    else {
        panic!("{name}: not a run: {args:?}");
    };
    let out = Lines {
        partial: Arc::default(),
        lines,
    };
    cli::run(*options, out, std::future::pending())
        .await
        .unwrap_or_else(|e| panic!("{name}: the lab's agent failed: {e:?}"));
}

/// Runs `tests/node/agent.js` with `args`, its lines into `lines`.
async fn run_node(name: &str, args: &[String], lines: &Mutex<Vec<Value>>) {
    let node = require_node();
    let mut child = Command::new(&node)
        .arg(node_script())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {}: {e}", node.display()));
    let stdout = child.stdout.take().expect("node's stdout");
    let mut reader = BufReader::new(stdout).lines();
    while let Some(line) = reader.next_line().await.expect("node's stdout") {
        push_line(lines, &line);
    }
    let output = child.wait_with_output().await.expect("node ran");
    assert!(
        output.status.success(),
        "{name}: node {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// s06/s07: once three `/api/hang` requests hang on three sockets, releases
/// them one at a time in the order they started, each only after the
/// client has put the previous one's socket in its free pool (so the pool's
/// order is the release order on both sides, whatever the machine's load);
/// once all six have started, releases the rest.
async fn release_in_order(
    lab: &Lab,
    events: &Mutex<Vec<ServerEvent>>,
    lines: &Mutex<Vec<Value>>,
    owner: &Owner,
) {
    let limit = Duration::from_secs(5);
    let hanging = async |n: usize| -> Vec<RequestId> {
        eventually("the hanging requests", limit, async || {
            let started: Vec<RequestId> = events
                .lock()
                .unwrap()
                .iter()
                .filter_map(|e| match e {
                    ServerEvent::RequestStarted {
                        request, target, ..
                    } if target.starts_with("/api/hang") => Some(*request),
                    _ => None,
                })
                .collect();
            (started.len() >= n).then_some(started)
        })
        .await
    };
    let pooled = || {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l["event"]["name"] == "free" && l["event"]["outcome"] == "pooled")
            .count()
    };
    for (i, request) in hanging(3).await.into_iter().enumerate() {
        let filter = ReleaseRequest {
            request: Some(request),
            id: None,
        };
        assert_eq!(
            lab.hangs()
                .release(&filter, &Access::Of(owner.clone()), None),
            1,
            "release request {request}"
        );
        eventually("the released socket in the free pool", limit, async || {
            (pooled() > i).then_some(())
        })
        .await;
    }
    hanging(6).await;
    lab.hangs()
        .release(&ReleaseRequest::default(), &Access::Of(owner.clone()), None);
}

// ---------------------------------------------------------------------------
// The server's record.

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Req {
    request: RequestId,
    seq: u32,
    connection: Option<String>,
    status: Option<u16>,
    outcome: Option<String>,
    started_us: u64,
    finished_us: Option<u64>,
}

/// One connection as the server saw it.
#[derive(Debug, Clone)]
struct Conn {
    opened_us: u64,
    requests: Vec<Req>,
    close: Option<(String, u64)>,
}

impl Conn {
    /// `1:keep-alive:200/completed 2:keep-alive:-/aborted => keep_alive_race{close=fin,on_purpose=true}`:
    /// per request its `seq`, `Connection` header, status and outcome; then
    /// why the connection closed (with the reason's own fields, but no
    /// target or message text).
    fn signature(&self, arrival: Option<&[RequestId]>) -> String {
        let requests: Vec<String> = self
            .requests
            .iter()
            .map(|r| {
                let order = arrival
                    .and_then(|all| all.iter().position(|id| *id == r.request))
                    .map(|i| format!("#{}@", i + 1))
                    .unwrap_or_default();
                format!(
                    "{order}{}:{}:{}/{}",
                    r.seq,
                    r.connection.as_deref().unwrap_or("-"),
                    r.status.map_or("-".to_owned(), |s| s.to_string()),
                    r.outcome.as_deref().unwrap_or("open"),
                )
            })
            .collect();
        let close = self.close.as_ref().map_or("open", |(why, _)| why.as_str());
        format!("{} => {close}", requests.join(" "))
    }
}

fn enum_text<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value).expect("serializes") {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// A close reason as `kind{field=value,...}` without free text.
fn reason_text(reason: &protocol::CloseReason) -> String {
    let value = serde_json::to_value(reason).expect("serializes");
    let fields: Vec<String> = value
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !matches!(k.as_str(), "kind" | "target" | "message" | "reason"))
        .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_owned)))
        .collect();
    if fields.is_empty() {
        reason.kind().to_owned()
    } else {
        format!("{}{{{}}}", reason.kind(), fields.join(","))
    }
}

/// The connections of one run, in the order they opened.
fn connections(events: &[ServerEvent]) -> Vec<Conn> {
    let mut conns: Vec<(protocol::ConnId, Conn)> = Vec::new();
    fn find(conns: &mut [(protocol::ConnId, Conn)], id: protocol::ConnId) -> Option<&mut Conn> {
        conns.iter_mut().find(|(c, _)| *c == id).map(|(_, c)| c)
    }
    for event in events {
        match event {
            ServerEvent::ConnectionOpened { conn, at_us, .. } => conns.push((
                *conn,
                Conn {
                    opened_us: *at_us,
                    requests: Vec::new(),
                    close: None,
                },
            )),
            ServerEvent::RequestStarted {
                conn,
                request,
                seq,
                connection,
                at_us,
                ..
            } => {
                if let Some(c) = find(&mut conns, *conn) {
                    c.requests.push(Req {
                        request: *request,
                        seq: *seq,
                        connection: connection.clone(),
                        status: None,
                        outcome: None,
                        started_us: *at_us,
                        finished_us: None,
                    });
                }
            }
            ServerEvent::ResponseStarted {
                conn,
                request,
                status,
                ..
            } => {
                if let Some(r) = find(&mut conns, *conn)
                    .and_then(|c| c.requests.iter_mut().find(|r| r.request == *request))
                {
                    r.status = Some(*status);
                }
            }
            ServerEvent::RequestFinished {
                conn,
                request,
                outcome,
                at_us,
            } => {
                if let Some(r) = find(&mut conns, *conn)
                    .and_then(|c| c.requests.iter_mut().find(|r| r.request == *request))
                {
                    r.outcome = Some(enum_text(outcome));
                    r.finished_us = Some(*at_us);
                }
            }
            ServerEvent::ConnectionClosed {
                conn,
                reason,
                at_us,
                ..
            } => {
                if let Some(c) = find(&mut conns, *conn) {
                    c.close = Some((reason_text(reason), *at_us));
                }
            }
            _ => {}
        }
    }
    conns.into_iter().map(|(_, c)| c).collect()
}

/// The server's requests in the order they started (for s06/s07, where
/// which request went to which connection is the point).
fn arrival(conns: &[Conn]) -> Vec<RequestId> {
    let mut all: Vec<&Req> = conns.iter().flat_map(|c| &c.requests).collect();
    all.sort_by_key(|r| r.started_us);
    all.into_iter().map(|r| r.request).collect()
}

/// Close times, ms after the first connection opened.
fn close_times(conns: &[Conn]) -> Vec<u64> {
    let base = conns.first().map_or(0, |c| c.opened_us);
    conns
        .iter()
        .map(|c| {
            c.close
                .as_ref()
                .map_or(u64::MAX, |(_, at)| (at - base) / 1000)
        })
        .collect()
}

/// The record as text, times in ms after the first connection opened: for
/// the failure messages.
fn record_text(conns: &[Conn]) -> String {
    let base = conns.first().map_or(0, |c| c.opened_us);
    let ms = |us: u64| (us.saturating_sub(base)) / 1000;
    let mut text = String::new();
    for (i, c) in conns.iter().enumerate() {
        let requests: Vec<String> = c
            .requests
            .iter()
            .map(|r| {
                format!(
                    "seq {} ({}) started {} ms, {} {} at {}",
                    r.seq,
                    r.connection.as_deref().unwrap_or("no Connection"),
                    ms(r.started_us),
                    r.status.map_or("-".to_owned(), |s| s.to_string()),
                    r.outcome.as_deref().unwrap_or("open"),
                    r.finished_us
                        .map_or("-".to_owned(), |at| format!("{} ms", ms(at)))
                )
            })
            .collect();
        let close = c
            .close
            .as_ref()
            .map_or("still open".to_owned(), |(why, at)| {
                format!("closed {why} at {} ms", ms(*at))
            });
        text.push_str(&format!(
            "\n    conn {} opened {} ms: {}; {close}",
            i + 1,
            ms(c.opened_us),
            requests.join("; ")
        ));
    }
    text
}

// ---------------------------------------------------------------------------
// The client's report.

/// Per request (in the run's numbering): `new`/`reused` (Node's
/// `request.reusedSocket`, `-` if it never had a connected socket), then
/// how it ended first: `done 200`, `error ECONNRESET`, `aborted
/// request_timeout`.
fn requests(lines: &[Value]) -> Vec<String> {
    let count = lines
        .iter()
        .find(|l| l["kind"] == "started")
        .and_then(|l| l["count"].as_u64())
        .expect("a started line");
    (1..=count)
        .map(|n| {
            let mine: Vec<&Value> = lines
                .iter()
                .filter(|l| l["kind"] == "request" && l["request"] == n)
                .map(|l| &l["event"])
                .collect();
            let reused = mine
                .iter()
                .find(|e| e["name"] == "sent")
                .map_or("-", |e| if e["reused"] == true { "reused" } else { "new" });
            let end = mine
                .iter()
                .find_map(|e| match e["name"].as_str() {
                    Some("done") => Some(format!("done {}", e["status"])),
                    Some("error") => Some(format!("error {}", e["code"].as_str().unwrap_or("?"))),
                    Some("aborted") => {
                        Some(format!("aborted {}", e["reason"].as_str().unwrap_or("?")))
                    }
                    _ => None,
                })
                .unwrap_or_else(|| "unfinished".to_owned());
            format!("{reused} {end}")
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The comparison.

async fn compare(scenario: Scenario) {
    let name = scenario.name;
    let (version, major) = node_version().await;
    assert!(
        major >= scenario.min_node,
        "{name}: {} is Node {version}, but this scenario needs Node {}+: {}\n\
         Point $NODE at a newer Node.js (Debian bookworm's `nodejs` package is 18).",
        node_path().display(),
        scenario.min_node,
        if scenario.min_node >= HINT_NODE_MAJOR {
            "older ones do not read the server's Keep-Alive hint, the rule it compares"
        } else {
            "the comparison was not written for older ones"
        }
    );
    let (addr, lab) = start_server(Config::default()).await;
    let lab_run = run_side(&lab, addr, &scenario, Side::Lab).await;
    let node_run = run_side(&lab, addr, &scenario, Side::Node).await;
    let reported = node_run
        .lines
        .iter()
        .find(|l| l["kind"] == "started")
        .and_then(|l| l["node"].as_str());
    assert_eq!(reported, Some(version.as_str()), "{name}: which Node ran");

    let sides = [("lab", &lab_run), ("node", &node_run)].map(|(who, run)| {
        let conns = connections(&run.events);
        let order = scenario.hangs.then(|| arrival(&conns));
        let mut signatures: Vec<String> = conns
            .iter()
            .map(|c| c.signature(order.as_deref()))
            .collect();
        let mut closes = close_times(&conns);
        if scenario.any_order {
            signatures.sort();
            closes.sort_unstable();
        }
        (who, conns, signatures, closes, requests(&run.lines))
    });
    let both = format!(
        "{name} ({} {}{}), Node {version}\n  lab's agent, the server saw:{}\n    requests: {:?}\n  real Node, the server saw:{}\n    requests: {:?}",
        scenario.path,
        scenario.flags,
        scenario
            .policy
            .map_or(String::new(), |p| format!(", server policy {p}")),
        record_text(&sides[0].1),
        sides[0].4,
        record_text(&sides[1].1),
        sides[1].4,
    );
    let expected: Vec<String> = {
        let mut e: Vec<String> = scenario.expect.iter().map(|s| (*s).to_owned()).collect();
        if scenario.any_order {
            e.sort();
        }
        e
    };
    for (who, _, signatures, closes, reqs) in &sides {
        assert_eq!(
            signatures, &expected,
            "{name}: the server's record of the {who} side is not the expected one\n{both}"
        );
        if !scenario.requests.is_empty() {
            assert_eq!(
                reqs, scenario.requests,
                "{name}: the {who} side's requests are not the expected ones\n{both}"
            );
        }
        if !scenario.closes_at.is_empty() {
            assert_eq!(closes.len(), scenario.closes_at.len(), "{name}\n{both}");
            for (at, want) in closes.iter().zip(scenario.closes_at) {
                assert!(
                    at.abs_diff(*want) <= TOLERANCE,
                    "{name}: the {who} side's connection closed at {at} ms, expected {want} ± {TOLERANCE} ms (all: {closes:?})\n{both}"
                );
            }
        }
    }
    assert_eq!(
        sides[0].2, sides[1].2,
        "{name}: the server's records of the two sides differ\n{both}"
    );
    assert_eq!(
        sides[0].4, sides[1].4,
        "{name}: the two sides' requests differ\n{both}"
    );
    if !scenario.closes_at.is_empty() {
        for (i, (a, b)) in sides[0].3.iter().zip(&sides[1].3).enumerate() {
            assert!(
                a.abs_diff(*b) <= TOLERANCE,
                "{name}: connection {} closed at {a} ms (lab) and {b} ms (node), over {TOLERANCE} ms apart\n{both}",
                i + 1
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The scenarios (numbered as in the review).

const C: &str = "1:close:200/completed => client_requested_close";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s02_keep_alive_off_and_max_sockets_infinity_say_connection_close() {
    compare(Scenario {
        name: "s02",
        flags: "--count 3 --every 200",
        expect: &[C, C, C],
        requests: &["new done 200", "new done 200", "new done 200"],
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s03_keep_alive_off_with_max_sockets_says_keep_alive_and_closes_each() {
    const E: &str = "1:keep-alive:200/completed => peer_closed";
    compare(Scenario {
        name: "s03",
        flags: "--max-sockets 2 --count 3 --every 200",
        expect: &[E, E, E],
        closes_at: &[0, 200, 400],
        requests: &["new done 200", "new done 200", "new done 200"],
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s04_keep_alive_off_hands_the_socket_to_queued_requests() {
    compare(Scenario {
        name: "s04",
        path: "/api/slow?ms=100",
        flags: "--max-sockets 1 --count 4 --every 0",
        expect: &["1:keep-alive:200/completed 2:keep-alive:200/completed \
                   3:keep-alive:200/completed 4:keep-alive:200/completed => peer_closed"],
        closes_at: &[400],
        // Handed the socket as it frees: not `reusedSocket`.
        requests: &["new done 200"; 4],
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s05_keep_alive_max_sockets_2_carries_six_requests_on_two() {
    const E: &str = "1:keep-alive:200/completed 2:keep-alive:200/completed \
                     3:keep-alive:200/completed => peer_closed";
    compare(Scenario {
        name: "s05",
        path: "/api/slow?ms=100",
        flags: "--keep-alive --max-sockets 2 --count 6 --every 0 --linger 200",
        expect: &[E, E],
        requests: &["new done 200"; 6],
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s06_lifo_reuses_the_most_recently_freed_socket() {
    compare(Scenario {
        name: "s06",
        path: "/api/hang?max_ms=3000",
        flags: "--keep-alive --count 6 --every 200 --linger 100",
        expect: &[
            "#1@1:keep-alive:200/completed #6@2:keep-alive:200/completed => peer_closed",
            "#2@1:keep-alive:200/completed #5@2:keep-alive:200/completed => peer_closed",
            "#3@1:keep-alive:200/completed #4@2:keep-alive:200/completed => peer_closed",
        ],
        requests: &[
            "new done 200",
            "new done 200",
            "new done 200",
            "reused done 200",
            "reused done 200",
            "reused done 200",
        ],
        hangs: true,
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s07_fifo_reuses_the_oldest_free_socket() {
    compare(Scenario {
        name: "s07",
        path: "/api/hang?max_ms=3000",
        flags: "--keep-alive --scheduling fifo --count 6 --every 200 --linger 100",
        expect: &[
            "#1@1:keep-alive:200/completed #4@2:keep-alive:200/completed => peer_closed",
            "#2@1:keep-alive:200/completed #5@2:keep-alive:200/completed => peer_closed",
            "#3@1:keep-alive:200/completed #6@2:keep-alive:200/completed => peer_closed",
        ],
        requests: &[
            "new done 200",
            "new done 200",
            "new done 200",
            "reused done 200",
            "reused done 200",
            "reused done 200",
        ],
        hangs: true,
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s08_max_free_sockets_1_destroys_the_sockets_past_the_pool() {
    const E: &str = "1:keep-alive:200/completed => peer_closed";
    compare(Scenario {
        name: "s08",
        path: "/api/slow?ms=100",
        flags: "--keep-alive --max-free-sockets 1 --count 3 --every 0 --linger 300",
        expect: &[E, E, E],
        // Two destroyed as they free, the pooled one at the linger's end.
        closes_at: &[100, 100, 400],
        requests: &["new done 200"; 3],
        any_order: true,
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s09_max_total_sockets_1_queues_on_one_socket() {
    compare(Scenario {
        name: "s09",
        path: "/api/slow?ms=100",
        flags: "--keep-alive --max-total-sockets 1 --count 3 --every 0 --linger 200",
        expect: &["1:keep-alive:200/completed 2:keep-alive:200/completed \
                   3:keep-alive:200/completed => peer_closed"],
        requests: &["new done 200"; 3],
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s10_the_agent_timeout_destroys_a_free_socket() {
    compare(Scenario {
        name: "s10",
        flags: "--keep-alive --timeout 500 --count 1 --linger 1500",
        expect: &["1:keep-alive:200/completed => peer_closed"],
        closes_at: &[500],
        requests: &["new done 200"],
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_the_servers_hint_shortens_the_agent_timeout() {
    compare(Scenario {
        name: "s12",
        min_node: HINT_NODE_MAJOR,
        policy: Some(r#"{"idle_timeout_ms": 3000}"#),
        flags: "--keep-alive --timeout 10000 --count 1 --linger 4000",
        expect: &["1:keep-alive:200/completed => peer_closed"],
        // `Keep-Alive: timeout=3`, less Node's 1000 ms buffer.
        closes_at: &[2000],
        requests: &["new done 200"],
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s13_without_an_agent_timeout_the_hint_is_ignored() {
    compare(Scenario {
        name: "s13",
        policy: Some(r#"{"idle_timeout_ms": 2000}"#),
        flags: "--keep-alive --count 1 --linger 3000",
        expect: &["1:keep-alive:200/completed => idle_timeout"],
        closes_at: &[2000],
        requests: &["new done 200"],
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s14_a_one_second_hint_keeps_no_socket() {
    const E: &str = "1:keep-alive:200/completed => peer_closed";
    compare(Scenario {
        name: "s14",
        min_node: HINT_NODE_MAJOR,
        policy: Some(r#"{"idle_timeout_ms": 1000}"#),
        flags: "--keep-alive --count 3 --every 200 --linger 300",
        expect: &[E, E, E],
        closes_at: &[0, 200, 400],
        requests: &["new done 200"; 3],
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s15_a_reused_socket_closed_by_fin_fails_the_request_without_retry() {
    compare(Scenario {
        name: "s15",
        path: "/api/fast?next=drop_fin",
        flags: "--keep-alive --count 3 --every 200 --linger 200",
        expect: &[
            "1:keep-alive:200/completed 2:keep-alive:-/aborted \
             => keep_alive_race{close=fin,method=GET,on_purpose=true}",
            "1:keep-alive:200/completed => peer_closed",
        ],
        requests: &["new done 200", "reused error ECONNRESET", "new done 200"],
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s16_a_reused_socket_reset_fails_the_request_without_retry() {
    compare(Scenario {
        name: "s16",
        path: "/api/fast?next=drop_rst",
        flags: "--keep-alive --count 3 --every 200 --linger 200",
        expect: &[
            "1:keep-alive:200/completed 2:keep-alive:-/aborted \
             => keep_alive_race{close=rst,method=GET,on_purpose=true}",
            "1:keep-alive:200/completed => peer_closed",
        ],
        requests: &["new done 200", "reused error ECONNRESET", "new done 200"],
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s22_a_response_saying_close_ends_reuse() {
    const E: &str = "1:keep-alive:200/completed 2:keep-alive:200/completed => max_requests";
    compare(Scenario {
        name: "s22",
        policy: Some(r#"{"max_requests": 2}"#),
        flags: "--keep-alive --count 4 --every 150 --linger 200",
        expect: &[E, E],
        requests: &[
            "new done 200",
            "reused done 200",
            "new done 200",
            "reused done 200",
        ],
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s27_a_closing_socket_makes_a_new_one_for_the_queue() {
    const E: &str = "1:keep-alive:200/completed => server_close{mode=header}";
    compare(Scenario {
        name: "s27",
        path: "/api/close?mode=header",
        flags: "--max-sockets 1 --count 3 --every 0",
        expect: &[E, E, E],
        requests: &["new done 200"; 3],
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s31_a_free_socket_times_out_between_requests() {
    compare(Scenario {
        name: "s31",
        // The linger outlasts the timeout, so the last socket times out too.
        flags: "--keep-alive --max-sockets 1 --timeout 400 --count 3 --every 600 --linger 600",
        expect: &[
            "1:keep-alive:200/completed => peer_closed",
            "1:keep-alive:200/completed => peer_closed",
            "1:keep-alive:200/completed => peer_closed",
        ],
        closes_at: &[400, 1000, 1600],
        requests: &["new done 200"; 3],
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s36_a_request_timeout_destroys_the_socket_and_the_queue_gets_a_new_one() {
    const E: &str = "1:keep-alive:-/aborted => peer_closed";
    compare(Scenario {
        name: "s36",
        path: "/api/slow?ms=500",
        flags: "--keep-alive --max-sockets 1 --request-timeout 300 --count 2 --every 0 --linger 100",
        expect: &[E, E],
        closes_at: &[300, 600],
        requests: &["new aborted request_timeout"; 2],
        ..BASE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s39_a_hint_too_short_to_pool_still_serves_the_queue() {
    compare(Scenario {
        name: "s39",
        path: "/api/slow?ms=100",
        policy: Some(r#"{"idle_timeout_ms": 1000}"#),
        flags: "--keep-alive --max-sockets 1 --count 3 --every 0 --linger 100",
        expect: &["1:keep-alive:200/completed 2:keep-alive:200/completed \
                   3:keep-alive:200/completed => peer_closed"],
        closes_at: &[300],
        requests: &["new done 200"; 3],
        ..BASE
    })
    .await;
}

// ---------------------------------------------------------------------------
// Chunk lines, against a raw server.

/// `server/src/agent/chunked_cases.txt`: per case, what Node v20.20.2 did
/// (`done` or its error code) and the bytes after the head.
fn chunked_cases() -> Vec<(String, Vec<u8>)> {
    let text = include_str!("../../server/src/agent/chunked_cases.txt");
    let mut cases = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (node_did, escaped) = line.split_once('\t').expect("code TAB bytes");
        let bytes = escaped
            .replace("\\r", "\r")
            .replace("\\n", "\n")
            .replace("\\t", "\t")
            .into_bytes();
        cases.push((node_did.to_owned(), bytes));
    }
    cases
}

/// A server that answers `GET /case/N` with the writes `answer(N)` gives,
/// each after its pause, then waits for the client to close (at most a few
/// seconds).
async fn raw_server(
    answer: impl Fn(usize) -> Vec<(Duration, Vec<u8>)> + Send + Sync + 'static,
) -> SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0_u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match socket.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let n: usize = text
                    .split(' ')
                    .nth(1)
                    .and_then(|path| path.strip_prefix("/case/"))
                    .and_then(|n| n.parse().ok())
                    .expect("GET /case/N");
                for (pause, bytes) in answer(n) {
                    tokio::time::sleep(pause).await;
                    if socket.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                let mut rest = [0_u8; 256];
                let wait =
                    async { while matches!(socket.read(&mut rest).await, Ok(n) if n > 0) {} };
                let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
            });
        }
    });
    addr
}

/// Real Node's version, which must be 20 or later: what `recorded` says
/// was recorded with Node v20.20.2.
async fn node_20_or_later(recorded: &str) -> String {
    let (version, major) = node_version().await;
    assert!(
        major >= HINT_NODE_MAJOR,
        "{} is Node {version}: {recorded} recorded with Node 20",
        node_path().display()
    );
    version
}

/// The lab's agent (its command line, in-process) and real Node each making
/// one request to `url`: how each request ended, as [`requests`] tells it.
async fn one_request_each(name: &str, url: String) -> (Vec<String>, Vec<String>) {
    let args: Vec<String> = [url, "--count".into(), "1".into()].into();
    let lab_lines: Arc<Mutex<Vec<Value>>> = Arc::default();
    tokio::time::timeout(RUN_LIMIT, run_lab(name, &args, lab_lines.clone()))
        .await
        .unwrap_or_else(|_| panic!("{name}: the lab's run took over {RUN_LIMIT:?}"));
    let node_lines: Mutex<Vec<Value>> = Mutex::default();
    tokio::time::timeout(RUN_LIMIT, run_node(name, &args, &node_lines))
        .await
        .unwrap_or_else(|_| panic!("{name}: node's run took over {RUN_LIMIT:?}"));
    let lab = requests(&lab_lines.lock().unwrap());
    let node = requests(&node_lines.lock().unwrap());
    (lab, node)
}

/// The agent reads chunk lines as Node's llhttp does: for every case of
/// `chunked_cases.txt` (spaces or a tab after the size, bare LFs, a CR
/// alone, bytes after a chunk's data, extensions with and without faults),
/// the lab's agent and real Node end the request the same way, and as the
/// file recorded Node doing. (Found in review: the agent took spaces after
/// the size and bare LFs, which Node refuses.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_lines_are_read_as_node_reads_them() {
    let version = node_20_or_later("the chunk cases were").await;
    let cases = Arc::new(chunked_cases());
    assert!(cases.len() >= 20, "{} cases", cases.len());
    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let addr = {
        let cases = cases.clone();
        raw_server(move |n| vec![(Duration::ZERO, [&head[..], &cases[n].1].concat())]).await
    };
    for (n, (node_did, bytes)) in cases.iter().enumerate() {
        let name = format!("chunk case {n} {:?}", String::from_utf8_lossy(bytes));
        let (lab, node) = one_request_each(&name, format!("http://{addr}/case/{n}")).await;
        let recorded = if node_did == "done" {
            "new done 200".to_owned()
        } else {
            format!("new error {node_did}")
        };
        assert_eq!(
            node,
            std::slice::from_ref(&recorded),
            "{name}: Node {version} did otherwise"
        );
        assert_eq!(lab, [recorded], "{name}: the lab's agent");
    }
}

/// A bad header line in a later read than the one that took a head past
/// 16 KiB of raw bytes (its text well under 16 KiB: the padding is spaces
/// before values, which Node does not count) fails the request with
/// `HPE_INVALID_HEADER_TOKEN` as it arrives, in the lab's agent as in real
/// Node; the head never ends and the server holds the connection until
/// the client closes it. (Found in review: the agent did not look at the
/// head again before its end, and waited for the server's close.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_header_after_16_kib_of_raw_head_fails_the_request_as_it_arrives() {
    let version = node_20_or_later("these cases were").await;
    let pad = " ".repeat(1_000);
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    for n in 0..20 {
        head.extend_from_slice(format!("X-Pad-{n}:{pad}v\r\n").as_bytes());
    }
    let later = [&b"Bad Name: v\r\n"[..], b"X: a\x01b\r\n"];
    let addr = raw_server(move |n| {
        vec![
            (Duration::ZERO, head.clone()),
            (Duration::from_millis(300), later[n].to_vec()),
        ]
    })
    .await;
    for (n, line) in later.iter().enumerate() {
        let name = format!("{:?} after 20 KiB of head", String::from_utf8_lossy(line));
        let (lab, node) = one_request_each(&name, format!("http://{addr}/case/{n}")).await;
        let recorded = ["new error HPE_INVALID_HEADER_TOKEN".to_owned()];
        assert_eq!(node, recorded, "{name}: Node {version} did otherwise");
        assert_eq!(lab, recorded, "{name}: the lab's agent");
    }
}
