//! The Node-style HTTP agent: a second client beside the browser (issue #11).
//!
//! A page cannot choose `keepAlive: false`, set `maxSockets: 2`, send TCP
//! keep-alive probes after `keepAliveMsecs` or give a socket an idle
//! `timeout`; a Node.js `http.Agent` can. The lab's agent follows Node's
//! documented semantics (current LTS, v24; the rules and their sources are
//! listed in the server's `agent` module) and reports what it does under
//! Node's own event names:
//!
//! - [`AgentOptions`]: the agent's options, with Node's names and defaults,
//!   plus a per-request timeout like axios' `timeout`;
//! - [`AgentRequestSpec`] and [`AgentTarget`]: what the lab's agent requests
//!   (`agent_start` on the WebSocket);
//! - [`AgentEvent`]: one thing that happened, carried by `ServerEvent::Agent`
//!   (and printed one per line by `keepalive-lab agent`): the run starting
//!   and finishing, a [`RequestEvent`] of one request, a [`SocketEvent`] of
//!   one socket.
//!
//! Requests and sockets are numbered from 1 within a run; the requests the
//! lab's agent sends carry the tag `a<run>-<n>` in `id=`, and a socket's
//! `connect` event names its local address, which is the `peer` of the
//! server's `connection_opened`: the two views join on those.

use serde::{Deserialize, Serialize};

use crate::ErrorBody;

/// Node's default `keepAliveMsecs` (`this.options.keepAliveMsecs || 1000`).
pub const DEFAULT_KEEP_ALIVE_MSECS: u64 = 1000;
/// Node's default `maxFreeSockets` (`this.options.maxFreeSockets || 256`).
pub const DEFAULT_MAX_FREE_SOCKETS: u32 = 256;
/// Node's default `agentKeepAliveTimeoutBuffer` (v24.7.0, v22.20.0).
pub const DEFAULT_KEEP_ALIVE_TIMEOUT_BUFFER_MS: u64 = 1000;
/// Longest timeout (`timeout`, `request_timeout`) the lab accepts: 10 minutes.
pub const MAX_TIMEOUT_MS: u64 = 600_000;
/// Longest `keepAliveMsecs` the lab accepts: 2 hours (the Linux default
/// before the first probe).
pub const MAX_KEEP_ALIVE_MSECS: u64 = 7_200_000;

/// Most requests in one run of the lab's own agent (`agent_start`): the
/// server refuses more, and the page's agent composer offers no more.
pub const LAB_MAX_COUNT: u32 = 200;
/// Most sockets the lab's agent may open at once (also the most
/// `max_sockets` and `max_total_sockets` may say).
pub const LAB_MAX_SOCKETS: u32 = 32;
/// Longest run of the lab's agent, linger included (ms).
pub const LAB_MAX_DURATION_MS: u64 = 120_000;
/// Longest time between two requests of the lab's agent (ms).
pub const LAB_MAX_EVERY_MS: u64 = 60_000;

/// Which free socket the agent reuses first (Node's `scheduling`).
///
/// ```json
/// "lifo"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheduling {
    /// The most recently used free socket (Node's default since v15.6.0).
    #[default]
    Lifo,
    /// The least recently used free socket.
    Fifo,
}

impl Scheduling {
    /// The option's value as Node spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheduling::Lifo => "lifo",
            Scheduling::Fifo => "fifo",
        }
    }
}

/// An agent's options, with Node's names (snake_case) and defaults.
///
/// `max_sockets` and `max_total_sockets` are `null` for `Infinity`; `timeout`
/// and `request_timeout` are `null` for none.
///
/// ```json
/// {"keep_alive": false, "keep_alive_msecs": 1000, "max_sockets": 20, "max_total_sockets": null, "max_free_sockets": 256, "scheduling": "lifo", "timeout": null, "agent_keep_alive_timeout_buffer": 1000, "request_timeout": null}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentOptions {
    /// Keep sockets in a free pool after a response, for later requests.
    /// Not the `Connection` header (see [`AgentOptions::connection_header`]).
    #[serde(default)]
    pub keep_alive: bool,
    /// The initial delay of TCP keep-alive probes on the agent's sockets, in
    /// milliseconds; only with `keep_alive`. The kernel takes whole seconds.
    #[serde(default = "default_keep_alive_msecs")]
    pub keep_alive_msecs: u64,
    /// Sockets per host and port; `null` is `Infinity`.
    #[serde(default)]
    pub max_sockets: Option<u32>,
    /// Sockets across all hosts; `null` is `Infinity`.
    #[serde(default)]
    pub max_total_sockets: Option<u32>,
    /// Free sockets kept per host and port (only with `keep_alive`).
    #[serde(default = "default_max_free_sockets")]
    pub max_free_sockets: u32,
    /// Which free socket is reused first.
    #[serde(default)]
    pub scheduling: Scheduling,
    /// The socket's idle timeout in milliseconds (`null`: none). A free
    /// socket that times out is destroyed; an active one only reports it.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// Milliseconds subtracted from a server's `Keep-Alive: timeout=N` hint.
    #[serde(default = "default_keep_alive_timeout_buffer")]
    pub agent_keep_alive_timeout_buffer: u64,
    /// Like axios' `timeout`: a request whose socket stays idle this long
    /// (counted from when it has a connected socket) is aborted and its
    /// socket destroyed. `null`: none. Only its timer: axios also turns TCP
    /// keep-alive on at 60 s on every request's socket, which the agent
    /// does not (`server/src/agent/mod.rs`).
    #[serde(default)]
    pub request_timeout: Option<u64>,
}

