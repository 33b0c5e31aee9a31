//! The `/api/events` WebSocket.
//!
//! A viewer first gets a [`ServerEvent::Snapshot`], then every event live. It
//! may send [`ClientMessage`]s: `release` (the page cannot use HTTP for that
//! while six of its requests hang: the seventh would queue behind them),
//! `set_config` (rate-limited per session: `sessions::rate`), and `ping` for clock sync.
//! [`run_viewer`] is generic over `Sink` and `Stream` so it can be driven
//! without a socket.
//!
//! # Scope
//!
//! `/api/events?session=S` shows a page only its own world: connections whose
//! first request named session `S`, plus connections that have not named any
//! session yet and come from the same host (Chromium's spare socket). When
//! such a connection turns out to be someone else's, the viewer is told to
//! forget it ([`ServerEvent::ConnectionHidden`]); so it is when its host's
//! connections that name no session pass their budgets of events (the
//! tracker's `Viewers::by_host_admits`: everyone behind one NAT shares them). Without `session` (from
//! the lab's own machine only), a viewer sees the anonymous scope the same
//! way; only the instructor key (`key=`) shows the whole server.
//!
//! # Closing
//!
//! A close frame from the client is answered with a close frame before TCP
//! closes (RFC 6455 §7.1.1 lets the server close TCP first once the
//! handshake is done, which axum's stream does): the page sees a clean 1000. Protocol violations get a close frame
//! with 1002, 1007 or 1009 and a reason; a viewer that keeps falling behind
//! gets 1008; shutdown 1001. Each is recorded as the connection's reason.
//!
//! # Refusing
//!
//! A browser's WebSocket cannot read the HTTP answer to its handshake (the
//! page sees 1006 and nothing else), so a valid upgrade that is refused is
//! accepted and closed at once ([`refuse`]): 1008 when trying again will
//! not help (a session this server does not know, a wrong key, a parameter
//! it does not take, no session from another machine), 1013 (Try Again Later) for a cap (this session's
//! viewers, requests in flight), with a reason that says what to do. It is
//! never a viewer. A request that is not an upgrade gets the JSON error.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use protocol::{
    ClientMessage, CloseReason, ConnId, ErrorBody, Initiator, ReleaseRequest, ServerEvent,
    UpgradeRole,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::Lab;
use crate::conn::{Conn, RequestCtx};
use crate::error::{ApiError, close_reason};
use crate::params::Params;
use crate::sessions::rate::{Buckets, Kind, Over};
use crate::sessions::{Access, Owner};

/// Largest control message accepted from a page. Real ones are < 300 bytes.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// How long a viewer keeps streaming after shutdown begins, so it can show
/// the connections closing, before it closes itself.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_millis(500);

/// The longest the close handshake may take: sending our close frame, and
/// reading what the client still sends until its stream ends.
pub const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// `set_config` and `set_middlebox` messages one session may send in a
/// burst (all its sockets together; the instructor's, each socket), and how
/// many more it earns per second after that. Real pages send one per edit.
pub const CONFIG_BURST: f64 = 10.0;
/// See [`CONFIG_BURST`].
pub const CONFIG_PER_SECOND: f64 = 5.0;

/// `lesson_report` messages one session may send in a burst (all its
/// sockets together: a limit per socket was no limit for a participant who
/// opens hundreds, found in review), and how many more it earns per second
/// after that. A page reports once per lesson stage;
/// each report is an event of up to about 7 KB per lesson, for every lesson
/// the participant took, on the instructor's stream, so a flood would make
/// the instructor's view fall behind and be closed (found in review).
pub const REPORT_BURST: f64 = 10.0;
/// See [`REPORT_BURST`].
pub const REPORTS_PER_SECOND: f64 = 5.0;

/// `release` messages one session may send in a burst (all its sockets
/// together), and how many more it earns per second after that. Each looks
/// at every held hang under the hangs' lock (at most 1 024), which every
/// hold and every hang's end take too: a loop of them, paced only by the
/// socket, kept a core busy and that lock contended for the room (found in
/// the room review). A page releases on a click, or a lesson each of a
/// dozen lanes in turn.
pub const RELEASE_BURST: f64 = 50.0;
/// See [`RELEASE_BURST`].
pub const RELEASES_PER_SECOND: f64 = 20.0;

/// A session's viewers opening or closing, told to the instructor in a
/// burst, and how many more per second after that. Each is a
/// `participant_changed` carrying all of that participant's reports (up to
/// about 170 KB), so opening and closing sockets in a loop would flood the
/// instructor's stream (found in review: 600 events, 101 MB, in 0.5 s);
/// past the rate, one announcement of the state a second later stands for
/// all of them ([`PRESENCE_DEFERRAL`]).
pub const PRESENCE_BURST: f64 = 10.0;
/// See [`PRESENCE_BURST`].
pub const PRESENCE_PER_SECOND: f64 = 2.0;
/// See [`PRESENCE_BURST`].
pub const PRESENCE_DEFERRAL: Duration = Duration::from_secs(1);

/// A viewer that falls behind (its feed overflowed) is told how many events
/// it missed and sent a fresh snapshot; two lags within this long close it
/// with 1008: it cannot keep up, and a picture rebuilt every few seconds
/// would mislead.
pub const LAG_WINDOW: Duration = Duration::from_secs(10);

