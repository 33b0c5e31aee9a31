//! The lab's own command line, run as the real binary (findings of the
//! command-line review, `review-cli.md`):
//!
//! - H1: a console nobody reads any more (`keepalive-lab | tee log`, then
//!   Ctrl-C) does not stop the graceful shutdown, and `--help`/`--version`
//!   to a full stdout exit 1, never panic;
//! - M1, M2: `--bind` with another loopback address prints links that
//!   answer (its middlebox too), and `--host-name` is used;
//! - L2: a FIFO as `--tls-cert` is refused at once, not waited on;
//! - L3: the `localhost` line only when `[::1]` on the main port is the lab;
//! - L6, N2: port mistakes name the flag that gave the port.
//!
//! Unix only (SIGINT with `kill`, `/dev/full`, `mkfifo`). Every process
//! runs on loopback with port 0 (or ports the test holds), is killed on
//! drop, and every wait is bounded by [`LIMIT`]: nothing asserts how long
//! anything took.
#![cfg(unix)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use common::binary::{BINARY, LIMIT, assert_exit_1_saying, full, run_to_end};

/// A directory with an `index.html`, so the lab does not warn about it.
fn dist(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keepalive-lab-cli-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><title>lab</title>").unwrap();
    dir
}

/// The lab with `args`, stdout and stderr piped, killed on drop.
fn spawn(args: &[&str]) -> Child {
    Command::new(BINARY)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the binary")
}

/// The lab's console up to its last start-up line (the instructor key),
/// and its stdout, still open, for the rest.
async fn console(
    child: &mut Child,
) -> (
    Vec<String>,
    tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            let last = line.trim_start().starts_with("instructor key");
            seen.push(line);
            if last {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(found, Ok(true)), "no instructor key in {seen:#?}");
    (seen, lines)
}

/// The `scheme://host:port/` links of `line` (host and port, as written).
fn links(line: &str) -> Vec<String> {
    line.split_whitespace()
        .filter_map(|w| w.strip_prefix("http://"))
        .map(|w| w.trim_end_matches('/').to_owned())
        .collect()
}

/// `GET target` on a new connection to `authority` (`host:port`, IPv6 in
/// brackets) with `Host: host`: the status line and the body.
async fn get(authority: &str, host: &str, target: &str) -> (String, String) {
    tokio::time::timeout(LIMIT, async {
        let mut s = TcpStream::connect(authority)
            .await
            .unwrap_or_else(|e| panic!("connect to {authority}: {e}"));
        s.write_all(
            format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw).await;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text.lines().next().unwrap_or_default().to_owned();
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    })
    .await
    .unwrap_or_else(|_| panic!("GET {target} on {authority} timed out"))
}

/// Sends `signal` (e.g. `-INT`) to `child` with the `kill` command.
fn send(child: &Child, signal: &str) {
    let pid = child.id().expect("still running").to_string();
    let sent = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill {signal} {pid}");
}

/// Waits for `child` to exit; its exit code and whatever is left of its
/// stderr.
async fn exit(mut child: Child) -> (Option<i32>, String) {
    let mut stderr = child.stderr.take().unwrap();
    let status = tokio::time::timeout(LIMIT, child.wait())
        .await
        .expect("the lab exits")
        .expect("exit status");
    let mut text = String::new();
    let _ = tokio::time::timeout(LIMIT, stderr.read_to_string(&mut text)).await;
    (status.code(), text)
}

