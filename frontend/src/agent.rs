//! The session's Node-style agent, as the page sees it: the composer's
//! settings and the `agent_start` they send, and one agent run rebuilt from
//! its events for the timeline (its requests as a third kind of client row,
//! its sockets under Node's event names, each joined to the server's lane of
//! the same connection). Pure, tested on the host.
//!
//! Node's `http.Agent` options and events:
//! <https://nodejs.org/api/http.html#class-httpagent>.

use crate::sorted::SortedSet;
use std::rc::Rc;

use protocol::{
    AgentEvent, AgentOptions, AgentRequestSpec, AgentTarget, ClientMessage, ConnId, Micros,
    RequestEvent, SocketEvent,
};

use crate::clock::ClockSync;
use crate::state::{LabState, Lane};
use crate::tally::count;
use crate::timeline::{Kind, Segment};

/// What the agent composer holds: the options by Node's names, the request,
/// and "one request every N ms", `count` times (like the experiment's
/// `setInterval`).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    /// `new http.Agent(options)`, plus axios' `timeout` as `request_timeout`.
    pub options: AgentOptions,
    /// Path, method, target (direct or through the middlebox).
    pub request: AgentRequestSpec,
    /// One request every this many ms (0: all at once).
    pub every_ms: u64,
    /// How many requests.
    pub count: u32,
    /// Keep the agent (and its free sockets) this long after the last
    /// request, to watch them time out or be closed.
    pub linger_ms: u64,
}

impl Default for AgentSettings {
    /// The experiment's client: keepAlive false, maxSockets 20, a request
    /// every 3 s (Node's defaults otherwise).
    fn default() -> Self {
        AgentSettings {
            options: AgentOptions {
                max_sockets: Some(20),
                ..AgentOptions::default()
            },
            request: AgentRequestSpec {
                method: "GET".into(),
                path: "/api/fast".into(),
                target: AgentTarget::Same,
                connection: None,
            },
            every_ms: 3000,
            count: 3,
            linger_ms: 0,
        }
    }
}

impl AgentSettings {
    /// The `agent_start` message, or why it would be refused.
    pub fn message(&self) -> Result<ClientMessage, String> {
        self.options.validate().map_err(|e| e.error)?;
        if !self.request.path.starts_with('/') {
            return Err("the path starts with /, e.g. /api/fast".into());
        }
        Ok(ClientMessage::AgentStart {
            options: self.options.clone(),
            request: self.request.clone(),
            every_ms: self.every_ms,
            count: self.count,
            linger_ms: self.linger_ms,
        })
    }
}

/// A socket limit as typed: a number, or `Infinity` (also empty) for none.
pub fn parse_limit(text: &str) -> Option<u32> {
    text.trim().parse::<u32>().ok().filter(|n| *n > 0)
}

/// A socket limit as Node writes it.
pub fn limit_words(limit: Option<u32>) -> String {
    limit.map_or_else(|| "Infinity".into(), |n| n.to_string())
}

/// Milliseconds as typed; empty (or 0) is none.
pub fn parse_ms(text: &str) -> Option<u64> {
    text.trim().parse::<u64>().ok().filter(|n| *n > 0)
}

/// How one of the agent's requests ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEnd {
    /// Its response ended (`done`).
    Done(u16),
    /// It failed (`error`, e.g. `ECONNRESET`).
    Error(String),
    /// It was aborted (its own timeout, or the agent stopped).
    Aborted(protocol::AbortReason),
}

/// One request of an agent run.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRequest {
    /// Its number in the run, from 1.
    pub n: u32,
    /// Its tag in `id=` (`a<run>-<n>`).
    pub tag: String,
    /// The `Connection` header it carried.
    pub connection: String,
    /// Handed to the agent.
    pub queued_us: Micros,
    /// It waited in the agent's queue (no socket allowed).
    pub waited: bool,
    /// Written on a socket.
    pub sent_us: Option<Micros>,
    /// The socket, and whether it carried an earlier request (the event's
    /// `socket_requests` over 1; Node's `reusedSocket` is not that).
    pub socket: Option<(u32, bool)>,
    /// Response head.
    pub response_us: Option<Micros>,
    /// Its request `timeout` events (after ms).
    pub timeouts: Vec<(Micros, u64)>,
    /// Ended at, and how.
    pub end: Option<(Micros, AgentEnd)>,
}

