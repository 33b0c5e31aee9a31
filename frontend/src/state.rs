//! The page's state and its reducer: pure Rust, no browser API, tested on
//! the host with `cargo test -p keepalive-lab-frontend`.
//!
//! Two sources feed it, on two sides of the wire:
//! - the browser side: the page's own `fetch` calls ([`Action::RunStarted`],
//!   [`Action::Issued`], [`Action::ResponseHead`], [`Action::Finished`],
//!   [`Action::Failed`]);
//! - the server side: [`ServerEvent`]s from the `/api/events` WebSocket,
//!   applied in batches, one per animation frame ([`Action::ServerBatch`]).
//!
//! They meet on the request tag: every burst request carries `id=b<run>-<n>`
//! in its URL, which the server reports back in `request_started.target`.
//! That is how the page knows, without asking the browser, whether a request
//! has reached the server yet (it is on a connection) or is still queued in
//! the browser, and so *measures* how many connections the browser opened per
//! pool. Requests without a tag (identical-URL bursts) are matched afterwards
//! by the `X-Request-Id` response header.

use std::collections::VecDeque;

use crate::sorted::{SortedMap, SortedSet};
use std::rc::Rc;

use protocol::{
    CloseReason, ConnId, ConnectionSnapshot, Micros, RequestId, RequestOutcome, ServerEvent,
    ServerPolicy, SessionId, UpgradeRole,
};

use crate::clock::{ClockSync, Sample};
use crate::settings::{BurstSettings, Credentials};

/// Closed lanes kept for display; older ones are forgotten.
pub const MAX_CLOSED_LANES: usize = 64;
/// Requests kept per lane for display; older ones are forgotten.
pub const MAX_REQUESTS_PER_LANE: usize = 64;
/// Runs kept in the page.
pub const MAX_RUNS: usize = 5;

/// State of the `/api/events` socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketStatus {
    /// Opening (first time or after a drop).
    Connecting,
    /// Live: its snapshot came, events flow, control messages can be sent.
    Open,
    /// Lost (or closed with a code other than 1008); the page retries.
    Closed,
    /// Refused by the server before it went live, for a reason that trying
    /// again will not change (close code 1008: a session it does not know, a
    /// wrong key): the page does not retry by itself ([`reconnect_after_ms`]).
    Refused,
    /// Ended by the server after it was live, with 1008 (the page fell
    /// behind the event stream twice): not a refusal, but the page does not
    /// retry by itself either, since the server said why.
    Ended,
}

impl SocketStatus {
    /// Value of the `data-socket` attribute (tests and CSS read it).
    pub fn name(self) -> &'static str {
        match self {
            SocketStatus::Connecting => "connecting",
            SocketStatus::Open => "open",
            SocketStatus::Closed => "closed",
            SocketStatus::Refused => "refused",
            SocketStatus::Ended => "ended",
        }
    }

    /// The state after the socket closed with `code`; `was_live`: it had
    /// received its snapshot (a refusal closes it before any).
    pub fn after_close(code: u16, was_live: bool) -> SocketStatus {
        match code {
            CLOSE_POLICY if was_live => SocketStatus::Ended,
            CLOSE_POLICY => SocketStatus::Refused,
            _ => SocketStatus::Closed,
        }
    }

    /// The page waits for the learner's Reconnect (the server's 1008).
    pub fn waits_for_reconnect(self) -> bool {
        matches!(self, SocketStatus::Refused | SocketStatus::Ended)
    }
}

/// Close code 1008 (policy violation): the server refused the events socket
/// (or ended it) for a reason that trying again will not change.
pub const CLOSE_POLICY: u16 = 1008;
/// Close code 1013 (Try Again Later): the server refused the events socket
/// because a cap was reached (its viewers per session, requests in flight).
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;
/// Wait before reconnecting after the socket dropped.
pub const RECONNECT_MS: u32 = 1_000;
/// The first wait after a 1013; each one in a row doubles it, up to
/// [`RETRY_LATER_MAX_MS`].
pub const RETRY_LATER_MS: u32 = 2_000;
/// The longest wait after 1013s in a row.
pub const RETRY_LATER_MAX_MS: u32 = 30_000;

/// How long the page waits before opening its events socket again after it
/// closed with `code`, the `in_a_row`-th 1013 since the socket was last
/// live (1 for the first): `None`, never by itself (1008, refused for a
/// reason retrying will not change: the learner reads why and reloads or
/// presses Reconnect); after a 1013 (a cap, which frees itself), 2 s, 4 s,
/// 8 s… up to 30 s; after anything else (a drop, a restart), 1 s.
pub fn reconnect_after_ms(code: u16, in_a_row: u32) -> Option<u32> {
    match code {
        CLOSE_POLICY => None,
        CLOSE_TRY_AGAIN_LATER => {
            let doublings = in_a_row.saturating_sub(1).min(4);
            Some((RETRY_LATER_MS << doublings).min(RETRY_LATER_MAX_MS))
        }
        _ => Some(RECONNECT_MS),
    }
}

/// What the page tells the learner when its events socket closed with
/// `code` and the server's `reason` (empty when it gave none, as for a
/// connection that dropped: the status says "closed" and the page retries);
/// `was_live`: it had received its snapshot, so a 1008 ended it rather than
/// refused it.
pub fn socket_notice(code: u16, reason: &str, was_live: bool) -> Option<String> {
    let then = match code {
        // Refused: the same session would be refused again; a reload asks
        // for a new one (found in review: "press Reconnect" did nothing).
        CLOSE_POLICY if !was_live => "The page does not retry by itself: reload the page.",
        CLOSE_POLICY => "The page does not retry by itself: press Reconnect, or reload the page.",
        CLOSE_TRY_AGAIN_LATER => "The page tries again by itself, less and less often.",
        _ if reason.is_empty() => return None,
        _ => {
            return Some(format!(
                "The server closed the live link ({code}): {reason}. The page reconnects by \
                 itself; reload for a complete picture."
            ));
        }
    };
    let reason = if reason.is_empty() {
        "no reason given"
    } else {
        reason
    };
    let what = if was_live { "closed" } else { "refused" };
    Some(format!(
        "The server {what} the live link ({code}): {reason}. {then}"
    ))
}

/// One request as the server saw it, on its lane.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneRequest {
    /// Server id.
    pub request: RequestId,
    /// n-th on its connection.
    pub seq: u32,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// The page's tag, if the target carried one.
    pub tag: Option<String>,
    /// Head read.
    pub started_us: Micros,
    /// Response head produced.
    pub response_us: Option<Micros>,
    /// Body ended, with how.
    pub finished: Option<(Micros, RequestOutcome)>,
    /// Response status once produced.
    pub status: Option<u16>,
    /// What it is to this page (it names the page's session, it is one of
    /// the page's files, or neither): read from the target once, when the
    /// request is recorded. Every render asks it of every request of every
    /// lane ([`LabState::is_ours`], [`LabState::is_page_load`]), and parsing
    /// the targets there was most of the workbench's view time with a run
    /// of 200 (bench figure 4).
    pub whose: Whose,
}

/// What a lane's request is to this page ([`LaneRequest::whose`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// It names this page's session.
    Ours,
    /// One of the page's files, or its session request.
    PageFile,
    /// Anything else: another session's, or a request naming none.
    Other,
}

