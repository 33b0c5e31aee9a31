//! Wire types spoken between the keepalive-lab server and its frontend.
//!
//! Everything the page learns about the server's TCP connections arrives as a
//! [`ServerEvent`] on the `/api/events` WebSocket; everything the page asks of
//! the server while a burst is running goes back as a [`ClientMessage`] on the
//! same socket (HTTP requests from the page would queue behind its own hung
//! requests, see `docs/facts.md`, "Starvation").
//!
//! # Layout
//!
//! - ids: [`ConnId`], [`RequestId`], newtypes so a connection id can never be
//!   passed where a request id is expected;
//! - [`ServerEvent`]: the live event stream, past-tense names, tagged by `type`;
//! - [`ClientMessage`]: control messages from the page;
//! - [`ConnectionSnapshot`] / [`RequestSnapshot`]: the state of open
//!   connections, sent first on every WebSocket and by `GET /api/connections`;
//! - HTTP bodies: [`ReleaseRequest`], [`ReleaseResponse`], [`ErrorBody`];
//! - [`ServerPolicy`] and [`PolicyPatch`]: the server's live keep-alive policy
//!   (`GET/PUT /api/config`, `set_config` on the WebSocket), with validation;
//! - `lesson.rs`: the lesson catalogue ([`LESSONS`]), listed by `GET /api/lessons`;
//! - `session.rs`: [`SessionId`] (a capability the server issues, one per page
//!   load, so that many participants share a server without seeing or
//!   changing each other's connections), [`SessionGrant`], and the
//!   instructor's [`RoomState`] / [`RoomPatch`].
//!
//! This crate depends on serde alone: no axum, tokio or yew type may appear
//! here, so that both the native server and the wasm32 frontend can use it.
//!
//! # Time
//!
//! Every `*_us` field is microseconds on the server's monotonic clock, counted
//! from the moment the server started. The page maps it onto its own clock with
//! the [`ClientMessage::Ping`] / [`ServerEvent::Pong`] exchange.

use serde::{Deserialize, Serialize};

mod agent;
mod lesson;
mod middlebox;
mod session;
mod tls;
pub use agent::{
    AbortReason, AgentEvent, AgentOptions, AgentRequestSpec, AgentTarget, FinishReason,
    FreeOutcome, LAB_MAX_COUNT, LAB_MAX_DURATION_MS, LAB_MAX_EVERY_MS, LAB_MAX_SOCKETS,
    MAX_KEEP_ALIVE_MSECS, MAX_TIMEOUT_MS, RequestEvent, Scheduling, SocketCloseReason, SocketEvent,
    TimeoutSource,
};
pub use lesson::{LESSONS, LessonEntry, LessonPage, LessonText, entry as lesson_entry};
pub use middlebox::{
    CUSTOM_MAX_MS, CUSTOM_MIN_MS, CloseHow, IN_FORCE_MIN_MS, MappingId, MiddleboxEvent,
    MiddleboxPatch, MiddleboxSettings, MiddleboxView, OnExpiry, Party, Preset, PresetSpec,
    RefreshCause, SCALE_RANGE, Side, human_ms, human_us,
};
pub use session::{
    LessonReport, MAX_FIGURES, MAX_REPORT_TEXT, Participant, ROOM_HINT, RoomPatch, RoomState,
    SessionGrant, SessionId, json_len, report_text,
};
pub use tls::TlsListeners;

/// Microseconds since the server started, on its monotonic clock.
pub type Micros = u64;

/// Identifies one accepted TCP connection for the server's lifetime.
///
/// Sent to the browser in the `X-Conn-Id` response header, so a page can tell
/// which connection carried each of its requests (Resource Timing cannot).
///
/// ```json
/// 7
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnId(pub u64);

/// Identifies one HTTP request for the server's lifetime (across connections).
///
/// Sent in the `X-Request-Id` response header. A request the browser re-sends
/// silently (keep-alive race) arrives as a *new* `RequestId` with the same
/// client-chosen tag.
///
/// ```json
/// 42
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{}", self.0)
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// How `/api/close` ends a connection.
///
/// ```json
/// "rst"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseMode {
    /// A complete response with `Connection: close`, then FIN: the polite way.
    Header,
    /// FIN without any response: the browser sees an empty response.
    Fin,
    /// An abortive close (`SO_LINGER` 0): the peer gets a TCP reset.
    Rst,
    /// The head and part of the body, then FIN: a truncated download.
    MidBody,
}

impl CloseMode {
    /// Every mode, in the order the page offers them.
    pub const ALL: [CloseMode; 4] = [
        CloseMode::Header,
        CloseMode::Fin,
        CloseMode::Rst,
        CloseMode::MidBody,
    ];

    /// The query value (`/api/close?mode=…`).
    pub fn as_str(self) -> &'static str {
        match self {
            CloseMode::Header => "header",
            CloseMode::Fin => "fin",
            CloseMode::Rst => "rst",
            CloseMode::MidBody => "mid_body",
        }
    }
}

/// Why a TCP connection ended, as far as the server can tell.
///
/// ```json
/// {"kind": "peer_closed"}
/// {"kind": "error", "message": "connection error: broken pipe"}
/// {"kind": "pipelined_unread", "after": {"kind": "max_requests"}, "method": "GET", "target": "/api/fast?id=3"}
/// {"kind": "pipelined_unread", "after": {"kind": "server_close", "mode": "fin"}}
/// {"kind": "records_unread", "after": {"kind": "keep_alive_off"}}
/// {"kind": "framing_close", "rule": "request_framing"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CloseReason {
    /// The client sent FIN (orderly close) while no request was pending.
    PeerClosed,
    /// The client reset the connection (RST), e.g. a browser tab was killed.
    PeerReset,
    /// The connection sat idle between requests longer than the server's idle
    /// timeout and the server closed it.
    IdleTimeout,
    /// It carried the server's maximum number of requests; the last response
    /// said `Connection: close`.
    MaxRequests,
    /// Keep-alive is off: every response says `Connection: close`.
    KeepAliveOff,
    /// The request asked to close (`Connection: close`, or HTTP/1.0 without
    /// `Connection: keep-alive`): the server answered it, then closed.
    ClientRequestedClose,
    /// The request came with a body the endpoint did not read (longer than
    /// the server reads and throws away, or a refused request's): the server
    /// cannot tell where the next request would start without reading it, so
    /// its response said `Connection: close` and it closed after answering.
    BodyUnread {
        /// How the server closed: `fin`, or `rst` when bytes of the body were
        /// still unread in its receive buffer (the kernel then answers the
        /// close with a reset).
        close: RaceClose,
    },
    /// The server closed in order as it meant to (`after`: the close its
    /// last response announced, for the policy or the request's asking, or
    /// `/api/close` in a mode meant as a FIN) while the start of another
    /// request, pipelined behind the last one, was still unread in its
    /// receive buffer: the kernel answers such a close with a reset (RST),
    /// and that request is never answered. Only bytes still in the kernel's
    /// buffer are seen: requests the server had already read whole into its
    /// own buffer go unanswered behind an orderly close, which keeps its own
    /// reason.
    PipelinedUnread {
        /// The close the server meant: `max_requests`, `keep_alive_off`,
        /// `client_requested_close`, or `server_close` in mode `header`,
        /// `fin` or `mid_body`.
        after: Box<CloseReason>,
        /// The unread request's method, when the bytes left began with its
        /// request line (absent when they were the rest of a request whose
        /// start the server had read).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        /// Its target (path and query), truncated to [`MAX_TARGET_LEN`],
        /// `key=` and `session=` blanked; absent with `method`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
    },
    /// On a TLS port's HTTP/1.1: the server closed as it meant to (`after`)
    /// while bytes of TLS records the client sent were still unread in its
    /// receive buffer, so the kernel answered the close with a reset (RST).
    /// The records are encrypted and were never read, so what they held is
    /// not known: another request, pipelined behind the last one or sent as
    /// the idle timer fired (then never answered), or the client's own
    /// `close_notify`.
    RecordsUnread {
        /// The close the server meant: as in `pipelined_unread`, or the idle
        /// close (`idle_timeout`, `session_ended`), where the plain ports
        /// say `keep_alive_race`.
        after: Box<CloseReason>,
    },
    /// HTTP's framing rules made the server close after its answer (which
    /// said `Connection: close`): the client had not closed, and no policy
    /// or endpoint asked for it.
    FramingClose {
        /// Which rule.
        rule: FramingRule,
    },
    /// A request took longer than the server's hang timeout, so the server
    /// closed its connection without answering.
    HangTimeout,
    /// `/api/close` closed it on purpose, in the given way.
    ServerClose {
        /// How.
        mode: CloseMode,
    },
    /// A client started a request but did not finish its headers in time.
    HeaderReadTimeout,
    /// The server is shutting down and closed the connection.
    Shutdown,
    /// The keep-alive race: the server closed a kept-alive connection while
    /// the client's next request was already on its way (its bytes had reached
    /// the server, unanswered). Browsers re-send such a request silently on
    /// another connection, so the server sees it twice.
    KeepAliveRace {
        /// The unanswered request's method, as far as its bytes had arrived.
        method: String,
        /// Its target (path and query), truncated to [`MAX_TARGET_LEN`].
        target: String,
        /// How the server closed: `fin`, or `rst` when the request's bytes
        /// were left unread (the kernel then answers with a reset).
        close: RaceClose,
        /// `true` when produced on purpose (`next=drop_fin|drop_rst` on the
        /// previous request), `false` when the idle timeout really raced.
        on_purpose: bool,
    },
    /// A request body arrived too slowly (the slow-body guard): the server
    /// stopped waiting for it and closed the connection.
    BodyReadTimeout,
    /// The client stopped reading: a response could not be written for the
    /// write-stall guard's time, at once or (a client reading in spurts,
    /// stopping again each time) in all, so the server closed the connection.
    WriteStalled,
    /// The connection's session ended (its page went away) while the
    /// connection sat idle: the server closed it instead of waiting for the
    /// idle timeout.
    SessionEnded,
    /// A WebSocket ended with a close handshake (or the server's close frame
    /// after a protocol violation or a viewer that fell behind).
    WebSocketClosed {
        /// The close code (1000 normal, 1001 going away, 1002 protocol error,
        /// 1007 bad data, 1008 policy, 1009 too big).
        code: u16,
        /// Who sent the first close frame: `client` or `server`.
        initiator: Initiator,
        /// The close frame's reason text.
        reason: String,
    },
    /// Any other failure, with the error's text.
    Error {
        /// Human-readable error, as reported by hyper or the OS.
        message: String,
    },
}

