//! A run exported as HAR 1.2 (importable in Chrome DevTools).
//!
//! Field list: <http://www.softwareishard.com/blog/har-12-spec/>. The
//! connection id is the server's, so DevTools' "Connection ID" column shows
//! the lab's lanes, and `httpVersion` is what the server's record says the
//! connection spoke (`HTTP/2.0` for `h2`).
//!
//! Timings ([`timings`]) cut the request's life, from `fetch()` to its end
//! on the page's clock, into consecutive phases, so they always add up:
//! `time` is the sum of the phases that are not -1.
//! - `blocked`: waiting in the browser (queued, and before a re-send);
//! - `dns`, `connect`: only for a request that went on a connection opened
//!   for it (-1 on a reused one: the phase does not apply). `connect` comes
//!   from Resource Timing (`connectEnd - connectStart`, and `dns` from
//!   `connectStart - domainLookupStart`) when the browser gave an entry that
//!   says the connection was new; otherwise it is the lab's own measure:
//!   from the moment the browser could start connecting (the `fetch()` call,
//!   or the end at the server of the pool's request that freed a slot, or
//!   of its own dropped attempt) to the server's accept of the connection,
//!   and `dns` is -1 (not measured);
//!   On the lab's HTTPS ports the lab's own `connect` lasts until the TLS
//!   handshake's end (the server's `connection_secured`), and `ssl` is the
//!   handshake, from the accept (included in `connect`, as HAR 1.2 says;
//!   -1 on a reused or plain connection);
//! - `send`: from the connection's accept (or its handshake's end) to the
//!   server reading the head (0 on a reused connection);
//! - `wait`: from the server reading the head to the response head in the
//!   page, or to the request's end for an aborted or failed one;
//! - `receive`: the body (0 when no response came).
//!
//! Where a phase is the lab's own estimate rather than the browser's figure
//! (a `connect` without a Resource Timing entry, a `blocked` without the
//! request's `fetch()` time), the entry's `timings.comment` says so.

use crate::clock::ClockSync;
use crate::state::{BrowserRequest, LabState, Phase, Run};
use crate::tally::Tally;

/// HAR timings of `r` (ms): blocked, dns, connect, send, wait, receive; and
/// `ssl`. `secured_us` is when its connection's TLS handshake completed
/// (the server's `connection_secured`), if it did: on a connection opened
/// for it, `connect` then lasts until the handshake's end (HAR 1.2: `ssl`
/// is included in `connect`), `send` starts there and `ssl` is the
/// handshake; -1 otherwise. Third: which of these are the lab's own
/// estimate rather than the browser's figures, in words for the timings'
/// `comment` (empty when none is).
pub fn timings(
    run: &Run,
    r: &BrowserRequest,
    clock: &ClockSync,
    secured_us: Option<protocol::Micros>,
) -> ([f64; 6], f64, Vec<&'static str>) {
    let page = |us| clock.to_page_ms(us);
    let issued = r.issued_ms.unwrap_or(run.started_ms);
    let arrival = r.server_start_us.and_then(page);
    let end = r
        .ended_ms
        .or(r.head_ms)
        .or(arrival)
        .unwrap_or(issued)
        .max(issued);
    // The attempt that answered (or the latest), when its connection was
    // opened for it: after the request was issued, as its first request.
    let attempt = r
        .attempts
        .iter()
        .rev()
        .find(|a| Some(a.request) == r.request);
    // The accept on the page's clock may come out before the issue by the
    // clock sync's error (the phases below are clamped to the request's life).
    let slack = clock.uncertainty_ms().unwrap_or(0.0);
    let accepted = attempt
        .filter(|a| a.seq == 1)
        .and_then(|a| page(a.conn_opened_us?))
        .filter(|t| *t >= issued - slack);
    // The handshake, on a connection opened for this request.
    let secured = attempt
        .filter(|a| a.seq == 1)
        .and(secured_us)
        .and_then(page);
    let ssl = accepted
        .zip(secured)
        .map_or(-1.0, |(from, to)| (to - from).max(0.0));
    // Resource Timing's figures are on the page's clock: no sync needed.
    let browser_says_new = r
        .timing
        .filter(|t| t.new_connection() && attempt.is_none_or(|a| a.seq == 1));
    let mut estimated = Vec::new();
    if r.issued_ms.is_none() {
        estimated.push(
            "blocked counts from the run's start: this request's fetch() call was not recorded",
        );
    }
    if browser_says_new.is_none() && accepted.is_some() {
        estimated.push(
            "connect is the lab's own measure (no Resource Timing entry said the connection was \
             new): from when the browser could start connecting (its fetch() call, or the end \
             at the server of the request that freed a slot) to the server's accept; dns was \
             not measured",
        );
    }
    let (dns_from, connect_from, connect_to) = match (browser_says_new, accepted) {
        (Some(t), _) => (
            Some(t.domain_lookup_start),
            Some(t.connect_start),
            Some(t.connect_end),
        ),
        (None, Some(accept)) => {
            // The handshake is part of the connection's setup.
            let ready = secured.map_or(accept, |t| t.max(accept));
            // The latest moment before the accept that a slot was freed:
            // another request of the pool, or this one's dropped attempt,
            // ended at the server.
            let freed = run
                .requests
                .iter()
                .filter(|q| q.pool == r.pool)
                .flat_map(|q| &q.attempts)
                .filter(|a| Some(a.request) != r.request)
                .filter_map(|a| page(a.end_us?))
                .filter(|t| *t <= accept)
                .fold(issued, f64::max);
            (None, Some(freed), Some(ready))
        }
        (None, None) => (None, None, None),
    };
    let mut at = issued;
    let mut step = |to: Option<f64>| match to {
        Some(t) => {
            // Never `clamp`: it panics when `at` is past `end`.
            let t = t.max(at).min(end);
            let d = t - at;
            at = t;
            d
        }
        None => -1.0,
    };
    let blocked = step(
        dns_from
            .or(connect_from)
            .or(arrival)
            .or(r.head_ms)
            .or(Some(end)),
    );
    let dns = step(dns_from.and(connect_from));
    let connect = step(connect_to);
    let send = step(Some(arrival.unwrap_or(f64::MIN)));
    let wait = step(Some(r.head_ms.unwrap_or(end)));
    let receive = step(Some(end));
    // Never more than the `connect` it is part of (clamped to the request's
    // life, or from Resource Timing's own figures).
    let ssl = if connect >= 0.0 {
        ssl.min(connect)
    } else {
        -1.0
    };
    ([blocked, dns, connect, send, wait, receive], ssl, estimated)
}

