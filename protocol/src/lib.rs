//! Wire types spoken between the keepalive-lab server and its frontend.
//!
//! Everything the page learns about the server's TCP connections arrives as a
//! [`ServerEvent`] on the `/api/events` WebSocket; everything the page asks of
//! the server while a burst is running goes back as a [`ClientMessage`] on the
//! same socket (HTTP requests from the page would queue behind its own hung
//! requests, see `shared/lab-notes.md`, "Starvation").
//!
//! # Layout
//!
//! - ids: [`ConnId`], [`RequestId`], newtypes so a connection id can never be
//!   passed where a request id is expected;
//! - [`ServerEvent`]: the live event stream, past-tense names, tagged by `type`;
//! - [`ClientMessage`]: control messages from the page;
//! - [`ConnectionSnapshot`] / [`RequestSnapshot`]: the state of open
//!   connections, sent first on every WebSocket and by `GET /api/connections`;
//! - HTTP bodies: [`ReleaseRequest`], [`ReleaseResponse`], [`ErrorBody`].
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

/// Why a TCP connection ended, as far as the server can tell.
///
/// ```json
/// {"kind": "peer_closed"}
/// {"kind": "error", "message": "connection error: broken pipe"}
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
    /// A client started a request but did not finish its headers in time.
    HeaderReadTimeout,
    /// The server is shutting down and closed the connection.
    Shutdown,
    /// Any other failure, with the error's text.
    Error {
        /// Human-readable error, as reported by hyper or the OS.
        message: String,
    },
}

impl CloseReason {
    /// Short words for a label in the page ("peer closed", "idle timeout"...).
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "peer closed (FIN)",
            CloseReason::PeerReset => "peer reset (RST)",
            CloseReason::IdleTimeout => "idle timeout",
            CloseReason::HeaderReadTimeout => "header read timeout",
            CloseReason::Shutdown => "server shutdown",
            CloseReason::Error { .. } => "error",
        }
    }
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
/// {"type": "connection_opened", "conn": 3, "at_us": 1520, "peer": "127.0.0.1:50412", "local_port": 8080}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// Sent first on every WebSocket: the connections open right now.
    ///
    /// ```json
    /// {"type": "snapshot", "now_us": 90000, "connections": []}
    /// ```
    Snapshot {
        /// Server clock when the snapshot was taken.
        now_us: Micros,
        /// Every open connection with its recent requests.
        connections: Vec<ConnectionSnapshot>,
    },
    /// The accept loop took a new TCP connection.
    ///
    /// ```json
    /// {"type": "connection_opened", "conn": 3, "at_us": 1520, "peer": "127.0.0.1:50412", "local_port": 8080}
    /// ```
    ConnectionOpened {
        /// The new connection.
        conn: ConnId,
        /// When `accept` returned it.
        at_us: Micros,
        /// The client's address and port: browsers open each connection from a
        /// new ephemeral port, which is how Wireshark would tell them apart too.
        peer: String,
        /// The server port it arrived on (each port is a separate browser pool).
        local_port: u16,
    },
    /// The server finished reading a request's head.
    ///
    /// ```json
    /// {"type": "request_started", "conn": 3, "request": 12, "seq": 2, "method": "GET", "target": "/api/hang?id=b1-4", "at_us": 2100}
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
        /// When the head had been read.
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
        /// When it ended.
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
    /// The TCP connection is gone.
    ///
    /// ```json
    /// {"type": "connection_closed", "conn": 3, "reason": {"kind": "peer_closed"}, "bytes_in": 412, "bytes_out": 1380, "requests": 2, "at_us": 9000}
    /// ```
    ConnectionClosed {
        /// The closed connection.
        conn: ConnId,
        /// Why it closed.
        reason: CloseReason,
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
    /// The page should treat its picture as incomplete (or reload the snapshot).
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
    /// A control message could not be understood; the socket stays open.
    ///
    /// ```json
    /// {"type": "error", "error": "unknown message type `jump`", "hint": "send {\"type\":\"release\"} or {\"type\":\"ping\",\"client_time_ms\":0}"}
    /// ```
    Error(ErrorBody),
}

/// A control message from the page on the `/api/events` WebSocket.
///
/// ```json
/// {"type": "release"}
/// {"type": "release", "request": 12}
/// {"type": "ping", "client_time_ms": 1532.25}
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
    /// Clock sync: the server answers at once with [`ServerEvent::Pong`].
    Ping {
        /// The page's `performance.now()` when it sent the ping.
        client_time_ms: f64,
    },
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
/// {"conn": 3, "opened_us": 1520, "peer": "127.0.0.1:50412", "local_port": 8080, "upgraded": null, "bytes_in": 412, "bytes_out": 0, "requests_total": 1, "requests": []}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionSnapshot {
    /// Connection id.
    pub conn: ConnId,
    /// When it was accepted.
    pub opened_us: Micros,
    /// Client address and port.
    pub peer: String,
    /// Server port it arrived on.
    pub local_port: u16,
    /// Set once it was upgraded to a WebSocket.
    pub upgraded: Option<UpgradeRole>,
    /// Bytes read so far.
    pub bytes_in: u64,
    /// Bytes written so far.
    pub bytes_out: u64,
    /// Requests carried so far (may exceed `requests.len()`: only the most
    /// recent ones are kept, so a long-lived connection has bounded memory).
    pub requests_total: u32,
    /// The most recent requests, oldest first, in-flight ones always included.
    pub requests: Vec<RequestSnapshot>,
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
    fn server_event_doc_examples_round_trip() {
        let examples = [
            r#"{"type": "snapshot", "now_us": 90000, "connections": []}"#,
            r#"{"type": "connection_opened", "conn": 3, "at_us": 1520, "peer": "127.0.0.1:50412", "local_port": 8080}"#,
            r#"{"type": "request_started", "conn": 3, "request": 12, "seq": 2, "method": "GET", "target": "/api/hang?id=b1-4", "at_us": 2100}"#,
            r#"{"type": "response_started", "conn": 3, "request": 12, "status": 200, "at_us": 5100}"#,
            r#"{"type": "request_finished", "conn": 3, "request": 12, "outcome": "completed", "at_us": 5200}"#,
            r#"{"type": "connection_upgraded", "conn": 2, "role": "monitor", "at_us": 900}"#,
            r#"{"type": "connection_closed", "conn": 3, "reason": {"kind": "peer_closed"}, "bytes_in": 412, "bytes_out": 1380, "requests": 2, "at_us": 9000}"#,
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
    fn event_names_are_past_tense_snake_case_tags() {
        let event = ServerEvent::ConnectionClosed {
            conn: ConnId(3),
            reason: CloseReason::Error {
                message: "boom".into(),
            },
            bytes_in: 1,
            bytes_out: 2,
            requests: 0,
            at_us: 5,
        };
        let value: serde_json::Value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["type"], "connection_closed");
        assert_eq!(value["conn"], 3, "ids serialise as bare numbers");
        assert_eq!(value["reason"]["kind"], "error");
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
            r#"{"conn": 3, "opened_us": 1520, "peer": "127.0.0.1:50412", "local_port": 8080, "upgraded": null, "bytes_in": 412, "bytes_out": 0, "requests_total": 1, "requests": []}"#,
        );
    }
}
