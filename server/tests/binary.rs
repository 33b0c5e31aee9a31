//! The real binary, as a shell or a service manager runs it.
//!
//! - SIGTERM stops each of its three tools the way Ctrl-C does: started, sent
//!   SIGTERM (with the `kill` command) once it is doing something, each must
//!   exit 0 after its last lines (the middlebox's `closed` for an open
//!   mapping, the agent's `finished`, the lab's "shutting down").
//! - Log messages go to stderr: the middlebox out of file descriptors
//!   (`ulimit -n`) warns there, seldom, and its stdout stays JSON lines.
//!
//! Unix only: elsewhere there is no SIGTERM or `ulimit`.
//!
//! Every wait is bounded by [`LIMIT`]; nothing asserts how long it took.
#![cfg(unix)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdout, Command};

/// Upper bound for any single wait: a safety net, not a performance claim.
const LIMIT: Duration = Duration::from_secs(20);

/// The binary with `args` (split at spaces), its stdout piped; its stderr
/// piped too when `stderr`, else dropped.
fn spawn_with(
    mut command: Command,
    args: &str,
    stderr: bool,
) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = command
        .args(args.split_whitespace())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if stderr {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .kill_on_drop(true)
        .spawn()
        .expect("start the binary");
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

const BINARY: &str = env!("CARGO_BIN_EXE_keepalive-lab");

/// The binary with `args` (split at spaces), its stdout piped.
fn spawn(args: &str) -> (Child, Lines<BufReader<ChildStdout>>) {
    spawn_with(Command::new(BINARY), args, false)
}

/// Reads lines until one satisfies `wanted`; every line read, in order.
async fn read_until<R: AsyncBufRead + Unpin>(
    lines: &mut Lines<R>,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.expect("read the output") {
            let done = wanted(&line);
            seen.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "no line with {what} in {seen:#?}"
    );
    seen
}

/// Sends SIGTERM to `child` with the `kill` command.
fn send_sigterm(child: &Child) {
    let pid = child.id().expect("still running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM {pid}");
}

/// A service that accepts connections and holds them, never answering.
async fn holding_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// Reads a middlebox's first line: it and the address it listens on.
async fn middlebox_started(lines: &mut Lines<BufReader<ChildStdout>>) -> (Vec<String>, String) {
    let first = read_until(lines, "middlebox_started", |l| {
        l.contains("middlebox_started")
    })
    .await;
    let listen = json(first.last().unwrap())["listen"]
        .as_str()
        .unwrap()
        .to_owned();
    (first, listen)
}

/// Sends SIGTERM to `child`, reads the rest of its stdout, and checks that
/// it exits 0; the lines it printed after the signal.
async fn terminate(mut child: Child, mut lines: Lines<BufReader<ChildStdout>>) -> Vec<String> {
    send_sigterm(&child);
    let mut rest = Vec::new();
    tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            rest.push(line);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("stdout not closed after SIGTERM: {rest:#?}"));
    let status = tokio::time::timeout(LIMIT, child.wait())
        .await
        .expect("exited after SIGTERM")
        .expect("exit status");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status; after SIGTERM: {rest:#?}"
    );
    rest
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not a JSON line: {line}"))
}

#[tokio::test]
async fn sigterm_stops_the_middlebox_with_a_closed_line_per_open_mapping() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (child, mut lines) = spawn(&format!(
        "middlebox --listen 127.0.0.1:0 --upstream {} --preset custom --idle-timeout 600s",
        upstream.local_addr().unwrap()
    ));
    let (_, listen) = middlebox_started(&mut lines).await;
    let mut client = TcpStream::connect(&listen).await.unwrap();
    let (mut server, _) = upstream.accept().await.unwrap();
    client.write_all(b"hi").await.unwrap();
    let mut two = [0u8; 2];
    server.read_exact(&mut two).await.unwrap();
    read_until(&mut lines, "an opened mapping", |l| {
        json(l)["event"]["kind"] == "opened"
    })
    .await;
    let rest = terminate(child, lines).await;
    let kinds: Vec<serde_json::Value> = rest
        .iter()
        .map(|l| json(l)["event"]["kind"].clone())
        .collect();
    assert!(
        kinds.iter().any(|k| k == "closed"),
        "the open mapping's closed line: {rest:#?}"
    );
}

#[tokio::test]
async fn sigterm_stops_the_agent_with_its_finished_line() {
    // A server that takes the request and never answers: the run is busy
    // when SIGTERM comes.
    let addr = holding_server().await;
    let (child, mut lines) = spawn(&format!("agent http://{addr}/hang --keep-alive --count 1"));
    read_until(&mut lines, "the request's sent line", |l| {
        json(l)["event"]["name"] == "sent"
    })
    .await;
    let rest = terminate(child, lines).await;
    let last = json(rest.last().expect("lines after SIGTERM"));
    assert_eq!(last["kind"], "finished", "{rest:#?}");
    assert_eq!(last["reason"], "stopped", "{rest:#?}");
    assert!(
        rest.iter().any(|l| json(l)["event"]["name"] == "aborted"),
        "the request in flight is aborted: {rest:#?}"
    );
}

