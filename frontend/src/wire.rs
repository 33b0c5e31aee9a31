//! The page's JSON, read and written without serde's derived code.
//!
//! The wire types are `protocol`'s (serde derives them for the server and
//! the tests); this page only reads them. serde's derived `Deserialize`, and
//! above all its internally tagged enums (`{"type": …}`, `{"kind": …}`), which
//! buffer every event in a generic tree and then decode each variant from it,
//! were about a third of the page's WebAssembly (issue 14). Here a small JSON
//! parser builds one [`Json`] tree and [`FromJson`] reads each type from it:
//! the same JSON, the same values, the same rules as serde's derive (a field
//! marked `#[serde(default)]` may be absent, an absent `Option` is `None`,
//! unknown fields are ignored except where the type denies them). The host
//! tests decode every documented example both ways and compare. The few
//! messages the page sends ([`ClientMessage`], [`RoomPatch`]) are written by
//! [`to_string`], checked against `serde_json::to_value` the same way.

use protocol::{
    AbortReason, AgentEvent, AgentOptions, AgentRequestSpec, AgentTarget, ClientMessage, CloseHow,
    CloseMode, CloseReason, ConnId, ConnectionSnapshot, ErrorBody, FinishReason, FramingRule,
    FreeOutcome, Initiator, LessonReport, MappingId, MiddleboxEvent, MiddleboxPatch,
    MiddleboxSettings, MiddleboxView, OnExpiry, Participant, Party, PolicyPatch, Preset, RaceClose,
    RefreshCause, RequestEvent, RequestId, RequestOutcome, RequestSnapshot, RoomPatch, RoomState,
    Scheduling, ServerEvent, ServerPolicy, SessionGrant, SessionId, Side, SocketCloseReason,
    SocketEvent, TcpKeepalive, TimeoutSource, UpgradeRole,
};

use std::cell::Cell;

type R<T> = Result<T, String>;

/// A parsed JSON value. Integers keep all their digits (`at_us` is a `u64`).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// A non-negative integer.
    Int(u64),
    /// A negative integer.
    Neg(i64),
    /// A number with a fraction or an exponent.
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    /// Members in their order.
    Obj(Vec<(String, Json)>),
}

/// Reads `T` from JSON text.
pub fn from_str<T: FromJson>(text: &str) -> R<T> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("trailing characters"));
    }
    let cx = Cx(Cell::new(None));
    let t = T::read(&v, &cx);
    match cx.0.take() {
        Some(e) => Err(e),
        None => Ok(t),
    }
}

/// A JSON number with a fraction or an exponent. In the browser, the
/// engine's own `parseFloat` (core's correctly rounded parser brings about
/// 10 KB of tables to the page); the same value either way.
#[cfg(target_arch = "wasm32")]
fn parse_float(text: &str) -> Option<f64> {
    let x = js_sys::Number::parse_float(text);
    (!x.is_nan()).then_some(x)
}

#[cfg(not(target_arch = "wasm32"))]
fn parse_float(text: &str) -> Option<f64> {
    text.parse().ok()
}

/// Deeper than any message the lab sends; bounds the parser's recursion.
const MAX_DEPTH: u32 = 64;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        format!("{what} at byte {}", self.i)
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> R<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(match c {
                b':' => "expected `:`",
                b'"' => "expected a string",
                _ => "expected `,` or a closing bracket",
            }))
        }
    }

    fn word(&mut self, w: &str, v: Json) -> R<Json> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(v)
        } else {
            Err(self.err("expected a value"))
        }
    }

    fn value(&mut self, depth: u32) -> R<Json> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                let mut members = Vec::new();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(members));
                }
                loop {
                    let key = self.string()?;
                    self.eat(b':')?;
                    members.push((key, self.value(depth + 1)?));
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        return Ok(Json::Obj(members));
                    }
                    self.eat(b',')?;
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.peek() == Some(b']') {
                        self.i += 1;
                        return Ok(Json::Arr(items));
                    }
                    self.eat(b',')?;
                }
            }
            Some(b'"') => self.string().map(Json::Str),
            Some(b't') => self.word("true", Json::Bool(true)),
            Some(b'f') => self.word("false", Json::Bool(false)),
            Some(b'n') => self.word("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            None => Err(self.err("unexpected end")),
            Some(_) => Err(self.err("expected a value")),
        }
    }

    fn number(&mut self) -> R<Json> {
        let start = self.i;
        let mut float = false;
        while let Some(&c) = self.s.get(self.i) {
            match c {
                b'0'..=b'9' | b'-' | b'+' => {}
                b'.' | b'e' | b'E' => float = true,
                _ => break,
            }
            self.i += 1;
        }
        // Only ASCII bytes were taken, so this is a char boundary.
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
        let bad = || format!("invalid number at byte {start}");
        if float {
            parse_float(text).map(Json::Float).ok_or_else(bad)
        } else if text.starts_with('-') {
            text.parse().map(Json::Neg).map_err(|_| bad())
        } else {
            text.parse().map(Json::Int).map_err(|_| bad())
        }
    }

    fn hex4(&mut self) -> R<u32> {
        let digits = self.s.get(self.i..self.i + 4).ok_or("unexpected end")?;
        let mut n = 0;
        for &d in digits {
            n = n * 16
                + (d as char)
                    .to_digit(16)
                    .ok_or_else(|| self.err("bad \\u escape"))?;
        }
        self.i += 4;
        Ok(n)
    }

    fn string(&mut self) -> R<String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.i).ok_or("unterminated string")?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("unterminated string")?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let mut n = self.hex4()?;
                            if (0xD800..0xDC00).contains(&n) && self.s[self.i..].starts_with(b"\\u")
                            {
                                self.i += 2;
                                let low = self.hex4()?;
                                n = 0x10000
                                    + ((n - 0xD800) << 10)
                                    + (low.wrapping_sub(0xDC00) & 0x3ff);
                            }
                            char::from_u32(n).ok_or_else(|| self.err("bad \\u escape"))?
                        }
                        _ => return Err(self.err("bad escape")),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("invalid UTF-8"))
    }
}

/// The first error met while reading, if any. Reading goes on after an
/// error with placeholder values (and `from_str` then returns the error):
/// no early return, so no code to drop half-built values on every field.
pub struct Cx(Cell<Option<String>>);

impl Cx {
    fn fail(&self, message: String) {
        let first = self.0.take().unwrap_or(message);
        self.0.set(Some(first));
    }
}

