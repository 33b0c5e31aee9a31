//! The TLS ports over real TLS, with a rustls client of our own (issue 13):
//! ALPN picks `h2` on the h2 port and `http/1.1` on the h1-only port; twelve
//! hangs on one HTTP/2 connection are twelve streams of one connection in the
//! lab's record, a release answers them all; close reasons are recorded
//! (the client's end, and `GOAWAY` at the idle timeout).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::{Viewer, within};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keepalive_lab_server::tls::{self, Identity, Offer};
use keepalive_lab_server::{Config, Lab};
use protocol::{CloseReason, ConnId, ServerEvent};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

/// A lab with its main port, an h2 TLS port and an h1-only TLS port.
struct TlsLab {
    addr: SocketAddr,
    h2: SocketAddr,
    h1: SocketAddr,
    lab: Lab,
    identity: Identity,
}

async fn start_tls(config: Config) -> TlsLab {
    let (addr, lab) = common::start_server_with(config).await;
    let identity = Identity::generate(&[]).expect("a certificate");
    let h2_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let h1_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let h2 = h2_listener.local_addr().expect("address");
    let h1 = h1_listener.local_addr().expect("address");
    let ports = vec![
        (
            h2_listener,
            tls::server_config(&identity, Offer::H2AndHttp11).expect("config"),
        ),
        (
            h1_listener,
            tls::server_config(&identity, Offer::Http11Only).expect("config"),
        ),
    ];
    tokio::spawn(tls::serve_all(ports, lab.clone()));
    TlsLab {
        addr,
        h2,
        h1,
        lab,
        identity,
    }
}