/// The instructor's whole-server view is not closed for falling behind
/// again: one participant's flood of requests must not end it (found in
/// review: two clients sending 8 000 requests a second each had it closed
/// in 2 s). Behind again within [`LAG_WINDOW`], it is sent nothing for this
/// long, then told how many events it missed and sent a fresh snapshot.
pub const INSTRUCTOR_RESYNC_PAUSE: Duration = Duration::from_secs(1);

/// A request the accept loop refused before routing (a session this server
/// did not issue, a wrong key, a cap per address or per session) that asks
/// to upgrade `/api/events`: routed here only to be told so in a close
/// frame ([`refuse`]), which a browser's WebSocket can read, where it could
/// not read the HTTP answer. Set by the accept loop alone (`listener.rs`).
#[derive(Debug, Clone)]
pub struct Refused(pub ApiError);

/// Upgrades `GET /api/events[?session=S][&key=K]` and runs the viewer.
///
/// A refusal (by the accept loop, [`Refused`]; of the parameters or the
/// key; the session's cap on viewers) is a JSON `{error, hint}` to a
/// request that is not a valid upgrade, as before routing; a valid upgrade
/// is accepted and closed at once with the refusal's code and reason
/// ([`ApiError::close_frame`]), and never becomes a viewer.
pub async fn upgrade(
    State(lab): State<Lab>,
    ctx: Option<Extension<RequestCtx>>,
    refused: Option<Extension<Refused>>,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let conn = ctx.map(|Extension(c)| c.conn);
    // The accept loop's refusal first: nothing of this request is read.
    let access = match refused {
        Some(Extension(Refused(error))) => Err(error),
        None => Params::parse(
            "/api/events",
            query.as_deref(),
            &["key"],
            // No address: the lab may be on any port (found in review, it
            // said 8080 to a lab on 18080), and a close reason has 123 bytes.
            "/api/events?session=s-…",
        )
        .and_then(|p| crate::routes::access(&lab, &p, &headers)),
    };
    let ws = match ws {
        Ok(ws) => ws,
        // Not a valid upgrade: the refusal (or this) as JSON, over HTTP.
        Err(rejection) => {
            return match access {
                Err(error) => error.into_response(),
                Ok(_) => {
                    let url = events_url(&lab, &uri, &headers, conn.as_deref());
                    ApiError::with_status(
                        rejection.status(),
                        format!("/api/events is a WebSocket: {}", rejection.body_text()),
                        format!(
                            "connect with a WebSocket client, e.g. new WebSocket('{url}?session=…') \
                             or `websocat {url}`; plain HTTP gets GET /api/connections"
                        ),
                    )
                    .into_response()
                }
            };
        }
    };
    let access = match access {
        Ok(access) => access,
        Err(error) => return refuse(ws, conn, &error),
    };
    let slot = match access.owner().map(|o| lab.sessions().view(o)).transpose() {
        Ok(slot) => slot,
        Err(error) => return refuse(ws, conn, &error),
    };
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(owner) = access.owner() {
        lab.sessions().set_browser(owner, user_agent);
    }
    let scope = Scope::new(access, conn.as_ref().map(|c| c.charged_ip()));
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            if let Some(conn) = &conn {
                conn.mark_upgraded(UpgradeRole::Monitor);
            }
            let owner = scope.access().owner().cloned();
            let announce = |lab: &Lab| {
                if let Some(owner) = &owner {
                    announce_presence(lab, owner);
                }
            };
            announce(&lab);
            let (sink, stream) = socket.split();
            run_viewer(lab.clone(), conn, scope, sink, stream).await;
            drop(slot);
            announce(&lab);
        })
}

/// The events socket's URL as this client reached the lab, for hints: the
/// authority it addressed ([`crate::web::addressed_to`]: the accept loop let
/// only the lab's own through), else the address it connected to. Found in review: a fixed `ws://127.0.0.1:8080/…` sent a
/// learner on another port to the wrong place.
fn events_url(lab: &Lab, uri: &Uri, headers: &HeaderMap, conn: Option<&Conn>) -> String {
    let local = conn.map(Conn::local);
    let scheme = match local {
        Some(local) if lab.origins().is_tls_port(local.port()) => "wss",
        _ => "ws",
    };
    let authority = crate::web::addressed_to(uri, headers)
        .and_then(|a| std::str::from_utf8(a).ok())
        .map(str::to_owned)
        .or_else(|| local.map(|l| l.to_string()))
        .unwrap_or_else(|| "127.0.0.1:PORT".to_owned());
    format!("{scheme}://{authority}/api/events")
}

/// Accepts the upgrade and closes the socket at once with `refusal`'s code
/// and reason (1008 or 1013, [`ApiError::close_frame`]): a browser's
/// WebSocket cannot read the HTTP answer to its handshake, only a close
/// frame. Costs the connection it came on (counted in its address's cap)
/// for at most the close handshake ([`CLOSE_WAIT`] to send, as long to read
/// the client's answer); holds no viewer slot, subscribes to nothing, sends
/// no event, reads nothing the client sends but its close.
fn refuse(ws: WebSocketUpgrade, conn: Option<Arc<Conn>>, refusal: &ApiError) -> Response {
    let (code, reason) = refusal.close_frame();
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            if let Some(conn) = &conn {
                conn.mark_upgraded(UpgradeRole::Monitor);
            }
            let (mut sink, mut stream) = socket.split();
            close_as_server(conn.as_deref(), &mut sink, &mut stream, code, reason).await;
        })
}