impl AgentRequest {
    /// Its state in a few words.
    pub fn words(&self) -> &'static str {
        match (&self.end, self.response_us, self.sent_us) {
            (Some((_, AgentEnd::Done(_))), ..) => "✓ done",
            (Some((_, AgentEnd::Error(_))), ..) => "▶ error",
            (Some((_, AgentEnd::Aborted(_))), ..) => "✕ aborted",
            (None, Some(_), _) => "downloading",
            (None, None, Some(_)) => "in flight",
            // Node queues only a request no socket may take; one that gets
            // a new socket is connecting (found in review: drawn as queued).
            (None, None, None) if self.waited => "queued in the agent",
            (None, None, None) => "connecting",
        }
    }

    /// Queued in the agent, in flight, downloading, on the page's clock.
    pub fn segments(&self, clock: &ClockSync) -> Vec<Segment> {
        let page = |us| clock.to_page_ms(us);
        let Some(queued) = page(self.queued_us) else {
            return Vec::new();
        };
        let end = self.end.as_ref().and_then(|(us, _)| page(*us));
        let mut out = Vec::new();
        let mut push = |from: f64, to: Option<f64>, kind| {
            out.push(Segment {
                from_ms: from,
                to_ms: to.unwrap_or(from).max(from),
                open: to.is_none(),
                kind,
                attempt: None,
            })
        };
        let sent = self.sent_us.and_then(page);
        push(queued, sent.or(end), Kind::Queued);
        if let Some(sent) = sent {
            let head = self.response_us.and_then(page);
            push(sent, head.or(end), Kind::Waiting);
            if let Some(head) = head {
                push(head.max(sent), end, Kind::Downloading);
            }
        }
        out
    }
}

/// One of the agent's sockets.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSocket {
    /// Its number in the run, from 1.
    pub n: u32,
    /// Created (`socket`).
    pub created_us: Micros,
    /// Its own address (`connect`): the server's `peer`.
    pub local: Option<String>,
    /// Node's events on it, in order: name (with `had_error` for `close`)
    /// and when.
    pub events: Vec<(Micros, String)>,
    /// Closed at, `had_error`.
    pub closed: Option<(Micros, bool)>,
}

impl AgentSocket {
    /// Its events under Node's names, in order: `socket → connect → free →
    /// timeout → close(had_error=false)`.
    pub fn event_words(&self) -> String {
        let names: Vec<&str> = self.events.iter().map(|(_, n)| n.as_str()).collect();
        names.join(" → ")
    }

    /// Its last events that fit in `max` characters (the newest matter
    /// most), with `…` in front when some were left out.
    pub fn last_events(&self, max: usize) -> String {
        let mut out = String::new();
        for (_, name) in self.events.iter().rev() {
            let next = if out.is_empty() {
                name.clone()
            } else {
                format!("{name} {out}")
            };
            if next.chars().count() + 2 > max {
                return format!("… {out}");
            }
            out = next;
        }
        out
    }

    /// Its life on the page's clock.
    pub fn life(&self, clock: &ClockSync) -> Option<Segment> {
        let from = clock.to_page_ms(self.created_us)?;
        let to = self.closed.and_then(|(us, _)| clock.to_page_ms(us));
        Some(Segment {
            from_ms: from,
            to_ms: to.unwrap_or(from).max(from),
            open: to.is_none(),
            kind: Kind::Connection,
            attempt: None,
        })
    }
}

/// One agent run rebuilt from its events.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentView {
    /// The run, numbered server-wide.
    pub run: u64,
    /// The first event's time.
    pub started_us: Micros,
    /// Options, as the run reported them.
    pub options: Option<AgentOptions>,
    /// When and why it finished.
    pub finished: Option<(Micros, protocol::FinishReason)>,
    /// Its requests, in order.
    pub requests: Vec<Rc<AgentRequest>>,
    /// Its sockets, in order.
    pub sockets: Vec<Rc<AgentSocket>>,
}

/// Node's name for a socket event, as shown on the page.
pub fn socket_event_name(event: &SocketEvent) -> String {
    match event {
        SocketEvent::Socket { .. } => "socket".into(),
        SocketEvent::Connect { .. } => "connect".into(),
        SocketEvent::Keepalive { .. } => "setKeepAlive".into(),
        SocketEvent::Free { outcome, .. } => match outcome {
            protocol::FreeOutcome::Pooled => "free".into(),
            protocol::FreeOutcome::NextRequest => "free→queued".into(),
            protocol::FreeOutcome::Destroyed => "free→destroy".into(),
        },
        SocketEvent::Timeout { .. } => "timeout".into(),
        SocketEvent::End { .. } => "end".into(),
        SocketEvent::Error { code, .. } => format!("error {code}"),
        SocketEvent::AgentRemove => "agentRemove".into(),
        SocketEvent::Close { had_error, .. } => format!("close(had_error={had_error})"),
    }
}