impl CloseReason {
    /// The `kind` tag, as in the JSON (`"idle_timeout"`).
    pub fn kind(&self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::PeerReset => "peer_reset",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::MaxRequests => "max_requests",
            CloseReason::KeepAliveOff => "keep_alive_off",
            CloseReason::ClientRequestedClose => "client_requested_close",
            CloseReason::BodyUnread { .. } => "body_unread",
            CloseReason::PipelinedUnread { .. } => "pipelined_unread",
            CloseReason::RecordsUnread { .. } => "records_unread",
            CloseReason::FramingClose { .. } => "framing_close",
            CloseReason::HangTimeout => "hang_timeout",
            CloseReason::HeaderReadTimeout => "header_read_timeout",
            CloseReason::ServerClose { .. } => "server_close",
            CloseReason::Shutdown => "shutdown",
            CloseReason::KeepAliveRace { .. } => "keep_alive_race",
            CloseReason::BodyReadTimeout => "body_read_timeout",
            CloseReason::WriteStalled => "write_stalled",
            CloseReason::SessionEnded => "session_ended",
            CloseReason::WebSocketClosed { .. } => "web_socket_closed",
            CloseReason::Error { .. } => "error",
        }
    }

    /// Short words for a label in the page ("peer closed", "idle timeout"...).
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "peer closed (FIN)",
            CloseReason::PeerReset => "peer reset (RST)",
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::MaxRequests => "max requests reached",
            CloseReason::KeepAliveOff => "keep-alive off",
            CloseReason::ClientRequestedClose => "closed as the request asked (Connection: close)",
            CloseReason::BodyUnread { .. } => "request body left unread",
            CloseReason::PipelinedUnread { after, .. } => match after.as_ref() {
                CloseReason::MaxRequests => "max requests; RST, pipelined unread",
                CloseReason::KeepAliveOff => "keep-alive off; RST, pipelined unread",
                CloseReason::ClientRequestedClose => "Connection: close; RST, pipelined unread",
                _ => "server closed; RST, pipelined unread",
            },
            CloseReason::RecordsUnread { after } => match after.as_ref() {
                CloseReason::MaxRequests => "max requests; RST, TLS records unread",
                CloseReason::KeepAliveOff => "keep-alive off; RST, TLS records unread",
                CloseReason::ClientRequestedClose => "Connection: close; RST, TLS records unread",
                CloseReason::IdleTimeout => "idle timeout; RST, TLS records unread",
                CloseReason::SessionEnded => "session ended; RST, TLS records unread",
                _ => "server closed; RST, TLS records unread",
            },
            CloseReason::FramingClose { rule } => match rule {
                FramingRule::Http10Unsized => "HTTP/1.0 body of unknown length ends with the close",
                FramingRule::RequestFraming => {
                    "server closed by HTTP/1.1's framing rules (Transfer-Encoding with Content-Length)"
                }
            },
            CloseReason::HangTimeout => "hang timeout",
            CloseReason::ServerClose { mode } => match mode {
                CloseMode::Header => "server closed (Connection: close)",
                CloseMode::Fin => "server closed without answering (FIN)",
                CloseMode::Rst => "server reset (RST)",
                CloseMode::MidBody => "server closed mid-body",
            },
            CloseReason::HeaderReadTimeout => "header read timeout",
            CloseReason::Shutdown => "server shutdown",
            CloseReason::KeepAliveRace { .. } => "keep-alive race (a request arrived as it closed)",
            CloseReason::BodyReadTimeout => "request body too slow",
            CloseReason::WriteStalled => "client stopped reading",
            CloseReason::SessionEnded => "session ended (page gone)",
            CloseReason::WebSocketClosed { .. } => "WebSocket closed",
            CloseReason::Error { .. } => "error",
        }
    }
}

/// The framing rule behind a [`CloseReason::FramingClose`].
///
/// ```json
/// "http10_unsized"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FramingRule {
    /// An HTTP/1.0 request kept alive (`Connection: keep-alive`) whose
    /// answer has no length: HTTP/1.0 has no chunked bodies, so the body
    /// ends with the close (RFC 9112 §6.3, rule 8; §9.3).
    Http10Unsized,
    /// The server closed after answering though neither the client, the
    /// policy nor an endpoint asked, and the answer had a length: a rule of
    /// HTTP/1.1 about the request's framing. The one such rule the server
    /// (hyper) applies: a request with both `Transfer-Encoding` and
    /// `Content-Length` (RFC 9112 §6.1, §6.3 rule 3: it may be a request
    /// smuggled past a proxy), after which it must close. Seen only as the
    /// connection ends (hyper keeps no `Content-Length` with a
    /// `Transfer-Encoding`), so its answer may also carry `Keep-Alive`.
    RequestFraming,
}

/// How the server closed in a [`CloseReason::KeepAliveRace`].
///
/// ```json
/// "rst"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RaceClose {
    /// An orderly close (FIN) that crossed the request.
    Fin,
    /// A reset: the request's bytes were in the server's receive buffer,
    /// unread, when it closed.
    Rst,
}

/// Which side started a WebSocket close handshake, or sent an HTTP/2
/// `RST_STREAM` or `GOAWAY` frame.
///
/// ```json
/// "client"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Initiator {
    /// The page (or any WebSocket client).
    Client,
    /// The lab's server.
    Server,
}

/// Longest request target the lab stores or sends in an event; longer ones
/// are cut and end in `…`, so what a client sends cannot grow the server's
/// memory per connection.
pub const MAX_TARGET_LEN: usize = 512;

/// `target` cut to [`MAX_TARGET_LEN`] bytes (on a character boundary),
/// marked with a trailing `…` when cut.
pub fn truncate_target(target: &str) -> String {
    if target.len() <= MAX_TARGET_LEN {
        return target.to_owned();
    }
    let mut end = MAX_TARGET_LEN - '…'.len_utf8();
    while !target.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &target[..end])
}

/// The name of an HTTP/2 error code (RFC 9113 §7), as in `RST_STREAM` and
/// `GOAWAY` frames: `CANCEL` for 0x8. `None` for a code the RFC does not name
/// (a peer may send any 32-bit value).
pub fn h2_error_name(code: u32) -> Option<&'static str> {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES.get(usize::try_from(code).ok()?).copied()
}

/// What a connection was upgraded to, so the page can show it apart from the
/// HTTP/1.1 connections it is measuring.
///
/// ```json
/// "monitor"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpgradeRole {
    /// The lab page's own `/api/events` WebSocket. It does not take one of the
    /// browser's six HTTP/1.1 slots, but it is a TCP connection to the origin.
    Monitor,
}

/// How a request ended on the server side.
///
/// ```json
/// "completed"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestOutcome {
    /// The whole response body was handed to the connection.
    Completed,
    /// The response was dropped before it completed: the client went away
    /// (abort, closed tab) or the connection failed.
    Aborted,
    /// The request upgraded the connection (WebSocket) instead of getting a body.
    Upgraded,
}