/// Tells the instructor that one of `owner`'s viewers opened or closed
/// (sessions only), within [`PRESENCE_BURST`]'s rate; past it, once, a
/// second later, with the state as it is then.
fn announce_presence(lab: &Lab, owner: &Owner) {
    fn tell(lab: &Lab, owner: &Owner) {
        if let Some(participant) = lab.sessions().participant(owner) {
            lab.tracker()
                .emit(|_| ServerEvent::ParticipantChanged { participant });
        }
    }
    match lab.sessions().presence_changed(owner) {
        crate::sessions::Presence::Now => tell(lab, owner),
        crate::sessions::Presence::Later => {
            let (lab, owner) = (lab.clone(), owner.clone());
            tokio::spawn(async move {
                tokio::time::sleep(PRESENCE_DEFERRAL).await;
                lab.sessions().presence_told(&owner);
                tell(&lab, &owner);
            });
        }
        crate::sessions::Presence::Pending => {}
    }
}

/// Which connections a viewer sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Everything (the instructor), or one owner's world.
    access: Access,
    /// The viewer's own address, for connections not yet attributed.
    host: Option<IpAddr>,
}

impl Scope {
    /// The world `access` reaches, seen from `host`.
    pub fn new(access: Access, host: Option<IpAddr>) -> Scope {
        Scope { access, host }
    }

    /// What this viewer may release and configure.
    pub fn access(&self) -> &Access {
        &self.access
    }
}

/// Two addresses of the same machine: equal, or both loopback (a page at
/// `localhost` talks over ::1 while `127.0.0.1` is IPv4), an IPv4 address
/// mapped into IPv6 (`::ffff:127.0.0.1`, as a listener on `::` sees IPv4
/// clients) as itself.
pub(crate) fn same_host(a: IpAddr, b: IpAddr) -> bool {
    let (a, b) = (a.to_canonical(), b.to_canonical());
    a == b || (a.is_loopback() && b.is_loopback())
}

/// Decides, event by event, what one viewer is shown.
#[derive(Debug)]
pub struct Filter {
    /// The viewer's scope.
    scope: Scope,
    /// Connections this viewer has been shown and not yet seen close.
    visible: HashSet<ConnId>,
}

impl Filter {
    /// A filter for `scope`.
    pub fn new(scope: Scope) -> Filter {
        Filter {
            scope,
            visible: HashSet::new(),
        }
    }

    /// Trims a snapshot to this viewer's connections.
    pub fn snapshot(&mut self, event: ServerEvent) -> ServerEvent {
        let ServerEvent::Snapshot {
            now_us,
            config,
            listeners,
            session,
            locked,
            room_lesson,
            mut connections,
        } = event
        else {
            return event;
        };
        // A participant's snapshot comes trimmed to its owner's world by the
        // tracker (`Lab::subscribe_viewer`, `Lab::snapshot_for`), which knows
        // each unattributed connection's client machine (through the lab's
        // middlebox, the client it serves, not the loopback address it comes
        // from); an attributed one is checked again here.
        connections.retain(|c| match (&self.scope.access, &c.session) {
            (Access::All, _) | (Access::Of(_), None) => true,
            (Access::Of(owner), Some(session)) => owner.session() == Some(session),
        });
        self.visible = connections.iter().map(|c| c.conn).collect();
        ServerEvent::Snapshot {
            now_us,
            config,
            listeners,
            session,
            locked,
            room_lesson,
            connections,
        }
    }