fn default_keep_alive_msecs() -> u64 {
    DEFAULT_KEEP_ALIVE_MSECS
}

fn default_max_free_sockets() -> u32 {
    DEFAULT_MAX_FREE_SOCKETS
}

fn default_keep_alive_timeout_buffer() -> u64 {
    DEFAULT_KEEP_ALIVE_TIMEOUT_BUFFER_MS
}

impl Default for AgentOptions {
    /// `new http.Agent()`: Node's defaults.
    fn default() -> Self {
        AgentOptions {
            keep_alive: false,
            keep_alive_msecs: DEFAULT_KEEP_ALIVE_MSECS,
            max_sockets: None,
            max_total_sockets: None,
            max_free_sockets: DEFAULT_MAX_FREE_SOCKETS,
            scheduling: Scheduling::Lifo,
            timeout: None,
            agent_keep_alive_timeout_buffer: DEFAULT_KEEP_ALIVE_TIMEOUT_BUFFER_MS,
            request_timeout: None,
        }
    }
}

impl AgentOptions {
    /// The `Connection` header a request through this agent carries when it
    /// sets none itself: `close` only when `keep_alive` is false *and*
    /// `max_sockets` is `Infinity`, `keep-alive` otherwise (Node's
    /// `new Agent()` docs; `ClientRequest` in `lib/_http_client.js`).
    pub fn connection_header(&self) -> &'static str {
        if self.keep_alive || self.max_sockets.is_some() {
            "keep-alive"
        } else {
            "close"
        }
    }

    /// The first option out of range, with a hint. Zeroes are refused where
    /// Node would silently read them as its default (`x || default`).
    pub fn validate(&self) -> Result<(), ErrorBody> {
        fn bad(error: String, hint: &str) -> ErrorBody {
            ErrorBody::new(error, hint.to_owned())
        }
        if !(1..=MAX_KEEP_ALIVE_MSECS).contains(&self.keep_alive_msecs) {
            return Err(bad(
                format!(
                    "`keep_alive_msecs` = {} is out of range",
                    self.keep_alive_msecs
                ),
                "send keep_alive_msecs between 1 and 7200000 (ms); Node reads 0 as its default 1000",
            ));
        }
        if self.max_sockets == Some(0) {
            return Err(bad(
                "`max_sockets` = 0 is out of range".into(),
                "send a number of sockets from 1, or null for Infinity (Node reads 0 as Infinity)",
            ));
        }
        if self.max_total_sockets == Some(0) {
            return Err(bad(
                "`max_total_sockets` = 0 is out of range".into(),
                "send a number of sockets from 1, or null for Infinity (Node throws on 0)",
            ));
        }
        if self.max_free_sockets == 0 {
            return Err(bad(
                "`max_free_sockets` = 0 is out of range".into(),
                "send a number of free sockets from 1 (Node reads 0 as its default 256)",
            ));
        }
        for (name, value) in [
            ("timeout", self.timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if let Some(ms) = value
                && !(1..=MAX_TIMEOUT_MS).contains(&ms)
            {
                return Err(bad(
                    format!("`{name}` = {ms} is out of range"),
                    "send milliseconds between 1 and 600000, or null for none",
                ));
            }
        }
        if self.agent_keep_alive_timeout_buffer > MAX_TIMEOUT_MS {
            return Err(bad(
                format!(
                    "`agent_keep_alive_timeout_buffer` = {} is out of range",
                    self.agent_keep_alive_timeout_buffer
                ),
                "send milliseconds between 0 and 600000 (Node's default is 1000)",
            ));
        }
        Ok(())
    }
}