/// A TLS connection to `addr` that trusts only the lab's certificate and
/// offers ALPN `h2` and `http/1.1`, as a browser does.
async fn connect(addr: SocketAddr, identity: &Identity) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(identity.leaf()).expect("the lab's certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::IpAddress(addr.ip().into());
    within(
        "the TLS handshake",
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .expect("the TLS handshake (the certificate is valid for 127.0.0.1)")
}

/// An HTTP/2 client over `tls`, its connection driven by a task of its own
/// (returned, to see the connection end).
async fn h2_client(
    tls: TlsStream<TcpStream>,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<()>>,
) {
    let (send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("HTTP/2 handshake");
    (send, tokio::spawn(connection))
}

fn alpn(tls: &TlsStream<TcpStream>) -> Option<Vec<u8>> {
    tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

fn get(addr: SocketAddr, target: &str) -> hyper::Request<Empty<Bytes>> {
    hyper::Request::get(format!("https://{addr}{target}"))
        .body(Empty::new())
        .expect("a request")
}

/// The protocol of `conn`'s `connection_secured` event.
async fn secured(viewer: &mut Viewer, conn: ConnId) -> (String, Option<String>) {
    match viewer
        .next_matching(
            "connection_secured",
            |e| matches!(e, ServerEvent::ConnectionSecured { conn: c, .. } if *c == conn),
        )
        .await
    {
        ServerEvent::ConnectionSecured { protocol, alpn, .. } => (protocol, alpn),
        _ => unreachable!(),
    }
}

fn conn_id(response: &hyper::Response<hyper::body::Incoming>) -> ConnId {
    ConnId(
        response.headers()["x-conn-id"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("a number"),
    )
}

#[tokio::test]
async fn alpn_picks_h2_on_the_tls_port_and_http11_on_the_h1_only_port() {
    let lab = start_tls(common::config()).await;
    let mut viewer = Viewer::connect(lab.addr).await;

    let tls = connect(lab.h2, &lab.identity).await;
    assert_eq!(alpn(&tls).as_deref(), Some(&b"h2"[..]));
    let (mut send, _driver) = h2_client(tls).await;
    let response = within(
        "an HTTP/2 answer",
        send.send_request(get(lab.h2, "/api/fast?id=a")),
    )
    .await
    .expect("an answer");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    // Connection-specific headers are illegal in HTTP/2.
    assert!(response.headers().get("keep-alive").is_none());
    assert!(response.headers().get("connection").is_none());
    let h2_conn = conn_id(&response);
    assert_eq!(
        secured(&mut viewer, h2_conn).await,
        ("h2".to_owned(), Some("h2".to_owned()))
    );

    let tls = connect(lab.h1, &lab.identity).await;
    assert_eq!(alpn(&tls).as_deref(), Some(&b"http/1.1"[..]));
    let (mut send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);
    let request = hyper::Request::get("/api/fast?id=b")
        .header("host", lab.h1.to_string())
        .body(Empty::<Bytes>::new())
        .expect("a request");
    let response = within("an HTTP/1.1 answer", send.send_request(request))
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), hyper::Version::HTTP_11);
    // The same keep-alive policy as on the plain ports.
    assert!(response.headers().get("keep-alive").is_some());
    let h1_conn = conn_id(&response);
    assert_eq!(
        secured(&mut viewer, h1_conn).await,
        ("http/1.1".to_owned(), Some("http/1.1".to_owned()))
    );
    assert_ne!(h1_conn, h2_conn);
}

#[tokio::test]
async fn twelve_hangs_over_h2_are_twelve_streams_of_one_connection_released_at_once() {
    let lab = start_tls(common::config()).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let tls = connect(lab.h2, &lab.identity).await;
    let (send, driver) = h2_client(tls).await;

    let mut pending = Vec::new();
    for n in 1..=12 {
        let mut send = send.clone();
        let request = get(lab.h2, &format!("/api/hang?id=h2-{n}"));
        pending.push(tokio::spawn(
            async move { send.send_request(request).await },
        ));
    }
    // All twelve are at the server at once: no pool of six in the way.
    common::wait_for_hangs(&lab.lab, 12).await;
    let conn = match viewer
        .next_matching("connection_secured", |e| {
            matches!(e, ServerEvent::ConnectionSecured { .. })
        })
        .await
    {
        ServerEvent::ConnectionSecured { conn, protocol, .. } => {
            assert_eq!(protocol, "h2");
            conn
        }
        _ => unreachable!(),
    };

    let mut started = Vec::new();
    while started.len() < 12 {
        if let ServerEvent::RequestStarted { conn, seq, target, .. } = viewer
            .next_matching("request_started of a hang", |e| {
                matches!(e, ServerEvent::RequestStarted { target, .. } if target.starts_with("/api/hang"))
            })
            .await
        {
            started.push((conn, seq, target));
        }
    }
    assert!(
        started.iter().all(|(c, ..)| *c == conn),
        "one connection: {started:?}"
    );
    let mut seqs: Vec<u32> = started.iter().map(|(_, s, _)| *s).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=12).collect::<Vec<_>>(),
        "streams numbered 1 to 12"
    );
    let mut tags: Vec<String> = started.iter().map(|(.., t)| t.clone()).collect();
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len(), 12, "every tag once: {tags:?}");
    let open = common::connections(lab.addr).await;
    let record = open
        .iter()
        .find(|c| c.conn == conn)
        .expect("the connection is open");
    assert_eq!(
        record
            .requests
            .iter()
            .filter(|r| r.outcome.is_none())
            .count(),
        12
    );

    assert_eq!(common::release(lab.addr, "", "").await, 12);
    for answer in pending {
        let response = within("a released hang", answer)
            .await
            .expect("the task")
            .expect("an answer");
        assert_eq!(response.status(), 200);
        assert_eq!(conn_id(&response), conn);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("the body")
            .to_bytes();
        assert!(body.starts_with(b"{"), "{body:?}");
    }
    for _ in 0..12 {
        viewer
            .next_matching(
                "request_finished",
                |e| matches!(e, ServerEvent::RequestFinished { conn: c, .. } if *c == conn),
            )
            .await;
    }

    // The client goes away: the connection closes as the peer's doing.
    drop(send);
    let _ = within("the client's connection to end", driver).await;
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::PeerClosed);
    assert_eq!(closed.requests, 12);
}

