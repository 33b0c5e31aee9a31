//! The standalone middlebox's command line as the real binary runs it, and
//! what its records say about the bytes it held when it stopped (review of
//! the command lines: H1, M3, L7, L8, N4).
//!
//! - Its stdout failing is an error it reports (exit 1), never a panic
//!   (exit 101), for `--help` and `--version` and while it runs.
//! - Loopback only (the house rule for fault tools): a `--listen` or
//!   `--upstream` that is not loopback once resolved, or the two on the same
//!   socket, is a usage mistake (exit 2); `--duration` stops it by itself,
//!   as Ctrl-C does.
//! - At stop, what it had read but not delivered is in the mapping's
//!   `closed` totals (`dropped_bytes`).
//!
//! Real TCP on 127.0.0.1 port 0; every process under `common::binary::LIMIT` and killed
//! on drop; nothing asserts how long anything took.
#![cfg(unix)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::binary::{BINARY, LIMIT, assert_exit_1_saying, full, run_to_end, stderr};
use keepalive_lab_server::middlebox::{Limits, Middlebox};
use protocol::{MiddleboxEvent, Preset, RefreshCause, ServerEvent, Side};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::process::Command;

#[tokio::test]
async fn help_and_version_on_a_full_stdout_exit_1_without_a_panic() {
    for args in [["middlebox", "--help"], ["middlebox", "--version"]] {
        let out = run_to_end(&args, full()).await;
        assert_exit_1_saying(&out, "cannot write to stdout", &format!("{args:?}"));
    }
}

#[tokio::test]
async fn addresses_that_are_not_loopback_or_the_same_socket_are_usage_mistakes() {
    // A port nothing else will take while it is held.
    let held = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = held.local_addr().unwrap().port();
    // The same socket written another way (an IPv4 address as IPv6), so
    // that the case does not depend on what `localhost` resolves to here.
    let same = format!("[::ffff:127.0.0.1]:{port}");
    let upstream = format!("127.0.0.1:{port}");
    for (args, words) in [
        (
            vec!["--listen", "0.0.0.0:0", "--upstream", "127.0.0.1:1"],
            "--listen 0.0.0.0:0 is not a loopback address",
        ),
        (
            // TEST-NET-1: refused before anything connects anywhere.
            vec!["--listen", "127.0.0.1:0", "--upstream", "192.0.2.1:80"],
            "--upstream 192.0.2.1:80 is not a loopback address",
        ),
        (
            // A name other than localhost's: refused before it is looked up.
            vec!["--listen", "example.com:9000", "--upstream", "127.0.0.1:1"],
            "--listen example.com:9000 is not a loopback address (`example.com` is a name, not looked up)",
        ),
        (
            vec!["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:0"],
            "port 0",
        ),
        (
            vec!["--listen", &same, "--upstream", &upstream],
            "the same socket",
        ),
    ] {
        let mut all = vec!["middlebox"];
        all.extend(&args);
        let out = run_to_end(&all, Stdio::piped()).await;
        let said = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
        assert!(said.contains(words), "{args:?}: {said}");
        assert!(said.contains("hint:"), "{args:?}: {said}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing started");
    }
    drop(held);
}

#[tokio::test]
async fn it_stops_by_itself_after_its_duration_as_on_ctrl_c() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut child = Command::new(BINARY)
        .args([
            "middlebox",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &upstream.local_addr().unwrap().to_string(),
            "--idle-timeout",
            "600s",
            "--duration",
            "5s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the binary");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(LIMIT, lines.next_line())
        .await
        .expect("the first line")
        .unwrap()
        .expect("a line");
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["stops_after_ms"], 5000, "{first}");
    // One open mapping when the time is up.
    let mut client = TcpStream::connect(first["listen"].as_str().unwrap())
        .await
        .unwrap();
    let (mut server, _) = tokio::time::timeout(LIMIT, upstream.accept())
        .await
        .expect("the middlebox connects upstream")
        .unwrap();
    client.write_all(b"hi").await.unwrap();
    let mut two = [0u8; 2];
    tokio::time::timeout(LIMIT, server.read_exact(&mut two))
        .await
        .expect("the bytes pass")
        .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            rest.push(line);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("still running after {LIMIT:?}: {rest:#?}"));
    let out = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("exited")
        .expect("its status");
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        rest.iter().any(|l| l.contains(r#""kind":"closed""#)),
        "the open mapping's closed line: {rest:#?}"
    );
    assert!(
        said.contains("stopped by itself") && said.contains("--duration"),
        "says why it stopped: {said}"
    );
}

#[tokio::test]
async fn a_stdout_that_fails_while_running_stops_it_at_once_with_exit_1() {
    // Without the fix it proxies on, silent, for its whole --duration (1h
    // by default): `run_to_end` fails the test after LIMIT.
    let out = run_to_end(
        &[
            "middlebox",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:1",
        ],
        full(),
    )
    .await;
    assert_exit_1_saying(&out, "No space left on device", "stdout full while running");
}