/// Where the lab's agent sends its requests: one of the lab's own listeners.
///
/// ```json
/// "second-port"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentTarget {
    /// The lab's main port.
    #[default]
    Same,
    /// The lab's second port.
    #[serde(alias = "second_port")]
    SecondPort,
    /// The lab's middlebox, in front of the main port.
    Middlebox,
}

/// What the lab's agent requests, every time.
///
/// ```json
/// {"method": "GET", "path": "/api/hang?max_ms=5000", "target": "same"}
/// {"method": "GET", "path": "/api/fast", "target": "second-port", "connection": "close"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRequestSpec {
    /// `GET` or `HEAD` (requests without a body).
    #[serde(default = "default_method")]
    pub method: String,
    /// A lab endpoint with its query (`/api/slow?ms=200`). The lab adds
    /// `session=` (the viewer's) and `id=a<run>-<n>`.
    pub path: String,
    /// Which of the lab's listeners.
    #[serde(default)]
    pub target: AgentTarget,
    /// A `Connection` header the request sets itself (then the agent's rule
    /// does not apply); absent: the agent decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
}

fn default_method() -> String {
    "GET".into()
}

/// What started a socket's or a request's `timeout`.
///
/// ```json
/// "agent"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutSource {
    /// The agent's `timeout` option.
    Agent,
    /// The agent's `timeout`, shortened by the server's `Keep-Alive:
    /// timeout=N` hint when the socket went to the free pool.
    KeepAliveHint,
    /// The request's own timeout (axios' `timeout`), which aborts it.
    Request,
}

/// What happened to a socket its request released (Node's `free`).
///
/// ```json
/// "pooled"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FreeOutcome {
    /// Kept in the agent's free pool for a later request.
    Pooled,
    /// Handed at once to the oldest request waiting in the agent's queue.
    NextRequest,
    /// Destroyed (a `close` with the reason follows).
    Destroyed,
}

/// Why the agent's socket closed.
///
/// ```json
/// "agent_keep_alive_off"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketCloseReason {
    /// `keepAlive` is false: released with no request waiting, the socket is
    /// destroyed, whatever the `Connection` header said.
    AgentKeepAliveOff,
    /// The request said `Connection: close`, so the socket is not reused.
    RequestConnectionClose,
    /// The response said `Connection: close` (or was HTTP/1.0 without
    /// keep-alive, or its body ended with the connection).
    ResponseConnectionClose,
    /// The free pool for this host already held `maxFreeSockets`.
    MaxFreeSockets,
    /// More sockets than `maxSockets` for this host.
    MaxSockets,
    /// More sockets than `maxTotalSockets`.
    MaxTotalSockets,
    /// The server's `Keep-Alive: timeout=N` hint minus the buffer left no
    /// time: the socket is not kept.
    KeepAliveHint,
    /// A free socket reached its idle `timeout`.
    FreeSocketTimeout,
    /// The request's own timeout (axios) aborted it.
    RequestTimeout,
    /// The server closed it (FIN).
    PeerClosed,
    /// The server reset it (RST), or another socket error.
    SocketError,
    /// The response could not be read (malformed, too large, an upgrade).
    BadResponse,
    /// The agent was stopped (run over, `agent_stop`, caps, shutdown).
    AgentStopped,
}

/// Why a request was aborted.
///
/// ```json
/// "request_timeout"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortReason {
    /// Its own timeout (axios' `timeout`) expired.
    RequestTimeout,
    /// The agent was stopped before it finished.
    AgentStopped,
}

/// Why a run ended.
///
/// ```json
/// "done"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Every request ended (and the linger time, if any, passed).
    Done,
    /// `agent_stop`, or Ctrl-C for the command line.
    Stopped,
    /// The session's last viewer left.
    ViewerLeft,
    /// The run reached its longest duration.
    DurationCap,
    /// The server is shutting down.
    Shutdown,
}