/// A type this page reads from the server's JSON.
pub trait FromJson: Sized {
    /// Reads `v`; on an error, records it in `cx` and returns a placeholder.
    fn read(v: &Json, cx: &Cx) -> Self;
    /// The value of an absent field: `None` for an `Option`, else missing.
    fn absent() -> Option<Self> {
        None
    }
}

fn expected(cx: &Cx, what: &str) {
    cx.fail(format!("invalid type, expected {what}"));
}

impl Json {
    fn fields<'a>(&'a self, cx: &'a Cx) -> Fields<'a> {
        match self {
            Json::Obj(m) => Fields(m, cx),
            _ => {
                expected(cx, "an object");
                Fields(&[], cx)
            }
        }
    }

    fn text(&self, cx: &Cx) -> &str {
        match self {
            Json::Str(s) => s,
            _ => {
                expected(cx, "a string");
                ""
            }
        }
    }
}

/// An object's members, read by name.
struct Fields<'a>(&'a [(String, Json)], &'a Cx);

impl Fields<'_> {
    #[inline(never)]
    fn find(&self, name: &str) -> Option<&Json> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// A field; absent is an error unless `T` is an `Option`. This is
    /// instantiated for every field type the page reads (49 of them), so
    /// everything that need not know `T` is in [`Fields::missing`].
    #[inline(never)]
    fn get<T: FromJson>(&self, name: &str) -> T {
        let found = self.find(name);
        if found.is_none()
            && let Some(absent) = T::absent()
        {
            return absent;
        }
        T::read(found.unwrap_or_else(|| self.missing(name)), self.1)
    }

    /// Records a missing field; `null` to read a placeholder from.
    #[inline(never)]
    fn missing(&self, name: &str) -> &'static Json {
        static NULL: Json = Json::Null;
        self.1.fail(format!("missing field `{name}`"));
        &NULL
    }

    /// A `#[serde(default)]` field: absent gives `default`.
    #[inline(never)]
    fn or<T: FromJson>(&self, name: &str, default: T) -> T {
        match self.find(name) {
            Some(v) => T::read(v, self.1),
            None => default,
        }
    }

    /// A `#[serde(default)]` field of a `Default` type.
    fn or_default<T: FromJson + Default>(&self, name: &str) -> T {
        self.or(name, T::default())
    }

    /// `#[serde(deny_unknown_fields)]`.
    fn only(&self, known: &[&str]) {
        if let Some((k, _)) = self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            self.1.fail(format!("unknown field `{k}`"));
        }
    }

    /// The tag of an internally tagged enum.
    fn tag(&self, name: &str) -> &str {
        match self.find(name) {
            Some(v) => v.text(self.1),
            None => {
                self.1.fail(format!("missing field `{name}`"));
                ""
            }
        }
    }

    /// An unknown tag: recorded; the caller returns a placeholder.
    fn unknown(&self, tag: &str) {
        self.1.fail(format!("unknown variant `{tag}`"));
    }
}

impl FromJson for bool {
    fn read(v: &Json, cx: &Cx) -> Self {
        match v {
            Json::Bool(b) => *b,
            _ => {
                expected(cx, "a boolean");
                false
            }
        }
    }
}

impl FromJson for String {
    fn read(v: &Json, cx: &Cx) -> Self {
        v.text(cx).to_owned()
    }
}

impl FromJson for u64 {
    fn read(v: &Json, cx: &Cx) -> Self {
        match v {
            Json::Int(n) => *n,
            _ => {
                expected(cx, "an unsigned integer");
                0
            }
        }
    }
}

macro_rules! narrow_uint {
    ($($t:ty),*) => {$(
        impl FromJson for $t {
            fn read(v: &Json, cx: &Cx) -> Self {
                <$t>::try_from(u64::read(v, cx)).unwrap_or_else(|_| {
                    cx.fail("integer out of range".to_owned());
                    0
                })
            }
        }
    )*};
}
narrow_uint!(u32, u16, usize);

impl FromJson for f64 {
    fn read(v: &Json, cx: &Cx) -> Self {
        match *v {
            Json::Int(n) => n as f64,
            Json::Neg(n) => n as f64,
            Json::Float(x) => x,
            _ => {
                expected(cx, "a number");
                0.0
            }
        }
    }
}

impl<T: FromJson> FromJson for Option<T> {
    fn read(v: &Json, cx: &Cx) -> Self {
        match v {
            Json::Null => None,
            v => Some(T::read(v, cx)),
        }
    }
    fn absent() -> Option<Self> {
        Some(None)
    }
}