impl AgentView {
    /// The newest agent run the page heard of.
    pub fn latest(state: &LabState) -> Option<AgentView> {
        let run = state.agent.back()?.run;
        Some(AgentView::of(state, run))
    }

    /// Run `run`, from the page's record of its events.
    pub fn of(state: &LabState, run: u64) -> AgentView {
        let mut view = AgentView {
            run,
            started_us: 0,
            options: None,
            finished: None,
            requests: Vec::new(),
            sockets: Vec::new(),
        };
        let mut requests: Vec<AgentRequest> = Vec::new();
        let mut sockets: Vec<AgentSocket> = Vec::new();
        for r in state.agent.iter().filter(|r| r.run == run) {
            if view.started_us == 0 {
                view.started_us = r.at_us;
            }
            match &r.event {
                AgentEvent::Started { options, .. } => view.options = Some(options.clone()),
                AgentEvent::Finished { reason, .. } => view.finished = Some((r.at_us, *reason)),
                AgentEvent::Request { request, event } => {
                    if let RequestEvent::Queued {
                        connection,
                        waiting,
                        ..
                    } = event
                    {
                        requests.push(AgentRequest {
                            n: *request,
                            tag: format!("a{run}-{request}"),
                            connection: connection.clone(),
                            queued_us: r.at_us,
                            waited: *waiting,
                            sent_us: None,
                            socket: None,
                            response_us: None,
                            timeouts: Vec::new(),
                            end: None,
                        });
                        continue;
                    }
                    let Some(q) = requests.iter_mut().rfind(|q| q.n == *request) else {
                        continue;
                    };
                    match event {
                        RequestEvent::Queued { .. } => {}
                        RequestEvent::Sent {
                            socket,
                            socket_requests,
                            ..
                        } => {
                            q.sent_us = Some(r.at_us);
                            // Whether the socket carried an earlier request,
                            // not Node's `reusedSocket` (`reused`), which a
                            // queued request handed a freed socket lacks.
                            q.socket = Some((*socket, *socket_requests > 1));
                        }
                        RequestEvent::Response { .. } => q.response_us = Some(r.at_us),
                        RequestEvent::Done { status, .. } => {
                            q.end = Some((r.at_us, AgentEnd::Done(*status)))
                        }
                        RequestEvent::Timeout { after_ms, .. } => {
                            q.timeouts.push((r.at_us, *after_ms))
                        }
                        RequestEvent::Error { code, .. } => {
                            q.end
                                .get_or_insert((r.at_us, AgentEnd::Error(code.clone())));
                        }
                        RequestEvent::Aborted { reason } => {
                            q.end = Some((r.at_us, AgentEnd::Aborted(*reason)))
                        }
                    }
                }
                AgentEvent::Socket { socket, event } => {
                    if matches!(event, SocketEvent::Socket { .. }) {
                        sockets.push(AgentSocket {
                            n: *socket,
                            created_us: r.at_us,
                            local: None,
                            events: Vec::new(),
                            closed: None,
                        });
                    }
                    let Some(s) = sockets.iter_mut().rfind(|s| s.n == *socket) else {
                        continue;
                    };
                    match event {
                        SocketEvent::Connect { local, .. } => s.local = Some(local.clone()),
                        SocketEvent::Close { had_error, .. } => {
                            s.closed = Some((r.at_us, *had_error))
                        }
                        _ => {}
                    }
                    s.events.push((r.at_us, socket_event_name(event)));
                }
            }
        }
        view.requests = requests.into_iter().map(Rc::new).collect();
        view.sockets = sockets.into_iter().map(Rc::new).collect();
        view
    }

    /// Still running.
    pub fn is_live(&self) -> bool {
        self.finished.is_none()
    }