/// One event of one request, under Node's names where Node has one.
///
/// ```json
/// {"name": "queued", "method": "GET", "path": "/api/fast?id=a1-1", "connection": "keep-alive", "waiting": false, "queue_len": 0}
/// {"name": "sent", "socket": 2, "reused": true, "socket_requests": 2}
/// {"name": "response", "socket": 2, "status": 200, "http_version": "HTTP/1.1", "connection": "keep-alive", "keep_alive": "timeout=5, max=100"}
/// {"name": "done", "socket": 2, "status": 200, "body_bytes": 2, "reusable": true}
/// {"name": "timeout", "socket": 2, "after_ms": 500, "source": "request"}
/// {"name": "error", "socket": 2, "code": "ECONNRESET", "message": "socket hang up", "reused_socket": true, "retried": false}
/// {"name": "aborted", "reason": "request_timeout"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum RequestEvent {
    /// The request was handed to the agent: it gets a socket at once
    /// (`waiting: false`) or waits in the agent's queue.
    Queued {
        /// `GET` or `HEAD`.
        method: String,
        /// Path and query as sent.
        path: String,
        /// The `Connection` header it will carry.
        connection: String,
        /// Whether it waits in the agent's queue (no socket allowed now).
        waiting: bool,
        /// Requests waiting in the queue for this host, this one included.
        queue_len: u32,
    },
    /// Its head was written on a socket.
    Sent {
        /// The socket.
        socket: u32,
        /// Node's `request.reusedSocket`: the request found this socket free
        /// in the pool when it was handed to the agent (`addRequest` →
        /// `reuseSocket`, which sets it, in `lib/_http_agent.js`). A request
        /// that waited in the queue and is handed a socket as it frees (the
        /// agent's `'free'` handler → `setRequestSocket`, which does not)
        /// has `false`, although the socket carried an earlier request: for
        /// that, see `socket_requests`.
        reused: bool,
        /// Requests this socket has carried, this one included: 1 on a new
        /// socket; over 1, it carried an earlier request (whether or not
        /// Node calls it `reused`).
        socket_requests: u32,
    },
    /// Its response head arrived.
    Response {
        /// The socket.
        socket: u32,
        /// Status code.
        status: u16,
        /// `HTTP/1.1` or `HTTP/1.0`.
        http_version: String,
        /// The response's `Connection` header, if any.
        connection: Option<String>,
        /// The response's `Keep-Alive` header, if any.
        keep_alive: Option<String>,
    },
    /// Its response body ended.
    Done {
        /// The socket.
        socket: u32,
        /// Status code.
        status: u16,
        /// Body bytes read.
        body_bytes: u64,
        /// Whether request and response both allowed reusing the socket.
        reusable: bool,
    },
    /// Its socket was idle for its timeout (Node's request `timeout`). From
    /// the agent's `timeout` this only reports; a request timeout aborts.
    Timeout {
        /// The socket.
        socket: u32,
        /// The timeout that fired, milliseconds.
        after_ms: u64,
        /// Which timeout.
        source: TimeoutSource,
    },
    /// It failed (Node's request `error`). The agent never re-sends it.
    Error {
        /// The socket, if it had one.
        socket: Option<u32>,
        /// Node's error code (`ECONNRESET`, `ECONNREFUSED`...).
        code: String,
        /// Node's message (`socket hang up`, `aborted`...).
        message: String,
        /// Node's `request.reusedSocket` (see [`RequestEvent::Sent`]'s
        /// `reused`): what an application reads to decide whether to retry
        /// after the keep-alive race.
        reused_socket: bool,
        /// Always `false`: Node does not retry; the application may.
        retried: bool,
    },
    /// It was aborted and its socket destroyed.
    Aborted {
        /// Why.
        reason: AbortReason,
    },
}

