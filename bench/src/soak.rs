//! Figure 7: the soak. A bounded run of the mixed traffic a workshop room
//! makes, against one lab child, while the child's resident memory and open
//! file descriptors are read from `/proc`.
//!
//! # Workload
//!
//! Everything goes to `127.0.0.1` and stops by itself: each loop is bounded in
//! count and time, every request has a timeout, and every client ends when the
//! run does.
//!
//! - [`PARTICIPANTS`] participants, each in a loop of *visits* (a page load):
//!   `POST /api/sessions`, the session's events WebSocket, then rounds of
//!   [`HANGS`] `/api/hang` released over the WebSocket, [`FAST`] `/api/fast`,
//!   [`SLOW`] `/api/slow`, [`DRIPS`] `/api/drip`, one abort (a socket closed
//!   during a hang or a drip), every other round a second viewer that reads
//!   for a while and leaves (a third of them without a close frame); then the
//!   participant leaves (closes its viewer, every fourth time without a close
//!   frame) and the server should end the session's idle connections
//!   (`session_ended`). Requests go over a small keep-alive pool, at most
//!   [`CONCURRENCY`] at a time as a browser would (the hangs need one
//!   connection each).
//! - Every [`STUCK_EVERY`] a *stuck cohort*, with a session of its own: a
//!   viewer that never reads (while the cohort's own requests fill its
//!   socket), a client that never reads a 1 MB drip, a client that sends half
//!   a request head and stops, and an idle keep-alive connection left open.
//!   The server's guards should cut each of them.
//! - One instructor viewer (the child's instructor key) counts every close
//!   reason and request outcome the server reports.
//!
//! # Measures
//!
//! `VmRSS` and the open descriptors of the child: before the load, every
//! 1/[`SAMPLES`] of the run (the sample at [`WARMUP_FRACTION`] ends the
//! warm-up), and once all clients have closed and the descriptors have
//! settled. See [`Soak::drift`] and [`Soak::fds_back`] for the budgets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::CONNECTION;
use hyper_util::rt::TokioIo;
use protocol::ServerEvent;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::client;
use crate::figures::median;
use crate::server::{self, Extras, Kind, Policy, Server};

/// How long the soak runs when `--soak-secs` does not say.
pub const DEFAULT_SECS: u64 = 600;
/// The shortest soak `--soak-secs` accepts.
pub const MIN_SECS: u64 = 20;
/// Readings of memory and descriptors during the load, evenly spaced.
pub const SAMPLES: usize = 20;
/// The first fifth of the run is warm-up.
pub const WARMUP_FRACTION: f64 = 0.2;
/// Readings whose median is a level: the reference after warm-up (the
/// reading that ends it and the next ones), and the end of the load (the
/// last ones, the last 20 % of the run). One busy moment does not decide.
pub const LEVEL_SAMPLES: usize = SAMPLES / 5;
/// Participants working at once (each one browser page after another).
pub const PARTICIPANTS: usize = 10;
/// `/api/hang` requests per burst, held then released over the WebSocket.
pub const HANGS: usize = 12;
/// `/api/fast` requests per burst.
pub const FAST: usize = 24;
/// `/api/slow` requests per burst.
pub const SLOW: usize = 6;
/// `/api/drip` requests per burst (8 KB in 8 chunks, 40 ms apart).
pub const DRIPS: usize = 2;
/// Requests a participant has in flight at once (a browser's connections
/// per origin); the hang burst needs one connection per hang.
pub const CONCURRENCY: usize = 6;
/// Rounds per visit: 3 to 6.
const ROUNDS: (u64, u64) = (3, 6);
/// A new stuck cohort this often.
pub const STUCK_EVERY: Duration = Duration::from_secs(10);
/// How long a stuck client stays stuck before it looks whether the server
/// has cut it: longer than the guards (10 s) plus the time to fill buffers.
pub const STUCK_HOLD: Duration = Duration::from_secs(16);
/// Requests a stuck cohort makes so that its never-reading viewer's socket
/// fills: each shows as three events, about 400 bytes, to that viewer. Sent
/// in [`NOISE_WAVES`] waves 2 s apart: the server's send buffer grows while
/// the first bytes are still taken (about 120 to 250 KB here).
pub const NOISE: usize = 400;
/// See [`NOISE`].
pub const NOISE_WAVES: usize = 2;
/// The stuck clients' TCP segment size: a laptop's on Ethernet or Wi-Fi.
/// Loopback's 64 KB segments would let the kernel size the server's send
/// buffer at about 4 MB instead of about 70 KB, and a stuck client would take
/// minutes to block the server's writes.
pub const STUCK_MSS: u32 = 1460;
/// Body of the drip a stuck client never reads.
pub const STUCK_DRIP_BYTES: u64 = 1024 * 1024;
/// How long the clients may take to finish once the load ends.
const CLIENT_GRACE: Duration = Duration::from_secs(20);
/// The settle after the load: at most this long...
pub const SETTLE_LIMIT: Duration = Duration::from_secs(15);
/// ...ending early once the descriptors are back to their start, or have not
/// fallen for this long (longer than the default 5 s idle timeout).
pub const SETTLE_QUIET: Duration = Duration::from_secs(6);
/// Longest any ordinary request may take.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);
/// Hangs give up by themselves after this (`max_ms`) if never released.
const HANG_MAX_MS: u64 = 20_000;

// ---------------------------------------------------------------------------
// Results.

/// When a reading was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Before any load.
    Start,
    /// The `k`-th of [`SAMPLES`] readings under load.
    Load(usize),
    /// After all clients closed and the descriptors settled.
    Settled,
}

/// One reading of the server child.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When.
    pub phase: When,
    /// Seconds since the load began (negative: before).
    pub at_s: f64,
    /// `VmRSS`, bytes.
    pub rss: u64,
    /// Open file descriptors.
    pub fds: usize,
    /// Of which sockets.
    pub sockets: usize,
    /// Sessions the server remembers (`GET /api/room`), if it answered.
    pub sessions: Option<u64>,
    /// Connections open besides the one asking (`GET /api/room`).
    pub connections: Option<u64>,
}

