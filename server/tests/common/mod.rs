//! Shared helpers for the server's integration tests.
//!
//! - [`start_server`] / [`spawn_server`]: a lab on `127.0.0.1:0` served by the
//!   real accept loop ([`listener::serve`]), one per test.
//! - [`Client`]: a raw HTTP/1.1 client over one `TcpStream`, so a test decides
//!   exactly when a connection opens, what bytes it sends and when it closes.
//! - [`Viewer`]: a WebSocket client of `/api/events` that keeps every event it
//!   has received, so a test can look at the whole story of one connection.
//! - [`serve_listeners`]: a lab on several listeners at once (second origin,
//!   IPv6 loopback), served by [`listener::serve_all`].
//!
//! Every wait is bounded by [`LIMIT`]: it only stops a broken test from hanging
//! forever, no test asserts how long anything took.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod binary;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use keepalive_lab_server::{Config, Lab, listener};
use protocol::{
    CloseReason, ConnId, ConnectionSnapshot, ErrorBody, Micros, RequestId, RequestOutcome,
    ServerEvent, ServerPolicy, SessionId,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound for any single wait in a test. Generous on purpose: it is a
/// safety net against hangs, not a performance assertion.
pub const LIMIT: Duration = Duration::from_secs(10);

/// The instructor key of every test server.
pub const KEY: &str = "test-instructor-key";

/// The settings tests start from: the defaults, with a frontend directory
/// that does not exist (so unknown paths get the API's JSON 404) and a known
/// instructor key ([`KEY`]).
pub fn config() -> Config {
    Config {
        dist_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("keepalive-lab-no-dist"),
        instructor_key: keepalive_lab_server::sessions::key::InstructorKey::parse(KEY)
            .expect("a valid key"),
        ..Config::default()
    }
}

/// A new session from `POST /api/sessions`, as a page gets one.
pub async fn issue_session(addr: SocketAddr) -> String {
    let response = request_once(addr, "POST", "/api/sessions", b"").await;
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()["session"]
        .as_str()
        .expect("a session id")
        .to_owned()
}

/// [`config`] with a short idle timeout. The header-read guard is not the idle
/// timer any more: it stays at `Config::header_read_timeout` (10 s), so a
/// test of the guard sets that itself.
pub fn config_with_idle(idle_timeout: Duration) -> Config {
    let mut config = config();
    config.policy.idle_timeout_ms =
        u64::try_from(idle_timeout.as_millis()).expect("a short idle timeout");
    config
}

/// Starts a lab with [`config`] and returns its address and state.
pub async fn start_server() -> (SocketAddr, Lab) {
    start_server_with(config()).await
}

/// Starts a lab with `config` and returns its address and state.
pub async fn start_server_with(config: Config) -> (SocketAddr, Lab) {
    let (addr, lab, _task) = spawn_server(config).await;
    (addr, lab)
}

/// Starts a lab with `config`; also returns the accept loop's task, for tests
/// that watch it end.
pub async fn spawn_server(config: Config) -> (SocketAddr, Lab, JoinHandle<io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let lab = Lab::new(config);
    let task = tokio::spawn(listener::serve(listener, lab.clone()));
    (addr, lab, task)
}

/// Starts a lab with `config` on every IPv4 interface (`0.0.0.0:0`), as a
/// workshop machine does; returns its port and state. Reach it on
/// `127.0.0.1:port`, or on [`lan_ip`] to come from another address.
pub async fn start_server_on_all_interfaces(config: Config) -> (u16, Lab) {
    let listener = TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind 0.0.0.0:0");
    let port = listener.local_addr().expect("local address").port();
    let lab = Lab::new(config);
    tokio::spawn(listener::serve(listener, lab.clone()));
    (port, lab)
}

/// A non-loopback IPv4 address of this machine, if it has one: connecting
/// to it from here makes the lab see a client address that is not loopback,
/// i.e. another participant's machine as far as the same-host rule goes.
pub fn lan_ip() -> Option<std::net::IpAddr> {
    if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .map(|i| i.ip())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback() && !ip.is_unspecified())
}