#[tokio::test]
async fn an_idle_h2_connection_gets_goaway_and_closes_as_idle_timeout() {
    let lab = start_tls(common::config_with_idle(std::time::Duration::from_millis(
        300,
    )))
    .await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let tls = connect(lab.h2, &lab.identity).await;
    let (mut send, driver) = h2_client(tls).await;
    let response = within(
        "an answer",
        send.send_request(get(lab.h2, "/api/fast?id=idle")),
    )
    .await
    .expect("an answer");
    let conn = conn_id(&response);
    // The server says GOAWAY and closes; the client's connection ends.
    within("the server's GOAWAY", driver)
        .await
        .expect("the task")
        .expect("a clean end after GOAWAY");
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::IdleTimeout);
}

#[tokio::test]
async fn a_client_that_refuses_the_certificate_is_recorded_as_a_failed_handshake() {
    let lab = start_tls(common::config()).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    // A client that trusts another certificate: it refuses the lab's.
    let other = Identity::generate(&[]).expect("another certificate");
    let tcp = TcpStream::connect(lab.h2).await.expect("connect");
    let local = tcp.local_addr().expect("address");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(other.leaf()).expect("a root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let refused = TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(lab.h2.ip().into()), tcp)
        .await;
    assert!(refused.is_err());
    let opened = viewer
        .next_matching("the connection opened", |e| {
            matches!(e, ServerEvent::ConnectionOpened { peer, .. } if *peer == local.to_string())
        })
        .await;
    let ServerEvent::ConnectionOpened { conn, .. } = opened else {
        unreachable!()
    };
    let closed = viewer.closed(conn).await;
    match closed.reason {
        CloseReason::Error { message } => {
            assert!(message.starts_with("TLS handshake failed"), "{message}")
        }
        other => panic!("expected a failed handshake, got {other:?}"),
    }
}

#[tokio::test]
async fn shutdown_answers_a_hang_over_h2_says_goaway_and_records_shutdown() {
    let lab = start_tls(common::config()).await;
    // A subscriber that outlives the shutdown, to see every close.
    let (_, mut events) = lab.lab.subscribe(None);
    let tls = connect(lab.h2, &lab.identity).await;
    let (mut send, driver) = h2_client(tls).await;
    let hang = tokio::spawn(send.send_request(get(lab.h2, "/api/hang?id=held")));
    common::wait_for_hangs(&lab.lab, 1).await;

    lab.lab.begin_shutdown();
    let answer = within("the hang's answer", hang)
        .await
        .expect("the task")
        .expect("an answer");
    assert_eq!(answer.status(), 503);
    let conn = conn_id(&answer);
    within("the connection to end after GOAWAY", driver)
        .await
        .expect("the task")
        .expect("a clean end");
    let reason = within("the close", async {
        loop {
            match events.recv().await {
                Ok(ServerEvent::ConnectionClosed {
                    conn: c, reason, ..
                }) if c == conn => {
                    break reason;
                }
                Ok(_) => {}
                Err(e) => panic!("the event stream ended: {e}"),
            }
        }
    })
    .await;
    assert_eq!(reason, CloseReason::Shutdown);
}

#[tokio::test]
async fn api_tls_lists_the_tls_ports_and_they_are_the_labs_own_origins() {
    let lab = start_tls(common::config()).await;
    let response = common::get_once(lab.addr, "/api/tls").await;
    assert_eq!(response.status, 200, "{}", response.text());
    let listed: protocol::TlsListeners =
        serde_json::from_slice(&response.body).expect("TlsListeners");
    assert_eq!(listed.h2, vec![lab.h2.to_string()]);
    assert_eq!(listed.http1_only, vec![lab.h1.to_string()]);
    assert_eq!(
        listed.max_concurrent_streams,
        Some(tls::MAX_CONCURRENT_STREAMS)
    );
    assert!(
        lab.lab
            .origins()
            .allows_origin(&format!("https://localhost:{}", lab.h2.port()))
    );
    let bad = common::get_once(lab.addr, "/api/tls?x=1").await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn a_hang_timeout_over_h2_resets_its_stream_and_the_connection_goes_on() {
    let mut config = common::config();
    config.policy.hang_timeout_ms = Some(200);
    let lab = start_tls(config).await;
    let mut viewer = Viewer::connect(lab.addr).await;
    let tls = connect(lab.h2, &lab.identity).await;
    let (mut send, driver) = h2_client(tls).await;
    let reset = within(
        "the hang's stream reset",
        send.send_request(get(lab.h2, "/api/hang?id=late")),
    )
    .await;
    assert!(reset.is_err(), "the stream is reset, unanswered: {reset:?}");
    // The same connection still answers.
    let response = within(
        "an answer after the reset",
        send.send_request(get(lab.h2, "/api/fast?id=after")),
    )
    .await
    .expect("an answer");
    assert_eq!(response.status(), 200);
    let conn = conn_id(&response);
    drop((response, send));
    let _ = within("the client's connection to end", driver).await;
    let closed = viewer.closed(conn).await;
    assert_eq!(closed.reason, CloseReason::PeerClosed);
    assert_eq!(closed.requests, 2);
}

#[tokio::test]
async fn api_close_over_h2_is_refused_with_a_hint() {
    let lab = start_tls(common::config()).await;
    let tls = connect(lab.h2, &lab.identity).await;
    let (mut send, _driver) = h2_client(tls).await;
    let response = within(
        "an answer",
        send.send_request(get(lab.h2, "/api/close?mode=fin")),
    )
    .await
    .expect("an answer");
    assert_eq!(response.status(), 400);
    let response = within(
        "the connection goes on",
        send.send_request(get(lab.h2, "/api/fast")),
    )
    .await
    .expect("an answer");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_limited_port_says_four_streams_and_a_client_holds_the_rest_back() {
    let (addr, lab) = common::start_server_with(common::config()).await;
    let identity = Identity::generate(&[]).expect("a certificate");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let limited = listener.local_addr().expect("address");
    let config = tls::server_config(&identity, Offer::H2AndHttp11).expect("config");
    tokio::spawn(tls::serve_ports(
        vec![(listener, config, tls::LIMITED_STREAMS)],
        lab.clone(),
    ));
    let listed: protocol::TlsListeners =
        serde_json::from_slice(&common::get_once(addr, "/api/tls").await.body).expect("JSON");
    assert_eq!(listed.h2_limited, vec![limited.to_string()]);
    assert_eq!(listed.limited_streams, Some(tls::LIMITED_STREAMS));
    assert!(listed.h2.is_empty(), "{listed:?}");

    let tls = connect(limited, &identity).await;
    let (send, _driver) = h2_client(tls).await;
    // One answered request first, so the client has read the server's
    // SETTINGS (a client may open streams before it has; the server then
    // refuses the ones over the limit with REFUSED_STREAM).
    let first = send
        .clone()
        .send_request(get(limited, "/api/fast"))
        .await
        .expect("a first answer");
    assert_eq!(first.status(), 200);
    let mut pending = Vec::new();
    for n in 1..=6 {
        let mut send = send.clone();
        let request = get(limited, &format!("/api/hang?id=limited-{n}"));
        pending.push(tokio::spawn(
            async move { send.send_request(request).await },
        ));
    }
    // The client honours SETTINGS_MAX_CONCURRENT_STREAMS: four at the server,
    // two waiting in the client, on the one connection.
    common::wait_for_hangs(&lab, 4).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(lab.hangs().len(), 4, "four streams at once");
    let everyone = keepalive_lab_server::sessions::Access::All;
    let all = protocol::ReleaseRequest {
        request: None,
        id: None,
    };
    assert_eq!(lab.hangs().release(&all, &everyone), 4);
    common::wait_for_hangs(&lab, 2).await;
    assert_eq!(lab.hangs().release(&all, &everyone), 2);
    for answer in pending {
        let response = answer.await.expect("task").expect("response");
        assert_eq!(response.status(), 200);
    }
}
