//! The live keep-alive policy: the `Keep-Alive` header it produces, how a
//! change applies (idle timeout: to connections accepted afterwards), and the
//! three ways to change it (`Lab::set_policy`, `PUT /api/config`,
//! `set_config` on the WebSocket), including the answers to bad patches.

mod common;

use keepalive_lab_server::sessions::Owner;
use common::{Client, Viewer, get_config, put_config, start_server, start_server_with};
use protocol::{CloseReason, PolicyPatch, ServerEvent, ServerPolicy, TcpKeepalive};

#[tokio::test]
async fn default_policy_advertises_apache_like_keep_alive() {
    let (addr, _lab) = start_server().await;
    let mut client = Client::connect(addr).await;
    let first = client.get("/api/fast").await;
    let second = client.get("/api/fast").await;
    assert_eq!(first.header("keep-alive"), Some("timeout=5, max=99"));
    assert_eq!(second.header("keep-alive"), Some("timeout=5, max=98"));
    for response in [&first, &second] {
        assert_eq!(response.header("connection"), None, "{response:?}");
    }
    assert_eq!(first.conn_id(), second.conn_id());
}

#[tokio::test]
async fn keep_alive_header_follows_the_policy() {
    let (addr, lab) = start_server().await;
    let mut client = Client::connect(addr).await;

    lab.set_policy(&Owner::Anonymous, &PolicyPatch {
        max_requests: Some(None),
        ..PolicyPatch::default()
    })
    .expect("unlimited requests");
    let unlimited = client.get("/api/fast").await;
    assert_eq!(unlimited.header("keep-alive"), Some("timeout=5"));

    lab.set_policy(&Owner::Anonymous, &PolicyPatch {
        advertise_keep_alive: Some(false),
        ..PolicyPatch::default()
    })
    .expect("advertising off");
    let quiet = client.get("/api/fast").await;
    assert_eq!(quiet.header("keep-alive"), None, "{quiet:?}");
    assert_eq!(quiet.header("connection"), None, "still kept alive");
    let again = client.get("/api/fast").await;
    assert_eq!(
        again.conn_id(),
        unlimited.conn_id(),
        "the connection is reused"
    );
    assert_eq!(again.header_u64(protocol::headers::REQUEST_SEQ), 3);
}

#[tokio::test]
async fn an_idle_timeout_change_applies_to_connections_accepted_afterwards() {
    let (addr, lab) = start_server().await;
    let mut viewer = Viewer::connect(addr).await;

    // A is accepted under the default 5 s idle timeout.
    let mut a = Client::connect(addr).await;
    let a_first = a.get("/api/fast?id=a1").await;
    assert_eq!(a_first.header("keep-alive"), Some("timeout=5, max=99"));

    lab.set_policy(&Owner::Anonymous, &PolicyPatch {
        idle_timeout_ms: Some(300),
        ..PolicyPatch::default()
    })
    .expect("300 ms is in range");

    // B is accepted after the change: 300 ms (advertised rounded up to 1 s).
    let mut b = Client::connect(addr).await;
    let b_first = b.get("/api/fast?id=b1").await;
    assert_eq!(b_first.header("keep-alive"), Some("timeout=1, max=99"));
    assert!(b.read_to_close().await.is_empty(), "B is closed silently");
    let closed = viewer.closed(b_first.conn_id()).await;
    assert_eq!(closed.reason, CloseReason::IdleTimeout, "{closed:?}");

    // A, idle just as long as B was, is still open and still says 5 s.
    assert!(
        lab.tracker().connection(a_first.conn_id()).is_some(),
        "A keeps the idle timeout it was accepted with"
    );
    let a_second = a.get("/api/fast?id=a2").await;
    assert_eq!(a_second.conn_id(), a_first.conn_id());
    assert_eq!(a_second.header("keep-alive"), Some("timeout=5, max=98"));
}

#[tokio::test]
async fn get_config_returns_the_policy_in_force() {
    let (addr, lab) = start_server().await;
    let response = common::get_once(addr, "/api/config").await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
    );
    assert_eq!(
        response.json(),
        serde_json::json!({
            "keep_alive": true,
            "idle_timeout_ms": 5000,
            "max_requests": 100,
            "advertise_keep_alive": true,
            "hang_timeout_ms": null,
            "tcp_keepalive": null
        }),
        "Apache 2.4's defaults"
    );
    let changed = lab.set_policy(&Owner::Anonymous, &PolicyPatch {
            hang_timeout_ms: Some(Some(30_000)),
            ..PolicyPatch::default()
        })
        .unwrap();
    assert_eq!(get_config(addr).await, changed);
    assert_eq!(changed.hang_timeout_ms, Some(30_000));
}

