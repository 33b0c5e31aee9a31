//! Figure 8: room scale. `N` simulated participants against one lab child,
//! for each `N` of `--room` (default 50, 100, 200), each step on a fresh child.
//!
//! # Workload
//!
//! Each participant is what one laptop's page does: `POST /api/sessions`,
//! the session's events WebSocket, and [`LANES`] keep-alive connections (a
//! browser's per origin). It then fires bursts of [`BURST`] `/api/hang`
//! requests, each with a tag of its own (`id=`): the first [`LANES`] go out at
//! once, the others wait on our side (the browser's queue) and go out on a
//! connection as soon as its previous hang is answered. Once the viewer has
//! seen `request_started` for every hang in flight, the participant sends
//! `{"type":"release"}` over its WebSocket (again after [`RELEASE_RETRY`] if a
//! hang was not yet held when the release came). Between bursts it waits
//! [`PAUSE`]. Everything goes to `127.0.0.1`; bursts, setup and the step are
//! bounded in time; a participant stops when the step ends.
//!
//! The child runs the workshop policy (5 s idle timeout, `max_requests` 100)
//! with the per-address caps lifted ([`server::config`]: the bench is one
//! address standing in for a room) and the per-session caps at their defaults
//! ([`Extras::default_session_caps`]).
//!
//! # Measures
//!
//! After every participant is set up and a [`WARMUP`], for `--room-secs`:
//!
//! - server CPU (user + system, `/proc/<pid>/stat`) per participant per
//!   second: [`Step::cpu_per_participant`];
//! - resident memory per participant: the highest `VmRSS` read during the
//!   window minus the idle reading before any participant arrived, over `N`
//!   ([`Step::rss_per_participant`]);
//! - event fan-out latency: per hang, the time from our writing it (just
//!   before hyper's `send_request`) to its participant's viewer receiving the
//!   `request_started` event with its tag, both on the bench's clock; p50 and
//!   p99 ([`quantile_ms`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::CONNECTION;
use hyper_util::rt::TokioIo;
use protocol::ServerEvent;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::client;
use crate::server::{self, Extras, Kind, Policy, Server};

/// Room sizes measured when `--room` does not say.
pub const DEFAULT_ROOM: [usize; 3] = [50, 100, 200];
/// Measured seconds per room size when `--room-secs` does not say.
pub const DEFAULT_SECS: u64 = 20;
/// Keep-alive connections per participant (a browser's per origin).
pub const LANES: usize = 6;
/// Hangs per burst: [`LANES`] on the wire, the rest queued on our side.
pub const BURST: usize = 12;
/// A participant's pause between bursts.
pub const PAUSE: Duration = Duration::from_secs(1);
/// Unmeasured time after every participant is set up.
pub const WARMUP: Duration = Duration::from_secs(2);
/// Longest a participant's setup (session, viewer, connections) may take.
const SETUP_LIMIT: Duration = Duration::from_secs(20);
/// Longest one burst may take before it counts as failed.
const BURST_LIMIT: Duration = Duration::from_secs(10);
/// A release is sent again after this if hangs are still held.
pub const RELEASE_RETRY: Duration = Duration::from_millis(250);
/// Budget: a room of [`ROOM_BUDGET_N`] on one core.
pub const ROOM_BUDGET_N: usize = 200;
/// Budget: server CPU for a room of [`ROOM_BUDGET_N`], core-seconds per second.
pub const MAX_ROOM_CORES: f64 = 1.0;
/// Budget: p99 of the event fan-out latency, ms.
pub const MAX_FANOUT_P99_MS: f64 = 50.0;