impl<T: FromJson> FromJson for Box<T> {
    fn read(v: &Json, cx: &Cx) -> Self {
        Box::new(T::read(v, cx))
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn read(v: &Json, cx: &Cx) -> Self {
        match v {
            Json::Arr(items) => items.iter().map(|i| T::read(i, cx)).collect(),
            _ => {
                expected(cx, "an array");
                Vec::new()
            }
        }
    }
}

impl<A: FromJson, B: FromJson> FromJson for (A, B) {
    fn read(v: &Json, cx: &Cx) -> Self {
        match v {
            Json::Arr(items) if items.len() == 2 => {
                (A::read(&items[0], cx), B::read(&items[1], cx))
            }
            _ => {
                expected(cx, "an array of two");
                (A::read(&Json::Null, cx), B::read(&Json::Null, cx))
            }
        }
    }
}

/// `#[serde(transparent)]` ids.
macro_rules! transparent {
    ($($t:ident),*) => {$(
        impl FromJson for $t {
            fn read(v: &Json, cx: &Cx) -> Self {
                $t(u64::read(v, cx))
            }
        }
    )*};
}
transparent!(ConnId, RequestId, MappingId);

impl FromJson for SessionId {
    fn read(v: &Json, cx: &Cx) -> Self {
        SessionId::parse(v.text(cx)).unwrap_or_else(|e| {
            cx.fail(e);
            SessionId::parse("_").unwrap_or_else(|_| unreachable!())
        })
    }
}

/// Unit enums, spelled as serde's `rename_all = "snake_case"` spells them;
/// the first variant is the placeholder.
macro_rules! names {
    ($($t:ident { $first:ident = $fs:literal $(, $v:ident = $s:literal)* $(,)? })*) => {$(
        impl FromJson for $t {
            fn read(v: &Json, cx: &Cx) -> Self {
                match v.text(cx) {
                    $fs => $t::$first,
                    $($s => $t::$v,)*
                    other => {
                        cx.fail(format!("unknown variant `{other}`"));
                        $t::$first
                    }
                }
            }
        }
    )*};
}

names! {
    CloseMode { Header = "header", Fin = "fin", Rst = "rst", MidBody = "mid_body" }
    RaceClose { Fin = "fin", Rst = "rst" }
    FramingRule { Http10Unsized = "http10_unsized", RequestFraming = "request_framing" }
    Initiator { Client = "client", Server = "server" }
    UpgradeRole { Monitor = "monitor" }
    RequestOutcome { Completed = "completed", Aborted = "aborted", Upgraded = "upgraded" }
    OnExpiry { Rst = "rst", RstEither = "rst_either", RstBoth = "rst_both", Silent = "silent", Fin = "fin" }
    Preset { AwsNat = "aws_nat", AwsNlb = "aws_nlb", AzureLb = "azure_lb", GcpNat = "gcp_nat", Alb = "alb", Custom = "custom" }
    Side { Client = "client", Server = "server" }
    RefreshCause { Data = "data", Probe = "probe", WindowProbe = "window_probe" }
    Party { Client = "client", Server = "server", Middlebox = "middlebox" }
    CloseHow { Fin = "fin", Rst = "rst" }
    Scheduling { Lifo = "lifo", Fifo = "fifo" }
    TimeoutSource { Agent = "agent", KeepAliveHint = "keep_alive_hint", Request = "request" }
    FreeOutcome { Pooled = "pooled", NextRequest = "next_request", Destroyed = "destroyed" }
    SocketCloseReason {
        AgentKeepAliveOff = "agent_keep_alive_off",
        RequestConnectionClose = "request_connection_close",
        ResponseConnectionClose = "response_connection_close",
        MaxFreeSockets = "max_free_sockets",
        MaxSockets = "max_sockets",
        MaxTotalSockets = "max_total_sockets",
        KeepAliveHint = "keep_alive_hint",
        FreeSocketTimeout = "free_socket_timeout",
        RequestTimeout = "request_timeout",
        PeerClosed = "peer_closed",
        SocketError = "socket_error",
        BadResponse = "bad_response",
        AgentStopped = "agent_stopped",
    }
    AbortReason { RequestTimeout = "request_timeout", AgentStopped = "agent_stopped" }
    FinishReason {
        Done = "done",
        Stopped = "stopped",
        ViewerLeft = "viewer_left",
        DurationCap = "duration_cap",
        Shutdown = "shutdown",
    }
}

impl FromJson for ErrorBody {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        ErrorBody {
            error: o.get("error"),
            hint: o.get("hint"),
            refused: o.get("refused"),
        }
    }
}

impl FromJson for SessionGrant {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        SessionGrant {
            session: o.get("session"),
        }
    }
}

impl FromJson for TcpKeepalive {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        o.only(&["idle_s", "interval_s"]);
        TcpKeepalive {
            idle_s: o.get("idle_s"),
            interval_s: o.get("interval_s"),
        }
    }
}

impl FromJson for ServerPolicy {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        o.only(&[
            "keep_alive",
            "idle_timeout_ms",
            "max_requests",
            "advertise_keep_alive",
            "hang_timeout_ms",
            "tcp_keepalive",
        ]);
        ServerPolicy {
            keep_alive: o.get("keep_alive"),
            idle_timeout_ms: o.get("idle_timeout_ms"),
            max_requests: o.get("max_requests"),
            advertise_keep_alive: o.get("advertise_keep_alive"),
            hang_timeout_ms: o.get("hang_timeout_ms"),
            tcp_keepalive: o.get("tcp_keepalive"),
        }
    }
}

impl FromJson for RequestSnapshot {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        RequestSnapshot {
            request: o.get("request"),
            seq: o.get("seq"),
            method: o.get("method"),
            target: o.get("target"),
            started_us: o.get("started_us"),
            response_us: o.get("response_us"),
            finished_us: o.get("finished_us"),
            status: o.get("status"),
            outcome: o.get("outcome"),
        }
    }
}

impl FromJson for ConnectionSnapshot {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        ConnectionSnapshot {
            conn: o.get("conn"),
            opened_us: o.get("opened_us"),
            peer: o.get("peer"),
            local_addr: o.get("local_addr"),
            local_port: o.get("local_port"),
            session: o.get("session"),
            upgraded: o.get("upgraded"),
            bytes_in: o.get("bytes_in"),
            bytes_out: o.get("bytes_out"),
            last_in_us: o.get("last_in_us"),
            last_out_us: o.get("last_out_us"),
            requests_total: o.get("requests_total"),
            requests: o.get("requests"),
            protocol: o.get("protocol"),
        }
    }
}

impl FromJson for CloseReason {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        match o.tag("kind") {
            "peer_closed" => CloseReason::PeerClosed,
            "peer_reset" => CloseReason::PeerReset,
            "idle_timeout" => CloseReason::IdleTimeout,
            "max_requests" => CloseReason::MaxRequests,
            "keep_alive_off" => CloseReason::KeepAliveOff,
            "client_requested_close" => CloseReason::ClientRequestedClose,
            "body_unread" => CloseReason::BodyUnread {
                close: o.get("close"),
            },
            "pipelined_unread" => CloseReason::PipelinedUnread {
                after: o.get("after"),
                method: o.get("method"),
                target: o.get("target"),
            },
            "records_unread" => CloseReason::RecordsUnread {
                after: o.get("after"),
            },
            "framing_close" => CloseReason::FramingClose {
                rule: o.get("rule"),
            },
            "hang_timeout" => CloseReason::HangTimeout,
            "server_close" => CloseReason::ServerClose {
                mode: o.get("mode"),
            },
            "header_read_timeout" => CloseReason::HeaderReadTimeout,
            "shutdown" => CloseReason::Shutdown,
            "keep_alive_race" => CloseReason::KeepAliveRace {
                method: o.get("method"),
                target: o.get("target"),
                close: o.get("close"),
                on_purpose: o.get("on_purpose"),
            },
            "body_read_timeout" => CloseReason::BodyReadTimeout,
            "write_stalled" => CloseReason::WriteStalled,
            "session_ended" => CloseReason::SessionEnded,
            "web_socket_closed" => CloseReason::WebSocketClosed {
                code: o.get("code"),
                initiator: o.get("initiator"),
                reason: o.get("reason"),
            },
            "error" => CloseReason::Error {
                message: o.get("message"),
            },
            other => {
                o.unknown(other);
                CloseReason::PeerClosed
            }
        }
    }
}

