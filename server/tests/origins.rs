//! One lab behind several listeners (the second origin, IPv6 loopback), and
//! CORS, which lets a page on one origin read the lab's headers on another.

mod common;

use std::net::SocketAddr;

use common::{Client, Viewer, serve_listeners, start_server};
use protocol::{ConnId, ServerEvent};
use tokio::net::TcpListener;

/// The `connection_opened` of `conn`: its listener's address and port.
async fn arrived_on(viewer: &mut Viewer, conn: ConnId) -> (String, u16) {
    match viewer
        .next_matching(
            &format!("connection_opened of {conn}"),
            |e| matches!(e, ServerEvent::ConnectionOpened { conn: c, .. } if *c == conn),
        )
        .await
    {
        ServerEvent::ConnectionOpened {
            local_addr,
            local_port,
            ..
        } => (local_addr, local_port),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn each_listener_is_told_apart_in_the_events_and_listed_in_the_snapshot() {
    let mut listeners = vec![
        TcpListener::bind("127.0.0.1:0").await.expect("bind main"),
        TcpListener::bind("127.0.0.1:0").await.expect("bind second"),
    ];
    match TcpListener::bind("[::1]:0").await {
        Ok(v6) => listeners.push(v6),
        Err(e) => println!("note: no IPv6 loopback here ({e}); checking the IPv4 listeners only"),
    }
    let (addrs, _lab) = serve_listeners(listeners, common::config()).await;
    assert_ne!(addrs[0].port(), addrs[1].port());

    let mut viewer = Viewer::connect(addrs[0]).await;
    let expected: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    assert_eq!(viewer.listeners, expected, "every listener, in order");

    let mut conns = Vec::new();
    for addr in &addrs {
        let mut client = Client::connect(*addr).await;
        let first = client.get("/api/fast?id=origin").await;
        let second = client.get("/api/fast?id=origin").await;
        assert_eq!(first.status, 200, "{addr}");
        assert_eq!(second.conn_id(), first.conn_id(), "{addr}: kept alive");
        let conn = first.conn_id();
        let (local_addr, local_port) = arrived_on(&mut viewer, conn).await;
        assert_eq!(local_addr, addr.to_string(), "{conn}");
        assert_eq!(local_port, addr.port(), "{conn}");
        conns.push(conn);
    }
    let mut distinct = conns.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        addrs.len(),
        "one connection id each: {conns:?}"
    );
    if let Some(v6) = addrs.get(2) {
        assert!(v6.is_ipv6());
        println!("checked IPv6 loopback too: {v6}");
    }

    // The snapshot over HTTP agrees, on any listener.
    let response = common::get_once(addrs[1], "/api/connections").await;
    match serde_json::from_slice(&response.body).unwrap() {
        ServerEvent::Snapshot { listeners, .. } => assert_eq!(listeners, expected),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_single_listener_lab_lists_the_address_it_serves() {
    // `start_server` leaves `Config.listeners` empty; `serve` adds the
    // address it really serves (it is also the lab's own origin).
    let (addr, _lab) = start_server().await;
    assert_eq!(Viewer::connect(addr).await.listeners, [addr.to_string()]);
}

/// The lab's own origin under another host name than the one the request
/// went to: a page on `http://localhost:PORT` calling `127.0.0.1:PORT` is a
/// cross-origin request in the browser's eyes, and CORS must answer it.
fn own_other_origin(addr: SocketAddr) -> String {
    format!("http://localhost:{}", addr.port())
}

#[tokio::test]
async fn a_cross_origin_request_from_an_own_origin_may_read_the_lab_headers_with_credentials() {
    let (addr, _lab) = start_server().await;
    let origin = own_other_origin(addr);
    let mut client = Client::connect(addr).await;
    client
        .send_request_with("GET", "/api/fast?id=cors", &[("Origin", &origin)], b"")
        .await;
    let response = client.read_response().await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_cors_for(&response, &origin, "a routed answer");
}

/// `response` lets a page at `origin` read it and the lab's headers, with
/// credentials, as the router's CORS layer answers.
fn assert_cors_for(response: &common::Response, origin: &str, what: &str) {
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some(origin),
        "{what}: {response:?}"
    );
    assert_eq!(
        response.header("access-control-allow-credentials"),
        Some("true"),
        "{what}"
    );
    let exposed = response
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for name in [
        protocol::headers::CONN_ID,
        protocol::headers::REQUEST_SEQ,
        protocol::headers::REQUEST_ID,
    ] {
        assert!(exposed.contains(name), "{what}: {name} in {exposed:?}");
    }
    let vary = response
        .header("vary")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(vary.contains("origin"), "{what}: vary {vary:?}");
    assert_eq!(response.header("timing-allow-origin"), Some("*"), "{what}");
}

/// What the accept loop refuses before routing (a session this server did
/// not issue, a session at its cap, a wrong or empty bearer key) never
/// passes the router's CORS layer: it is given the same headers, so that the
/// lab's own page on its second origin reads the error and its hint instead
/// of an opaque network error; a foreign page still gets none.
#[tokio::test]
async fn a_refusal_before_routing_carries_cors_for_an_own_origin_only() {
    let listeners = vec![
        TcpListener::bind("127.0.0.1:0").await.expect("bind main"),
        TcpListener::bind("127.0.0.1:0").await.expect("bind second"),
    ];
    let config = keepalive_lab_server::Config {
        max_in_flight_per_session: 2,
        ..common::config()
    };
    let (addrs, lab) = serve_listeners(listeners, config).await;
    let (main, second) = (addrs[0], addrs[1]);
    let full = common::issue_session(main).await;
    let _held = common::send_each(main, 2, |i| format!("/api/hang?session={full}&id={i}")).await;
    common::wait_for_hangs(&lab, 2).await;
    let own = format!("http://127.0.0.1:{}", second.port());
    let full_target = format!("/api/fast?session={full}");
    let refusals: [(&str, &str, Option<&str>, u16); 4] = [
        (
            "a session not issued",
            "/api/fast?session=s-0000",
            None,
            403,
        ),
        ("a session at its cap", &full_target, None, 503),
        ("a wrong key", "/api/fast", Some("Bearer wrong-key"), 403),
        ("Bearer without a key", "/api/fast", Some("Bearer"), 400),
    ];
    for (what, target, authorization, status) in refusals {
        for origin in [own.as_str(), "http://evil.example"] {
            let mut headers = vec![("Origin", origin)];
            headers.extend(authorization.map(|a| ("Authorization", a)));
            let mut client = Client::connect(main).await;
            client.send_request_with("GET", target, &headers, b"").await;
            let response = client.read_response().await;
            response.error_body();
            if origin == own {
                assert_eq!(response.status, status, "{what}: {response:?}");
                assert_cors_for(&response, &own, what);
            } else {
                assert_eq!(response.status, 403, "{what} from {origin}");
                assert_eq!(response.header("access-control-allow-origin"), None);
                assert_eq!(response.header("access-control-allow-credentials"), None);
            }
        }
    }
    assert_eq!(
        common::release(main, &format!("?key={}", common::KEY), "").await,
        2
    );
}

#[tokio::test]
async fn a_preflight_from_an_own_origin_is_answered_with_the_allowed_methods() {
    let (addr, _lab) = start_server().await;
    let origin = own_other_origin(addr);
    let mut client = Client::connect(addr).await;
    client
        .send_request_with(
            "OPTIONS",
            "/api/release",
            &[
                ("Origin", &origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            b"",
        )
        .await;
    let response = client.read_response().await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some(origin.as_str())
    );
    assert_eq!(
        response.header("access-control-allow-credentials"),
        Some("true")
    );
    let methods = response
        .header("access-control-allow-methods")
        .unwrap_or_else(|| panic!("allow-methods: {response:?}"));
    assert!(methods.contains("POST"), "{methods}");
    let headers = response
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(headers.contains("content-type"), "{headers}");
    // The page's actual request follows on the same connection.
    client
        .send_request_with("POST", "/api/release", &[("Origin", &origin)], b"")
        .await;
    let release = client.read_response().await;
    assert_eq!(release.status, 200, "{}", release.text());
    assert_eq!(release.json(), serde_json::json!({"released": 0}));
    assert_eq!(release.conn_id(), response.conn_id());
}

#[tokio::test]
async fn a_foreign_origin_is_refused_before_anything_happens_and_gets_no_cors() {
    let (addr, lab) = start_server().await;
    let mut viewer = Viewer::connect(addr).await;
    let mut held = Client::connect(addr).await;
    held.send_request("GET", "/api/hang?id=victim", b"").await;
    common::wait_for_hangs(&lab, 1).await;
    let foreign = [
        "http://evil.example".to_owned(),
        "http://evil.example:8080".to_owned(),
        format!("http://evil.example:{}", addr.port()),
        // The lab's host names, but a port it does not listen on.
        "http://localhost:1234".to_owned(),
        "http://127.0.0.1:1".to_owned(),
        "null".to_owned(),
        format!("http://127.0.0.1:{}/path", addr.port()),
        format!("file://127.0.0.1:{}", addr.port()),
    ];
    for origin in &foreign {
        for (method, target) in [
            ("POST", "/api/release"),
            ("GET", "/api/connections"),
            ("PUT", "/api/config"),
            ("OPTIONS", "/api/release"),
        ] {
            let mut client = Client::connect(addr).await;
            let body: &[u8] = if method == "PUT" {
                br#"{"keep_alive": false}"#
            } else {
                b""
            };
            client
                .send_request_with(
                    method,
                    target,
                    &[
                        ("Origin", origin),
                        ("Access-Control-Request-Method", "POST"),
                    ],
                    body,
                )
                .await;
            let response = client.read_response().await;
            assert_eq!(
                response.status, 403,
                "{origin} {method} {target}: {response:?}"
            );
            let error = response.error_body();
            assert!(error.error.contains("refused"), "{error:?}");
            assert_eq!(
                response.header("access-control-allow-origin"),
                None,
                "no CORS for {origin}"
            );
            // The refusal is still on the record.
            let request = response.request_id();
            let timeline = viewer.timeline(request).await;
            assert_eq!(timeline.response.map(|(_, s)| s), Some(403));
        }
    }
    // Nothing happened: the hang is still held, the policy unchanged.
    assert_eq!(lab.hangs().len(), 1);
    assert_eq!(
        lab.policy(&keepalive_lab_server::sessions::Owner::Anonymous),
        protocol::ServerPolicy::default()
    );
    assert!(!held.has_pending_bytes());
    assert_eq!(common::release(addr, "", "").await, 1);
}

#[tokio::test]
async fn a_foreign_host_is_refused_and_a_missing_host_is_served() {
    let (addr, _lab) = start_server().await;
    let port = addr.port();
    for host in [
        format!("rebound.example:{port}"),
        "rebound.example".to_owned(),
        format!("127.0.0.1:{}", port.wrapping_add(1).max(1)),
        "127.0.0.1".to_owned(),
        format!("localhost.evil.example:{port}"),
    ] {
        let mut client = Client::connect(addr).await;
        client
            .send_request_with("GET", "/api/fast", &[("Host", &host)], b"")
            .await;
        let response = client.read_response().await;
        assert_eq!(response.status, 403, "Host: {host}: {response:?}");
        assert!(response.error_body().error.contains("host"), "Host: {host}");
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        format!("[::1]:{port}"),
    ] {
        let mut client = Client::connect(addr).await;
        client
            .send_request_with("GET", "/api/fast", &[("Host", &host)], b"")
            .await;
        assert_eq!(client.read_response().await.status, 200, "Host: {host}");
    }
    // No Host line at all (the test client's default).
    assert_eq!(common::get_once(addr, "/api/fast").await.status, 200);
}

/// Only the first of two `Host` (or `Origin`) headers would be checked, so
/// a request with two is refused (RFC 9112 §3.2), the lab's own first.
#[tokio::test]
async fn a_repeated_host_or_origin_header_is_refused() {
    let (addr, _lab) = start_server().await;
    let own = format!("127.0.0.1:{}", addr.port());
    let own_origin = format!("http://{own}");
    for (name, second) in [("Host", "evil.example"), ("Origin", "http://evil.example")] {
        let first = if name == "Host" { &own } else { &own_origin };
        let mut client = Client::connect(addr).await;
        client
            .send_request_with("GET", "/api/fast", &[(name, first), (name, second)], b"")
            .await;
        let response = client.read_response().await;
        assert_eq!(response.status, 400, "two {name}: {response:?}");
        assert!(response.error_body().error.contains(name), "two {name}");
    }
}

#[tokio::test]
async fn a_websocket_upgrade_from_a_foreign_origin_is_refused() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (addr, _lab) = start_server().await;
    let mut request = format!("ws://{addr}/api/events")
        .into_client_request()
        .expect("a request");
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    match common::within(
        "the refused handshake",
        tokio_tungstenite::connect_async(request),
    )
    .await
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403);
            let body = response.body().clone().unwrap_or_default();
            let error: protocol::ErrorBody =
                serde_json::from_slice(&body).expect("a JSON error body");
            assert!(error.error.contains("evil.example"), "{error:?}");
        }
        Ok(_) => panic!("a foreign page must not open /api/events"),
        Err(other) => panic!("expected a 403 answer, got {other}"),
    }
    // The lab's own origin (another of its host names) may.
    let mut own = format!("ws://{addr}/api/events")
        .into_client_request()
        .expect("a request");
    own.headers_mut()
        .insert("origin", own_other_origin(addr).parse().unwrap());
    let (ws, response) = common::within("the handshake", tokio_tungstenite::connect_async(own))
        .await
        .expect("an own origin may connect");
    assert_eq!(response.status().as_u16(), 101);
    drop(ws);
}