/// One room size's result.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// Participants asked for.
    pub n: usize,
    /// Participants that got a session, a viewer and their connections.
    pub ready: usize,
    /// Length of the measured window.
    pub window: Duration,
    /// Server CPU time over the window.
    pub server_cpu: Duration,
    /// The bench's own CPU time over the window (it shares the machine).
    pub bench_cpu: Duration,
    /// CPU used meanwhile on this machine by anything but the server and the
    /// bench (the machine's busy time minus theirs), cores.
    pub other_load: f64,
    /// CPU time the hypervisor gave to other guests meanwhile (steal), cores.
    pub stolen_load: f64,
    /// `VmRSS` before any participant arrived, bytes.
    pub rss_idle: u64,
    /// Highest `VmRSS` read during the window, bytes.
    pub rss_peak: u64,
    /// Fan-out latencies of hangs written in the window, ms (unsorted).
    pub latencies_ms: Vec<f64>,
    /// Hangs written in the window whose event never reached the viewer.
    pub unseen: u64,
    /// Bursts completed (all [`BURST`] answered), whole step.
    pub bursts: u64,
    /// Of which completed inside the window.
    pub bursts_in_window: u64,
    /// Hangs answered `200`, whole step.
    pub answered: u64,
    /// Failures (setup, requests, bursts over [`BURST_LIMIT`]), whole step.
    pub failures: u64,
    /// The first few failures.
    pub failure_samples: Vec<String>,
    /// Connections re-opened after the server's `Connection: close`.
    pub reconnects: u64,
    /// Events the server skipped for the viewers (`events_dropped`).
    pub events_dropped: u64,
    /// Viewers the server closed (for instance 1008, fell behind twice).
    pub viewers_closed_by_server: u64,
}

impl Step {
    /// Server CPU per participant per second of the window, ms.
    pub fn cpu_per_participant(&self) -> f64 {
        per_participant_per_second(self.server_cpu, self.n, self.window)
    }

    /// Server CPU over the window, cores (core-seconds per second).
    pub fn cores(&self) -> f64 {
        self.server_cpu.as_secs_f64() / self.window.as_secs_f64().max(1e-9)
    }

    /// The CPU a room of [`ROOM_BUDGET_N`] would take at this step's cost per
    /// participant, cores.
    pub fn projected_cores(&self) -> f64 {
        self.cpu_per_participant() * ROOM_BUDGET_N as f64 / 1000.0
    }

    /// Bursts completed in the window per participant per second: the pace
    /// the room kept (it drops when the machine is saturated).
    pub fn pace(&self) -> f64 {
        per_participant_per_second(
            Duration::from_secs(self.bursts_in_window),
            self.n,
            self.window,
        ) / 1000.0
    }

    /// Server CPU per burst completed in the window, ms.
    pub fn cpu_per_burst(&self) -> f64 {
        if self.bursts_in_window == 0 {
            return f64::NAN;
        }
        self.server_cpu.as_secs_f64() * 1000.0 / self.bursts_in_window as f64
    }

    /// Resident memory per participant, bytes.
    pub fn rss_per_participant(&self) -> f64 {
        rss_per_participant(self.rss_idle, self.rss_peak, self.n)
    }

    /// Fan-out latency quantile `q`, ms.
    pub fn latency_ms(&self, q: f64) -> f64 {
        quantile_ms(&self.latencies_ms, q)
    }

    /// Whether the CPU is within budget: every participant set up, and a
    /// room of [`ROOM_BUDGET_N`] at this cost within [`MAX_ROOM_CORES`].
    pub fn cpu_ok(&self) -> bool {
        self.ready == self.n && self.projected_cores() <= MAX_ROOM_CORES
    }

    /// Whether the fan-out p99 is within [`MAX_FANOUT_P99_MS`] (false
    /// without any measured event).
    pub fn p99_ok(&self) -> bool {
        self.latency_ms(0.99) <= MAX_FANOUT_P99_MS
    }
}

/// `cpu` spread over `n` participants and `window`, ms per participant per
/// second (NaN without participants or time).
pub fn per_participant_per_second(cpu: Duration, n: usize, window: Duration) -> f64 {
    if n == 0 || window.is_zero() {
        return f64::NAN;
    }
    cpu.as_secs_f64() * 1000.0 / n as f64 / window.as_secs_f64()
}

/// Growth of `VmRSS` from `idle` to `peak`, over `n`, bytes (0 when it shrank).
pub fn rss_per_participant(idle: u64, peak: u64, n: usize) -> f64 {
    if n == 0 {
        return f64::NAN;
    }
    peak.saturating_sub(idle) as f64 / n as f64
}

/// The `q`-quantile (0..=1) of `values` by nearest rank, as
/// [`client::quantile`] (NaN when empty).
pub fn quantile_ms(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (q.clamp(0.0, 1.0) * (v.len() - 1) as f64).round() as usize;
    v[rank.min(v.len() - 1)]
}

