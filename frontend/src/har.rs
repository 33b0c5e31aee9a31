//! A run exported as HAR 1.2 (importable in Chrome DevTools).
//!
//! Field list: <http://www.softwareishard.com/blog/har-12-spec/>. Timings the
//! page cannot know are -1, as the spec allows. The connection id is the
//! server's, so DevTools' "Connection ID" column shows the lab's lanes.

use serde_json::{Value, json};

use crate::clock::ClockSync;
use crate::state::{BrowserRequest, Phase, Run};

/// Milliseconds between two optional points, or -1.
fn span(from: Option<f64>, to: Option<f64>) -> f64 {
    match (from, to) {
        (Some(a), Some(b)) if b >= a => b - a,
        _ => -1.0,
    }
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

fn entry(run: &Run, r: &BrowserRequest, clock: &ClockSync) -> Value {
    let issued = r.issued_ms.unwrap_or(run.started_ms);
    let at_server = r.server_start_us.and_then(|us| clock.to_page_ms(us));
    let blocked = span(Some(issued), at_server.or(r.head_ms));
    let wait = span(at_server, r.head_ms);
    let receive = span(r.head_ms, r.ended_ms);
    let total = span(Some(issued), r.ended_ms).max(0.0);
    let query: Vec<Value> = r
        .url
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            json!({ "name": name, "value": value })
        })
        .collect();
    let mut response_headers = Vec::new();
    if let Some(conn) = r.conn {
        response_headers.push(json!({ "name": "x-conn-id", "value": conn.0.to_string() }));
    }
    if let Some(seq) = r.seq {
        response_headers.push(json!({ "name": "x-request-seq", "value": seq.to_string() }));
    }
    let method = if run.settings.post { "POST" } else { "GET" };
    let mut e = json!({
        "startedDateTime": iso8601(run.started_epoch_ms + (issued - run.started_ms)),
        "time": total,
        "request": {
            "method": method,
            "url": r.url,
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": [],
            "queryString": query,
            "headersSize": -1,
            "bodySize": if run.settings.post { 0 } else { -1 },
        },
        "response": {
            "status": r.status.unwrap_or(0),
            "statusText": "",
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": response_headers,
            "content": { "size": -1, "mimeType": "" },
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
        },
        "cache": {},
        "timings": {
            "blocked": blocked,
            "dns": -1,
            "connect": -1,
            "send": 0,
            "wait": wait.max(0.0),
            "receive": receive.max(0.0),
            "ssl": -1,
        },
        "comment": format!("{} ({})", r.phase.label(), r.tag),
    });
    if let Some(conn) = r.conn {
        e["connection"] = json!(conn.0.to_string());
    }
    if matches!(r.phase, Phase::Failed | Phase::Aborted) {
        e["response"]["_error"] = json!(r.error.clone().unwrap_or_default());
    }
    e
}

/// The run as a HAR 1.2 document.
pub fn export(run: &Run, clock: &ClockSync) -> Value {
    json!({
        "log": {
            "version": "1.2",
            "creator": { "name": "keepalive-lab", "version": env!("CARGO_PKG_VERSION") },
            "pages": [{
                "startedDateTime": iso8601(run.started_epoch_ms),
                "id": run.name(),
                "title": format!("keepalive-lab run {}", run.name()),
                "pageTimings": { "onContentLoad": -1, "onLoad": -1 },
            }],
            "entries": run
                .requests
                .iter()
                .filter(|r| r.issued_ms.is_some())
                .map(|r| {
                    let mut e = entry(run, r, clock);
                    e["pageref"] = json!(run.name());
                    e
                })
                .collect::<Vec<_>>(),
        }
    })
}

/// The run and the connections that carried it, as plain JSON (the lab's
/// own export: everything the page knows, both sides).
pub fn run_json(run: &Run, lanes: &[&crate::state::Lane], clock: &ClockSync) -> Value {
    let conns: std::collections::BTreeSet<_> = run.requests.iter().filter_map(|r| r.conn).collect();
    json!({
        "run": run.name(),
        "settings": run.settings.to_fragment(),
        "started_epoch_ms": run.started_epoch_ms,
        "clock_uncertainty_ms": clock.uncertainty_ms(),
        "pools": run.pools.iter().map(|(pool, stats)| json!({
            "origin": pool.origin,
            "credentials": pool.credentials.name(),
            "max_concurrent_connections": stats.max_concurrent_conns,
            "connections": stats.conns.iter().map(|c| c.0).collect::<Vec<_>>(),
            "queued_requests": run.queued_in(pool, clock).len(),
        })).collect::<Vec<_>>(),
        "requests": run.requests.iter().map(|r| json!({
            "tag": r.tag,
            "url": r.url,
            "phase": r.phase.name(),
            "connection": r.conn.map(|c| c.0),
            "request_id": r.request.map(|q| q.0),
            "seq_on_connection": r.seq,
            "status": r.status,
            "issued_ms": r.issued_ms.map(|t| t - run.started_ms),
            "at_server_ms": r.server_start_us.and_then(|us| clock.to_page_ms(us)).map(|t| t - run.started_ms),
            "head_ms": r.head_ms.map(|t| t - run.started_ms),
            "ended_ms": r.ended_ms.map(|t| t - run.started_ms),
            "server_sightings": r.server_sightings,
            "error": r.error,
            "resource_timing": r.timing,
        })).collect::<Vec<_>>(),
        "connections": lanes.iter().filter(|l| conns.contains(&l.conn)).map(|l| json!({
            "conn": l.conn.0,
            "peer": l.peer,
            "local": l.local_addr,
            "opened_ms": clock.to_page_ms(l.opened_us).map(|t| t - run.started_ms),
            "requests": l.requests_total,
            "closed": l.closed.as_ref().map(|c| json!({
                "at_ms": clock.to_page_ms(c.at_us).map(|t| t - run.started_ms),
                "reason": c.reason,
                "bytes_in": c.bytes_in,
                "bytes_out": c.bytes_out,
            })),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Sample;
    use crate::settings::{BurstSettings, Credentials};
    use crate::state::{Action, Head, LabState, PoolKey};
    use protocol::{ConnId, RequestId, ServerEvent, SessionId};

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
        let har = export(s.run(id).unwrap(), &s.clock);
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
            first["timings"]["blocked"], 10.0,
            "queued until the server saw it"
        );
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

    #[test]
    fn dates_are_iso_8601_utc() {
        assert_eq!(iso8601(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123.0), "2000-02-29T00:00:00.123Z");
    }
}