/// One event on the `/api/events` stream.
///
/// ```json
/// {"type": "connection_opened", "conn": 3, "at_us": 1520, "peer": "127.0.0.1:50412", "local_addr": "127.0.0.1:8080", "local_port": 8080}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// Sent first on every WebSocket: the connections open right now.
    ///
    /// ```json
    /// {"type": "snapshot", "now_us": 90000, "config": {"keep_alive": true, "idle_timeout_ms": 5000, "max_requests": 100, "advertise_keep_alive": true, "hang_timeout_ms": null, "tcp_keepalive": null}, "listeners": ["127.0.0.1:8080", "127.0.0.1:8081"], "connections": []}
    /// ```
    Snapshot {
        /// Server clock when the snapshot was taken.
        now_us: Micros,
        /// The keep-alive policy in force.
        config: ServerPolicy,
        /// Addresses the server listens on (`127.0.0.1:8080`, `[::1]:8081`...):
        /// the origins a page can aim bursts at to compare pools.
        #[serde(default)]
        listeners: Vec<String>,
        /// Whose world this viewer sees: its session, or `null` for the
        /// anonymous scope (requests without `session=`) and the instructor's
        /// whole-server view.
        #[serde(default)]
        session: Option<SessionId>,
        /// The instructor has locked the policy: `set_config` is refused and
        /// every session runs the server's defaults.
        #[serde(default)]
        locked: bool,
        /// The lesson the instructor moved the room to, for a page that
        /// joins late.
        #[serde(default)]
        room_lesson: Option<String>,
        /// Every open connection with its recent requests.
        connections: Vec<ConnectionSnapshot>,
    },
    /// The accept loop took a new TCP connection.
    ///
    /// ```json
    /// {"type": "connection_opened", "conn": 3, "at_us": 1520, "peer": "127.0.0.1:50412", "local_addr": "127.0.0.1:8080", "local_port": 8080}
    /// ```
    ConnectionOpened {
        /// The new connection.
        conn: ConnId,
        /// When `accept` returned it.
        at_us: Micros,
        /// The client's address and port: browsers open each connection from a
        /// new ephemeral port, which is how Wireshark would tell them apart too.
        peer: String,
        /// The listener address it arrived on (`127.0.0.1:8080`, `[::1]:8080`):
        /// `localhost` and `127.0.0.1` are different browser pools.
        local_addr: String,
        /// The server port it arrived on (each port is a separate browser pool).
        local_port: u16,
    },
    /// The connection's first request named a session: from now on only that
    /// session's viewers see it.
    ///
    /// ```json
    /// {"type": "connection_attributed", "conn": 3, "session": "s-4f9a2c", "at_us": 2100}
    /// ```
    ConnectionAttributed {
        /// The connection.
        conn: ConnId,
        /// Its session.
        session: SessionId,
        /// When.
        at_us: Micros,
    },
    /// A connection this viewer was shown (unattributed, same address) turned
    /// out to belong to another session: forget it.
    ///
    /// ```json
    /// {"type": "connection_hidden", "conn": 3}
    /// ```
    ConnectionHidden {
        /// The connection.
        conn: ConnId,
    },
    /// The keep-alive policy of one scope changed (from the page, `PUT
    /// /api/config`, or the instructor locking the room's policy).
    ///
    /// ```json
    /// {"type": "config_changed", "config": {"keep_alive": false, "idle_timeout_ms": 5000, "max_requests": 100, "advertise_keep_alive": true, "hang_timeout_ms": null, "tcp_keepalive": null}, "at_us": 7000}
    /// ```
    ConfigChanged {
        /// The policy now in force for `session`.
        config: ServerPolicy,
        /// Whose policy changed: a session, or `null` for the anonymous scope
        /// (or the server's defaults, in the instructor's view). Only that
        /// scope's viewers (and the instructor) receive the event.
        #[serde(default)]
        session: Option<SessionId>,
        /// Whether the instructor has locked the policy.
        #[serde(default)]
        locked: bool,
        /// When.
        at_us: Micros,
    },
    /// The server finished reading a request's head.
    ///
    /// ```json
    /// {"type": "request_started", "conn": 3, "request": 12, "seq": 2, "method": "GET", "target": "/api/hang?id=b1-4", "connection": "keep-alive", "at_us": 2100}
    /// ```
    RequestStarted {
        /// The connection carrying it.
        conn: ConnId,
        /// The request's server-wide id.
        request: RequestId,
        /// 1 for the first request on this connection, 2 for the second...
        /// Anything above 1 is keep-alive reuse.
        seq: u32,
        /// HTTP method.
        method: String,
        /// Path and query, as sent (carries the page's request tag).
        target: String,
        /// The request's `Connection` header as received (its values joined
        /// with ", ", at most 64 characters); absent when it had none, as
        /// every HTTP/2 request (the header is not allowed there). This is
        /// what tells `keepAlive: false` (still `keep-alive`) from
        /// `Connection: close` on the wire.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connection: Option<String>,
        /// When the head had been read (the read that brought its last
        /// bytes, when no earlier request's end came after it).
        at_us: Micros,
    },
    /// The handler produced the response head; hyper writes it next.
    ///
    /// ```json
    /// {"type": "response_started", "conn": 3, "request": 12, "status": 200, "at_us": 5100}
    /// ```
    ResponseStarted {
        /// The connection carrying it.
        conn: ConnId,
        /// The request answered.
        request: RequestId,
        /// HTTP status code.
        status: u16,
        /// When the head was handed to the connection.
        at_us: Micros,
    },
    /// The response body ended or was dropped.
    ///
    /// ```json
    /// {"type": "request_finished", "conn": 3, "request": 12, "outcome": "completed", "at_us": 5200}
    /// ```
    RequestFinished {
        /// The connection carrying it.
        conn: ConnId,
        /// The request that ended.
        request: RequestId,
        /// Completed, aborted or upgraded.
        outcome: RequestOutcome,
        /// When it ended (completed over HTTP/1.1: the write that took its
        /// last bytes).
        at_us: Micros,
    },
    /// The connection switched protocols (WebSocket) and is no longer HTTP/1.1.
    ///
    /// ```json
    /// {"type": "connection_upgraded", "conn": 2, "role": "monitor", "at_us": 900}
    /// ```
    ConnectionUpgraded {
        /// The upgraded connection.
        conn: ConnId,
        /// What it became.
        role: UpgradeRole,
        /// When the upgrade completed.
        at_us: Micros,
    },
    /// A connection to one of the lab's TLS ports finished its TLS handshake:
    /// which application protocol ALPN chose. Over `h2` every request is a
    /// stream of this one connection (`seq` numbers the streams in the order
    /// their heads arrived); the HTTP/1.1 keep-alive headers are never sent.
    ///
    /// ```json
    /// {"type": "connection_secured", "conn": 7, "protocol": "h2", "alpn": "h2", "tls_version": "TLSv1.3", "at_us": 1500}
    /// ```
    ConnectionSecured {
        /// The connection.
        conn: ConnId,
        /// `h2` or `http/1.1`: what the connection speaks from now on.
        protocol: String,
        /// The protocol ALPN agreed on, if the client offered any.
        #[serde(default)]
        alpn: Option<String>,
        /// `TLSv1.3` or `TLSv1.2`.
        #[serde(default)]
        tls_version: String,
        /// When the handshake completed.
        at_us: Micros,
    },
    /// An HTTP/2 stream was reset: a `RST_STREAM` frame crossed the
    /// connection, read from the client (`by: client`: the browser cancelled
    /// the request, an `AbortController`, a closed tab's fetch) or written by
    /// the server (`by: server`: the lab's hang timeout, or hyper/h2 refusing
    /// a stream over `SETTINGS_MAX_CONCURRENT_STREAMS` with `REFUSED_STREAM`).
    /// Taken from the frame itself on the decrypted connection, so `code` is
    /// the HTTP/2 error code on the wire (RFC 9113 §7: 0x8 `CANCEL`, 0x2
    /// `INTERNAL_ERROR`, 0x7 `REFUSED_STREAM`; [`h2_error_name`]). `request`
    /// is the lab's request the stream carried, `null` when the stream never
    /// became one (refused) or is no longer remembered. A reset request also
    /// gets its `request_finished` (`aborted`), before or after this event.
    ///
    /// ```json
    /// {"type": "stream_reset", "conn": 7, "stream": 5, "request": 31, "by": "client", "code": 8, "at_us": 9100}
    /// ```
    StreamReset {
        /// The connection.
        conn: ConnId,
        /// The HTTP/2 stream id (odd: the client opened it).
        stream: u32,
        /// The request the stream carried, when it became one.
        #[serde(default)]
        request: Option<RequestId>,
        /// Who sent the `RST_STREAM`.
        by: Initiator,
        /// The HTTP/2 error code it carried.
        code: u32,
        /// When the frame was read or written.
        at_us: Micros,
    },
    /// A `GOAWAY` frame crossed an HTTP/2 connection: the server's (idle
    /// timeout, session ended, shutdown: a graceful one says `NO_ERROR` with
    /// last stream 2^31-1 first, then again with the last stream it
    /// processed) or the client's (a browser closing the connection).
    /// Read from the frame on the decrypted connection, like
    /// [`ServerEvent::StreamReset`].
    ///
    /// ```json
    /// {"type": "goaway", "conn": 7, "by": "server", "last_stream": 2147483647, "code": 0, "at_us": 9300}
    /// ```
    #[serde(rename = "goaway")]
    GoAway {
        /// The connection.
        conn: ConnId,
        /// Who sent it.
        by: Initiator,
        /// The last stream id its sender says it processed (or may still
        /// process).
        last_stream: u32,
        /// The HTTP/2 error code (0 `NO_ERROR` for a graceful close).
        code: u32,
        /// Its debug data, as text (at most 128 bytes), if it had any.
        #[serde(default)]
        debug: String,
        /// When the frame was read or written.
        at_us: Micros,
    },
    /// The TCP connection is gone.
    ///
    /// ```json
    /// {"type": "connection_closed", "conn": 3, "reason": {"kind": "peer_closed"}, "bytes_in": 412, "bytes_out": 1380, "last_in_us": 8000, "last_out_us": 7000, "requests": 2, "at_us": 9000}
    /// ```
    ConnectionClosed {
        /// The closed connection.
        conn: ConnId,
        /// Why it closed.
        reason: CloseReason,
        /// When the last byte arrived from the client, if any did.
        last_in_us: Option<Micros>,
        /// When the last byte was written to the client, if any was.
        last_out_us: Option<Micros>,
        /// Bytes read from the socket over its life.
        bytes_in: u64,
        /// Bytes written to the socket over its life.
        bytes_out: u64,
        /// Requests it carried.
        requests: u32,
        /// When the socket was dropped.
        at_us: Micros,
    },
    /// This viewer fell behind and the server skipped `count` events for it.
    /// A fresh [`ServerEvent::Snapshot`] follows at once, and the events after
    /// it: the open connections are right again, but connections that closed
    /// meanwhile, and why, were missed (a page treats its picture of that
    /// time as incomplete).
    ///
    /// ```json
    /// {"type": "events_dropped", "count": 120}
    /// ```
    EventsDropped {
        /// How many events this viewer missed.
        count: u64,
    },
    /// Answer to [`ClientMessage::Ping`]: lets the page align the two clocks.
    ///
    /// ```json
    /// {"type": "pong", "client_time_ms": 1532.25, "server_us": 88000}
    /// ```
    Pong {
        /// The page's clock (`performance.now()`) copied from the ping.
        client_time_ms: f64,
        /// The server's clock when it answered.
        server_us: Micros,
    },
    /// Answer to [`ClientMessage::Release`].
    ///
    /// ```json
    /// {"type": "released", "count": 6}
    /// ```
    Released {
        /// How many hanging requests were let go.
        count: usize,
    },
    /// A control message could not be understood, or was refused; the
    /// socket stays open. `refused` names the message's type when it named
    /// one the server knows.
    ///
    /// ```json
    /// {"type": "error", "error": "unknown message type `jump`", "hint": "send {\"type\":\"release\"} or {\"type\":\"ping\",\"client_time_ms\":0}"}
    /// ```
    ///
    /// ```json
    /// {"type": "error", "error": "too many set_config messages: at most 5 per second for a session, its sockets' set_config and set_middlebox and its PUTs together", "hint": "send one change per edit; this one was not applied", "refused": "set_config"}
    /// ```
    Error(ErrorBody),
    /// For the instructor only: a participant joined or left (or the room's
    /// reports were reset): the participant whole, with every report.
    ///
    /// ```json
    /// {"type": "participant_changed", "participant": {"session": "s-5f0c1b9e2a7d4c3b8e6f0a1d2c3b4a59", "browser": "Chrome 156", "online": true, "lesson": "six-lanes", "reports": []}}
    /// ```
    ParticipantChanged {
        /// The participant now.
        participant: Participant,
    },
    /// For the instructor only: a participant's report on a lesson changed.
    /// Only that report: the participant's others (one per lesson) stay as
    /// they were, and the lesson they are on is now the report's. (It was
    /// the participant whole: found in review, a participant changing one
    /// report made the server send all of theirs each time.)
    ///
    /// ```json
    /// {"type": "participant_reported", "session": "s-5f0c1b9e2a7d4c3b8e6f0a1d2c3b4a59", "report": {"lesson": "six-lanes", "stage": "answered", "prediction": "6", "answer": "6", "figures": [["at-once", "6"]], "stopped_early": false}}
    /// ```
    ParticipantReported {
        /// Whose report.
        session: SessionId,
        /// The report as kept now.
        report: LessonReport,
    },
    /// For the instructor only: a participant is no longer one, as their
    /// tab reloaded and its new session took over their reports (the next
    /// `participant_changed` brings it, once its page connects).
    ///
    /// ```json
    /// {"type": "participant_left", "session": "s-5f0c1b9e2a7d4c3b8e6f0a1d2c3b4a59"}
    /// ```
    ParticipantLeft {
        /// The session that is no longer a participant.
        session: SessionId,
    },
    /// The instructor moved the room to a lesson: every page opens it. Or
    /// cleared it (`null`): nobody moves, and pages that load later are sent
    /// nowhere; the instructor's views learn it.
    ///
    /// ```json
    /// {"type": "room_lesson", "lesson": "six-lanes"}
    /// ```
    RoomLesson {
        /// The lesson's id; `None` once cleared.
        lesson: Option<String>,
    },
    /// Something happened to one middlebox mapping (see [`MiddleboxEvent`]).
    /// Only the mapping's session's viewers (and the instructor) receive it;
    /// `session` is `null` for the anonymous scope and the standalone
    /// middlebox.
    ///
    /// ```json
    /// {"type": "middlebox", "mapping": 4, "session": "s-4f9a2c", "event": {"kind": "dropped", "side": "server", "bytes": 161, "count": 1, "probes": 0}, "at_us": 3600000}
    /// ```
    Middlebox {
        /// The mapping.
        mapping: MappingId,
        /// Whose mapping: the session its first request named.
        #[serde(default)]
        session: Option<SessionId>,
        /// What happened.
        event: MiddleboxEvent,
        /// When.
        at_us: Micros,
    },
    /// One scope's middlebox settings changed (`PUT /api/middlebox`,
    /// `set_middlebox`); they apply to mappings opened after the change.
    ///
    /// ```json
    /// {"type": "middlebox_changed", "settings": {"preset": "azure_lb", "idle_timeout_ms": 240000, "on_expiry": "silent", "probes_refresh": true, "scale": 60}, "in_force_ms": 4000, "session": "s-4f9a2c", "at_us": 7000}
    /// ```
    MiddleboxChanged {
        /// The settings now in force for `session`.
        settings: MiddleboxSettings,
        /// The idle timeout in force after scaling, milliseconds.
        in_force_ms: u64,
        /// Whose settings: a session, or `null` for the anonymous scope (or
        /// the defaults, in the instructor's view).
        #[serde(default)]
        session: Option<SessionId>,
        /// When.
        at_us: Micros,
    },
    /// Something happened in a session's Node-style agent run (see
    /// [`AgentEvent`]). Only that session's viewers (and the instructor)
    /// receive it.
    ///
    /// ```json
    /// {"type": "agent", "run": 2, "session": "s-4f9a2c", "event": {"kind": "request", "request": 3, "event": {"name": "sent", "socket": 1, "reused": true, "socket_requests": 2}}, "at_us": 3600000}
    /// ```
    Agent {
        /// The run, numbered server-wide from 1.
        run: u64,
        /// Whose agent: the session that started it.
        #[serde(default)]
        session: Option<SessionId>,
        /// What happened.
        event: AgentEvent,
        /// When.
        at_us: Micros,
    },
}