impl Whose {
    /// What a request to `target` is, given whether it names this page's
    /// session (the caller may have read that already).
    fn of(target: &str, names_us: bool) -> Whose {
        if names_us {
            Whose::Ours
        } else if is_page_file(target) {
            Whose::PageFile
        } else {
            Whose::Other
        }
    }
}

/// One TCP connection as the server saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    /// Connection id.
    pub conn: ConnId,
    /// Client address:port.
    pub peer: String,
    /// Listener address it arrived on.
    pub local_addr: String,
    /// Server port.
    pub local_port: u16,
    /// Whose it is, once a request named a session.
    pub session: Option<SessionId>,
    /// Accepted at.
    pub opened_us: Micros,
    /// Set once upgraded to a WebSocket.
    pub upgraded: Option<UpgradeRole>,
    /// On the lab's HTTPS ports: what it speaks after the TLS handshake
    /// (`h2` or `http/1.1`, from `connection_secured`); `None` for plain
    /// HTTP/1.1.
    pub protocol: Option<String>,
    /// On the lab's HTTPS ports: when its TLS handshake completed (from
    /// `connection_secured`; `None` for plain HTTP/1.1, and for a lane
    /// first seen in a snapshot).
    pub secured_us: Option<Micros>,
    /// Requests it carried, oldest first (at most [`MAX_REQUESTS_PER_LANE`]).
    pub requests: Vec<LaneRequest>,
    /// Total requests it carried (including forgotten ones).
    pub requests_total: u32,
    /// Closed at, why, bytes in, bytes out.
    pub closed: Option<LaneClose>,
}

/// How a lane ended.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneClose {
    /// When.
    pub at_us: Micros,
    /// Why.
    pub reason: CloseReason,
    /// Bytes read by the server over its life.
    pub bytes_in: u64,
    /// Bytes written by the server over its life.
    pub bytes_out: u64,
}

impl Lane {
    /// Requests on it not finished yet.
    pub fn in_flight(&self) -> usize {
        self.requests
            .iter()
            .filter(|r| r.finished.is_none())
            .count()
    }
}

/// Where one burst request is, as far as the page can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Sequential bursts: not called yet.
    Pending,
    /// `fetch` called; no attempt of it is at the server: it waits in the
    /// browser for a free connection (or, its attempt dropped unanswered, to
    /// be re-sent or failed).
    Queued,
    /// The server has its head (this attempt's): it is on a connection.
    AtServer,
    /// The response head arrived; the body is downloading.
    Downloading,
    /// The body was read completely.
    Done,
    /// The page aborted it (client timeout).
    Aborted,
    /// `fetch` rejected (network error) or the server answered with an error.
    Failed,
}

impl Phase {
    /// Value of the `data-phase` attribute and the CSS class.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Queued => "queued",
            Phase::AtServer => "server",
            Phase::Downloading => "downloading",
            Phase::Done => "done",
            Phase::Aborted => "aborted",
            Phase::Failed => "failed",
        }
    }

    /// Words for the page.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Pending => "not sent yet",
            Phase::Queued => "queued in the browser",
            Phase::AtServer => "on a connection, at the server",
            Phase::Downloading => "downloading",
            Phase::Done => "done",
            Phase::Aborted => "aborted by the page",
            Phase::Failed => "failed",
        }
    }

    /// Still under way.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Phase::Pending | Phase::Queued | Phase::AtServer | Phase::Downloading
        )
    }
}

/// The connection pool a request uses: browsers keep one per origin and
/// credentials mode (among other keys), six connections each for HTTP/1.1.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolKey {
    /// `http://127.0.0.1:8080`.
    pub origin: String,
    /// The request's credentials mode.
    pub credentials: Credentials,
}

impl std::fmt::Display for PoolKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} · credentials {}",
            self.origin,
            self.credentials.name()
        )
    }
}

/// Resource Timing figures for one request (ms, page clock), when the
/// browser exposed them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ResourceTiming {
    /// `fetchStart`.
    pub fetch_start: f64,
    /// `domainLookupStart`: after `fetchStart` only on a new connection.
    pub domain_lookup_start: f64,
    /// `connectStart`.
    pub connect_start: f64,
    /// `connectEnd`.
    pub connect_end: f64,
    /// `requestStart`: the queue wait shows as `requestStart - fetchStart`.
    pub request_start: f64,
    /// `responseStart`.
    pub response_start: f64,
    /// `responseEnd`.
    pub response_end: f64,
}

impl ResourceTiming {
    /// Whether Resource Timing says the connection was new. On loopback a
    /// new connection's connect time can be 0 ms; `domainLookupStart >
    /// fetchStart` told new from reused in every measured run (lab notes).
    pub fn new_connection(&self) -> bool {
        self.domain_lookup_start > self.fetch_start || self.connect_end > self.connect_start
    }
}

/// What a response head told the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Head {
    /// `X-Conn-Id`.
    pub conn: Option<ConnId>,
    /// `X-Request-Id`.
    pub request: Option<RequestId>,
    /// `X-Request-Seq`.
    pub seq: Option<u32>,
    /// HTTP status.
    pub status: u16,
    /// What the response's `Connection` and `Keep-Alive` headers said.
    pub keep_alive: KeepAliveHeaders,
}

/// A response's `Connection` and `Keep-Alive` headers, as the page read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeepAliveHeaders {
    /// `Connection: close`: the server will close after this response.
    pub close: bool,
    /// `Keep-Alive: timeout=T`, in seconds.
    pub timeout_s: Option<u32>,
    /// `Keep-Alive: …, max=M`: requests it will still take on this connection.
    pub max: Option<u32>,
}

impl KeepAliveHeaders {
    /// Reads the two headers' values.
    pub fn parse(connection: Option<&str>, keep_alive: Option<&str>) -> KeepAliveHeaders {
        let close = connection
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
        let param = |name: &str| {
            keep_alive.and_then(|v| {
                v.split(',').find_map(|p| {
                    let (k, v) = p.trim().split_once('=')?;
                    (k.trim().eq_ignore_ascii_case(name))
                        .then(|| v.trim().parse().ok())
                        .flatten()
                })
            })
        };
        KeepAliveHeaders {
            close,
            timeout_s: param("timeout"),
            max: param("max"),
        }
    }

    /// The headers as the page shows them, e.g. `Keep-Alive: timeout=5, max=2`.
    pub fn words(self) -> Option<String> {
        if self.close {
            return Some("Connection: close".into());
        }
        match (self.timeout_s, self.max) {
            (Some(t), Some(m)) => Some(format!("Keep-Alive: timeout={t}, max={m}")),
            (Some(t), None) => Some(format!("Keep-Alive: timeout={t}")),
            (None, Some(m)) => Some(format!("Keep-Alive: max={m}")),
            (None, None) => None,
        }
    }
}

/// One time the server saw a request. The browser can send a request more
/// than once: when a kept-alive connection closes without answering it (the
/// keep-alive race, a hang timeout on a reused connection), Chromium re-sends
/// it silently on another connection. Each attempt keeps its own connection,
/// times and end, so the page can show both.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The connection it went on.
    pub conn: ConnId,
    /// Server id.
    pub request: RequestId,
    /// n-th request on that connection.
    pub seq: u32,
    /// When the server accepted that connection, if the page knew it.
    pub conn_opened_us: Option<Micros>,
    /// Server clock when the server read its head.
    pub start_us: Micros,
    /// Server clock when the server produced a response head.
    pub response_us: Option<Micros>,
    /// Server clock when it ended at the server, and how.
    pub end_us: Option<Micros>,
    /// How it ended at the server.
    pub outcome: Option<RequestOutcome>,
    /// Its connection closed before it was answered, and why: the attempt was
    /// dropped, and the browser re-sends the request or fails it.
    pub dropped: Option<CloseReason>,
}