    /// What this viewer is shown of `event`: nothing, the event, or (for a
    /// connection that just became theirs) its opening first. An event shown
    /// as it is stays the `Arc` the tracker handed every viewer of it; only
    /// what this viewer alone is told (an introduced opening, a hidden
    /// connection) is made here.
    pub fn route(&mut self, lab: &Lab, event: Arc<ServerEvent>) -> Vec<Arc<ServerEvent>> {
        let Access::Of(owner) = &self.scope.access else {
            return vec![event];
        };
        let mine = owner.session();
        match &*event {
            // A participant's feed gets a connection's opening only when it
            // is from the viewer's machine (routed by its client machine,
            // `tracker::Route::Conn`).
            ServerEvent::ConnectionOpened { conn, .. } => {
                self.visible.insert(*conn);
                vec![event]
            }
            ServerEvent::ConnectionAttributed { conn, session, .. } if Some(session) == mine => {
                let mut shown = Vec::new();
                if self.visible.insert(*conn) {
                    // Theirs, but from an address they were not shown (another
                    // IP): introduce it first.
                    if let Some(c) = lab.tracker().connection(*conn) {
                        shown.push(Arc::new(ServerEvent::ConnectionOpened {
                            conn: c.conn,
                            at_us: c.opened_us,
                            peer: c.peer,
                            local_addr: c.local_addr,
                            local_port: c.local_port,
                        }));
                    }
                }
                shown.push(event);
                shown
            }
            ServerEvent::ConnectionAttributed { conn, .. } => {
                if self.visible.remove(conn) {
                    vec![Arc::new(ServerEvent::ConnectionHidden { conn: *conn })]
                } else {
                    vec![]
                }
            }
            // Hidden by the tracker too: an unattributed connection past
            // its host's budget (`tracker::Viewers::by_host_admits`).
            ServerEvent::ConnectionClosed { conn, .. } | ServerEvent::ConnectionHidden { conn } => {
                if self.visible.remove(conn) {
                    vec![event]
                } else {
                    vec![]
                }
            }
            ServerEvent::RequestStarted { conn, .. }
            | ServerEvent::ResponseStarted { conn, .. }
            | ServerEvent::RequestFinished { conn, .. }
            | ServerEvent::ConnectionUpgraded { conn, .. }
            | ServerEvent::ConnectionSecured { conn, .. }
            | ServerEvent::StreamReset { conn, .. }
            | ServerEvent::GoAway { conn, .. } => {
                if self.visible.contains(conn) {
                    vec![event]
                } else {
                    vec![]
                }
            }
            // The room's participants are the instructor's business only.
            ServerEvent::ParticipantChanged { .. }
            | ServerEvent::ParticipantReported { .. }
            | ServerEvent::ParticipantLeft { .. } => {
                vec![]
            }
            ServerEvent::ConfigChanged { session, .. }
            | ServerEvent::Middlebox { session, .. }
            | ServerEvent::MiddleboxChanged { session, .. } => {
                if session.as_ref() == mine {
                    vec![event]
                } else {
                    vec![]
                }
            }
            ServerEvent::Snapshot { .. }
            | ServerEvent::RoomLesson { .. }
            | ServerEvent::EventsDropped { .. }
            | ServerEvent::Pong { .. }
            | ServerEvent::Released { .. }
            | ServerEvent::Error(_) => vec![event],
            // An agent run belongs to the session that started it.
            ServerEvent::Agent { session, .. } => {
                if session.as_ref() == mine {
                    vec![event]
                } else {
                    vec![]
                }
            }
        }
    }
}

/// Whether one more message of `kind` is within its rate: a session's limit
/// (all its sockets share it) and its address's, or the instructor's
/// socket's own. Which it is over, if any.
fn allowed(lab: &Lab, access: &Access, buckets: &mut Buckets, kind: Kind) -> Result<(), Over> {
    match access {
        Access::Of(owner) => lab.sessions().allow(owner, kind),
        Access::All if buckets.take(kind) => Ok(()),
        Access::All => Err(Over::Socket),
    }
}

/// What a message over its rate is told: `what` names it ("set_config
/// messages"), `per_second` is a session's rate of them, `shared` what
/// shares that rate.
fn over_rate(what: &str, per_second: f64, shared: &str, over: Over) -> String {
    match over {
        Over::Session => {
            format!("too many {what}: at most {per_second} per second for a session, {shared}")
        }
        Over::Address => format!(
            "too many {what} from this network address: at most {} per second for all its \
             sessions together (a room behind one NAT shares it)",
            per_second * crate::sessions::rate::PER_ADDRESS
        ),
        Over::Socket => format!("too many {what}: at most {per_second} per second for this socket"),
    }
}

/// The refusal of a settings change over its rate (`what` names it:
/// "set_config messages", "changes to the config"), over the events socket
/// and over HTTP alike: a session's changes share one rate, its sockets'
/// and its PUTs'.
pub(crate) fn too_many_changes(what: &str, over: Over) -> ApiError {
    ApiError::too_many(
        over_rate(
            what,
            CONFIG_PER_SECOND,
            "its sockets' set_config and set_middlebox and its PUTs together",
            over,
        ),
        "send one change per edit; this one was not applied",
    )
}

/// Why a viewer's loop ended.
enum End {
    /// The client sent a close frame (code, reason).
    ClientClosed(u16, String),
    /// The stream ended without a close frame (TCP closed or reset).
    Gone,
    /// The server closes with a close frame (code, reason).
    ServerCloses(u16, String),
    /// Writing to the client stalled: nothing more can be sent.
    Stalled,
}

/// Whether a read error is the client going away (TCP closed or reset
/// without a close frame), not a protocol violation to answer.
fn gone(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(e) = e.downcast_ref::<tungstenite::Error>() {
            return matches!(
                e,
                tungstenite::Error::ConnectionClosed
                    | tungstenite::Error::AlreadyClosed
                    | tungstenite::Error::Io(_)
                    | tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
                    )
            );
        }
        if e.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The close code and reason for an error reading the client's frames.
fn violation(error: &(dyn std::error::Error + 'static)) -> (u16, String) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(e) = e.downcast_ref::<tungstenite::Error>() {
            return match e {
                tungstenite::Error::Capacity(c) => (1009, format!("message too big: {c}")),
                // tungstenite reports a text message and a close frame's
                // reason that are not UTF-8 alike: the reason names both.
                tungstenite::Error::Utf8(_) => (
                    1007,
                    "a text message or a close frame's reason is not valid UTF-8".into(),
                ),
                tungstenite::Error::Protocol(p) => (1002, format!("protocol error: {p}")),
                other => (1002, other.to_string()),
            };
        }
        source = e.source();
    }
    (1002, error.to_string())
}