/// H1: the reader of the console has gone (as `tee` does on Ctrl-C) when
/// SIGINT comes; the lab still shuts down as documented: a held request
/// gets its 503, and the exit code is 0, without a panic.
#[tokio::test]
async fn a_console_nobody_reads_does_not_stop_the_shutdown() {
    let dir = dist("closed-console");
    let mut child = spawn(&["--port", "0", "--dist", dir.to_str().unwrap()]);
    let (printed, stdout) = console(&mut child).await;
    let main = links(&printed[0]).remove(0);
    let key = printed
        .last()
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_owned();
    // The instructor's link, as in workshop mode (found in review: only
    // the key was printed, and the teacher had to build the link).
    let link = format!(
        "instructor view (keep this link to yourself): http://{main}/#instructor&key={key}"
    );
    assert!(
        printed.iter().any(|l| l.trim_start() == link),
        "{link} in {printed:#?}"
    );
    drop(stdout);
    let mut held = TcpStream::connect(&main).await.unwrap();
    held.write_all(format!("GET /api/hang?id=held HTTP/1.1\r\nHost: {main}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // SIGINT once the lab holds the request.
    tokio::time::timeout(LIMIT, async {
        loop {
            let (_, body) = get(&main, &main, &format!("/api/connections?key={key}")).await;
            if body.contains("/api/hang?id=held") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the hang is held");
    send(&child, "-INT");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(LIMIT, held.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    let (code, stderr) = exit(child).await;
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("the server is shutting down"),
        "the held request's answer: {answer:?}; stderr: {stderr}"
    );
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

/// H1: `--help` and `--version` to a full stdout exit 1 with the reason on
/// stderr; they used to panic (exit 101).
#[tokio::test]
async fn help_and_version_to_a_full_stdout_exit_one_without_a_panic() {
    for flag in ["--help", "--version"] {
        let out = run_to_end(&[flag], full()).await;
        assert_exit_1_saying(&out, "cannot write to stdout", flag);
    }
}

/// M1, M2: with `--bind 127.0.0.2 --host-name lab.local`, every printed
/// plain link answers (the middlebox's too: it forwards to where the lab
/// really listens), the lab answers to the host name (its API with a
/// session only), and the certificate
/// line names both. Linux only: there the whole of 127.0.0.0/8 is loopback;
/// macOS and Windows answer only on 127.0.0.1 unless told otherwise.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn another_loopback_address_prints_links_that_answer_and_uses_the_host_name() {
    let dir = dist("bind");
    let mut child = spawn(&[
        "--port",
        "0",
        "--bind",
        "127.0.0.2",
        "--host-name",
        "lab.local",
        "--dist",
        dir.to_str().unwrap(),
    ]);
    let (printed, _stdout) = console(&mut child).await;
    let text = printed.join("\n");
    assert!(printed[0].contains("open http://127.0.0.2:"), "{text}");
    let plain: Vec<String> = printed
        .iter()
        .filter(|l| !l.contains("lab.local") && !l.contains("#instructor"))
        .flat_map(|l| links(l))
        .collect();
    assert_eq!(
        plain.len(),
        3,
        "the page, the second origin, the middlebox: {text}"
    );
    for authority in &plain {
        let (status, body) = get(authority, authority, "/api/fast").await;
        assert!(status.contains(" 200 "), "{authority}: {status} {body}");
    }
    let port = plain[0].rsplit(':').next().unwrap();
    // The lab answers to the host name: its page; its API without a
    // session only to a loopback name (`conn::loopback_authority`: to this
    // name a browser sends no `Sec-Fetch-Site`, though it leads to
    // loopback).
    let (status, body) = get(&plain[0], &format!("lab.local:{port}"), "/").await;
    assert!(status.contains(" 200 "), "Host: lab.local: {status} {body}");
    let (status, body) = get(&plain[0], &format!("lab.local:{port}"), "/api/fast").await;
    assert!(
        status.contains(" 403 ") && body.contains("needs a session"),
        "Host: lab.local, no session: {status} {body}"
    );
    assert!(
        text.contains("localhost, 127.0.0.1, ::1, 127.0.0.2, lab.local:"),
        "the certificate's names: {text}"
    );
    assert!(text.contains("also as http://lab.local:"), "{text}");
    drop(child);
    let _ = std::fs::remove_dir_all(dir);
}

/// M1: `--bind ::1` prints bracketed links that answer (skipped where this
/// machine has no IPv6 loopback).
#[tokio::test]
async fn ipv6_loopback_links_are_bracketed_and_answer() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        return;
    }
    let dir = dist("bind6");
    let mut child = spawn(&[
        "--port",
        "0",
        "--bind",
        "::1",
        "--dist",
        dir.to_str().unwrap(),
    ]);
    let (printed, _stdout) = console(&mut child).await;
    let text = printed.join("\n");
    let plain: Vec<String> = printed.iter().flat_map(|l| links(l)).collect();
    assert!(plain.len() >= 3 && plain[0].starts_with("[::1]:"), "{text}");
    for authority in &plain[..3] {
        let (status, body) = get(authority, authority, "/api/fast").await;
        assert!(status.contains(" 200 "), "{authority}: {status} {body}");
    }
    drop(child);
    let _ = std::fs::remove_dir_all(dir);
}

/// L2: a FIFO as `--tls-cert` is refused at once (exit 1, saying why), not
/// read, which would wait for a writer with Ctrl-C and SIGTERM ignored.
#[tokio::test]
async fn a_fifo_as_the_certificate_is_refused_at_once() {
    let dir = dist("fifo");
    let fifo = dir.join("cert.pem");
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    let fifo = fifo.to_str().unwrap();
    let out = run_to_end(
        &[
            "--port",
            "0",
            "--tls-cert",
            fifo,
            "--tls-key",
            fifo,
            "--dist",
            dir.to_str().unwrap(),
        ],
        Stdio::piped(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("--tls-cert {fifo}: not a regular file")),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// L3: when `[::1]` on the main port belongs to another process, the lab
/// says so and does not claim `http://localhost:PORT/` as its own.
#[tokio::test]
async fn the_localhost_line_only_when_the_lab_has_ipv6_loopback() {
    // A port free on [::1] may be taken on 127.0.0.1, where the lab binds
    // it too: by a socket of a test running beside this one (its ephemeral
    // port), which made the lab exit at start (found in CI). Such a port is
    // passed over.
    let mut other = None;
    for _ in 0..20 {
        let Ok(v6) = std::net::TcpListener::bind("[::1]:0") else {
            return;
        };
        let port = v6.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            other = Some(v6);
            break;
        }
    }
    let other = other.expect("a port free on both loopbacks");
    let port = other.local_addr().unwrap().port().to_string();
    let dir = dist("localhost");
    let mut child = spawn(&[
        "--port",
        &port,
        "--second-port",
        "0",
        "--middlebox-port",
        "0",
        "--tls-port",
        "0",
        "--tls-h1-port",
        "0",
        "--tls-streams-port",
        "0",
        "--dist",
        dir.to_str().unwrap(),
    ]);
    let (printed, stdout) = console(&mut child).await;
    let text = printed.join("\n");
    assert!(
        !text.contains("http://localhost:"),
        "[::1]:{port} is another process's: {text}"
    );
    send(&child, "-TERM");
    drop(stdout);
    let (code, stderr) = exit(child).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("no IPv6 loopback on port {port}")),
        "{stderr}"
    );
    drop(other);
    let _ = std::fs::remove_dir_all(dir);
}

/// L6: a busy port is reported with the flag that gave it; a default port
/// that collides is a usage mistake (exit 2) naming that default, found
/// before anything is bound.
#[tokio::test]
async fn port_mistakes_name_the_flag_that_gave_the_port() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let dir = dist("ports");
    let out = run_to_end(
        &[
            "--port",
            "0",
            "--tls-port",
            &port,
            "--dist",
            dir.to_str().unwrap(),
        ],
        Stdio::piped(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot listen on 127.0.0.1:{port} (--tls-port {port})"
        )) && stderr.contains("hint: give another --tls-port"),
        "{stderr}"
    );
    let out = run_to_end(
        &["--port", "20000", "--second-port", "20003"],
        Stdio::piped(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(
            "keepalive-lab: the default --tls-port (--port + 3 = 20003) is taken by \
             --second-port\n  hint: give --tls-port, or another --port\n"
        ),
        "{stderr}"
    );
    drop(busy);
    let _ = std::fs::remove_dir_all(dir);
}

/// N2, N3: a bad value is a usage mistake like a bad flag (exit 2, the
/// tool's name, a hint, the usage), and `--host-name` takes DNS names only.
#[tokio::test]
async fn value_mistakes_are_explained_like_flag_mistakes() {
    for (value, error) in [
        (
            "--bind=nope",
            "keepalive-lab: --bind takes an IP address, got `nope`",
        ),
        (
            "--host-name=...",
            "keepalive-lab: --host-name takes a DNS name, got `...`",
        ),
        (
            "--host-name=-",
            "keepalive-lab: --host-name takes a DNS name, got `-`",
        ),
        (
            "--host-name=lab-.local",
            "keepalive-lab: --host-name takes a DNS name",
        ),
        // A sign is not a digit (found in review: `--port +5` listened on 5).
        (
            "--second-port=+5",
            "keepalive-lab: --second-port takes 0 to 65535, got `+5`",
        ),
    ] {
        let out = run_to_end(&["--port", "0", value], Stdio::piped()).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{value}: {stderr}");
        assert!(stderr.starts_with(error), "{value}: {stderr}");
        assert!(stderr.contains("\n  hint: "), "{value}: {stderr}");
        assert!(stderr.contains("usage: keepalive-lab"), "{value}: {stderr}");
    }
}

/// An argument that is not UTF-8 (a Linux path may be any bytes) is a
/// usage mistake like any other, for the lab and both subcommands: exit 2,
/// the argument named, a hint; never a panic (found in review: exit 101
/// from `std::env::args`).
#[tokio::test]
async fn an_argument_that_is_not_utf8_is_explained_not_panicked_on() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let bad = || OsString::from_vec(b"/tmp/\xff".to_vec());
    for (args, tool) in [
        (vec![OsString::from("--dist"), bad()], "keepalive-lab: "),
        (
            vec![
                OsString::from("middlebox"),
                OsString::from("--listen"),
                bad(),
            ],
            "keepalive-lab middlebox: ",
        ),
        (
            vec![
                OsString::from("agent"),
                OsString::from("http://127.0.0.1:1/"),
                OsString::from("--method"),
                bad(),
            ],
            "keepalive-lab agent: ",
        ),
    ] {
        let out = run_to_end(&args, Stdio::piped()).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with(tool) && stderr.contains("is not UTF-8 text: `/tmp/\u{fffd}`"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("\n  hint: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