impl Attempt {
    /// It ended at the server without a response head: the browser got
    /// nothing from it.
    pub fn unanswered(&self) -> bool {
        self.response_us.is_none()
            && (self.dropped.is_some() || self.outcome == Some(RequestOutcome::Aborted))
    }
}

/// One request of a run, browser side, with the server's view joined in.
/// `conn`, `request`, `seq` and the `server_*` times describe one attempt:
/// the one that answered (by `X-Request-Id`), else the latest; `attempts`
/// keeps every attempt the server saw.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowserRequest {
    /// Unique tag `b<run>-<n>`; also in its URL unless the run uses identical URLs.
    pub tag: String,
    /// The URL fetched.
    pub url: String,
    /// Its pool.
    pub pool: PoolKey,
    /// Where it is.
    pub phase: Phase,
    /// The connection that carried it (server events, then `X-Conn-Id`).
    pub conn: Option<ConnId>,
    /// Server id (the latest if the browser sent it more than once).
    pub request: Option<RequestId>,
    /// n-th request on its connection: 1 is a new connection, more is reuse.
    pub seq: Option<u32>,
    /// HTTP status.
    pub status: Option<u16>,
    /// Page clock when `fetch` was called.
    pub issued_ms: Option<f64>,
    /// Server clock when the server read its head.
    pub server_start_us: Option<Micros>,
    /// Server clock when the server produced the response head.
    pub server_response_us: Option<Micros>,
    /// Server clock when the server finished (or dropped) the response.
    pub server_end_us: Option<Micros>,
    /// Page clock when the response head arrived.
    pub head_ms: Option<f64>,
    /// Page clock when it ended.
    pub ended_ms: Option<f64>,
    /// Why it failed or was aborted.
    pub error: Option<String>,
    /// How many times the server saw this request. More than one: the
    /// browser re-sent it silently (keep-alive race); the page never knew.
    pub server_sightings: u32,
    /// The response's `Connection` / `Keep-Alive` headers.
    pub keep_alive: KeepAliveHeaders,
    /// Resource Timing, when available.
    pub timing: Option<ResourceTiming>,
    /// Every time the server saw it, in the server's order.
    pub attempts: Vec<Attempt>,
    /// The server id of the attempt that answered (`X-Request-Id`).
    pub answered_by: Option<RequestId>,
}

impl BrowserRequest {
    /// A request composed but not sent yet.
    pub fn new(tag: String, url: String, pool: PoolKey) -> BrowserRequest {
        BrowserRequest {
            tag,
            url,
            pool,
            phase: Phase::Pending,
            conn: None,
            request: None,
            seq: None,
            status: None,
            issued_ms: None,
            server_start_us: None,
            server_response_us: None,
            server_end_us: None,
            head_ms: None,
            ended_ms: None,
            error: None,
            server_sightings: 0,
            keep_alive: KeepAliveHeaders::default(),
            timing: None,
            attempts: Vec::new(),
            answered_by: None,
        }
    }

    /// The browser sent it more than once.
    pub fn resent(&self) -> bool {
        self.server_sightings > 1
    }

    /// Its latest attempt ended at the server unanswered.
    pub fn dropped(&self) -> bool {
        self.attempts.last().is_some_and(Attempt::unanswered)
    }

    /// The summary fields from the attempt that answered, else the latest.
    fn settle(&mut self) {
        self.server_sightings = u32::try_from(self.attempts.len()).unwrap_or(u32::MAX);
        let pick = match self.answered_by {
            Some(id) => self.attempts.iter().find(|a| a.request == id),
            None => self.attempts.last(),
        };
        if let Some(a) = pick {
            self.conn = Some(a.conn);
            self.request = Some(a.request);
            self.seq = Some(a.seq);
            self.server_start_us = Some(a.start_us);
            self.server_response_us = a.response_us;
            self.server_end_us = a.end_us;
        }
        // A request whose attempt was dropped is back in the browser (it
        // re-sends it, or fails it); a new attempt puts it at the server.
        if matches!(self.phase, Phase::Queued | Phase::Pending | Phase::AtServer)
            && !self.attempts.is_empty()
        {
            self.phase = if self.dropped() {
                Phase::Queued
            } else {
                Phase::AtServer
            };
        }
    }
}

/// Measured figures of one pool in one run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PoolStats {
    /// Most distinct connections carrying this pool's requests at once: the
    /// browser's per-pool limit, measured.
    pub max_concurrent_conns: usize,
    /// Every connection that carried one of its requests.
    pub conns: SortedSet<ConnId>,
}

/// One burst: its settings, its requests, what was measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// 1, 2, 3… in this page.
    pub id: u32,
    /// What was fired.
    pub settings: BurstSettings,
    /// Page clock at the start: when its first request went out (until
    /// then, when it was fired; the page draws a run before its requests go
    /// out).
    pub started_ms: f64,
    /// Wall clock at the start (ms since 1970), for exports.
    pub started_epoch_ms: f64,
    /// Its requests, in the order composed. Shared (`Rc`) so that a frame
    /// copies only the requests that changed, and rows can skip re-rendering
    /// by pointer comparison.
    pub requests: Vec<Rc<BrowserRequest>>,
    /// Its requests at the server right now, with their connection.
    in_flight: SortedMap<RequestId, (ConnId, usize)>,
    /// Server request ids already counted (a duplicate delivery is not a re-send).
    seen: SortedSet<RequestId>,
    /// Per connection, the lowest sequence number of this run's attempts on
    /// it: whether a connection carried an earlier request of this run is
    /// asked for every attempt at every render (`tally::conn_use`; bench
    /// figures 3 and 4), and read here instead of scanning the run.
    first_on: SortedMap<ConnId, u32>,
    /// Per pool.
    pub pools: SortedMap<PoolKey, PoolStats>,
    /// A lesson's runs drawn as one ([`Run::joined`]): each of them, in the
    /// order fired, whose requests this run's are, one after the other.
    /// Empty for a run fired as one burst.
    parts: Vec<Rc<Run>>,
}

impl Run {
    /// A run with no requests (what a lesson measures before it ran).
    pub fn empty() -> Run {
        Run {
            id: 0,
            settings: BurstSettings::default(),
            started_ms: 0.0,
            started_epoch_ms: 0.0,
            requests: Vec::new(),
            in_flight: SortedMap::new(),
            seen: SortedSet::new(),
            first_on: SortedMap::new(),
            pools: SortedMap::new(),
            parts: Vec::new(),
        }
    }