impl ServerEvent {
    /// When the server stamped this event on a connection or a policy
    /// change, if it is one of those: the events whose latency the page
    /// times for `cargo xtask bench` (figure 3).
    pub fn stamped_at(&self) -> Option<Micros> {
        match self {
            ServerEvent::ConnectionOpened { at_us, .. }
            | ServerEvent::ConnectionAttributed { at_us, .. }
            | ServerEvent::RequestStarted { at_us, .. }
            | ServerEvent::ResponseStarted { at_us, .. }
            | ServerEvent::RequestFinished { at_us, .. }
            | ServerEvent::ConnectionUpgraded { at_us, .. }
            | ServerEvent::ConnectionClosed { at_us, .. }
            | ServerEvent::ConfigChanged { at_us, .. } => Some(*at_us),
            _ => None,
        }
    }

    /// The connection this event is about, if it is about one.
    pub fn conn(&self) -> Option<ConnId> {
        match self {
            ServerEvent::ConnectionOpened { conn, .. }
            | ServerEvent::ConnectionAttributed { conn, .. }
            | ServerEvent::ConnectionHidden { conn }
            | ServerEvent::ConnectionClosed { conn, .. }
            | ServerEvent::RequestStarted { conn, .. }
            | ServerEvent::ResponseStarted { conn, .. }
            | ServerEvent::RequestFinished { conn, .. }
            | ServerEvent::ConnectionUpgraded { conn, .. }
            | ServerEvent::ConnectionSecured { conn, .. }
            | ServerEvent::StreamReset { conn, .. }
            | ServerEvent::GoAway { conn, .. } => Some(*conn),
            ServerEvent::ConfigChanged { .. }
            | ServerEvent::Middlebox { .. }
            | ServerEvent::MiddleboxChanged { .. }
            | ServerEvent::Agent { .. }
            | ServerEvent::ParticipantChanged { .. }
            | ServerEvent::ParticipantReported { .. }
            | ServerEvent::ParticipantLeft { .. }
            | ServerEvent::Snapshot { .. }
            | ServerEvent::RoomLesson { .. }
            | ServerEvent::EventsDropped { .. }
            | ServerEvent::Pong { .. }
            | ServerEvent::Released { .. }
            | ServerEvent::Error(_) => None,
        }
    }
}

