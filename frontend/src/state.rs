//! The page's state and its reducer: pure Rust, no browser API, tested on
//! the host with `cargo test -p keepalive-lab-frontend`.
//!
//! Two sources feed it, on two sides of the wire:
//! - the browser side: the page's own `fetch` calls ([`Action::BurstFired`],
//!   [`Action::ResponseHead`], [`Action::Finished`], [`Action::Failed`]);
//! - the server side: [`ServerEvent`]s from the `/api/events` WebSocket.
//!
//! They meet on the request tag: every burst request carries `id=<tag>` in
//! its URL, which the server reports back in `request_started.target`. That
//! is how the page knows, without asking the browser, whether a request has
//! reached the server yet (it is on a connection) or is still queued in the
//! browser, and so *measures* how many connections the browser opened.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use protocol::{
    CloseReason, ConnId, ConnectionSnapshot, Micros, RequestId, RequestOutcome, ServerEvent,
    ServerPolicy, SessionId, UpgradeRole,
};
use yew::Reducible;

/// Closed lanes kept for display; older ones are forgotten.
pub const MAX_CLOSED_LANES: usize = 64;
/// Requests kept per lane for display; older ones are forgotten.
pub const MAX_REQUESTS_PER_LANE: usize = 64;

/// State of the `/api/events` socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketStatus {
    /// Opening (first time or after a drop).
    Connecting,
    /// Live: events flow, control messages can be sent.
    Open,
    /// Lost; the page retries.
    Closed,
}

impl SocketStatus {
    /// Value of the `data-socket` attribute (tests and CSS read it).
    pub fn name(self) -> &'static str {
        match self {
            SocketStatus::Connecting => "connecting",
            SocketStatus::Open => "open",
            SocketStatus::Closed => "closed",
        }
    }
}

/// One request as the server saw it, on its lane.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneRequest {
    /// Server id.
    pub request: RequestId,
    /// n-th on its connection.
    pub seq: u32,
    /// Method and target, e.g. `GET /api/hang?id=b1-3`.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// The page's tag, if the target carried one.
    pub tag: Option<String>,
    /// Head read.
    pub started_us: Micros,
    /// Body ended, with how.
    pub finished: Option<(Micros, RequestOutcome)>,
    /// Response status once produced.
    pub status: Option<u16>,
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
    /// A lane that is neither the page's monitor socket nor a connection that
    /// never carried a request: one that counts in the experiment.
    pub fn is_http(&self) -> bool {
        self.upgraded.is_none() && self.requests_total > 0
    }

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
    /// `fetch` called; the server has not seen it: it waits in the browser
    /// for a free connection.
    Queued,
    /// The server has its head: it is on a connection.
    AtServer,
    /// The response arrived and its body was read.
    Done,
    /// `fetch` rejected (network error) or the server answered with an error.
    Failed,
}

impl Phase {
    /// Value of the `data-phase` attribute and the CSS class.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::AtServer => "server",
            Phase::Done => "done",
            Phase::Failed => "failed",
        }
    }

    /// Words for the page.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Queued => "queued in the browser",
            Phase::AtServer => "on a connection, at the server",
            Phase::Done => "done",
            Phase::Failed => "failed",
        }
    }
}

/// One request of a burst, browser side.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowserRequest {
    /// Unique tag, also in its URL (`id=`), so no two URLs are identical
    /// (Chromium's cache lock would serialise identical ones).
    pub tag: String,
    /// Where it is.
    pub phase: Phase,
    /// The connection that carried it: from the server's events while in
    /// flight, confirmed by the `X-Conn-Id` response header.
    pub conn: Option<ConnId>,
    /// Server id, once seen.
    pub request: Option<RequestId>,
    /// n-th request on its connection (`X-Request-Seq`): 1 is a new
    /// connection, more is keep-alive reuse.
    pub seq: Option<u32>,
    /// HTTP status.
    pub status: Option<u16>,
    /// `performance.now()` when `fetch` was called.
    pub issued_ms: f64,
    /// `performance.now()` when it ended.
    pub ended_ms: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A burst of requests fired together, and what was measured about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Burst {
    /// Tag prefix, e.g. `b3`.
    pub run: String,
    /// Its requests, in the order fired.
    pub requests: Vec<BrowserRequest>,
    /// Burst requests at the server right now, and their connections.
    pub in_flight: BTreeMap<RequestId, ConnId>,
    /// Most distinct connections that carried this burst's requests at the
    /// same moment: the browser's per-origin limit, measured.
    pub max_concurrent_conns: usize,
    /// Every connection that carried one of its requests.
    pub conns_used: BTreeSet<ConnId>,
}