    /// A lesson's runs as one, to be drawn on one time axis (found in
    /// review: after "Keep-alive on and off" the timeline drew the second
    /// burst only). Its requests are the runs', in the order fired, the same
    /// `Rc`s; it starts when the first started; a connection counts as used
    /// if any of them used it. What each request's connection use was is
    /// still asked of its own run ([`Run::parts`]): a connection kept alive
    /// from an earlier burst reads "kept alive", as when that burst was
    /// drawn alone. `None` for no runs; a single run is itself.
    pub fn joined(runs: &[Rc<Run>]) -> Option<Rc<Run>> {
        let (first, last) = match runs {
            [] => return None,
            [only] => return Some(only.clone()),
            [first, .., last] => (first, last),
        };
        let mut joined = Run {
            id: last.id,
            settings: last.settings,
            started_ms: first.started_ms,
            started_epoch_ms: first.started_epoch_ms,
            parts: runs.to_vec(),
            ..Run::empty()
        };
        for run in runs {
            let offset = joined.requests.len();
            joined.requests.extend(run.requests.iter().cloned());
            for (request, (conn, index)) in &run.in_flight {
                joined.in_flight.insert(*request, (*conn, offset + index));
            }
            joined.seen.extend(run.seen.iter().copied());
            for (conn, seq) in &run.first_on {
                let first = joined.first_on.get_or_insert_with(*conn, || *seq);
                *first = (*first).min(*seq);
            }
            for (pool, stats) in &run.pools {
                let into = joined.pools.get_or_default(pool.clone());
                into.conns.extend(stats.conns.iter().copied());
                // The most at once in any one of them: runs fired one after
                // the other do not add up (runs overlapping in one pool
                // would; the drawing does not read this).
                into.max_concurrent_conns =
                    into.max_concurrent_conns.max(stats.max_concurrent_conns);
            }
            joined.started_ms = joined.started_ms.min(run.started_ms);
        }
        Some(Rc::new(joined))
    }

    /// The runs fired one by one that this one is made of: itself, or a
    /// lesson's runs ([`Run::joined`]).
    pub fn parts(&self) -> Vec<&Run> {
        if self.parts.is_empty() {
            vec![self]
        } else {
            self.parts.iter().map(|r| r.as_ref()).collect()
        }
    }

    /// Made of several runs ([`Run::joined`]).
    pub fn is_joined(&self) -> bool {
        !self.parts.is_empty()
    }

    /// Whether this run was joined from exactly `runs` (the same `Rc`s).
    pub fn joins(&self, runs: &[Rc<Run>]) -> bool {
        self.parts.len() == runs.len() && self.parts.iter().zip(runs).all(|(a, b)| Rc::ptr_eq(a, b))
    }

    /// Tag prefix, e.g. `b3`.
    pub fn name(&self) -> String {
        format!("b{}", self.id)
    }

    /// What the run is called in a heading: `run b3`, or for a lesson's
    /// runs joined, `runs b3 and b4` (`runs b3, b4, b5 and b6`).
    pub fn title(&self) -> String {
        let parts = self.parts();
        let mut out = String::from(if parts.len() > 1 { "runs " } else { "run " });
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                out.push_str(if i + 1 == parts.len() { " and " } else { ", " });
            }
            out.push_str(&part.name());
        }
        out
    }

    /// Connections that carried an attempt of this run so far.
    pub fn connections_used(&self) -> usize {
        self.first_on.len()
    }

    /// Requests in `phase`.
    pub fn count(&self, phase: Phase) -> usize {
        self.requests.iter().filter(|r| r.phase == phase).count()
    }

    /// Whether an attempt of this run went on `conn` before its `seq`-th
    /// request.
    pub fn carried_before(&self, conn: ConnId, seq: u32) -> bool {
        self.first_on.get(&conn).is_some_and(|first| *first < seq)
    }

    /// Whether anything is still under way.
    pub fn is_live(&self) -> bool {
        self.requests.iter().any(|r| r.phase.is_open())
    }

    /// Requests of `pool` that had to wait in the browser for a connection:
    /// they first reached the server only after another request (attempt) of
    /// the pool ended there, although they had been issued before it ended
    /// (for certain: earlier by more than the clock sync's error).
    /// With each, how long it waited (issue to first arrival, ms), when the
    /// clocks are synchronised. Requests waiting right now are not in it:
    /// see [`crate::tally::Tally`], which counts both.
    pub fn queued_in(&self, pool: &PoolKey, clock: &ClockSync) -> Vec<(usize, Option<f64>)> {
        let ends: Vec<Micros> = self
            .requests
            .iter()
            .filter(|r| &r.pool == pool)
            .flat_map(|r| {
                r.attempts
                    .iter()
                    .filter_map(|a| a.end_us)
                    .chain(r.server_end_us)
            })
            .collect();
        self.requests
            .iter()
            .enumerate()
            .filter(|(_, r)| &r.pool == pool)
            .filter_map(|(i, r)| {
                let start = r
                    .attempts
                    .first()
                    .map(|a| a.start_us)
                    .or(r.server_start_us)?;
                // Issued before an end for certain: within the clock sync's
                // error, a request issued just after the one before it ended
                // (a sequential run) could look issued before that end.
                let slack = (clock.uncertainty_ms()? * 1000.0) as Micros;
                let issued = clock.to_server_us(r.issued_ms?)?;
                let waited = ends
                    .iter()
                    .any(|end| issued.saturating_add(slack) < *end && *end <= start);
                waited.then(|| {
                    (
                        i,
                        clock
                            .to_page_ms(start)
                            .map(|s| s - r.issued_ms.unwrap_or(s)),
                    )
                })
            })
            .collect()
    }

    /// The server saw request `index` (again): one more attempt.
    fn attempt_started(&mut self, index: usize, attempt: Attempt) {
        if index >= self.requests.len() || !self.seen.insert(attempt.request) {
            return; // unknown, or a duplicate delivery
        }
        let (conn, request, ended) = (attempt.conn, attempt.request, attempt.end_us.is_some());
        let first = self.first_on.get_or_insert_with(conn, || attempt.seq);
        *first = (*first).min(attempt.seq);
        let r = Rc::make_mut(&mut self.requests[index]);
        let at = r
            .attempts
            .partition_point(|a| a.start_us <= attempt.start_us);
        r.attempts.insert(at, attempt);
        r.settle();
        let pool = r.pool.clone();
        if !ended {
            self.in_flight.insert(request, (conn, index));
        }
        let mut distinct: SortedSet<ConnId> = SortedSet::new();
        distinct.extend(
            self.in_flight
                .values()
                .filter(|(_, i)| self.requests[*i].pool == pool)
                .map(|(c, _)| *c),
        );
        let stats = self.pools.get_or_default(pool);
        stats.conns.insert(conn);
        stats.max_concurrent_conns = stats.max_concurrent_conns.max(distinct.len());
    }

    /// The server's snapshot (after the events socket reconnected) shows
    /// `attempt` of request `index`: new to the run, or known with what it
    /// has done since (answered, ended) filled in.
    fn rejoin(&mut self, index: usize, attempt: Attempt) {
        if !self.seen.contains(&attempt.request) {
            return self.attempt_started(index, attempt);
        }
        let Some(r) = self.requests.get_mut(index).map(Rc::make_mut) else {
            return;
        };
        if let Some(a) = r.attempts.iter_mut().find(|a| a.request == attempt.request) {
            a.response_us = a.response_us.or(attempt.response_us);
            a.end_us = a.end_us.or(attempt.end_us);
            a.outcome = a.outcome.or(attempt.outcome);
        }
        r.settle();
        if attempt.end_us.is_some() {
            self.in_flight.remove(&attempt.request);
        }
    }

    /// Changes the attempt with server id `request`, if it is this run's.
    fn attempt_mut(&mut self, request: RequestId, change: impl FnOnce(&mut Attempt)) {
        let Some(&(_, index)) = self.in_flight.get(&request) else {
            return;
        };
        let r = Rc::make_mut(&mut self.requests[index]);
        if let Some(a) = r.attempts.iter_mut().find(|a| a.request == request) {
            change(a);
        }
        r.settle();
    }

    /// The connection `conn` closed: its unanswered attempts were dropped.
    fn connection_closed(&mut self, conn: ConnId, reason: &CloseReason, at_us: Micros) {
        self.in_flight.retain(|_, (c, _)| *c != conn);
        for r in &mut self.requests {
            let hit = |a: &Attempt| {
                a.conn == conn
                    && a.dropped.is_none()
                    && a.response_us.is_none()
                    && a.outcome != Some(RequestOutcome::Completed)
            };
            if r.attempts.iter().any(hit) {
                let r = Rc::make_mut(r);
                for a in r.attempts.iter_mut().filter(|a| hit(a)) {
                    a.dropped = Some(reason.clone());
                    a.end_us.get_or_insert(at_us);
                    a.outcome.get_or_insert(RequestOutcome::Aborted);
                }
                r.settle();
            }
        }
    }
}