/// What the clients did (counted by the bench).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Visits (page loads), each with its own session.
    pub visits: u64,
    /// Sessions created (visits and stuck cohorts).
    pub sessions: u64,
    /// HTTP requests answered, by endpoint.
    pub hang: u64,
    /// See [`Tally::hang`].
    pub fast: u64,
    /// See [`Tally::hang`].
    pub slow: u64,
    /// See [`Tally::hang`].
    pub drip: u64,
    /// Hangs the server reported released over the WebSocket.
    pub released: u64,
    /// Requests re-sent once on a new connection because the kept-alive one
    /// was closed under them (as browsers do).
    pub retried: u64,
    /// Requests that failed or were not answered `200` (`POST /api/sessions`
    /// included).
    pub failures: u64,
    /// The first few failures, for the report.
    pub failure_samples: Vec<String>,
    /// Clients that closed their socket during a hang.
    pub aborted_hangs: u64,
    /// Clients that closed their socket during a drip.
    pub aborted_drips: u64,
    /// Event viewers opened (participants' own and second viewers).
    pub viewers: u64,
    /// Of which closed with a close frame.
    pub viewers_closed: u64,
    /// Of which dropped without one.
    pub viewers_dropped: u64,
    /// Participants' idle connections the server closed after the visit's
    /// viewer left (within 3 s).
    pub idle_closed_after_leave: u64,
    /// Of those, still open after 3 s.
    pub idle_open_after_leave: u64,
    /// Stuck clients: started, cut by the server, closed by us when the run
    /// ended, not cut: per kind, see [`STUCK_KINDS`].
    pub stuck: [StuckCount; 4],
    /// Participants still busy [`CLIENT_GRACE`] after the load ended (aborted).
    pub stragglers: u64,
}

impl Tally {
    /// Requests answered or failed, all endpoints (the sessions' `POST`s
    /// included, the bench's own `/api/room` readings not).
    pub fn requests(&self) -> u64 {
        self.sessions
            + self.hang
            + self.fast
            + self.slow
            + self.drip
            + self.aborted_hangs
            + self.aborted_drips
            + self.stuck.iter().map(|s| s.started).sum::<u64>()
    }

    /// Stuck clients started, all kinds.
    pub fn stuck_started(&self) -> u64 {
        self.stuck.iter().map(|s| s.started).sum()
    }
}

/// One kind of stuck client.
#[derive(Debug, Clone, Copy, Default)]
pub struct StuckCount {
    /// Started.
    pub started: u64,
    /// Cut by the server (its guard or idle timer closed the connection).
    pub cut: u64,
    /// Still stuck when the run ended, closed by us.
    pub closed_at_end: u64,
    /// Not cut within [`STUCK_HOLD`] (plus a 5 s look).
    pub not_cut: u64,
}

/// The kinds of stuck client, in [`Tally::stuck`]'s order, with what should
/// cut each.
pub const STUCK_KINDS: [(&str, &str); 4] = [
    ("viewer that never reads", "write_stall_timeout (10 s)"),
    (
        "client that never reads a 1 MB drip",
        "write_stall_timeout (10 s)",
    ),
    (
        "half a request head, then nothing",
        "header_read_timeout (10 s)",
    ),
    ("idle keep-alive connection left open", "idle timeout (5 s)"),
];
const VIEWER: usize = 0;
const DRIP: usize = 1;
const HALF_HEAD: usize = 2;
const IDLE: usize = 3;

/// What the instructor viewer saw.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    /// Close reasons of every connection that closed (`web_socket_closed`
    /// with its code and who sent the first close frame).
    pub reasons: BTreeMap<String, u64>,
    /// Requests that ended, by outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Requests the server started.
    pub requests: u64,
    /// Events the server skipped for this viewer (it fell behind): the counts
    /// above are then short by about this many.
    pub dropped: u64,
    /// Times it had to reconnect (the server closed it).
    pub reconnects: u64,
}

/// Figure 7's result.
#[derive(Debug, Clone)]
pub struct Soak {
    /// Length of the load.
    pub duration: Duration,
    /// Readings: start, [`SAMPLES`] under load, settled.
    pub samples: Vec<Sample>,
    /// From the end of the load (clients told to stop) to the settled
    /// reading: the clients closing, then the settle.
    pub settle: Duration,
    /// Descriptors open at the end that were not at the start, by kind.
    pub extra_fds: Vec<(String, i64)>,
    /// What the clients did.
    pub tally: Tally,
    /// What the server said about it.
    pub watched: Watched,
}

impl Soak {
    fn find(&self, phase: When) -> Option<&Sample> {
        self.samples.iter().find(|s| s.phase == phase)
    }

    /// The reading before the load.
    pub fn start(&self) -> Option<&Sample> {
        self.find(When::Start)
    }

    /// The [`LEVEL_SAMPLES`] readings from the end of the warm-up on.
    pub fn after_warmup(&self) -> Vec<&Sample> {
        let first = warmup_sample();
        self.samples
            .iter()
            .filter(
                |s| matches!(s.phase, When::Load(k) if (first..first + LEVEL_SAMPLES).contains(&k)),
            )
            .collect()
    }

    /// The RSS level after warm-up, *W*: the median of [`Soak::after_warmup`].
    pub fn warm_rss(&self) -> Option<u64> {
        level(
            &self
                .after_warmup()
                .iter()
                .map(|s| s.rss)
                .collect::<Vec<_>>(),
        )
    }

    /// The reading after the settle.
    pub fn settled(&self) -> Option<&Sample> {
        self.find(When::Settled)
    }

    /// The last [`LEVEL_SAMPLES`] readings under load.
    pub fn end_of_load(&self) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| matches!(s.phase, When::Load(k) if k > SAMPLES - LEVEL_SAMPLES))
            .collect()
    }

    /// The end-of-run RSS the budget compares: see [`end_rss`].
    pub fn end_rss(&self) -> Option<u64> {
        let last: Vec<u64> = self.end_of_load().iter().map(|s| s.rss).collect();
        Some(end_rss(self.settled()?.rss, &last))
    }

    /// RSS drift after warm-up, as a fraction: [`drift`] of
    /// [`Soak::end_rss`] over [`Soak::warm_rss`].
    pub fn drift(&self) -> Option<f64> {
        Some(drift(self.warm_rss()?, self.end_rss()?))
    }

    /// Whether the descriptors came back to their start value.
    pub fn fds_back(&self) -> Option<bool> {
        Some(self.settled()?.fds <= self.start()?.fds)
    }

    /// The highest RSS read.
    pub fn peak_rss(&self) -> u64 {
        self.samples.iter().map(|s| s.rss).max().unwrap_or(0)
    }

    /// The most descriptors read.
    pub fn peak_fds(&self) -> usize {
        self.samples.iter().map(|s| s.fds).max().unwrap_or(0)
    }
}

