//! The one self-contained binary (`cargo xtask dist`; `cargo xtask test`
//! builds the same embedding in debug and passes its path): copied alone into
//! an empty folder, it serves the whole lab — page, wasm and API.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

const LIMIT: Duration = Duration::from_secs(30);

/// `(status, headers, body)` of one request on a fresh connection.
async fn fetch(addr: &str, method: &str, path: &str) -> (u16, String, Vec<u8>) {
    fetch_with(addr, method, path, "").await
}

/// [`fetch`] with more header lines (each ending in CRLF).
async fn fetch_with(addr: &str, method: &str, path: &str, more: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the binary");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{more}Content-Length: 0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(LIMIT, stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, head, raw[split + 4..].to_vec())
}

#[tokio::test]
async fn the_single_binary_serves_the_whole_lab_from_an_empty_folder() {
    let built = std::env::var_os("KEEPALIVE_LAB_BINARY")
        .map(PathBuf::from)
        .expect(
            "KEEPALIVE_LAB_BINARY is not set: run the tests with `cargo xtask test`, which builds \
         the single binary first (or `cargo xtask dist` and point KEEPALIVE_LAB_BINARY at it)",
        );
    let folder = std::env::temp_dir().join(format!("keepalive-lab-dist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).expect("an empty folder");
    let binary = folder.join("keepalive-lab");
    std::fs::copy(&built, &binary).expect("copy the binary alone");
    let mut child = Command::new(&binary)
        .args(["--port", "0"])
        .current_dir(&folder)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the binary");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(LIMIT, lines.next_line())
        .await
        .expect("it starts in time")
        .expect("read stdout")
        .expect("a first line");
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("the first line names the URL: {first}"))
        .to_owned();

    // `--version` names the commit the binary was built from (`cargo xtask`
    // passes it), so a copy on a workshop machine says which lab it is.
    let version = std::process::Command::new(&binary)
        .arg("--version")
        .output()
        .expect("--version");
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(
        version.starts_with(&format!(
            "keepalive-lab {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{version}"
    );
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git");
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    assert!(
        version.contains(&format!("(commit {head}")),
        "{version} (HEAD {head})"
    );

    let (status, head, page) = fetch(&addr, "GET", "/").await;
    assert_eq!(status, 200, "{head}");
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains("\"instructor\"") && page.contains("\"app\""),
        "{page}"
    );
    // Both bundles: the participant's page and the instructor's.
    for bundle in ["app", "instructor"] {
        let (status, head, js) = fetch(&addr, "GET", &format!("/{bundle}.js")).await;
        assert_eq!(status, 200, "{head}");
        assert!(head.to_ascii_lowercase().contains("javascript"), "{head}");
        assert!(!js.is_empty());
        let module = format!("/{bundle}_bg.wasm");
        let (status, head, wasm) = fetch(&addr, "GET", &module).await;
        assert_eq!(status, 200, "{head}");
        assert!(head.contains("application/wasm"), "{head}");
        assert_eq!(&wasm[..4], b"\0asm", "a WebAssembly module");
        // As a browser gets it: gzip-compressed, the same module inside.
        let (status, head, gzip) =
            fetch_with(&addr, "GET", &module, "Accept-Encoding: gzip, deflate\r\n").await;
        assert_eq!(status, 200, "{head}");
        let head = head.to_ascii_lowercase();
        assert!(head.contains("content-encoding: gzip"), "{head}");
        assert!(
            gzip.len() < wasm.len() / 2,
            "{} of {}",
            gzip.len(),
            wasm.len()
        );
        let mut inflated = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut inflated)
            .expect("valid gzip");
        assert!(inflated == wasm, "the .gz is the module as built");
        // A reload asks again with the tag it has: 304, nothing resent.
        let tag = head
            .lines()
            .find_map(|l| l.strip_prefix("etag: "))
            .unwrap_or_else(|| panic!("an ETag: {head}"))
            .to_owned();
        let (status, head, body) = fetch_with(
            &addr,
            "GET",
            &module,
            &format!("Accept-Encoding: gzip, deflate\r\nIf-None-Match: {tag}\r\n"),
        )
        .await;
        assert_eq!(status, 304, "{head}");
        assert!(body.is_empty());
        // The same asked with HEAD: its Content-Length is what a 200 would
        // send (RFC 9110 §8.6), not 0.
        let (status, head_304, _) = fetch_with(
            &addr,
            "HEAD",
            &module,
            &format!("Accept-Encoding: gzip\r\nIf-None-Match: {tag}\r\n"),
        )
        .await;
        assert_eq!(status, 304, "{head_304}");
        assert!(
            head_304
                .to_ascii_lowercase()
                .contains(&format!("content-length: {}", gzip.len())),
            "{head_304}"
        );
        // One byte range, of the representation sent: the module's magic
        // number, and the gzip header's.
        for (encoding, magic, len) in [
            ("", &b"\0asm"[..], wasm.len()),
            ("gzip", &[0x1f, 0x8b][..], gzip.len()),
        ] {
            let last = magic.len() - 1;
            let (status, head, part) = fetch_with(
                &addr,
                "GET",
                &module,
                &format!("Accept-Encoding: {encoding}\r\nRange: bytes=0-{last}\r\n"),
            )
            .await;
            assert_eq!(status, 206, "{head}");
            assert_eq!(part, magic);
            assert!(
                head.to_ascii_lowercase()
                    .contains(&format!("content-range: bytes 0-{last}/{len}")),
                "{head}"
            );
            // Past the end: 416 with the length, and a JSON error.
            let (status, head, body) = fetch_with(
                &addr,
                "GET",
                &module,
                &format!("Accept-Encoding: {encoding}\r\nRange: bytes={len}-\r\n"),
            )
            .await;
            assert_eq!(status, 416, "{head}");
            assert!(
                head.to_ascii_lowercase()
                    .contains(&format!("content-range: bytes */{len}")),
                "{head}"
            );
            let error: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            assert!(
                error["error"].is_string() && error["hint"].is_string(),
                "{error}"
            );
        }
        // A range whose `If-Range` names another build: the whole file.
        let (status, head, whole) = fetch_with(
            &addr,
            "GET",
            &module,
            "Range: bytes=0-3\r\nIf-Range: \"0000000000000000\"\r\n",
        )
        .await;
        assert_eq!(status, 200, "{head}");
        assert!(whole == wasm);
        // The module as built is another representation, with its own tag.
        let (status, head, _) =
            fetch_with(&addr, "GET", &module, &format!("If-None-Match: {tag}\r\n")).await;
        assert_eq!(status, 200, "{head}");
    }
    let (status, _, body) = fetch(&addr, "POST", "/api/sessions").await;
    assert_eq!(status, 200);
    let grant: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert!(
        grant["session"]
            .as_str()
            .is_some_and(|s| s.starts_with("s-"))
    );
    let (status, _, body) = fetch(&addr, "GET", "/api/lessons").await;
    assert_eq!(status, 200);
    let lessons: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert!(lessons.as_array().is_some_and(|l| l.len() >= 12));
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&folder);
}