/// Loading the page takes at most this long before it goes live: a
/// connection opened earlier is not this page load's.
pub const PAGE_LOAD_WINDOW_US: Micros = 30_000_000;

/// What the page itself loads (its files, either participant bundle, and
/// its session), before any run.
fn is_page_file(target: &str) -> bool {
    let path = target.split('?').next().unwrap_or(target);
    matches!(
        path,
        "/" | "/index.html"
            | "/app.js"
            | "/app_bg.wasm"
            | "/workbench.js"
            | "/workbench_bg.wasm"
            | "/favicon.ico"
            | "/api/sessions"
            // What the page asks for as it starts (none names the session):
            // its TLS ports, the lessons, the lesson's own text.
            | "/api/tls"
            | "/api/lessons"
    ) || path.starts_with("/api/lessons/")
}

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct LabState {
    /// This page load's session: on every lab request and the events socket,
    /// so the server shows this page only its own connections.
    pub session: SessionId,
    /// The events socket.
    pub socket: SocketStatus,
    /// The server's keep-alive policy, as last announced.
    pub config: Option<ServerPolicy>,
    /// Counts policy announcements and server errors, so the policy form can
    /// be reset to the server's values after a change it refused.
    pub config_revision: u64,
    /// The instructor has locked the room's settings (policy and
    /// middlebox): the server refuses this page's changes to them, so a
    /// lesson that sets them cannot run.
    pub room_locked: bool,
    /// Addresses the server listens on (other origins to aim bursts at).
    pub listeners: Vec<String>,
    /// Every connection seen, open and recently closed, by id (shared, like
    /// a run's requests).
    pub lanes: SortedMap<ConnId, Rc<Lane>>,
    /// The last runs, oldest first.
    pub runs: VecDeque<Rc<Run>>,
    /// Runs fired so far (numbers them).
    pub runs_fired: u32,
    /// Server clock ⇄ page clock.
    pub clock: ClockSync,
    /// Events the server skipped for this page because it fell behind.
    pub events_dropped: u64,
    /// Times the page's picture has had a hole: the server skipped events
    /// for it (`events_dropped`), or its events socket reconnected (a
    /// snapshot after the first). Either way the snapshot that follows puts
    /// the open connections right, but what closed meanwhile, and why, was
    /// missed: a lesson whose run spans a hole cannot trust its figures.
    pub gaps: u32,
    /// `events_dropped` came and its snapshot has not yet.
    resyncing: bool,
    /// Last error the server reported on the control channel.
    pub server_error: Option<String>,
    /// The server's refusals of this page's `set_config` and
    /// `set_middlebox` so far (`ErrorBody::refused`): a lesson waiting for
    /// its settings to be confirmed sees one come (the same words twice are
    /// two refusals; a refused report is not one of them).
    pub settings_refused: u64,
    /// Why the server closed or refused the events socket, in its words
    /// ([`socket_notice`]), until the link is live again (its next snapshot).
    pub socket_problem: Option<String>,
    /// The lesson the instructor moved the room to, and how many times it
    /// was moved (the page opens the lesson each time it moves).
    pub room_lesson: Option<(String, u64)>,
    /// Server clock when this page first went live (its first snapshot):
    /// connections opened before it carried the page load.
    pub live_since_us: Option<Micros>,
    /// What the lab's middlebox did with this session's mappings, newest
    /// last (at most [`MAX_MIDDLEBOX_EVENTS`]).
    pub middlebox: VecDeque<MiddleboxRecord>,
    /// This session's middlebox settings as the server last said them (its
    /// `GET /api/middlebox`, then each `middlebox_changed`), and how many
    /// times it said them.
    pub middlebox_settings: Option<(protocol::MiddleboxSettings, u64)>,
    /// This session's Node-style agent runs, newest last (at most
    /// [`MAX_AGENT_EVENTS`]).
    pub agent: VecDeque<AgentRecord>,
    /// Agent runs that finished since the page loaded.
    pub agent_finished: u32,
}

/// Agent events kept for the page.
pub const MAX_AGENT_EVENTS: usize = 1000;

/// One thing the session's agent did.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRecord {
    /// The run, numbered server-wide.
    pub run: u64,
    /// Server clock.
    pub at_us: Micros,
    /// What.
    pub event: protocol::AgentEvent,
}

/// Middlebox events kept for the page.
pub const MAX_MIDDLEBOX_EVENTS: usize = 500;

/// One thing the middlebox did to a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct MiddleboxRecord {
    /// The mapping.
    pub mapping: protocol::MappingId,
    /// Server clock.
    pub at_us: Micros,
    /// What.
    pub event: protocol::MiddleboxEvent,
}

/// Everything that can happen to the state.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Several actions queued during one animation frame, applied in order
    /// with one re-render.
    Batch(Vec<Action>),
    /// The events socket changed state.
    Socket(SocketStatus),
    /// The events socket closed with `code` and the server's `reason`
    /// (empty when it gave none).
    SocketClosed {
        /// The close code (1006 when the connection dropped).
        code: u16,
        /// The close frame's reason.
        reason: String,
    },
    /// Server events received since the last animation frame, in order.
    ServerBatch(Vec<ServerEvent>),
    /// A clock-sync exchange completed.
    Clock(Sample),
    /// A run was composed: its requests (tag, URL, pool) exist, none sent yet.
    RunStarted {
        /// Its id, allocated when it was fired (two runs fired within one
        /// frame must not share one).
        id: u32,
        /// What was fired.
        settings: BurstSettings,
        /// Tag, URL and pool of each request.
        requests: Vec<(String, String, PoolKey)>,
        /// Page clock.
        at_ms: f64,
        /// Wall clock (ms since 1970).
        epoch_ms: f64,
    },
    /// `fetch` was called for request `index` of run `run`.
    Issued {
        /// Run id.
        run: u32,
        /// Request index.
        index: usize,
        /// Page clock.
        at_ms: f64,
    },
    /// A response head arrived.
    ResponseHead {
        /// Run id.
        run: u32,
        /// Request index.
        index: usize,
        /// What it said.
        head: Head,
        /// Page clock.
        at_ms: f64,
    },
    /// The body was read completely.
    Finished {
        /// Run id.
        run: u32,
        /// Request index.
        index: usize,
        /// Page clock.
        at_ms: f64,
        /// Resource Timing, when the browser had an entry.
        timing: Option<ResourceTiming>,
    },
    /// `fetch` rejected or was aborted.
    Failed {
        /// Run id.
        run: u32,
        /// Request index.
        index: usize,
        /// The browser's error text.
        error: String,
        /// The page aborted it (client timeout).
        aborted: bool,
        /// Page clock.
        at_ms: f64,
    },
}