/// The index `k` of the reading that ends the warm-up.
pub fn warmup_sample() -> usize {
    (SAMPLES as f64 * WARMUP_FRACTION).round() as usize
}

/// The median of some RSS readings, `None` without any.
pub fn level(readings: &[u64]) -> Option<u64> {
    let m = median(readings.iter().map(|&r| r as f64));
    (!m.is_nan()).then(|| m.round() as u64)
}

/// The end-of-run RSS, *E*: the higher of the RSS after the settle (the load
/// gone: memory the server kept) and the median of the last readings under
/// load (memory it needs under the same load as after warm-up). A leak raises
/// both; a median keeps one busy moment from deciding.
pub fn end_rss(settled: u64, last_under_load: &[u64]) -> u64 {
    level(last_under_load).map_or(settled, |under_load| settled.max(under_load))
}

/// Drift of `end` over `warm`, as a signed fraction (0.05 is +5 %).
pub fn drift(warm: u64, end: u64) -> f64 {
    if warm == 0 {
        return f64::NAN;
    }
    (end as f64 - warm as f64) / warm as f64
}

/// Whether descriptor counts read during the settle (time since it began,
/// count) have settled: the last one is at or below `target`, or the count
/// has not fallen for `quiet`.
pub fn settled(readings: &[(Duration, usize)], target: usize, quiet: Duration) -> bool {
    let Some(&(now, last)) = readings.last() else {
        return false;
    };
    if last <= target {
        return true;
    }
    let last_fall = readings
        .windows(2)
        .filter(|w| w[1].1 < w[0].1)
        .map(|w| w[1].0)
        .next_back()
        .unwrap_or(readings[0].0);
    now.saturating_sub(last_fall) >= quiet
}

/// Per descriptor kind, how many more are open in `end` than in `start`
/// (only kinds that changed).
pub fn fd_difference(start: &[String], end: &[String]) -> Vec<(String, i64)> {
    let mut by_kind: BTreeMap<String, i64> = BTreeMap::new();
    for target in start {
        *by_kind
            .entry(server::fd_kind(target).to_owned())
            .or_default() -= 1;
    }
    for target in end {
        *by_kind
            .entry(server::fd_kind(target).to_owned())
            .or_default() += 1;
    }
    by_kind.into_iter().filter(|(_, n)| *n != 0).collect()
}

// ---------------------------------------------------------------------------
// The run.

/// Shared counters of the clients.
#[derive(Debug, Default)]
struct Counts(Mutex<Tally>);

impl Counts {
    fn add(&self, f: impl FnOnce(&mut Tally)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn fail(&self, what: String) {
        self.add(|t| {
            t.failures += 1;
            if t.failure_samples.len() < 5 {
                t.failure_samples.push(what);
            }
        });
    }

    fn tally(&self) -> Tally {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Everything a client task needs.
#[derive(Debug, Clone)]
struct Ctx {
    addr: SocketAddr,
    counts: Arc<Counts>,
    /// Flips to `true` when the load ends.
    stop: watch::Receiver<bool>,
    /// When the load ends.
    end: Instant,
}

impl Ctx {
    fn stopping(&self) -> bool {
        *self.stop.borrow() || Instant::now() >= self.end
    }

    /// Sleeps `d`, or less if the load ends first; whether it slept it all.
    async fn sleep(&self, d: Duration) -> bool {
        let mut stop = self.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(d) => !*self.stop.borrow(),
            () = stopped(&mut stop) => false,
        }
    }
}

/// Resolves once `flag` is `true` (or its sender is gone).
async fn stopped(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|f| *f).await;
}

/// Runs the soak for `duration` against a fresh lab child.
pub async fn soak(duration: Duration) -> Result<Soak, String> {
    let key = format!("bench-soak-{}", std::process::id());
    let extras = Extras {
        instructor_key: Some(key.clone()),
        default_session_caps: true,
        ..Extras::default()
    };
    // The policy a workshop runs: 5 s idle timeout, 100 requests per connection.
    let server = Server::start_with(Kind::Lab, Policy::Default, None, &extras).await?;
    let addr = server.addr;

    // Before the load: wait until the readiness request's connection is gone.
    let start_fds = quiet_fds(&server).await?;
    let t0 = Instant::now();
    let mut samples = vec![reading(&server, &key, When::Start, t0, &start_fds).await?];

    let (stop_tx, stop) = watch::channel(false);
    let (done_tx, done) = watch::channel(false);
    let instructor = tokio::spawn(instructor(addr, key.clone(), done));
    let counts = Arc::new(Counts::default());
    let t0 = Instant::now();
    let ctx = Ctx {
        addr,
        counts: counts.clone(),
        stop,
        end: t0 + duration,
    };
    let mut clients = JoinSet::new();
    for p in 0..PARTICIPANTS {
        clients.spawn(participant(ctx.clone(), p));
    }
    clients.spawn(stuck_cohorts(ctx.clone()));

    for k in 1..=SAMPLES {
        tokio::time::sleep_until(t0 + duration.mul_f64(k as f64 / SAMPLES as f64)).await;
        let fds = server.open_fds()?;
        let sample = reading(&server, &key, When::Load(k), t0, &fds).await?;
        eprintln!(
            "bench:    {:>5.0} s: RSS {:.2} MB, {} fds, {} sessions, {} connections",
            sample.at_s,
            sample.rss as f64 / 1e6,
            sample.fds,
            sample.sessions.unwrap_or(0),
            sample.connections.unwrap_or(0)
        );
        samples.push(sample);
    }

    // The load ends: clients finish their step and close.
    let _ = stop_tx.send(true);
    let settling = Instant::now();
    let grace = Instant::now() + CLIENT_GRACE;
    loop {
        match tokio::time::timeout_at(grace, clients.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                counts.add(|t| t.stragglers = clients.len() as u64);
                clients.abort_all();
                while clients.join_next().await.is_some() {}
                break;
            }
        }
    }

