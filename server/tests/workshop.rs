//! Workshop mode, as an instructor starts it: the real binary with
//! `--workshop` (every interface), its console's join and instructor links,
//! and the join link's QR code, decoded back from the SVG the instructor's
//! page shows.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The lab binary, started with `args` and a page of its own; its console.
async fn start(args: &[&str]) -> (Child, Vec<String>) {
    let dist = std::env::temp_dir().join(format!("keepalive-lab-workshop-{}", std::process::id()));
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(dist.join("index.html"), "<!doctype html><title>lab</title>").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keepalive-lab"))
        .args(args)
        .arg("--dist")
        .arg(&dist)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the lab binary");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut console = Vec::new();
    // Everything is printed before it serves; the key line comes last.
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let last = line.trim_start().starts_with("instructor key");
            console.push(line);
            if last {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the lab printed no instructor key: {console:?}"));
    (child, console)
}

/// `GET path` on `127.0.0.1:port` with `Host: host`: status, headers, body.
async fn get(port: u16, host: &str, path: &str) -> (u16, HashMap<String, String>, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect::<HashMap<_, _>>();
    let mut body = raw[end + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t == "chunked")
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..line]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[line + 2..line + 2 + size]);
        raw = &raw[line + 2 + size + 2..];
    }
}

/// The text a QR code in `svg` (as the `qrcode` crate draws it: one path of
/// `M{x} {y}h{w}v{h}H{x}V{y}` rectangles) encodes, read by a decoder that
/// shares nothing with the encoder.
fn decode_qr(svg: &str) -> String {
    let size = |name: &str| -> usize {
        let at = svg.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        svg[at..].split('"').next().unwrap().parse().unwrap()
    };
    let (width, height) = (size("width"), size("height"));
    let mut dark = vec![false; width * height];
    let d = svg
        .split(" d=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    for rect in d.split('M').filter(|r| !r.is_empty()) {
        let numbers: Vec<usize> = rect
            .split(|c: char| !c.is_ascii_digit())
            .filter(|n| !n.is_empty())
            .map(|n| n.parse().unwrap())
            .collect();
        let [x, y, w, h, ..] = numbers[..] else {
            panic!("a rectangle: {rect}")
        };
        for yy in y..y + h {
            for xx in x..x + w {
                dark[yy * width + xx] = true;
            }
        }
    }
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        if dark[y * width + x] { 0 } else { 255 }
    });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the picture");
    grids[0].decode().expect("a readable QR code").1
}

#[test]
fn a_qr_code_drawn_by_the_encoder_decodes_to_its_text() {
    let code = qrcode::QrCode::new(b"http://192.0.2.7:8080/").unwrap();
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .build();
    assert_eq!(decode_qr(&svg), "http://192.0.2.7:8080/");
}

#[tokio::test]
async fn workshop_mode_prints_the_join_and_instructor_links_and_the_qr_code_joins() {
    let (_child, console) = start(&["--workshop", "--port", "0"]).await;
    let text = console.join("\n");
    assert!(
        text.contains("WORKSHOP MODE: the lab listens on 0.0.0.0"),
        "--workshop listens on every interface and says so: {text}"
    );
    // Every "participants join at" line is a link to the main port.
    let joins: Vec<&str> = console
        .iter()
        .filter_map(|l| l.trim().strip_prefix("participants join at: "))
        .collect();
    assert!(!joins.is_empty(), "{text}");
    let instructor = console
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix("instructor view (keep this link to yourself): ")
        })
        .unwrap_or_else(|| panic!("an instructor link: {text}"));
    let key = instructor
        .split_once("#instructor&key=")
        .unwrap_or_else(|| panic!("the key in the link: {instructor}"))
        .1;
    let port: u16 = joins[0]
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(instructor.starts_with("http://") && instructor.contains(&format!(":{port}/")));
    // The join link serves the page (reached here over loopback, which the
    // every-interface listener also answers).
    let host = format!("127.0.0.1:{port}");
    let (status, _, body) = get(port, &host, "/").await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("<title>lab</title>"));
    // The room's view and its QR code need the printed key.
    assert_eq!(get(port, &host, "/api/room/join.svg").await.0, 403);
    assert_eq!(
        get(port, &host, "/api/room/join.svg?key=not-the-key")
            .await
            .0,
        403
    );
    assert_eq!(
        get(port, &host, &format!("/api/room?key={key}")).await.0,
        200
    );
    // The QR code is the join link for the host the instructor reached.
    let (status, headers, svg) = get(port, &host, &format!("/api/room/join.svg?key={key}")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/svg+xml");
    assert_eq!(
        decode_qr(&String::from_utf8(svg).unwrap()),
        format!("http://{host}/")
    );
    // With an absolute-form target, the authority in it is the one checked
    // (and `Host` ignored, RFC 9112 §3.2.2), so it is the one encoded
    // (found in review: the code encoded the unchecked `Host`).
    let (status, _, svg) = get(
        port,
        "evil.example",
        &format!("http://{host}/api/room/join.svg?key={key}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        decode_qr(&String::from_utf8(svg).unwrap()),
        format!("http://{host}/")
    );
}

#[tokio::test]
async fn without_workshop_the_lab_stays_on_loopback_and_prints_no_join_link() {
    let (_child, console) = start(&["--port", "0"]).await;
    let text = console.join("\n");
    assert!(
        text.contains("keepalive-lab is running: open http://127.0.0.1:"),
        "{text}"
    );
    assert!(
        !text.contains("WORKSHOP MODE") && !text.contains("participants join at"),
        "{text}"
    );
}