fn iso8601(epoch_ms: f64) -> String {
    // Civil-from-days (Howard Hinnant), enough for a timestamp in UTC.
    let ms = epoch_ms.max(0.0) as i64;
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// JSON written by hand: a `serde_json::json!` tree per entry cost about
/// 10 KB of the page's compressed WebAssembly (and `write!` templates with
/// many arguments more than these calls).
struct Json(String);

impl Json {
    /// A comma if something came before in the same object or array.
    fn sep(&mut self) {
        if !self.0.ends_with(['{', '[', ':']) && !self.0.is_empty() {
            self.0.push(',');
        }
    }

    /// Opens an object (`{`) or array (`[`) under `key` ("" in an array).
    fn open(&mut self, key: &str, bracket: char) -> &mut Self {
        self.key(key);
        self.0.push(bracket);
        self
    }

    /// Closes with `}` or `]`.
    fn close(&mut self, bracket: char) -> &mut Self {
        self.0.push(bracket);
        self
    }

    fn key(&mut self, key: &str) {
        self.sep();
        if !key.is_empty() {
            quote(&mut self.0, key);
            self.0.push(':');
        }
    }

    /// A string value.
    fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        quote(&mut self.0, value);
        self
    }

    /// A number, rounded to the microsecond; `null` when absent.
    fn num(&mut self, key: &str, value: Option<f64>) -> &mut Self {
        self.key(key);
        match value.filter(|v| v.is_finite()) {
            Some(v) => self.0 += &crate::decimal::thousandths((v * 1000.0).round() as i64),
            None => self.0 += "null",
        }
        self
    }

    /// A literal: `true`, `[]`, `{}`, `null`, or JSON made elsewhere.
    fn raw(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        self.0 += value;
        self
    }
}

