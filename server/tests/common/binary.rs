//! Running the real `keepalive-lab` binary from a test: the lab's, the
//! middlebox's and the agent's command lines (`lab_cli.rs`,
//! `middlebox_cli.rs`, `agent_cli.rs`). Every child is killed on drop and
//! every wait is bounded by [`LIMIT`].

use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;

/// Upper bound for any single wait on a child: a safety net, not a
/// performance claim (a binary starting on a loaded machine takes longer
/// than the library's [`super::LIMIT`]).
pub const LIMIT: Duration = Duration::from_secs(20);

/// The binary Cargo built for this test run.
pub const BINARY: &str = env!("CARGO_BIN_EXE_keepalive-lab");

/// Runs the binary with `args` to its end, stdin from `/dev/null`, stdout to
/// `stdout` and stderr piped; a child still running after [`LIMIT`]
/// is killed and fails the test.
pub async fn run_to_end<A: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    args: &[A],
    stdout: Stdio,
) -> Output {
    let child = Command::new(BINARY)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the binary");
    tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{args:?} still running after {:?}", LIMIT))
        .expect("its output")
}

/// `/dev/full`: every write to it fails with ENOSPC, as a console whose
/// reader is gone or whose disk is full.
pub fn full() -> Stdio {
    Stdio::from(std::fs::File::create("/dev/full").expect("open /dev/full"))
}

/// What the child wrote to stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The child exited 1 with `words` on stderr and no panic: how every tool
/// ends when it cannot write its output (a full disk, a reader gone).
pub fn assert_exit_1_saying(out: &Output, words: &str, what: &str) {
    let said = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{what}: {said}");
    assert!(said.contains(words), "{what}: {said}");
    assert!(!said.contains("panicked"), "{what}: {said}");
}