/// A control message from the page on the `/api/events` WebSocket.
///
/// ```json
/// {"type": "release"}
/// {"type": "release", "request": 12}
/// {"type": "ping", "client_time_ms": 1532.25}
/// {"type": "set_config", "config": {"keep_alive": false}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Let hanging requests answer: all of them, or only those selected.
    Release {
        /// Only the request with this server id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<RequestId>,
        /// Only requests whose `id` query parameter equals this tag.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// Changes the server's keep-alive policy; the server answers every
    /// viewer with [`ServerEvent::ConfigChanged`], or this one with an error.
    ///
    /// ```json
    /// {"type": "set_config", "config": {"idle_timeout_ms": 2000}}
    /// ```
    SetConfig {
        /// The settings to change; absent ones stay as they are.
        config: PolicyPatch,
    },
    /// Clock sync: the server answers at once with [`ServerEvent::Pong`].
    Ping {
        /// The page's `performance.now()` when it sent the ping.
        client_time_ms: f64,
    },
    /// Where this participant is in a lesson, for the instructor's view.
    ///
    /// ```json
    /// {"type": "lesson_report", "report": {"lesson": "six-lanes", "stage": "answered", "prediction": "6", "answer": "6", "figures": [["at-once", "6"]]}}
    /// ```
    LessonReport {
        /// The report.
        report: LessonReport,
    },
    /// Changes this scope's middlebox; the server answers its viewers with
    /// [`ServerEvent::MiddleboxChanged`], or this one with an error.
    ///
    /// ```json
    /// {"type": "set_middlebox", "middlebox": {"preset": "aws_nat", "scale": 100}}
    /// ```
    SetMiddlebox {
        /// The settings to change; absent ones stay as they are.
        middlebox: MiddleboxPatch,
    },
    /// Starts this session's Node-style agent (one at a time): `count`
    /// requests, one every `every_ms`, to one of the lab's own listeners. The
    /// server answers with [`ServerEvent::Agent`] events, or this viewer with
    /// an error.
    ///
    /// ```json
    /// {"type": "agent_start", "options": {"keep_alive": false, "max_sockets": 20}, "request": {"method": "GET", "path": "/api/fast", "target": "same"}, "every_ms": 100, "count": 3}
    /// ```
    AgentStart {
        /// The agent's options (absent ones take Node's defaults).
        #[serde(default)]
        options: AgentOptions,
        /// What each request asks for.
        request: AgentRequestSpec,
        /// One request every this many milliseconds (0: all at once).
        every_ms: u64,
        /// How many requests.
        count: u32,
        /// After the last request ends, keep the agent (and its free
        /// sockets) this many milliseconds more, to watch them time out or
        /// be closed by the server.
        #[serde(default)]
        linger_ms: u64,
    },
    /// Stops this session's agent: requests in flight are aborted, every
    /// socket is destroyed.
    ///
    /// ```json
    /// {"type": "agent_stop"}
    /// ```
    AgentStop {},
}

/// Body of `POST /api/release`; an empty body (or `{}`) releases every hang.
///
/// ```json
/// {"request": 12}
/// {"id": "b1-4"}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// Only the request with this server id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestId>,
    /// Only requests whose `id` query parameter equals this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Answer to `POST /api/release`.
///
/// ```json
/// {"released": 6}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseResponse {
    /// How many hanging requests were let go.
    pub released: usize,
}

/// Every error the HTTP API returns has this body (with a 4xx or 5xx status).
///
/// ```json
/// {"error": "`ms` must be a whole number of milliseconds, got `abc`", "hint": "send ms between 0 and 120000, e.g. /api/slow?ms=1500"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What was wrong.
    pub error: String,
    /// What to send instead.
    pub hint: String,
    /// Over the events socket, the type of the control message it answers
    /// (`set_config`, `lesson_report`, …) when that much could be read:
    /// a page tells a refusal of its settings from others by it. Absent over
    /// HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl ErrorBody {
    /// What was wrong and what to send instead, naming no message.
    pub fn new(error: impl Into<String>, hint: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: error.into(),
            hint: hint.into(),
            refused: None,
        }
    }
}

/// One request as remembered on its connection.
///
/// ```json
/// {"request": 12, "seq": 2, "method": "GET", "target": "/api/hang?id=b1-4", "started_us": 2100, "response_us": null, "finished_us": null, "status": null, "outcome": null}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSnapshot {
    /// Server-wide id.
    pub request: RequestId,
    /// n-th request on its connection, from 1.
    pub seq: u32,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// When its head was read.
    pub started_us: Micros,
    /// When its response head was produced, if yet.
    pub response_us: Option<Micros>,
    /// When its body ended, if yet.
    pub finished_us: Option<Micros>,
    /// Response status, once known.
    pub status: Option<u16>,
    /// How it ended, once it has.
    pub outcome: Option<RequestOutcome>,
}

/// One open connection as seen by the server right now.
///
/// ```json
/// {"conn": 3, "opened_us": 1520, "peer": "127.0.0.1:50412", "local_addr": "127.0.0.1:8080", "local_port": 8080, "session": "s-4f9a2c", "upgraded": null, "bytes_in": 412, "bytes_out": 0, "last_in_us": 2000, "last_out_us": null, "requests_total": 1, "requests": []}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionSnapshot {
    /// Connection id.
    pub conn: ConnId,
    /// When it was accepted.
    pub opened_us: Micros,
    /// Client address and port.
    pub peer: String,
    /// Listener address it arrived on.
    pub local_addr: String,
    /// Server port it arrived on.
    pub local_port: u16,
    /// The session of its first request, if that named one.
    pub session: Option<SessionId>,
    /// Set once it was upgraded to a WebSocket.
    pub upgraded: Option<UpgradeRole>,
    /// Bytes read so far.
    pub bytes_in: u64,
    /// Bytes written so far.
    pub bytes_out: u64,
    /// When the last byte arrived, if any did.
    pub last_in_us: Option<Micros>,
    /// When the last byte was written, if any was.
    pub last_out_us: Option<Micros>,
    /// Requests carried so far (may exceed `requests.len()`: only the most
    /// recent ones are kept, so a long-lived connection has bounded memory).
    pub requests_total: u32,
    /// The most recent requests, oldest first, in-flight ones always included.
    pub requests: Vec<RequestSnapshot>,
    /// On a TLS port, what its handshake chose (`h2` or `http/1.1`, as
    /// `connection_secured` said), so a viewer that connects later (or
    /// reconnects) still knows; absent on a plain port or before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// The server's keep-alive policy. Defaults mirror Apache httpd 2.4
/// (`KeepAlive On`, `KeepAliveTimeout 5`, `MaxKeepAliveRequests 100`, which
/// produce `Keep-Alive: timeout=5, max=100`), with no hang timeout (like
/// Node.js since v13) and no TCP keep-alive (the Linux default).
///
/// ```json
/// {"keep_alive": true, "idle_timeout_ms": 5000, "max_requests": 100, "advertise_keep_alive": true, "hang_timeout_ms": null, "tcp_keepalive": null}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerPolicy {
    /// Off: every response says `Connection: close`, so each request needs a
    /// new connection. Applies to the next response on every connection.
    pub keep_alive: bool,
    /// How long a connection may wait for its next request (or a new one for
    /// its first) before the server closes it. Applies to connections
    /// accepted after the change.
    pub idle_timeout_ms: u64,
    /// Requests per connection; the last one gets `Connection: close`.
    /// `null`: unlimited. Applies to the next response on every connection.
    pub max_requests: Option<u32>,
    /// Send `Keep-Alive: timeout=T, max=M` on kept-alive responses. Chromium
    /// ignores it; the lab lets you show that.
    pub advertise_keep_alive: bool,
    /// A request without a response head after this long has its connection
    /// closed by the server, unanswered (Node.js's old 2-minute socket
    /// timeout). `null`: never. Applies to requests that start after the change.
    pub hang_timeout_ms: Option<u64>,
    /// TCP keep-alive probes on accepted sockets (`SO_KEEPALIVE`); `null`:
    /// off. Applies to connections accepted after the change.
    pub tcp_keepalive: Option<TcpKeepalive>,
}

/// TCP keep-alive timing (`TCP_KEEPIDLE`, `TCP_KEEPINTVL`).
///
/// ```json
/// {"idle_s": 60, "interval_s": 10}
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpKeepalive {
    /// Idle seconds before the first probe (Linux default 7200; under 350 keeps
    /// an AWS NAT gateway mapping alive).
    pub idle_s: u32,
    /// Seconds between probes (Linux default 75).
    pub interval_s: u32,
}

