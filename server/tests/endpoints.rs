//! The lesson endpoints over real sockets: what each answers and, from the
//! event stream (the server's own clock), when.

mod common;

use common::{Client, Viewer, get_once, start_server, wait_for_hangs};
use protocol::RequestOutcome;

#[tokio::test]
async fn fast_answers_json_echoing_the_tag() {
    let (addr, _lab) = start_server().await;
    let response = get_once(addr, "/api/fast?id=f-1").await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{response:?}"
    );
    assert_eq!(
        response.json(),
        serde_json::json!({"endpoint": "fast", "id": "f-1"})
    );
    let untagged = get_once(addr, "/api/fast").await;
    assert_eq!(
        untagged.json(),
        serde_json::json!({"endpoint": "fast", "id": null})
    );
}

/// `id` is 1 to 128 characters, as the docs and the message say, not
/// bytes: a tag of 128 accented letters or emoji is echoed, 129 are refused.
#[tokio::test]
async fn the_id_tag_is_counted_in_characters_not_bytes() {
    let (addr, _lab) = start_server().await;
    for (character, encoded) in [("x", "x"), ("é", "%C3%A9"), ("😀", "%F0%9F%98%80")] {
        let accepted = get_once(addr, &format!("/api/fast?id={}", encoded.repeat(128))).await;
        assert_eq!(
            accepted.status,
            200,
            "128 × {character}: {}",
            accepted.text()
        );
        assert_eq!(accepted.json()["id"], character.repeat(128), "echoed whole");
        let refused = get_once(addr, &format!("/api/fast?id={}", encoded.repeat(129))).await;
        assert_eq!(refused.status, 400, "129 × {character}");
        assert!(
            refused.error_body().error.contains("1 to 128 characters"),
            "129 × {character}"
        );
    }
}

/// `/api/drip`'s two modes take different parameters: one of the other
/// mode's is a mix-up, reported instead of ignored; `mode=data` is the
/// default, named or not.
#[tokio::test]
async fn drip_refuses_parameters_of_the_other_mode() {
    let (addr, _lab) = start_server().await;
    for (target, name) in [
        (
            "/api/drip?mode=heartbeat&interval_ms=10&duration_ms=20&bytes=10",
            "bytes",
        ),
        (
            "/api/drip?mode=heartbeat&interval_ms=10&duration_ms=20&chunks=2",
            "chunks",
        ),
        (
            "/api/drip?bytes=4&chunks=2&interval_ms=0&duration_ms=20",
            "duration_ms",
        ),
        ("/api/drip?mode=data&bytes=4&duration_ms=20", "duration_ms"),
    ] {
        let refused = get_once(addr, target).await;
        assert_eq!(refused.status, 400, "{target}: {}", refused.text());
        let error = refused.error_body();
        assert!(
            error.error.contains(&format!("`{name}`")),
            "{target}: {error:?}"
        );
    }
    for target in [
        "/api/drip?mode=data&bytes=4&chunks=2&interval_ms=0",
        "/api/drip?bytes=4&chunks=2&interval_ms=0",
    ] {
        let response = get_once(addr, target).await;
        assert_eq!(response.status, 200, "{target}: {}", response.text());
        assert_eq!(response.text(), "....", "{target}");
    }
    let beat = get_once(
        addr,
        "/api/drip?mode=heartbeat&interval_ms=10&duration_ms=20",
    )
    .await;
    assert_eq!(beat.status, 200, "{}", beat.text());
}

#[tokio::test]
async fn slow_in_the_headers_phase_delays_the_response_head() {
    let (addr, _lab) = start_server().await;
    let mut viewer = Viewer::connect(addr).await;
    let response = get_once(addr, "/api/slow?ms=400&phase=headers&id=h").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.json(),
        serde_json::json!({"endpoint": "slow", "ms": 400, "id": "h"})
    );
    let timeline = viewer.timeline(response.request_id()).await;
    let (head_us, status) = timeline.response.expect("a response head");
    assert_eq!(status, 200);
    assert!(
        head_us - timeline.started_us >= 400_000,
        "the head waited for the delay: {timeline:?}"
    );
    assert_eq!(timeline.outcome, RequestOutcome::Completed);
}

#[tokio::test]
async fn slow_in_the_body_phase_sends_the_head_first_and_the_body_late() {
    let (addr, _lab) = start_server().await;
    let mut viewer = Viewer::connect(addr).await;
    let response = get_once(addr, "/api/slow?ms=600&phase=body&id=b").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.json(),
        serde_json::json!({"endpoint": "slow", "ms": 600, "id": "b"})
    );
    let timeline = viewer.timeline(response.request_id()).await;
    let (head_us, _) = timeline.response.expect("a response head");
    assert!(
        head_us - timeline.started_us < 600_000,
        "the head did not wait for the delay: {timeline:?}"
    );
    assert!(
        timeline.finished_us - timeline.started_us >= 600_000,
        "the body did: {timeline:?}"
    );
    assert_eq!(timeline.outcome, RequestOutcome::Completed);
}