/// Serves one lab on every listener in `listeners` ([`listener::serve_all`]);
/// `config.listeners` is filled in with their addresses, as `main.rs` does.
/// Returns the addresses (in the order given) and the lab.
pub async fn serve_listeners(
    listeners: Vec<TcpListener>,
    config: Config,
) -> (Vec<SocketAddr>, Lab) {
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr().expect("local address"))
        .collect();
    let lab = Lab::new(Config {
        listeners: addrs.clone(),
        ..config
    });
    tokio::spawn(listener::serve_all(listeners, lab.clone()));
    (addrs, lab)
}

/// A session id; panics on an invalid one (tests use fixed, valid ids).
pub fn session(id: &str) -> SessionId {
    SessionId::parse(id).expect("a valid session id")
}

/// `PUT /api/config` with `body` on a fresh connection.
pub async fn put_config(addr: SocketAddr, body: &str) -> Response {
    request_once(addr, "PUT", "/api/config", body.as_bytes()).await
}

/// `GET /api/config` (the anonymous scope's policy), parsed.
pub async fn get_config(addr: SocketAddr) -> ServerPolicy {
    get_config_as(addr, "").await
}

/// `PUT /api/config{query}` with `body` on a fresh connection. `query` is
/// `""` (the anonymous scope), `"?session=…"` or `"?key=…"` (the defaults).
pub async fn put_config_as(addr: SocketAddr, query: &str, body: &str) -> Response {
    request_once(addr, "PUT", &format!("/api/config{query}"), body.as_bytes()).await
}

/// `GET /api/config{query}`, parsed; `query` as for [`put_config_as`].
pub async fn get_config_as(addr: SocketAddr, query: &str) -> ServerPolicy {
    let response = get_once(addr, &format!("/api/config{query}")).await;
    assert_eq!(response.status, 200, "{query}: {}", response.text());
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("not a ServerPolicy ({e}): {}", response.text()))
}

/// Awaits `future`, failing the test if it takes longer than [`LIMIT`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(LIMIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {LIMIT:?} waiting for {what}"),
    }
}

/// Polls `condition` every few milliseconds until it holds (bounded).
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Waits until the lab holds exactly `n` hanging requests.
pub async fn wait_for_hangs(lab: &Lab, n: usize) {
    eventually(&format!("{n} hanging requests"), || lab.hangs().len() == n).await;
}

/// One parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header names (lower-cased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The (de-chunked) body.
    pub body: Vec<u8>,
    /// The size of each chunk of a chunked body, in order (empty otherwise).
    pub chunks: Vec<usize>,
    /// Bytes this response took on the wire, head included.
    pub wire_len: usize,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Header `name` as a number; panics when absent or not a number.
    pub fn header_u64(&self, name: &str) -> u64 {
        let value = self
            .header(name)
            .unwrap_or_else(|| panic!("response has no `{name}` header: {self:?}"));
        value
            .parse()
            .unwrap_or_else(|_| panic!("`{name}: {value}` is not a number"))
    }

    /// The connection that carried the request (`X-Conn-Id`).
    pub fn conn_id(&self) -> ConnId {
        ConnId(self.header_u64(protocol::headers::CONN_ID))
    }

    /// The request's server-wide id (`X-Request-Id`).
    pub fn request_id(&self) -> RequestId {
        RequestId(self.header_u64(protocol::headers::REQUEST_ID))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (with the body) when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// Asserts a JSON content type and a `{"error", "hint"}` body with both
    /// fields non-empty, and returns it.
    pub fn error_body(&self) -> ErrorBody {
        let content_type = self.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "error responses are JSON, got content-type {content_type:?}: {self:?}"
        );
        let body: ErrorBody = serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not an ErrorBody ({e}): status {} {:?}",
                self.status,
                self.text()
            )
        });
        assert!(!body.error.trim().is_empty(), "empty `error`: {body:?}");
        assert!(!body.hint.trim().is_empty(), "empty `hint`: {body:?}");
        body
    }
}

/// A raw HTTP/1.1 client on one TCP connection.
#[derive(Debug)]
pub struct Client {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read but not yet consumed by a response.
    buf: Vec<u8>,
    /// Bytes written so far.
    pub sent: usize,
    /// Bytes read so far.
    pub received: usize,
}