/// The value of the `id` query parameter of a request target.
pub fn tag_of(target: &str) -> Option<&str> {
    let (_, query) = target.split_once('?')?;
    query.split('&').find_map(|pair| pair.strip_prefix("id="))
}

// ---------------------------------------------------------------------------
// The run.

/// What every participant shares with the step.
#[derive(Debug)]
struct Shared {
    addr: SocketAddr,
    /// Participants set up.
    ready: AtomicUsize,
    /// Set when the step ends.
    stop: AtomicBool,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    bursts: u64,
    answered: u64,
    failures: u64,
    failure_samples: Vec<String>,
    reconnects: u64,
    events_dropped: u64,
    viewers_closed_by_server: u64,
}

impl Shared {
    fn add(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.counts.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn fail(&self, what: String) {
        self.add(|c| {
            c.failures += 1;
            if c.failure_samples.len() < 5 {
                c.failure_samples.push(what);
            }
        });
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Per hang: when we wrote it, and when its viewer saw it.
type Sent = Vec<(Instant, Option<Instant>)>;

/// Measures each room size in `sizes` for `secs` seconds, one fresh child each.
pub async fn room(sizes: &[usize], secs: u64) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for &n in sizes {
        eprintln!("bench:    {n} participants, {secs} s");
        let step = one_step(n, Duration::from_secs(secs)).await?;
        eprintln!(
            "bench:    {n}: {}/{n} ready, {:.2} ms CPU per participant-second ({:.2} cores), \
             {:.1} KB RSS per participant, fan-out p50 {:.1} ms p99 {:.1} ms ({} events, {} unseen), \
             {} failures",
            step.ready,
            step.cpu_per_participant(),
            step.cores(),
            step.rss_per_participant() / 1000.0,
            step.latency_ms(0.5),
            step.latency_ms(0.99),
            step.latencies_ms.len(),
            step.unseen,
            step.failures
        );
        steps.push(step);
    }
    Ok(steps)
}

async fn one_step(n: usize, window: Duration) -> Result<Step, String> {
    let extras = Extras {
        default_session_caps: true,
        ..Extras::default()
    };
    let server = Server::start_with(Kind::Lab, Policy::Default, None, &extras).await?;
    // Let the readiness request's connection go, then read the idle memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = server.rss_bytes()?;

    let shared = Arc::new(Shared {
        addr: server.addr,
        ready: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        counts: Mutex::new(Counts::default()),
    });
    let mut participants = JoinSet::new();
    for p in 0..n {
        participants.spawn(participant(shared.clone(), p));
        // A room does not arrive in the same millisecond (and the listen
        // backlog is 128): a few at a time.
        if p % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let setup_deadline = Instant::now() + SETUP_LIMIT;
    while shared.ready.load(Ordering::Relaxed) < n && Instant::now() < setup_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = shared.ready.load(Ordering::Relaxed);
    tokio::time::sleep(WARMUP).await;

    let from = Instant::now();
    let (server_before, bench_before, machine_before) = (
        server.cpu_time()?,
        server::process_cpu_time("/proc/self/stat")?,
        server::MachineTime::read()?,
    );
    let bursts_before = shared
        .counts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .bursts;
    let mut rss_peak = server.rss_bytes()?;
    let end = from + window;
    while Instant::now() < end {
        tokio::time::sleep_until((Instant::now() + Duration::from_secs(1)).min(end)).await;
        rss_peak = rss_peak.max(server.rss_bytes()?);
    }
    let (server_after, bench_after, machine_after) = (
        server.cpu_time()?,
        server::process_cpu_time("/proc/self/stat")?,
        server::MachineTime::read()?,
    );
    let to = Instant::now();
    let bursts_in_window = shared
        .counts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .bursts
        - bursts_before;
    let server_cpu = server_after.saturating_sub(server_before);
    let bench_cpu = bench_after.saturating_sub(bench_before);
    let (other_load, stolen_load) =
        machine_before.disturbance(machine_after, server_cpu + bench_cpu, to - from);
    shared.stop.store(true, Ordering::Relaxed);

    let mut latencies_ms = Vec::new();
    let mut unseen = 0;
    let give_up = Instant::now() + BURST_LIMIT + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(give_up, participants.join_next()).await {
            Ok(Some(Ok(sent))) => {
                for (written, seen) in sent {
                    if written < from || written > to {
                        continue;
                    }
                    match seen {
                        Some(seen) => {
                            latencies_ms.push(seen.duration_since(written).as_secs_f64() * 1e3);
                        }
                        None => unseen += 1,
                    }
                }
            }
            Ok(Some(Err(e))) => shared.fail(format!("participant task: {e}")),
            Ok(None) => break,
            Err(_) => {
                shared.fail(format!("{} participants did not stop", participants.len()));
                participants.abort_all();
                while participants.join_next().await.is_some() {}
                break;
            }
        }
    }
    let counts = std::mem::take(&mut *shared.counts.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Step {
        n,
        ready,
        window: to - from,
        server_cpu,
        bench_cpu,
        other_load,
        stolen_load,
        rss_idle,
        rss_peak,
        latencies_ms,
        unseen,
        bursts: counts.bursts,
        bursts_in_window,
        answered: counts.answered,
        failures: counts.failures,
        failure_samples: counts.failure_samples,
        reconnects: counts.reconnects,
        events_dropped: counts.events_dropped,
        viewers_closed_by_server: counts.viewers_closed_by_server,
    })
}

/// `POST /api/sessions`; the new session's id.
async fn new_session(addr: SocketAddr) -> Result<String, String> {
    let (status, body) = client::request(addr, "POST", "/api/sessions", "").await?;
    if status != 200 {
        return Err(format!("POST /api/sessions: {status}"));
    }
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["session"].as_str().map(str::to_owned))
        .ok_or_else(|| "POST /api/sessions: no session in the answer".to_owned())
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One participant; returns every hang it wrote, with when its event came.
async fn participant(shared: Arc<Shared>, p: usize) -> Sent {
    let mut sent = Sent::new();
    let setup = tokio::time::timeout(SETUP_LIMIT, async {
        let session = new_session(shared.addr).await?;
        let url = format!("ws://{}/api/events?session={session}", shared.addr);
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|e| format!("events socket: {e}"))?;
        let mut lanes = Vec::with_capacity(LANES);
        for _ in 0..LANES {
            lanes.push(Some(connect(shared.addr).await?));
        }
        Ok::<_, String>((session, ws, lanes))
    })
    .await;
    let (session, ws, mut lanes) = match setup {
        Ok(Ok(setup)) => setup,
        Ok(Err(e)) => {
            shared.fail(format!("participant {p} setup: {e}"));
            return sent;
        }
        Err(_) => {
            shared.fail(format!("participant {p} setup: over {SETUP_LIMIT:?}"));
            return sent;
        }
    };
    shared.ready.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = ws.split();
    // The viewer: stamps each `request_started` of ours as it arrives.
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<(String, Instant)>();
    let reader_shared = shared.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let at = Instant::now();
            let text = match message {
                Message::Text(text) => text,
                // Before the step ends, a close frame is the server's own
                // (after it, the answer to ours).
                Message::Close(_) => {
                    if !reader_shared.stopping() {
                        reader_shared.add(|c| c.viewers_closed_by_server += 1);
                    }
                    break;
                }
                _ => continue,
            };
            match serde_json::from_str::<ServerEvent>(text.as_str()) {
                Ok(ServerEvent::RequestStarted { target, .. }) => {
                    if let Some(tag) = tag_of(&target) {
                        let _ = seen_tx.send((tag.to_owned(), at));
                    }
                }
                Ok(ServerEvent::EventsDropped { count }) => {
                    reader_shared.add(|c| c.events_dropped += count);
                }
                _ => {}
            }
        }
    });

    // Stagger the first burst over one pause.
    tokio::time::sleep(PAUSE.mul_f64((p % 20) as f64 / 20.0)).await;
    let mut b = 0;
    while !shared.stopping() {
        let tags: Vec<String> = (0..BURST).map(|i| format!("p{p}-b{b}-{i}")).collect();
        let outcome = tokio::time::timeout(
            BURST_LIMIT,
            burst(
                &shared,
                &session,
                &tags,
                &mut lanes,
                &mut sink,
                &mut seen_rx,
            ),
        )
        .await;
        match outcome {
            Ok(written) => {
                sent.extend(written);
                shared.add(|c| c.bursts += 1);
            }
            Err(_) => {
                shared.fail(format!("participant {p} burst {b}: over {BURST_LIMIT:?}"));
                // Its connections may hold unanswered hangs: start afresh.
                let _ = sink
                    .send(Message::text(r#"{"type":"release"}"#.to_owned()))
                    .await;
                lanes.iter_mut().for_each(|l| *l = None);
            }
        }
        b += 1;
        tokio::time::sleep(PAUSE).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
    sent
}

/// One burst: [`BURST`] hangs over the participant's lanes, each lane sending
/// its next when the last is answered, released over the WebSocket once the
/// viewer has seen every hang in flight. Returns per hang when it was written
/// and when its event came.
async fn burst(
    shared: &Shared,
    session: &str,
    tags: &[String],
    lanes: &mut [Option<SendRequest<Full<Bytes>>>],
    sink: &mut futures_util::stream::SplitSink<
        tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
        Message,
    >,
    seen_rx: &mut mpsc::UnboundedReceiver<(String, Instant)>,
) -> Sent {
    let addr = shared.addr;
    let written: Mutex<HashMap<String, Instant>> = Mutex::new(HashMap::new());
    let next = AtomicUsize::new(0);
    let answered = AtomicUsize::new(0);
    let lane_work = lanes.iter_mut().map(|lane| {
        let (written, next, answered) = (&written, &next, &answered);
        async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(tag) = tags.get(i) else {
                    return;
                };
                let path = format!("/api/hang?id={tag}&session={session}");
                for attempt in 0..2 {
                    let mut sender = match lane.take() {
                        Some(s) if s.is_ready() => s,
                        _ => match connect(addr).await {
                            Ok(s) => s,
                            Err(e) => {
                                shared.fail(e);
                                break;
                            }
                        },
                    };
                    if sender.ready().await.is_err() {
                        continue;
                    }
                    written
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(tag.clone(), Instant::now());
                    let result = async {
                        let response = sender
                            .send_request(client::build(addr, "GET", &path, ""))
                            .await
                            .map_err(|e| (true, format!("GET {path}: {e}")))?;
                        let close = response
                            .headers()
                            .get(CONNECTION)
                            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                        let status = response.status().as_u16();
                        response
                            .into_body()
                            .collect()
                            .await
                            .map_err(|e| (false, format!("GET {path}: body: {e}")))?;
                        Ok::<_, (bool, String)>((status, close))
                    }
                    .await;
                    match result {
                        Ok((status, close)) => {
                            if status == 200 {
                                shared.add(|c| c.answered += 1);
                            } else {
                                shared.fail(format!("GET {path}: {status}"));
                            }
                            if close {
                                shared.add(|c| c.reconnects += 1);
                            } else {
                                *lane = Some(sender);
                            }
                            break;
                        }
                        // The kept-alive connection closed under us: once more
                        // on a new one, as a browser does.
                        Err((true, _)) if attempt == 0 => {
                            shared.add(|c| c.reconnects += 1);
                        }
                        Err((_, e)) => {
                            shared.fail(e);
                            break;
                        }
                    }
                }
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let mut seen: HashMap<String, Instant> = HashMap::new();
    let mut last_release: Option<(Instant, usize)> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    // A block of its own: the lanes borrow `written` until they are dropped.
    {
        let lanes_done = futures_util::future::join_all(lane_work);
        tokio::pin!(lanes_done);
        loop {
            tokio::select! {
                _ = &mut lanes_done => break,
                message = seen_rx.recv() => {
                    if let Some((tag, at)) = message {
                        seen.entry(tag).or_insert(at);
                    }
                }
                _ = tick.tick() => {}
            }
            // Release once every hang in flight has been seen (a user sees the
            // requests held, then clicks release); again if nothing moved.
            let done = answered.load(Ordering::Relaxed);
            let in_flight: Vec<String> = {
                let written = written.lock().unwrap_or_else(|p| p.into_inner());
                written.keys().cloned().collect()
            };
            let all_seen = in_flight.iter().all(|t| seen.contains_key(t));
            let waiting = in_flight.len() > done;
            let due = match last_release {
                None => true,
                Some((at, answered_then)) => answered_then != done || at.elapsed() >= RELEASE_RETRY,
            };
            if waiting && all_seen && due {
                let _ = sink
                    .send(Message::text(r#"{"type":"release"}"#.to_owned()))
                    .await;
                last_release = Some((Instant::now(), done));
            }
        }
    }
    // Events of the last hangs may still be on their way.
    let give_up = Instant::now() + Duration::from_millis(500);
    let written = written.into_inner().unwrap_or_else(|p| p.into_inner());
    while written.keys().any(|t| !seen.contains_key(t)) {
        match tokio::time::timeout_at(give_up, seen_rx.recv()).await {
            Ok(Some((tag, at))) => {
                seen.entry(tag).or_insert(at);
            }
            _ => break,
        }
    }
    written
        .into_iter()
        .map(|(tag, at)| (at, seen.get(&tag).copied()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_participant_arithmetic() {
        // 2 core-seconds over 10 s among 200: 1 ms per participant-second.
        let cpu = per_participant_per_second(Duration::from_secs(2), 200, Duration::from_secs(10));
        assert!((cpu - 1.0).abs() < 1e-12);
        assert!(
            per_participant_per_second(Duration::from_secs(1), 0, Duration::from_secs(1)).is_nan()
        );
        assert!(per_participant_per_second(Duration::from_secs(1), 5, Duration::ZERO).is_nan());
        assert_eq!(rss_per_participant(10_000_000, 12_000_000, 100), 20_000.0);
        assert_eq!(rss_per_participant(10_000_000, 9_000_000, 100), 0.0);
        assert!(rss_per_participant(1, 2, 0).is_nan());
    }

    #[test]
    fn a_step_projects_to_a_room_of_200() {
        let step = Step {
            n: 50,
            ready: 50,
            window: Duration::from_secs(10),
            // 1 core-second over 10 s among 50: 2 ms per participant-second,
            // 0.4 cores for 200.
            server_cpu: Duration::from_secs(1),
            rss_idle: 5_000_000,
            rss_peak: 6_000_000,
            latencies_ms: (1..=100).map(f64::from).collect(),
            ..Step::default()
        };
        assert!((step.cpu_per_participant() - 2.0).abs() < 1e-12);
        assert!((step.cores() - 0.1).abs() < 1e-12);
        assert!((step.projected_cores() - 0.4).abs() < 1e-12);
        assert_eq!(step.rss_per_participant(), 20_000.0);
        let paced = Step {
            bursts_in_window: 500,
            ..step.clone()
        };
        // 500 bursts over 10 s among 50: one per participant-second, 2 ms each.
        assert!((paced.pace() - 1.0).abs() < 1e-12);
        assert!((paced.cpu_per_burst() - 2.0).abs() < 1e-12);
        assert!(step.cpu_per_burst().is_nan());
        assert_eq!(step.latency_ms(0.99), 99.0);
        assert!(step.cpu_ok());
        assert!(!step.p99_ok(), "p99 99 ms is over 50 ms");
        let fast = Step {
            latencies_ms: vec![1.0, 2.0, 3.0],
            ..step.clone()
        };
        assert!(fast.p99_ok());
        assert!(!Step::default().p99_ok(), "no event measured");
        let short = Step { ready: 49, ..fast };
        assert!(!short.cpu_ok(), "every participant must be set up");
        let busy = Step {
            server_cpu: Duration::from_secs(3),
            ..step
        };
        assert!((busy.projected_cores() - 1.2).abs() < 1e-12);
        assert!(!busy.cpu_ok());
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=101).rev().map(f64::from).collect();
        assert_eq!(quantile_ms(&v, 0.5), 51.0);
        assert_eq!(quantile_ms(&v, 0.99), 100.0);
        assert_eq!(quantile_ms(&v, 0.0), 1.0);
        assert_eq!(quantile_ms(&v, 1.0), 101.0);
        assert_eq!(quantile_ms(&[7.5], 0.99), 7.5);
        assert!(quantile_ms(&[], 0.5).is_nan());
    }

    #[test]
    fn tags_from_targets() {
        assert_eq!(
            tag_of("/api/hang?id=p3-b0-11&session=s-ab"),
            Some("p3-b0-11")
        );
        assert_eq!(tag_of("/api/hang?session=s-ab&id=x"), Some("x"));
        assert_eq!(tag_of("/api/hang?session=s-ab"), None);
        assert_eq!(tag_of("/api/hang"), None);
    }
}