impl Burst {
    /// Requests in `phase`.
    pub fn count(&self, phase: Phase) -> usize {
        self.requests.iter().filter(|r| r.phase == phase).count()
    }

    /// Requests that went out on a connection already used before them.
    pub fn reused(&self) -> usize {
        self.requests
            .iter()
            .filter(|r| r.seq.is_some_and(|s| s > 1))
            .count()
    }

    /// The server has the head of one of this burst's requests.
    fn request_started(&mut self, tag: &str, conn: ConnId, request: RequestId, seq: u32) {
        let Some(r) = self.find(tag) else {
            return;
        };
        if r.phase == Phase::Queued {
            r.phase = Phase::AtServer;
        }
        r.conn = Some(conn);
        r.request = Some(request);
        r.seq = Some(seq);
        self.in_flight.insert(request, conn);
        self.conns_used.insert(conn);
        let distinct: BTreeSet<ConnId> = self.in_flight.values().copied().collect();
        self.max_concurrent_conns = self.max_concurrent_conns.max(distinct.len());
    }

    fn find(&mut self, tag: &str) -> Option<&mut BrowserRequest> {
        self.requests.iter_mut().find(|r| r.tag == tag)
    }
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
    /// Addresses the server listens on (other origins to aim bursts at).
    pub listeners: Vec<String>,
    /// Every connection seen, open and recently closed, by id.
    pub lanes: BTreeMap<ConnId, Lane>,
    /// The current (latest) burst.
    pub burst: Option<Burst>,
    /// Bursts fired so far (numbers the tags).
    pub bursts_fired: u32,
    /// Events the server skipped for this page because it fell behind.
    pub events_dropped: u64,
    /// Last error the server reported on the control channel.
    pub server_error: Option<String>,
}

impl LabState {
    /// A fresh page's state.
    pub fn new(session: SessionId) -> Self {
        LabState {
            session,
            socket: SocketStatus::Connecting,
            config: None,
            listeners: Vec::new(),
            lanes: BTreeMap::new(),
            burst: None,
            bursts_fired: 0,
            events_dropped: 0,
            server_error: None,
        }
    }
}

/// Everything that can happen to the state.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The events socket changed state.
    Socket(SocketStatus),
    /// An event from the server.
    Server(ServerEvent),
    /// The page called `fetch` for `tags` (one burst).
    BurstFired {
        /// Tag prefix of this burst.
        run: String,
        /// One tag per request.
        tags: Vec<String>,
        /// `performance.now()`.
        at_ms: f64,
    },
    /// A response head arrived for `tag`.
    ResponseHead {
        /// Which request.
        tag: String,
        /// `X-Conn-Id`.
        conn: Option<ConnId>,
        /// `X-Request-Id`.
        request: Option<RequestId>,
        /// `X-Request-Seq`.
        seq: Option<u32>,
        /// HTTP status.
        status: u16,
    },
    /// The body of `tag` was read completely.
    Finished {
        /// Which request.
        tag: String,
        /// `performance.now()`.
        at_ms: f64,
    },
    /// `fetch` for `tag` rejected.
    Failed {
        /// Which request.
        tag: String,
        /// The browser's error text.
        error: String,
        /// `performance.now()`.
        at_ms: f64,
    },
}

impl Reducible for LabState {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut state = Rc::unwrap_or_clone(self);
        state.apply(action);
        Rc::new(state)
    }
}

