//! More than a hundred bad inputs, one table, each on its own connection:
//! malformed HTTP, bad query parameters on every endpoint, bad JSON bodies,
//! bad session and key values, foreign `Host` and `Origin`, bad WebSocket
//! upgrades and control messages. For each, exactly what the lab answers.
//!
//! The lab answers every request it gets with a JSON `{error, hint}` body
//! and its own headers (`X-Conn-Id`...). Some inputs never become a request:
//! hyper's HTTP/1.1 parser refuses them and answers by itself, with an empty
//! body and `connection: close`, before the lab sees anything but the
//! connection. Those cases are marked [`Expect::Hyper`], with the status
//! hyper sends:
//!
//! | status | cases |
//! |---|---|
//! | 400 | garbage request line; text that is not HTTP; NUL in the method, the target or a header value; `Content-Length` not a number, negative, a list (`2, 2`), two different values, or larger than `u64`; `Transfer-Encoding` other than ending in `chunked` (`gzip`, `chunked, gzip`); version `HTTP/2.0` on a request line, `HTTP/3`, `HTTP/1.2`, lowercase `http/1.1`, none at all (HTTP/0.9); a space in a header name, a header line without a colon, a space before the colon, an obs-fold continuation line; bare CR line ends; two spaces or tabs between the parts of the request line; an empty target; a target without a leading `/`, or with a `"`, a control byte or a byte that is not ASCII; a `/` in the method; a request line with a method only; a TLS ClientHello |
//! | 431 | a head over the 16 KiB buffer (a 70 KB URL, a 20 KB header), more than 100 header lines |
//! | none | the HTTP/2 connection preface (`PRI * HTTP/2.0…`): the connection is closed without a byte |

mod common;

use std::net::SocketAddr;

use common::{
    Client, Ending, KEY, Viewer, get_once, issue_session, request_bytes_with, start_server,
};
use keepalive_lab_server::sessions::Owner;
use protocol::{ServerEvent, ServerPolicy};
use tokio::io::AsyncWriteExt as _;
use tokio_tungstenite::tungstenite::Message;