impl TcpKeepalive {
    /// The timing in force on a connection that came through the lab's
    /// middlebox at time scale `scale`: each value divided by the scale,
    /// rounded, at least 1 s (`TCP_KEEPIDLE` and `TCP_KEEPINTVL` are whole
    /// seconds). At ×100, 100 s become 1 s; 60 s become 1 s too.
    pub fn scaled(self, scale: u32) -> TcpKeepalive {
        let scale = scale.max(1);
        let one = |s: u32| ((s + scale / 2) / scale).max(1);
        TcpKeepalive {
            idle_s: one(self.idle_s),
            interval_s: one(self.interval_s),
        }
    }
}

impl Default for ServerPolicy {
    fn default() -> Self {
        ServerPolicy {
            keep_alive: true,
            idle_timeout_ms: 5_000,
            max_requests: Some(100),
            advertise_keep_alive: true,
            hang_timeout_ms: None,
            tcp_keepalive: None,
        }
    }
}

/// Accepted ranges of the policy's settings.
pub mod limits {
    use std::ops::RangeInclusive;
    /// `idle_timeout_ms`: 100 ms to 10 minutes.
    pub const IDLE_TIMEOUT_MS: RangeInclusive<u64> = 100..=600_000;
    /// `max_requests`: 1 to 100 000.
    pub const MAX_REQUESTS: RangeInclusive<u32> = 1..=100_000;
    /// `hang_timeout_ms`: 100 ms to 10 minutes.
    pub const HANG_TIMEOUT_MS: RangeInclusive<u64> = 100..=600_000;
    /// `tcp_keepalive.idle_s`: 1 s to 2 hours.
    pub const TCP_IDLE_S: RangeInclusive<u32> = 1..=7_200;
    /// `tcp_keepalive.interval_s`: 1 s to 10 minutes.
    pub const TCP_INTERVAL_S: RangeInclusive<u32> = 1..=600;
}

/// A change to [`ServerPolicy`]: absent fields stay as they are; for the
/// nullable ones, `null` turns the setting off.
///
/// ```json
/// {"idle_timeout_ms": 2000, "max_requests": null}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    /// See [`ServerPolicy::keep_alive`].
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub keep_alive: Option<bool>,
    /// See [`ServerPolicy::idle_timeout_ms`].
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_timeout_ms: Option<u64>,
    /// See [`ServerPolicy::max_requests`]; `Some(None)` is unlimited.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_requests: Option<Option<u32>>,
    /// See [`ServerPolicy::advertise_keep_alive`].
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub advertise_keep_alive: Option<bool>,
    /// See [`ServerPolicy::hang_timeout_ms`]; `Some(None)` is off.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub hang_timeout_ms: Option<Option<u64>>,
    /// See [`ServerPolicy::tcp_keepalive`]; `Some(None)` is off.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub tcp_keepalive: Option<Option<TcpKeepalive>>,
}

/// A field that cannot be turned off: present means a value, `null` is an
/// error (a plain `Option` would read `null` as "absent" and ignore it).
fn not_null<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A field that is present (even as `null`) becomes `Some(value)`.
fn present<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl ServerPolicy {
    /// The policy with `patch` applied, or the first setting out of range.
    pub fn patched(&self, patch: &PolicyPatch) -> Result<ServerPolicy, ErrorBody> {
        fn check<T: PartialOrd + std::fmt::Display + Copy>(
            name: &str,
            value: T,
            range: &std::ops::RangeInclusive<T>,
            unit: &str,
        ) -> Result<T, ErrorBody> {
            if range.contains(&value) {
                Ok(value)
            } else {
                Err(ErrorBody::new(
                    format!("`{name}` = {value} is out of range"),
                    format!(
                        "send {name} between {} and {} ({unit}), e.g. {{\"{name}\": {}}}",
                        range.start(),
                        range.end(),
                        range.start()
                    ),
                ))
            }
        }
        let mut next = self.clone();
        if let Some(on) = patch.keep_alive {
            next.keep_alive = on;
        }
        if let Some(ms) = patch.idle_timeout_ms {
            next.idle_timeout_ms = check("idle_timeout_ms", ms, &limits::IDLE_TIMEOUT_MS, "ms")?;
        }
        if let Some(max) = patch.max_requests {
            next.max_requests = max
                .map(|m| check("max_requests", m, &limits::MAX_REQUESTS, "requests"))
                .transpose()?;
        }
        if let Some(on) = patch.advertise_keep_alive {
            next.advertise_keep_alive = on;
        }
        if let Some(ms) = patch.hang_timeout_ms {
            next.hang_timeout_ms = ms
                .map(|m| check("hang_timeout_ms", m, &limits::HANG_TIMEOUT_MS, "ms"))
                .transpose()?;
        }
        if let Some(tcp) = patch.tcp_keepalive {
            next.tcp_keepalive = tcp
                .map(|t| -> Result<TcpKeepalive, ErrorBody> {
                    Ok(TcpKeepalive {
                        idle_s: check("idle_s", t.idle_s, &limits::TCP_IDLE_S, "seconds")?,
                        interval_s: check(
                            "interval_s",
                            t.interval_s,
                            &limits::TCP_INTERVAL_S,
                            "seconds",
                        )?,
                    })
                })
                .transpose()?;
        }
        Ok(next)
    }
}