impl FromJson for LessonReport {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        o.only(&[
            "lesson",
            "stage",
            "prediction",
            "answer",
            "figures",
            "stopped_early",
        ]);
        LessonReport {
            lesson: o.get("lesson"),
            stage: o.get("stage"),
            prediction: o.or_default("prediction"),
            answer: o.or_default("answer"),
            figures: o.or_default("figures"),
            stopped_early: o.or_default("stopped_early"),
        }
    }
}

impl FromJson for Participant {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        Participant {
            session: o.get("session"),
            browser: o.get("browser"),
            online: o.get("online"),
            lesson: o.get("lesson"),
            reports: o.get("reports"),
        }
    }
}

impl FromJson for RoomState {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        RoomState {
            policy_locked: o.get("policy_locked"),
            defaults: o.get("defaults"),
            sessions: o.get("sessions"),
            connections: o.get("connections"),
            lesson: o.or_default("lesson"),
            participants: o.or_default("participants"),
        }
    }
}

impl FromJson for MiddleboxSettings {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        o.only(&[
            "preset",
            "idle_timeout_ms",
            "on_expiry",
            "probes_refresh",
            "scale",
        ]);
        MiddleboxSettings {
            preset: o.get("preset"),
            idle_timeout_ms: o.get("idle_timeout_ms"),
            on_expiry: o.get("on_expiry"),
            probes_refresh: o.get("probes_refresh"),
            scale: o.get("scale"),
        }
    }
}

impl FromJson for MiddleboxView {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        MiddleboxView {
            settings: o.get("settings"),
            in_force_ms: o.get("in_force_ms"),
            scale_words: o.get("scale_words"),
            probes_visible: o.get("probes_visible"),
            listeners: o.get("listeners"),
            locked: o.or_default("locked"),
        }
    }
}

impl FromJson for crate::lessons::LessonWords {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        crate::lessons::LessonWords {
            title: o.get("title"),
            concept: o.get("concept"),
            prompt: o.get("prompt"),
            unit: o.or_default("unit"),
            choices: o.or_default("choices"),
            why: o.get("why"),
            watch: o.get("watch"),
        }
    }
}

impl FromJson for crate::lessons::Listed {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        crate::lessons::Listed {
            id: o.get("id"),
            title: o.get("title"),
            concept: o.get("concept"),
            summary: o.get("summary"),
            changes_settings: o.or_default("changes_settings"),
        }
    }
}

impl FromJson for protocol::TlsListeners {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        protocol::TlsListeners {
            h2: o.or_default("h2"),
            http1_only: o.or_default("http1_only"),
            max_concurrent_streams: o.or_default("max_concurrent_streams"),
            h2_limited: o.or_default("h2_limited"),
            limited_streams: o.or_default("limited_streams"),
        }
    }
}

impl FromJson for MiddleboxEvent {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        match o.tag("kind") {
            "opened" => MiddleboxEvent::Opened {
                client: o.get("client"),
                upstream: o.or_default("upstream"),
                conn: o.or_default("conn"),
                accepted_us: o.get("accepted_us"),
                settings: o.get("settings"),
                in_force_ms: o.get("in_force_ms"),
                probes_visible: o.get("probes_visible"),
            },
            "refreshed" => MiddleboxEvent::Refreshed {
                side: o.get("side"),
                by: o.get("by"),
                bytes: o.get("bytes"),
                count: o.get("count"),
            },
            "expired" => MiddleboxEvent::Expired {
                idle_ms: o.get("idle_ms"),
                on_expiry: o.get("on_expiry"),
                transitory: o.or_default("transitory"),
            },
            "dropped" => MiddleboxEvent::Dropped {
                side: o.get("side"),
                bytes: o.get("bytes"),
                count: o.get("count"),
                probes: o.or_default("probes"),
            },
            "rst_sent" => MiddleboxEvent::RstSent {
                side: o.get("side"),
            },
            "refused" => MiddleboxEvent::Refused {
                client: o.get("client"),
                reason: o.get("reason"),
            },
            "closed" => MiddleboxEvent::Closed {
                by: o.get("by"),
                how: o.get("how"),
                after_expiry: o.get("after_expiry"),
                client_bytes: o.get("client_bytes"),
                server_bytes: o.get("server_bytes"),
                dropped_bytes: o.get("dropped_bytes"),
            },
            other => {
                o.unknown(other);
                MiddleboxEvent::RstSent { side: Side::Client }
            }
        }
    }
}

impl FromJson for AgentOptions {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        o.only(&[
            "keep_alive",
            "keep_alive_msecs",
            "max_sockets",
            "max_total_sockets",
            "max_free_sockets",
            "scheduling",
            "timeout",
            "agent_keep_alive_timeout_buffer",
            "request_timeout",
        ]);
        // The protocol's own defaults (`#[serde(default = …)]`) are Node's,
        // which are also `AgentOptions::default()`.
        let d = AgentOptions::default();
        AgentOptions {
            keep_alive: o.or_default("keep_alive"),
            keep_alive_msecs: o.or("keep_alive_msecs", d.keep_alive_msecs),
            max_sockets: o.or_default("max_sockets"),
            max_total_sockets: o.or_default("max_total_sockets"),
            max_free_sockets: o.or("max_free_sockets", d.max_free_sockets),
            scheduling: o.or_default("scheduling"),
            timeout: o.or_default("timeout"),
            agent_keep_alive_timeout_buffer: o.or(
                "agent_keep_alive_timeout_buffer",
                d.agent_keep_alive_timeout_buffer,
            ),
            request_timeout: o.or_default("request_timeout"),
        }
    }
}