#[tokio::test]
async fn slow_defaults_to_the_headers_phase() {
    let (addr, _lab) = start_server().await;
    let mut viewer = Viewer::connect(addr).await;
    let response = get_once(addr, "/api/slow?ms=200").await;
    let timeline = viewer.timeline(response.request_id()).await;
    let (head_us, _) = timeline.response.expect("a response head");
    assert!(head_us - timeline.started_us >= 200_000, "{timeline:?}");
}

#[tokio::test]
async fn drip_trickles_a_chunked_body_of_exactly_the_bytes_asked() {
    let (addr, _lab) = start_server().await;
    let mut viewer = Viewer::connect(addr).await;
    let response = get_once(addr, "/api/drip?bytes=10&chunks=5&interval_ms=50").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert_eq!(response.header("content-type"), Some("text/plain"));
    assert_eq!(response.body, b"..........", "exactly 10 bytes");
    assert_eq!(response.chunks, [2, 2, 2, 2, 2], "5 chunks of 2 bytes");
    let timeline = viewer.timeline(response.request_id()).await;
    assert!(
        timeline.finished_us - timeline.started_us >= 4 * 50_000,
        "4 intervals between 5 chunks: {timeline:?}"
    );
    assert_eq!(timeline.outcome, RequestOutcome::Completed);
}

#[tokio::test]
async fn drip_spreads_an_uneven_body_over_its_chunks() {
    let (addr, _lab) = start_server().await;
    let response = get_once(addr, "/api/drip?bytes=11&chunks=3&interval_ms=0").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), 11);
    assert_eq!(response.chunks.iter().sum::<usize>(), 11);
    assert_eq!(response.chunks.len(), 3, "{:?}", response.chunks);
}

#[tokio::test]
async fn heartbeat_drip_sends_spaces_then_json() {
    let (addr, _lab) = start_server().await;
    let mut viewer = Viewer::connect(addr).await;
    let response = get_once(
        addr,
        "/api/drip?mode=heartbeat&interval_ms=100&duration_ms=350&id=hb",
    )
    .await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
    );
    let text = response.text();
    assert!(
        text.starts_with("   {"),
        "3 heartbeats, then JSON: {text:?}"
    );
    assert_eq!(
        response.json(),
        serde_json::json!({"endpoint": "drip", "mode": "heartbeat", "heartbeats": 3, "id": "hb"}),
        "leading spaces are valid JSON whitespace"
    );
    let timeline = viewer.timeline(response.request_id()).await;
    assert!(
        timeline.finished_us - timeline.started_us >= 350_000,
        "{timeline:?}"
    );
}

#[tokio::test]
async fn sse_streams_the_events_asked_for() {
    let (addr, _lab) = start_server().await;
    let response = get_once(addr, "/api/sse?interval_ms=100&count=3").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("text/event-stream"));
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let text = response.text();
    assert!(text.starts_with("retry: 100\n"), "{text:?}");
    let blocks: Vec<&str> = text
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .collect();
    assert_eq!(blocks.len(), 3, "{text:?}");
    for (i, block) in blocks.iter().enumerate() {
        let lines: Vec<&str> = block.lines().filter(|l| !l.starts_with("retry:")).collect();
        assert_eq!(lines[0], format!("id: {}", i + 1), "{block:?}");
        assert_eq!(lines[1], "event: tick", "{block:?}");
        let data: serde_json::Value = serde_json::from_str(
            lines[2]
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("a data line: {block:?}")),
        )
        .unwrap();
        assert_eq!(data["n"], i + 1);
        assert_eq!(data["of"], 3);
        assert!(data["server_us"].is_u64(), "{data}");
    }
    assert_eq!(text.matches("retry:").count(), 1, "retry is sent once");
}

#[tokio::test]
async fn every_lesson_endpoint_answers_post() {
    let (addr, lab) = start_server().await;
    let mut client = Client::connect(addr).await;
    for target in [
        "/api/fast?id=p",
        "/api/slow?ms=0&id=p",
        "/api/slow?ms=0&phase=body",
        "/api/drip?bytes=4&chunks=2&interval_ms=0",
        "/api/drip?mode=heartbeat&interval_ms=10&duration_ms=20",
        "/api/sse?interval_ms=100&count=1",
        "/api/hang?max_ms=1",
    ] {
        let response = client.request("POST", target, b"").await;
        let expected = if target.starts_with("/api/hang") {
            504
        } else {
            200
        };
        assert_eq!(
            response.status,
            expected,
            "POST {target}: {}",
            response.text()
        );
    }
    // A POSTed hang is held and released like a GET one.
    client
        .send_request("POST", "/api/hang?id=posted", b"")
        .await;
    wait_for_hangs(&lab, 1).await;
    assert_eq!(common::release(addr, "", "").await, 1);
    assert_eq!(client.read_response().await.json()["id"], "posted");
    // And the close endpoint too (last: it ends the connection).
    let closing = client.request("POST", "/api/close?mode=header", b"").await;
    assert_eq!(closing.status, 200);
    assert_eq!(closing.header("connection"), Some("close"));
}
