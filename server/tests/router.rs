//! The router alone, without sockets: `routes::app(lab)` driven with
//! `tower::ServiceExt::oneshot` (as in axum's `testing` example). Handlers get
//! no connection context here and must still answer.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use keepalive_lab_server::{Config, Lab, routes};
use tower::ServiceExt;

fn lab() -> Lab {
    Lab::new(Config {
        dist_dir: std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("keepalive-lab-no-dist"),
        ..Config::default()
    })
}

/// Sends `request` through a fresh router; returns the status, content type
/// and body as JSON.
async fn call(lab: &Lab, request: Request<Body>) -> (StatusCode, String, serde_json::Value) {
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        routes::app(lab.clone()).oneshot(request),
    )
    .await
    .expect("the router answers")
    .expect("infallible");
    assert!(
        response.headers().get(protocol::headers::CONN_ID).is_none(),
        "connection headers come from the accept loop, not the router"
    );
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, content_type, json)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn assert_error_body(json: &serde_json::Value) {
    let body: protocol::ErrorBody = serde_json::from_value(json.clone()).expect("an ErrorBody");
    assert!(!body.error.is_empty() && !body.hint.is_empty(), "{body:?}");
}

#[tokio::test]
async fn slow_answers_without_a_socket() {
    let lab = lab();
    let (status, content_type, json) = call(&lab, get("/api/slow?ms=0&id=x")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("application/json"));
    assert_eq!(
        json,
        serde_json::json!({"endpoint": "slow", "ms": 0, "id": "x"})
    );
}

#[tokio::test]
async fn bad_query_is_a_400_json_error() {
    let lab = lab();
    let (status, content_type, json) = call(&lab, get("/api/slow?ms=soon")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(content_type.starts_with("application/json"));
    assert_error_body(&json);
    let (status, _, json) = call(&lab, get("/api/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_body(&json);
    let delete = Request::delete("/api/slow").body(Body::empty()).unwrap();
    let (status, _, json) = call(&lab, delete).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error_body(&json);
}

#[tokio::test]
async fn hang_without_a_socket_is_held_and_released() {
    let lab = lab();
    let router = routes::app(lab.clone());
    let hang = tokio::spawn(router.oneshot(get("/api/hang?id=solo")));
    tokio::time::timeout(Duration::from_secs(10), async {
        while lab.hangs().len() != 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the hang is held");

    let release = Request::post("/api/release")
        .body(Body::from(r#"{"id":"solo"}"#))
        .unwrap();
    let (status, _, json) = call(&lab, release).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json, serde_json::json!({"released": 1}));

    let response = tokio::time::timeout(Duration::from_secs(10), hang)
        .await
        .expect("the hang answers")
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json["id"], "solo");
    assert!(json["request"].is_u64(), "a request id is made up: {json}");
}

#[tokio::test]
async fn hang_without_a_socket_times_out_with_504() {
    let lab = lab();
    let (status, _, json) = call(&lab, get("/api/hang?max_ms=50")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_error_body(&json);
    assert!(lab.hangs().is_empty());
}

#[tokio::test]
async fn connections_snapshot_without_a_socket_is_empty() {
    let lab = lab();
    let (status, _, json) = call(&lab, get("/api/connections")).await;
    assert_eq!(status, StatusCode::OK);
    let event: protocol::ServerEvent = serde_json::from_value(json).unwrap();
    assert!(matches!(
        event,
        protocol::ServerEvent::Snapshot { connections, .. } if connections.is_empty()
    ));
}

#[test]
fn release_body_parsing() {
    use keepalive_lab_server::routes::parse_release;
    assert_eq!(
        parse_release(b"").unwrap(),
        protocol::ReleaseRequest::default()
    );
    assert_eq!(
        parse_release(b" \n").unwrap(),
        protocol::ReleaseRequest::default()
    );
    assert_eq!(
        parse_release(br#"{"request": 7}"#).unwrap().request,
        Some(protocol::RequestId(7))
    );
    for bad in [
        &br#"{"request": 1, "id": "x"}"#[..],
        br#"{"nope": 1}"#,
        b"not json",
    ] {
        let err = parse_release(bad).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn the_catalogue_lists_lessons_and_each_serves_its_text() {
    let lab = lab();
    let (status, _, list) = call(&lab, get("/api/lessons")).await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().expect("a list");
    assert_eq!(list.len(), protocol::LESSONS.len());
    assert!(
        list.iter().all(|l| l.get("why").is_none()),
        "the list is only the catalogue"
    );
    for entry in protocol::LESSONS {
        let (status, _, page) = call(&lab, get(&format!("/api/lessons/{}", entry.id))).await;
        assert_eq!(status, StatusCode::OK, "{}", entry.id);
        assert_eq!(page["id"], entry.id);
        assert_eq!(page["title"], entry.title);
        assert_eq!(page["why"], entry.text.why);
        // A count has a unit and no choices; a choice has choices and no unit.
        let choices = page["choices"].as_array().map_or(0, Vec::len);
        assert_eq!(page.get("unit").is_some(), choices == 0, "{}", entry.id);
        assert_eq!(choices, entry.text.choices.len(), "{}", entry.id);
    }
    for bad in [
        "/api/lessons/nope",
        "/api/lessons/six-lanes%00",
        "/api/lessons/",
    ] {
        let (status, _, json) = call(&lab, get(bad)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}");
        assert_error_body(&json);
    }
    let (status, _, json) = call(&lab, get("/api/lessons/six-lanes?x=1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_body(&json);
}

/// The 404 hint lists every endpoint (found in review: it missed
/// `/api/middlebox`, `/api/tls` and `/api/room/join.svg`), from the list the
/// router is built from; each one listed is routed: another method there is
/// a 405, not the 404.
#[tokio::test]
async fn the_404_hint_lists_every_endpoint_and_each_is_routed() {
    let lab = lab();
    let (status, _, json) = call(&lab, get("/api/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let hint = json["hint"].as_str().expect("a hint").to_owned();
    for path in ["/api/middlebox", "/api/tls", "/api/room/join.svg"] {
        assert!(hint.contains(path), "{path} in {hint}");
    }
    for (_, path) in routes::ENDPOINTS {
        assert!(hint.contains(path), "{path} in {hint}");
        let uri = path.replace("{id}", "six-lanes");
        let request = Request::delete(&uri).body(Body::empty()).unwrap();
        let (status, _, json) = call(&lab, request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{uri}: {json}");
    }
}