/// What a case sends.
#[derive(Debug, Clone)]
enum Input {
    /// One HTTP/1.1 request built by `request_bytes_with` (no `Host` line
    /// unless given; a `Content-Length` whenever there is a body or the
    /// method is not GET).
    Request {
        method: String,
        target: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Bytes as they are.
    Raw(Vec<u8>),
    /// Bytes, then the client's FIN (a body cut short).
    RawThenFin(Vec<u8>),
    /// A control message on an open `/api/events` WebSocket.
    Ws(Message),
}

/// What the lab (or hyper) must answer.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The lab's JSON `{error, hint}` with this status; `error` contains the
    /// text.
    Json(u16, &'static str),
    /// hyper's own answer before any request exists: this status, an empty
    /// body, `connection: close`, then the connection closes.
    Hyper(u16),
    /// hyper closes the connection without answering.
    HyperSilent,
    /// An `error` event on the WebSocket whose `error` contains the text.
    WsError(&'static str),
}

#[derive(Debug, Clone)]
struct Case {
    name: String,
    input: Input,
    expect: Expect,
}

/// The values cases are built from.
struct Ctx {
    port: u16,
    /// A session this server issued.
    session: String,
}

fn req(name: &str, method: &str, target: &str, expect: Expect) -> Case {
    Case {
        name: name.to_owned(),
        input: Input::Request {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        },
        expect,
    }
}

fn get(name: &str, target: &str, status: u16, error: &'static str) -> Case {
    req(name, "GET", target, Expect::Json(status, error))
}

fn raw(name: &str, bytes: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name: name.to_owned(),
        input: Input::Raw(bytes.into()),
        expect,
    }
}

fn ws(name: &str, message: Message, error: &'static str) -> Case {
    Case {
        name: name.to_owned(),
        input: Input::Ws(message),
        expect: Expect::WsError(error),
    }
}

impl Case {
    fn header(mut self, name: &str, value: &str) -> Case {
        if let Input::Request { headers, .. } = &mut self.input {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    fn body(mut self, bytes: &[u8]) -> Case {
        if let Input::Request { body, .. } = &mut self.input {
            *body = bytes.to_vec();
        }
        self
    }
}

const BAD: u16 = 400;
/// What every unknown-parameter error says.
const UNKNOWN: &str = "does not take a";
const TWICE: &str = "more than once";
const RANGE: &str = "out of range";
const NUMBER: &str = "whole number";
const CHOICE: &str = "not one of the accepted values";

fn malformed_http() -> Vec<Case> {
    use Expect::{Hyper, HyperSilent};
    let many_headers: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    vec![
        raw("garbage request line", "HELLO\r\n\r\n", Hyper(400)),
        raw(
            "text that is not HTTP",
            "this is not http at all\r\n\r\n",
            Hyper(400),
        ),
        raw(
            "NUL in the method",
            &b"G\0T /api/fast HTTP/1.1\r\n\r\n"[..],
            Hyper(400),
        ),
        raw(
            "NUL in the target",
            &b"GET /api/f\0st HTTP/1.1\r\n\r\n"[..],
            Hyper(400),
        ),
        raw(
            "NUL in a header value",
            &b"GET /api/fast HTTP/1.1\r\nX-A: a\0b\r\n\r\n"[..],
            Hyper(400),
        ),
        raw(
            "Content-Length not a number",
            "POST /api/release HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
            Hyper(400),
        ),
        raw(
            "negative Content-Length",
            "POST /api/release HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            Hyper(400),
        ),
        raw(
            "two different Content-Lengths",
            "POST /api/release HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
            Hyper(400),
        ),
        raw(
            "Content-Length as a list",
            "POST /api/release HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\n{}",
            Hyper(400),
        ),
        raw(
            "Content-Length over u64",
            "POST /api/release HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            Hyper(400),
        ),
        raw(
            "unknown Transfer-Encoding",
            "POST /api/release HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            Hyper(400),
        ),
        raw(
            "Transfer-Encoding not ending in chunked",
            "POST /api/release HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
            Hyper(400),
        ),
        raw(
            "HTTP/2.0 on a request line",
            "GET /api/fast HTTP/2.0\r\n\r\n",
            Hyper(400),
        ),
        raw("HTTP/3", "GET /api/fast HTTP/3\r\n\r\n", Hyper(400)),
        raw("HTTP/1.2", "GET /api/fast HTTP/1.2\r\n\r\n", Hyper(400)),
        raw("no version (HTTP/0.9)", "GET /api/fast\r\n\r\n", Hyper(400)),
        raw(
            "lowercase version",
            "GET /api/fast http/1.1\r\n\r\n",
            Hyper(400),
        ),
        raw("method only", "GET\r\n\r\n", Hyper(400)),
        raw(
            "URL larger than the head buffer",
            format!("GET /api/fast?id={} HTTP/1.1\r\n\r\n", "x".repeat(70_000)),
            Hyper(431),
        ),
        raw(
            "header larger than the head buffer",
            format!(
                "GET /api/fast HTTP/1.1\r\nX-Big: {}\r\n\r\n",
                "y".repeat(20_000)
            ),
            Hyper(431),
        ),
        raw(
            "more than 100 headers",
            format!("GET /api/fast HTTP/1.1\r\n{many_headers}\r\n"),
            Hyper(431),
        ),
        raw(
            "space in a header name",
            "GET /api/fast HTTP/1.1\r\nX A: b\r\n\r\n",
            Hyper(400),
        ),
        raw(
            "header line without a colon",
            "GET /api/fast HTTP/1.1\r\nXA\r\n\r\n",
            Hyper(400),
        ),
        raw(
            "space before the colon",
            "GET /api/fast HTTP/1.1\r\nHost : x\r\n\r\n",
            Hyper(400),
        ),
        raw(
            "obs-fold header continuation",
            "GET /api/fast HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n",
            Hyper(400),
        ),
        raw(
            "bare CR line ends",
            "GET /api/fast HTTP/1.1\rX-A: a\r\r",
            Hyper(400),
        ),
        raw(
            "two spaces in the request line",
            "GET  /api/fast HTTP/1.1\r\n\r\n",
            Hyper(400),
        ),
        raw(
            "tabs in the request line",
            "GET\t/api/fast\tHTTP/1.1\r\n\r\n",
            Hyper(400),
        ),
        raw("empty target", "GET  HTTP/1.1\r\n\r\n", Hyper(400)),
        // Found in review: listed here and in api.md.
        raw(
            "a target without a leading slash",
            "GET api/fast HTTP/1.1\r\n\r\n",
            Hyper(400),
        ),
        raw(
            "a double quote in the target",
            "GET /api/fast?id=\"x\" HTTP/1.1\r\n\r\n",
            Hyper(400),
        ),
        raw(
            "a control byte in the target",
            "GET /api/fast?id=\x01 HTTP/1.1\r\n\r\n",
            Hyper(400),
        ),
        raw(
            "a non-ASCII byte in the target",
            b"GET /api/fast?id=\xff HTTP/1.1\r\n\r\n".to_vec(),
            Hyper(400),
        ),
        raw(
            "slash in the method",
            "GE/T /api/fast HTTP/1.1\r\n\r\n",
            Hyper(400),
        ),
        raw(
            "TLS ClientHello on the plain port",
            vec![
                0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
            ],
            Hyper(400),
        ),
        raw(
            "HTTP/2 preface on the HTTP/1.1 port",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            HyperSilent,
        ),
        // Parsed by hyper, refused by the lab.
        raw(
            "bad chunk size in a chunked body",
            "POST /api/release HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
            Expect::Json(BAD, "could not be read"),
        ),
        Case {
            name: "body shorter than its Content-Length, then FIN".into(),
            input: Input::RawThenFin(
                b"POST /api/release HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}".to_vec(),
            ),
            expect: Expect::Json(BAD, "could not be read"),
        },
        raw(
            "a 100-character method",
            format!("{} /api/fast HTTP/1.1\r\n\r\n", "A".repeat(100)),
            Expect::Json(405, "is not accepted"),
        ),
        raw(
            "CONNECT with an authority target",
            "CONNECT 127.0.0.1:80 HTTP/1.1\r\n\r\n",
            // Its target is the authority it asks for: not the lab's.
            Expect::Json(403, "does not answer to the host `127.0.0.1:80`"),
        ),
        raw(
            "raw UTF-8 in the path",
            "GET /api/f\u{e4}st HTTP/1.1\r\n\r\n",
            Expect::Json(404, "no endpoint"),
        ),
        raw(
            "Content-Length of 2^64 - 1",
            "POST /api/fast HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n",
            Expect::Hyper(431),
        ),
        raw(
            "Host that is not UTF-8",
            &b"GET /api/fast HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n"[..],
            // Named as far as it can be (found in review: an empty name).
            Expect::Json(403, "does not answer to the host `\u{fffd}\u{fffd}`"),
        ),
        req(
            "release body over 64 KiB",
            "POST",
            "/api/release",
            Expect::Json(413, "could not be read"),
        )
        .body(&vec![b' '; 64 * 1024 + 1]),
        req(
            "config body over 64 KiB",
            "PUT",
            "/api/config",
            Expect::Json(413, "could not be read"),
        )
        .body(&vec![b' '; 70_000]),
    ]
}

fn bad_parameters(ctx: &Ctx) -> Vec<Case> {
    let long_tag = "t".repeat(129);
    vec![
        // /api/fast
        get("fast: unknown parameter", "/api/fast?ms=1", BAD, UNKNOWN),
        get(
            "fast: next not a choice",
            "/api/fast?next=drop",
            BAD,
            CHOICE,
        ),
        get(
            "fast: next in capitals",
            "/api/fast?next=DROP_FIN",
            BAD,
            CHOICE,
        ),
        get(
            "fast: next twice",
            "/api/fast?next=drop_fin&next=drop_rst",
            BAD,
            TWICE,
        ),
        get("fast: empty id", "/api/fast?id=", BAD, "1 to 128"),
        get(
            "fast: id over 128",
            &format!("/api/fast?id={long_tag}"),
            BAD,
            "1 to 128",
        ),
        get("fast: id twice", "/api/fast?id=a&id=b", BAD, TWICE),
        get(
            "fast: the key is taken, an unknown parameter beside it is not",
            &format!("/api/fast?key={KEY}&x=1"),
            BAD,
            UNKNOWN,
        ),
        // /api/slow
        get("slow: ms not a number", "/api/slow?ms=abc", BAD, NUMBER),
        get("slow: negative ms", "/api/slow?ms=-1", BAD, NUMBER),
        get("slow: ms over 120 s", "/api/slow?ms=120001", BAD, RANGE),
        get("slow: ms in exponent form", "/api/slow?ms=1e3", BAD, NUMBER),
        get("slow: ms in hex", "/api/slow?ms=0x10", BAD, NUMBER),
        get(
            "slow: ms with a plus sign",
            "/api/slow?ms=%2B5",
            BAD,
            NUMBER,
        ),
        get("slow: ms with a space", "/api/slow?ms=%205", BAD, NUMBER),
        get(
            "fast: id not UTF-8",
            "/api/fast?id=%ff",
            BAD,
            "`id` is not UTF-8",
        ),
        get(
            "drip: bytes not UTF-8",
            "/api/drip?bytes=%C3",
            BAD,
            "`bytes` is not UTF-8",
        ),
        get(
            "fast: a name not UTF-8",
            "/api/fast?%ff=1",
            BAD,
            "not UTF-8",
        ),
        get(
            "slow: ms over u64",
            "/api/slow?ms=99999999999999999999999",
            BAD,
            NUMBER,
        ),
        get("slow: empty ms", "/api/slow?ms=", BAD, NUMBER),
        get("slow: no ms", "/api/slow", BAD, "needs a `ms`"),
        get(
            "slow: phase not a choice",
            "/api/slow?ms=1&phase=middle",
            BAD,
            CHOICE,
        ),
        get(
            "slow: phase in capitals",
            "/api/slow?ms=1&phase=HEADERS",
            BAD,
            CHOICE,
        ),
        get("slow: ms twice", "/api/slow?ms=1&ms=1", BAD, TWICE),
        // /api/hang
        get("hang: max_ms zero", "/api/hang?max_ms=0", BAD, RANGE),
        get(
            "hang: max_ms over the cap",
            "/api/hang?max_ms=120001",
            BAD,
            RANGE,
        ),
        get(
            "hang: max_ms not a number",
            "/api/hang?max_ms=soon",
            BAD,
            NUMBER,
        ),
        get(
            "hang: unknown parameter",
            "/api/hang?for=ever",
            BAD,
            UNKNOWN,
        ),
        get("hang: empty id", "/api/hang?id=", BAD, "1 to 128"),
        // /api/drip
        get(
            "drip: mode not a choice",
            "/api/drip?mode=flood",
            BAD,
            CHOICE,
        ),
        get("drip: zero bytes", "/api/drip?bytes=0", BAD, RANGE),
        get("drip: over 1 MiB", "/api/drip?bytes=1048577", BAD, RANGE),
        get("drip: zero chunks", "/api/drip?chunks=0", BAD, RANGE),
        get(
            "drip: over 1000 chunks",
            "/api/drip?chunks=1001",
            BAD,
            RANGE,
        ),
        get(
            "drip: more chunks than bytes",
            "/api/drip?bytes=5&chunks=10",
            BAD,
            "cannot be cut",
        ),
        get(
            "drip: interval over 120 s",
            "/api/drip?interval_ms=120001",
            BAD,
            RANGE,
        ),
        get(
            "drip: longer than 120 s in all",
            "/api/drip?bytes=1000&chunks=1000&interval_ms=200",
            BAD,
            "longer than 120000 ms",
        ),
        get(
            "drip: heartbeat every 0 ms",
            "/api/drip?mode=heartbeat&interval_ms=0",
            BAD,
            "at least 1",
        ),
        get(
            "drip: heartbeat for 0 ms",
            "/api/drip?mode=heartbeat&interval_ms=10&duration_ms=0",
            BAD,
            RANGE,
        ),
        get(
            "drip: a heartbeat of more beats than a drip has chunks",
            "/api/drip?mode=heartbeat&interval_ms=119&duration_ms=120000",
            BAD,
            "1008 beats, more than 1000",
        ),
        get(
            "drip: heartbeat over 120 s",
            "/api/drip?mode=heartbeat&interval_ms=10&duration_ms=120001",
            BAD,
            RANGE,
        ),
        // /api/close
        get("close: no mode", "/api/close", BAD, "needs a `mode`"),
        get(
            "close: mode not a choice",
            "/api/close?mode=boom",
            BAD,
            CHOICE,
        ),
        get(
            "close: mode in capitals",
            "/api/close?mode=FIN",
            BAD,
            CHOICE,
        ),
        get(
            "close: mode twice",
            "/api/close?mode=rst&mode=fin",
            BAD,
            TWICE,
        ),
        get("close: empty mode", "/api/close?mode=", BAD, CHOICE),
        // /api/sse
        get(
            "sse: interval under 100 ms",
            "/api/sse?interval_ms=99",
            BAD,
            RANGE,
        ),
        get(
            "sse: interval over 60 s",
            "/api/sse?interval_ms=60001",
            BAD,
            RANGE,
        ),
        get("sse: zero events", "/api/sse?count=0", BAD, RANGE),
        get("sse: over 10000 events", "/api/sse?count=10001", BAD, RANGE),
        get(
            "sse: count not a number",
            "/api/sse?count=many",
            BAD,
            NUMBER,
        ),
        get(
            "sse: longer than 120 s",
            "/api/sse?interval_ms=1000&count=122",
            BAD,
            "longer than 120000 ms",
        ),
        // The API's own endpoints.
        req(
            "sessions: unknown parameter",
            "POST",
            "/api/sessions?x=1",
            Expect::Json(BAD, UNKNOWN),
        ),
        get("sessions: GET", "/api/sessions", 405, "is not accepted"),
        get("lessons: any parameter", "/api/lessons?x=1", BAD, UNKNOWN),
        req(
            "lessons: POST",
            "POST",
            "/api/lessons",
            Expect::Json(405, "is not accepted"),
        ),
        req(
            "release: unknown parameter",
            "POST",
            "/api/release?all=1",
            Expect::Json(BAD, UNKNOWN),
        ),
        get("release: GET", "/api/release", 405, "is not accepted"),
        get(
            "connections: unknown parameter",
            "/api/connections?x=1",
            BAD,
            UNKNOWN,
        ),
        req(
            "connections: PUT",
            "PUT",
            "/api/connections",
            Expect::Json(405, "is not accepted"),
        ),
        get("config: unknown parameter", "/api/config?x=1", BAD, UNKNOWN),
        req(
            "config: POST",
            "POST",
            "/api/config",
            Expect::Json(405, "is not accepted"),
        )
        .body(b"{}"),
        req(
            "config: DELETE",
            "DELETE",
            "/api/config",
            Expect::Json(405, "is not accepted"),
        ),
        get(
            "room: unknown parameter, with the key",
            &format!("/api/room?key={KEY}&x=1"),
            BAD,
            UNKNOWN,
        ),
        req(
            "room: DELETE",
            "DELETE",
            &format!("/api/room?key={KEY}"),
            Expect::Json(405, "is not accepted"),
        ),
        get("events: unknown parameter", "/api/events?x=1", BAD, UNKNOWN),
        get(
            "events: plain GET without an upgrade",
            "/api/events",
            BAD,
            "is a WebSocket",
        ),
        req(
            "events: POST",
            "POST",
            "/api/events",
            Expect::Json(405, "is not accepted"),
        ),
        get("unknown endpoint", "/api/nope", 404, "no endpoint"),
        get("below an endpoint", "/api/slow/extra", 404, "no endpoint"),
        req(
            "unknown endpoint, DELETE",
            "DELETE",
            "/api/nope",
            Expect::Json(404, "no endpoint"),
        ),
        get(
            "session twice",
            &format!("/api/fast?session={0}&session={0}", ctx.session),
            BAD,
            TWICE,
        ),
    ]
}

fn bad_bodies() -> Vec<Case> {
    let release = |name: &str, body: &[u8], error: &'static str| {
        req(name, "POST", "/api/release", Expect::Json(BAD, error)).body(body)
    };
    let config = |name: &str, body: &[u8], error: &'static str| {
        req(name, "PUT", "/api/config", Expect::Json(BAD, error)).body(body)
    };
    let room = |name: &str, body: &[u8], error: &'static str| {
        req(
            name,
            "PUT",
            &format!("/api/room?key={KEY}"),
            Expect::Json(BAD, error),
        )
        .body(body)
    };
    vec![
        release("release: not JSON", b"not json", "JSON object"),
        release("release: an array", b"[1]", "JSON object"),
        release("release: null", b"null", "JSON object"),
        release("release: cut short", b"{", "not understood"),
        release("release: unknown field", br#"{"nope":1}"#, "not understood"),
        release(
            "release: request as text",
            br#"{"request":"one"}"#,
            "not understood",
        ),
        release(
            "release: negative request",
            br#"{"request":-1}"#,
            "not understood",
        ),
        release("release: id as a number", br#"{"id":5}"#, "not understood"),
        release(
            "release: request and id",
            br#"{"request":1,"id":"x"}"#,
            "not both",
        ),
        release("release: not UTF-8", b"{\"id\":\"\xff\"}", "not understood"),
        config("config: cut short", b"{", "not understood"),
        config("config: unknown field", br#"{"idle":1}"#, "unknown field"),
        config(
            "config: keep_alive as a number",
            br#"{"keep_alive":1}"#,
            "invalid type",
        ),
        config("config: an array", b"[]", "JSON object"),
        config(
            "config: idle timeout under 100 ms",
            br#"{"idle_timeout_ms":1}"#,
            RANGE,
        ),
        config("config: max_requests zero", br#"{"max_requests":0}"#, RANGE),
        config(
            "config: idle timeout null",
            br#"{"idle_timeout_ms":null}"#,
            "invalid type",
        ),
        config(
            "config: tcp_keepalive half given",
            br#"{"tcp_keepalive":{"idle_s":1}}"#,
            "interval_s",
        ),
        config(
            "config: duplicate field",
            br#"{"keep_alive":true,"keep_alive":false}"#,
            "duplicate field",
        ),
        config(
            "config: not UTF-8",
            b"{\"keep_alive\": \"\xff\"}",
            "not understood",
        ),
        room(
            "room: policy_locked as text",
            br#"{"policy_locked":"yes"}"#,
            "not understood",
        ),
        room(
            "room: unknown field",
            br#"{"locked":true}"#,
            "not understood",
        ),
        room("room: an array", b"[true]", "JSON object"),
        room("room: cut short", b"{", "not understood"),
    ]
}

fn bad_credentials_and_origins(ctx: &Ctx) -> Vec<Case> {
    let port = ctx.port;
    let forged = "s-00000000000000000000000000000000";
    let too_long = "x".repeat(65);
    vec![
        get(
            "session with a space",
            "/api/fast?session=a%20b",
            BAD,
            "session id",
        ),
        get("empty session", "/api/fast?session=", BAD, "session id"),
        get(
            "session over 64 characters",
            &format!("/api/fast?session={too_long}"),
            BAD,
            "session id",
        ),
        get(
            "session not ASCII",
            "/api/fast?session=%C3%A4",
            BAD,
            "session id",
        ),
        get(
            "session with a slash",
            "/api/hang?session=a%2Fb",
            BAD,
            "session id",
        ),
        get(
            "forged session on fast",
            &format!("/api/fast?session={forged}"),
            403,
            "not issued",
        ),
        get(
            "forged session on hang",
            &format!("/api/hang?session={forged}"),
            403,
            "not issued",
        ),
        get(
            "forged session on events",
            &format!("/api/events?session={forged}"),
            403,
            "not issued",
        ),
        req(
            "forged session on release",
            "POST",
            &format!("/api/release?session={forged}"),
            Expect::Json(403, "not issued"),
        ),
        get(
            "forged session on connections",
            &format!("/api/connections?session={forged}"),
            403,
            "not issued",
        ),
        get(
            "forged session on a page file",
            &format!("/index.html?session={forged}"),
            403,
            "not issued",
        ),
        get(
            "empty key",
            "/api/connections?key=",
            403,
            "not this server's instructor key",
        ),
        get(
            "wrong key",
            "/api/connections?key=not-the-key",
            403,
            "not this server's instructor key",
        ),
        get(
            "key twice",
            &format!("/api/config?key={KEY}&key={KEY}"),
            BAD,
            TWICE,
        ),
        get(
            "wrong key on the room",
            "/api/room?key=not-the-key",
            403,
            "not this server's instructor key",
        ),
        get(
            "no key on the room",
            "/api/room",
            403,
            "needs the instructor key",
        ),
        get(
            "wrong bearer token",
            "/api/connections",
            403,
            "not this server's instructor key",
        )
        .header("Authorization", "Bearer not-the-key"),
        get(
            "bearer token: the key and more",
            "/api/connections",
            403,
            "not this server's instructor key",
        )
        .header("Authorization", &format!("Bearer {KEY}x")),
        get(
            "foreign Host",
            "/api/fast",
            403,
            "does not answer to the host",
        )
        .header("Host", &format!("evil.example:{port}")),
        get(
            "Host with another port",
            "/api/fast",
            403,
            "does not answer to the host",
        )
        .header("Host", "127.0.0.1:1"),
        // An absolute-form target names the host the request is for, and
        // `Host` is ignored (RFC 9112 §3.2.2; found in review: the lab's
        // `Host` beside `http://evil.example/` was served).
        raw(
            "absolute-form target at a foreign host",
            format!("GET http://evil.example/api/fast HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"),
            Expect::Json(403, "does not answer to the host `evil.example`"),
        ),
        get(
            "Host without a port",
            "/api/fast",
            403,
            "does not answer to the host",
        )
        .header("Host", "127.0.0.1"),
        get(
            "Host with a bad port",
            "/api/fast",
            403,
            "does not answer to the host",
        )
        .header("Host", "127.0.0.1:80x"),
        get("foreign Origin", "/api/fast", 403, "are refused")
            .header("Origin", "http://evil.example"),
        get("null Origin", "/api/fast", 403, "are refused").header("Origin", "null"),
        get("Origin with a path", "/api/fast", 403, "are refused")
            .header("Origin", &format!("http://127.0.0.1:{port}/x")),
        get("Origin on another port", "/api/fast", 403, "are refused")
            .header("Origin", "http://localhost:1"),
        req(
            "foreign Origin on release",
            "POST",
            "/api/release",
            Expect::Json(403, "are refused"),
        )
        .header("Origin", "http://evil.example"),
        websocket_upgrade(
            "foreign Origin on the WebSocket",
            &[("Origin", "http://evil.example")],
            Expect::Json(403, "are refused"),
        ),
    ]
}

/// `GET /api/events` asking for an upgrade, with `extra` headers replacing
/// or adding to the usual ones.
fn websocket_upgrade(name: &str, extra: &[(&str, &str)], expect: Expect) -> Case {
    let mut headers = vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    for (name, value) in extra {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if !value.is_empty() {
            headers.push((name, value));
        }
    }
    let mut case = req(name, "GET", "/api/events", expect);
    for (name, value) in headers {
        case = case.header(name, value);
    }
    case
}

fn bad_websocket() -> Vec<Case> {
    let upgrade_error = Expect::Json(BAD, "is a WebSocket");
    vec![
        websocket_upgrade(
            "upgrade without a key",
            &[("Sec-WebSocket-Key", "")],
            upgrade_error,
        ),
        websocket_upgrade(
            "upgrade with version 8",
            &[("Sec-WebSocket-Version", "8")],
            upgrade_error,
        ),
        websocket_upgrade("upgrade to h2c", &[("Upgrade", "h2c")], upgrade_error),
        websocket_upgrade(
            "upgrade without Connection: Upgrade",
            &[("Connection", "keep-alive")],
            upgrade_error,
        ),
        ws(
            "control: not JSON",
            Message::text("not json"),
            "not understood",
        ),
        ws("control: empty", Message::text(""), "not understood"),
        ws(
            "control: JSON null",
            Message::text("null"),
            "not understood",
        ),
        ws("control: an array", Message::text("[]"), "not understood"),
        ws(
            "control: unknown type",
            Message::text(r#"{"type":"jump"}"#),
            "not understood",
        ),
        ws(
            "control: no type",
            Message::text(r#"{"request":1}"#),
            "not understood",
        ),
        ws(
            "control: ping without a time",
            Message::text(r#"{"type":"ping"}"#),
            "not understood",
        ),
        ws(
            "control: ping time as text",
            Message::text(r#"{"type":"ping","client_time_ms":"soon"}"#),
            "not understood",
        ),
        ws(
            "control: release with an unknown field",
            Message::text(r#"{"type":"release","everything":true}"#),
            "not understood",
        ),
        ws(
            "control: release request as text",
            Message::text(r#"{"type":"release","request":"x"}"#),
            "not understood",
        ),
        ws(
            "control: set_config without config",
            Message::text(r#"{"type":"set_config"}"#),
            "not understood",
        ),
        ws(
            "control: set_config unknown field",
            Message::text(r#"{"type":"set_config","config":{"idle":1}}"#),
            "not understood",
        ),
        ws(
            "control: set_config null keep_alive",
            Message::text(r#"{"type":"set_config","config":{"keep_alive":null}}"#),
            "not understood",
        ),
        ws(
            "control: set_config out of range",
            Message::text(r#"{"type":"set_config","config":{"idle_timeout_ms":1}}"#),
            RANGE,
        ),
        ws(
            "control: binary frame",
            Message::binary(vec![1_u8, 2, 3]),
            "binary frames",
        ),
    ]
}

/// Every case, in the order they run.
fn cases(ctx: &Ctx) -> Vec<Case> {
    let mut all = malformed_http();
    all.extend(bad_parameters(ctx));
    all.extend(bad_bodies());
    all.extend(bad_credentials_and_origins(ctx));
    all.extend(bad_websocket());
    all
}

/// Sends one HTTP case on a fresh connection and checks the answer.
async fn check_http(addr: SocketAddr, case: &Case) {
    let name = &case.name;
    let mut client = Client::connect(addr).await;
    match &case.input {
        Input::Request {
            method,
            target,
            headers,
            body,
        } => {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            // The server may answer (and close) before a large body is in.
            let _ = client
                .try_send_raw(&request_bytes_with(method, target, &headers, body))
                .await;
        }
        Input::Raw(bytes) => {
            let _ = client.try_send_raw(bytes).await;
        }
        Input::RawThenFin(bytes) => {
            client.send_raw(bytes).await;
            common::within("shutdown", client.stream.shutdown())
                .await
                .expect("half-close");
        }
        Input::Ws(_) => unreachable!("WebSocket cases go over the viewer"),
    }
    match case.expect {
        Expect::Json(status, error) => {
            let response = client.read_response().await;
            assert_eq!(response.status, status, "{name}: {}", response.text());
            let body = response.error_body();
            assert!(
                body.error.contains(error),
                "{name}: the error should say {error:?}: {body:?}"
            );
            assert!(
                response.header(protocol::headers::CONN_ID).is_some(),
                "{name}: answered (and recorded) by the lab: {response:?}"
            );
        }
        Expect::Hyper(status) => {
            let (bytes, ending) = client.read_until_closed().await;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let (head, body) = text
                .split_once("\r\n\r\n")
                .unwrap_or_else(|| panic!("{name}: a response head, got {text:?}"));
            let mut lines = head.lines();
            let status_line = lines.next().unwrap_or_default();
            assert!(
                status_line.starts_with(&format!("HTTP/1.1 {status} ")),
                "{name}: {status_line:?}"
            );
            let headers: Vec<String> = lines.map(str::to_ascii_lowercase).collect();
            assert!(
                headers.contains(&"connection: close".to_owned()),
                "{name}: {headers:?}"
            );
            assert!(
                headers.contains(&"content-length: 0".to_owned()),
                "{name}: {headers:?}"
            );
            assert!(
                !headers
                    .iter()
                    .any(|h| h.starts_with(protocol::headers::CONN_ID)),
                "{name}: hyper's answer, not the lab's: {headers:?}"
            );
            assert!(body.is_empty(), "{name}: {body:?}");
            assert_eq!(ending, Ending::Eof, "{name}");
        }
        Expect::HyperSilent => {
            let (bytes, _) = client.read_until_closed().await;
            assert!(
                bytes.is_empty(),
                "{name}: {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Expect::WsError(_) => unreachable!("an HTTP case"),
    }
}

#[tokio::test]
async fn more_than_a_hundred_bad_inputs_get_exact_answers_and_the_server_keeps_serving() {
    let (addr, lab) = start_server().await;
    let ctx = Ctx {
        port: addr.port(),
        session: issue_session(addr).await,
    };
    let cases = cases(&ctx);
    assert!(cases.len() >= 100, "{} cases", cases.len());
    let hyper = cases
        .iter()
        .filter(|c| matches!(c.expect, Expect::Hyper(_) | Expect::HyperSilent))
        .count();
    println!(
        "{} bad inputs, {hyper} answered by hyper itself",
        cases.len()
    );
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "every case has its own name");

    let mut watcher = Viewer::connect(addr).await;
    let mut viewer = Viewer::connect_anonymous(addr).await;
    for case in &cases {
        match (&case.input, case.expect) {
            (Input::Ws(message), Expect::WsError(error)) => {
                viewer.send(message.clone()).await;
                match viewer.next_reply().await {
                    ServerEvent::Error(body) => {
                        assert!(
                            body.error.contains(error),
                            "{}: the error should say {error:?}: {body:?}",
                            case.name
                        );
                        assert!(!body.hint.is_empty(), "{}", case.name);
                    }
                    other => panic!("{}: expected an error, got {other:?}", case.name),
                }
            }
            _ => check_http(addr, case).await,
        }
    }

    // hyper's refusals are on the record as connections that carried no
    // request: opened, then closed.
    let mut refused = Client::connect(addr).await;
    let conn = watcher.opened_from(refused.local_addr()).await;
    refused.send_raw(b"HELLO\r\n\r\n").await;
    refused.read_until_closed().await;
    let closed = watcher.closed(conn).await;
    assert_eq!(closed.requests, 0, "{closed:?}");
    assert_eq!(closed.reason.kind(), "error", "{closed:?}");

    // Nothing any case sent changed anything.
    assert!(lab.hangs().is_empty());
    assert_eq!(lab.policy(&Owner::Anonymous), ServerPolicy::default());
    assert_eq!(lab.sessions().defaults(), ServerPolicy::default());
    assert!(!lab.sessions().locked());
    assert_eq!(lab.sessions().count(), 1, "no session was made up");
    // And the server still serves, over HTTP and the WebSocket.
    let mut client = Client::connect(addr).await;
    let fast = client.get("/api/fast?id=after-the-bad-inputs").await;
    assert_eq!(fast.status, 200);
    assert_eq!(
        fast.json(),
        serde_json::json!({"endpoint": "fast", "id": "after-the-bad-inputs"})
    );
    assert_eq!(get_once(addr, "/api/fast").await.status, 200);
    viewer
        .send_text(r#"{"type":"ping","client_time_ms":5}"#)
        .await;
    assert!(matches!(
        viewer.next_reply().await,
        ServerEvent::Pong { .. }
    ));
}
