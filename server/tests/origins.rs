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
async fn a_single_listener_lab_lists_what_it_was_given() {
    // `start_server` leaves `Config.listeners` empty: nothing is made up.
    let (addr, _lab) = start_server().await;
    assert!(Viewer::connect(addr).await.listeners.is_empty());
}

#[tokio::test]
async fn a_cross_origin_request_may_read_the_lab_headers_with_credentials() {
    let (addr, _lab) = start_server().await;
    let mut client = Client::connect(addr).await;
    client
        .send_request_with(
            "GET",
            "/api/fast?id=cors",
            &[("Origin", "http://localhost:1234")],
            b"",
        )
        .await;
    let response = client.read_response().await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("http://localhost:1234")
    );
    assert_eq!(
        response.header("access-control-allow-credentials"),
        Some("true")
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
        assert!(exposed.contains(name), "{name} in {exposed:?}");
    }
    assert_eq!(response.header("timing-allow-origin"), Some("*"));
}

#[tokio::test]
async fn a_preflight_is_answered_with_the_allowed_methods() {
    let (addr, _lab) = start_server().await;
    let mut client = Client::connect(addr).await;
    client
        .send_request_with(
            "OPTIONS",
            "/api/release",
            &[
                ("Origin", "http://localhost:1234"),
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
        Some("http://localhost:1234")
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
        .send_request_with(
            "POST",
            "/api/release",
            &[("Origin", "http://localhost:1234")],
            b"",
        )
        .await;
    let release = client.read_response().await;
    assert_eq!(release.status, 200, "{}", release.text());
    assert_eq!(release.json(), serde_json::json!({"released": 0}));
    assert_eq!(release.conn_id(), response.conn_id());
}