/// Serves one viewer until it leaves, falls off, or the server shuts down.
pub async fn run_viewer<W, R, E>(
    lab: Lab,
    conn: Option<Arc<Conn>>,
    scope: Scope,
    mut sink: W,
    mut stream: R,
) where
    W: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + 'static,
{
    // Shutdown waits for this viewer's close handshake too.
    let _token = lab.task_token();
    let stall = lab.config().write_stall_timeout;
    let silence = lab.config().viewer_silence_timeout;
    let mut filter = Filter::new(scope);
    let (snapshot, mut events) = lab.subscribe_viewer(&filter.scope.access, filter.scope.host);
    // The instructor's own; a session's are kept with the session.
    let mut buckets = Buckets::new();
    // Whether this viewer may change its scope's settings (the anonymous
    // scope's only from the lab's own machine, `routes::may_configure`).
    // The address its caps charge, as read at its accept (found in review:
    // the peer's address looked up again once a middlebox mapping it came
    // through had ended charged the agent's sockets to the lab's own
    // machine).
    let viewer = conn.as_ref().map(|c| c.charged_ip());
    let configure = crate::routes::may_configure(&filter.scope.access, conn.as_deref());
    let mut last_lag: Option<Instant> = None;
    // The instructor's view, behind again: when it is next sent a snapshot,
    // and the events it has missed until then (nothing is sent meanwhile).
    let whole_server = matches!(filter.scope.access, crate::sessions::Access::All);
    let mut held: Option<u64> = None;
    let end = 'serve: {
        if send(&mut sink, &filter.snapshot(snapshot), stall)
            .await
            .is_err()
        {
            break 'serve End::Stalled;
        }
        let shutdown = lab.shutting_down();
        tokio::pin!(shutdown);
        // Armed when shutdown begins; until then, effectively never.
        let drain = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
        tokio::pin!(drain);
        // Armed when the instructor's view is held (one timer, made once: a
        // `select!` makes every branch's future at every turn).
        let resync = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
        tokio::pin!(resync);
        // Half a silence with nothing from the viewer: a ping; another half:
        // the close (`Config::viewer_silence_timeout`).
        let quiet = tokio::time::sleep(silence / 2);
        tokio::pin!(quiet);
        let mut pinged = false;
        let mut stopping = false;
        loop {
            tokio::select! {
                () = &mut quiet => {
                    if pinged {
                        break 'serve End::ServerCloses(
                            1001,
                            format!("nothing from this viewer for {silence:?}, not even the answer to a ping"),
                        );
                    }
                    pinged = true;
                    quiet.as_mut().reset(Instant::now() + silence / 2);
                    let ping = sink.send(Message::Ping(Default::default()));
                    if !matches!(tokio::time::timeout(stall, ping).await, Ok(Ok(()))) {
                        break 'serve End::Stalled;
                    }
                }
                () = &mut resync, if held.is_some() => {
                    let missed = held.take().unwrap_or(0);
                    last_lag = Some(Instant::now());
                    let (fresh, feed) =
                        lab.subscribe_viewer(&filter.scope.access, filter.scope.host);
                    events = feed;
                    for event in [ServerEvent::EventsDropped { count: missed }, filter.snapshot(fresh)] {
                        if send(&mut sink, &event, stall).await.is_err() {
                            break 'serve End::Stalled;
                        }
                    }
                }
                event = events.recv() => {
                    if let Some(missed) = &mut held {
                        // Held back: counted, not sent (the snapshot will
                        // show what they did).
                        *missed += match event {
                            Ok(_) => 1,
                            Err(RecvError::Lagged(count)) => count,
                            Err(RecvError::Closed) => break 'serve End::ServerCloses(1001, "server shutting down".into()),
                        };
                        continue;
                    }
                    let shown = match event {
                        Ok(event) => filter.route(&lab, event),
                        Err(RecvError::Lagged(count)) => {
                            let now = Instant::now();
                            if whole_server && last_lag.is_some_and(|at| now.duration_since(at) < LAG_WINDOW) {
                                held = Some(count);
                                resync.as_mut().reset(now + INSTRUCTOR_RESYNC_PAUSE);
                                continue;
                            }
                            if last_lag.is_some_and(|at| now.duration_since(at) < LAG_WINDOW) {
                                break 'serve End::ServerCloses(
                                    1008,
                                    format!("fell behind the event stream again ({count} events missed); reload to see a complete picture"),
                                );
                            }
                            last_lag = Some(now);
                            // What the viewer missed is in the table: a new
                            // subscription's snapshot (taken with its feed,
                            // as at the start) puts its picture right, and
                            // the events still queued in the old feed are
                            // in that snapshot, so they go with it.
                            let (fresh, feed) =
                                lab.subscribe_viewer(&filter.scope.access, filter.scope.host);
                            events = feed;
                            vec![
                                Arc::new(ServerEvent::EventsDropped { count }),
                                Arc::new(filter.snapshot(fresh)),
                            ]
                        }
                        Err(RecvError::Closed) => break 'serve End::ServerCloses(1001, "server shutting down".into()),
                    };
                    for event in &shown {
                        if send(&mut sink, event, stall).await.is_err() {
                            break 'serve End::Stalled;
                        }
                    }
                }
                message = stream.next() => {
                    if matches!(message, Some(Ok(_))) {
                        pinged = false;
                        quiet.as_mut().reset(Instant::now() + silence / 2);
                    }
                    let reply = match message {
                        Some(Ok(Message::Text(text))) => naming_the_refused(
                            text.as_str(),
                            handle(&lab, &filter.scope, &configure, viewer, text.as_str(), &mut buckets),
                        ),
                        Some(Ok(Message::Binary(_))) => Some(bad_message("binary frames are not understood".into())),
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Close(frame))) => {
                            let (code, reason) = frame.map_or((1005, String::new()), |f| (f.code, f.reason.to_string()));
                            break 'serve End::ClientClosed(code, reason);
                        }
                        None => break 'serve End::Gone,
                        Some(Err(error)) if gone(&error) => break 'serve End::Gone,
                        Some(Err(error)) => {
                            let (code, reason) = violation(&error);
                            break 'serve End::ServerCloses(code, reason);
                        }
                    };
                    if let Some(reply) = reply
                        && send(&mut sink, &reply, stall).await.is_err()
                    {
                        break 'serve End::Stalled;
                    }
                }
                () = &mut shutdown, if !stopping => {
                    stopping = true;
                    if let Some(conn) = &conn {
                        conn.set_reason(CloseReason::Shutdown);
                    }
                    drain.as_mut().reset(Instant::now() + SHUTDOWN_DRAIN);
                }
                () = &mut drain => break 'serve End::ServerCloses(1001, "server shutting down".into()),
            }
        }
    };
    let record = |reason: CloseReason| {
        if let Some(conn) = &conn {
            conn.set_reason(reason);
        }
    };
    match end {
        End::ClientClosed(code, reason) => {
            record(CloseReason::WebSocketClosed {
                code,
                initiator: Initiator::Client,
                reason,
            });
            // The reply close frame was queued when the client's was read;
            // flushing sends it. Then the client closes TCP first.
            let _ = tokio::time::timeout(CLOSE_WAIT, sink.flush()).await;
            wait_for_client_close(&mut stream).await;
        }
        End::ServerCloses(code, reason) => {
            close_as_server(conn.as_deref(), &mut sink, &mut stream, code, reason).await;
        }
        End::Gone => {}
        End::Stalled => record(CloseReason::WriteStalled),
    }
}