/// A TCP connection to `addr` from the loopback address `from` (bound to a
/// port of its own), as from another participant's machine.
pub async fn connect_from(addr: SocketAddr, from: std::net::IpAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::new(from, 0))
        .expect("bind a loopback address of its own");
    within("TCP connect", socket.connect(addr))
        .await
        .expect("connect")
}

/// A TCP connection to `addr` as the lab's middlebox makes one for a
/// mapping: bound on loopback, registered as forwarded on behalf of
/// `client` (the machine whose address the lab counts), then connected.
/// The connection stays forwarded while the returned registration lives.
pub async fn forwarded(
    addr: SocketAddr,
    lab: &Lab,
    client: SocketAddr,
) -> (TcpStream, keepalive_lab_server::peers::OnBehalf) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bound");
    let local = socket.local_addr().expect("its address");
    let registration =
        lab.peers()
            .on_behalf(local, client, keepalive_lab_server::peers::Via::Middlebox);
    let stream = within("TCP connect", socket.connect(addr))
        .await
        .expect("connected");
    (stream, registration)
}

impl Client {
    /// A client on a connection made elsewhere (e.g. from a bound address).
    pub fn from_stream(stream: TcpStream) -> Client {
        Client {
            stream,
            buf: Vec::new(),
            sent: 0,
            received: 0,
        }
    }

    /// Opens a new TCP connection to `addr`.
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = within("TCP connect", TcpStream::connect(addr))
            .await
            .expect("connect to the lab");
        Client {
            stream,
            buf: Vec::new(),
            sent: 0,
            received: 0,
        }
    }

    /// Writes `bytes` as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        within("write", self.stream.write_all(bytes))
            .await
            .expect("write to the lab");
        self.sent += bytes.len();
    }

    /// Writes `bytes`, reporting a failure instead of panicking (for writes
    /// to a connection the server may already have closed).
    pub async fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        within("write", self.stream.write_all(bytes)).await?;
        self.sent += bytes.len();
        Ok(())
    }

    /// Writes one request. A `Content-Length` is sent whenever there is a
    /// body or the method is not GET.
    pub async fn send_request(&mut self, method: &str, target: &str, body: &[u8]) {
        self.send_request_with(method, target, &[], body).await;
    }

    /// Writes one request with extra header lines.
    pub async fn send_request_with(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) {
        let bytes = request_bytes_with(method, target, headers, body);
        self.send_raw(&bytes).await;
    }

    /// The client side address of the connection (the server's `peer`).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local address")
    }

    /// Reads more bytes into the buffer; returns how many (0 at EOF).
    async fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 8192];
        let n = within("bytes from the lab", self.stream.read(&mut chunk)).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        self.received += n;
        Ok(n)
    }

    /// Reads until the buffer holds at least `len` bytes.
    async fn fill_to(&mut self, len: usize) {
        while self.buf.len() < len {
            let n = self.fill().await.expect("read from the lab");
            assert!(n > 0, "connection closed in the middle of a response");
        }
    }

    /// Reads until the buffer holds `\r\n` from `from`; returns its position.
    async fn line_end(&mut self, from: usize) -> usize {
        loop {
            if let Some(pos) = find(&self.buf[from..], b"\r\n") {
                return from + pos;
            }
            let n = self.fill().await.expect("read from the lab");
            assert!(n > 0, "connection closed in the middle of a response");
        }
    }

    /// Reads one complete response (head plus `Content-Length` or chunked
    /// body). Bytes after it stay buffered for the next call.
    pub async fn read_response(&mut self) -> Response {
        let head_end = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos + 4;
            }
            let n = self.fill().await.expect("read from the lab");
            assert!(
                n > 0,
                "connection closed before a response head; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("ASCII response head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(
            parts.next(),
            Some("HTTP/1.1"),
            "status line {status_line:?}"
        );
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (name, value) = l.split_once(':').expect("header line with a colon");
                (name.trim().to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let mut chunks = Vec::new();
        let (body, end) = if let Some(len) = get("content-length") {
            let len: usize = len.parse().expect("numeric content-length");
            self.fill_to(head_end + len).await;
            (self.buf[head_end..head_end + len].to_vec(), head_end + len)
        } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut body = Vec::new();
            let mut at = head_end;
            loop {
                let eol = self.line_end(at).await;
                let size_text = String::from_utf8_lossy(&self.buf[at..eol]).into_owned();
                let size_hex = size_text.split(';').next().unwrap_or_default().trim();
                let size = usize::from_str_radix(size_hex, 16).expect("chunk size");
                at = eol + 2;
                if size == 0 {
                    // No trailers are expected: the final CRLF follows.
                    let eol = self.line_end(at).await;
                    at = eol + 2;
                    break;
                }
                self.fill_to(at + size + 2).await;
                chunks.push(size);
                body.extend_from_slice(&self.buf[at..at + size]);
                at += size + 2;
            }
            (body, at)
        } else {
            assert!(
                status < 200 || status == 204 || status == 304,
                "a {status} response without a length is not expected from the lab"
            );
            (Vec::new(), head_end)
        };
        self.buf.drain(..end);
        Response {
            status,
            headers,
            body,
            chunks,
            wire_len: end,
        }
    }

    /// Sends one request and reads its response.
    pub async fn request(&mut self, method: &str, target: &str, body: &[u8]) -> Response {
        self.send_request(method, target, body).await;
        self.read_response().await
    }

    /// `GET target` on this connection.
    pub async fn get(&mut self, target: &str) -> Response {
        self.request("GET", target, b"").await
    }

    /// Reads until the server closes the connection; returns the bytes that
    /// arrived meanwhile. A reset counts as a close.
    pub async fn read_to_close(&mut self) -> Vec<u8> {
        loop {
            match self.fill().await {
                Ok(0) | Err(_) => return std::mem::take(&mut self.buf),
                Ok(_) => {}
            }
        }
    }

    /// Reads until the connection ends; returns the bytes that arrived
    /// meanwhile and whether it ended with a FIN or a reset.
    pub async fn read_until_closed(&mut self) -> (Vec<u8>, Ending) {
        loop {
            match self.fill().await {
                Ok(0) => return (std::mem::take(&mut self.buf), Ending::Eof),
                Err(e) => return (std::mem::take(&mut self.buf), Ending::Error(e.kind())),
                Ok(_) => {}
            }
        }
    }

    /// Whether bytes are waiting to be read right now (without waiting).
    pub fn has_pending_bytes(&self) -> bool {
        let mut probe = [0u8; 1];
        !self.buf.is_empty() || matches!(self.stream.try_read(&mut probe), Ok(n) if n > 0)
    }
}