impl FromJson for RequestEvent {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        match o.tag("name") {
            "queued" => RequestEvent::Queued {
                method: o.get("method"),
                path: o.get("path"),
                connection: o.get("connection"),
                waiting: o.get("waiting"),
                queue_len: o.get("queue_len"),
            },
            "sent" => RequestEvent::Sent {
                socket: o.get("socket"),
                reused: o.get("reused"),
                socket_requests: o.get("socket_requests"),
            },
            "response" => RequestEvent::Response {
                socket: o.get("socket"),
                status: o.get("status"),
                http_version: o.get("http_version"),
                connection: o.get("connection"),
                keep_alive: o.get("keep_alive"),
            },
            "done" => RequestEvent::Done {
                socket: o.get("socket"),
                status: o.get("status"),
                body_bytes: o.get("body_bytes"),
                reusable: o.get("reusable"),
            },
            "timeout" => RequestEvent::Timeout {
                socket: o.get("socket"),
                after_ms: o.get("after_ms"),
                source: o.get("source"),
            },
            "error" => RequestEvent::Error {
                socket: o.get("socket"),
                code: o.get("code"),
                message: o.get("message"),
                reused_socket: o.get("reused_socket"),
                retried: o.get("retried"),
            },
            "aborted" => RequestEvent::Aborted {
                reason: o.get("reason"),
            },
            other => {
                o.unknown(other);
                RequestEvent::Aborted {
                    reason: AbortReason::RequestTimeout,
                }
            }
        }
    }
}

impl FromJson for SocketEvent {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        match o.tag("name") {
            "socket" => SocketEvent::Socket {
                remote: o.get("remote"),
            },
            "connect" => SocketEvent::Connect {
                local: o.get("local"),
                remote: o.or_default("remote"),
            },
            "keepalive" => SocketEvent::Keepalive {
                requested_ms: o.get("requested_ms"),
                idle_s: o.get("idle_s"),
                interval_s: o.get("interval_s"),
                count: o.get("count"),
                so_keepalive: o.get("so_keepalive"),
                kernel_idle_s: o.get("kernel_idle_s"),
            },
            "agent_remove" => SocketEvent::AgentRemove,
            "free" => SocketEvent::Free {
                outcome: o.get("outcome"),
                free_sockets: o.get("free_sockets"),
                timeout_ms: o.get("timeout_ms"),
                timeout_source: o.get("timeout_source"),
            },
            "timeout" => SocketEvent::Timeout {
                after_ms: o.get("after_ms"),
                free: o.get("free"),
                source: o.get("source"),
            },
            "end" => SocketEvent::End {
                free: o.get("free"),
            },
            "error" => SocketEvent::Error {
                code: o.get("code"),
                message: o.get("message"),
            },
            "close" => SocketEvent::Close {
                had_error: o.get("had_error"),
                reason: o.get("reason"),
                requests: o.get("requests"),
            },
            other => {
                o.unknown(other);
                SocketEvent::End { free: false }
            }
        }
    }
}

impl FromJson for AgentEvent {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        match o.tag("kind") {
            "started" => AgentEvent::Started {
                url: o.get("url"),
                options: o.get("options"),
                connection: o.get("connection"),
                every_ms: o.get("every_ms"),
                count: o.get("count"),
            },
            "request" => AgentEvent::Request {
                request: o.get("request"),
                event: o.get("event"),
            },
            "socket" => AgentEvent::Socket {
                socket: o.get("socket"),
                event: o.get("event"),
            },
            "finished" => AgentEvent::Finished {
                reason: o.get("reason"),
                requests: o.get("requests"),
                completed: o.get("completed"),
                failed: o.get("failed"),
                sockets: o.get("sockets"),
            },
            other => {
                o.unknown(other);
                AgentEvent::Finished {
                    reason: FinishReason::Done,
                    requests: 0,
                    completed: 0,
                    failed: 0,
                    sockets: 0,
                }
            }
        }
    }
}

impl FromJson for ServerEvent {
    fn read(v: &Json, cx: &Cx) -> Self {
        let o = v.fields(cx);
        match o.tag("type") {
            "snapshot" => ServerEvent::Snapshot {
                now_us: o.get("now_us"),
                config: o.get("config"),
                listeners: o.or_default("listeners"),
                session: o.or_default("session"),
                locked: o.or_default("locked"),
                room_lesson: o.or_default("room_lesson"),
                connections: o.get("connections"),
            },
            "connection_opened" => ServerEvent::ConnectionOpened {
                conn: o.get("conn"),
                at_us: o.get("at_us"),
                peer: o.get("peer"),
                local_addr: o.get("local_addr"),
                local_port: o.get("local_port"),
            },
            "connection_attributed" => ServerEvent::ConnectionAttributed {
                conn: o.get("conn"),
                session: o.get("session"),
                at_us: o.get("at_us"),
            },
            "connection_hidden" => ServerEvent::ConnectionHidden {
                conn: o.get("conn"),
            },
            "config_changed" => ServerEvent::ConfigChanged {
                config: o.get("config"),
                session: o.or_default("session"),
                locked: o.or_default("locked"),
                at_us: o.get("at_us"),
            },
            "request_started" => ServerEvent::RequestStarted {
                conn: o.get("conn"),
                request: o.get("request"),
                seq: o.get("seq"),
                method: o.get("method"),
                target: o.get("target"),
                connection: o.get("connection"),
                at_us: o.get("at_us"),
            },
            "response_started" => ServerEvent::ResponseStarted {
                conn: o.get("conn"),
                request: o.get("request"),
                status: o.get("status"),
                at_us: o.get("at_us"),
            },
            "request_finished" => ServerEvent::RequestFinished {
                conn: o.get("conn"),
                request: o.get("request"),
                outcome: o.get("outcome"),
                at_us: o.get("at_us"),
            },
            "connection_upgraded" => ServerEvent::ConnectionUpgraded {
                conn: o.get("conn"),
                role: o.get("role"),
                at_us: o.get("at_us"),
            },
            "connection_secured" => ServerEvent::ConnectionSecured {
                conn: o.get("conn"),
                protocol: o.get("protocol"),
                alpn: o.or_default("alpn"),
                tls_version: o.or_default("tls_version"),
                at_us: o.get("at_us"),
            },
            "stream_reset" => ServerEvent::StreamReset {
                conn: o.get("conn"),
                stream: o.get("stream"),
                request: o.or_default("request"),
                by: o.get("by"),
                code: o.get("code"),
                at_us: o.get("at_us"),
            },
            "goaway" => ServerEvent::GoAway {
                conn: o.get("conn"),
                by: o.get("by"),
                last_stream: o.get("last_stream"),
                code: o.get("code"),
                debug: o.or_default("debug"),
                at_us: o.get("at_us"),
            },
            "connection_closed" => ServerEvent::ConnectionClosed {
                conn: o.get("conn"),
                reason: o.get("reason"),
                last_in_us: o.get("last_in_us"),
                last_out_us: o.get("last_out_us"),
                bytes_in: o.get("bytes_in"),
                bytes_out: o.get("bytes_out"),
                requests: o.get("requests"),
                at_us: o.get("at_us"),
            },
            "events_dropped" => ServerEvent::EventsDropped {
                count: o.get("count"),
            },
            "pong" => ServerEvent::Pong {
                client_time_ms: o.get("client_time_ms"),
                server_us: o.get("server_us"),
            },
            "released" => ServerEvent::Released {
                count: o.get("count"),
            },
            "error" => ServerEvent::Error(ErrorBody::read(v, cx)),
            "participant_changed" => ServerEvent::ParticipantChanged {
                participant: o.get("participant"),
            },
            "participant_reported" => ServerEvent::ParticipantReported {
                session: o.get("session"),
                report: o.get("report"),
            },
            "participant_left" => ServerEvent::ParticipantLeft {
                session: o.get("session"),
            },
            "room_lesson" => ServerEvent::RoomLesson {
                lesson: o.get("lesson"),
            },
            "middlebox" => ServerEvent::Middlebox {
                mapping: o.get("mapping"),
                session: o.or_default("session"),
                event: o.get("event"),
                at_us: o.get("at_us"),
            },
            "middlebox_changed" => ServerEvent::MiddleboxChanged {
                settings: o.get("settings"),
                in_force_ms: o.get("in_force_ms"),
                session: o.or_default("session"),
                at_us: o.get("at_us"),
            },
            "agent" => ServerEvent::Agent {
                run: o.get("run"),
                session: o.or_default("session"),
                event: o.get("event"),
                at_us: o.get("at_us"),
            },
            other => {
                o.unknown(other);
                ServerEvent::EventsDropped { count: 0 }
            }
        }
    }
}