/// Review L8, on raw sockets: a client that never reads, an upstream that
/// writes a large body, then the middlebox is stopped. Every byte it read
/// (`refreshed`: read, or found in its socket unread) is in `closed`:
/// forwarded (`server_bytes`, exactly what the client then receives) or
/// dropped (`dropped_bytes`, what was still in its buffer or its socket).
/// Before, the buffer's bytes were counted nowhere.
#[tokio::test]
async fn at_stop_every_byte_read_is_forwarded_or_counted_dropped() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listen = listener.local_addr().unwrap();
    let limits = Limits::default();
    let buffer = limits.buffer_bytes as u64;
    let middlebox = Middlebox::standalone(
        upstream.local_addr().unwrap(),
        Preset::Custom.settings(1),
        limits,
    );
    let mut events = middlebox.events();
    let serving = middlebox.clone();
    let serve = tokio::spawn(async move { serving.serve(listener).await });

    // A client with a small receive buffer that does not read.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut client = socket.connect(listen).await.unwrap();
    let (mut server, _) = tokio::time::timeout(LIMIT, upstream.accept())
        .await
        .expect("the middlebox connects")
        .unwrap();

    // The upstream writes a chunk at a time and counts what the middlebox
    // reports it read (its `refreshed` events), until the middlebox stops
    // reading: its buffer towards the client is full. Stopped means a write
    // that stays pending and two windows in a row in which nothing more was
    // read, not one slow moment of a loaded machine.
    const CHUNK: usize = 64 * 1024;
    const WINDOW: Duration = Duration::from_millis(500);
    let chunk = vec![b'x'; CHUNK];
    let (mut sent, mut read) = (0u64, 0u64);
    let mut still = 0;
    while still < 2 {
        let mut pending = false;
        let mut at = 0;
        while at < CHUNK {
            match tokio::time::timeout(WINDOW, server.write(&chunk[at..])).await {
                Ok(Ok(n)) => {
                    at += n;
                    sent += n as u64;
                }
                // The kernel's buffers are full too (for now).
                Err(_) => {
                    pending = true;
                    break;
                }
                Ok(Err(e)) => panic!("the upstream's write: {e}"),
            }
        }
        let before = read;
        let _ = tokio::time::timeout(WINDOW, async {
            while read < sent {
                match events.recv().await.as_deref() {
                    Ok(ServerEvent::Middlebox {
                        event:
                            MiddleboxEvent::Refreshed {
                                side: Side::Server,
                                by: RefreshCause::Data,
                                bytes,
                                ..
                            },
                        ..
                    }) => read += bytes,
                    Ok(_) => {}
                    Err(e) => panic!("event stream: {e}"),
                }
            }
        })
        .await;
        // The read count never runs ahead of what the upstream sent.
        assert!(read <= sent, "read {read} of {sent} sent");
        still = if pending && read == before {
            still + 1
        } else {
            0
        };
        assert!(sent < 256 * 1024 * 1024, "it never stopped reading");
    }
    assert!(read > 0, "the middlebox read from the upstream");

    middlebox.stop();
    // The rest of the events: every `refreshed` still to come, and `closed`.
    let (server_bytes, dropped_bytes, client_bytes) = tokio::time::timeout(LIMIT, async {
        loop {
            match events.recv().await.as_deref() {
                Ok(ServerEvent::Middlebox { event, .. }) => match event {
                    MiddleboxEvent::Refreshed {
                        side: Side::Server,
                        by: RefreshCause::Data,
                        bytes,
                        ..
                    } => read += bytes,
                    MiddleboxEvent::Closed {
                        server_bytes,
                        dropped_bytes,
                        client_bytes,
                        ..
                    } => return (*server_bytes, *dropped_bytes, *client_bytes),
                    _ => {}
                },
                Ok(_) => {}
                Err(e) => panic!("event stream: {e}"),
            }
        }
    })
    .await
    .expect("the closed line");
    // What the client really receives, to the FIN the middlebox sends.
    let mut received = 0u64;
    let mut scratch = vec![0u8; CHUNK];
    tokio::time::timeout(LIMIT, async {
        loop {
            match client.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n as u64,
            }
        }
    })
    .await
    .expect("the client reads to the end");
    let _ = tokio::time::timeout(LIMIT, serve).await;
    drop(server);

    assert_eq!(client_bytes, 0, "the client sent nothing");
    assert!(read <= sent, "read {read} of {sent} sent");
    assert_eq!(
        server_bytes, received,
        "forwarded = what the client received"
    );
    assert_eq!(
        server_bytes + dropped_bytes,
        read,
        "every byte read is forwarded or dropped: {server_bytes} + {dropped_bytes}"
    );
    assert!(
        dropped_bytes >= buffer,
        "its full buffer's {buffer} bytes, and what it found in its socket unread: {dropped_bytes}"
    );
}