/// One event of one of the agent's sockets, under Node's names.
///
/// ```json
/// {"name": "socket", "remote": "127.0.0.1:8080"}
/// {"name": "connect", "local": "127.77.0.1:50412"}
/// {"name": "connect", "local": "127.77.0.2:50413", "remote": "127.0.0.1:8080"}
/// {"name": "keepalive", "requested_ms": 1000, "idle_s": 1, "interval_s": 1, "count": 10, "so_keepalive": true, "kernel_idle_s": 1}
/// {"name": "free", "outcome": "pooled", "free_sockets": 1, "timeout_ms": 4000, "timeout_source": "keep_alive_hint"}
/// {"name": "timeout", "after_ms": 4000, "free": true, "source": "keep_alive_hint"}
/// {"name": "end", "free": true}
/// {"name": "error", "code": "ECONNRESET", "message": "read ECONNRESET"}
/// {"name": "agent_remove"}
/// {"name": "close", "had_error": false, "reason": "free_socket_timeout", "requests": 3}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum SocketEvent {
    /// The agent created the socket (`agent.createConnection`).
    Socket {
        /// The server's address.
        remote: String,
    },
    /// It connected; `local` is the server's `peer` for this connection.
    Connect {
        /// The socket's own address and port (the lab's agent, over IPv4:
        /// one of the lab's own addresses 127.77.0.1 to .254, in turn; the
        /// `keepalive-lab agent` command's, its system's choice).
        local: String,
        /// The server's address it reached, when not the one `socket`
        /// named: the name resolved to several and that one failed, so the
        /// next was tried (Node's `autoSelectFamily`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remote: Option<String>,
    },
    /// TCP keep-alive was switched on (`keepAlive: true` only).
    Keepalive {
        /// `keepAliveMsecs`.
        requested_ms: u64,
        /// The `TCP_KEEPIDLE` Node asks for: `keepAliveMsecs / 1000`
        /// rounded down; `null` when that is 0 s, which Node documents as
        /// "leave the system default unchanged".
        idle_s: Option<u32>,
        /// `TCP_KEEPINTVL` as read back from the socket: 1 s where libuv
        /// set it (`idle_s` not `null`), else the system's (Linux: 75 s);
        /// `null` where it cannot be read.
        interval_s: Option<u32>,
        /// `TCP_KEEPCNT` as read back: 10 where libuv set it, else the
        /// system's (Linux: 9); `null` where it cannot be read.
        count: Option<u32>,
        /// `SO_KEEPALIVE` as read back from the socket.
        so_keepalive: bool,
        /// `TCP_KEEPIDLE` as read back from the socket (`null` where it
        /// cannot be read).
        kernel_idle_s: Option<u32>,
    },
    /// Its request released it (Node's socket `free`), and what the agent
    /// did. Also right after a socket the agent made for a waiting request
    /// (a closed socket's `removeSocket` → `createSocket`, whose callback
    /// emits `'free'`), handed to that request (`next_request`).
    Free {
        /// Pooled, handed to a waiting request, or destroyed.
        outcome: FreeOutcome,
        /// Free sockets for this host now.
        free_sockets: u32,
        /// The idle timeout it has now, milliseconds (`null`: none).
        timeout_ms: Option<u64>,
        /// Where that timeout comes from (`null`: none).
        timeout_source: Option<TimeoutSource>,
    },
    /// It was idle for its timeout (Node's socket `timeout`).
    Timeout {
        /// The timeout, milliseconds.
        after_ms: u64,
        /// Whether it was in the free pool (then the agent destroys it).
        free: bool,
        /// Where the timeout came from.
        source: TimeoutSource,
    },
    /// The server closed its side (FIN; Node's socket `end`).
    End {
        /// Whether it was in the free pool.
        free: bool,
    },
    /// A socket error (Node's socket `error`).
    Error {
        /// Node's error code.
        code: String,
        /// The message.
        message: String,
    },
    /// Node's `agentRemove`: an error on a free socket; the agent's
    /// listener for it (`freeSocketErrorListener` in `lib/_http_agent.js`)
    /// destroys the socket and emits this, which takes it out of the pool
    /// before its `close`.
    AgentRemove,
    /// It closed (Node's socket `close`).
    Close {
        /// Node's `hadError`: it closed because of a transmission error.
        had_error: bool,
        /// Why, as far as the agent knows.
        reason: SocketCloseReason,
        /// Requests it carried.
        requests: u32,
    },
}

/// One event of an agent run.
///
/// ```json
/// {"kind": "started", "url": "http://127.0.0.1:8080/api/fast", "options": {"keep_alive": true, "keep_alive_msecs": 1000, "max_sockets": null, "max_total_sockets": null, "max_free_sockets": 256, "scheduling": "lifo", "timeout": null, "agent_keep_alive_timeout_buffer": 1000, "request_timeout": null}, "connection": "keep-alive", "every_ms": 3000, "count": 5}
/// {"kind": "request", "request": 1, "event": {"name": "sent", "socket": 1, "reused": false, "socket_requests": 1}}
/// {"kind": "socket", "socket": 1, "event": {"name": "close", "had_error": false, "reason": "peer_closed", "requests": 1}}
/// {"kind": "finished", "reason": "done", "requests": 5, "completed": 5, "failed": 0, "sockets": 1}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AgentEvent {
    /// The run began.
    Started {
        /// The first request's URL (without the lab's tags).
        url: String,
        /// The agent's options.
        options: AgentOptions,
        /// The `Connection` header its requests carry by the agent's rule.
        connection: String,
        /// One request every this many milliseconds (0: all at once).
        every_ms: u64,
        /// How many requests.
        count: u32,
    },
    /// Something happened to request `request`.
    Request {
        /// The request's number in the run, from 1.
        request: u32,
        /// What.
        event: RequestEvent,
    },
    /// Something happened to socket `socket`.
    Socket {
        /// The socket's number in the run, from 1.
        socket: u32,
        /// What.
        event: SocketEvent,
    },
    /// The run ended; every socket is closed.
    Finished {
        /// Why.
        reason: FinishReason,
        /// Requests handed to the agent.
        requests: u32,
        /// Requests whose response ended.
        completed: u32,
        /// Requests that failed or were aborted.
        failed: u32,
        /// Sockets the agent opened.
        sockets: u32,
    },
}