/// `text` as a JSON string.
fn quote(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => *out += &format!("\\u{:04x}", u32::from(c)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A whole number, or `null`.
fn int(n: Option<impl Into<u64>>) -> Option<f64> {
    n.map(|n| n.into() as f64)
}

fn entry(j: &mut Json, run: &Run, r: &BrowserRequest, state: &LabState) {
    let clock = &state.clock;
    let issued = r.issued_ms.unwrap_or(run.started_ms);
    let lane = r.conn.and_then(|c| state.lanes.get(&c));
    let (phases, ssl, estimated) = timings(run, r, clock, lane.and_then(|l| l.secured_us));
    // The protocol the server's record says the connection spoke.
    let version = match lane.and_then(|l| l.protocol.as_deref()) {
        Some("h2") => "HTTP/2.0",
        _ => "HTTP/1.1",
    };
    let total: f64 = phases.iter().filter(|t| **t >= 0.0).sum();
    j.open("", '{')
        .str("pageref", &run.name())
        .str(
            "startedDateTime",
            &iso8601(run.started_epoch_ms + (issued - run.started_ms)),
        )
        .num("time", Some(total))
        .open("request", '{')
        .str("method", if run.settings.post { "POST" } else { "GET" })
        .str("url", &r.url)
        .str("httpVersion", version)
        .raw("cookies", "[]")
        .raw("headers", "[]")
        .open("queryString", '[');
    let query = r.url.split_once('?').map_or("", |(_, q)| q);
    for p in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = p.split_once('=').unwrap_or((p, ""));
        j.open("", '{')
            .str("name", name)
            .str("value", value)
            .close('}');
    }
    j.close(']')
        .raw("headersSize", "-1")
        .raw("bodySize", if run.settings.post { "0" } else { "-1" })
        .close('}')
        .open("response", '{')
        .num("status", int(r.status.map(u32::from)).or(Some(0.0)))
        .str("statusText", "")
        .str("httpVersion", version)
        .raw(
            "cookies",
            r#"[],"redirectURL":"","headersSize":-1,"bodySize":-1,"content":{"size":-1,"mimeType":""}"#,
        )
        .open("headers", '[');
    let mut header = |name: &str, value: &str| {
        j.open("", '{')
            .str("name", name)
            .str("value", value)
            .close('}');
    };
    if let Some(conn) = r.conn {
        header("x-conn-id", &conn.0.to_string());
    }
    if let Some(seq) = r.seq {
        header("x-request-seq", &seq.to_string());
    }
    if let Some((name, value)) = r
        .keep_alive
        .words()
        .as_deref()
        .and_then(|w| w.split_once(": "))
    {
        header(name, value);
    }
    j.close(']');
    if matches!(r.phase, Phase::Failed | Phase::Aborted) {
        j.str("_error", r.error.as_deref().unwrap_or(""));
    }
    j.close('}').raw("cache", "{}").open("timings", '{');
    for (name, t) in ["blocked", "dns", "connect", "send", "wait", "receive"]
        .into_iter()
        .zip(phases)
    {
        j.num(name, Some(t));
    }
    j.num("ssl", Some(ssl));
    if !estimated.is_empty() {
        j.str("comment", &estimated.join("; "));
    }
    j.close('}')
        .str("comment", &format!("{} ({})", r.phase.label(), r.tag));
    if let Some(conn) = r.conn {
        j.str("connection", &conn.0.to_string());
    }
    if r.attempts.len() > 1 {
        attempts(j, "_attempts", run, r, clock);
    }
    j.close('}');
}

/// Every attempt the server saw of `r` (the browser's silent re-sends).
fn attempts(j: &mut Json, key: &str, run: &Run, r: &BrowserRequest, clock: &ClockSync) {
    let ms = |us| clock.to_page_ms(us).map(|t| t - run.started_ms);
    j.open(key, '[');
    for a in &r.attempts {
        j.open("", '{')
            .num("connection", int(Some(a.conn.0)))
            .num("request_id", int(Some(a.request.0)))
            .num("seq_on_connection", int(Some(a.seq)))
            .num("at_server_ms", ms(a.start_us))
            .num("ended_ms", a.end_us.and_then(ms));
        match &a.dropped {
            Some(d) => j.str("dropped", d.kind()),
            None => j.raw("dropped", "null"),
        };
        j.close('}');
    }
    j.close(']');
}

/// The run as a HAR 1.2 document, with what `state` knows of the
/// connections that carried it (their protocol, their TLS handshake).
pub fn export(run: &Run, state: &LabState) -> String {
    let mut j = Json(String::new());
    j.open("", '{')
        .open("log", '{')
        .raw(
            "version",
            concat!(
                r#""1.2","creator":{"name":"keepalive-lab","version":""#,
                env!("CARGO_PKG_VERSION"),
                r#""}"#
            ),
        )
        .open("pages", '[')
        .open("", '{')
        .str("startedDateTime", &iso8601(run.started_epoch_ms))
        .str("id", &run.name())
        .str("title", &format!("keepalive-lab run {}", run.name()))
        .raw("pageTimings", r#"{"onContentLoad":-1,"onLoad":-1}"#)
        .close('}')
        .close(']')
        .open("entries", '[');
    for r in run.requests.iter().filter(|r| r.issued_ms.is_some()) {
        entry(&mut j, run, r, state);
    }
    j.close(']').close('}').close('}');
    j.0
}

/// The run and the connections that carried it, as plain JSON (the lab's
/// own export: everything the page knows, both sides). Each pool's figures
/// are the page's own ([`Tally`]), so the file and the page agree.
pub fn run_json(run: &Run, state: &LabState) -> String {
    let clock = &state.clock;
    let lanes: Vec<&crate::state::Lane> = state.lanes.values().map(|l| &**l).collect();
    let tally = Tally::of(run, state);
    let ms = |t: Option<f64>| t.map(|t| t - run.started_ms);
    let server_ms = |us: Option<protocol::Micros>| ms(us.and_then(|us| clock.to_page_ms(us)));
    let mut j = Json(String::new());
    j.open("", '{')
        .str("run", &run.name())
        .str("settings", &run.settings.to_fragment())
        .num("started_epoch_ms", Some(run.started_epoch_ms))
        .num("clock_uncertainty_ms", clock.uncertainty_ms())
        .open("pools", '[');
    for (pool, stats) in &run.pools {
        j.open("", '{')
            .str("origin", &pool.origin)
            .str("credentials", pool.credentials.name())
            .num(
                "max_concurrent_connections",
                int(Some(stats.max_concurrent_conns as u64)),
            )
            .open("connections", '[');
        for c in &stats.conns {
            j.num("", int(Some(c.0)));
        }
        j.close(']')
            .num(
                "queued_requests",
                int(tally
                    .pools
                    .iter()
                    .find(|p| p.pool == *pool)
                    .map(|p| p.queued as u64)),
            )
            .close('}');
    }
    j.close(']').open("requests", '[');
    for r in &run.requests {
        j.open("", '{')
            .str("tag", &r.tag)
            .str("url", &r.url)
            .str("phase", r.phase.name())
            .num("connection", int(r.conn.map(|c| c.0)))
            .num("request_id", int(r.request.map(|q| q.0)))
            .num("seq_on_connection", int(r.seq))
            .num("status", int(r.status.map(u32::from)))
            .num("issued_ms", ms(r.issued_ms))
            .num("at_server_ms", server_ms(r.server_start_us))
            .num("head_ms", ms(r.head_ms))
            .num("ended_ms", ms(r.ended_ms))
            .num("server_sightings", int(Some(r.server_sightings)));
        attempts(&mut j, "attempts", run, r, clock);
        j.str(
            "response_keep_alive",
            &r.keep_alive.words().unwrap_or_default(),
        )
        .str("error", r.error.as_deref().unwrap_or(""));
        if let Some(t) = r.timing {
            j.open("resource_timing", '{');
            for (name, v) in [
                ("fetch_start", t.fetch_start),
                ("domain_lookup_start", t.domain_lookup_start),
                ("connect_start", t.connect_start),
                ("connect_end", t.connect_end),
                ("request_start", t.request_start),
                ("response_start", t.response_start),
                ("response_end", t.response_end),
            ] {
                j.num(name, Some(v));
            }
            j.close('}');
        }
        j.close('}');
    }
    j.close(']').open("connections", '[');
    let mut conns = crate::sorted::SortedSet::new();
    conns.extend(
        run.requests
            .iter()
            .flat_map(|r| r.attempts.iter().map(|a| a.conn).chain(r.conn)),
    );
    for l in lanes.iter().filter(|l| conns.contains(&l.conn)) {
        j.open("", '{')
            .num("conn", int(Some(l.conn.0)))
            .str("peer", &l.peer)
            .str("local", &l.local_addr)
            .num("opened_ms", server_ms(Some(l.opened_us)))
            .num("requests", int(Some(l.requests_total)));
        if let Some(c) = &l.closed {
            j.open("closed", '{')
                .num("at_ms", server_ms(Some(c.at_us)))
                .str("reason", c.reason.kind())
                .str("reason_words", c.reason.label())
                .num("bytes_in", int(Some(c.bytes_in)))
                .num("bytes_out", int(Some(c.bytes_out)))
                .close('}');
        }
        j.close('}');
    }
    j.close(']').close('}');
    j.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Sample;
    use crate::settings::{BurstSettings, Credentials};
    use crate::state::{Action, Head, LabState, PoolKey};
    use protocol::{CloseReason, ConnId, RequestId, ServerEvent, SessionId};

    /// The JSON export's pools say what the page's pool table says (found
    /// in review: six requests waiting in the browser were exported as 0
    /// queued, the waits counted only once they had reached the server).
    #[test]
    fn the_json_exports_pools_count_as_the_page_does() {
        use crate::state::tests::{event, fire, fresh, started};
        let mut s = fresh();
        let tags = fire(&mut s, 12, |_| Credentials::Default);
        for c in 1..=6u64 {
            s.apply(event(ServerEvent::ConnectionOpened {
                conn: ConnId(c),
                at_us: c,
                peer: format!("127.0.0.1:{}", 40000 + c),
                local_addr: "127.0.0.1:8080".into(),
                local_port: 8080,
            }));
            s.apply(started(c, c, 1, &tags[c as usize - 1], 5));
        }
        let run = s.current().unwrap().clone();
        let json: serde_json::Value = serde_json::from_str(&run_json(&run, &s)).unwrap();
        let page = Tally::of(&run, &s);
        assert_eq!(page.pools[0].queued, 6, "{page:?}");
        assert_eq!(json["pools"][0]["queued_requests"], 6, "{json}");
    }

    fn finished_run() -> (LabState, u32) {
        let mut s = LabState::new(SessionId::parse("s-har").unwrap());
        s.apply(Action::Clock(Sample {
            sent_ms: 0.0,
            received_ms: 0.0,
            server_us: 0,
        }));
        let pool = PoolKey {
            origin: "http://127.0.0.1:8080".into(),
            credentials: Credentials::Default,
        };
        s.apply(Action::RunStarted {
            id: s.next_run(),
            settings: BurstSettings::default(),
            requests: vec![
                (
                    "b1-1".into(),
                    "http://127.0.0.1:8080/api/hang?id=b1-1".into(),
                    pool.clone(),
                ),
                (
                    "b1-2".into(),
                    "http://127.0.0.1:8080/api/hang?id=b1-2".into(),
                    pool,
                ),
            ],
            at_ms: 1000.0,
            epoch_ms: 1_795_000_000_000.0,
        });
        for index in 0..2 {
            s.apply(Action::Issued {
                run: 1,
                index,
                at_ms: 1000.0,
            });
        }
        s.apply(Action::ServerBatch(vec![
            ServerEvent::ConnectionOpened {
                conn: ConnId(3),
                at_us: 1_000_000,
                peer: "127.0.0.1:1".into(),
                local_addr: "127.0.0.1:8080".into(),
                local_port: 8080,
            },
            ServerEvent::RequestStarted {
                conn: ConnId(3),
                request: RequestId(5),
                seq: 1,
                method: "GET".into(),
                target: "/api/hang?id=b1-1".into(),
                connection: None,
                at_us: 1_010_000,
            },
        ]));
        s.apply(Action::ResponseHead {
            run: 1,
            index: 0,
            head: Head {
                conn: Some(ConnId(3)),
                request: Some(RequestId(5)),
                seq: Some(1),
                status: 200,
                keep_alive: Default::default(),
            },
            at_ms: 1500.0,
        });
        s.apply(Action::Finished {
            run: 1,
            index: 0,
            at_ms: 1502.0,
            timing: None,
        });
        s.apply(Action::Failed {
            run: 1,
            index: 1,
            error: "AbortError".into(),
            aborted: true,
            at_ms: 2000.0,
        });
        (s, 1)
    }

    #[test]
    fn has_every_required_har_1_2_field() {
        let (s, id) = finished_run();
        let har: serde_json::Value = serde_json::from_str(&export(s.run(id).unwrap(), &s)).unwrap();
        let log = &har["log"];
        assert_eq!(log["version"], "1.2");
        for field in ["name", "version"] {
            assert!(log["creator"][field].is_string(), "creator.{field}");
        }
        for field in ["startedDateTime", "id", "title", "pageTimings"] {
            assert!(!log["pages"][0][field].is_null(), "pages[0].{field}");
        }
        let entries = log["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        for e in entries {
            for field in [
                "startedDateTime",
                "time",
                "request",
                "response",
                "cache",
                "timings",
            ] {
                assert!(!e[field].is_null(), "entry.{field}");
            }
            for field in [
                "method",
                "url",
                "httpVersion",
                "cookies",
                "headers",
                "queryString",
                "headersSize",
                "bodySize",
            ] {
                assert!(!e["request"][field].is_null(), "request.{field}");
            }
            for field in [
                "status",
                "statusText",
                "httpVersion",
                "cookies",
                "headers",
                "content",
                "redirectURL",
                "headersSize",
                "bodySize",
            ] {
                assert!(!e["response"][field].is_null(), "response.{field}");
            }
            for field in ["size", "mimeType"] {
                assert!(
                    !e["response"]["content"][field].is_null(),
                    "content.{field}"
                );
            }
            for field in ["send", "wait", "receive"] {
                assert!(
                    e["timings"][field].as_f64().unwrap() >= 0.0,
                    "timings.{field} must be >= 0"
                );
            }
            for field in ["blocked", "dns", "connect", "ssl"] {
                assert!(
                    e["timings"][field].as_f64().unwrap() >= -1.0,
                    "timings.{field}"
                );
            }
        }
        let first = &entries[0];
        assert_eq!(
            first["connection"], "3",
            "DevTools' Connection ID is the server's"
        );
        assert_eq!(
            (
                first["timings"]["blocked"].as_f64(),
                first["timings"]["connect"].as_f64()
            ),
            (Some(0.0), Some(0.0)),
            "a connection opened for it at once (the lab's measure: issue to accept)"
        );
        assert!(
            first["timings"]["comment"]
                .as_str()
                .is_some_and(|c| c.starts_with("connect is the lab's own measure")),
            "an estimate says so: {}",
            first["timings"]
        );
        assert_eq!(first["timings"]["send"], 10.0, "accept to the head read");
        assert_eq!(first["timings"]["wait"], 490.0);
        assert_eq!(first["timings"]["receive"], 2.0);
        assert_eq!(first["time"], 502.0);
        assert_eq!(first["startedDateTime"], "2026-11-18T11:06:40.000Z");
        assert_eq!(first["request"]["queryString"][0]["name"], "id");
        assert!(
            entries[1]["response"]["_error"]
                .as_str()
                .unwrap()
                .contains("Abort")
        );
    }

    /// Run 1 of seven requests (`b1-1` … `b1-7`), all issued at 100 ms, on a
    /// page whose clock sync took `sample`.
    /// A clock sync with the server's clock equal to the page's, exactly.
    const EXACT: Sample = Sample {
        sent_ms: 0.0,
        received_ms: 0.0,
        server_us: 0,
    };

    fn seven_issued(sample: Sample) -> LabState {
        let mut s = LabState::new(SessionId::parse("s-har").unwrap());
        s.apply(Action::Clock(sample));
        let pool = PoolKey {
            origin: "http://127.0.0.1:8080".into(),
            credentials: Credentials::Default,
        };
        s.apply(Action::RunStarted {
            id: 1,
            settings: BurstSettings::default(),
            requests: (1..=7)
                .map(|n| {
                    (
                        tag(n),
                        format!("http://127.0.0.1:8080/api/fast?id={}", tag(n)),
                        pool.clone(),
                    )
                })
                .collect(),
            at_ms: 100.0,
            epoch_ms: 1_795_000_000_000.0,
        });
        for index in 0..7 {
            s.apply(Action::Issued {
                run: 1,
                index,
                at_ms: 100.0,
            });
        }
        s
    }

    fn tag(n: usize) -> String {
        format!("b1-{n}")
    }

    fn ms(t: f64) -> u64 {
        (t * 1000.0) as u64
    }

    fn open(conn: u64, at: f64) -> ServerEvent {
        ServerEvent::ConnectionOpened {
            conn: ConnId(conn),
            at_us: ms(at),
            peer: "127.0.0.1:1".into(),
            local_addr: "127.0.0.1:8080".into(),
            local_port: 8080,
        }
    }

    fn start(conn: u64, request: u64, seq: u32, n: usize, at: f64) -> ServerEvent {
        ServerEvent::RequestStarted {
            conn: ConnId(conn),
            request: RequestId(request),
            seq,
            method: "GET".into(),
            target: format!("/api/fast?id={}", tag(n)),
            connection: None,
            at_us: ms(at),
        }
    }

    fn end(conn: u64, request: u64, outcome: protocol::RequestOutcome, at: f64) -> ServerEvent {
        ServerEvent::RequestFinished {
            conn: ConnId(conn),
            request: RequestId(request),
            outcome,
            at_us: ms(at),
        }
    }

    /// Request `index` of run 1 answered (head at `head` ms, body 2 ms later)
    /// by server request `request`, `seq`-th on `conn`.
    fn answer(
        s: &mut LabState,
        index: usize,
        (conn, request, seq): (u64, u64, u32),
        head: f64,
        timing: Option<crate::state::ResourceTiming>,
    ) {
        s.apply(Action::ResponseHead {
            run: 1,
            index,
            head: Head {
                conn: Some(ConnId(conn)),
                request: Some(RequestId(request)),
                seq: Some(seq),
                status: 200,
                keep_alive: Default::default(),
            },
            at_ms: head,
        });
        s.apply(Action::Finished {
            run: 1,
            index,
            at_ms: head + 2.0,
            timing,
        });
    }

    /// Over the lab's HTTPS port with HTTP/2: the entry says HTTP/2.0 (the
    /// server's record of the connection), and the TLS handshake is `ssl`,
    /// within `connect` and not in `send` (found in review: HTTP/1.1 and
    /// `ssl` -1 on every entry, the handshake counted as `send`).
    #[test]
    fn an_http2_request_says_so_and_its_handshake_is_ssl_within_connect() {
        let mut s = seven_issued(EXACT);
        s.apply(Action::ServerBatch(vec![
            open(1, 100.5),
            ServerEvent::ConnectionSecured {
                conn: ConnId(1),
                protocol: "h2".into(),
                alpn: Some("h2".into()),
                tls_version: "TLSv1.3".into(),
                at_us: ms(104.0),
            },
            start(1, 1, 1, 1, 105.0),
            end(1, 1, protocol::RequestOutcome::Completed, 110.0),
            // #2 on plain HTTP/1.1.
            open(2, 101.0),
            start(2, 2, 1, 2, 102.0),
            end(2, 2, protocol::RequestOutcome::Completed, 110.0),
        ]));
        answer(&mut s, 0, (1, 1, 1), 106.0, None);
        answer(&mut s, 1, (2, 2, 1), 103.0, None);
        let har: serde_json::Value = serde_json::from_str(&export(s.run(1).unwrap(), &s)).unwrap();
        let entries = har["log"]["entries"].as_array().unwrap();
        let tls = &entries[0];
        assert_eq!(tls["request"]["httpVersion"], "HTTP/2.0");
        assert_eq!(tls["response"]["httpVersion"], "HTTP/2.0");
        let t = &tls["timings"];
        let near = |v: &serde_json::Value, x: f64| (v.as_f64().unwrap() - x).abs() < 1e-9;
        assert!(near(&t["ssl"], 3.5), "accept to the handshake's end: {t}");
        assert!(
            near(&t["connect"], 4.0),
            "fetch() to the handshake's end: {t}"
        );
        assert!(
            near(&t["send"], 1.0),
            "the handshake's end to the head read: {t}"
        );
        let plain = &entries[1];
        assert_eq!(plain["request"]["httpVersion"], "HTTP/1.1");
        assert_eq!(plain["timings"]["ssl"], -1.0);
        assert!(near(&plain["timings"]["send"], 1.0), "{}", plain["timings"]);
    }

    /// Seven requests, each ending a different way, on one clock (server µs
    /// = page ms × 1000).
    fn every_ending() -> LabState {
        let mut s = seven_issued(EXACT);
        use protocol::RequestOutcome::{Aborted, Completed};
        s.apply(Action::ServerBatch(vec![
            // #1 on a new connection, accepted 4 ms after fetch().
            open(1, 104.0),
            start(1, 1, 1, 1, 105.0),
            end(1, 1, Completed, 110.0),
            // #2 on a new connection; Resource Timing will say so too.
            open(2, 101.0),
            start(2, 2, 1, 2, 103.0),
            end(2, 2, Completed, 110.0),
            // #3 on #1's connection, reused after it.
            start(1, 3, 2, 3, 111.0),
            end(1, 3, Completed, 115.0),
            // #5 at the server, then aborted by the page.
            open(5, 101.0),
            start(5, 5, 1, 5, 102.0),
            // #6 dropped on a kept-alive connection (#2's), re-sent on a new one.
            start(2, 6, 2, 6, 112.0),
            end(2, 6, Aborted, 112.5),
            ServerEvent::ConnectionClosed {
                conn: ConnId(2),
                reason: CloseReason::PeerReset,
                bytes_in: 0,
                bytes_out: 0,
                last_in_us: None,
                last_out_us: None,
                requests: 2,
                at_us: ms(112.5),
            },
            open(6, 113.0),
            start(6, 7, 1, 6, 113.5),
            end(6, 7, Completed, 120.0),
            // #7 dropped on #1's connection; the browser then failed it.
            start(1, 8, 3, 7, 116.0),
            end(1, 8, Aborted, 117.0),
        ]));
        answer(&mut s, 0, (1, 1, 1), 110.5, None);
        let timing = crate::state::ResourceTiming {
            fetch_start: 100.0,
            domain_lookup_start: 100.2,
            connect_start: 100.5,
            connect_end: 100.9,
            request_start: 101.0,
            response_start: 110.0,
            response_end: 112.0,
        };
        answer(&mut s, 1, (2, 2, 1), 110.5, Some(timing));
        answer(&mut s, 2, (1, 3, 2), 115.5, None);
        // #4 aborted while it waited in the browser; #5 at the server.
        for index in [3, 4] {
            s.apply(Action::Failed {
                run: 1,
                index,
                error: "AbortError".into(),
                aborted: true,
                at_ms: 130.0,
            });
        }
        answer(&mut s, 5, (6, 7, 1), 120.5, None);
        s.apply(Action::Failed {
            run: 1,
            index: 6,
            error: "TypeError: Failed to fetch".into(),
            aborted: false,
            at_ms: 118.0,
        });
        s
    }

    #[test]
    fn har_timings_add_up_for_done_aborted_and_failed_requests() {
        let s = every_ending();
        let har: serde_json::Value = serde_json::from_str(&export(s.run(1).unwrap(), &s)).unwrap();
        let entries = har["log"]["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 7);
        let run = s.run(1).unwrap();
        for (e, r) in entries.iter().zip(&run.requests) {
            let t = &e["timings"];
            let phase = |k: &str| t[k].as_f64().unwrap();
            let sum: f64 = ["blocked", "dns", "connect", "send", "wait", "receive"]
                .iter()
                .map(|k| phase(k))
                .filter(|v| *v >= 0.0)
                .sum();
            let time = e["time"].as_f64().unwrap();
            assert!(
                (time - sum).abs() < 0.01,
                "{}: time {time} = sum {sum}: {t}",
                r.tag
            );
            let life = r.ended_ms.unwrap() - r.issued_ms.unwrap();
            assert!(
                (time - life).abs() < 0.01,
                "{}: time {time} is its life {life}",
                r.tag
            );
            for k in ["send", "wait", "receive"] {
                assert!(phase(k) >= 0.0, "{}: {k} {t}", r.tag);
            }
            for k in ["blocked", "dns", "connect"] {
                assert!(phase(k) >= -1.0, "{}: {k} {t}", r.tag);
            }
        }
        let t = |i: usize, k: &str| entries[i]["timings"][k].as_f64().unwrap();
        // Aborted while queued: all of it blocked.
        assert_eq!((t(3, "blocked"), t(3, "wait")), (30.0, 0.0));
        // Aborted at the server (on a connection opened for it): connect,
        // send, then waiting until the abort.
        assert_eq!(
            ["blocked", "connect", "send", "wait", "receive"].map(|k| t(4, k)),
            [0.0, 1.0, 1.0, 28.0, 0.0]
        );
        // Failed after a dropped attempt: its error, and the attempt kept.
        assert!(
            entries[6]["response"]["_error"]
                .as_str()
                .unwrap()
                .contains("Failed")
        );
        assert_eq!(entries[5]["_attempts"].as_array().unwrap().len(), 2);
        assert_eq!(entries[5]["_attempts"][0]["dropped"], "peer_reset");
    }

    #[test]
    fn connect_is_filled_for_new_connections_and_minus_one_on_reused_ones() {
        let s = every_ending();
        let run = s.run(1).unwrap();
        let t = |i: usize| timings(run, &run.requests[i], &s.clock, None).0;
        // The lab's own measure: from fetch() to the server's accept.
        let [blocked, dns, connect, send, ..] = t(0);
        assert_eq!((blocked, dns, connect), (0.0, -1.0, 4.0));
        assert!((send - 1.0).abs() < 1e-9, "accept to the head read");
        // Resource Timing, where the browser gave it.
        let [blocked, dns, connect, ..] = t(1);
        assert!(
            (blocked - 0.2).abs() < 1e-9 && (dns - 0.3).abs() < 1e-9,
            "{:?}",
            t(1)
        );
        assert!(
            (connect - 0.4).abs() < 1e-9,
            "connectEnd - connectStart: {:?}",
            t(1)
        );
        // Reused: connect does not apply.
        assert_eq!((t(2)[1], t(2)[2]), (-1.0, -1.0));
        // Re-sent on a new connection: connecting began when its first
        // attempt was dropped (112.5), the server accepted at 113.
        let [blocked, _, connect, ..] = t(5);
        assert!(
            (blocked - 12.5).abs() < 1e-9 && (connect - 0.5).abs() < 1e-9,
            "{:?}",
            t(5)
        );
    }

    #[test]
    fn dates_are_iso_8601_utc() {
        assert_eq!(iso8601(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123.0), "2000-02-29T00:00:00.123Z");
    }

    #[test]
    fn resource_timings_dns_and_connect_need_no_clock_sync() {
        // True offset 0; this sample (round trip 2 ms, so ±1 ms) estimates
        // +0.5 ms, which puts the accept (100.3 ms) before the issue (100).
        let mut s = seven_issued(Sample {
            sent_ms: 0.0,
            received_ms: 2.0,
            server_us: 1_500,
        });
        s.apply(Action::ServerBatch(vec![
            open(1, 100.3),
            start(1, 1, 1, 1, 100.4),
        ]));
        let timing = crate::state::ResourceTiming {
            fetch_start: 100.0,
            domain_lookup_start: 100.05,
            connect_start: 100.1,
            connect_end: 100.25,
            request_start: 100.3,
            response_start: 100.9,
            response_end: 101.2,
        };
        assert!(timing.new_connection());
        answer(&mut s, 0, (1, 1, 1), 101.0, Some(timing));
        let run = s.run(1).unwrap();
        let ([_, dns, connect, ..], _, estimated) = timings(run, &run.requests[0], &s.clock, None);
        assert!(
            (connect - 0.15).abs() < 1e-9 && (dns - 0.05).abs() < 1e-9,
            "Resource Timing says new: dns {dns}, connect {connect}"
        );
        assert!(estimated.is_empty(), "the browser's figures: {estimated:?}");
    }
}