/// Response headers every answer from the lab carries.
pub mod headers {
    /// The connection that carried the request ([`super::ConnId`]).
    pub const CONN_ID: &str = "x-conn-id";
    /// The n-th request on that connection, from 1.
    pub const REQUEST_SEQ: &str = "x-request-seq";
    /// The request's server-wide id ([`super::RequestId`]).
    pub const REQUEST_ID: &str = "x-request-id";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T>(json: &str) -> T
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        let value: T = serde_json::from_str(json).expect("example parses");
        let again: T = serde_json::from_str(&serde_json::to_string(&value).unwrap()).unwrap();
        assert_eq!(
            value, again,
            "serialising and parsing again changes nothing"
        );
        value
    }

    #[test]
    fn tcp_keepalive_is_scaled_to_whole_seconds_of_at_least_one() {
        let tcp = TcpKeepalive {
            idle_s: 100,
            interval_s: 250,
        };
        assert_eq!(tcp.scaled(1), tcp, "real time");
        assert_eq!(
            tcp.scaled(100),
            TcpKeepalive {
                idle_s: 1,
                interval_s: 3
            }
        );
        assert_eq!(tcp.scaled(1000).idle_s, 1, "never under 1 s");
        assert_eq!(tcp.scaled(0), tcp, "a scale of 0 reads as real time");
    }

    #[test]
    fn server_event_doc_examples_round_trip() {
        let examples = [
            r#"{"type": "snapshot", "now_us": 90000, "config": {"keep_alive": true, "idle_timeout_ms": 5000, "max_requests": 100, "advertise_keep_alive": true, "hang_timeout_ms": null, "tcp_keepalive": null}, "listeners": ["127.0.0.1:8080", "127.0.0.1:8081"], "connections": []}"#,
            r#"{"type": "connection_opened", "conn": 3, "at_us": 1520, "peer": "127.0.0.1:50412", "local_addr": "127.0.0.1:8080", "local_port": 8080}"#,
            r#"{"type": "connection_attributed", "conn": 3, "session": "s-4f9a2c", "at_us": 2100}"#,
            r#"{"type": "connection_hidden", "conn": 3}"#,
            r#"{"type": "config_changed", "config": {"keep_alive": false, "idle_timeout_ms": 5000, "max_requests": 100, "advertise_keep_alive": true, "hang_timeout_ms": null, "tcp_keepalive": null}, "at_us": 7000}"#,
            r#"{"type": "request_started", "conn": 3, "request": 12, "seq": 2, "method": "GET", "target": "/api/hang?id=b1-4", "connection": "keep-alive", "at_us": 2100}"#,
            r#"{"type": "response_started", "conn": 3, "request": 12, "status": 200, "at_us": 5100}"#,
            r#"{"type": "request_finished", "conn": 3, "request": 12, "outcome": "completed", "at_us": 5200}"#,
            r#"{"type": "connection_upgraded", "conn": 2, "role": "monitor", "at_us": 900}"#,
            r#"{"type": "connection_closed", "conn": 3, "reason": {"kind": "peer_closed"}, "bytes_in": 412, "bytes_out": 1380, "last_in_us": 8000, "last_out_us": 7000, "requests": 2, "at_us": 9000}"#,
            r#"{"type": "connection_closed", "conn": 3, "reason": {"kind": "server_close", "mode": "mid_body"}, "bytes_in": 1, "bytes_out": 2, "last_in_us": null, "last_out_us": null, "requests": 1, "at_us": 9}"#,
            r#"{"type": "events_dropped", "count": 120}"#,
            r#"{"type": "pong", "client_time_ms": 1532.25, "server_us": 88000}"#,
            r#"{"type": "released", "count": 6}"#,
            r#"{"type": "error", "error": "unknown message type `jump`", "hint": "send {\"type\":\"release\"}"}"#,
        ];
        for json in examples {
            round_trip::<ServerEvent>(json);
        }
    }

    #[test]
    fn http2_frame_events_round_trip_and_read_without_their_optional_fields() {
        let reset: ServerEvent = round_trip(
            r#"{"type": "stream_reset", "conn": 7, "stream": 5, "request": 31, "by": "client", "code": 8, "at_us": 9100}"#,
        );
        assert_eq!(
            reset,
            ServerEvent::StreamReset {
                conn: ConnId(7),
                stream: 5,
                request: Some(RequestId(31)),
                by: Initiator::Client,
                code: 8,
                at_us: 9100,
            }
        );
        // A refused stream never became a request.
        let refused: ServerEvent = round_trip(
            r#"{"type": "stream_reset", "conn": 7, "stream": 9, "by": "server", "code": 7, "at_us": 1}"#,
        );
        assert!(matches!(
            refused,
            ServerEvent::StreamReset { request: None, .. }
        ));
        let goaway: ServerEvent = round_trip(
            r#"{"type": "goaway", "conn": 7, "by": "server", "last_stream": 2147483647, "code": 0, "at_us": 9300}"#,
        );
        assert!(matches!(
            goaway,
            ServerEvent::GoAway { by: Initiator::Server, last_stream: 2147483647, code: 0, ref debug, .. } if debug.is_empty()
        ));
        assert_eq!(h2_error_name(8), Some("CANCEL"));
        assert_eq!(h2_error_name(0), Some("NO_ERROR"));
        assert_eq!(h2_error_name(0xd), Some("HTTP_1_1_REQUIRED"));
        assert_eq!(h2_error_name(0xe), None);
        assert_eq!(h2_error_name(u32::MAX), None);
    }

    #[test]
    fn middlebox_doc_examples_round_trip() {
        let events = [
            r#"{"type": "middlebox", "mapping": 4, "session": "s-4f9a2c", "event": {"kind": "dropped", "side": "server", "bytes": 161, "count": 1, "probes": 0}, "at_us": 3600000}"#,
            r#"{"type": "middlebox_changed", "settings": {"preset": "azure_lb", "idle_timeout_ms": 240000, "on_expiry": "silent", "probes_refresh": true, "scale": 60}, "in_force_ms": 4000, "session": "s-4f9a2c", "at_us": 7000}"#,
        ];
        for json in events {
            round_trip::<ServerEvent>(json);
        }
        let kinds = [
            r#"{"kind": "opened", "client": "127.0.0.1:50412", "upstream": "127.77.0.1:50413", "conn": 12, "accepted_us": 1000, "settings": {"preset": "aws_nat", "idle_timeout_ms": 350000, "on_expiry": "rst", "probes_refresh": true, "scale": 100}, "in_force_ms": 3500, "probes_visible": true}"#,
            r#"{"kind": "refreshed", "side": "server", "by": "probe", "bytes": 0, "count": 1}"#,
            r#"{"kind": "refreshed", "side": "client", "by": "window_probe", "bytes": 0, "count": 3}"#,
            r#"{"kind": "expired", "idle_ms": 3502, "on_expiry": "rst"}"#,
            r#"{"kind": "expired", "idle_ms": 301, "on_expiry": "silent", "transitory": true}"#,
            r#"{"kind": "dropped", "side": "server", "bytes": 161, "count": 1, "probes": 0}"#,
            r#"{"kind": "rst_sent", "side": "client"}"#,
            r#"{"kind": "refused", "client": "127.0.0.1:50500", "reason": "1024 mappings open, the middlebox's cap"}"#,
            r#"{"kind": "closed", "by": "server", "how": "fin", "after_expiry": true, "client_bytes": 120, "server_bytes": 0, "dropped_bytes": 161}"#,
        ];
        for json in kinds {
            round_trip::<MiddleboxEvent>(json);
        }
        round_trip::<MiddleboxView>(
            r#"{"settings": {"preset": "aws_nat", "idle_timeout_ms": 350000, "on_expiry": "rst", "probes_refresh": true, "scale": 100}, "in_force_ms": 3500, "scale_words": "time scale ×100", "probes_visible": true, "listeners": ["127.0.0.1:8082"], "locked": false}"#,
        );
        let set: ClientMessage = round_trip(
            r#"{"type": "set_middlebox", "middlebox": {"preset": "aws_nat", "scale": 100}}"#,
        );
        assert_eq!(
            set,
            ClientMessage::SetMiddlebox {
                middlebox: MiddleboxPatch {
                    preset: Some(Preset::AwsNat),
                    scale: Some(100),
                    ..MiddleboxPatch::default()
                }
            }
        );
        let value = serde_json::to_value(ServerEvent::Middlebox {
            mapping: MappingId(4),
            session: None,
            event: MiddleboxEvent::RstSent { side: Side::Client },
            at_us: 9,
        })
        .unwrap();
        assert_eq!(value["type"], "middlebox");
        assert_eq!(value["mapping"], 4, "mapping ids serialise as bare numbers");
        assert_eq!(value["event"]["kind"], "rst_sent");
    }

    #[test]
    fn agent_doc_examples_round_trip() {
        round_trip::<ServerEvent>(
            r#"{"type": "agent", "run": 2, "session": "s-4f9a2c", "event": {"kind": "request", "request": 3, "event": {"name": "sent", "socket": 1, "reused": true, "socket_requests": 2}}, "at_us": 3600000}"#,
        );
        let events = [
            r#"{"kind": "started", "url": "http://127.0.0.1:8080/api/fast", "options": {"keep_alive": true, "keep_alive_msecs": 1000, "max_sockets": null, "max_total_sockets": null, "max_free_sockets": 256, "scheduling": "lifo", "timeout": null, "agent_keep_alive_timeout_buffer": 1000, "request_timeout": null}, "connection": "keep-alive", "every_ms": 3000, "count": 5}"#,
            r#"{"kind": "request", "request": 1, "event": {"name": "sent", "socket": 1, "reused": false, "socket_requests": 1}}"#,
            r#"{"kind": "socket", "socket": 1, "event": {"name": "close", "had_error": false, "reason": "peer_closed", "requests": 1}}"#,
            r#"{"kind": "finished", "reason": "done", "requests": 5, "completed": 5, "failed": 0, "sockets": 1}"#,
        ];
        for json in events {
            round_trip::<AgentEvent>(json);
        }
        let requests = [
            r#"{"name": "queued", "method": "GET", "path": "/api/fast?id=a1-1", "connection": "keep-alive", "waiting": false, "queue_len": 0}"#,
            r#"{"name": "sent", "socket": 2, "reused": true, "socket_requests": 2}"#,
            r#"{"name": "response", "socket": 2, "status": 200, "http_version": "HTTP/1.1", "connection": "keep-alive", "keep_alive": "timeout=5, max=100"}"#,
            r#"{"name": "done", "socket": 2, "status": 200, "body_bytes": 2, "reusable": true}"#,
            r#"{"name": "timeout", "socket": 2, "after_ms": 500, "source": "request"}"#,
            r#"{"name": "error", "socket": 2, "code": "ECONNRESET", "message": "socket hang up", "reused_socket": true, "retried": false}"#,
            r#"{"name": "aborted", "reason": "request_timeout"}"#,
        ];
        for json in requests {
            round_trip::<RequestEvent>(json);
        }
        let sockets = [
            r#"{"name": "socket", "remote": "127.0.0.1:8080"}"#,
            r#"{"name": "connect", "local": "127.77.0.1:50412"}"#,
            r#"{"name": "keepalive", "requested_ms": 1000, "idle_s": 1, "interval_s": 1, "count": 10, "so_keepalive": true, "kernel_idle_s": 1}"#,
            r#"{"name": "free", "outcome": "pooled", "free_sockets": 1, "timeout_ms": 4000, "timeout_source": "keep_alive_hint"}"#,
            r#"{"name": "timeout", "after_ms": 4000, "free": true, "source": "keep_alive_hint"}"#,
            r#"{"name": "end", "free": true}"#,
            r#"{"name": "error", "code": "ECONNRESET", "message": "read ECONNRESET"}"#,
            r#"{"name": "close", "had_error": false, "reason": "free_socket_timeout", "requests": 3}"#,
        ];
        for json in sockets {
            round_trip::<SocketEvent>(json);
        }
        let options: AgentOptions = round_trip(
            r#"{"keep_alive": false, "keep_alive_msecs": 1000, "max_sockets": 20, "max_total_sockets": null, "max_free_sockets": 256, "scheduling": "lifo", "timeout": null, "agent_keep_alive_timeout_buffer": 1000, "request_timeout": null}"#,
        );
        assert_eq!(options.connection_header(), "keep-alive");
        let defaults: AgentOptions = round_trip("{}");
        assert_eq!(
            defaults,
            AgentOptions::default(),
            "absent fields are Node's defaults"
        );
        assert_eq!(
            defaults.connection_header(),
            "close",
            "keepAlive false, maxSockets Infinity"
        );
        assert!(serde_json::from_str::<AgentOptions>(r#"{"keepAlive": true}"#).is_err());
        for bad in [
            r#"{"keep_alive_msecs": 0}"#,
            r#"{"max_sockets": 0}"#,
            r#"{"max_total_sockets": 0}"#,
            r#"{"max_free_sockets": 0}"#,
            r#"{"timeout": 0}"#,
            r#"{"request_timeout": 600001}"#,
        ] {
            let options: AgentOptions = serde_json::from_str(bad).unwrap();
            let err = options.validate().unwrap_err();
            assert!(
                err.error.contains("out of range") && !err.hint.is_empty(),
                "{bad}"
            );
        }
        round_trip::<AgentRequestSpec>(
            r#"{"method": "GET", "path": "/api/hang?max_ms=5000", "target": "same"}"#,
        );
        let spec: AgentRequestSpec = round_trip(
            r#"{"method": "GET", "path": "/api/fast", "target": "second-port", "connection": "close"}"#,
        );
        assert_eq!(spec.target, AgentTarget::SecondPort);
        let start: ClientMessage = round_trip(
            r#"{"type": "agent_start", "options": {"keep_alive": false, "max_sockets": 20}, "request": {"method": "GET", "path": "/api/fast", "target": "same"}, "every_ms": 100, "count": 3}"#,
        );
        let ClientMessage::AgentStart {
            options,
            request,
            every_ms,
            count,
            linger_ms,
        } = start
        else {
            panic!("agent_start parses as AgentStart");
        };
        assert_eq!(options.max_sockets, Some(20));
        assert_eq!(request.target, AgentTarget::Same);
        assert_eq!((every_ms, count, linger_ms), (100, 3, 0));
        assert_eq!(
            round_trip::<ClientMessage>(r#"{"type": "agent_stop"}"#),
            ClientMessage::AgentStop {}
        );
        assert!(
            serde_json::from_str::<ClientMessage>(r#"{"type": "agent_stop", "now": true}"#)
                .is_err()
        );
    }

    #[test]
    fn event_names_are_past_tense_snake_case_tags() {
        let event = ServerEvent::ConnectionClosed {
            conn: ConnId(3),
            reason: CloseReason::Error {
                message: "boom".into(),
            },
            bytes_in: 1,
            bytes_out: 2,
            last_in_us: None,
            last_out_us: Some(4),
            requests: 0,
            at_us: 5,
        };
        let value: serde_json::Value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["type"], "connection_closed");
        assert_eq!(value["conn"], 3, "ids serialise as bare numbers");
        assert_eq!(value["reason"]["kind"], "error");
        for reason in [
            CloseReason::PeerClosed,
            CloseReason::PeerReset,
            CloseReason::IdleTimeout,
            CloseReason::MaxRequests,
            CloseReason::KeepAliveOff,
            CloseReason::ClientRequestedClose,
            CloseReason::BodyUnread {
                close: RaceClose::Rst,
            },
            CloseReason::PipelinedUnread {
                after: Box::new(CloseReason::MaxRequests),
                method: Some("GET".into()),
                target: Some("/api/fast?id=3".into()),
            },
            CloseReason::PipelinedUnread {
                after: Box::new(CloseReason::ServerClose {
                    mode: CloseMode::Fin,
                }),
                method: None,
                target: None,
            },
            CloseReason::RecordsUnread {
                after: Box::new(CloseReason::KeepAliveOff),
            },
            CloseReason::FramingClose {
                rule: FramingRule::Http10Unsized,
            },
            CloseReason::FramingClose {
                rule: FramingRule::RequestFraming,
            },
            CloseReason::HangTimeout,
            CloseReason::HeaderReadTimeout,
            CloseReason::ServerClose {
                mode: CloseMode::Rst,
            },
            CloseReason::Shutdown,
            CloseReason::Error {
                message: "x".into(),
            },
        ] {
            let json = serde_json::to_value(&reason).unwrap();
            assert_eq!(json["kind"], reason.kind(), "kind() matches the JSON tag");
            assert!(!reason.label().is_empty());
        }
        assert_eq!(value["reason"]["message"], "boom");
    }

    #[test]
    fn client_messages_round_trip() {
        let release_all: ClientMessage = round_trip(r#"{"type": "release"}"#);
        assert_eq!(
            release_all,
            ClientMessage::Release {
                request: None,
                id: None
            }
        );
        let one: ClientMessage = round_trip(r#"{"type": "release", "request": 12}"#);
        assert_eq!(
            one,
            ClientMessage::Release {
                request: Some(RequestId(12)),
                id: None
            }
        );
        round_trip::<ClientMessage>(r#"{"type": "release", "id": "b1-4"}"#);
        round_trip::<ClientMessage>(r#"{"type": "ping", "client_time_ms": 1532.25}"#);
        let set: ClientMessage =
            round_trip(r#"{"type": "set_config", "config": {"idle_timeout_ms": 2000}}"#);
        assert_eq!(
            set,
            ClientMessage::SetConfig {
                config: PolicyPatch {
                    idle_timeout_ms: Some(2000),
                    ..PolicyPatch::default()
                }
            }
        );
    }

    #[test]
    fn policy_patches_distinguish_absent_from_null_and_check_ranges() {
        let policy = ServerPolicy::default();
        round_trip::<ServerPolicy>(&serde_json::to_string(&policy).unwrap());
        let off: PolicyPatch = serde_json::from_str(r#"{"max_requests": null}"#).unwrap();
        assert_eq!(off.max_requests, Some(None), "null means unlimited");
        assert_eq!(policy.patched(&off).unwrap().max_requests, None);
        let absent: PolicyPatch = serde_json::from_str("{}").unwrap();
        assert_eq!(
            policy.patched(&absent).unwrap(),
            policy,
            "absent changes nothing"
        );
        let tcp: PolicyPatch =
            serde_json::from_str(r#"{"tcp_keepalive": {"idle_s": 60, "interval_s": 10}}"#).unwrap();
        assert_eq!(
            policy.patched(&tcp).unwrap().tcp_keepalive,
            Some(TcpKeepalive {
                idle_s: 60,
                interval_s: 10
            })
        );
        for bad in [
            r#"{"idle_timeout_ms": 0}"#,
            r#"{"idle_timeout_ms": 600001}"#,
            r#"{"max_requests": 0}"#,
            r#"{"hang_timeout_ms": 5}"#,
            r#"{"tcp_keepalive": {"idle_s": 0, "interval_s": 10}}"#,
            r#"{"tcp_keepalive": {"idle_s": 10, "interval_s": 601}}"#,
        ] {
            let patch: PolicyPatch = serde_json::from_str(bad).unwrap();
            let err = policy.patched(&patch).unwrap_err();
            assert!(
                err.error.contains("out of range") && err.hint.contains("between"),
                "{bad}"
            );
        }
        for malformed in [
            r#"{"idle": 5}"#,
            r#"{"keep_alive": "yes"}"#,
            r#"{"idle_timeout_ms": -1}"#,
        ] {
            assert!(
                serde_json::from_str::<PolicyPatch>(malformed).is_err(),
                "{malformed}"
            );
        }
    }

    #[test]
    fn session_ids_are_validated() {
        assert_eq!(SessionId::parse("s-4f_9A").unwrap().as_str(), "s-4f_9A");
        for bad in ["", "a b", "ä", &"x".repeat(65), "a/b"] {
            assert!(SessionId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<SessionId>(r#""bad id""#).is_err());
    }

    #[test]
    fn client_messages_reject_unknown_types_and_fields() {
        for bad in [
            r#"{"type": "jump"}"#,
            r#"{"type": "release", "everything": true}"#,
            r#"{"type": "ping"}"#,
            r#"{"request": 1}"#,
        ] {
            assert!(
                serde_json::from_str::<ClientMessage>(bad).is_err(),
                "{bad} must be rejected"
            );
        }
    }

    #[test]
    fn http_bodies_round_trip() {
        assert_eq!(
            round_trip::<ReleaseRequest>("{}"),
            ReleaseRequest::default()
        );
        round_trip::<ReleaseRequest>(r#"{"request": 12}"#);
        round_trip::<ReleaseRequest>(r#"{"id": "b1-4"}"#);
        assert!(serde_json::from_str::<ReleaseRequest>(r#"{"all": true}"#).is_err());
        round_trip::<ReleaseResponse>(r#"{"released": 6}"#);
        round_trip::<ErrorBody>(r#"{"error": "bad", "hint": "good"}"#);
    }

    #[test]
    fn snapshots_round_trip() {
        round_trip::<RequestSnapshot>(
            r#"{"request": 12, "seq": 2, "method": "GET", "target": "/api/hang?id=b1-4", "started_us": 2100, "response_us": null, "finished_us": null, "status": null, "outcome": null}"#,
        );
        round_trip::<ConnectionSnapshot>(
            r#"{"conn": 3, "opened_us": 1520, "peer": "127.0.0.1:50412", "local_addr": "127.0.0.1:8080", "local_port": 8080, "session": "s-4f9a2c", "upgraded": null, "bytes_in": 412, "bytes_out": 0, "last_in_us": 2000, "last_out_us": null, "requests_total": 1, "requests": []}"#,
        );
    }
}
