//! SIGTERM stops each of the binary's three tools the way Ctrl-C does: the
//! real binary is started, sent SIGTERM (with the `kill` command) once it is
//! doing something, and must exit 0 after its last lines (the middlebox's
//! `closed` for an open mapping, the agent's `finished`, the lab's
//! "shutting down"). Unix only: elsewhere there is no SIGTERM.
//!
//! Every wait is bounded by [`LIMIT`]; nothing asserts how long it took.
#![cfg(unix)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdout, Command};

/// Upper bound for any single wait: a safety net, not a performance claim.
const LIMIT: Duration = Duration::from_secs(20);

/// The binary with `args` (split at spaces), its stdout piped.
fn spawn(args: &str) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keepalive-lab"))
        .args(args.split_whitespace())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the binary");
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Reads lines until one satisfies `wanted`; every line read, in order.
async fn read_until(
    lines: &mut Lines<BufReader<ChildStdout>>,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
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

/// Sends SIGTERM to `child`, reads the rest of its stdout, and checks that
/// it exits 0; the lines it printed after the signal.
async fn terminate(mut child: Child, mut lines: Lines<BufReader<ChildStdout>>) -> Vec<String> {
    let pid = child.id().expect("still running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM {pid}");
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
    let first = read_until(&mut lines, "middlebox_started", |l| {
        l.contains("middlebox_started")
    })
    .await;
    let listen = json(first.last().unwrap())["listen"]
        .as_str()
        .unwrap()
        .to_owned();
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
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
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