/// The `id` query parameter of a request target, if any.
pub fn tag_of(target: &str) -> Option<&str> {
    let query = target.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("id="))
        .filter(|tag| !tag.is_empty())
}

impl LabState {
    /// Tag prefix for the next burst.
    pub fn next_run(&self) -> String {
        format!("b{}", self.bursts_fired + 1)
    }

    /// Applies one action.
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Socket(status) => self.socket = status,
            Action::Server(event) => self.apply_event(event),
            Action::BurstFired { run, tags, at_ms } => {
                self.bursts_fired += 1;
                self.burst = Some(Burst {
                    run,
                    requests: tags
                        .into_iter()
                        .map(|tag| BrowserRequest {
                            tag,
                            phase: Phase::Queued,
                            conn: None,
                            request: None,
                            seq: None,
                            status: None,
                            issued_ms: at_ms,
                            ended_ms: None,
                            error: None,
                        })
                        .collect(),
                    in_flight: BTreeMap::new(),
                    max_concurrent_conns: 0,
                    conns_used: BTreeSet::new(),
                });
            }
            Action::ResponseHead {
                tag,
                conn,
                request,
                seq,
                status,
            } => {
                if let Some(r) = self.burst.as_mut().and_then(|b| b.find(&tag)) {
                    r.conn = conn.or(r.conn);
                    r.request = request.or(r.request);
                    r.seq = seq.or(r.seq);
                    r.status = Some(status);
                }
            }
            Action::Finished { tag, at_ms } => {
                if let Some(r) = self.burst.as_mut().and_then(|b| b.find(&tag)) {
                    r.ended_ms = Some(at_ms);
                    r.phase = if r.status.is_some_and(|s| s < 400) {
                        Phase::Done
                    } else {
                        r.error = r.status.map(|s| format!("HTTP {s}"));
                        Phase::Failed
                    };
                }
            }
            Action::Failed { tag, error, at_ms } => {
                if let Some(r) = self.burst.as_mut().and_then(|b| b.find(&tag)) {
                    r.phase = Phase::Failed;
                    r.error = Some(error);
                    r.ended_ms = Some(at_ms);
                }
            }
        }
    }

    fn apply_event(&mut self, event: ServerEvent) {
        match event {
            ServerEvent::Snapshot {
                connections,
                config,
                listeners,
                ..
            } => {
                self.config = Some(config);
                self.listeners = listeners;
                // Lanes open in our picture but absent from the server's are
                // gone; we missed why (the page was disconnected).
                self.lanes.retain(|_, lane| lane.closed.is_some());
                for snapshot in connections {
                    self.lanes
                        .insert(snapshot.conn, lane_from_snapshot(snapshot));
                }
            }
            ServerEvent::ConnectionOpened {
                conn,
                at_us,
                peer,
                local_addr,
                local_port,
            } => {
                self.lanes.entry(conn).or_insert_with(|| Lane {
                    conn,
                    peer,
                    local_addr,
                    local_port,
                    session: None,
                    opened_us: at_us,
                    upgraded: None,
                    requests: Vec::new(),
                    requests_total: 0,
                    closed: None,
                });
            }
            ServerEvent::RequestStarted {
                conn,
                request,
                seq,
                method,
                target,
                at_us,
            } => {
                let tag = tag_of(&target).map(str::to_owned);
                if let Some(lane) = self.lanes.get_mut(&conn) {
                    if lane.requests.iter().any(|r| r.request == request) {
                        return; // duplicate delivery
                    }
                    lane.requests_total = lane.requests_total.max(seq);
                    lane.requests.push(LaneRequest {
                        request,
                        seq,
                        method,
                        target,
                        tag: tag.clone(),
                        started_us: at_us,
                        finished: None,
                        status: None,
                    });
                    if lane.requests.len() > MAX_REQUESTS_PER_LANE {
                        lane.requests.remove(0);
                    }
                }
                if let (Some(tag), Some(burst)) = (tag, self.burst.as_mut()) {
                    burst.request_started(&tag, conn, request, seq);
                }
            }
            ServerEvent::ResponseStarted {
                conn,
                request,
                status,
                ..
            } => {
                if let Some(r) = self.lane_request(conn, request) {
                    r.status = Some(status);
                }
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
                if let Some(burst) = self.burst.as_mut() {
                    burst.in_flight.remove(&request);
                }
            }
            ServerEvent::ConnectionAttributed { conn, session, .. } => {
                if let Some(lane) = self.lanes.get_mut(&conn) {
                    lane.session = Some(session);
                }
            }
            ServerEvent::ConnectionHidden { conn } => {
                self.lanes.remove(&conn);
            }
            ServerEvent::ConfigChanged { config, .. } => self.config = Some(config),
            ServerEvent::ConnectionUpgraded { conn, role, .. } => {
                if let Some(lane) = self.lanes.get_mut(&conn) {
                    lane.upgraded = Some(role);
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
                if let Some(lane) = self.lanes.get_mut(&conn) {
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
            ServerEvent::EventsDropped { count } => self.events_dropped += count,
            ServerEvent::Error(body) => {
                self.server_error = Some(format!("{} ({})", body.error, body.hint));
            }
            ServerEvent::Pong { .. } | ServerEvent::Released { .. } => {}
        }
    }

    fn lane_request(&mut self, conn: ConnId, request: RequestId) -> Option<&mut LaneRequest> {
        self.lanes
            .get_mut(&conn)?
            .requests
            .iter_mut()
            .rev()
            .find(|r| r.request == request)
    }

    fn forget_old_closed_lanes(&mut self) {
        let closed: Vec<ConnId> = self
            .lanes
            .values()
            .filter(|l| l.closed.is_some())
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

fn lane_from_snapshot(s: ConnectionSnapshot) -> Lane {
    Lane {
        conn: s.conn,
        peer: s.peer,
        local_addr: s.local_addr,
        local_port: s.local_port,
        session: s.session,
        opened_us: s.opened_us,
        upgraded: s.upgraded,
        requests_total: s.requests_total,
        requests: s
            .requests
            .into_iter()
            .map(|r| LaneRequest {
                tag: tag_of(&r.target).map(str::to_owned),
                request: r.request,
                seq: r.seq,
                method: r.method,
                target: r.target,
                started_us: r.started_us,
                finished: r.finished_us.zip(r.outcome),
                status: r.status,
            })
            .collect(),
        closed: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> LabState {
        LabState::new(SessionId::parse("s-test").unwrap())
    }

    fn opened(conn: u64) -> Action {
        Action::Server(ServerEvent::ConnectionOpened {
            conn: ConnId(conn),
            at_us: conn * 10,
            peer: format!("127.0.0.1:{}", 40000 + conn),
            local_addr: "127.0.0.1:8080".into(),
            local_port: 8080,
        })
    }

    fn started(conn: u64, request: u64, seq: u32, tag: &str) -> Action {
        Action::Server(ServerEvent::RequestStarted {
            conn: ConnId(conn),
            request: RequestId(request),
            seq,
            method: "GET".into(),
            target: format!("/api/hang?id={tag}"),
            at_us: 1000 + request,
        })
    }

    fn finished(conn: u64, request: u64) -> Action {
        Action::Server(ServerEvent::RequestFinished {
            conn: ConnId(conn),
            request: RequestId(request),
            outcome: RequestOutcome::Completed,
            at_us: 5000 + request,
        })
    }

    fn fire(state: &mut LabState, n: usize) -> Vec<String> {
        let run = state.next_run();
        let tags: Vec<String> = (1..=n).map(|i| format!("{run}-{i}")).collect();
        state.apply(Action::BurstFired {
            run,
            tags: tags.clone(),
            at_ms: 0.0,
        });
        tags
    }

    #[test]
    fn finds_the_tag_in_a_target() {
        assert_eq!(tag_of("/api/hang?id=b1-3"), Some("b1-3"));
        assert_eq!(tag_of("/api/slow?ms=5&id=b2-1"), Some("b2-1"));
        assert_eq!(tag_of("/api/slow?ms=5"), None);
        assert_eq!(tag_of("/api/hang?id="), None);
        assert_eq!(tag_of("/api/hang"), None);
    }

    /// The six-lanes experiment as the page sees it: 12 fired, 6 reach the
    /// server on 6 connections, 6 wait; after release the 6 waiting ones go
    /// out on the same connections.
    #[test]
    fn measures_six_connections_and_reuse() {
        let mut s = fresh();
        let tags = fire(&mut s, 12);
        for c in 1..=6 {
            s.apply(opened(c));
            s.apply(started(c, c, 1, &tags[c as usize - 1]));
        }
        let burst = s.burst.as_ref().unwrap();
        assert_eq!(burst.count(Phase::AtServer), 6);
        assert_eq!(burst.count(Phase::Queued), 6);
        assert_eq!(burst.max_concurrent_conns, 6);

        // Release: the first six finish, the next six reuse the connections.
        for c in 1..=6u64 {
            s.apply(finished(c, c));
            s.apply(Action::ResponseHead {
                tag: tags[c as usize - 1].clone(),
                conn: Some(ConnId(c)),
                request: Some(RequestId(c)),
                seq: Some(1),
                status: 200,
            });
            s.apply(Action::Finished {
                tag: tags[c as usize - 1].clone(),
                at_ms: 10.0,
            });
            s.apply(started(c, 6 + c, 2, &tags[5 + c as usize]));
        }
        let burst = s.burst.as_ref().unwrap();
        assert_eq!(burst.count(Phase::Done), 6);
        assert_eq!(burst.count(Phase::AtServer), 6);
        assert_eq!(burst.max_concurrent_conns, 6, "never more than six at once");
        assert_eq!(
            burst.conns_used.len(),
            6,
            "the second six reused the first six"
        );
        assert_eq!(burst.reused(), 6);
        assert_eq!(s.lanes[&ConnId(3)].requests.len(), 2);
        assert!(s.lanes[&ConnId(3)].is_http());
    }

    #[test]
    fn duplicate_and_late_events_change_nothing() {
        let mut s = fresh();
        let tags = fire(&mut s, 1);
        s.apply(opened(1));
        s.apply(started(1, 1, 1, &tags[0]));
        let once = s.clone();
        s.apply(started(1, 1, 1, &tags[0]));
        assert_eq!(s, once, "a duplicate request_started is ignored");
        s.apply(finished(1, 1));
        let after = s.clone();
        s.apply(finished(1, 1));
        assert_eq!(s, after);
        // Events for a connection never seen (missed while disconnected) do not panic.
        s.apply(started(99, 5, 1, "other"));
        s.apply(finished(99, 5));
        assert!(!s.lanes.contains_key(&ConnId(99)));
    }

    #[test]
    fn monitor_and_spare_connections_do_not_count() {
        let mut s = fresh();
        s.apply(opened(1));
        s.apply(opened(2));
        s.apply(started(2, 1, 1, "x"));
        s.apply(Action::Server(ServerEvent::ConnectionUpgraded {
            conn: ConnId(2),
            role: UpgradeRole::Monitor,
            at_us: 3,
        }));
        s.apply(opened(3));
        s.apply(started(3, 2, 1, "y"));
        let http: Vec<u64> = s
            .lanes
            .values()
            .filter(|l| l.is_http())
            .map(|l| l.conn.0)
            .collect();
        assert_eq!(http, vec![3], "1 never carried a request, 2 is the monitor");
    }

    #[test]
    fn close_reason_and_snapshot_and_notices() {
        let mut s = fresh();
        s.apply(opened(1));
        s.apply(Action::Server(ServerEvent::ConnectionClosed {
            conn: ConnId(1),
            reason: CloseReason::IdleTimeout,
            bytes_in: 10,
            bytes_out: 20,
            last_in_us: Some(50),
            last_out_us: Some(60),
            requests: 0,
            at_us: 99,
        }));
        assert_eq!(
            s.lanes[&ConnId(1)].closed.as_ref().unwrap().reason,
            CloseReason::IdleTimeout
        );
        s.apply(opened(2)); // open, but the server will not list it
        s.apply(Action::Server(ServerEvent::Snapshot {
            now_us: 100,
            config: ServerPolicy::default(),
            listeners: vec!["127.0.0.1:8080".into(), "127.0.0.1:8081".into()],
            connections: vec![ConnectionSnapshot {
                conn: ConnId(3),
                opened_us: 50,
                peer: "127.0.0.1:1".into(),
                local_addr: "127.0.0.1:8080".into(),
                local_port: 8080,
                session: None,
                upgraded: None,
                bytes_in: 0,
                bytes_out: 0,
                last_in_us: None,
                last_out_us: None,
                requests_total: 1,
                requests: vec![protocol::RequestSnapshot {
                    request: RequestId(7),
                    seq: 1,
                    method: "GET".into(),
                    target: "/api/hang?id=z".into(),
                    started_us: 60,
                    response_us: None,
                    finished_us: None,
                    status: None,
                    outcome: None,
                }],
            }],
        }));
        let ids: Vec<u64> = s.lanes.keys().map(|c| c.0).collect();
        assert_eq!(ids, vec![1, 3], "closed lane kept, stale open lane dropped");
        assert_eq!(s.lanes[&ConnId(3)].requests[0].tag.as_deref(), Some("z"));
        assert_eq!(s.config, Some(ServerPolicy::default()));
        assert_eq!(s.listeners.len(), 2);
        s.apply(Action::Server(ServerEvent::EventsDropped { count: 5 }));
        s.apply(Action::Server(ServerEvent::EventsDropped { count: 2 }));
        assert_eq!(s.events_dropped, 7);
    }

    #[test]
    fn attribution_hiding_and_config_changes() {
        let mut s = fresh();
        s.apply(opened(1));
        s.apply(opened(2));
        s.apply(Action::Server(ServerEvent::ConnectionAttributed {
            conn: ConnId(1),
            session: SessionId::parse("s-test").unwrap(),
            at_us: 5,
        }));
        assert_eq!(s.lanes[&ConnId(1)].session.as_ref(), Some(&s.session));
        s.apply(Action::Server(ServerEvent::ConnectionHidden { conn: ConnId(2) }));
        assert!(!s.lanes.contains_key(&ConnId(2)), "someone else's connection is forgotten");
        let config = ServerPolicy {
            keep_alive: false,
            ..ServerPolicy::default()
        };
        s.apply(Action::Server(ServerEvent::ConfigChanged {
            config: config.clone(),
            at_us: 6,
        }));
        assert_eq!(s.config, Some(config));
    }

    #[test]
    fn failures_and_error_statuses_are_failed() {
        let mut s = fresh();
        let tags = fire(&mut s, 2);
        s.apply(Action::Failed {
            tag: tags[0].clone(),
            error: "TypeError: Failed to fetch".into(),
            at_ms: 3.0,
        });
        s.apply(Action::ResponseHead {
            tag: tags[1].clone(),
            conn: Some(ConnId(1)),
            request: Some(RequestId(1)),
            seq: Some(1),
            status: 504,
        });
        s.apply(Action::Finished {
            tag: tags[1].clone(),
            at_ms: 4.0,
        });
        let burst = s.burst.unwrap();
        assert_eq!(burst.count(Phase::Failed), 2);
        assert_eq!(burst.requests[1].error.as_deref(), Some("HTTP 504"));
    }

    #[test]
    fn closed_lanes_are_bounded() {
        let mut s = fresh();
        for c in 1..=(MAX_CLOSED_LANES as u64 + 10) {
            s.apply(opened(c));
            s.apply(Action::Server(ServerEvent::ConnectionClosed {
                conn: ConnId(c),
                reason: CloseReason::PeerClosed,
                bytes_in: 0,
                bytes_out: 0,
                last_in_us: None,
                last_out_us: None,
                requests: 0,
                at_us: c,
            }));
        }
        assert_eq!(s.lanes.len(), MAX_CLOSED_LANES);
        assert!(!s.lanes.contains_key(&ConnId(1)), "the oldest go first");
    }
}