    // Settle with the instructor still watching (its socket is one more
    // descriptor), then without it.
    let settle_began = Instant::now();
    settle(&server, start_fds.len() + 1, SETTLE_LIMIT).await?;
    let _ = done_tx.send(true);
    let watched = tokio::time::timeout(Duration::from_secs(5), instructor)
        .await
        .map_err(|_| "the instructor viewer did not close".to_owned())?
        .map_err(|e| format!("instructor viewer: {e}"))?;
    let remaining = SETTLE_LIMIT.saturating_sub(settle_began.elapsed());
    settle(
        &server,
        start_fds.len(),
        remaining.max(Duration::from_secs(2)),
    )
    .await?;
    let settle_time = settling.elapsed();
    let end_fds = server.open_fds()?;
    samples.push(reading(&server, &key, When::Settled, t0, &end_fds).await?);

    Ok(Soak {
        duration,
        samples,
        settle: settle_time,
        extra_fds: fd_difference(&start_fds, &end_fds),
        tally: counts.tally(),
        watched,
    })
}

/// Reads the descriptors every 200 ms until two readings 600 ms apart agree
/// (at most 5 s); returns the last.
async fn quiet_fds(server: &Server) -> Result<Vec<String>, String> {
    let give_up = Instant::now() + Duration::from_secs(5);
    let mut history: Vec<usize> = Vec::new();
    loop {
        let fds = server.open_fds()?;
        history.push(fds.len());
        let steady = history.len() >= 4
            && history[history.len() - 4..]
                .windows(2)
                .all(|w| w[0] == w[1]);
        if steady || Instant::now() > give_up {
            return Ok(fds);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the child's descriptors have [`settled`] at `target`, at most `limit`.
async fn settle(server: &Server, target: usize, limit: Duration) -> Result<(), String> {
    let began = Instant::now();
    let mut readings = Vec::new();
    loop {
        readings.push((began.elapsed(), server.open_fds()?.len()));
        if settled(&readings, target, SETTLE_QUIET) || began.elapsed() >= limit {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One reading: memory and `fds` (read just before), then the room's counts.
async fn reading(
    server: &Server,
    key: &str,
    phase: When,
    t0: Instant,
    fds: &[String],
) -> Result<Sample, String> {
    let rss = server.rss_bytes()?;
    let at_s = match phase {
        When::Start => 0.0,
        _ => t0.elapsed().as_secs_f64(),
    };
    let room = client::request(server.addr, "GET", &format!("/api/room?key={key}"), "")
        .await
        .ok()
        .filter(|(status, _)| *status == 200)
        .and_then(|(_, body)| serde_json::from_slice::<serde_json::Value>(&body).ok());
    Ok(Sample {
        phase,
        at_s,
        rss,
        fds: fds.len(),
        sockets: fds
            .iter()
            .filter(|t| server::fd_kind(t) == "socket")
            .count(),
        sessions: room.as_ref().and_then(|r| r["sessions"].as_u64()),
        // The room counts the connection that asks.
        connections: room
            .as_ref()
            .and_then(|r| r["connections"].as_u64())
            .map(|n| n.saturating_sub(1)),
    })
}

// ---------------------------------------------------------------------------
// The instructor viewer.

/// Watches the whole server until `done`, reconnecting (at most 5 times) if
/// the server closes it; closes with a close frame.
async fn instructor(addr: SocketAddr, key: String, mut done: watch::Receiver<bool>) -> Watched {
    let mut watched = Watched::default();
    let url = format!("ws://{addr}/api/events?key={key}");
    for attempt in 0..6 {
        if *done.borrow() {
            break;
        }
        if attempt > 0 {
            watched.reconnects += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let Ok(Ok((mut ws, _))) = tokio::time::timeout(
            REQUEST_LIMIT,
            tokio_tungstenite::connect_async(url.as_str()),
        )
        .await
        else {
            continue;
        };
        loop {
            tokio::select! {
                message = ws.next() => match message {
                    Some(Ok(Message::Text(text))) => watch_event(&mut watched, text.as_str()),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
                () = stopped(&mut done) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok(message)) = ws.next().await {
                            if let Message::Text(text) = message {
                                watch_event(&mut watched, text.as_str());
                            }
                        }
                    })
                    .await;
                    return watched;
                }
            }
        }
    }
    watched
}

/// Counts one event of the instructor's stream.
fn watch_event(watched: &mut Watched, text: &str) {
    let Ok(event) = serde_json::from_str::<ServerEvent>(text) else {
        return;
    };
    match event {
        ServerEvent::ConnectionClosed { reason, .. } => {
            *watched.reasons.entry(reason_label(&reason)).or_default() += 1;
        }
        ServerEvent::RequestStarted { .. } => watched.requests += 1,
        ServerEvent::RequestFinished { outcome, .. } => {
            let label = serde_json::to_value(outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{outcome:?}"));
            *watched.outcomes.entry(label).or_default() += 1;
        }
        ServerEvent::EventsDropped { count } => watched.dropped += count,
        _ => {}
    }
}

/// `idle_timeout`, or `web_socket_closed 1000 (client)`.
pub fn reason_label(reason: &protocol::CloseReason) -> String {
    match reason {
        protocol::CloseReason::WebSocketClosed {
            code,
            initiator,
            reason: text,
        } => {
            let who = serde_json::to_value(initiator)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            match text.as_str() {
                // The server's own close frame says why.
                text if !text.is_empty() && who == "server" => {
                    format!("{} {code} ({who}): {text}", reason.kind())
                }
                _ => format!("{} {code} ({who})", reason.kind()),
            }
        }
        other => other.kind().to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Clients: a small deterministic random source, a keep-alive pool, viewers,
// raw sockets.

/// SplitMix64: the same workload on every run.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// Keep-alive connections of one page, reused like a browser's. Dropping it
/// closes them all (their tasks are in its `JoinSet`).
#[derive(Debug)]
struct Pool {
    addr: SocketAddr,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    tasks: Mutex<JoinSet<()>>,
}

impl Pool {
    fn new(addr: SocketAddr) -> Pool {
        Pool {
            addr,
            idle: Mutex::new(Vec::new()),
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        lock(&self.tasks).spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = lock(&self.idle);
        while let Some(sender) = idle.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    /// `GET path`; the status and body length. A request that fails on a
    /// reused connection (the server closed it as we sent) is sent once more
    /// on a new one, as browsers do.
    async fn get(
        &self,
        path: &str,
        limit: Duration,
        counts: &Counts,
    ) -> Result<(u16, usize), String> {
        for attempt in 0..2 {
            let (mut sender, reused) = match self.take_idle() {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            let exchange = async {
                let response = sender
                    .send_request(client::build(self.addr, "GET", path, ""))
                    .await
                    .map_err(|e| (true, format!("GET {path}: {e}")))?;
                let close = response
                    .headers()
                    .get(CONNECTION)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                let status = response.status().as_u16();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| (false, format!("GET {path}: body: {e}")))?
                    .to_bytes();
                Ok::<_, (bool, String)>((status, body.len(), close))
            };
            match tokio::time::timeout(limit, exchange).await {
                Ok(Ok((status, len, close))) => {
                    if !close {
                        lock(&self.idle).push(sender);
                    }
                    return Ok((status, len));
                }
                Ok(Err((before_answer, _))) if reused && before_answer && attempt == 0 => {
                    counts.add(|t| t.retried += 1);
                }
                Ok(Err((_, e))) => return Err(e),
                Err(_) => return Err(format!("GET {path}: no answer in {limit:?}")),
            }
        }
        Err(format!("GET {path}: failed twice"))
    }

    /// Waits (at most `limit`) for the server to close the idle connections;
    /// returns how many it closed and how many are still open.
    async fn wait_closed(&self, limit: Duration) -> (u64, u64) {
        let idle = std::mem::take(&mut *lock(&self.idle));
        let give_up = Instant::now() + limit;
        loop {
            let open = idle.iter().filter(|s| !s.is_closed()).count() as u64;
            if open == 0 || Instant::now() >= give_up {
                return (idle.len() as u64 - open, open);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends `paths` over `pool`, at most `concurrency` at once; counts each
/// answer with `count` and each failure.
async fn burst(
    ctx: &Ctx,
    pool: &Pool,
    paths: Vec<String>,
    concurrency: usize,
    limit: Duration,
    count: fn(&mut Tally),
) {
    futures_util::stream::iter(paths)
        .map(|path| async move {
            match pool.get(&path, limit, &ctx.counts).await {
                Ok((200, _)) => ctx.counts.add(count),
                Ok((status, _)) => {
                    ctx.counts.add(count);
                    ctx.counts.fail(format!("GET {path}: {status}"));
                }
                Err(e) => ctx.counts.fail(e),
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
}

/// `POST /api/sessions`; the new session's id.
async fn new_session(ctx: &Ctx) -> Option<String> {
    let answer = client::request(ctx.addr, "POST", "/api/sessions", "").await;
    let session = match &answer {
        Ok((200, body)) => serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["session"].as_str().map(str::to_owned)),
        _ => None,
    };
    match &session {
        Some(_) => ctx.counts.add(|t| t.sessions += 1),
        None => ctx
            .counts
            .fail(format!("POST /api/sessions: {:?}", answer.map(|a| a.0))),
    }
    session
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A page's events WebSocket: a task reads it (and hands on the answers to
/// releases); the page sends releases and the close frame.
#[derive(Debug)]
struct Viewer {
    sink: futures_util::stream::SplitSink<Ws, Message>,
    released: mpsc::Receiver<usize>,
    reader: JoinSet<()>,
}

impl Viewer {
    async fn open(ctx: &Ctx, session: &str) -> Result<Viewer, String> {
        let url = format!("ws://{}/api/events?session={session}", ctx.addr);
        let (ws, _) = tokio::time::timeout(
            REQUEST_LIMIT,
            tokio_tungstenite::connect_async(url.as_str()),
        )
        .await
        .map_err(|_| "events socket: no answer".to_owned())?
        .map_err(|e| format!("events socket: {e}"))?;
        ctx.counts.add(|t| t.viewers += 1);
        let (sink, mut stream) = ws.split();
        let (tx, released) = mpsc::channel(16);
        let mut reader = JoinSet::new();
        reader.spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(text) = message
                    && text.as_str().starts_with(r#"{"type":"released""#)
                    && let Ok(ServerEvent::Released { count }) = serde_json::from_str(text.as_str())
                {
                    let _ = tx.try_send(count);
                }
            }
        });
        Ok(Viewer {
            sink,
            released,
            reader,
        })
    }

    /// Releases the session's hangs tagged `tag`; how many the server let go.
    async fn release(&mut self, tag: &str) -> usize {
        let message = serde_json::json!({"type": "release", "id": tag}).to_string();
        if self.sink.send(Message::text(message)).await.is_err() {
            return 0;
        }
        tokio::time::timeout(Duration::from_secs(2), self.released.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// Leaves with a close frame and waits (briefly) for the server's.
    async fn close(mut self, counts: &Counts) {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "leaving".into(),
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.sink.send(Message::Close(Some(frame))),
        )
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(3), self.reader.join_next()).await;
        counts.add(|t| t.viewers_closed += 1);
    }

    /// Leaves without a close frame (a tab killed): the socket just closes.
    fn drop_unclosed(self, counts: &Counts) {
        counts.add(|t| t.viewers_dropped += 1);
    }
}

/// A plain TCP connection; `stuck` ones have a small receive buffer and a
/// LAN-sized segment ([`STUCK_MSS`]) so the server's writes block soon.
async fn raw(addr: SocketAddr, stuck: bool) -> std::io::Result<TcpStream> {
    if !stuck {
        return TcpStream::connect(addr).await;
    }
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_recv_buffer_size(4096)?;
    socket.set_tcp_mss(STUCK_MSS)?;
    socket.set_nonblocking(true)?;
    tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(socket))
        .connect(addr)
        .await
}

/// A request head for `path`.
fn head(addr: SocketAddr, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n")
}

/// How a read to the end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The server closed (FIN or reset).
    Closed,
    /// Still open when we stopped looking.
    Open,
    /// The load ended first.
    Stopped,
}

/// Reads everything until the server closes, `limit` passes, or the load
/// ends; the bytes read and how it ended.
async fn read_to_end(ctx: &Ctx, stream: &mut TcpStream, limit: Duration) -> (u64, Ending) {
    let mut stop = ctx.stop.clone();
    let mut total = 0_u64;
    let mut buf = vec![0_u8; 64 * 1024];
    let give_up = tokio::time::sleep(limit);
    tokio::pin!(give_up);
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return (total, Ending::Closed),
                Ok(n) => total += n as u64,
            },
            () = &mut give_up => return (total, Ending::Open),
            () = stopped(&mut stop) => return (total, Ending::Stopped),
        }
    }
}

// ---------------------------------------------------------------------------
// Participants.

/// One seat of the room: visit after visit until the load ends.
async fn participant(ctx: Ctx, p: usize) {
    let mut rng = Rng::new(p as u64 + 1);
    // Not everyone arrives at the same moment.
    if !ctx.sleep(Duration::from_millis(rng.between(0, 1500))).await {
        return;
    }
    let mut v = 0;
    while !ctx.stopping() {
        visit(&ctx, &mut rng, p, v).await;
        v += 1;
    }
}

/// One page load: a session, its viewer, some rounds, then leaving.
async fn visit(ctx: &Ctx, rng: &mut Rng, p: usize, v: usize) {
    let Some(session) = new_session(ctx).await else {
        ctx.sleep(Duration::from_secs(1)).await;
        return;
    };
    ctx.counts.add(|t| t.visits += 1);
    let mut viewer = match Viewer::open(ctx, &session).await {
        Ok(viewer) => viewer,
        Err(e) => {
            ctx.counts.fail(e);
            ctx.sleep(Duration::from_secs(1)).await;
            return;
        }
    };
    let pool = Pool::new(ctx.addr);
    let rounds = rng.between(ROUNDS.0, ROUNDS.1);
    for r in 0..rounds {
        if ctx.stopping() {
            break;
        }
        round(
            ctx,
            rng,
            &pool,
            &mut viewer,
            &session,
            &format!("p{p}-v{v}-r{r}"),
            r,
        )
        .await;
    }
    // Leave: the session's page is gone, so its idle connections should close.
    if v % 4 == 3 {
        viewer.drop_unclosed(&ctx.counts);
    } else {
        viewer.close(&ctx.counts).await;
    }
    let (closed, open) = pool.wait_closed(Duration::from_secs(3)).await;
    ctx.counts.add(|t| {
        t.idle_closed_after_leave += closed;
        t.idle_open_after_leave += open;
    });
}

/// One round of a visit.
async fn round(
    ctx: &Ctx,
    rng: &mut Rng,
    pool: &Pool,
    viewer: &mut Viewer,
    session: &str,
    tag: &str,
    r: u64,
) {
    // Hangs, held, then released by tag over the WebSocket.
    let hangs = (0..HANGS)
        .map(|_| format!("/api/hang?id={tag}&max_ms={HANG_MAX_MS}&session={session}"))
        .collect();
    let held = burst(
        ctx,
        pool,
        hangs,
        HANGS,
        Duration::from_millis(HANG_MAX_MS + 5_000),
        |t| t.hang += 1,
    );
    let release = async {
        let mut released = 0;
        let give_up = Instant::now() + Duration::from_secs(5);
        tokio::time::sleep(Duration::from_millis(150)).await;
        while released < HANGS && Instant::now() < give_up {
            released += viewer.release(tag).await;
            if released < HANGS {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        released
    };
    let ((), released) = tokio::join!(held, release);
    ctx.counts.add(|t| t.released += released as u64);

    let fast = (0..FAST)
        .map(|i| format!("/api/fast?id={tag}-f{i}&session={session}"))
        .collect();
    burst(ctx, pool, fast, CONCURRENCY, REQUEST_LIMIT, |t| t.fast += 1).await;

    let slow = (0..SLOW)
        .map(|i| {
            let ms = 100 + 100 * (i as u64 % 5);
            format!("/api/slow?ms={ms}&id={tag}-s{i}&session={session}")
        })
        .collect();
    burst(ctx, pool, slow, CONCURRENCY, REQUEST_LIMIT, |t| t.slow += 1).await;

    let drips = (0..DRIPS)
        .map(|i| {
            format!("/api/drip?bytes=8192&chunks=8&interval_ms=40&id={tag}-d{i}&session={session}")
        })
        .collect();
    burst(ctx, pool, drips, CONCURRENCY, REQUEST_LIMIT, |t| {
        t.drip += 1
    })
    .await;

    abort(ctx, rng, session, tag, r.is_multiple_of(2)).await;

    if !r.is_multiple_of(2) {
        second_viewer(ctx, rng, session).await;
    }
    ctx.sleep(Duration::from_millis(rng.between(200, 600)))
        .await;
}

/// A client that closes its socket mid-request: during a hang (`hang`) or
/// after the first bytes of a drip.
async fn abort(ctx: &Ctx, rng: &mut Rng, session: &str, tag: &str, hang: bool) {
    let path = if hang {
        // No max_ms: only noticing the abort ends this hang before the cap.
        format!("/api/hang?id={tag}-abort&session={session}")
    } else {
        format!("/api/drip?bytes=65536&chunks=32&interval_ms=50&id={tag}-abort&session={session}")
    };
    let wait = Duration::from_millis(rng.between(150, 500));
    let outcome = async {
        let mut stream = raw(ctx.addr, false).await?;
        stream.write_all(head(ctx.addr, &path).as_bytes()).await?;
        if hang {
            tokio::time::sleep(wait).await;
        } else {
            // The response head and a chunk or two, then gone.
            let mut buf = [0_u8; 1024];
            let _ = stream.read(&mut buf).await?;
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(REQUEST_LIMIT, outcome).await {
        Ok(Ok(())) if hang => ctx.counts.add(|t| t.aborted_hangs += 1),
        Ok(Ok(())) => ctx.counts.add(|t| t.aborted_drips += 1),
        Ok(Err(e)) => ctx.counts.fail(format!("abort {path}: {e}")),
        Err(_) => ctx.counts.fail(format!("abort {path}: timed out")),
    }
}

/// Another tab of the session watches for a while, then leaves; one in three
/// without a close frame.
async fn second_viewer(ctx: &Ctx, rng: &mut Rng, session: &str) {
    let viewer = match Viewer::open(ctx, session).await {
        Ok(viewer) => viewer,
        Err(e) => return ctx.counts.fail(e),
    };
    ctx.sleep(Duration::from_millis(rng.between(300, 1200)))
        .await;
    if rng.between(0, 2) == 0 {
        viewer.drop_unclosed(&ctx.counts);
    } else {
        viewer.close(&ctx.counts).await;
    }
}

// ---------------------------------------------------------------------------
// Stuck clients.

/// Starts a stuck cohort every [`STUCK_EVERY`] while there is time for the
/// server's guards to act before the load ends.
async fn stuck_cohorts(ctx: Ctx) {
    let mut cohorts = JoinSet::new();
    let mut n = 0;
    while Instant::now() + STUCK_HOLD < ctx.end && !ctx.stopping() {
        cohorts.spawn(cohort(ctx.clone(), n));
        n += 1;
        if !ctx.sleep(STUCK_EVERY).await {
            break;
        }
    }
    while cohorts.join_next().await.is_some() {}
}

/// One session's worth of stuck clients.
async fn cohort(ctx: Ctx, n: usize) {
    let Some(session) = new_session(&ctx).await else {
        return;
    };
    let noise_pool = Pool::new(ctx.addr);
    let viewer = stuck_viewer(&ctx, &session, &noise_pool, n);
    let drip = stuck_drip(&ctx, &session);
    let half = half_head(&ctx, &session);
    let idle = idle_keep_alive(&ctx, &session);
    tokio::join!(viewer, drip, half, idle);
}

/// Counts one stuck client's ending.
fn stuck_ended(ctx: &Ctx, kind: usize, cut: bool, ending: Ending) {
    ctx.counts.add(|t| {
        let s = &mut t.stuck[kind];
        match (cut, ending) {
            (true, _) => s.cut += 1,
            (false, Ending::Stopped) => s.closed_at_end += 1,
            (false, _) => s.not_cut += 1,
        }
    });
}

/// A viewer that never reads, while its own session's requests (with long
/// tags, so their events are large) fill its socket.
async fn stuck_viewer(ctx: &Ctx, session: &str, pool: &Pool, n: usize) {
    let upgrade = format!(
        "GET /api/events?session={session} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        ctx.addr
    );
    let mut stream = match raw(ctx.addr, true).await {
        Ok(stream) => stream,
        Err(e) => return ctx.counts.fail(format!("stuck viewer: {e}")),
    };
    if let Err(e) = stream.write_all(upgrade.as_bytes()).await {
        return ctx.counts.fail(format!("stuck viewer: {e}"));
    }
    ctx.counts.add(|t| t.stuck[VIEWER].started += 1);
    let began = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let filler = "x".repeat(100);
    for wave in 0..NOISE_WAVES {
        if wave > 0 && !ctx.sleep(Duration::from_secs(2)).await {
            break;
        }
        let noise = (0..NOISE)
            .map(|i| format!("/api/fast?id=stuck{n}-{wave}-{i}-{filler}&session={session}"))
            .collect();
        burst(ctx, pool, noise, CONCURRENCY, REQUEST_LIMIT, |t| {
            t.fast += 1
        })
        .await;
    }
    // Stuck: never read. Then look whether the server has cut us.
    let stuck_for = STUCK_HOLD.saturating_sub(began.elapsed());
    if !ctx.sleep(stuck_for).await {
        return stuck_ended(ctx, VIEWER, false, Ending::Stopped);
    }
    let (_, ending) = read_to_end(ctx, &mut stream, Duration::from_secs(5)).await;
    stuck_ended(ctx, VIEWER, ending == Ending::Closed, ending);
    // The cohort's own idle connections: the idle timer, or the session
    // ending with its only viewer, closes them.
    let _ = pool.wait_closed(Duration::from_secs(1)).await;
}

/// A client that asks for a 1 MB drip and never reads it.
async fn stuck_drip(ctx: &Ctx, session: &str) {
    let path = format!(
        "/api/drip?bytes={STUCK_DRIP_BYTES}&chunks=64&interval_ms=20&id=stuck-drip&session={session}"
    );
    let mut stream = match raw(ctx.addr, true).await {
        Ok(stream) => stream,
        Err(e) => return ctx.counts.fail(format!("stuck drip: {e}")),
    };
    if let Err(e) = stream.write_all(head(ctx.addr, &path).as_bytes()).await {
        return ctx.counts.fail(format!("stuck drip: {e}"));
    }
    ctx.counts.add(|t| t.stuck[DRIP].started += 1);
    if !ctx.sleep(STUCK_HOLD).await {
        return stuck_ended(ctx, DRIP, false, Ending::Stopped);
    }
    // Cut: the server closed before the whole body came.
    let (bytes, ending) = read_to_end(ctx, &mut stream, Duration::from_secs(5)).await;
    let cut = ending == Ending::Closed && bytes < STUCK_DRIP_BYTES;
    stuck_ended(ctx, DRIP, cut, ending);
}

/// Half a request head, then nothing (slowloris).
async fn half_head(ctx: &Ctx, session: &str) {
    let half = format!(
        "GET /api/fast?id=half&session={session} HTTP/1.1\r\nHost: {}\r\n",
        ctx.addr
    );
    let mut stream = match raw(ctx.addr, false).await {
        Ok(stream) => stream,
        Err(e) => return ctx.counts.fail(format!("half head: {e}")),
    };
    if let Err(e) = stream.write_all(half.as_bytes()).await {
        return ctx.counts.fail(format!("half head: {e}"));
    }
    ctx.counts.add(|t| t.stuck[HALF_HEAD].started += 1);
    let (_, ending) = read_to_end(ctx, &mut stream, STUCK_HOLD).await;
    stuck_ended(ctx, HALF_HEAD, ending == Ending::Closed, ending);
}

/// One request, then the connection left open and idle.
async fn idle_keep_alive(ctx: &Ctx, session: &str) {
    let path = format!("/api/fast?id=idle&session={session}");
    let mut stream = match raw(ctx.addr, false).await {
        Ok(stream) => stream,
        Err(e) => return ctx.counts.fail(format!("idle: {e}")),
    };
    if let Err(e) = stream.write_all(head(ctx.addr, &path).as_bytes()).await {
        return ctx.counts.fail(format!("idle: {e}"));
    }
    ctx.counts.add(|t| t.stuck[IDLE].started += 1);
    let (bytes, ending) = read_to_end(ctx, &mut stream, STUCK_HOLD).await;
    if bytes == 0 && ending == Ending::Closed {
        ctx.counts.fail("idle: closed without an answer".to_owned());
    }
    stuck_ended(ctx, IDLE, ending == Ending::Closed, ending);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    #[test]
    fn drift_is_signed_and_relative_to_the_warm_sample() {
        assert!((drift(10 * MB, 10_500_000) - 0.05).abs() < 1e-12);
        assert!((drift(10 * MB, 9 * MB) + 0.10).abs() < 1e-12);
        assert_eq!(drift(10 * MB, 10 * MB), 0.0);
        assert!(drift(0, MB).is_nan());
    }

    #[test]
    fn end_rss_is_the_higher_of_settled_and_the_median_under_load() {
        // Memory kept after the load: the settled reading decides.
        assert_eq!(
            end_rss(12 * MB, &[10 * MB, 11 * MB, 10 * MB, 10 * MB]),
            12 * MB
        );
        // Memory given back after the load: the load's median decides, and one
        // busy reading does not.
        assert_eq!(
            end_rss(9 * MB, &[10 * MB, 30 * MB, 10 * MB, 11 * MB]),
            10_500_000
        );
        assert_eq!(end_rss(9 * MB, &[]), 9 * MB);
        assert_eq!(level(&[3, 1, 2]), Some(2));
        assert_eq!(level(&[]), None);
    }

    #[test]
    fn warm_up_ends_at_a_fifth_and_the_end_is_the_last_fifth() {
        assert_eq!(warmup_sample(), 4);
        let sample = |phase, rss| Sample {
            phase,
            at_s: 0.0,
            rss,
            fds: 10,
            sockets: 3,
            sessions: None,
            connections: None,
        };
        let mut samples = vec![sample(When::Start, 5 * MB)];
        samples.extend((1..=SAMPLES).map(|k| sample(When::Load(k), (10 + k as u64) * MB)));
        samples.push(sample(When::Settled, 20 * MB));
        let soak = Soak {
            duration: Duration::from_secs(60),
            samples,
            settle: Duration::ZERO,
            extra_fds: Vec::new(),
            tally: Tally::default(),
            watched: Watched::default(),
        };
        let warm: Vec<u64> = soak.after_warmup().iter().map(|s| s.rss).collect();
        assert_eq!(warm, [14 * MB, 15 * MB, 16 * MB, 17 * MB]);
        // Readings 4..=7: 14, 15, 16, 17 MB.
        assert_eq!(soak.warm_rss(), Some(15_500_000));
        let last: Vec<usize> = soak
            .end_of_load()
            .iter()
            .filter_map(|s| match s.phase {
                When::Load(k) => Some(k),
                _ => None,
            })
            .collect();
        assert_eq!(last, [17, 18, 19, 20]);
        // max(settled 20 MB, median of 27..=30 MB = 28.5 MB)
        assert_eq!(soak.end_rss(), Some(28_500_000));
        assert!((soak.drift().unwrap_or(0.0) - (28.5 / 15.5 - 1.0)).abs() < 1e-9);
        assert_eq!(soak.fds_back(), Some(true));
        assert_eq!(soak.peak_rss(), 30 * MB);
    }

    #[test]
    fn settling_stops_at_the_target_or_when_the_count_stops_falling() {
        let s = Duration::from_secs;
        let quiet = s(6);
        assert!(!settled(&[], 10, quiet));
        assert!(settled(&[(s(0), 10)], 10, quiet));
        assert!(settled(&[(s(0), 40), (s(1), 9)], 10, quiet));
        // Still falling: wait.
        assert!(!settled(&[(s(0), 40), (s(1), 30), (s(2), 20)], 10, quiet));
        // Stuck above the target since t = 2 s: settled at t = 8 s, not before.
        let mut r = vec![(s(0), 40), (s(2), 20)];
        r.extend((3..=7).map(|t| (s(t), 20)));
        assert!(!settled(&r, 10, quiet));
        r.push((s(8), 20));
        assert!(settled(&r, 10, quiet));
        // A rise does not restart the wait; a fall does.
        assert!(settled(&[(s(0), 20), (s(3), 25), (s(6), 25)], 10, quiet));
        assert!(!settled(
            &[(s(0), 20), (s(3), 25), (s(5), 22), (s(6), 22)],
            10,
            quiet
        ));
    }

    #[test]
    fn descriptor_differences_by_kind() {
        let start: Vec<String> = [
            "/dev/null",
            "pipe:[1]",
            "socket:[10]",
            "anon_inode:[eventpoll]",
        ]
        .map(str::to_owned)
        .to_vec();
        let end: Vec<String> = [
            "/dev/null",
            "pipe:[1]",
            "socket:[11]",
            "socket:[12]",
            "anon_inode:[eventpoll]",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(fd_difference(&start, &end), [("socket".to_owned(), 1)]);
        assert!(fd_difference(&start, &start).is_empty());
        assert_eq!(
            fd_difference(&end, &start[..2]),
            [("eventpoll".to_owned(), -1), ("socket".to_owned(), -2)]
        );
    }

    #[test]
    fn close_reason_labels() {
        use protocol::{CloseReason, Initiator};
        assert_eq!(reason_label(&CloseReason::IdleTimeout), "idle_timeout");
        assert_eq!(
            reason_label(&CloseReason::WebSocketClosed {
                code: 1000,
                initiator: Initiator::Client,
                reason: "leaving".into()
            }),
            "web_socket_closed 1000 (client)"
        );
        assert_eq!(
            reason_label(&CloseReason::WebSocketClosed {
                code: 1008,
                initiator: Initiator::Server,
                reason: "fell behind".into()
            }),
            "web_socket_closed 1008 (server): fell behind"
        );
    }

    #[test]
    fn the_random_source_is_deterministic_and_in_range() {
        let (mut a, mut b) = (Rng::new(3), Rng::new(3));
        for _ in 0..1000 {
            let x = a.between(3, 6);
            assert_eq!(x, b.between(3, 6));
            assert!((3..=6).contains(&x));
        }
        assert_ne!(Rng::new(1).next(), Rng::new(2).next());
    }

    #[test]
    fn tally_counts_every_request() {
        let mut t = Tally {
            sessions: 2,
            hang: 12,
            fast: 24,
            slow: 6,
            drip: 2,
            aborted_hangs: 1,
            aborted_drips: 1,
            ..Tally::default()
        };
        t.stuck[VIEWER].started = 1;
        t.stuck[IDLE].started = 1;
        assert_eq!(t.requests(), 50);
        assert_eq!(t.stuck_started(), 2);
    }
}