/// The `id` query parameter of a request target, if any.
pub fn tag_of(target: &str) -> Option<&str> {
    query_param(target, "id")
}

/// Query parameter `name` of a request target, if present and not empty.
pub fn query_param<'a>(target: &'a str, name: &str) -> Option<&'a str> {
    let query = target.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        .filter(|v| !v.is_empty())
}

/// A request the server recorded on `lane`, as an attempt.
fn lane_attempt(lane: &Lane, r: &LaneRequest) -> Attempt {
    Attempt {
        conn: lane.conn,
        request: r.request,
        seq: r.seq,
        conn_opened_us: Some(lane.opened_us),
        start_us: r.started_us,
        response_us: r.response_us,
        end_us: r.finished.map(|f| f.0),
        outcome: r.finished.map(|f| f.1),
        dropped: None,
    }
}

/// `b<run>-<index+1>` back to (run, index).
pub fn parse_tag(tag: &str) -> Option<(u32, usize)> {
    let (run, n) = tag.strip_prefix('b')?.split_once('-')?;
    let n: usize = n.parse().ok()?;
    Some((run.parse().ok()?, n.checked_sub(1)?))
}

impl LabState {
    /// A fresh page's state.
    pub fn new(session: SessionId) -> Self {
        LabState {
            session,
            socket: SocketStatus::Connecting,
            config: None,
            config_revision: 0,
            room_locked: false,
            listeners: Vec::new(),
            lanes: SortedMap::new(),
            runs: VecDeque::new(),
            runs_fired: 0,
            clock: ClockSync::default(),
            events_dropped: 0,
            gaps: 0,
            resyncing: false,
            server_error: None,
            settings_refused: 0,
            socket_problem: None,
            room_lesson: None,
            live_since_us: None,
            middlebox: VecDeque::new(),
            middlebox_settings: None,
            agent: VecDeque::new(),
            agent_finished: 0,
        }
    }

    /// Id of the next run, as far as the state knows (the page allocates
    /// ids when it fires, see [`Action::RunStarted`]).
    #[cfg(test)]
    pub fn next_run(&self) -> u32 {
        self.runs_fired + 1
    }

    /// Whether `target` names this page's session.
    pub fn names_us(&self, target: &str) -> bool {
        query_param(target, "session") == Some(self.session.as_str())
    }

    /// What a request to `target` is to this page.
    fn whose(&self, target: &str) -> Whose {
        Whose::of(target, self.names_us(target))
    }

    /// Whether `lane` is one of this page load's own connections: an HTTP
    /// connection opened shortly before the page went live, not another
    /// session's, that carried nothing but the page's files and this page's
    /// requests (or nothing: Chromium's spare). Another browser loading the
    /// page from the same host at the same moment cannot be told apart.
    pub fn is_page_load(&self, lane: &Lane) -> bool {
        self.live_since_us.is_some_and(|live| {
            lane.opened_us < live && lane.opened_us.saturating_add(PAGE_LOAD_WINDOW_US) >= live
        }) && lane.upgraded.is_none()
            && lane.session.as_ref().is_none_or(|s| *s == self.session)
            && lane.requests.iter().all(|r| r.whose != Whose::Other)
    }

    /// Whether `lane` is this page's: claimed by its session, carrying a
    /// request that names it, or its page load's.
    pub fn is_ours(&self, lane: &Lane) -> bool {
        lane.session.as_ref() == Some(&self.session)
            || lane.requests.iter().any(|r| r.whose == Whose::Ours)
            || self.is_page_load(lane)
    }

    /// The latest run.
    pub fn current(&self) -> Option<&Rc<Run>> {
        self.runs.back()
    }

    /// A run by id.
    pub fn run(&self, id: u32) -> Option<&Rc<Run>> {
        self.runs.iter().find(|r| r.id == id)
    }

    /// A run to change (copied first if a rendered frame still shares it).
    /// The run and index of the untagged request (identical URLs) whose
    /// answer named server request `request` (its X-Request-Id) and that
    /// the server's record has not been joined to yet.
    fn untagged(&self, request: RequestId) -> Option<(u32, usize)> {
        self.runs.iter().find_map(|run| {
            let index = run
                .requests
                .iter()
                .position(|r| r.answered_by == Some(request) && r.attempts.is_empty())?;
            Some((run.id, index))
        })
    }

    fn run_mut(&mut self, id: u32) -> Option<&mut Run> {
        self.runs.iter_mut().find(|r| r.id == id).map(Rc::make_mut)
    }

    fn request_mut(&mut self, run: u32, index: usize) -> Option<&mut BrowserRequest> {
        self.run_mut(run)?.requests.get_mut(index).map(Rc::make_mut)
    }

    /// A lane to change (copied first if a rendered frame still shares it).
    fn lane_mut(&mut self, conn: ConnId) -> Option<&mut Lane> {
        self.lanes.get_mut(&conn).map(Rc::make_mut)
    }