#[tokio::test]
async fn a_policy_given_at_start_is_in_force_from_the_first_connection() {
    let mut config = common::config();
    config.policy = ServerPolicy {
        keep_alive: false,
        ..ServerPolicy::default()
    };
    let (addr, _lab) = start_server_with(config).await;
    assert!(!get_config(addr).await.keep_alive);
    let mut client = Client::connect(addr).await;
    assert_eq!(
        client.get("/api/fast").await.header("connection"),
        Some("close")
    );
}

#[tokio::test]
async fn put_config_changes_the_policy_and_tells_every_viewer() {
    let (addr, lab) = start_server().await;
    let mut viewers = [Viewer::connect(addr).await, Viewer::connect(addr).await];
    assert_eq!(viewers[0].config, ServerPolicy::default());

    let response = put_config(
        addr,
        r#"{"idle_timeout_ms": 2000, "max_requests": null, "tcp_keepalive": {"idle_s": 60, "interval_s": 10}}"#,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let returned: ServerPolicy = serde_json::from_slice(&response.body).unwrap();
    let expected = ServerPolicy {
        idle_timeout_ms: 2000,
        max_requests: None,
        tcp_keepalive: Some(TcpKeepalive {
            idle_s: 60,
            interval_s: 10,
        }),
        ..ServerPolicy::default()
    };
    assert_eq!(returned, expected);
    assert_eq!(lab.policy(&Owner::Anonymous), expected);
    assert_eq!(get_config(addr).await, expected);

    for viewer in &mut viewers {
        let event = viewer
            .next_matching("config_changed", |e| {
                matches!(e, ServerEvent::ConfigChanged { .. })
            })
            .await;
        assert!(
            matches!(&event, ServerEvent::ConfigChanged { config, .. } if *config == expected),
            "{event:?}"
        );
    }
    // A viewer arriving later finds the policy in its snapshot.
    assert_eq!(Viewer::connect(addr).await.config, expected);
    // Absent fields stay as they are; null turns a nullable setting off.
    let response = put_config(addr, r#"{"tcp_keepalive": null}"#).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        get_config(addr).await,
        ServerPolicy {
            tcp_keepalive: None,
            ..expected
        }
    );
}

#[tokio::test]
async fn set_config_over_the_websocket_changes_the_policy_for_everyone() {
    let (addr, lab) = start_server().await;
    let mut page = Viewer::connect(addr).await;
    let mut other = Viewer::connect(addr).await;
    page.send_text(r#"{"type":"set_config","config":{"keep_alive":false,"hang_timeout_ms":1500}}"#)
        .await;
    let expected = ServerPolicy {
        keep_alive: false,
        hang_timeout_ms: Some(1500),
        ..ServerPolicy::default()
    };
    for viewer in [&mut page, &mut other] {
        let event = viewer
            .next_matching("config_changed", |e| {
                matches!(e, ServerEvent::ConfigChanged { .. })
            })
            .await;
        assert!(
            matches!(&event, ServerEvent::ConfigChanged { config, .. } if *config == expected),
            "{event:?}"
        );
    }
    assert_eq!(lab.policy(&Owner::Anonymous), expected);
    assert_eq!(get_config(addr).await, expected);

    // A bad one is answered to the sender only, and changes nothing.
    page.send_text(r#"{"type":"set_config","config":{"idle_timeout_ms":1}}"#)
        .await;
    match page.next_reply().await {
        ServerEvent::Error(body) => {
            assert!(body.error.contains("idle_timeout_ms"), "{body:?}");
            assert!(!body.hint.is_empty());
        }
        other => panic!("expected an error, got {other:?}"),
    }
    page.send_text(r#"{"type":"set_config","config":{"idle":1}}"#)
        .await;
    assert!(matches!(page.next_reply().await, ServerEvent::Error(_)));
    assert_eq!(lab.policy(&Owner::Anonymous), expected);
    // The next change any viewer hears of is the next valid one.
    let next = lab.set_policy(&Owner::Anonymous, &PolicyPatch {
            keep_alive: Some(true),
            ..PolicyPatch::default()
        })
        .unwrap();
    for viewer in [&mut page, &mut other] {
        let event = viewer
            .next_matching("config_changed", |e| {
                matches!(e, ServerEvent::ConfigChanged { .. })
            })
            .await;
        assert!(
            matches!(&event, ServerEvent::ConfigChanged { config, .. } if *config == next),
            "{event:?}"
        );
    }
}

/// Patches `PUT /api/config` must refuse, with what is wrong about each.
const BAD_PATCHES: [(&str, &str); 19] = [
    (r#"{"idle_timeout_ms": 99}"#, "out of range"),
    (r#"{"idle_timeout_ms": 600001}"#, "out of range"),
    (r#"{"max_requests": 0}"#, "out of range"),
    (r#"{"max_requests": 100001}"#, "out of range"),
    (r#"{"hang_timeout_ms": 5}"#, "out of range"),
    (
        r#"{"tcp_keepalive": {"idle_s": 0, "interval_s": 5}}"#,
        "out of range",
    ),
    (
        r#"{"tcp_keepalive": {"idle_s": 30, "interval_s": 601}}"#,
        "out of range",
    ),
    (
        r#"{"keep_alive": false, "idle_timeout_ms": 1}"#,
        "out of range",
    ),
    (r#"{"idle": 5}"#, "unknown field"),
    (
        r#"{"tcp_keepalive": {"idle_s": 30, "interval_s": 5, "probes": 9}}"#,
        "unknown field",
    ),
    (r#"{"tcp_keepalive": {"idle_s": 30}}"#, "interval_s"),
    (r#"{"keep_alive": "yes"}"#, "invalid type"),
    (r#"{"idle_timeout_ms": -1}"#, "invalid"),
    (r#"{"idle_timeout_ms": "5000"}"#, "invalid type"),
    (r#"[{"keep_alive": false}]"#, "JSON object"),
    ("null", "JSON object"),
    ("true", "JSON object"),
    (r#"{"keep_alive": false"#, "not understood"),
    ("{keep_alive: false}", "not understood"),
];

#[tokio::test]
async fn bad_patches_are_refused_with_a_hint_and_change_nothing() {
    let (addr, lab) = start_server().await;
    let mut viewer = Viewer::connect(addr).await;
    for (patch, expected) in BAD_PATCHES {
        let response = put_config(addr, patch).await;
        assert_eq!(response.status, 400, "{patch} -> {}", response.text());
        let body = response.error_body();
        assert!(
            body.error.contains(expected),
            "{patch}: the error should say {expected:?}: {body:?}"
        );
        assert_eq!(lab.policy(&Owner::Anonymous), ServerPolicy::default(), "{patch} changed it");
    }
    assert_eq!(get_config(addr).await, ServerPolicy::default());
    // No viewer was told of a change: the first config_changed it sees is
    // the one that follows.
    let response = put_config(addr, r#"{"advertise_keep_alive": false}"#).await;
    assert_eq!(response.status, 200);
    let event = viewer
        .next_matching("config_changed", |e| {
            matches!(e, ServerEvent::ConfigChanged { .. })
        })
        .await;
    assert!(
        matches!(&event, ServerEvent::ConfigChanged { config, .. } if !config.advertise_keep_alive && config.keep_alive),
        "{event:?}"
    );
}

#[tokio::test]
async fn null_is_refused_for_settings_that_cannot_be_turned_off() {
    // `null` turns off the nullable settings (max_requests, hang_timeout_ms,
    // tcp_keepalive). For the others there is no "off": a client sending
    // `{"idle_timeout_ms": null}` must be told, not answered 200 unchanged.
    let (addr, lab) = start_server().await;
    let mut accepted = Vec::new();
    for patch in [
        r#"{"keep_alive": null}"#,
        r#"{"idle_timeout_ms": null}"#,
        r#"{"advertise_keep_alive": null}"#,
    ] {
        let response = put_config(addr, patch).await;
        if response.status == 400 {
            response.error_body();
        } else {
            accepted.push(format!(
                "{patch} -> {} {}",
                response.status,
                response.text()
            ));
        }
    }
    assert!(
        accepted.is_empty(),
        "accepted instead of 400: {accepted:#?}"
    );
    assert_eq!(lab.policy(&Owner::Anonymous), ServerPolicy::default());
    // Over the WebSocket too.
    let mut viewer = Viewer::connect(addr).await;
    viewer
        .send_text(r#"{"type":"set_config","config":{"keep_alive":null}}"#)
        .await;
    assert!(
        matches!(viewer.next_reply().await, ServerEvent::Error(_)),
        "set_config with keep_alive null is an error"
    );
}

// Whether an accepted socket really has `SO_KEEPALIVE` on can only be seen
// on the server's side of the socket, which the tests cannot reach through
// the lab's API. On Linux `/proc/net/tcp` shows the kernel's keep-alive timer
// for it (`tr` = 2, see proc(5)), which this test checks when the file is
// there; elsewhere only the policy round trip and that connections still
// work are checked. The probes themselves (30 s) are not waited for.
#[tokio::test]
async fn tcp_keepalive_is_set_on_connections_accepted_after_the_change() {
    let (addr, lab) = start_server().await;
    let mut before = Client::connect(addr).await;
    assert_eq!(before.get("/api/fast").await.status, 200);

    let response = put_config(
        addr,
        r#"{"tcp_keepalive": {"idle_s": 30, "interval_s": 5}}"#,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let expected = Some(TcpKeepalive {
        idle_s: 30,
        interval_s: 5,
    });
    assert_eq!(
        response.json()["tcp_keepalive"],
        serde_json::json!({"idle_s": 30, "interval_s": 5})
    );
    assert_eq!(lab.policy(&Owner::Anonymous).tcp_keepalive, expected);
    assert_eq!(get_config(addr).await.tcp_keepalive, expected);

    let mut after = Client::connect(addr).await;
    let first = after.get("/api/fast").await;
    let second = after.get("/api/fast").await;
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(first.conn_id(), second.conn_id());

    if std::fs::read_to_string("/proc/net/tcp").is_ok() {
        let (server, new_port, old_port) = (
            addr.port(),
            after.local_addr().port(),
            before.local_addr().port(),
        );
        let mut last = (None, None);
        // Until the client's (delayed) ACK arrives the retransmit timer (1)
        // shows instead; once both sockets are quiet, the new one shows the
        // keep-alive timer (2) and the old one none (0).
        let settled = tokio::time::timeout(common::LIMIT, async {
            loop {
                let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
                last = (
                    server_side_timer(&table, server, new_port),
                    server_side_timer(&table, server, old_port),
                );
                if last == (Some(2), Some(0)) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            settled.is_ok(),
            "timers (new, old) in /proc/net/tcp: {last:?}, expected (Some(2), Some(0)): \
             SO_KEEPALIVE on the new connection only"
        );
    } else {
        println!("note: no /proc/net/tcp here; SO_KEEPALIVE itself is not checked");
    }
    assert_eq!(after.get("/api/fast").await.status, 200);
}

/// The `tr` (timer) column of the server's end of the connection between
/// `server_port` and `client_port`, from `/proc/net/tcp` text.
fn server_side_timer(table: &str, server_port: u16, client_port: u16) -> Option<u8> {
    let port = |address: &str| u16::from_str_radix(address.rsplit(':').next()?, 16).ok();
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, timer) = (fields.get(1)?, fields.get(2)?, fields.get(5)?);
        if port(local)? != server_port || port(remote)? != client_port {
            return None;
        }
        u8::from_str_radix(timer.split(':').next()?, 16).ok()
    })
}

#[tokio::test]
async fn the_policy_does_not_close_websocket_upgrades() {
    let (addr, lab) = start_server().await;
    lab.set_policy(&Owner::Anonymous, &PolicyPatch {
        keep_alive: Some(false),
        max_requests: Some(Some(1)),
        ..PolicyPatch::default()
    })
    .expect("a valid patch");
    // The upgrade is the connection's first (and max-th) request, with
    // keep-alive off: it must still become a working WebSocket.
    let mut viewer = Viewer::connect(addr).await;
    viewer
        .send_text(r#"{"type":"ping","client_time_ms":7}"#)
        .await;
    assert!(matches!(
        viewer.next_reply().await,
        ServerEvent::Pong { client_time_ms, .. } if client_time_ms == 7.0
    ));
    let own = viewer.conn_of_viewer(&viewer);
    assert!(lab.tracker().connection(own).is_some(), "still open");
}

#[tokio::test]
async fn a_closing_response_never_advertises_keep_alive() {
    // The server leaves `Keep-Alive` off the response after which it closes
    // (max_requests, keep_alive off). The same must hold when the client
    // asked for the close: `Keep-Alive: timeout=5, max=99` next to
    // `Connection: close`, or to an HTTP/1.0 client about to be closed on,
    // promises a reuse that will not happen.
    let (addr, _lab) = start_server().await;
    let mut client = Client::connect(addr).await;
    client
        .send_request_with("GET", "/api/fast", &[("Connection", "close")], b"")
        .await;
    let asked = client.read_response().await;
    assert_eq!(asked.header("connection"), Some("close"));
    assert!(client.read_to_close().await.is_empty());

    let mut old = Client::connect(addr).await;
    old.send_raw(b"GET /api/fast HTTP/1.0\r\n\r\n").await;
    let (bytes, _) = old.read_until_closed().await;
    let head = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
    assert!(head.starts_with("http/1.0 200"), "{head}");

    assert_eq!(
        asked.header("keep-alive"),
        None,
        "Connection: close from the client: {:?}",
        asked.headers
    );
    assert!(
        !head.contains("\r\nkeep-alive:"),
        "HTTP/1.0 without keep-alive, closed after the response: {head}"
    );
}