/// JSON this page writes to the server, as serde's derive would write it
/// (`skip_serializing_if` fields left out when `None`). The server reads it
/// with serde.
pub fn to_string<T: ToJson + ?Sized>(value: &T) -> String {
    let mut w = Writer(String::new());
    value.write(&mut w);
    w.0
}

/// A type this page writes as JSON.
pub trait ToJson {
    fn write(&self, w: &mut Writer);
}

/// A JSON text being written.
pub struct Writer(String);

impl Writer {
    /// `{"type":"tag"` (or `{"kind":…`): an internally tagged variant,
    /// to be continued with [`Writer::field`] and closed with `}`.
    fn tagged(&mut self, key: &str, tag: &str) {
        self.0.push('{');
        key.write(self);
        self.0.push(':');
        tag.write(self);
    }

    /// `,"name":value`, or `{"name":value` as the object's first member.
    fn field(&mut self, name: &str, value: &dyn ToJson) {
        if !self.0.ends_with('{') {
            self.0.push(',');
        }
        name.write(self);
        self.0.push(':');
        value.write(self);
    }

    /// A field that is left out when `None` (`skip_serializing_if`).
    fn some<T: ToJson>(&mut self, name: &str, value: &Option<T>) {
        if let Some(v) = value {
            self.field(name, v);
        }
    }

    fn open(&mut self) {
        self.0.push('{');
    }

    fn close(&mut self) {
        self.0.push('}');
    }
}

impl ToJson for str {
    fn write(&self, w: &mut Writer) {
        w.0.push('"');
        for c in self.chars() {
            match c {
                '"' => w.0.push_str("\\\""),
                '\\' => w.0.push_str("\\\\"),
                '\n' => w.0.push_str("\\n"),
                '\r' => w.0.push_str("\\r"),
                '\t' => w.0.push_str("\\t"),
                c if c < ' ' => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    w.0.push_str("\\u00");
                    w.0.push(HEX[c as usize >> 4] as char);
                    w.0.push(HEX[c as usize & 15] as char);
                }
                c => w.0.push(c),
            }
        }
        w.0.push('"');
    }
}

impl ToJson for String {
    fn write(&self, w: &mut Writer) {
        self.as_str().write(w);
    }
}

impl ToJson for bool {
    fn write(&self, w: &mut Writer) {
        w.0.push_str(if *self { "true" } else { "false" });
    }
}

impl ToJson for u64 {
    fn write(&self, w: &mut Writer) {
        // Integers through `Display` (already in the page); no float code.
        use std::fmt::Write as _;
        let _ = write!(w.0, "{self}");
    }
}

impl ToJson for u32 {
    fn write(&self, w: &mut Writer) {
        u64::from(*self).write(w);
    }
}

impl ToJson for f64 {
    fn write(&self, w: &mut Writer) {
        if self.is_finite() {
            let text = format_float(*self);
            w.0.push_str(&text);
            // `3.0`, as serde writes it, not `3`: the same number either way.
            if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                w.0.push_str(".0");
            }
        } else {
            w.0.push_str("null");
        }
    }
}

/// The shortest text that reads back as `x` (finite). In the browser, the
/// engine's own number formatting; on the host (tests), Rust's.
#[cfg(target_arch = "wasm32")]
fn format_float(x: f64) -> String {
    String::from(
        js_sys::Number::from(x)
            .to_string_with_radix(10)
            .unwrap_or_else(|_| "0".into()),
    )
}

#[cfg(not(target_arch = "wasm32"))]
fn format_float(x: f64) -> String {
    x.to_string()
}

impl<T: ToJson> ToJson for Option<T> {
    fn write(&self, w: &mut Writer) {
        match self {
            Some(v) => v.write(w),
            None => w.0.push_str("null"),
        }
    }
}

impl<A: ToJson, B: ToJson> ToJson for (A, B) {
    fn write(&self, w: &mut Writer) {
        w.0.push('[');
        self.0.write(w);
        w.0.push(',');
        self.1.write(w);
        w.0.push(']');
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn write(&self, w: &mut Writer) {
        w.0.push('[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                w.0.push(',');
            }
            v.write(w);
        }
        w.0.push(']');
    }
}

impl ToJson for RequestId {
    fn write(&self, w: &mut Writer) {
        self.0.write(w);
    }
}

/// Unit enums: their serde names.
macro_rules! write_names {
    ($($t:ident { $($v:ident = $s:literal),* $(,)? })*) => {$(
        impl ToJson for $t {
            fn write(&self, w: &mut Writer) {
                match self {
                    $($t::$v => $s,)*
                }
                .write(w)
            }
        }
    )*};
}