#[tokio::test]
async fn sigterm_shuts_the_lab_down_like_ctrl_c() {
    let dist = std::env::temp_dir().join(format!("keepalive-lab-signals-{}", std::process::id()));
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("index.html"), "<!doctype html><title>lab</title>").unwrap();
    let (child, mut lines) = spawn(&format!("--port 0 --dist {}", dist.display()));
    // Everything is printed before it serves; the key line comes last.
    read_until(&mut lines, "the instructor key", |l| {
        l.trim_start().starts_with("instructor key")
    })
    .await;
    let rest = terminate(child, lines).await;
    assert!(
        rest.iter().any(|l| l.starts_with("shutting down")),
        "{rest:#?}"
    );
}

#[tokio::test]
async fn a_middlebox_out_of_descriptors_warns_on_stderr_seldom_and_stdout_stays_json() {
    let upstream_addr = holding_server().await;
    // Few descriptors: a handful of mappings (two sockets each) uses them up,
    // and the next accepts fail with EMFILE until clients go.
    let mut limited = Command::new("bash");
    limited
        .arg("-c")
        .arg("ulimit -n 20 && exec \"$0\" \"$@\"")
        .arg(BINARY);
    let began = std::time::Instant::now();
    let (mut child, mut lines) = spawn_with(
        limited,
        &format!("middlebox --listen 127.0.0.1:0 --upstream {upstream_addr} --idle-timeout 600s"),
        true,
    );
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let (first, listen) = middlebox_started(&mut lines).await;
    // stdout is read meanwhile, so the middlebox never blocks on it.
    let stdout = tokio::spawn(async move {
        let mut rest = first;
        while let Ok(Some(line)) = lines.next_line().await {
            rest.push(line);
        }
        rest
    });
    let mut clients = Vec::new();
    for _ in 0..12 {
        // The kernel completes the handshake from the backlog even when the
        // middlebox cannot accept. One it accepted but could not open the
        // upstream side for (out of descriptors too) it resets, which can
        // come before the connect has returned (seen once in CI): that one
        // is not held.
        let mut client = match TcpStream::connect(&listen).await {
            Ok(client) => client,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => continue,
            Err(e) => panic!("connect to the middlebox: {e}"),
        };
        let _ = client.write_all(b"hi").await;
        clients.push(client);
    }
    let mut logged = read_until(&mut stderr, "an accept failure on stderr", |l| {
        l.contains("accept failed")
    })
    .await;
    drop(clients);
    send_sigterm(&child);
    let status = tokio::time::timeout(LIMIT, child.wait())
        .await
        .expect("exited after SIGTERM")
        .expect("exit status");
    let ran = began.elapsed();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(LIMIT, stderr.next_line()).await {
        logged.push(line);
    }
    let printed = tokio::time::timeout(LIMIT, stdout)
        .await
        .expect("stdout closed")
        .unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {logged:#?}");
    for line in &printed {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not a JSON line on stdout: {line}"
        );
    }
    // Failing every 50 ms, it warned at most once per 10 s (plus the first),
    // however long this took: before, a line per failure.
    let warnings = logged
        .iter()
        .filter(|l| l.contains("accept failed"))
        .count();
    let allowed = 2 + ran.as_secs() / 10;
    assert!(
        warnings as u64 <= allowed,
        "{warnings} warnings in {ran:?}: {logged:#?}"
    );
}

/// `--version` and `--help` of the lab and of both tools answer on stdout
/// and exit 0; a mistake goes to stderr with exit code 2.
#[test]
fn version_and_help_exit_zero_on_stdout_and_mistakes_exit_two() {
    let run = |args: &[&str]| {
        std::process::Command::new(BINARY)
            .args(args)
            .output()
            .expect("run the binary")
    };
    let version = format!("keepalive-lab {}\n", env!("CARGO_PKG_VERSION"));
    for args in [
        &["--version"][..],
        &["-V"],
        &["middlebox", "--version"],
        &["agent", "--version"],
    ] {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
        assert_eq!(String::from_utf8_lossy(&out.stdout), version, "{args:?}");
    }
    for (args, words) in [
        (&["--help"][..], "usage: keepalive-lab [--port N]"),
        (&["middlebox", "--help"], "usage: keepalive-lab middlebox"),
        (&["agent", "--help"], "usage: keepalive-lab agent"),
    ] {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(words),
            "{args:?}"
        );
    }
    let out = run(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown flag `--bogus`"));
}
