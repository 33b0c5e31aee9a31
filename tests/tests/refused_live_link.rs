//! A page whose live link the server refuses is told why, and does not
//! knock again and again. A browser's WebSocket cannot read the HTTP answer
//! to its handshake: refused with a JSON 503 (the session's cap on event
//! viewers), the page saw only close code 1006, said nothing, and reconnected
//! every second. Now the server accepts the upgrade and closes it at once
//! with 1013 (Try Again Later) and its reason: the page shows the reason
//! where the learner looks, and tries again later and later (2 s, 4 s, 8 s…),
//! until a viewer leaves and it gets in by itself.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures_util::StreamExt;
use keepalive_lab_tests::chromium::{Chromium, Page};
use keepalive_lab_tests::{eventually, start_page_server};
use protocol::{CloseReason, ServerEvent};
use tokio::sync::broadcast::error::TryRecvError;
use tokio_tungstenite::tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(30);

/// The page's live-link status (`data-socket`), its session, and the
/// problem shown under the header (`#socket-problem`), if any.
async fn link(chrome: &mut Chromium, page: &Page) -> (String, String, String) {
    let v = chrome
        .eval_across_loads(
            page,
            "(() => { const m = document.querySelector('main[data-page]'); \
               const p = document.getElementById('socket-problem'); \
               return m ? [m.dataset.socket, m.dataset.session, p ? p.textContent : ''] \
                        : ['', '', '']; })()",
        )
        .await
        .unwrap_or_default();
    let text = |i: usize| v[i].as_str().unwrap_or_default().to_owned();
    (text(0), text(1), text(2))
}

/// The page's upgrades of `/api/events?session=…` the server has seen since
/// `events` was subscribed, and how many it closed with 1013.
fn upgrades(
    events: &mut tokio::sync::broadcast::Receiver<ServerEvent>,
    target: &str,
    seen: &mut (Vec<protocol::ConnId>, usize),
) {
    loop {
        match events.try_recv() {
            Ok(ServerEvent::RequestStarted {
                conn, target: t, ..
            }) if t == target => {
                seen.0.push(conn);
            }
            Ok(ServerEvent::ConnectionClosed {
                conn,
                reason: CloseReason::WebSocketClosed { code: 1013, .. },
                ..
            }) if seen.0.contains(&conn) => seen.1 += 1,
            Ok(_) => {}
            Err(TryRecvError::Lagged(_)) => panic!("the test fell behind the server's events"),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_refused_by_the_viewer_cap_says_why_and_retries_later_and_later() {
    let (addr, lab) = start_page_server().await;
    let cap = lab.config().max_viewers_per_session;
    assert_eq!(cap, 8, "the default cap");
    let session = lab
        .sessions()
        .issue(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)))
        .expect("a session");
    // Eight viewers of the session already: other tabs, say.
    let url = format!("ws://{addr}/api/events?session={session}");
    let mut viewers = Vec::new();
    for _ in 0..cap {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("a viewer");
        let first = ws.next().await;
        assert!(
            matches!(&first, Some(Ok(Message::Text(t))) if t.contains("\"snapshot\"")),
            "{first:?}"
        );
        // Read on, so that none of them falls behind.
        viewers.push(tokio::spawn(async move {
            while let Some(Ok(_)) = ws.next().await {}
        }));
    }

    // The page, live with a session of its own; then the same tab takes
    // the full session over, as the other participant page hands it over.
    let mut chrome = Chromium::launch().await;
    let page = chrome.open(&format!("http://{addr}/")).await;
    eventually("the lesson track, live", LIMIT, async || {
        let (socket, own, _) = link(&mut chrome, &page).await;
        (socket == "open" && !own.is_empty()).then_some(())
    })
    .await;
    let (mut events, target) = (
        lab.subscribe(None).1,
        format!("/api/events?session={session}"),
    );
    chrome
        .eval(
            &page,
            &format!(
                "sessionStorage.setItem('keepalive-lab.session', '{session}'); location.reload()"
            ),
        )
        .await;

    // The learner is told why, in the server's words, under the header.
    let reason = "8 viewers already watch this session; close another tab of it";
    let shown = eventually("the refusal's reason on the page", LIMIT, async || {
        let (socket, on, problem) = link(&mut chrome, &page).await;
        (on == session.as_str() && problem.contains(reason)).then_some((socket, problem))
    })
    .await;
    assert!(shown.1.contains("(1013)"), "{shown:?}");
    assert!(shown.1.contains("tries again by itself"), "{shown:?}");
    chrome.screenshot_if_asked(&page, "refused-live-link").await;

    // The page tries again later and later: over the next 5 s, at most two
    // more upgrades (at 2 s and 6 s after the first); it used to knock every
    // second. Each was closed with 1013 and held no viewer's place.
    let mut seen = (Vec::new(), 0);
    upgrades(&mut events, &target, &mut seen);
    let first = seen.0.len();
    assert!(first >= 1, "the refused upgrade was seen");
    tokio::time::sleep(Duration::from_secs(5)).await;
    upgrades(&mut events, &target, &mut seen);
    let attempts = seen.0.len();
    assert!(
        attempts <= first + 2,
        "{attempts} upgrades within about 5 s of the first refusal: no backoff"
    );
    assert!(
        attempts >= 2,
        "a cap frees itself: the page tries again ({attempts} upgrades)"
    );
    assert!(seen.1 >= attempts - 1, "refused with 1013: {seen:?}");
    let (socket, _, problem) = link(&mut chrome, &page).await;
    assert_ne!(socket, "open");
    assert!(problem.contains(reason), "{problem}");

    // One of the other tabs closes: the page gets in by itself, and the
    // refusal's words go.
    viewers.pop().expect("a viewer").abort();
    eventually("the page live again, by itself", LIMIT, async || {
        let (socket, on, problem) = link(&mut chrome, &page).await;
        (socket == "open" && on == session.as_str() && problem.is_empty()).then_some(())
    })
    .await;
    for viewer in viewers {
        viewer.abort();
    }
}