/// After our close frame, reads until the client's stream ends (its close
/// frame, or TCP closing), at most [`CLOSE_WAIT`]: the handshake completes
/// before the server drops the socket.
async fn wait_for_client_close<R, E>(stream: &mut R)
where
    R: Stream<Item = Result<Message, E>> + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

/// Closes the socket from the server's side: records the close as the
/// connection's reason, sends a close frame with `code` and `reason` (cut
/// to 123 bytes), then waits (at most [`CLOSE_WAIT`]) for the client's.
async fn close_as_server<W, R, E>(
    conn: Option<&Conn>,
    sink: &mut W,
    stream: &mut R,
    code: u16,
    reason: String,
) where
    W: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: close_reason(&reason).into(),
    };
    if let Some(conn) = conn {
        conn.set_reason(CloseReason::WebSocketClosed {
            code,
            initiator: Initiator::Server,
            reason,
        });
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(Message::Close(Some(frame)))).await;
    wait_for_client_close(stream).await;
}

/// Answers one control message from a viewer with `access`. `None`: nothing
/// to answer directly (a policy change is announced to the owner's viewers,
/// this one included). Its refusal is then named ([`naming_the_refused`]).
fn handle(
    lab: &Lab,
    scope: &Scope,
    configure: &Result<(), ApiError>,
    viewer: Option<std::net::IpAddr>,
    text: &str,
    buckets: &mut Buckets,
) -> Option<ServerEvent> {
    let access = scope.access();
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(ClientMessage::Release {
            request: Some(_),
            id: Some(_),
        }) => Some(ServerEvent::Error(ErrorBody::new(
            "give either `request` or `id`, not both: nothing was released",
            r#"send {"type":"release","request":12}, {"type":"release","id":"tag"} or {"type":"release"} for all"#,
        ))),
        Ok(ClientMessage::Release { request, id }) => {
            if let Err(over) = allowed(lab, access, buckets, Kind::Releases) {
                return Some(ServerEvent::Error(ErrorBody::new(
                    over_rate(
                        "release messages",
                        RELEASES_PER_SECOND,
                        "all its sockets together",
                        over,
                    ),
                    "release all at once with {\"type\":\"release\"}, or wait a moment: nothing was released",
                )));
            }
            Some(ServerEvent::Released {
                count: lab
                    .hangs()
                    .release(&ReleaseRequest { request, id }, access, scope.host),
            })
        }
        Ok(ClientMessage::SetConfig { config }) => {
            // Refused first: a viewer that may not change the scope spends
            // none of the limit its sockets share with those that may.
            if let Err(refused) = configure {
                return Some(ServerEvent::Error(refused.body.clone()));
            }
            if let Err(over) = allowed(lab, access, buckets, Kind::Changes) {
                return Some(ServerEvent::Error(
                    too_many_changes("set_config messages", over).body,
                ));
            }
            let result = match access {
                Access::All => lab.set_defaults(&config),
                Access::Of(owner) => lab.set_policy(owner, &config),
            };
            match result {
                Ok(_) => None,
                Err(error) => Some(ServerEvent::Error(error.body)),
            }
        }
        Ok(ClientMessage::LessonReport { report }) => match access {
            Access::Of(owner) => match allowed(lab, access, buckets, Kind::Reports) {
                Err(over) => Some(ServerEvent::Error(ErrorBody::new(
                    over_rate(
                        "lesson_report messages",
                        REPORTS_PER_SECOND,
                        "its sockets together",
                        over,
                    ),
                    "a page reports once per lesson stage; this one was not kept",
                ))),
                Ok(()) => match lab.sessions().report(owner, report) {
                    // Told to the instructor only when it changed something.
                    Ok(Some((session, report))) => {
                        lab.tracker()
                            .emit(|_| ServerEvent::ParticipantReported { session, report });
                        None
                    }
                    Ok(None) => None,
                    Err(error) => Some(ServerEvent::Error(error.body)),
                },
            },
            Access::All => None,
        },
        Ok(ClientMessage::SetMiddlebox { middlebox }) => {
            if let Err(refused) = configure {
                return Some(ServerEvent::Error(refused.body.clone()));
            }
            if let Err(over) = allowed(lab, access, buckets, Kind::Changes) {
                return Some(ServerEvent::Error(
                    too_many_changes("set_middlebox messages", over).body,
                ));
            }
            crate::middlebox::lab::set_from_viewer(lab, access, &middlebox)
        }
        Ok(ClientMessage::Ping { client_time_ms }) => Some(ServerEvent::Pong {
            client_time_ms,
            server_us: lab.tracker().clock().now_us(),
        }),
        Ok(ClientMessage::AgentStart {
            options,
            request,
            every_ms,
            count,
            linger_ms,
        }) => crate::agent::lab::start(
            lab, access, viewer, options, request, every_ms, count, linger_ms,
        ),
        Ok(ClientMessage::AgentStop {}) => crate::agent::lab::stop(access),
        Err(e) => Some(ServerEvent::Error(ErrorBody::new(
            format!("control message not understood: {e}"),
            message_hint(text),
        ))),
    }
}