write_names! {
    OnExpiry { Rst = "rst", RstEither = "rst_either", RstBoth = "rst_both", Silent = "silent", Fin = "fin" }
    Preset { AwsNat = "aws_nat", AwsNlb = "aws_nlb", AzureLb = "azure_lb", GcpNat = "gcp_nat", Alb = "alb", Custom = "custom" }
    Scheduling { Lifo = "lifo", Fifo = "fifo" }
    AgentTarget { Same = "same", SecondPort = "second-port", Middlebox = "middlebox" }
}

impl ToJson for TcpKeepalive {
    fn write(&self, w: &mut Writer) {
        w.open();
        w.field("idle_s", &self.idle_s);
        w.field("interval_s", &self.interval_s);
        w.close();
    }
}

impl ToJson for PolicyPatch {
    fn write(&self, w: &mut Writer) {
        w.open();
        w.some("keep_alive", &self.keep_alive);
        w.some("idle_timeout_ms", &self.idle_timeout_ms);
        w.some("max_requests", &self.max_requests);
        w.some("advertise_keep_alive", &self.advertise_keep_alive);
        w.some("hang_timeout_ms", &self.hang_timeout_ms);
        w.some("tcp_keepalive", &self.tcp_keepalive);
        w.close();
    }
}

impl ToJson for MiddleboxPatch {
    fn write(&self, w: &mut Writer) {
        w.open();
        w.some("preset", &self.preset);
        w.some("idle_timeout_ms", &self.idle_timeout_ms);
        w.some("on_expiry", &self.on_expiry);
        w.some("probes_refresh", &self.probes_refresh);
        w.some("scale", &self.scale);
        w.close();
    }
}

impl ToJson for LessonReport {
    fn write(&self, w: &mut Writer) {
        w.open();
        w.field("lesson", &self.lesson);
        w.field("stage", &self.stage);
        w.field("prediction", &self.prediction);
        w.field("answer", &self.answer);
        w.field("figures", &self.figures);
        w.field("stopped_early", &self.stopped_early);
        w.close();
    }
}

impl ToJson for AgentOptions {
    fn write(&self, w: &mut Writer) {
        w.open();
        w.field("keep_alive", &self.keep_alive);
        w.field("keep_alive_msecs", &self.keep_alive_msecs);
        w.field("max_sockets", &self.max_sockets);
        w.field("max_total_sockets", &self.max_total_sockets);
        w.field("max_free_sockets", &self.max_free_sockets);
        w.field("scheduling", &self.scheduling);
        w.field("timeout", &self.timeout);
        w.field(
            "agent_keep_alive_timeout_buffer",
            &self.agent_keep_alive_timeout_buffer,
        );
        w.field("request_timeout", &self.request_timeout);
        w.close();
    }
}

impl ToJson for AgentRequestSpec {
    fn write(&self, w: &mut Writer) {
        w.open();
        w.field("method", &self.method);
        w.field("path", &self.path);
        w.field("target", &self.target);
        w.some("connection", &self.connection);
        w.close();
    }
}

impl ToJson for RoomPatch {
    fn write(&self, w: &mut Writer) {
        w.open();
        w.some("policy_locked", &self.policy_locked);
        w.some("lesson", &self.lesson);
        w.some("reset", &self.reset);
        w.close();
    }
}

impl ToJson for ClientMessage {
    fn write(&self, w: &mut Writer) {
        match self {
            ClientMessage::Release { request, id } => {
                w.tagged("type", "release");
                w.some("request", request);
                w.some("id", id);
            }
            ClientMessage::SetConfig { config } => {
                w.tagged("type", "set_config");
                w.field("config", config);
            }
            ClientMessage::Ping { client_time_ms } => {
                w.tagged("type", "ping");
                w.field("client_time_ms", client_time_ms);
            }
            ClientMessage::LessonReport { report } => {
                w.tagged("type", "lesson_report");
                w.field("report", report);
            }
            ClientMessage::SetMiddlebox { middlebox } => {
                w.tagged("type", "set_middlebox");
                w.field("middlebox", middlebox);
            }
            ClientMessage::AgentStart {
                options,
                request,
                every_ms,
                count,
                linger_ms,
            } => {
                w.tagged("type", "agent_start");
                w.field("options", options);
                w.field("request", request);
                w.field("every_ms", every_ms);
                w.field("count", count);
                w.field("linger_ms", linger_ms);
            }
            ClientMessage::AgentStop {} => w.tagged("type", "agent_stop"),
        }
        w.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use std::fmt::Debug;

    /// Every JSON example in the protocol's doc comments.
    fn doc_examples() -> Vec<&'static str> {
        [
            include_str!("../../protocol/src/lib.rs"),
            include_str!("../../protocol/src/agent.rs"),
            include_str!("../../protocol/src/middlebox.rs"),
            include_str!("../../protocol/src/session.rs"),
            include_str!("../../protocol/src/tls.rs"),
        ]
        .iter()
        .flat_map(|source| source.lines())
        .filter_map(|line| line.trim_start().strip_prefix("/// "))
        .filter(|text| text.starts_with('{'))
        .collect()
    }

