//! The keep-alive policy changed from the page's own panel (over the control
//! WebSocket) takes effect on the server, and the close reasons the page then
//! displays are the ones the server recorded.

use std::collections::BTreeMap;
use std::time::Duration;

use keepalive_lab_tests::chromium::Chromium;
use keepalive_lab_tests::{eventually, start_page_server};
use protocol::{CloseReason, ServerEvent};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_set_in_the_page_closes_connections_and_the_page_says_why() {
    let (addr, lab) = start_page_server().await;
    let (_, mut events) = lab.subscribe(None);
    let mut chrome = Chromium::launch().await;
    let page = chrome.open_live(&format!("http://{addr}/")).await;
    let owner = chrome.session_of(&page).await;

    // Change the idle timeout the way a person would: edit the field.
    chrome
        .eval(
            &page,
            "(() => { const i = document.getElementById('policy-idle'); i.value = '400'; \
               i.dispatchEvent(new Event('change', { bubbles: true })); })()",
        )
        .await;
    eventually(
        "the server to apply the new idle timeout",
        LIMIT,
        async || (lab.policy(&owner).idle_timeout_ms == 400).then_some(()),
    )
    .await;
    chrome
        .eval_until(
            &page,
            "the page to show the policy the server announced",
            LIMIT,
            "document.getElementById('policy-idle').value",
            |shown| (shown == "400").then_some(()),
        )
        .await;

    // A value the server refuses: the page says why, and the field shows the
    // value in force again rather than the refused one.
    chrome
        .eval(
            &page,
            "(() => { const i = document.getElementById('policy-idle'); i.value = '5'; \
               i.dispatchEvent(new Event('change', { bubbles: true })); })()",
        )
        .await;
    chrome
        .eval_until(
            &page,
            "the page to report the refusal and reset the field",
            LIMIT,
            "[document.getElementById('policy-idle').value, \
              [...document.querySelectorAll('[role=alert]')].map(e => e.textContent).join(' ')]",
            |shown| {
                (shown[0] == "400"
                    && shown[1]
                        .as_str()
                        .is_some_and(|t| t.contains("out of range")))
                .then_some(())
            },
        )
        .await;
    assert_eq!(
        lab.policy(&owner).idle_timeout_ms,
        400,
        "the refused value changed nothing"
    );

    // Connections opened from now on close after 400 ms idle.
    chrome
        .eval(&page, "document.getElementById('fire').click()")
        .await;
    eventually("6 hangs at the server", LIMIT, async || {
        (lab.hangs().len() == 6).then_some(())
    })
    .await;
    for _ in 0..2 {
        chrome
            .eval(&page, "document.getElementById('release').click()")
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    chrome.until_done(&page, 12).await;

    // Collect what the server recorded, and what the page shows.
    let shown = chrome
        .eval_until(
            &page,
            "the page to show idle-timeout closes",
            LIMIT,
            "Object.fromEntries(Array.from(document.querySelectorAll('g.lane.closed')) \
               .map(li => [li.dataset.conn, li.dataset.reason]))",
            |lanes| {
                let lanes: BTreeMap<String, String> =
                    serde_json::from_value(lanes).unwrap_or_default();
                let idle = lanes.values().filter(|r| *r == "idle_timeout").count();
                (idle >= 4).then_some(lanes)
            },
        )
        .await;
    let mut recorded: BTreeMap<String, CloseReason> = BTreeMap::new();
    while let Ok(event) = events.try_recv() {
        if let ServerEvent::ConnectionClosed { conn, reason, .. } = event {
            recorded.insert(conn.0.to_string(), reason);
        }
    }
    for (conn, reason) in &shown {
        let server = recorded
            .get(conn)
            .unwrap_or_else(|| panic!("the page shows c{conn} closed, the server never closed it"));
        assert_eq!(
            reason,
            server.kind(),
            "c{conn}: page and server agree on why it closed"
        );
    }
    let label = chrome
        .eval(
            &page,
            "document.querySelector('g.lane.closed[data-reason=idle_timeout] .status').textContent",
        )
        .await;
    assert!(
        label.as_str().is_some_and(|t| t.contains("idle timeout")),
        "the reason is written in words: {label}"
    );
}