/// Every control message a viewer may send ([`ClientMessage`]'s types) and
/// an example of each, for hints (checked against `ClientMessage` by this
/// module's tests).
const CLIENT_MESSAGES: &[(&str, &str)] = &[
    (
        "release",
        r#"{"type":"release"}, {"type":"release","request":12} or {"type":"release","id":"tag"}"#,
    ),
    (
        "set_config",
        r#"{"type":"set_config","config":{"idle_timeout_ms":2000}}"#,
    ),
    ("ping", r#"{"type":"ping","client_time_ms":0}"#),
    (
        "lesson_report",
        r#"{"type":"lesson_report","report":{"lesson":"six-lanes","stage":"answered","prediction":"6","answer":"6","figures":[["at-once","6"]]}}"#,
    ),
    (
        "set_middlebox",
        r#"{"type":"set_middlebox","middlebox":{"preset":"aws_nat","scale":100}}"#,
    ),
    (
        "agent_start",
        r#"{"type":"agent_start","request":{"method":"GET","path":"/api/fast","target":"same"},"every_ms":100,"count":3}"#,
    ),
    ("agent_stop", r#"{"type":"agent_stop"}"#),
];

/// The hint for a control message not understood: an example of its own
/// type when it names one (found in review: a malformed `agent_start` was
/// shown only `release`, `set_config` and `ping`), else every type.
fn message_hint(text: &str) -> String {
    match message_type(text)
        .and_then(|named| CLIENT_MESSAGES.iter().find(|(kind, _)| *kind == named))
    {
        Some((_, example)) => format!("send e.g. {example}"),
        None => generic_message_hint(),
    }
}

/// The control message type `text` names, if it is one the server knows
/// (also when the rest of the message is not understood).
fn message_type(text: &str) -> Option<&'static str> {
    let value = serde_json::from_str::<serde_json::Value>(text).ok()?;
    let named = value.get("type")?.as_str()?;
    CLIENT_MESSAGES
        .iter()
        .map(|(kind, _)| *kind)
        .find(|kind| *kind == named)
}

/// Every control message type, with the commonest examples.
fn generic_message_hint() -> String {
    let kinds: Vec<&str> = CLIENT_MESSAGES.iter().map(|(kind, _)| *kind).collect();
    format!(
        r#"send a JSON object whose "type" is one of {}; e.g. {{"type":"release"}} or {{"type":"set_config","config":{{"idle_timeout_ms":2000}}}}"#,
        kinds.join(", ")
    )
}

/// Answers one control message as the anonymous scope would (for tests that
/// drive the handler without a socket).
pub fn handle_as(lab: &Lab, owner: Owner, text: &str) -> Option<ServerEvent> {
    let reply = handle(
        lab,
        &Scope::new(Access::Of(owner), None),
        &Ok(()),
        None,
        text,
        &mut Buckets::new(),
    );
    naming_the_refused(text, reply)
}

/// `reply` to the control message `text`, a refusal naming the type of the
/// message it refuses when the message names one the server knows
/// (`ErrorBody::refused`), so that a page tells a refusal of its settings
/// from others (found in review: a lesson waiting for its settings failed
/// on a refused report).
fn naming_the_refused(text: &str, reply: Option<ServerEvent>) -> Option<ServerEvent> {
    match reply {
        Some(ServerEvent::Error(mut body)) => {
            body.refused = message_type(text).map(str::to_owned);
            Some(ServerEvent::Error(body))
        }
        reply => reply,
    }
}

fn bad_message(error: String) -> ServerEvent {
    ServerEvent::Error(ErrorBody::new(error, generic_message_hint()))
}

/// Sends one event, giving up when the client has not taken it within
/// `stall` (it stopped reading).
async fn send<W: Sink<Message> + Unpin>(
    sink: &mut W,
    event: &ServerEvent,
    stall: Duration,
) -> Result<(), ()> {
    let text = serde_json::to_string(event).map_err(|_| ())?;
    match tokio::time::timeout(stall, sink.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_host_whatever_the_spelling_of_its_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(same_host(ip("127.0.0.1"), ip("::1")));
        assert!(same_host(ip("::ffff:127.0.0.1"), ip("::1")));
        assert!(same_host(ip("::ffff:127.0.0.1"), ip("127.0.0.2")));
        assert!(same_host(ip("::ffff:10.0.0.5"), ip("10.0.0.5")));
        assert!(!same_host(ip("::ffff:10.0.0.5"), ip("10.0.0.6")));
        assert!(!same_host(ip("10.0.0.5"), ip("::1")));
    }

    /// The top-level JSON objects in `text` (`{…}, {…} or {…}`).
    fn objects(text: &str) -> Vec<&str> {
        let (mut found, mut depth, mut start) = (Vec::new(), 0, 0);
        for (at, c) in text.char_indices() {
            match c {
                '{' => {
                    if depth == 0 {
                        start = at;
                    }
                    depth += 1;
                }
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        found.push(&text[start..=at]);
                    }
                }
                _ => {}
            }
        }
        found
    }

    /// The hints' list of control messages is `ClientMessage`'s, each
    /// example one the server understands.
    #[test]
    fn the_hints_name_every_control_message_and_their_examples_parse() {
        let unknown = serde_json::from_str::<ClientMessage>(r#"{"type":"no-such"}"#)
            .expect_err("an unknown type")
            .to_string();
        let expected = unknown
            .split("expected one of ")
            .nth(1)
            .unwrap_or_else(|| panic!("serde's list of types: {unknown}"));
        let mut theirs: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let mut ours: Vec<&str> = CLIENT_MESSAGES.iter().map(|(kind, _)| *kind).collect();
        theirs.sort_unstable();
        ours.sort_unstable();
        assert_eq!(ours, theirs, "{unknown}");
        for (kind, example) in CLIENT_MESSAGES {
            let examples = objects(example);
            assert!(!examples.is_empty(), "{kind}");
            for example in examples {
                let message: ClientMessage = serde_json::from_str(example)
                    .unwrap_or_else(|e| panic!("{kind}: {example}: {e}"));
                let value = serde_json::to_value(&message).expect("JSON");
                assert_eq!(value["type"], *kind, "{example}");
            }
        }
    }

    /// Through the handler: a malformed `agent_start` or `lesson_report` is
    /// shown its own type's example (found in review: only `release`,
    /// `set_config` and `ping`), an unknown type every type.
    #[tokio::test]
    async fn a_malformed_message_is_answered_with_its_own_types_example() {
        let lab = Lab::new(crate::Config::default());
        let hint = |text: &str| match handle_as(&lab, Owner::Anonymous, text) {
            Some(ServerEvent::Error(body)) => body.hint,
            other => panic!("{text}: expected an error, got {other:?}"),
        };
        for (text, kind) in [
            (r#"{"type":"agent_start","every_ms":-1}"#, "agent_start"),
            (r#"{"type":"lesson_report","report":{}}"#, "lesson_report"),
            (r#"{"type":"set_middlebox","middlebox":5}"#, "set_middlebox"),
        ] {
            let hint = hint(text);
            assert!(
                hint.contains(&format!(r#"{{"type":"{kind}","#)),
                "{text}: {hint}"
            );
        }
        let unknown = hint(r#"{"type":"nope"}"#);
        for (kind, _) in CLIENT_MESSAGES {
            assert!(unknown.contains(kind), "{kind} in {unknown}");
        }
    }

    #[test]
    fn a_message_not_understood_is_shown_its_own_type_or_every_type() {
        let agent = message_hint(r#"{"type":"agent_start","every_ms":-1}"#);
        assert!(agent.contains(r#"{"type":"agent_start","#), "{agent}");
        let report = message_hint(r#"{"type":"lesson_report","report":{}}"#);
        assert!(report.contains(r#"{"type":"lesson_report","#), "{report}");
        for text in [r#"{"type":"nope"}"#, "{}", "not json", "[]"] {
            let hint = message_hint(text);
            for (kind, _) in CLIENT_MESSAGES {
                assert!(hint.contains(kind), "{text}: {kind} in {hint}");
            }
        }
    }
}
