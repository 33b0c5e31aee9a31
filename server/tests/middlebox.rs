//! The middlebox over real TCP on 127.0.0.1: standalone in front of a plain
//! `TcpListener` the test drives by hand, through its command line, and in
//! the lab in front of the lab's own server.
//!
//! Timeouts are scaled to about a second; waits are bounded generously and no
//! test asserts how fast anything happened, only what happened and in which
//! order (a 2-core machine under load is slow, not wrong).

mod common;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::SinkExt;
use keepalive_lab_server::middlebox::{Limits, Middlebox, cli, serve_in_lab};
use protocol::{
    CloseHow, MappingId, MiddleboxEvent, MiddleboxSettings, MiddleboxView, OnExpiry, Party, Preset,
    RefreshCause, ServerEvent, SessionId, Side,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

use common::{Client, Viewer, issue_session, request_once, start_server};

/// Upper bound for one wait in these tests (a safety net, not a speed test).
const WAIT: Duration = Duration::from_secs(15);

/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(600);

/// A preset scaled to an idle timeout of about one second.
fn about_a_second(preset: Preset) -> MiddleboxSettings {
    let scale = u32::try_from(preset.spec().idle_timeout_ms / 1000).expect("a small scale");
    let settings = preset.settings(scale);
    assert_eq!(settings.in_force_ms(), 1000, "{preset:?}");
    settings
}

/// The middlebox events of one stream, kept in order.
struct Events {
    rx: broadcast::Receiver<Arc<ServerEvent>>,
    seen: Vec<(MappingId, MiddleboxEvent)>,
    cursor: usize,
}

impl Events {
    fn new(rx: broadcast::Receiver<Arc<ServerEvent>>) -> Events {
        Events {
            rx,
            seen: Vec::new(),
            cursor: 0,
        }
    }

    /// The next event after the previous match that satisfies `pred`.
    async fn next(
        &mut self,
        what: &str,
        pred: impl Fn(&MiddleboxEvent) -> bool,
    ) -> (MappingId, MiddleboxEvent) {
        let found = tokio::time::timeout(WAIT, async {
            loop {
                if let Some(offset) = self.seen[self.cursor..].iter().position(|(_, e)| pred(e)) {
                    let index = self.cursor + offset;
                    self.cursor = index + 1;
                    return self.seen[index].clone();
                }
                match self.rx.recv().await.as_deref() {
                    Ok(ServerEvent::Middlebox { mapping, event, .. }) => {
                        self.seen.push((*mapping, event.clone()))
                    }
                    Ok(_) => {}
                    Err(e) => panic!("event stream: {e}"),
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no {what} within {WAIT:?}; saw {:#?}", self.seen))
    }

    /// The mapping's `closed` event, waited for.
    async fn closed(&mut self) -> Closed {
        let (_, closed) = self
            .next("closed", |e| matches!(e, MiddleboxEvent::Closed { .. }))
            .await;
        let MiddleboxEvent::Closed {
            by,
            how,
            after_expiry,
            client_bytes,
            server_bytes,
            dropped_bytes,
        } = closed
        else {
            unreachable!()
        };
        Closed {
            by,
            how,
            after_expiry,
            client_bytes,
            server_bytes,
            dropped_bytes,
        }
    }

    /// Takes in whatever has been recorded by now, without waiting.
    fn drain(&mut self) {
        while let Ok(event) = self.rx.try_recv() {
            if let ServerEvent::Middlebox { mapping, event, .. } = &*event {
                self.seen.push((*mapping, event.clone()));
            }
        }
    }

    fn any(&self, pred: impl Fn(&MiddleboxEvent) -> bool) -> bool {
        self.seen.iter().any(|(_, e)| pred(e))
    }

    /// Bytes from `side` recorded `dropped` so far (late, after expiry).
    fn dropped_bytes(&self, side: Side) -> u64 {
        self.seen
            .iter()
            .filter_map(|(_, e)| match e {
                MiddleboxEvent::Dropped { side: s, bytes, .. } if *s == side => Some(*bytes),
                _ => None,
            })
            .sum()
    }

    /// Bytes of data read from `side` so far, as recorded.
    fn data_read(&self, side: Side) -> u64 {
        refreshed(&self.seen, side, RefreshCause::Data).0
    }
}

/// The bytes and the count `refreshed` events among `seen` report from
/// `side` by `by`.
fn refreshed(seen: &[(MappingId, MiddleboxEvent)], side: Side, by: RefreshCause) -> (u64, u32) {
    seen.iter()
        .filter_map(|(_, e)| match e {
            MiddleboxEvent::Refreshed {
                side: s,
                by: b,
                bytes,
                count,
            } if *s == side && *b == by => Some((*bytes, *count)),
            _ => None,
        })
        .fold((0, 0), |(bytes, count), (b, c)| (bytes + b, count + c))
}

/// The fields of a mapping's `closed` event.
#[derive(Debug)]
struct Closed {
    by: Party,
    how: CloseHow,
    after_expiry: bool,
    client_bytes: u64,
    server_bytes: u64,
    dropped_bytes: u64,
}

impl Closed {
    /// `client_bytes`, `server_bytes` and `dropped_bytes`.
    fn totals(&self) -> (u64, u64, u64) {
        (self.client_bytes, self.server_bytes, self.dropped_bytes)
    }
}

/// A mapping whose timeout (60 s) does not come into it, after the client's
/// one byte reached the server: the rig, the client, the server.
#[cfg(target_os = "linux")]
async fn one_byte_through_a_long_timeout() -> (Rig, TcpStream, TcpStream) {
    let mut rig = Rig::start(aws_nat_timing_out_after(60_000), limits()).await;
    let (mut client, mut server) = rig.pair().await;
    client.write_all(b"q").await.unwrap();
    read_n(&mut server, 1).await;
    (rig, client, server)
}

/// A standalone middlebox in front of a fresh listener the test accepts on.
struct Rig {
    middlebox: Middlebox,
    address: SocketAddr,
    upstream: TcpListener,
    events: Events,
}

impl Rig {
    async fn start(settings: MiddleboxSettings, limits: Limits) -> Rig {
        Rig::start_before(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            settings,
            limits,
        )
        .await
    }

    /// As [`Rig::start`], in front of `upstream`.
    async fn start_before(
        upstream: TcpListener,
        settings: MiddleboxSettings,
        limits: Limits,
    ) -> Rig {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let middlebox = Middlebox::standalone(upstream.local_addr().unwrap(), settings, limits);
        let events = Events::new(middlebox.events());
        let serving = middlebox.clone();
        tokio::spawn(async move { serving.serve(listener).await });
        Rig {
            middlebox,
            address,
            upstream,
            events,
        }
    }

    /// A client through the middlebox and the server's end of its mapping.
    async fn pair(&mut self) -> (TcpStream, TcpStream) {
        let client = within("connect", TcpStream::connect(self.address))
            .await
            .unwrap();
        let (server, _) = within("the middlebox's connection", self.upstream.accept())
            .await
            .unwrap();
        (client, server)
    }
}

impl Rig {
    /// As [`Rig::pair`], with a client that takes little (4 KiB of receive
    /// buffer).
    async fn pair_with_a_client_that_takes_little(&mut self) -> (TcpStream, TcpStream) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let client = within("connect", socket.connect(self.address))
            .await
            .unwrap();
        let (server, _) = within("the middlebox's connection", self.upstream.accept())
            .await
            .unwrap();
        (client, server)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.middlebox.stop();
    }
}

async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?} waiting for {what}"))
}

/// Reads exactly `n` bytes.
async fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    within("bytes", stream.read_exact(&mut buf)).await.unwrap();
    buf
}

/// Whether nothing at all (no byte, no FIN, no RST) arrives for [`QUIET`].
async fn nothing_arrives(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    tokio::time::timeout(QUIET, stream.read(&mut buf))
        .await
        .is_err()
}

/// How a read ended: bytes, FIN or an error.
async fn read_outcome(stream: &mut TcpStream) -> io::Result<usize> {
    let mut buf = [0u8; 256];
    within("the connection to end", stream.read(&mut buf)).await
}

fn limits() -> Limits {
    Limits {
        max_linger: Duration::from_secs(20),
        ..Limits::default()
    }
}

/// In front of a name's several addresses (`--upstream localhost:…`), a
/// mapping connects to the first that answers (found in review: the first
/// alone was used, so where `localhost` is `::1` first a service on
/// 127.0.0.1 was out of reach): here the first refuses.
#[tokio::test]
async fn a_mapping_reaches_the_first_of_the_upstreams_addresses_that_answers() {
    let refusing = {
        let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        gone.local_addr().unwrap()
    };
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let middlebox = Middlebox::standalone_to(
        &[refusing, upstream.local_addr().unwrap()],
        about_a_second(Preset::AwsNat),
        limits(),
    );
    let serving = middlebox.clone();
    tokio::spawn(async move { serving.serve(listener).await });
    let mut client = within("connect", TcpStream::connect(address))
        .await
        .unwrap();
    let (mut server, _) = within("the mapping's connection", upstream.accept())
        .await
        .unwrap();
    client.write_all(b"ping").await.unwrap();
    assert_eq!(read_n(&mut server, 4).await, b"ping");
    server.write_all(b"pong").await.unwrap();
    assert_eq!(read_n(&mut client, 4).await, b"pong");
    middlebox.stop();
}

#[tokio::test]
async fn data_in_either_direction_refreshes_the_mapping() {
    let mut rig = Rig::start(about_a_second(Preset::AwsNat), limits()).await;
    let (mut client, mut server) = rig.pair().await;
    let (mapping, opened) = rig
        .events
        .next("opened", |e| matches!(e, MiddleboxEvent::Opened { .. }))
        .await;
    let MiddleboxEvent::Opened {
        settings,
        in_force_ms,
        ..
    } = opened
    else {
        unreachable!()
    };
    assert_eq!((settings.preset, in_force_ms), (Preset::AwsNat, 1000));
    // Ten round trips 250 ms apart: 2.5 s in all, longer than the timeout,
    // never idle for long.
    for i in 0..10u8 {
        let side_to_speak = i % 2 == 0;
        if side_to_speak {
            client.write_all(&[i]).await.unwrap();
            assert_eq!(read_n(&mut server, 1).await, [i]);
        } else {
            server.write_all(&[i]).await.unwrap();
            assert_eq!(read_n(&mut client, 1).await, [i]);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    rig.events.drain();
    assert!(
        !rig.events
            .any(|e| matches!(e, MiddleboxEvent::Expired { .. })),
        "traffic kept it alive: {:#?}",
        rig.events.seen
    );
    for side in [Side::Client, Side::Server] {
        assert!(
            rig.events.any(|e| matches!(e, MiddleboxEvent::Refreshed { side: s, by: RefreshCause::Data, bytes, .. } if *s == side && *bytes > 0)),
            "{side:?} data refreshed it: {:#?}",
            rig.events.seen
        );
    }
    // Then silence: it expires after (at least) the timeout.
    let (expired_mapping, expired) = rig
        .events
        .next("expired", |e| matches!(e, MiddleboxEvent::Expired { .. }))
        .await;
    assert_eq!(expired_mapping, mapping);
    let MiddleboxEvent::Expired {
        idle_ms,
        on_expiry,
        transitory,
    } = expired
    else {
        unreachable!()
    };
    assert!(idle_ms >= 1000, "idle {idle_ms} ms");
    assert_eq!(on_expiry, OnExpiry::Rst);
    assert!(
        !transitory,
        "AWS NAT has no shorter timer for a closing connection"
    );
}

#[tokio::test]
async fn a_mapping_expires_its_timeout_after_the_last_data_and_says_how_long_it_was_idle() {
    // 5 s in force: the middlebox looks at TCP_INFO once a second.
    let settings = MiddleboxSettings {
        preset: Preset::Custom,
        idle_timeout_ms: 5_000,
        on_expiry: OnExpiry::RstBoth,
        probes_refresh: true,
        scale: 1,
    };
    let mut rig = Rig::start(settings, limits()).await;
    let (mut client, mut server) = rig.pair().await;
    // The last data a tenth of a second in, long before the middlebox's
    // first look at its sockets (a second in), which must not count the
    // data's segments again as fresh traffic.
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.write_all(b"?").await.unwrap();
    read_n(&mut server, 1).await;
    server.write_all(b"!").await.unwrap();
    read_n(&mut client, 1).await;
    let last = std::time::Instant::now();
    let outcome = read_outcome(&mut client).await;
    let actual = last.elapsed();
    assert!(outcome.is_err(), "an RST at expiry: {outcome:?}");
    let (_, expired) = rig
        .events
        .next("expired", |e| matches!(e, MiddleboxEvent::Expired { .. }))
        .await;
    let MiddleboxEvent::Expired { idle_ms, .. } = expired else {
        unreachable!()
    };
    // Never early; late only by scheduling (a poll interval late before the
    // fix: about 5.9 s).
    assert!(actual >= Duration::from_millis(4_990), "{actual:?}");
    assert!(
        actual < Duration::from_millis(5_400),
        "expired late: {actual:?}"
    );
    // The record says what the client lived: idle since its last data.
    let told = Duration::from_millis(idle_ms);
    assert!(
        told <= actual && actual - told < Duration::from_millis(300),
        "told {idle_ms} ms idle, the client saw {actual:?}"
    );
}

#[tokio::test]
async fn aws_nat_resets_the_inside_and_drops_the_servers_late_response() {
    let mut rig = Rig::start(about_a_second(Preset::AwsNat), limits()).await;
    let (mut client, mut server) = rig.pair().await;
    client
        .write_all(b"GET /report HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    read_n(&mut server, 24).await;
    // The backend takes longer than the NAT gateway's idle timeout.
    rig.events
        .next("expired", |e| matches!(e, MiddleboxEvent::Expired { .. }))
        .await;
    let late = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    server
        .write_all(late)
        .await
        .expect("the server's late write succeeds: it logs that it replied");
    let (_, dropped) = rig
        .events
        .next("dropped", |e| matches!(e, MiddleboxEvent::Dropped { .. }))
        .await;
    assert_eq!(
        dropped,
        MiddleboxEvent::Dropped {
            side: Side::Server,
            bytes: late.len() as u64,
            count: 1,
            probes: 0,
        }
    );
    assert!(
        nothing_arrives(&mut client).await,
        "the response never reaches the client"
    );
    // The client tries again on the same connection: the gateway answers RST.
    client
        .write_all(b"GET /again HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let outcome = read_outcome(&mut client).await;
    assert_eq!(
        outcome.map_err(|e| e.kind()),
        Err(io::ErrorKind::ConnectionReset),
        "the inside packet after expiry gets an RST"
    );
    rig.events
        .next("rst_sent", |e| {
            *e == MiddleboxEvent::RstSent { side: Side::Client }
        })
        .await;
    assert!(rig.events.any(
        |e| matches!(e, MiddleboxEvent::Dropped { side: Side::Client, bytes, .. } if *bytes > 0)
    ));
    // The server gives up later; only then is the mapping over.
    drop(server);
    let Closed {
        by,
        how,
        after_expiry,
        client_bytes,
        server_bytes,
        dropped_bytes,
    } = rig.events.closed().await;
    assert_eq!(
        (by, how, after_expiry),
        (Party::Server, CloseHow::Fin, true)
    );
    assert_eq!((client_bytes, server_bytes), (24, 0));
    assert!(dropped_bytes > late.len() as u64);
    assert_eq!(rig.middlebox.open_mappings(), 0);
}

/// A live mapping whose server writes its last bytes and resets: a NAT
/// forwards the data, then the RST, so the client reads every byte before
/// its read fails, as it does without a middlebox. The mapping's totals say
/// so (found in review: the bytes were dropped, the reset passed on at
/// once, in 20 of 20 tries). Many tries: which of the bytes and the reset
/// the middlebox sees first is a race.
#[tokio::test]
async fn data_that_came_before_a_reset_is_forwarded_first() {
    let mut rig = Rig::start(about_a_second(Preset::AwsNat), limits()).await;
    for _ in 0..20 {
        let (mut client, mut server) = rig.pair().await;
        // The mapping is up: a byte through it.
        client.write_all(b"q").await.unwrap();
        read_n(&mut server, 1).await;
        server.write_all(&[b'r'; 100]).await.unwrap();
        server.set_zero_linger().expect("SO_LINGER 0");
        drop(server);
        let mut got = 0;
        let mut buf = [0u8; 256];
        let ended = loop {
            match within("the client's read", client.read(&mut buf)).await {
                Ok(0) => break Ok(()),
                Ok(n) => got += n,
                Err(e) => break Err(e.kind()),
            }
        };
        let (_, closed) = rig
            .events
            .next("closed", |e| matches!(e, MiddleboxEvent::Closed { .. }))
            .await;
        assert_eq!(
            got, 100,
            "the server's last bytes, then {ended:?}; {closed:?}"
        );
        assert_eq!(ended, Err(io::ErrorKind::ConnectionReset));
        assert!(
            matches!(
                closed,
                MiddleboxEvent::Closed {
                    by: Party::Server,
                    how: CloseHow::Rst,
                    after_expiry: false,
                    client_bytes: 1,
                    server_bytes: 100,
                    dropped_bytes: 0,
                }
            ),
            "{closed:?}"
        );
    }
}

#[tokio::test]
async fn silent_expiry_sends_nothing_to_either_side() {
    let mut rig = Rig::start(about_a_second(Preset::AzureLb), limits()).await;
    let (mut client, mut server) = rig.pair().await;
    client.write_all(b"hello").await.unwrap();
    read_n(&mut server, 5).await;
    let (_, expired) = rig
        .events
        .next("expired", |e| matches!(e, MiddleboxEvent::Expired { .. }))
        .await;
    assert!(matches!(
        expired,
        MiddleboxEvent::Expired {
            on_expiry: OnExpiry::Silent,
            ..
        }
    ));
    server.write_all(b"late").await.unwrap();
    client.write_all(b"more").await.unwrap();
    let mut sides = Vec::new();
    for _ in 0..2 {
        match rig
            .events
            .next("dropped", |e| matches!(e, MiddleboxEvent::Dropped { .. }))
            .await
        {
            (_, MiddleboxEvent::Dropped { side, bytes: 4, .. }) => sides.push(side),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        sides.contains(&Side::Client) && sides.contains(&Side::Server),
        "{sides:?}"
    );
    assert!(
        nothing_arrives(&mut client).await,
        "no data, no RST, no FIN"
    );
    assert!(
        nothing_arrives(&mut server).await,
        "no data, no RST, no FIN"
    );
    rig.events.drain();
    assert!(
        !rig.events
            .any(|e| matches!(e, MiddleboxEvent::RstSent { .. }))
    );
    drop(client);
    drop(server);
    rig.events
        .next("closed", |e| {
            matches!(
                e,
                MiddleboxEvent::Closed {
                    after_expiry: true,
                    ..
                }
            )
        })
        .await;
}

#[tokio::test]
async fn cloud_nat_forgets_a_half_closed_connection_after_its_transitory_timeout() {
    // Scale 100: established 1200 s → 12 s, transitory 30 s → 300 ms.
    let settings = Preset::GcpNat.settings(100);
    assert_eq!(settings.transitory_in_force_us(), Some(300_000));
    let mut rig = Rig::start(settings, limits()).await;

    // An established connection idle for three transitory timeouts is kept.
    let (mut open_client, mut open_server) = rig.pair().await;
    open_client.write_all(b"ping").await.unwrap();
    read_n(&mut open_server, 4).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    open_server.write_all(b"pong").await.unwrap();
    assert_eq!(read_n(&mut open_client, 4).await, b"pong");

    // A client that sends its request and half-closes (a FIN), then waits
    // for a slow answer: the mapping goes by the transitory timeout.
    let (mut client, mut server) = rig.pair().await;
    client.write_all(b"GET /slow").await.unwrap();
    client.shutdown().await.unwrap();
    read_n(&mut server, 9).await;
    assert_eq!(
        read_outcome(&mut server).await.unwrap(),
        0,
        "the FIN passed"
    );
    let (_, expired) = rig
        .events
        .next("expired", |e| {
            matches!(
                e,
                MiddleboxEvent::Expired {
                    transitory: true,
                    ..
                }
            )
        })
        .await;
    let MiddleboxEvent::Expired {
        idle_ms, on_expiry, ..
    } = expired
    else {
        unreachable!()
    };
    assert_eq!(on_expiry, OnExpiry::Silent);
    assert!(
        (300..12_000).contains(&idle_ms),
        "after the transitory timeout, before the established one: {idle_ms} ms"
    );
    // The slow answer goes nowhere, and the client hears nothing.
    server.write_all(b"200 OK").await.unwrap();
    let (_, dropped) = rig
        .events
        .next("dropped", |e| matches!(e, MiddleboxEvent::Dropped { .. }))
        .await;
    assert!(
        matches!(
            dropped,
            MiddleboxEvent::Dropped {
                side: Side::Server,
                bytes: 6,
                ..
            }
        ),
        "{dropped:?}"
    );
    assert!(
        nothing_arrives(&mut client).await,
        "no data, no RST, no FIN"
    );
    // The connection that never closed was never told it expired.
    rig.events.drain();
    let expiries = rig
        .events
        .seen
        .iter()
        .filter(|(_, e)| matches!(e, MiddleboxEvent::Expired { .. }))
        .count();
    assert_eq!(expiries, 1, "{:#?}", rig.events.seen);
}

#[tokio::test]
async fn other_expiry_behaviours_follow_their_providers() {
    // Azure with TCP reset on idle: both sides get an RST at once.
    let rst_both = MiddleboxSettings {
        on_expiry: OnExpiry::RstBoth,
        ..about_a_second(Preset::AzureLb)
    };
    let mut rig = Rig::start(rst_both, limits()).await;
    let (mut client, mut server) = rig.pair().await;
    for stream in [&mut client, &mut server] {
        let outcome = read_outcome(stream).await;
        assert_eq!(
            outcome.map_err(|e| e.kind()),
            Err(io::ErrorKind::ConnectionReset)
        );
    }
    rig.events
        .next("closed", |e| {
            matches!(
                e,
                MiddleboxEvent::Closed {
                    by: Party::Middlebox,
                    how: CloseHow::Rst,
                    after_expiry: true,
                    ..
                }
            )
        })
        .await;

    // An ALB-like proxy: both connections closed with a FIN.
    let mut rig = Rig::start(about_a_second(Preset::Alb), limits()).await;
    let (mut client, mut server) = rig.pair().await;
    for stream in [&mut client, &mut server] {
        assert_eq!(read_outcome(stream).await.unwrap(), 0, "a FIN");
    }

    // AWS NLB: whichever side sends next gets the RST; the other hears nothing.
    let mut rig = Rig::start(about_a_second(Preset::AwsNlb), limits()).await;
    let (mut client, mut server) = rig.pair().await;
    rig.events
        .next("expired", |e| matches!(e, MiddleboxEvent::Expired { .. }))
        .await;
    server.write_all(b"late").await.unwrap();
    let outcome = read_outcome(&mut server).await;
    assert_eq!(
        outcome.map_err(|e| e.kind()),
        Err(io::ErrorKind::ConnectionReset)
    );
    rig.events
        .next("rst to the server", |e| {
            *e == MiddleboxEvent::RstSent { side: Side::Server }
        })
        .await;
    assert!(nothing_arrives(&mut client).await);
}

/// An accepted socket that sends TCP keep-alive probes every second after a
/// second of silence.
fn probe_every_second(stream: &TcpStream) {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(1))
        .with_interval(Duration::from_secs(1));
    socket2::SockRef::from(stream)
        .set_tcp_keepalive(&keepalive)
        .expect("SO_KEEPALIVE with TCP_KEEPIDLE and TCP_KEEPINTVL");
}

/// An AWS NAT gateway's behaviour (probes count, a reset on expiry) with a
/// timeout of its own, in real time.
#[cfg(target_os = "linux")]
fn aws_nat_timing_out_after(idle_timeout_ms: u64) -> MiddleboxSettings {
    MiddleboxSettings {
        preset: Preset::Custom,
        idle_timeout_ms,
        ..Preset::AwsNat.settings(1)
    }
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn keep_alive_probes_from_the_server_keep_a_mapping_alive() {
    // 2.5 s of idle allowed; the server's kernel probes every second.
    let mut rig = Rig::start(aws_nat_timing_out_after(2_500), limits()).await;
    let (mut client, mut server) = rig.pair().await;
    probe_every_second(&server);
    let (_, opened) = rig
        .events
        .next("opened", |e| matches!(e, MiddleboxEvent::Opened { .. }))
        .await;
    assert!(matches!(
        opened,
        MiddleboxEvent::Opened {
            probes_visible: true,
            ..
        }
    ));
    client.write_all(b"slow job").await.unwrap();
    read_n(&mut server, 8).await;
    // Six seconds without a byte either way.
    tokio::time::sleep(Duration::from_secs(6)).await;
    server.write_all(b"done").await.unwrap();
    assert_eq!(
        read_n(&mut client, 4).await,
        b"done",
        "the mapping survived"
    );
    rig.events.drain();
    assert!(
        !rig.events
            .any(|e| matches!(e, MiddleboxEvent::Expired { .. })),
        "{:#?}",
        rig.events.seen
    );
    let probes = refreshed(&rig.events.seen, Side::Server, RefreshCause::Probe).1;
    assert!(
        probes >= 3,
        "about one probe a second after the first idle second, counted: {probes}; {:#?}",
        rig.events.seen
    );
    assert!(
        !rig.events.any(|e| matches!(
            e,
            MiddleboxEvent::Refreshed {
                side: Side::Client,
                by: RefreshCause::Probe,
                ..
            }
        )),
        "the client sent no probes"
    );
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_probe_from_the_inside_after_expiry_gets_an_rst() {
    // Keep-alive set too late (after a 1 s timeout): the first probe finds
    // the NAT mapping gone and is answered with an RST.
    let mut rig = Rig::start(about_a_second(Preset::AwsNat), limits()).await;
    let (mut client, _server) = rig.pair().await;
    rig.events
        .next("expired", |e| matches!(e, MiddleboxEvent::Expired { .. }))
        .await;
    probe_every_second(&client);
    let outcome = read_outcome(&mut client).await;
    assert_eq!(
        outcome.map_err(|e| e.kind()),
        Err(io::ErrorKind::ConnectionReset)
    );
    let (_, dropped) = rig
        .events
        .next("the probe", |e| matches!(e, MiddleboxEvent::Dropped { .. }))
        .await;
    assert!(
        matches!(dropped, MiddleboxEvent::Dropped { side: Side::Client, bytes: 0, probes, .. } if probes >= 1),
        "{dropped:?}"
    );
    rig.events
        .next("rst_sent", |e| {
            *e == MiddleboxEvent::RstSent { side: Side::Client }
        })
        .await;
}

/// A new client at a cap of two mappings, none of them lingering: refused
/// with a reset, and a `refused` event saying why.
async fn refused_at_two(rig: &mut Rig) {
    let mut client = TcpStream::connect(rig.address).await.unwrap();
    let (_, refused) = rig
        .events
        .next("refused", |e| matches!(e, MiddleboxEvent::Refused { .. }))
        .await;
    assert!(
        matches!(&refused, MiddleboxEvent::Refused { reason, .. } if reason.contains("2 mappings")),
        "{refused:?}"
    );
    assert!(
        read_outcome(&mut client).await.is_err(),
        "refused with a reset"
    );
}

#[tokio::test]
async fn mappings_are_capped() {
    let limits = Limits {
        max_mappings: 2,
        ..limits()
    };
    let settings = MiddleboxSettings {
        preset: Preset::Custom,
        idle_timeout_ms: 60_000,
        ..Preset::AwsNat.settings(1)
    };
    let mut rig = Rig::start(settings, limits).await;
    let (first, first_server) = rig.pair().await;
    let (_second, _second_server) = rig.pair().await;
    for _ in 0..2 {
        rig.events
            .next("opened", |e| matches!(e, MiddleboxEvent::Opened { .. }))
            .await;
    }
    assert_eq!(rig.middlebox.open_mappings(), 2);
    refused_at_two(&mut rig).await;
    // A FIN from the client is passed on; the mapping ends when the server
    // closes too.
    drop(first);
    drop(first_server);
    rig.events
        .next("closed", |e| {
            matches!(
                e,
                MiddleboxEvent::Closed {
                    how: CloseHow::Fin,
                    after_expiry: false,
                    ..
                }
            )
        })
        .await;
    let (_fourth, _fourth_server) = rig.pair().await;
    rig.events
        .next("opened again", |e| {
            matches!(e, MiddleboxEvent::Opened { .. })
        })
        .await;
}

/// At a cap, an expired mapping that only lingers (its sockets kept to
/// answer late packets, up to `max_linger`) gives up its slot to a new
/// client, oldest first; a live one never does. Found in review: silent
/// clients' expired mappings held every slot for the ten minutes of
/// `max_linger`.
#[tokio::test]
async fn an_expired_lingering_mapping_gives_its_slot_to_a_new_client() {
    let limits = Limits {
        max_mappings: 2,
        max_linger: Duration::from_secs(600),
        ..limits()
    };
    // Three seconds idle: the later mappings stay live while the test runs.
    let mut rig = Rig::start(Preset::AwsNat.settings(117), limits).await;
    let (mut first, _first_server) = rig.pair().await;
    rig.events
        .next("the first expired", |e| {
            matches!(e, MiddleboxEvent::Expired { .. })
        })
        .await;
    let (_second, _second_server) = rig.pair().await;
    // Both slots taken, the first only lingering: a third client gets the
    // first's slot, and the first is closed by the middlebox.
    let (_third, _third_server) = rig.pair().await;
    rig.events
        .next("opened for the third", |e| {
            matches!(e, MiddleboxEvent::Opened { .. })
        })
        .await;
    assert!(
        matches!(read_outcome(&mut first).await, Ok(0)),
        "the lingering mapping closed (FIN)"
    );
    assert_eq!(rig.middlebox.open_mappings(), 2);
    // The second and third are live: a fourth is refused.
    refused_at_two(&mut rig).await;
}

#[tokio::test]
async fn bytes_buffered_are_bounded_and_refresh_events_aggregated() {
    let limits = Limits {
        buffer_bytes: 4096,
        ..limits()
    };
    let settings = MiddleboxSettings {
        preset: Preset::Custom,
        idle_timeout_ms: 60_000,
        ..Preset::AwsNat.settings(1)
    };
    let mut rig = Rig::start(settings, limits).await;
    let (mut client, mut server) = rig.pair().await;
    const TOTAL: usize = 64 * 1024 * 1024;
    let writer = tokio::spawn(async move {
        let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        for _ in 0..TOTAL / chunk.len() {
            client.write_all(&chunk).await.unwrap();
        }
        client
    });
    // The server does not read: the middlebox stops reading too, and the
    // client's writes stall instead of piling up in the middlebox.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!writer.is_finished(), "64 MiB cannot all be buffered");
    let mut received = 0usize;
    let mut buf = vec![0; 256 * 1024];
    while received < TOTAL {
        let n = within("the rest of the bytes", server.read(&mut buf))
            .await
            .unwrap();
        assert!(n > 0, "closed early at {received}");
        for (k, byte) in buf[..n].iter().enumerate() {
            let i = (received + k) % (64 * 1024);
            assert_eq!(*byte, (i % 251) as u8, "byte {}", received + k);
        }
        received += n;
    }
    let _client = within("the writer", writer).await.unwrap();
    rig.events.drain();
    tokio::time::sleep(Duration::from_millis(300)).await;
    rig.events.drain();
    let refreshes: Vec<u32> = rig
        .events
        .seen
        .iter()
        .filter_map(|(_, e)| match e {
            MiddleboxEvent::Refreshed { count, .. } => Some(*count),
            _ => None,
        })
        .collect();
    let reads: u32 = refreshes.iter().sum();
    assert!(
        reads as usize > refreshes.len() * 4,
        "{} refresh events for {reads} reads: aggregated",
        refreshes.len()
    );
}

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<serde_json::Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

#[tokio::test]
async fn the_command_line_refuses_bad_flags_and_prints_json_lines() {
    for bad in [
        vec!["--listen", "127.0.0.1:0"],
        vec![
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:1",
            "--scale",
            "0",
        ],
        vec!["--bogus"],
    ] {
        let code = cli::run_cli(bad.iter().map(|s| s.to_string()).collect()).await;
        assert_eq!(code, std::process::ExitCode::from(2), "{bad:?}");
    }
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let args: Vec<String> = format!(
        "middlebox --listen 127.0.0.1:0 --upstream {} --preset aws-nat --scale 100",
        upstream.local_addr().unwrap()
    )
    .split_whitespace()
    .map(str::to_owned)
    .collect();
    let cli::Parsed::Run(options) = cli::parse_args(&args).unwrap() else {
        panic!("runs")
    };
    let out = Captured::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(cli::run(options, out.clone(), async {
        let _ = stopped.await;
    }));
    let first = within("the first line", async {
        loop {
            if let Some(first) = out.lines().first().cloned() {
                return first;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(first["type"], "middlebox_started");
    assert_eq!(first["in_force_ms"], 3500);
    let words = first["scale_words"].as_str().unwrap();
    assert!(
        words.contains("×100") && words.contains("350 s become 3.5 s"),
        "{words}"
    );
    assert!(
        first["source"]
            .as_str()
            .unwrap()
            .starts_with("https://docs.aws.amazon.com/")
    );
    let listen: SocketAddr = first["listen"].as_str().unwrap().parse().unwrap();
    let mut client = TcpStream::connect(listen).await.unwrap();
    let (mut server, _) = upstream.accept().await.unwrap();
    client.write_all(b"hi").await.unwrap();
    read_n(&mut server, 2).await;
    drop(client);
    drop(server);
    within("the closed line", async {
        while !out.lines().iter().any(|l| l["event"]["kind"] == "closed") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    stop.send(()).unwrap();
    within("the middlebox to stop", running)
        .await
        .unwrap()
        .unwrap();
    let kinds: Vec<String> = out
        .lines()
        .iter()
        .skip(1)
        .map(|l| {
            assert_eq!(l["type"], "middlebox");
            l["event"]["kind"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("opened"),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| k == "refreshed"), "{kinds:?}");
}

/// A lab and its middlebox: the lab's address and the middlebox's.
async fn lab_with_middlebox() -> (SocketAddr, SocketAddr) {
    let (lab_addr, lab) = start_server().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let middlebox_addr = listener.local_addr().unwrap();
    tokio::spawn(serve_in_lab(listener, lab_addr, lab));
    (lab_addr, middlebox_addr)
}

/// `PUT /api/middlebox` as `session`.
async fn put_middlebox(lab: SocketAddr, session: &str, body: &str) -> common::Response {
    request_once(
        lab,
        "PUT",
        &format!("/api/middlebox?session={session}"),
        body.as_bytes(),
    )
    .await
}

#[tokio::test]
async fn in_the_lab_a_slow_response_is_cut_and_only_its_session_sees_the_mapping() {
    let (lab_addr, middlebox_addr) = lab_with_middlebox().await;
    let a = issue_session(lab_addr).await;
    let b = issue_session(lab_addr).await;
    let mut viewer_a = Viewer::connect_session(lab_addr, &a).await;
    let mut viewer_b = Viewer::connect_session(lab_addr, &b).await;

    // The HTTP API: the defaults, validation, where the middlebox listens.
    let response = common::get_once(lab_addr, &format!("/api/middlebox?session={a}")).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let view: MiddleboxView = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(
        view.settings,
        Preset::AwsNat.settings(100),
        "the lab's default"
    );
    assert_eq!(view.listeners, vec![middlebox_addr.to_string()]);
    for (body, status) in [
        (r#"{"idle_timeout_ms": 60000}"#, 400),
        (r#"{"scale": 100, "bogus": 1}"#, 400),
        ("[]", 400),
    ] {
        let response = put_middlebox(lab_addr, &a, body).await;
        assert_eq!(response.status, status, "{body}: {}", response.text());
        response.error_body();
    }
    let forged = put_middlebox(lab_addr, "s-forged", r#"{"scale": 10}"#).await;
    assert_eq!(forged.status, 403);

    // Session A picks ×350 over its events socket (350 s become 1 s).
    viewer_a
        .ws
        .send(Message::Text(
            r#"{"type": "set_middlebox", "middlebox": {"preset": "aws_nat", "scale": 350}}"#.into(),
        ))
        .await
        .unwrap();
    let changed = viewer_a
        .next_matching("middlebox_changed", |e| {
            matches!(e, ServerEvent::MiddleboxChanged { .. })
        })
        .await;
    assert!(matches!(
        changed,
        ServerEvent::MiddleboxChanged {
            in_force_ms: 1000,
            ..
        }
    ));

    // A request through the middlebox that takes 2.5 s: longer than the
    // scaled idle timeout. The Host names the middlebox's origin.
    let mut client = Client::connect(middlebox_addr).await;
    let host = middlebox_addr.to_string();
    client
        .send_request_with(
            "GET",
            &format!("/api/slow?ms=2500&id=nat-1&session={a}"),
            &[("Host", host.as_str())],
            b"",
        )
        .await;
    let session_a = SessionId::parse(&a).unwrap();
    let opened = viewer_a
        .next_matching("the mapping opened", |e| {
            matches!(
                e,
                ServerEvent::Middlebox {
                    event: MiddleboxEvent::Opened { .. },
                    ..
                }
            )
        })
        .await;
    let ServerEvent::Middlebox {
        mapping,
        session,
        event: MiddleboxEvent::Opened {
            upstream, settings, ..
        },
        ..
    } = opened
    else {
        unreachable!()
    };
    assert_eq!(session, Some(session_a.clone()));
    assert_eq!(settings.scale, 350, "the session's own settings");
    let upstream = upstream.expect("the middlebox's address towards the lab");
    // The lab accepted the middlebox's connection before the request line
    // reached it, so its `connection_opened` may come first.
    let lab_conn = |e: &ServerEvent| match e {
        ServerEvent::ConnectionOpened { conn, peer, .. } if *peer == upstream => Some(*conn),
        _ => None,
    };
    let conn = match viewer_a.seen.iter().find_map(lab_conn) {
        Some(conn) => conn,
        None => lab_conn(
            &viewer_a
                .next_matching("the lab's connection", |e| lab_conn(e).is_some())
                .await,
        )
        .unwrap(),
    };
    let of_mapping = |kind: &'static str| {
        move |e: &ServerEvent| {
            matches!(e, ServerEvent::Middlebox { mapping: m, event, .. }
                if *m == mapping && serde_json::to_value(event).unwrap()["kind"] == kind)
        }
    };
    viewer_a
        .next_matching("expired", of_mapping("expired"))
        .await;
    // The server answers after the mapping is gone: it records the response
    // as written...
    viewer_a
        .next_matching("the server's response", |e| {
            matches!(e, ServerEvent::RequestFinished { conn: c, outcome: protocol::RequestOutcome::Completed, .. } if *c == conn)
        })
        .await;
    // ...and the middlebox drops it.
    let dropped = viewer_a
        .next_matching("dropped", of_mapping("dropped"))
        .await;
    assert!(
        matches!(dropped, ServerEvent::Middlebox { event: MiddleboxEvent::Dropped { side: Side::Server, bytes, .. }, .. } if bytes > 100),
        "{dropped:?}"
    );
    assert!(
        !client.has_pending_bytes(),
        "the browser never gets the response"
    );
    // The browser gives up (its client timeout) and retries on the same
    // connection: the NAT gateway resets it.
    client
        .send_request("GET", &format!("/api/fast?session={a}"), b"")
        .await;
    let (bytes, ending) = client.read_until_closed().await;
    assert!(bytes.is_empty(), "{:?}", String::from_utf8_lossy(&bytes));
    assert_eq!(
        ending,
        common::Ending::Error(io::ErrorKind::ConnectionReset)
    );
    viewer_a
        .next_matching("rst_sent", of_mapping("rst_sent"))
        .await;

    // Session B saw none of it: its own change arrives after all of A's
    // middlebox events, and nothing of A's mapping came before it.
    let session_b = SessionId::parse(&b).unwrap();
    let response = put_middlebox(lab_addr, &b, r#"{"scale": 200}"#).await;
    assert_eq!(response.status, 200, "{}", response.text());
    viewer_b
        .next_matching("its own change", |e| {
            matches!(e, ServerEvent::MiddleboxChanged { session: Some(s), .. } if s.as_str() == b)
        })
        .await;
    assert!(
        !viewer_b.seen.iter().any(|e| match e {
            ServerEvent::Middlebox { .. } => true,
            ServerEvent::MiddleboxChanged { session, .. } => session.as_ref() != Some(&session_b),
            _ => false,
        }),
        "{:#?}",
        viewer_b.seen
    );
    assert!(
        !viewer_a.seen.iter().any(|e| matches!(
            e,
            ServerEvent::MiddleboxChanged { session: Some(s), .. } if s.as_str() == b
        )),
        "A does not see B's settings"
    );
}

/// The next middlebox settings announced to `viewer`, and for whom.
async fn announced(viewer: &mut Viewer, why: &str) -> (MiddleboxSettings, Option<SessionId>) {
    match viewer
        .next_matching(why, |e| matches!(e, ServerEvent::MiddleboxChanged { .. }))
        .await
    {
        ServerEvent::MiddleboxChanged {
            settings, session, ..
        } => (settings, session),
        _ => unreachable!(),
    }
}

/// A mapping runs the anonymous scope's timer until its request line names
/// a session; if the silence before that line outlasted the session's own
/// timeout (here 1 s, against the default 3.5 s), the mapping expires as of
/// that deadline and the request is late, as at a middlebox with the
/// settings `opened` names (found in a record-against-wire review: the
/// request passed, and the record showed only the session's 1 s).
#[tokio::test]
async fn a_request_line_after_a_silence_longer_than_its_sessions_timeout_is_late() {
    let (lab_addr, middlebox_addr) = lab_with_middlebox().await;
    let a = issue_session(lab_addr).await;
    let mut viewer = Viewer::connect_session(lab_addr, &a).await;
    // 350 s at ×350: 1 s.
    let response = put_middlebox(lab_addr, &a, r#"{"preset": "aws_nat", "scale": 350}"#).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let mut client = Client::connect(middlebox_addr).await;
    // A spare socket, silent for 1.6 s (past the session's 1 s, within the
    // default 3.5 s), then its first request.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let host = middlebox_addr.to_string();
    client
        .send_request_with(
            "GET",
            &format!("/api/fast?id=late-1&session={a}"),
            &[("Host", host.as_str())],
            b"",
        )
        .await;
    let mut buf = [0u8; 256];
    let outcome = within("the answer", client.stream.read(&mut buf)).await;
    assert_eq!(
        outcome.map_err(|e| e.kind()),
        Err(io::ErrorKind::ConnectionReset),
        "the request is answered with the NAT gateway's reset"
    );
    let is_mapping = |e: &ServerEvent, want: fn(&MiddleboxEvent) -> bool| matches!(e, ServerEvent::Middlebox { event, .. } if want(event));
    let opened = viewer
        .next_matching("opened", |e| {
            is_mapping(e, |m| matches!(m, MiddleboxEvent::Opened { .. }))
        })
        .await;
    let ServerEvent::Middlebox {
        event:
            MiddleboxEvent::Opened {
                in_force_ms: 1000,
                accepted_us,
                ..
            },
        ..
    } = opened
    else {
        panic!("{opened:?}")
    };
    let expired = viewer
        .next_matching("expired", |e| {
            is_mapping(e, |m| matches!(m, MiddleboxEvent::Expired { .. }))
        })
        .await;
    assert!(
        matches!(
            expired,
            ServerEvent::Middlebox {
                event: MiddleboxEvent::Expired {
                    idle_ms: 1000,
                    on_expiry: OnExpiry::Rst,
                    transitory: false,
                },
                ..
            }
        ),
        "{expired:?}"
    );
    // Stamped when it expired, a second after the accept, not when the
    // request line came (found in review: the page drew the mapping alive
    // for 1.6 s under a timeout of 1 s).
    let ServerEvent::Middlebox { at_us, .. } = expired else {
        unreachable!()
    };
    let after_accept = at_us.saturating_sub(accepted_us);
    assert!(
        (1_000_000..1_400_000).contains(&after_accept),
        "expired {after_accept} µs after the accept"
    );
    viewer
        .next_matching("the request dropped", |e| {
            is_mapping(e, |m| {
                matches!(m, MiddleboxEvent::Dropped { side: Side::Client, bytes, .. } if *bytes > 0)
            })
        })
        .await;
    viewer
        .next_matching("rst_sent", |e| {
            is_mapping(e, |m| *m == MiddleboxEvent::RstSent { side: Side::Client })
        })
        .await;
    assert!(
        !viewer.seen.iter().any(
            |e| matches!(e, ServerEvent::RequestStarted { target, .. } if target.contains("late-1"))
        ),
        "the request never reached the server: {:#?}",
        viewer.seen
    );
}

#[tokio::test]
async fn middlebox_settings_are_per_session_and_follow_the_room_lock() {
    let (lab_addr, _lab) = start_server().await;
    let a = issue_session(lab_addr).await;
    let b = issue_session(lab_addr).await;
    let view = |response: common::Response| -> MiddleboxView {
        assert_eq!(response.status, 200, "{}", response.text());
        serde_json::from_slice(&response.body).unwrap()
    };
    let mine = view(put_middlebox(lab_addr, &a, r#"{"preset": "gcp_nat", "scale": 1000}"#).await);
    assert_eq!(mine.settings, Preset::GcpNat.settings(1000));
    assert_eq!(mine.in_force_ms, 1200);
    assert!(mine.scale_words.contains("×1000"), "{}", mine.scale_words);
    let theirs = view(common::get_once(lab_addr, &format!("/api/middlebox?session={b}")).await);
    assert_eq!(
        theirs.settings,
        Preset::AwsNat.settings(100),
        "B keeps the defaults"
    );
    // The instructor changes the defaults: B (no settings of its own) follows.
    let key = common::KEY;
    let defaults = view(
        request_once(
            lab_addr,
            "PUT",
            &format!("/api/middlebox?key={key}"),
            br#"{"preset": "alb", "scale": 60}"#,
        )
        .await,
    );
    assert_eq!(defaults.settings, Preset::Alb.settings(60));
    let theirs = view(common::get_once(lab_addr, &format!("/api/middlebox?session={b}")).await);
    assert_eq!(theirs.settings, Preset::Alb.settings(60));
    // Locked: everyone runs the defaults and changes are refused; A's page
    // is told, so it does not keep showing settings no longer in force.
    let mut a_viewer = Viewer::connect_session(lab_addr, &a).await;
    let locked = request_once(
        lab_addr,
        "PUT",
        &format!("/api/room?key={key}"),
        br#"{"policy_locked": true}"#,
    )
    .await;
    assert_eq!(locked.status, 200, "{}", locked.text());
    let mine = view(common::get_once(lab_addr, &format!("/api/middlebox?session={a}")).await);
    assert!(mine.locked);
    assert_eq!(mine.settings, Preset::Alb.settings(60));
    let (settings, session) = announced(&mut a_viewer, "A told of the lock").await;
    assert_eq!(
        (settings, session.map(|s| s.to_string())),
        (Preset::Alb.settings(60), Some(a.clone()))
    );
    let refused = put_middlebox(lab_addr, &a, r#"{"scale": 10}"#).await;
    assert_eq!(refused.status, 423, "{}", refused.text());
    refused.error_body();
    // Unlocked: A's own settings are in force again, and A's page is told.
    let unlocked = request_once(
        lab_addr,
        "PUT",
        &format!("/api/room?key={key}"),
        br#"{"policy_locked": false}"#,
    )
    .await;
    assert_eq!(unlocked.status, 200, "{}", unlocked.text());
    let (settings, _) = announced(&mut a_viewer, "A told of the unlock").await;
    assert_eq!(settings, Preset::GcpNat.settings(1000));
    let mine = view(common::get_once(lab_addr, &format!("/api/middlebox?session={a}")).await);
    assert_eq!(mine.settings, Preset::GcpNat.settings(1000));
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn in_the_lab_the_servers_tcp_keep_alive_follows_the_time_scale_and_keeps_the_mapping() {
    let (lab_addr, middlebox_addr) = lab_with_middlebox().await;
    let a = issue_session(lab_addr).await;
    let mut viewer = Viewer::connect_session(lab_addr, &a).await;
    // The lab's default middlebox: an AWS NAT gateway at ×100 (3.5 s). The
    // server probes after 100 s idle, every 100 s: at ×100, every second.
    let response = common::put_config_as(
        lab_addr,
        &format!("?session={a}"),
        r#"{"tcp_keepalive": {"idle_s": 100, "interval_s": 100}}"#,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let mut client = Client::connect(middlebox_addr).await;
    let host = middlebox_addr.to_string();
    // 6 s without a byte either way: nearly twice the scaled idle timeout.
    client
        .send_request_with(
            "GET",
            &format!("/api/slow?ms=6000&id=ka-1&session={a}"),
            &[("Host", host.as_str())],
            b"",
        )
        .await;
    let response = within("the slow answer", client.read_response()).await;
    assert_eq!(response.status, 200, "{}", response.text());
    // The server's probes refreshed the mapping, one event each (nothing
    // else came from the server in those 6 s).
    for n in 1..=3 {
        viewer
            .next_matching(&format!("probe {n} from the server"), |e| {
                matches!(
                    e,
                    ServerEvent::Middlebox {
                        event: MiddleboxEvent::Refreshed {
                            side: Side::Server,
                            by: RefreshCause::Probe,
                            ..
                        },
                        ..
                    }
                )
            })
            .await;
    }
    assert!(
        !viewer.seen.iter().any(|e| matches!(
            e,
            ServerEvent::Middlebox {
                event: MiddleboxEvent::Expired { .. },
                ..
            }
        )),
        "{:#?}",
        viewer.seen
    );
}

/// A viewer whose events socket goes through the lab's middlebox: every event
/// it receives is server data on that mapping. Reported as it flows, each
/// would be a `refreshed` event for the same viewer, which is more data, and
/// so on, about ten a second with nothing happening (found in review). The
/// mapping still reports the page's own data, and its close totals count
/// everything.
#[tokio::test]
async fn an_events_socket_through_the_middlebox_does_not_report_its_own_events() {
    let (lab_addr, via) = lab_with_middlebox().await;
    let session = issue_session(lab_addr).await;
    let mut page = Viewer::connect_to(via, &format!("/api/events?session={session}")).await;
    // Something for the page's viewer to hear: a request of its session.
    let answer = request_once(
        lab_addr,
        "GET",
        &format!("/api/fast?session={session}"),
        b"",
    )
    .await;
    assert_eq!(answer.status, 200);
    page.closed(answer.conn_id()).await;
    // Then nothing happens for a while: the page hears nothing more.
    let heard = tokio::time::timeout(Duration::from_millis(1_500), page.next_event()).await;
    assert!(heard.is_err(), "heard {heard:?}");
    // The page's own data on the mapping is still reported.
    page.send_text(r#"{"type": "ping", "client_time_ms": 1}"#)
        .await;
    page.next_matching("its own data, reported", |e| {
        matches!(
            e,
            ServerEvent::Middlebox {
                event: MiddleboxEvent::Refreshed {
                    side: Side::Client,
                    by: RefreshCause::Data,
                    ..
                },
                ..
            }
        )
    })
    .await;
    assert!(
        !page.seen.iter().any(|e| matches!(
            e,
            ServerEvent::Middlebox {
                event: MiddleboxEvent::Refreshed {
                    side: Side::Server,
                    by: RefreshCause::Data,
                    ..
                },
                ..
            }
        )),
        "{:#?}",
        page.seen
    );
}

/// A close the middlebox makes in order (here its stop) while bytes the
/// client sent are unread, because the server stopped reading and the
/// middlebox's buffer toward it is full: the kernel answers that close with
/// a RST, and the record says so (found in review: it said `fin`); every
/// byte it reported from the client is forwarded or counted dropped, and the
/// server gets what it says was forwarded (what the middlebox's kernel held
/// for it is dropped, counted so: a record-against-wire review found it
/// counted forwarded while a server that never reads again never gets it).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_close_with_the_clients_bytes_unread_is_a_reset_and_recorded_so() {
    let mut rig = before_a_server_that_never_reads(a_minute_that_probes_refresh()).await;
    // A client whose own send queue is small, so that what it wrote soon
    // all lies at the middlebox's socket.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(64 * 1024).unwrap();
    let mut client = within("connect", socket.connect(rig.address))
        .await
        .unwrap();
    let (mut server, _) = within("the middlebox's connection", rig.upstream.accept())
        .await
        .unwrap();
    // The middlebox stops reading (its buffer toward the server full behind
    // the server's full socket), and its own socket fills up with bytes it
    // never read.
    let (sent, _) = upload_until_full(&mut client, 4 * 1024).await;
    let sent_total = sent;
    rig.middlebox.stop();
    let Closed {
        by,
        how,
        client_bytes,
        dropped_bytes,
        ..
    } = rig.events.closed().await;
    assert_eq!((by, how), (Party::Middlebox, CloseHow::Rst));
    let read = rig.events.data_read(Side::Client);
    assert!(read < sent_total, "the last piece stayed with the client");
    assert_eq!(
        client_bytes + dropped_bytes,
        read,
        "every byte read from the client, forwarded or dropped: {:#?}",
        rig.events.seen
    );
    // The client gets the reset the record names, behind the FIN of the
    // shutdown: its read ends, and its first write after it fails (after
    // only a FIN, a first write is taken).
    assert!(matches!(read_outcome(&mut client).await, Ok(0)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let wrote = client.try_write(b"x").map_err(|e| e.kind());
    assert!(
        matches!(
            wrote,
            Err(io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
        ),
        "a reset recorded, the client's first write after the close: {wrote:?}"
    );
    // The server gets what was forwarded, then the end: a reset too, since
    // what the middlebox's kernel still held for it (the server's window
    // closed) is dropped at a stop, not left to go out after it.
    let got = read_to_a_reset(&mut server).await;
    assert_eq!(got, client_bytes);
}

/// The client's `tcpi_bytes_acked` less what it counted before any data:
/// the bytes of its upload that reached the middlebox's socket.
#[cfg(target_os = "linux")]
struct Acked {
    before: u64,
}

#[cfg(target_os = "linux")]
impl Acked {
    fn start(client: &TcpStream) -> Acked {
        Acked {
            before: keepalive_lab_server::middlebox::tcp_info::read(client)
                .expect("TCP_INFO")
                .bytes_acked,
        }
    }

    fn now(&self, client: &TcpStream) -> u64 {
        keepalive_lab_server::middlebox::tcp_info::read(client)
            .expect("TCP_INFO")
            .bytes_acked
            - self.before
    }
}

/// Uploads `piece` bytes at a time, each acknowledged by the middlebox's
/// kernel before the next, until one is not within 300 ms (its socket is
/// full): how many bytes were written, and how many of them it took.
#[cfg(target_os = "linux")]
async fn upload_until_full(client: &mut TcpStream, piece: usize) -> (u64, u64) {
    let acked = Acked::start(client);
    let piece = vec![b'u'; piece];
    let mut sent = 0u64;
    loop {
        within("a piece written", client.write_all(&piece))
            .await
            .unwrap();
        sent += piece.len() as u64;
        let taken = tokio::time::timeout(Duration::from_millis(300), async {
            while acked.now(client) < sent {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        if taken.is_err() {
            return (sent, acked.now(client));
        }
        assert!(
            sent < 256 * 1024 * 1024,
            "the middlebox never stopped reading"
        );
    }
}

/// A FIN that came while the mapping was live, seen behind bytes the
/// middlebox had not read, is not late once it is read after the expiry, as
/// the bytes before it are not: no reset answers it (found in review: under
/// `rst` the client that had closed in order was reset).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_fin_seen_before_the_expiry_is_not_answered_with_a_reset_after_it() {
    let mut rig = behind_a_server_that_never_reads(OnExpiry::Rst).await;
    let (mut client, _server) = rig.pair().await;
    a_fin_behind_unread_bytes(&mut client).await;
    rig.events
        .next("expired", |e| matches!(e, MiddleboxEvent::Expired { .. }))
        .await;
    assert!(
        nothing_arrives(&mut client).await,
        "the client, closed in order before the expiry, was answered"
    );
    assert!(
        !rig.events
            .seen
            .iter()
            .any(|(_, e)| matches!(e, MiddleboxEvent::RstSent { .. })),
        "{:?}",
        rig.events.seen
    );
}

/// Uploads until the middlebox stops reading `client` (its buffer toward
/// the server full) and its socket from the client starts to fill
/// ([`upload_until_unread`]), then a little more and the FIN, which fit in
/// that socket behind the bytes: returns once its kernel has taken them.
#[cfg(target_os = "linux")]
async fn a_fin_behind_unread_bytes(client: &mut TcpStream) {
    let acked = Acked::start(client);
    let sent = upload_until_unread(client).await + 1024;
    within("the last bytes", client.write_all(&[b'u'; 1024]))
        .await
        .unwrap();
    client.shutdown().await.unwrap();
    let whole = sent + 1;
    let taken = tokio::time::timeout(Duration::from_secs(5), async {
        while acked.now(client) < whole {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(
        taken.is_ok(),
        "the middlebox's socket took {} of {whole} bytes and the FIN",
        acked.now(client)
    );
}

/// Uploads 16 KiB at a time, each taken by the middlebox's kernel before
/// the next, until the window the middlebox's socket advertises has shrunk
/// to half its largest and stays so for 200 ms (the middlebox has stopped
/// reading it, not merely fallen behind, and it fills) while it still has
/// room: how many bytes were written.
#[cfg(target_os = "linux")]
async fn upload_until_unread(client: &mut TcpStream) -> u64 {
    use keepalive_lab_server::middlebox::tcp_info;
    let acked = Acked::start(client);
    let piece = [b'u'; 16 * 1024];
    let (mut sent, mut widest) = (0u64, 0u32);
    loop {
        within("a piece written", client.write_all(&piece))
            .await
            .unwrap();
        sent += piece.len() as u64;
        within("the piece taken", async {
            while acked.now(client) < sent {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        // The window it advertises once its reads (if any) are done.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let window = |client: &TcpStream| {
            tcp_info::read(client)
                .and_then(|seen| seen.snd_wnd)
                .expect("tcpi_snd_wnd (Linux 5.4 or later)")
        };
        let now = window(client);
        widest = widest.max(now);
        if now < widest / 2 {
            // A middlebox that had only fallen behind reads it all now.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let later = window(client);
            if later < widest / 2 {
                assert!(later > 4096, "no room left: {later} bytes");
                return sent;
            }
        }
        assert!(
            sent < 64 * 1024 * 1024,
            "the middlebox never stopped reading"
        );
    }
}

/// A rig with a timeout of 1 s that only data refreshes (not the client's
/// zero-window probes once the middlebox's socket is full), a buffer of
/// 16 KiB, in front of [`a_server_that_never_reads`].
#[cfg(target_os = "linux")]
async fn behind_a_server_that_never_reads(on_expiry: OnExpiry) -> Rig {
    before_a_server_that_never_reads(MiddleboxSettings {
        preset: Preset::Custom,
        idle_timeout_ms: 1_000,
        on_expiry,
        probes_refresh: false,
        scale: 1,
    })
    .await
}

/// A rig running `settings` with a buffer of 16 KiB, in front of
/// [`a_server_that_never_reads`].
#[cfg(target_os = "linux")]
async fn before_a_server_that_never_reads(settings: MiddleboxSettings) -> Rig {
    let limits = Limits {
        buffer_bytes: 16 * 1024,
        ..limits()
    };
    Rig::start_before(a_server_that_never_reads(), settings, limits).await
}

/// A custom timeout of a minute (longer than any test here) that probes
/// refresh, reset on expiry.
fn a_minute_that_probes_refresh() -> MiddleboxSettings {
    MiddleboxSettings {
        preset: Preset::Custom,
        idle_timeout_ms: 60_000,
        on_expiry: OnExpiry::Rst,
        probes_refresh: true,
        scale: 1,
    }
}

/// Writes to `server` as much as the path takes, until it takes no more
/// for 300 ms: how many bytes.
#[cfg(target_os = "linux")]
async fn answer_until_full(server: &TcpStream) -> u64 {
    let answer = [b'a'; 64 * 1024];
    let mut written = 0u64;
    let mut since = std::time::Instant::now();
    while since.elapsed() < Duration::from_millis(300) {
        match server.try_write(&answer) {
            Ok(n) => {
                written += n as u64;
                since = std::time::Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("the server's write: {e}"),
        }
    }
    written
}

/// Reads until the connection ends, which must be a reset: the bytes read.
async fn read_to_a_reset(stream: &mut TcpStream) -> u64 {
    let (got, end) = read_to_the_end(stream).await;
    assert_eq!(
        end,
        Err(io::ErrorKind::ConnectionReset),
        "after {got} bytes"
    );
    got
}

/// Reads until the connection ends: the bytes read, and how it ended
/// (`Ok(0)` a FIN, else the error's kind).
async fn read_to_the_end(stream: &mut TcpStream) -> (u64, Result<usize, io::ErrorKind>) {
    let mut got = 0u64;
    loop {
        match read_outcome(stream).await {
            Ok(0) => return (got, Ok(0)),
            Ok(n) => got += n as u64,
            Err(e) => return (got, Err(e.kind())),
        }
    }
}

/// A server that takes little (4 KiB of receive buffer) and never reads:
/// behind it the middlebox soon stops reading the client (its buffer toward
/// the server full), while what the client sends still reaches the
/// middlebox's socket, acknowledged by its kernel.
#[cfg(target_os = "linux")]
fn a_server_that_never_reads() -> TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    socket.listen(16).unwrap()
}

/// A FIN that reaches the middlebox behind bytes it does not read yet (its
/// buffer toward a server that stopped reading is full) came through then:
/// Cloud NAT's timer for a closing connection starts at once, not when the
/// bytes before it are read, which here is never (found reviewing the fixes
/// of December 5, 2026: the established timeout ran instead).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_fin_behind_bytes_the_middlebox_does_not_read_starts_the_closing_timer() {
    // Scale 100: established 1200 s → 12 s, transitory 30 s → 300 ms.
    let settings = Preset::GcpNat.settings(100);
    assert_eq!(settings.transitory_in_force_us(), Some(300_000));
    let limits = Limits {
        buffer_bytes: 16 * 1024,
        ..limits()
    };
    let mut rig = Rig::start_before(a_server_that_never_reads(), settings, limits).await;
    let (mut client, _server) = rig.pair().await;
    a_fin_behind_unread_bytes(&mut client).await;
    let (_, expired) = rig
        .events
        .next("expired", |e| matches!(e, MiddleboxEvent::Expired { .. }))
        .await;
    let MiddleboxEvent::Expired {
        idle_ms,
        transitory,
        ..
    } = expired
    else {
        unreachable!()
    };
    assert!(transitory, "the closing connection's timer: {expired:?}");
    assert!(
        (300..12_000).contains(&idle_ms),
        "after the transitory timeout, before the established one: {idle_ms} ms"
    );
}

/// Data that reaches the middlebox while it is not reading that side is
/// traffic through it all the same: it refreshes the mapping and is reported
/// as it arrives (at the next look at `TCP_INFO`), and at the expiry it is
/// forgotten with the mapping, not taken for late bytes (found in a
/// record-against-wire review: such bytes were reported nowhere until the
/// expiry, and then `dropped` as if they came after it, answered with the
/// preset's reset).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn bytes_that_reach_the_middlebox_while_it_does_not_read_are_reported_and_not_late() {
    let mut rig = behind_a_server_that_never_reads(OnExpiry::Silent).await;
    let (mut client, server) = rig.pair().await;
    // The middlebox stops reading (its send queue toward the server and its
    // buffer full) and its socket then fills up, about 100 KiB it never read.
    let (sent, arrived_before) = upload_until_full(&mut client, 64 * 1024).await;
    assert!(
        arrived_before < sent,
        "the middlebox's socket filled up: {arrived_before} of {sent} bytes taken"
    );
    // Then nothing more can come until the expiry, a second later.
    rig.events
        .next("expired", |e| matches!(e, MiddleboxEvent::Expired { .. }))
        .await;
    drop(client);
    drop(server);
    let Closed {
        client_bytes,
        dropped_bytes,
        ..
    } = rig.events.closed().await;
    // Every byte that reached the middlebox before the expiry was reported
    // as it arrived; what came after it (the piece the full socket held
    // back, let in once the forgotten mapping read everything) is `dropped`.
    let before_expiry: Vec<_> = rig
        .events
        .seen
        .iter()
        .take_while(|(_, e)| !matches!(e, MiddleboxEvent::Expired { .. }))
        .cloned()
        .collect();
    let reported_before = refreshed(&before_expiry, Side::Client, RefreshCause::Data).0;
    // (At least what had come when the upload stopped: on a machine slow
    // enough to stop it early, more may come before the expiry.)
    assert!(
        reported_before >= arrived_before,
        "reported as arrived before the expiry, {reported_before} of {arrived_before}: {:#?}",
        rig.events.seen
    );
    let late = rig.events.dropped_bytes(Side::Client);
    assert_eq!(
        reported_before + late,
        sent,
        "every byte sent, reported before the expiry or after: {:#?}",
        rig.events.seen
    );
    assert_eq!(
        client_bytes + dropped_bytes,
        reported_before + late,
        "every byte reported, forwarded or dropped: {:#?}",
        rig.events.seen
    );
}

/// A keep-alive probe leaves no trace of when it came, so the middlebox sees
/// it at its next look at `TCP_INFO`; those looks are a twentieth of the
/// timeout in force apart (here 250 ms of 5 s), so each probe is reported
/// (and restarts the idle timer) within about that of its arrival (found in
/// a record-against-wire review: a fifth apart, up to a second late here,
/// and `expired.idle_ms` short by as much). The probes' arrival is read on
/// the server's side: each draws an ACK from the middlebox's kernel, which
/// the server's socket counts.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn each_probe_is_reported_within_a_twentieth_of_the_timeout_of_its_arrival() {
    let mut rig = Rig::start(aws_nat_timing_out_after(5_000), limits()).await;
    let (mut client, mut server) = rig.pair().await;
    client.write_all(b"slow job").await.unwrap();
    read_n(&mut server, 8).await;
    probe_every_second(&server);
    let segs_in =
        |s: &TcpStream| keepalive_lab_server::middlebox::tcp_info::read(s).map(|t| t.segs_in);
    let start = std::time::Instant::now();
    let mut last_segs = segs_in(&server).expect("TCP_INFO");
    let mut answered = Vec::new();
    let mut reported = Vec::new();
    while start.elapsed() < Duration::from_millis(5_600) {
        tokio::select! {
            event = rig.events.rx.recv() => {
                let event = event.expect("the event stream");
                // An answer that came since the last sample, before this
                // event: timed now, at the latest.
                let now = segs_in(&server).expect("TCP_INFO");
                if now != last_segs {
                    answered.push(start.elapsed());
                    last_segs = now;
                }
                if let ServerEvent::Middlebox { mapping, event, .. } = &*event {
                    if let MiddleboxEvent::Refreshed { side: Side::Server, by: RefreshCause::Probe, count, .. } = event {
                        reported.push((start.elapsed(), *count));
                    }
                    rig.events.seen.push((*mapping, event.clone()));
                }
            }
            () = tokio::time::sleep(Duration::from_millis(2)) => {
                let now = segs_in(&server).expect("TCP_INFO");
                if now != last_segs {
                    answered.push(start.elapsed());
                    last_segs = now;
                }
            }
        }
    }
    assert!(
        answered.len() >= 3,
        "the server's kernel probed every second after the first: {answered:?}"
    );
    let counted: u32 = reported.iter().map(|(_, n)| n).sum();
    assert!(
        counted as usize >= answered.len() - 1 && counted as usize <= answered.len() + 1,
        "probes answered at {answered:?}, reported {reported:?}"
    );
    for (at, _) in &reported {
        let came = answered
            .iter()
            .rev()
            .find(|a| *a <= at)
            .unwrap_or_else(|| panic!("a probe reported at {at:?} before any: {answered:?}"));
        assert!(
            *at - *came < Duration::from_millis(600),
            "a probe answered at {came:?} was reported at {at:?} (looks 250 ms apart); \
             answered {answered:?}, reported {reported:?}"
        );
    }
}

/// What the middlebox wrote toward a side and that side never received is
/// lost with a reset (the kernel drops its send queue), so it is not
/// counted as forwarded (found in a record-against-wire review: a reset
/// passed on to a slow reader recorded 4.1 MB forwarded, of which the
/// reader got 1.3 MB). Here the expiry's `rst_both` resets a client that
/// never read a large answer: `closed`'s `server_bytes` are what the
/// client's kernel received.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn bytes_a_reset_discards_are_not_counted_forwarded() {
    let settings = MiddleboxSettings {
        preset: Preset::Custom,
        idle_timeout_ms: 1_000,
        on_expiry: OnExpiry::RstBoth,
        probes_refresh: false,
        scale: 1,
    };
    let mut rig = Rig::start(settings, limits()).await;
    let (mut client, server) = rig.pair_with_a_client_that_takes_little().await;
    // The middlebox's send queue toward the client holds far more than the
    // client's 4 KiB.
    let written = answer_until_full(&server).await;
    let Closed {
        how,
        client_bytes,
        server_bytes,
        dropped_bytes,
        ..
    } = rig.events.closed().await;
    assert_eq!(how, CloseHow::Rst);
    // What came before the reset can still be read; then the reset.
    read_to_a_reset(&mut client).await;
    let received = keepalive_lab_server::middlebox::tcp_info::read(&client)
        .expect("TCP_INFO")
        .bytes_received;
    assert!(
        received < 1024 * 1024 && written > 2 * 1024 * 1024,
        "the middlebox held most of the answer: {received} of {written} bytes received"
    );
    assert_eq!(
        server_bytes, received,
        "forwarded is what the client received: {:#?}",
        rig.events.seen
    );
    assert_eq!(
        client_bytes + server_bytes + dropped_bytes,
        rig.events.data_read(Side::Client) + rig.events.data_read(Side::Server),
        "every byte reported, forwarded or dropped: {:#?}",
        rig.events.seen
    );
}

/// After an expiry, while the middlebox's socket toward a server that
/// stopped reading still holds the client's bytes (a zero window), its
/// kernel probes that window and the server's kernel answers each probe:
/// segments the server did not send of its own, so neither its probes nor
/// a packet to answer with `rst_either`'s reset (found in review: counted
/// as `dropped` probes from the server, and the server reset).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn answers_to_the_middleboxs_window_probes_are_not_the_servers_packets() {
    let mut rig = behind_a_server_that_never_reads(OnExpiry::RstEither).await;
    let (mut client, server) = rig.pair().await;
    upload_until_full(&mut client, 64 * 1024).await;
    rig.events
        .next("expired", |e| matches!(e, MiddleboxEvent::Expired { .. }))
        .await;
    // The window probes back off from 200 ms (0.2, 0.4, 0.8, 1.6, 3.2 s
    // apart): over 3.5 s after the expiry at least one is answered.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    rig.events.drain();
    assert!(
        !rig.events.any(|e| matches!(
            e,
            MiddleboxEvent::Dropped {
                side: Side::Server,
                ..
            } | MiddleboxEvent::RstSent { side: Side::Server }
        )),
        "the server sent nothing: {:#?}",
        rig.events.seen
    );
    // Nothing reset the server's connection: it can still write.
    assert!(
        matches!(server.try_write(b"x"), Ok(1)),
        "the server's connection was not reset"
    );
}

/// While a window is closed, the segments without data that each side sends
/// are window probes (the client's, into the middlebox's full socket) and
/// answers to the middlebox kernel's own (the server's, which reads nothing):
/// packets that refresh the mapping where probes do, reported as
/// `window_probe`, never as the TCP keep-alive probes the NAT lessons count
/// (found in the record-against-wire review of December 5, 2026: both were
/// reported as `probe`).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn segments_while_a_window_is_closed_are_window_probes_not_keep_alive() {
    use keepalive_lab_server::middlebox::tcp_info;
    let mut rig = before_a_server_that_never_reads(a_minute_that_probes_refresh()).await;
    let (mut client, _server) = rig.pair().await;
    tcp_info::read(&client)
        .and_then(|seen| seen.rcv_wnd)
        .expect("tcpi_rcv_wnd (a kernel newer than Linux 6.1)");
    upload_until_full(&mut client, 64 * 1024).await;
    // Window probes back off from 200 ms (0.2, 0.4, 0.8 s apart): within
    // 2.5 s each side has sent a few.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    rig.events.drain();
    let seen = &rig.events.seen;
    for side in [Side::Client, Side::Server] {
        let (_, windows) = refreshed(seen, side, RefreshCause::WindowProbe);
        assert!(windows > 0, "no window probe from the {side:?}: {seen:#?}");
        assert_eq!(
            refreshed(seen, side, RefreshCause::Probe),
            (0, 0),
            "keep-alive probes from the {side:?}, which sent none: {seen:#?}"
        );
    }
}

/// The peer's FIN takes a number in TCP's sequence, and Linux counts it in
/// `tcpi_bytes_received`: a look at a half-closed socket must not report it
/// as a byte of data (found in review: 5 bytes and a FIN were recorded as 6,
/// one of them then counted dropped; `tcp_info::tests::a_fin_is_not_data`
/// for the count itself).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_fin_is_not_counted_as_a_byte() {
    let mut rig = Rig::start(aws_nat_timing_out_after(5_000), limits()).await;
    let (mut client, mut server) = rig.pair().await;
    client.write_all(b"hello").await.unwrap();
    read_n(&mut server, 5).await;
    client.shutdown().await.unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(within("the FIN", server.read(&mut buf)).await.unwrap(), 0);
    // Looks 250 ms apart: several while the client's side is half-closed.
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.write_all(b"bye").await.unwrap();
    drop(server);
    assert_eq!(read_n(&mut client, 3).await, b"bye");
    let closed = rig.events.closed().await;
    assert_eq!(
        (
            rig.events.data_read(Side::Client),
            closed.client_bytes,
            closed.dropped_bytes
        ),
        (5, 5, 0),
        "{:#?}",
        rig.events.seen
    );
}

/// Bytes the middlebox sent a client whose ACK was still delayed had reached
/// it: after the server's reset is passed on, the client reads them, so they
/// count as forwarded (found in review: counted dropped, as if unsent).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn bytes_sent_before_a_reset_and_not_yet_acknowledged_count_as_forwarded() {
    let mut rig = Rig::start(about_a_second(Preset::AwsNat), limits()).await;
    let (mut client, mut server) = rig.pair().await;
    client.write_all(b"q").await.unwrap();
    read_n(&mut server, 1).await;
    socket2::SockRef::from(&client)
        .set_tcp_quickack(false)
        .unwrap();
    server.write_all(&[b'r'; 100]).await.unwrap();
    server.set_zero_linger().unwrap();
    drop(server);
    let (got, end) = read_to_the_end(&mut client).await;
    assert_eq!(end, Err(io::ErrorKind::ConnectionReset));
    let closed = rig.events.closed().await;
    assert_eq!(
        (got, closed.server_bytes, closed.dropped_bytes),
        (100, 100, 0),
        "{:#?}",
        rig.events.seen
    );
}

/// A close the middlebox makes in order (here its stop) goes out as a reset
/// when a side's bytes are unread, and that reset also discards what its
/// kernel still held for the other side: not counted forwarded (found in
/// review: a client that received 4 KiB was recorded as sent 2.8 MB).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_close_that_goes_out_as_a_reset_does_not_count_its_send_queue_forwarded() {
    let settings = MiddleboxSettings {
        preset: Preset::Custom,
        idle_timeout_ms: 60_000,
        on_expiry: OnExpiry::Fin,
        probes_refresh: false,
        scale: 1,
    };
    let limits = Limits {
        buffer_bytes: 16 * 1024,
        ..limits()
    };
    let mut rig = Rig::start_before(a_server_that_never_reads(), settings, limits).await;
    // A client that reads nothing, to which the server answers a lot...
    let (mut client, server) = rig.pair_with_a_client_that_takes_little().await;
    let written = answer_until_full(&server).await;
    // ...and which uploads until the middlebox leaves its bytes unread.
    upload_until_full(&mut client, 64 * 1024).await;
    rig.middlebox.stop();
    let closed = rig.events.closed().await;
    assert_eq!(closed.how, CloseHow::Rst);
    let got = read_to_a_reset(&mut client).await;
    assert!(
        got < 1024 * 1024 && written > 2 * 1024 * 1024,
        "the middlebox held most of the answer: {got} of {written} bytes read"
    );
    assert_eq!(
        closed.server_bytes, got,
        "forwarded is what the client read: {:#?}",
        rig.events.seen
    );
}

/// Nothing is read from the client while the server's reset waits to be
/// passed on (after the bytes already read for the client, within
/// `max_linger`), but what the client sends meanwhile reaches the
/// middlebox's socket all the same: it is reported, and counted at the end
/// (found in review: 200 bytes its kernel took were counted nowhere).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn bytes_that_come_while_a_reset_waits_to_be_passed_on_are_counted() {
    let limits = Limits {
        max_linger: Duration::from_secs(2),
        ..limits()
    };
    let mut rig = Rig::start(aws_nat_timing_out_after(60_000), limits).await;
    let (mut client, server) = rig.pair_with_a_client_that_takes_little().await;
    // The server answers more than the client takes, then resets.
    answer_until_full(&server).await;
    server.set_zero_linger().unwrap();
    drop(server);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let acked = Acked::start(&client);
    // Read and written toward the server, whose reset the write finds: the
    // middlebox then waits (its buffer toward the client is full).
    client.write_all(&[b'x'; 100]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.write_all(&[b'y'; 200]).await.unwrap();
    within("the middlebox's kernel took them", async {
        while acked.now(&client) < 300 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let closed = rig.events.closed().await;
    let dropped = rig.events.dropped_bytes(Side::Client);
    assert_eq!(
        rig.events.data_read(Side::Client) + dropped,
        300,
        "every byte the client sent, reported: {:#?}",
        rig.events.seen
    );
    assert_eq!(
        closed.client_bytes + closed.server_bytes + closed.dropped_bytes,
        rig.events.data_read(Side::Client) + rig.events.data_read(Side::Server) + dropped,
        "every byte reported, forwarded or dropped: {:#?}",
        rig.events.seen
    );
}

/// A client that closed, and then gets the server's late answer, rejects it
/// with a reset its kernel sends; the middlebox reads no more from a side
/// whose FIN it has and writes nothing after, so only its socket's error
/// tells: the answer is not counted forwarded (found in review: `closed`
/// counted the 1 000 bytes as forwarded).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn an_answer_a_closed_client_rejects_is_not_counted_forwarded() {
    let (mut rig, client, mut server) = one_byte_through_a_long_timeout().await;
    drop(client);
    let mut buf = [0u8; 8];
    assert_eq!(within("the FIN", server.read(&mut buf)).await.unwrap(), 0);
    server.write_all(&[b'r'; 1000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(server);
    let closed = rig.events.closed().await;
    assert_eq!(closed.totals(), (1, 0, 1000), "{:#?}", rig.events.seen);
}

/// A client that reads an answer and resets before its delayed ACK goes
/// out had every byte: Linux does not take the ACK a reset carries, so the
/// bytes stay unacknowledged, and they count as forwarded all the same
/// (found in review: counted dropped). Only what comes after a peer's FIN
/// and is never acknowledged counts as rejected.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn an_answer_read_before_the_clients_reset_counts_as_forwarded() {
    let (mut rig, mut client, mut server) = one_byte_through_a_long_timeout().await;
    socket2::SockRef::from(&client)
        .set_tcp_quickack(false)
        .unwrap();
    server.write_all(&[b'r'; 100]).await.unwrap();
    assert_eq!(read_n(&mut client, 100).await.len(), 100);
    socket2::SockRef::from(&client)
        .set_tcp_quickack(false)
        .unwrap();
    client.set_zero_linger().unwrap();
    drop(client);
    let closed = rig.events.closed().await;
    assert_eq!(closed.totals(), (1, 100, 0), "{:#?}", rig.events.seen);
}

/// A mapping in front of a client that takes little (4 KiB of receive
/// buffer) and reads nothing yet, expiring with `fin` 1 s after the server
/// answered it 200 KiB, most of which the middlebox's kernel still holds
/// for the client (a zero window): the rig, the client, and the `expired`
/// event seen.
#[cfg(target_os = "linux")]
async fn an_answer_held_for_a_client_that_does_not_read(max_linger: Duration) -> (Rig, TcpStream) {
    let (rig, client, _) = held_for_who_does_not_read(max_linger, None).await;
    (rig, client)
}

/// As [`an_answer_held_for_a_client_that_does_not_read`], and with
/// `upload`, in front of [`a_server_that_never_reads`] to which the client
/// has sent that much: the rig, the client, the server.
#[cfg(target_os = "linux")]
async fn held_for_who_does_not_read(
    max_linger: Duration,
    upload: Option<usize>,
) -> (Rig, TcpStream, TcpStream) {
    let settings = MiddleboxSettings {
        preset: Preset::Custom,
        idle_timeout_ms: 1_000,
        on_expiry: OnExpiry::Fin,
        probes_refresh: false,
        scale: 1,
    };
    let limits = Limits {
        max_linger,
        ..limits()
    };
    let upstream = match upload {
        Some(_) => a_server_that_never_reads(),
        None => TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    let mut rig = Rig::start_before(upstream, settings, limits).await;
    let (mut client, mut server) = rig.pair_with_a_client_that_takes_little().await;
    within("the answer", server.write_all(&[b'a'; 200 * 1024]))
        .await
        .unwrap();
    if let Some(upload) = upload {
        within("the upload", client.write_all(&vec![b'u'; upload]))
            .await
            .unwrap();
    }
    rig.events
        .next("expired", |e| matches!(e, MiddleboxEvent::Expired { .. }))
        .await;
    (rig, client, server)
}

/// A close in order (`fin` at expiry) while the middlebox's kernel still
/// holds bytes for a client that never reads again: they never reach it,
/// so they are not forwarded. Kept until the end of `max_linger`, they are
/// then counted dropped and the client reset so that they are (found in a
/// record-against-wire review: `closed` counted them forwarded).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn bytes_a_client_never_takes_after_a_close_in_order_are_dropped_not_forwarded() {
    let (mut rig, mut client) =
        an_answer_held_for_a_client_that_does_not_read(Duration::from_secs(1)).await;
    let closed = rig.events.closed().await;
    assert!(
        rig.events
            .any(|e| matches!(e, MiddleboxEvent::RstSent { side: Side::Client })),
        "{:#?}",
        rig.events.seen
    );
    assert_eq!((closed.by, closed.how), (Party::Middlebox, CloseHow::Rst));
    let got = read_to_a_reset(&mut client).await;
    assert!(
        got < 100 * 1024,
        "the middlebox held most of it: {got} bytes read"
    );
    reached_the_client(&rig, &closed, got);
}

/// The same close, with a client that reads again after it: every byte
/// reaches it, then the FIN, and `closed` (which waits for them) counts
/// them forwarded.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn bytes_a_client_takes_after_a_close_in_order_are_forwarded_then_the_fin() {
    let (mut rig, mut client) =
        an_answer_held_for_a_client_that_does_not_read(Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    rig.events.drain();
    assert!(
        !rig.events
            .any(|e| matches!(e, MiddleboxEvent::Closed { .. })),
        "not over while bytes wait for the client: {:#?}",
        rig.events.seen
    );
    everything_then_the_fin(&mut rig, &mut client, 0).await;
}

/// A client that resets while the middlebox's bytes for it wait (its
/// program gave up: it had bytes unread, so its close is a reset) ends the
/// mapping then, with its reset: the middlebox sends none, and what its
/// kernel still held is dropped with it (found in review: the wait ran to
/// the end of `max_linger`, and the record said the middlebox reset it).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_client_that_resets_while_its_answer_waits_ends_the_mapping_then() {
    let (mut rig, client) =
        an_answer_held_for_a_client_that_does_not_read(Duration::from_secs(20)).await;
    let received = keepalive_lab_server::middlebox::tcp_info::read(&client)
        .expect("TCP_INFO")
        .bytes_received;
    let reset_at = std::time::Instant::now();
    drop(client);
    let closed = rig.events.closed().await;
    assert!(
        reset_at.elapsed() < Duration::from_secs(2),
        "closed {:?} after the reset",
        reset_at.elapsed()
    );
    assert_eq!((closed.by, closed.how), (Party::Client, CloseHow::Rst));
    sent_no_reset(&rig);
    reached_the_client(&rig, &closed, received);
}

/// What a client sends while the middlebox's bytes for it wait is read and
/// dropped, reported as it comes: the close that follows once the client
/// has everything is the FIN the record says (found in review: left
/// unread, it turned the close into a reset recorded `fin`).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn bytes_a_client_sends_while_its_answer_waits_are_dropped_and_the_close_stays_in_order() {
    let (mut rig, mut client) =
        an_answer_held_for_a_client_that_does_not_read(Duration::from_secs(20)).await;
    client.write_all(b"0123456789").await.unwrap();
    rig.events
        .next("the late bytes", |e| {
            matches!(
                e,
                MiddleboxEvent::Dropped {
                    side: Side::Client,
                    bytes: 10,
                    ..
                }
            )
        })
        .await;
    everything_then_the_fin(&mut rig, &mut client, 10).await;
    sent_no_reset(&rig);
}

/// `closed` of [`an_answer_held_for_a_client_that_does_not_read`]: the
/// `reached` bytes forwarded to the client, the rest of its 200 KiB dropped.
#[cfg(target_os = "linux")]
fn reached_the_client(rig: &Rig, closed: &Closed, reached: u64) {
    assert_eq!(
        closed.totals(),
        (0, reached, 200 * 1024 - reached),
        "forwarded is what reached the client: {:#?}",
        rig.events.seen
    );
}

/// The middlebox reset neither side.
fn sent_no_reset(rig: &Rig) {
    assert!(
        !rig.events
            .any(|e| matches!(e, MiddleboxEvent::RstSent { .. })),
        "{:#?}",
        rig.events.seen
    );
}

/// Both sides' bytes waiting (a client and a server that read nothing),
/// and the client resets: its reset stays the record's end when the
/// middlebox then gives the server's side up at the end of `max_linger`
/// (found in review: the middlebox's reset replaced it, and the client's
/// was in no event).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_peers_reset_stays_on_the_record_when_the_other_side_is_given_up() {
    let (mut rig, client, mut server) =
        held_for_who_does_not_read(Duration::from_secs(1), Some(100 * 1024)).await;
    drop(client);
    let closed = rig.events.closed().await;
    assert_eq!((closed.by, closed.how), (Party::Client, CloseHow::Rst));
    assert!(
        rig.events
            .any(|e| matches!(e, MiddleboxEvent::RstSent { side: Side::Server })),
        "{:#?}",
        rig.events.seen
    );
    let got = read_to_a_reset(&mut server).await;
    assert!(
        got < 100 * 1024,
        "the middlebox held most of it: {got} bytes read"
    );
    assert_eq!(closed.client_bytes, got, "{:#?}", rig.events.seen);
}

/// The client of [`an_answer_held_for_a_client_that_does_not_read`] reads
/// all 200 KiB, then the middlebox's FIN; `closed` then says so, every
/// byte forwarded and `dropped` (what the client sent meanwhile) dropped.
#[cfg(target_os = "linux")]
async fn everything_then_the_fin(rig: &mut Rig, client: &mut TcpStream, dropped: u64) {
    let (got, end) = read_to_the_end(client).await;
    assert_eq!((got, end), (200 * 1024, Ok(0)));
    let closed = rig.events.closed().await;
    assert_eq!((closed.by, closed.how), (Party::Middlebox, CloseHow::Fin));
    assert_eq!(
        closed.totals(),
        (0, 200 * 1024, dropped),
        "{:#?}",
        rig.events.seen
    );
}