/// How a connection ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// An orderly close: a read returned 0 bytes (the server's FIN).
    Eof,
    /// A read failed, e.g. with `ConnectionReset` (the server's RST).
    Error(io::ErrorKind),
}

/// Sets the anonymous scope's policy so that the next answer on a connection
/// announces the close `after` names (`max_requests` at request `max`,
/// keep-alive off, or neither), and returns the header lines the request
/// adds itself (`Connection: close` for `client_requested_close`).
pub fn policy_for_close(
    lab: &Lab,
    after: &CloseReason,
    max: u32,
) -> &'static [(&'static str, &'static str)] {
    lab.set_policy(
        &keepalive_lab_server::sessions::Owner::Anonymous,
        &protocol::PolicyPatch {
            max_requests: Some((*after == CloseReason::MaxRequests).then_some(max)),
            keep_alive: Some(*after != CloseReason::KeepAliveOff),
            ..protocol::PolicyPatch::default()
        },
    )
    .expect("a valid patch");
    if *after == CloseReason::ClientRequestedClose {
        &[("Connection", "close")]
    } else {
        &[]
    }
}

/// The bytes of one HTTP/1.1 request.
pub fn request_bytes(method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    request_bytes_with(method, target, &[], body)
}

/// The bytes of one HTTP/1.1 request with extra header lines. No `Host`
/// line unless `headers` has one: the lab answers only its own host names
/// (DNS rebinding), and a request without `Host` cannot be a rebound one.
pub fn request_bytes_with(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut bytes = format!("{method} {target} HTTP/1.1\r\n").into_bytes();
    for (name, value) in headers {
        bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !body.is_empty() || method != "GET" {
        bytes.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    bytes.extend_from_slice(b"\r\n");
    bytes.extend_from_slice(body);
    bytes
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One request on a fresh connection.
pub async fn request_once(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> Response {
    Client::connect(addr)
        .await
        .request(method, target, body)
        .await
}

/// Sends `GET target(i)` for `i` in `0..n`, each on a connection of its
/// own, without reading the answers; returns the clients (to read them, or
/// to keep the requests in flight).
pub async fn send_each(
    addr: SocketAddr,
    n: usize,
    target: impl Fn(usize) -> String,
) -> Vec<Client> {
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        let mut client = Client::connect(addr).await;
        client.send_request("GET", &target(i), b"").await;
        clients.push(client);
    }
    clients
}

/// `GET target` on a fresh connection.
pub async fn get_once(addr: SocketAddr, target: &str) -> Response {
    request_once(addr, "GET", target, b"").await
}

/// `POST /api/release{query}` with `body` on a fresh connection; returns
/// the count. `query` is `""` (the anonymous scope's hangs), `"?session=…"`
/// or `"?key=…"` (everyone's).
pub async fn release(addr: SocketAddr, query: &str, body: &str) -> u64 {
    let target = format!("/api/release{query}");
    let response = request_once(addr, "POST", &target, body.as_bytes()).await;
    assert_eq!(
        response.status,
        200,
        "release {body:?}: {}",
        response.text()
    );
    let value = response.json();
    value["released"]
        .as_u64()
        .unwrap_or_else(|| panic!("release answer has a count: {value}"))
}

/// Every open connection, from `GET /api/connections` with the instructor key.
pub async fn connections(addr: SocketAddr) -> Vec<ConnectionSnapshot> {
    let response = get_once(addr, &format!("/api/connections?key={KEY}")).await;
    assert_eq!(response.status, 200);
    match serde_json::from_slice(&response.body).expect("a ServerEvent") {
        ServerEvent::Snapshot { connections, .. } => connections,
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

/// The connection an event is about, if any.
pub fn conn_of(event: &ServerEvent) -> Option<ConnId> {
    match event {
        ServerEvent::ConnectionOpened { conn, .. }
        | ServerEvent::RequestStarted { conn, .. }
        | ServerEvent::ResponseStarted { conn, .. }
        | ServerEvent::RequestFinished { conn, .. }
        | ServerEvent::ConnectionUpgraded { conn, .. }
        | ServerEvent::ConnectionAttributed { conn, .. }
        | ServerEvent::ConnectionHidden { conn }
        | ServerEvent::ConnectionClosed { conn, .. } => Some(*conn),
        _ => None,
    }
}

/// The `type` tag an event is sent with.
pub fn kind(event: &ServerEvent) -> String {
    let value = serde_json::to_value(event).expect("events serialise");
    value["type"].as_str().unwrap_or_default().to_owned()
}

/// The fields of a `connection_closed` event.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {
    /// Why.
    pub reason: CloseReason,
    /// Bytes read by the server.
    pub bytes_in: u64,
    /// Bytes written by the server.
    pub bytes_out: u64,
    /// Requests carried.
    pub requests: u32,
    /// When the last byte arrived from the client, if any did.
    pub last_in_us: Option<Micros>,
    /// When the last byte was written to the client, if any was.
    pub last_out_us: Option<Micros>,
    /// When the socket was dropped.
    pub at_us: Micros,
}

/// One request as the event stream told it, on the server's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// The connection that carried it.
    pub conn: ConnId,
    /// `request_started.at_us`: its head had been read.
    pub started_us: Micros,
    /// `response_started.at_us` and the status, if a head was produced.
    pub response: Option<(Micros, u16)>,
    /// `request_finished.at_us`.
    pub finished_us: Micros,
    /// How it ended.
    pub outcome: RequestOutcome,
}

/// A WebSocket viewer of `/api/events`.
#[derive(Debug)]
pub struct Viewer {
    /// The socket.
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The connections in the snapshot the server sent first.
    pub snapshot: Vec<ConnectionSnapshot>,
    /// The policy in that snapshot.
    pub config: ServerPolicy,
    /// The listener addresses in that snapshot.
    pub listeners: Vec<String>,
    /// Whose world the snapshot says this is (`None`: the anonymous scope or
    /// the instructor's whole server).
    pub session: Option<SessionId>,
    /// Whether the snapshot says the room's policy is locked.
    pub locked: bool,
    /// Every event received after the snapshot, in order.
    pub seen: Vec<ServerEvent>,
    /// [`Viewer::next_matching`] looks at `seen[cursor..]` first.
    cursor: usize,
    /// The server ended the stream.
    pub ended: bool,
}

impl Viewer {
    /// Connects to `ws://addr/api/events?key=…` (the instructor's view of
    /// everything) and reads the snapshot.
    pub async fn connect(addr: SocketAddr) -> Viewer {
        Viewer::connect_to(addr, &format!("/api/events?key={KEY}")).await
    }

    /// Connects to `ws://addr/api/events` without a key or session: the
    /// anonymous scope's view.
    pub async fn connect_anonymous(addr: SocketAddr) -> Viewer {
        Viewer::connect_to(addr, "/api/events").await
    }

    /// Connects to `ws://addr/api/events?session=…`: one session's view.
    pub async fn connect_session(addr: SocketAddr, session: &str) -> Viewer {
        Viewer::connect_to(addr, &format!("/api/events?session={session}")).await
    }

    /// Connects to `ws://addr{target}` and reads the snapshot.
    pub async fn connect_to(addr: SocketAddr, target: &str) -> Viewer {
        Viewer::connect_to_from(addr, target, None).await
    }

    /// [`Viewer::connect_to`] from a loopback address of its own (`from`,
    /// e.g. 127.0.0.2: another participant's machine).
    pub async fn connect_to_from(
        addr: SocketAddr,
        target: &str,
        from: Option<std::net::IpAddr>,
    ) -> Viewer {
        let stream = match from {
            None => within("TCP connect", TcpStream::connect(addr))
                .await
                .expect("connect to the lab"),
            Some(ip) => connect_from(addr, ip).await,
        };
        Viewer::connect_over(addr, target, stream).await
    }

    /// [`Viewer::connect_to`] over a connection made elsewhere (e.g.
    /// [`forwarded`]: charged to another machine).
    pub async fn connect_over(addr: SocketAddr, target: &str, stream: TcpStream) -> Viewer {
        let url = format!("ws://{addr}{target}");
        let handshake =
            tokio_tungstenite::client_async(url.as_str(), MaybeTlsStream::Plain(stream));
        let (ws, response) = within("the WebSocket handshake", handshake)
            .await
            .unwrap_or_else(|e| panic!("WebSocket handshake with {url}: {e}"));
        assert_eq!(response.status().as_u16(), 101);
        let mut viewer = Viewer {
            ws,
            snapshot: Vec::new(),
            config: ServerPolicy::default(),
            listeners: Vec::new(),
            session: None,
            locked: false,
            seen: Vec::new(),
            cursor: 0,
            ended: false,
        };
        match viewer.read_event().await {
            Some(ServerEvent::Snapshot {
                connections,
                config,
                listeners,
                session,
                locked,
                ..
            }) => {
                viewer.snapshot = connections;
                viewer.config = config;
                viewer.listeners = listeners;
                viewer.session = session;
                viewer.locked = locked;
            }
            other => panic!("the first message must be a snapshot, got {other:?}"),
        }
        viewer
    }

    /// The client address of the viewer's TCP connection.
    pub fn local_addr(&self) -> SocketAddr {
        match self.ws.get_ref() {
            MaybeTlsStream::Plain(tcp) => tcp.local_addr().expect("local address"),
            _ => unreachable!("the tests speak plain ws://"),
        }
    }

    /// The server's id for `other`'s connection, from this viewer's snapshot.
    pub fn conn_of_viewer(&self, other: &Viewer) -> ConnId {
        let peer = other.local_addr().to_string();
        self.snapshot
            .iter()
            .find(|c| c.peer == peer)
            .unwrap_or_else(|| panic!("no connection from {peer} in {:#?}", self.snapshot))
            .conn
    }

    /// The next event from the socket (not recorded), or `None` once the
    /// server closed the stream.
    async fn read_event(&mut self) -> Option<ServerEvent> {
        loop {
            let message = within("a WebSocket message", self.ws.next()).await;
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Some(
                        serde_json::from_str(text.as_str()).unwrap_or_else(|e| {
                            panic!("not a ServerEvent ({e}): {}", text.as_str())
                        }),
                    );
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Binary(b))) => panic!("unexpected binary message: {b:?}"),
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    self.ended = true;
                    return None;
                }
            }
        }
    }

    /// Receives one more event and records it; `None` when the stream ended.
    pub async fn next_event(&mut self) -> Option<ServerEvent> {
        if self.ended {
            return None;
        }
        let event = self.read_event().await?;
        self.seen.push(event.clone());
        Some(event)
    }

    /// The first event after the previous match that satisfies `pred`,
    /// receiving more as needed (bounded).
    pub async fn next_matching(
        &mut self,
        what: &str,
        pred: impl Fn(&ServerEvent) -> bool,
    ) -> ServerEvent {
        loop {
            if let Some(offset) = self.seen[self.cursor..].iter().position(&pred) {
                let index = self.cursor + offset;
                self.cursor = index + 1;
                return self.seen[index].clone();
            }
            if self.next_event().await.is_none() {
                panic!("the event stream ended before {what}; saw {:#?}", self.seen);
            }
        }
    }

    /// Waits for (or finds among the events seen) the close of `conn`.
    pub async fn closed(&mut self, conn: ConnId) -> Closed {
        loop {
            let found = self.seen.iter().find_map(|e| match e {
                ServerEvent::ConnectionClosed {
                    conn: c,
                    reason,
                    bytes_in,
                    bytes_out,
                    requests,
                    last_in_us,
                    last_out_us,
                    at_us,
                } if *c == conn => Some(Closed {
                    reason: reason.clone(),
                    bytes_in: *bytes_in,
                    bytes_out: *bytes_out,
                    requests: *requests,
                    last_in_us: *last_in_us,
                    last_out_us: *last_out_us,
                    at_us: *at_us,
                }),
                _ => None,
            });
            if let Some(closed) = found {
                return closed;
            }
            if self.next_event().await.is_none() {
                panic!(
                    "the event stream ended before {conn} closed; saw {:#?}",
                    self.seen
                );
            }
        }
    }

    /// Waits for (or finds among the events seen) the end of `request`, and
    /// returns what the stream told about it.
    pub async fn timeline(&mut self, request: RequestId) -> Timeline {
        let finished = |e: &ServerEvent| matches!(e, ServerEvent::RequestFinished { request: r, .. } if *r == request);
        while !self.seen.iter().any(finished) {
            if self.next_event().await.is_none() {
                panic!(
                    "the event stream ended before {request} finished; saw {:#?}",
                    self.seen
                );
            }
        }
        let mut started = None;
        let mut response = None;
        let mut end = None;
        for event in &self.seen {
            match event {
                ServerEvent::RequestStarted {
                    request: r,
                    conn,
                    at_us,
                    ..
                } if *r == request => {
                    started = Some((*conn, *at_us));
                }
                ServerEvent::ResponseStarted {
                    request: r,
                    status,
                    at_us,
                    ..
                } if *r == request => {
                    response = Some((*at_us, *status));
                }
                ServerEvent::RequestFinished {
                    request: r,
                    outcome,
                    at_us,
                    ..
                } if *r == request => {
                    end = Some((*at_us, *outcome));
                }
                _ => {}
            }
        }
        let (conn, started_us) =
            started.unwrap_or_else(|| panic!("no request_started for {request}: {:#?}", self.seen));
        let (finished_us, outcome) = end.expect("found above");
        Timeline {
            conn,
            started_us,
            response,
            finished_us,
            outcome,
        }
    }

    /// Whether a `request_started` for `target` is among the events seen so
    /// far (a request the server closed instead of reading has none).
    pub fn saw_started(&self, target: &str) -> bool {
        self.seen
            .iter()
            .any(|e| matches!(e, ServerEvent::RequestStarted { target: t, .. } if t == target))
    }

    /// Waits for (or finds among the events seen) the first
    /// `request_started` whose target is `target`; returns its connection
    /// and request id.
    pub async fn request_started(&mut self, target: &str) -> (ConnId, RequestId) {
        let is_it = |e: &ServerEvent| matches!(e, ServerEvent::RequestStarted { target: t, .. } if t == target);
        loop {
            if let Some(ServerEvent::RequestStarted { conn, request, .. }) =
                self.seen.iter().find(|e| is_it(e))
            {
                return (*conn, *request);
            }
            if self.next_event().await.is_none() {
                panic!(
                    "the event stream ended before {target} started; saw {:#?}",
                    self.seen
                );
            }
        }
    }

    /// Waits for (or finds among the events seen) the `connection_opened`
    /// from the client address `peer`; returns the connection's id.
    pub async fn opened_from(&mut self, peer: SocketAddr) -> ConnId {
        let peer = peer.to_string();
        loop {
            if let Some(ServerEvent::ConnectionOpened { conn, .. }) = self
                .seen
                .iter()
                .find(|e| matches!(e, ServerEvent::ConnectionOpened { peer: p, .. } if *p == peer))
            {
                return *conn;
            }
            if self.next_event().await.is_none() {
                panic!(
                    "the event stream ended before {peer} connected; saw {:#?}",
                    self.seen
                );
            }
        }
    }

    /// Every event seen so far about `conn`, in order.
    pub fn events_for(&self, conn: ConnId) -> Vec<ServerEvent> {
        self.seen
            .iter()
            .filter(|e| conn_of(e) == Some(conn))
            .cloned()
            .collect()
    }

    /// Receives events until the server ends the stream (bounded).
    pub async fn read_until_end(&mut self) {
        while self.next_event().await.is_some() {}
    }

    /// Every `config_changed` seen so far: (policy, whose, locked).
    pub fn config_changes(&self) -> Vec<(ServerPolicy, Option<SessionId>, bool)> {
        self.seen
            .iter()
            .filter_map(|e| match e {
                ServerEvent::ConfigChanged {
                    config,
                    session,
                    locked,
                    ..
                } => Some((config.clone(), session.clone(), *locked)),
                _ => None,
            })
            .collect()
    }

    /// A barrier: sends `/api/fast?{scope}id=barrier-…` on a fresh connection
    /// and waits until this viewer has seen that request finish. Events reach
    /// every viewer in one order, so afterwards the viewer has received
    /// everything the server emitted before it. `scope` must make the request
    /// visible to this viewer: `"session=S&"` for a session viewer, `""` for
    /// an anonymous (same host) or instructor viewer.
    pub async fn barrier(&mut self, addr: SocketAddr, scope: &str) {
        let tag = format!("barrier-{}", self.seen.len());
        let response = get_once(addr, &format!("/api/fast?{scope}id={tag}")).await;
        assert_eq!(response.status, 200, "barrier: {}", response.text());
        self.timeline(response.request_id()).await;
    }

    /// Sends a `ping` and waits for its `pong`: the server has handled every
    /// message this viewer sent before, and the socket is still open.
    pub async fn pong(&mut self) {
        self.send_text(r#"{"type": "ping", "client_time_ms": 0}"#)
            .await;
        self.next_matching("the pong", |e| matches!(e, ServerEvent::Pong { .. }))
            .await;
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: &str) {
        self.send(Message::text(text)).await;
    }

    /// Sends any message.
    pub async fn send(&mut self, message: Message) {
        within("a WebSocket send", self.ws.send(message))
            .await
            .expect("send on the WebSocket");
    }

    /// The next control reply (`pong`, `released` or `error`), skipping the
    /// connection events that may arrive in between.
    pub async fn next_reply(&mut self) -> ServerEvent {
        self.next_matching("a reply to a control message", |e| {
            matches!(
                e,
                ServerEvent::Pong { .. } | ServerEvent::Released { .. } | ServerEvent::Error(_)
            )
        })
        .await
    }

    /// Closes the WebSocket from the client side with a close frame saying
    /// 1000 (normal closure), as the page does, and waits for the server's
    /// close frame and the end of the stream.
    pub async fn close(mut self) {
        let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "".into(),
        };
        let _ = within("a WebSocket close", self.ws.close(Some(frame))).await;
        // Let the server answer the close; the stream then ends.
        while let Ok(Some(Ok(_))) = tokio::time::timeout(LIMIT, self.ws.next()).await {}
    }
}