/// A GET of `target` with `headers` on a connection of its own.
async fn get_with(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> common::Response {
    let mut client = Client::connect(addr).await;
    client.send_request_with("GET", target, headers, b"").await;
    client.read_response().await
}

/// Found in review: a browser sends no `Origin` on a no-cors GET (`<img
/// src>`, `fetch(url, {mode: 'no-cors'})`) or a link followed, so another
/// site's page held hangs in the room's anonymous scope. Its
/// `Sec-Fetch-Site` (`cross-site`, `same-site`) gives it away: refused with
/// 403 before anything is held. Without the header (curl), `same-origin`
/// and `none` (an address typed) are served, and so is the lab's own page
/// on another of its origins, which sends `Origin`.
#[tokio::test]
async fn another_sites_request_to_the_api_without_an_origin_is_refused() {
    let (addr, lab) = start_server().await;
    for site in ["cross-site", "same-site", "Cross-Site"] {
        for target in [
            "/api/hang?id=evil-img",
            "/api/fast?id=evil",
            "/api/slow?ms=0",
        ] {
            let response = get_with(addr, target, &[("Sec-Fetch-Site", site)]).await;
            assert_eq!(response.status, 403, "{site} {target}: {response:?}");
            let error = response.error_body();
            assert!(error.error.contains("another site"), "{error:?}");
            assert!(!error.hint.is_empty(), "{error:?}");
            assert_eq!(response.header("access-control-allow-origin"), None);
        }
    }
    // Nothing was held: the hangs were refused, not admitted.
    assert_eq!(lab.hangs().len(), 0);
    assert_eq!(common::release(addr, "", "").await, 0);

    let own = own_other_origin(addr);
    for headers in [
        vec![("Sec-Fetch-Site", "same-origin")],
        vec![("Sec-Fetch-Site", "none")],
        vec![],
        // The lab's own page on another of its origins: a CORS fetch.
        vec![("Sec-Fetch-Site", "cross-site"), ("Origin", own.as_str())],
    ] {
        let response = get_with(addr, "/api/fast?id=own", &headers).await;
        assert_eq!(response.status, 200, "{headers:?}: {response:?}");
    }
    // Another site's page that does send `Origin` is refused by it, as before.
    let response = get_with(
        addr,
        "/api/fast?id=evil",
        &[
            ("Sec-Fetch-Site", "cross-site"),
            ("Origin", "http://evil.example"),
        ],
    )
    .await;
    assert_eq!(response.status, 403, "{response:?}");
    assert!(response.error_body().error.contains("evil.example"));
}

/// The page's files are not the API: a link on a slide (another site) to
/// `http://127.0.0.1:8080/#lesson=six-lanes` still opens the page.
#[tokio::test]
async fn another_sites_link_to_the_page_still_opens_it() {
    let dist = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("keepalive-lab-dist-sec-fetch-site");
    std::fs::create_dir_all(&dist).expect("a dist directory");
    std::fs::write(dist.join("index.html"), b"<!doctype html>").expect("a file");
    std::fs::write(dist.join("app.js"), b"export {};").expect("a file");
    let (addr, _lab) = common::start_server_with(keepalive_lab_server::Config {
        dist_dir: dist,
        ..common::config()
    })
    .await;
    for site in ["cross-site", "same-site"] {
        for target in ["/", "/index.html", "/app.js"] {
            let response = get_with(addr, target, &[("Sec-Fetch-Site", site)]).await;
            assert_eq!(response.status, 200, "{site} {target}: {response:?}");
        }
    }
}

/// An absolute-form target (`GET http://127.0.0.1:PORT/…`, as a proxy
/// forwards) is addressed to the authority it names, and `Host` is ignored
/// (RFC 9112 §3.2.2): the lab's own authority is served whatever `Host`
/// says, and a foreign one refused whatever `Host` says (found in review:
/// the check read `Host`, the other way round).
#[tokio::test]
async fn an_absolute_form_target_is_checked_by_its_own_authority() {
    let (addr, _lab) = start_server().await;
    for (target, host, status) in [
        (format!("http://{addr}/api/fast"), "evil.example", 200),
        (
            "http://evil.example/api/fast".to_owned(),
            &*format!("{addr}"),
            403,
        ),
    ] {
        let mut client = Client::connect(addr).await;
        client
            .send_raw(format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await;
        let response = client.read_response().await;
        assert_eq!(response.status, status, "{target}: {}", response.text());
    }
}