    /// Applies one action.
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Batch(actions) => {
                for action in actions {
                    self.apply(action);
                }
            }
            Action::Socket(status) => {
                // The learner pressed Reconnect: the words that asked for it
                // go (a refusal brings its own back at once), so that a
                // later silent drop, retried every second, is not shown
                // under "press Reconnect".
                if self.socket.waits_for_reconnect() {
                    self.socket_problem = None;
                }
                self.socket = status;
            }
            Action::SocketClosed { code, reason } => {
                // Live means its snapshot came (`ServerEvent::Snapshot`
                // below): a refused socket opens, then closes at once.
                let was_live = self.socket == SocketStatus::Open;
                self.socket = SocketStatus::after_close(code, was_live);
                // A drop without words leaves a refusal's words up: the
                // learner still needs them until the link is live again.
                if let Some(notice) = socket_notice(code, &reason, was_live) {
                    self.socket_problem = Some(notice);
                }
            }
            Action::ServerBatch(events) => {
                for event in events {
                    self.apply_event(event);
                }
            }
            Action::Clock(sample) => self.clock.add(sample),
            Action::RunStarted {
                id,
                settings,
                requests,
                at_ms,
                epoch_ms,
            } => {
                if self.runs.iter().any(|r| r.id == id) {
                    return;
                }
                self.runs_fired = self.runs_fired.max(id);
                self.runs.push_back(Rc::new(Run {
                    id,
                    settings,
                    started_ms: at_ms,
                    started_epoch_ms: epoch_ms,
                    requests: requests
                        .into_iter()
                        .map(|(tag, url, pool)| Rc::new(BrowserRequest::new(tag, url, pool)))
                        .collect(),
                    in_flight: SortedMap::new(),
                    seen: SortedSet::new(),
                    first_on: SortedMap::new(),
                    pools: SortedMap::new(),
                    parts: Vec::new(),
                }));
                while self.runs.len() > MAX_RUNS {
                    self.runs.pop_front();
                }
            }
            Action::Issued { run, index, at_ms } => {
                // A run starts when its first request goes out: the page
                // draws the run before issuing its requests
                // (`services::burst::fire`), and the timeline's clock starts
                // with the first of them, not with the click.
                if let Some(r) = self.run_mut(run)
                    && at_ms > r.started_ms
                    && r.requests.iter().all(|q| q.issued_ms.is_none())
                {
                    r.started_epoch_ms += at_ms - r.started_ms;
                    r.started_ms = at_ms;
                }
                if let Some(r) = self.request_mut(run, index) {
                    r.issued_ms.get_or_insert(at_ms);
                    if r.phase == Phase::Pending {
                        r.phase = Phase::Queued;
                    }
                }
            }
            Action::ResponseHead {
                run,
                index,
                head,
                at_ms,
            } => self.response_head(run, index, head, at_ms),
            Action::Finished {
                run,
                index,
                at_ms,
                timing,
            } => {
                if let Some(r) = self.request_mut(run, index) {
                    r.ended_ms = Some(at_ms);
                    r.timing = timing;
                    r.phase = if r.status.is_some_and(|s| s < 400) {
                        Phase::Done
                    } else {
                        r.error = r.status.map(|s| format!("HTTP {s}"));
                        Phase::Failed
                    };
                }
            }
            Action::Failed {
                run,
                index,
                error,
                aborted,
                at_ms,
            } => {
                if let Some(r) = self.request_mut(run, index) {
                    r.phase = if aborted {
                        Phase::Aborted
                    } else {
                        Phase::Failed
                    };
                    r.error = Some(error);
                    r.ended_ms = Some(at_ms);
                }
            }
        }
    }

    fn response_head(&mut self, run: u32, index: usize, head: Head, at_ms: f64) {
        // An untagged request (identical URLs) is matched to the server's
        // record only now, by X-Request-Id.
        let server = head.request.and_then(|id| {
            self.lanes.values().find_map(|lane| {
                lane.requests
                    .iter()
                    .find(|r| r.request == id)
                    .map(|r| lane_attempt(lane, r))
            })
        });
        let Some(run) = self.run_mut(run) else {
            return;
        };
        if let Some(attempt) = server
            && run
                .requests
                .get(index)
                .is_some_and(|r| r.attempts.is_empty())
        {
            run.attempt_started(index, attempt);
        }
        if let Some(r) = run.requests.get_mut(index).map(Rc::make_mut) {
            r.head_ms = Some(at_ms);
            r.conn = head.conn.or(r.conn);
            r.request = head.request.or(r.request);
            r.seq = head.seq.or(r.seq);
            r.answered_by = head.request;
            r.status = Some(head.status);
            r.keep_alive = head.keep_alive;
            r.phase = Phase::Downloading;
            r.settle();
        }
    }

    fn apply_event(&mut self, event: ServerEvent) {
        match event {
            ServerEvent::Snapshot {
                now_us,
                connections,
                config,
                listeners,
                room_lesson,
                locked,
                ..
            } => {
                // Live (again): what closed or refused the socket is over.
                // The link counts as open from its snapshot, not from the
                // WebSocket's `open`, which a refused socket fires too.
                self.socket = SocketStatus::Open;
                self.socket_problem = None;
                if let Some(lesson) = room_lesson
                    && self.room_lesson.as_ref().is_none_or(|(l, _)| *l != lesson)
                {
                    let moves = self.room_lesson.as_ref().map_or(0, |(_, n)| n + 1);
                    self.room_lesson = Some((lesson, moves));
                }
                self.config = Some(config);
                self.config_revision += 1;
                self.room_locked = locked;
                self.listeners = listeners;
                // A snapshot after the first: the socket reconnected, and
                // what happened while it was down was missed. (One right
                // after `events_dropped` is that hole's, counted there.)
                let after_drop = std::mem::take(&mut self.resyncing);
                if self.live_since_us.is_some() && !after_drop {
                    self.gaps += 1;
                }
                self.live_since_us.get_or_insert(now_us);
                // Lanes open in our picture but absent from the server's are
                // gone; we missed why (the page was disconnected).
                self.lanes.retain(|_, lane| lane.closed.is_some());
                let mut open = SortedSet::new();
                let mut rejoined = Vec::new();
                for snapshot in connections {
                    let lane = lane_from_snapshot(snapshot, |t| self.whose(t));
                    open.insert(lane.conn);
                    for r in lane.requests.iter().filter(|r| r.whose == Whose::Ours) {
                        let of_run = match r.tag.as_deref() {
                            Some(tag) => parse_tag(tag),
                            None => self.untagged(r.request),
                        };
                        rejoined.extend(of_run.map(|(run, i)| (run, i, lane_attempt(&lane, r))));
                    }
                    self.lanes.insert(lane.conn, Rc::new(lane));
                }
                // The runs too: what reached the server, was answered or
                // ended while the page was away is in the snapshot, not in
                // events; an attempt on a connection gone meanwhile is no
                // longer at the server (how it ended was missed).
                for run in &mut self.runs {
                    if run.in_flight.values().any(|(c, _)| !open.contains(c)) {
                        Rc::make_mut(run)
                            .in_flight
                            .retain(|_, (c, _)| open.contains(c));
                    }
                }
                // A tag names a run of this page, or of an earlier page
                // load of the same session (run numbers start again at 1):
                // only an attempt that began after this request was issued
                // is its own (within the clock sync's error, plus 1 ms).
                let clock = self.clock;
                let after_issue = |r: &BrowserRequest, a: &Attempt| {
                    let issued = r.issued_ms.and_then(|ms| clock.to_server_us(ms));
                    issued
                        .zip(clock.uncertainty_ms())
                        .is_some_and(|(issued, error)| {
                            a.start_us as f64 + (error + 1.0) * 1000.0 >= issued as f64
                        })
                };
                for (run, index, attempt) in rejoined {
                    if let Some(run) = self.run_mut(run)
                        && run
                            .requests
                            .get(index)
                            .is_some_and(|r| after_issue(r, &attempt))
                    {
                        run.rejoin(index, attempt);
                    }
                }
            }
            ServerEvent::ConnectionOpened {
                conn,
                at_us,
                peer,
                local_addr,
                local_port,
            } => {
                self.lanes.get_or_insert_with(conn, || {
                    Rc::new(Lane {
                        conn,
                        peer,
                        local_addr,
                        local_port,
                        session: None,
                        opened_us: at_us,
                        upgraded: None,
                        protocol: None,
                        secured_us: None,
                        requests: Vec::new(),
                        requests_total: 0,
                        closed: None,
                    })
                });
            }
            ServerEvent::ConnectionAttributed { conn, session, .. } => {
                if let Some(lane) = self.lane_mut(conn) {
                    lane.session = Some(session);
                }
            }
            ServerEvent::ConnectionHidden { conn } => {
                self.lanes.remove(&conn);
            }
            ServerEvent::ConfigChanged { config, locked, .. } => {
                self.config = Some(config);
                self.config_revision += 1;
                self.room_locked = locked;
            }
            ServerEvent::RequestStarted {
                conn,
                request,
                seq,
                method,
                target,
                at_us,
                ..
            } => {
                // Another page's request on a connection of ours names its
                // own session: its tag is not this page's.
                let named = query_param(&target, "session");
                let ours = named.is_none_or(|s| s == self.session.as_str());
                let whose = Whose::of(&target, named == Some(self.session.as_str()));
                let tag = tag_of(&target).map(str::to_owned);
                let duplicate = self
                    .lanes
                    .get(&conn)
                    .is_some_and(|l| l.requests.iter().any(|r| r.request == request));
                if duplicate {
                    return; // duplicate delivery
                }
                let conn_opened_us = self.lanes.get(&conn).map(|l| l.opened_us);
                if let Some(lane) = self.lane_mut(conn) {
                    lane.requests_total = lane.requests_total.max(seq);
                    lane.requests.push(LaneRequest {
                        whose,
                        request,
                        seq,
                        method,
                        target,
                        tag: tag.clone(),
                        started_us: at_us,
                        response_us: None,
                        finished: None,
                        status: None,
                    });
                    if lane.requests.len() > MAX_REQUESTS_PER_LANE {
                        lane.requests.remove(0);
                    }
                }
                let attempt = Attempt {
                    conn,
                    request,
                    seq,
                    conn_opened_us,
                    start_us: at_us,
                    response_us: None,
                    end_us: None,
                    outcome: None,
                    dropped: None,
                };
                let of_run = match tag.as_deref() {
                    Some(tag) => parse_tag(tag),
                    // An untagged request (identical URLs) whose answer
                    // reached the page before this event: joined now, by
                    // the X-Request-Id its head carried.
                    None => self.untagged(request),
                };
                if let Some((run, index)) = of_run.filter(|_| ours)
                    && let Some(run) = self.run_mut(run)
                {
                    run.attempt_started(index, attempt);
                }
            }
            ServerEvent::ResponseStarted {
                conn,
                request,
                status,
                at_us,
            } => {
                if let Some(r) = self.lane_request(conn, request) {
                    r.status = Some(status);
                    r.response_us = Some(at_us);
                }
                self.each_run_with(request, |run| {
                    run.attempt_mut(request, |a| a.response_us = Some(at_us));
                });
            }
            ServerEvent::RequestFinished {
                conn,
                request,
                outcome,
                at_us,
            } => {
                if let Some(r) = self.lane_request(conn, request) {
                    r.finished.get_or_insert((at_us, outcome));
                }
                self.each_run_with(request, |run| {
                    run.attempt_mut(request, |a| {
                        a.end_us.get_or_insert(at_us);
                        a.outcome.get_or_insert(outcome);
                    });
                    run.in_flight.remove(&request);
                });
            }
            ServerEvent::ConnectionUpgraded { conn, role, .. } => {
                if let Some(lane) = self.lane_mut(conn) {
                    lane.upgraded = Some(role);
                }
            }
            ServerEvent::ConnectionSecured {
                conn,
                protocol,
                at_us,
                ..
            } => {
                if let Some(lane) = self.lane_mut(conn) {
                    lane.protocol = Some(protocol);
                    lane.secured_us = Some(at_us);
                }
            }
            ServerEvent::ConnectionClosed {
                conn,
                reason,
                bytes_in,
                bytes_out,
                requests,
                at_us,
                ..
            } => {
                for run in &mut self.runs {
                    if run
                        .requests
                        .iter()
                        .any(|r| r.attempts.iter().any(|a| a.conn == conn))
                    {
                        Rc::make_mut(run).connection_closed(conn, &reason, at_us);
                    }
                }
                if let Some(lane) = self.lane_mut(conn) {
                    lane.requests_total = lane.requests_total.max(requests);
                    lane.closed = Some(LaneClose {
                        at_us,
                        reason,
                        bytes_in,
                        bytes_out,
                    });
                }
                self.forget_old_closed_lanes();
            }
            ServerEvent::EventsDropped { count } => {
                self.events_dropped += count;
                self.gaps += 1;
                self.resyncing = true;
            }
            ServerEvent::Error(body) => {
                self.server_error = Some(format!("{} ({})", body.error, body.hint));
                if matches!(
                    body.refused.as_deref(),
                    Some("set_config" | "set_middlebox")
                ) {
                    self.settings_refused += 1;
                }
                self.config_revision += 1;
            }
            ServerEvent::Middlebox {
                mapping,
                event,
                at_us,
                ..
            } => {
                self.middlebox.push_back(MiddleboxRecord {
                    mapping,
                    at_us,
                    event,
                });
                while self.middlebox.len() > MAX_MIDDLEBOX_EVENTS {
                    self.middlebox.pop_front();
                }
            }
            ServerEvent::Agent {
                run, event, at_us, ..
            } => {
                if matches!(event, protocol::AgentEvent::Finished { .. }) {
                    self.agent_finished += 1;
                }
                self.agent.push_back(AgentRecord { run, at_us, event });
                while self.agent.len() > MAX_AGENT_EVENTS {
                    self.agent.pop_front();
                }
            }
            ServerEvent::RoomLesson {
                lesson: Some(lesson),
            } => {
                let moves = self.room_lesson.as_ref().map_or(0, |(_, n)| n + 1);
                self.room_lesson = Some((lesson, moves));
            }
            // A cleared lesson moves nobody.
            ServerEvent::RoomLesson { lesson: None } => {}
            // HTTP/2 frames: recorded by the server, not drawn (yet).
            ServerEvent::Pong { .. }
            | ServerEvent::Released { .. }
            | ServerEvent::ParticipantChanged { .. }
            | ServerEvent::ParticipantReported { .. }
            | ServerEvent::ParticipantLeft { .. }
            | ServerEvent::StreamReset { .. }
            | ServerEvent::GoAway { .. } => {}
            ServerEvent::MiddleboxChanged {
                settings, session, ..
            } => {
                if session.as_ref() == Some(&self.session) {
                    let n = self.middlebox_settings.as_ref().map_or(0, |m| m.1);
                    self.middlebox_settings = Some((settings, n + 1));
                }
            }
        }
    }

    /// Runs `change` on the run whose request has server id `request` in flight.
    fn each_run_with(&mut self, request: RequestId, mut change: impl FnMut(&mut Run)) {
        for run in &mut self.runs {
            if run.in_flight.contains_key(&request) {
                change(Rc::make_mut(run));
            }
        }
    }

    fn lane_request(&mut self, conn: ConnId, request: RequestId) -> Option<&mut LaneRequest> {
        let known = self
            .lanes
            .get(&conn)?
            .requests
            .iter()
            .any(|r| r.request == request);
        if !known {
            return None;
        }
        self.lane_mut(conn)?
            .requests
            .iter_mut()
            .rev()
            .find(|r| r.request == request)
    }

    /// Keeps the newest [`MAX_CLOSED_LANES`] closed lanes, and the page
    /// load's whatever their age (a few, opened in the moments before the
    /// page went live): the spare-socket lesson counts them, and later in a
    /// workshop more than 64 connections have closed since (found in review).
    fn forget_old_closed_lanes(&mut self) {
        let closed: Vec<ConnId> = self
            .lanes
            .values()
            .filter(|l| l.closed.is_some() && !self.is_page_load(l))
            .map(|l| l.conn)
            .collect();
        for conn in closed
            .iter()
            .take(closed.len().saturating_sub(MAX_CLOSED_LANES))
        {
            self.lanes.remove(conn);
        }
    }
}

/// A lane from the server's snapshot; `whose` tells what each request is to
/// this page.
fn lane_from_snapshot(s: ConnectionSnapshot, whose: impl Fn(&str) -> Whose) -> Lane {
    Lane {
        conn: s.conn,
        peer: s.peer,
        local_addr: s.local_addr,
        local_port: s.local_port,
        session: s.session,
        opened_us: s.opened_us,
        upgraded: s.upgraded,
        protocol: s.protocol,
        secured_us: None,
        requests_total: s.requests_total,
        requests: s
            .requests
            .into_iter()
            .map(|r| LaneRequest {
                tag: tag_of(&r.target).map(str::to_owned),
                whose: whose(&r.target),
                request: r.request,
                seq: r.seq,
                method: r.method,
                target: r.target,
                started_us: r.started_us,
                response_us: r.response_us,
                finished: r.finished_us.zip(r.outcome),
                status: r.status,
            })
            .collect(),
        closed: None,
    }
}

#[cfg(test)]
pub(crate) mod tests;