    /// serde's derive and this module agree on `text` read as `T`: both
    /// refuse it, or both read the same value. True when both read it.
    fn agree<T: FromJson + DeserializeOwned + PartialEq + Debug>(text: &str) -> bool {
        let serde = serde_json::from_str::<T>(text);
        let ours = from_str::<T>(text);
        match (serde, ours) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b, "{text}");
                true
            }
            (Err(_), Err(_)) => false,
            (a, b) => panic!(
                "{} {text}: serde {a:?}, this module {b:?}",
                std::any::type_name::<T>()
            ),
        }
    }

    #[test]
    fn every_documented_example_reads_as_serde_reads_it() {
        let examples = doc_examples();
        let mut events = 0;
        for text in &examples {
            events += usize::from(agree::<ServerEvent>(text));
            agree::<CloseReason>(text);
            agree::<MiddleboxEvent>(text);
            agree::<AgentEvent>(text);
            agree::<RequestEvent>(text);
            agree::<SocketEvent>(text);
            agree::<AgentOptions>(text);
            agree::<ServerPolicy>(text);
            agree::<TcpKeepalive>(text);
            agree::<ConnectionSnapshot>(text);
            agree::<RequestSnapshot>(text);
            agree::<RoomState>(text);
            agree::<Participant>(text);
            agree::<LessonReport>(text);
            agree::<MiddleboxView>(text);
            agree::<MiddleboxSettings>(text);
            agree::<ErrorBody>(text);
            agree::<SessionGrant>(text);
        }
        assert!(
            events >= 20,
            "only {events} server events among the examples"
        );
    }

    #[test]
    fn values_serde_writes_read_back_the_same() {
        let events = [
            ServerEvent::StreamReset {
                conn: ConnId(7),
                stream: 0x7fff_ffff,
                request: None,
                by: Initiator::Server,
                code: u32::MAX,
                at_us: 3,
            },
            ServerEvent::GoAway {
                conn: ConnId(7),
                by: Initiator::Client,
                last_stream: 0,
                code: 0xb,
                debug: "too_many_resets \"é\"".into(),
                at_us: 4,
            },
            ServerEvent::Pong {
                client_time_ms: 0.1 + 0.2,
                server_us: u64::MAX,
            },
            ServerEvent::Pong {
                client_time_ms: 1532.2999999999884,
                server_us: 0,
            },
            ServerEvent::RequestStarted {
                conn: ConnId(3),
                request: RequestId(12),
                seq: u32::MAX,
                method: "GET".into(),
                target: "/a?b=\"c\"\\\n\t\u{1}é😀/".into(),
                connection: Some("keep-alive, Upgrade".into()),
                at_us: 1,
            },
            ServerEvent::Error(ErrorBody::new("x", String::new())),
            ServerEvent::Error(ErrorBody {
                error: "too many set_config messages".into(),
                hint: "send one change per edit".into(),
                refused: Some("set_config".into()),
            }),
        ];
        for event in events {
            let text = serde_json::to_string(&event).unwrap();
            assert_eq!(from_str::<ServerEvent>(&text), Ok(event), "{text}");
        }
        let escaped = r#"{"type":"room_lesson","lesson":"\u00e9\ud83d\ude00\/"}"#;
        assert!(agree::<ServerEvent>(escaped));
    }

    #[test]
    fn what_serde_refuses_is_refused() {
        for text in [
            r#"{"type":"jump"}"#,
            r#"{"conn":3}"#,
            r#"{"type":"connection_hidden"}"#,
            r#"{"type":"connection_hidden","conn":-1}"#,
            r#"{"type":"connection_hidden","conn":1.5}"#,
            r#"{"type":"connection_hidden","conn":"3"}"#,
            r#"{"type":"response_started","conn":1,"request":2,"status":70000,"at_us":3}"#,
            r#"{"type":"config_changed","config":{"keep_alive":true,"idle_timeout_ms":5,"max_requests":null,"advertise_keep_alive":true,"hang_timeout_ms":null,"tcp_keepalive":null,"extra":1},"at_us":7}"#,
            r#"{"type":"connection_attributed","conn":3,"session":"not a session","at_us":1}"#,
            r#"{"type":"connection_hidden","conn":3} x"#,
            r#"{"type":"connection_hidden","conn":3"#,
            r#"[1,2]"#,
            "",
        ] {
            assert!(!agree::<ServerEvent>(text), "{text}");
            assert!(from_str::<ServerEvent>(text).is_err(), "{text}");
        }
        assert!(agree::<ServerEvent>(
            r#" {"conn":3, "type":"connection_hidden", "extra": [{"a": null}, true]} "#
        ));
    }

    /// serde and this module write the same JSON value.
    fn writes_as_serde<T: ToJson + serde::Serialize>(value: &T) {
        let ours = to_string(value);
        let ours: serde_json::Value = serde_json::from_str(&ours).expect(&ours);
        assert_eq!(ours, serde_json::to_value(value).unwrap());
    }

    #[test]
    fn messages_are_written_as_serde_writes_them() {
        let report = LessonReport {
            lesson: "six-lanes".into(),
            stage: "explained".into(),
            prediction: Some("6".into()),
            answer: None,
            figures: vec![("a\"b".into(), "\u{1}\t\\é".into())],
            stopped_early: true,
        };
        let messages = [
            ClientMessage::Release {
                request: None,
                id: None,
            },
            ClientMessage::Release {
                request: Some(RequestId(12)),
                id: Some("b1-4".into()),
            },
            ClientMessage::Ping {
                client_time_ms: 1532.25,
            },
            ClientMessage::Ping {
                client_time_ms: 0.1 + 0.2,
            },
            ClientMessage::Ping {
                client_time_ms: 3.0,
            },
            ClientMessage::SetConfig {
                config: PolicyPatch::default(),
            },
            ClientMessage::SetConfig {
                config: PolicyPatch {
                    keep_alive: Some(false),
                    idle_timeout_ms: Some(1500),
                    max_requests: Some(None),
                    advertise_keep_alive: Some(true),
                    hang_timeout_ms: Some(Some(2000)),
                    tcp_keepalive: Some(Some(TcpKeepalive {
                        idle_s: 1,
                        interval_s: 2,
                    })),
                },
            },
            ClientMessage::LessonReport { report },
            ClientMessage::SetMiddlebox {
                middlebox: MiddleboxPatch {
                    preset: Some(Preset::AzureLb),
                    idle_timeout_ms: None,
                    on_expiry: Some(OnExpiry::RstEither),
                    probes_refresh: Some(false),
                    scale: Some(100),
                },
            },
            ClientMessage::AgentStart {
                options: AgentOptions::default(),
                request: AgentRequestSpec {
                    method: "GET".into(),
                    path: "/api/fast".into(),
                    target: AgentTarget::SecondPort,
                    connection: Some("close".into()),
                },
                every_ms: 300,
                count: 3,
                linger_ms: 0,
            },
            ClientMessage::AgentStart {
                options: AgentOptions {
                    keep_alive: true,
                    max_sockets: Some(20),
                    scheduling: Scheduling::Fifo,
                    timeout: Some(u64::MAX),
                    ..AgentOptions::default()
                },
                request: AgentRequestSpec {
                    method: "POST".into(),
                    path: "/".into(),
                    target: AgentTarget::Middlebox,
                    connection: None,
                },
                every_ms: 0,
                count: u32::MAX,
                linger_ms: 5,
            },
            ClientMessage::AgentStop {},
        ];
        for message in &messages {
            writes_as_serde(message);
        }
        writes_as_serde(&RoomPatch::default());
        writes_as_serde(&RoomPatch {
            policy_locked: Some(true),
            lesson: Some("six-lanes".into()),
            reset: Some(false),
        });
    }
}