    /// The run in a few words, for the composer.
    pub fn summary(&self) -> String {
        let ended = |f: fn(&AgentEnd) -> bool| {
            self.requests
                .iter()
                .filter(|r| r.end.as_ref().is_some_and(|(_, e)| f(e)))
                .count()
        };
        let queued = self
            .requests
            .iter()
            .filter(|r| r.sent_us.is_none() && r.end.is_none())
            .count();
        let open = self.sockets.iter().filter(|s| s.closed.is_none()).count();
        format!(
            "Agent run {}: {}, {} done, {} failed, {} in the agent's queue; {} opened, {} open; {}.",
            self.run,
            count(self.requests.len(), "request"),
            ended(|e| matches!(e, AgentEnd::Done(_))),
            ended(|e| !matches!(e, AgentEnd::Done(_))),
            queued,
            count(self.sockets.len(), "socket"),
            open,
            match self.finished {
                None => "running",
                Some(_) => "finished",
            }
        )
    }

    /// The server's lane of `socket`'s connection: the lane whose `peer` is
    /// the socket's own address, or, through the middlebox, the lane of the
    /// mapping whose client is that address.
    pub fn lane_of<'a>(state: &'a LabState, socket: &AgentSocket) -> Option<&'a Rc<Lane>> {
        let local = socket.local.as_deref()?;
        let through = state.middlebox.iter().find_map(|m| match &m.event {
            protocol::MiddleboxEvent::Opened {
                client,
                upstream,
                conn,
                ..
            } if client == local => Some((upstream.clone(), *conn)),
            _ => None,
        });
        match through {
            Some((_, Some(conn))) => state.lanes.get(&conn),
            Some((Some(upstream), None)) => state.lanes.values().find(|l| l.peer == upstream),
            _ => state.lanes.values().find(|l| l.peer == local),
        }
    }

    /// Each socket's server connection, where the page knows it
    /// ([`AgentView::lane_of`]).
    pub fn links(&self, state: &LabState) -> Vec<(u32, ConnId)> {
        self.sockets
            .iter()
            .filter_map(|s| Some((s.n, AgentView::lane_of(state, s)?.conn)))
            .collect()
    }

    /// The connections of the agent's sockets (of every run the page
    /// remembers): drawn beside the agent's rows, not among the page's.
    pub fn conns(state: &LabState) -> SortedSet<ConnId> {
        let mut locals: SortedSet<&str> = SortedSet::new();
        for r in &state.agent {
            if let AgentEvent::Socket {
                event: SocketEvent::Connect { local, .. },
                ..
            } = &r.event
            {
                locals.insert(local);
            }
        }
        let mut peers: SortedSet<String> = SortedSet::new();
        peers.extend(locals.iter().map(|l| (*l).to_owned()));
        let mut conns = SortedSet::new();
        for m in &state.middlebox {
            if let protocol::MiddleboxEvent::Opened {
                client,
                upstream,
                conn,
                ..
            } = &m.event
                && locals.contains(&client.as_str())
            {
                peers.extend(upstream.clone());
                conns.extend(*conn);
            }
        }
        for lane in state.lanes.values() {
            let tagged = lane
                .requests
                .iter()
                .any(|r| r.tag.as_deref().is_some_and(is_agent_tag));
            if tagged || peers.contains(&lane.peer) {
                conns.insert(lane.conn);
            }
        }
        conns
    }
}

/// `a<run>-<n>`: a tag the lab's agent put on its request.
pub fn is_agent_tag(tag: &str) -> bool {
    tag.strip_prefix('a')
        .and_then(|t| t.split_once('-'))
        .is_some_and(|(run, n)| {
            !run.is_empty()
                && !n.is_empty()
                && run.bytes().all(|b| b.is_ascii_digit())
                && n.bytes().all(|b| b.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Sample;
    use crate::state::AgentRecord;
    use protocol::{FinishReason, FreeOutcome, SessionId, SocketCloseReason};

    fn synced() -> ClockSync {
        let mut c = ClockSync::default();
        c.add(Sample {
            sent_ms: 0.0,
            received_ms: 0.0,
            server_us: 0,
        });
        c
    }

    fn state(events: Vec<(Micros, AgentEvent)>) -> LabState {
        let mut s = LabState::new(SessionId::parse("s-1").unwrap());
        s.clock = synced();
        for (at_us, event) in events {
            s.agent.push_back(AgentRecord {
                run: 7,
                at_us,
                event,
            });
        }
        s
    }

    fn req(request: u32, event: RequestEvent) -> AgentEvent {
        AgentEvent::Request { request, event }
    }

    fn sock(socket: u32, event: SocketEvent) -> AgentEvent {
        AgentEvent::Socket { socket, event }
    }

    fn queued(waiting: bool) -> RequestEvent {
        RequestEvent::Queued {
            method: "GET".into(),
            path: "/api/hang".into(),
            connection: "keep-alive".into(),
            waiting,
            queue_len: u32::from(waiting),
        }
    }

    #[test]
    fn the_composer_sends_nodes_options_and_refuses_what_node_would_misread() {
        let mut s = AgentSettings::default();
        let Ok(ClientMessage::AgentStart {
            options,
            every_ms,
            count,
            ..
        }) = s.message()
        else {
            panic!("the default settings start an agent")
        };
        assert_eq!((options.max_sockets, every_ms, count), (Some(20), 3000, 3));
        assert_eq!(options.connection_header(), "keep-alive");
        s.options.max_free_sockets = 0;
        assert!(s.message().unwrap_err().contains("max_free_sockets"));
        s.options.max_free_sockets = 1;
        s.request.path = "api/fast".into();
        assert!(s.message().is_err());
        assert_eq!(parse_limit("Infinity"), None);
        assert_eq!(parse_limit(""), None);
        assert_eq!(parse_limit(" 2 "), Some(2));
        assert_eq!(limit_words(None), "Infinity");
        assert_eq!(limit_words(Some(2)), "2");
        assert_eq!(parse_ms(""), None);
        assert_eq!(parse_ms("1500"), Some(1500));
    }

    #[test]
    fn a_queued_request_waits_in_the_agent_then_goes_out_on_a_freed_socket() {
        let s = state(vec![
            (1_000, req(1, queued(false))),
            (
                1_000,
                sock(
                    1,
                    SocketEvent::Socket {
                        remote: "127.0.0.1:8080".into(),
                    },
                ),
            ),
            (
                2_000,
                sock(
                    1,
                    SocketEvent::Connect {
                        local: "127.0.0.1:5000".into(),
                        remote: None,
                    },
                ),
            ),
            (
                2_000,
                req(
                    1,
                    RequestEvent::Sent {
                        socket: 1,
                        reused: false,
                        socket_requests: 1,
                    },
                ),
            ),
            (3_000, req(2, queued(true))),
            (
                9_000,
                req(
                    1,
                    RequestEvent::Response {
                        socket: 1,
                        status: 200,
                        http_version: "HTTP/1.1".into(),
                        connection: None,
                        keep_alive: None,
                    },
                ),
            ),
            (
                10_000,
                req(
                    1,
                    RequestEvent::Done {
                        socket: 1,
                        status: 200,
                        body_bytes: 2,
                        reusable: true,
                    },
                ),
            ),
            (
                10_000,
                sock(
                    1,
                    SocketEvent::Free {
                        outcome: FreeOutcome::NextRequest,
                        free_sockets: 0,
                        timeout_ms: None,
                        timeout_source: None,
                    },
                ),
            ),
            (
                10_000,
                req(
                    2,
                    // Handed the freed socket while it waited: Node's
                    // reusedSocket is false, the socket's second request.
                    RequestEvent::Sent {
                        socket: 1,
                        reused: false,
                        socket_requests: 2,
                    },
                ),
            ),
            (
                20_000,
                sock(
                    1,
                    SocketEvent::Close {
                        had_error: false,
                        reason: SocketCloseReason::PeerClosed,
                        requests: 2,
                    },
                ),
            ),
            (
                20_000,
                req(
                    2,
                    RequestEvent::Error {
                        socket: Some(1),
                        code: "ECONNRESET".into(),
                        message: "socket hang up".into(),
                        reused_socket: true,
                        retried: false,
                    },
                ),
            ),
            (
                21_000,
                AgentEvent::Finished {
                    reason: FinishReason::Done,
                    requests: 2,
                    completed: 1,
                    failed: 1,
                    sockets: 1,
                },
            ),
        ]);
        let view = AgentView::latest(&s).unwrap();
        assert_eq!(view.run, 7);
        assert!(!view.is_live());
        let [one, two] = &view.requests[..] else {
            panic!("{view:?}")
        };
        assert_eq!(one.words(), "✓ done");
        assert_eq!(two.words(), "▶ error");
        assert!(two.waited);
        assert_eq!(two.socket, Some((1, true)));
        assert_eq!(
            view.summary(),
            "Agent run 7: 2 requests, 1 done, 1 failed, 0 in the agent's queue; 1 socket opened, 0 open; finished."
        );
        let kinds = |r: &AgentRequest| {
            r.segments(&s.clock)
                .iter()
                .map(|g| (g.kind, g.from_ms, g.to_ms, g.open))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kinds(one),
            [
                (Kind::Queued, 1.0, 2.0, false),
                (Kind::Waiting, 2.0, 9.0, false),
                (Kind::Downloading, 9.0, 10.0, false)
            ]
        );
        assert_eq!(
            kinds(two),
            [
                (Kind::Queued, 3.0, 10.0, false),
                (Kind::Waiting, 10.0, 20.0, false)
            ]
        );
        let socket = &view.sockets[0];
        assert_eq!(
            socket.event_words(),
            "socket → connect → free→queued → close(had_error=false)"
        );
        assert_eq!(socket.closed, Some((20_000, false)));
        assert_eq!(
            socket.last_events(45),
            "… connect free→queued close(had_error=false)"
        );
        let life = socket.life(&s.clock).unwrap();
        assert_eq!((life.from_ms, life.to_ms, life.open), (1.0, 20.0, false));
    }

    #[test]
    fn an_agent_socket_joins_the_servers_lane_directly_or_through_the_middlebox() {
        let mut s = state(vec![
            (0, sock(1, SocketEvent::Socket { remote: "x".into() })),
            (
                1,
                sock(
                    1,
                    SocketEvent::Connect {
                        local: "127.0.0.1:5000".into(),
                        remote: None,
                    },
                ),
            ),
        ]);
        let lane = |conn: u64, peer: &str| {
            Rc::new(Lane {
                conn: ConnId(conn),
                peer: peer.into(),
                local_addr: "127.0.0.1:8080".into(),
                local_port: 8080,
                session: None,
                opened_us: 0,
                upgraded: None,
                protocol: None,
                secured_us: None,
                requests: vec![],
                requests_total: 0,
                closed: None,
            })
        };
        s.lanes.insert(ConnId(3), lane(3, "127.0.0.1:5000"));
        s.lanes.insert(ConnId(4), lane(4, "127.0.0.1:6000"));
        let view = AgentView::latest(&s).unwrap();
        assert_eq!(
            AgentView::lane_of(&s, &view.sockets[0]).map(|l| l.conn),
            Some(ConnId(3))
        );
        assert_eq!(
            AgentView::conns(&s).into_iter().collect::<Vec<_>>(),
            [ConnId(3)]
        );
        // Through the middlebox the server sees the middlebox's address.
        s.lanes.remove(&ConnId(3));
        let settings: protocol::MiddleboxSettings =
            serde_json::from_str(r#"{"preset": "aws_nat", "idle_timeout_ms": 350000, "on_expiry": "rst", "probes_refresh": true, "scale": 100}"#)
                .unwrap();
        s.middlebox.push_back(crate::state::MiddleboxRecord {
            mapping: protocol::MappingId(1),
            at_us: 2,
            event: protocol::MiddleboxEvent::Opened {
                client: "127.0.0.1:5000".into(),
                upstream: Some("127.0.0.1:6000".into()),
                conn: None,
                accepted_us: 1,
                settings,
                in_force_ms: 3500,
                probes_visible: true,
            },
        });
        assert_eq!(
            AgentView::lane_of(&s, &view.sockets[0]).map(|l| l.conn),
            Some(ConnId(4))
        );
        assert!(AgentView::conns(&s).contains(&ConnId(4)));
        assert_eq!(view.links(&s), [(1, ConnId(4))]);
        assert!(is_agent_tag("a12-3"));
        assert!(!is_agent_tag("b1-1"));
        assert!(!is_agent_tag("a-1"));
    }

    /// Not sent yet: waiting in the agent's queue only when Node queued it
    /// (`waiting`); one that got a new socket is connecting (found in
    /// review: every unsent request read "queued in the agent").
    #[test]
    fn an_unsent_request_is_queued_only_if_it_waited() {
        let request = |waited| AgentRequest {
            n: 1,
            tag: "a1-1".into(),
            connection: "keep-alive".into(),
            queued_us: 1,
            waited,
            sent_us: None,
            socket: None,
            response_us: None,
            timeouts: Vec::new(),
            end: None,
        };
        assert_eq!(request(true).words(), "queued in the agent");
        assert_eq!(request(false).words(), "connecting");
    }
}
