//! The walking skeleton's proof, in real headless Chromium: a page firing 12
//! hanging requests gets exactly 6 connections to the origin; the other 6 wait
//! in the browser and, once released, go out on the *same* 6 connections.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use keepalive_lab_server::Lab;
use keepalive_lab_tests::chromium::{Chromium, Page};
use keepalive_lab_tests::{eventually, start_page_server};
use protocol::ConnId;

const LIMIT: Duration = Duration::from_secs(30);

/// Connections that have an `/api/hang` request in flight right now.
fn connections_with_a_hang_in_flight(lab: &Lab) -> BTreeSet<ConnId> {
    lab.tracker()
        .connections()
        .into_iter()
        .filter(|c| {
            c.requests
                .iter()
                .any(|r| r.outcome.is_none() && r.target.starts_with("/api/hang"))
        })
        .map(|c| c.conn)
        .collect()
}

/// Which connection carried each tagged request, per the server.
fn server_conn_by_tag(lab: &Lab) -> BTreeMap<String, ConnId> {
    let mut by_tag = BTreeMap::new();
    for c in lab.tracker().connections() {
        for r in c.requests {
            let tag = r
                .target
                .strip_prefix("/api/hang?id=")
                .and_then(|rest| rest.split('&').next());
            if let Some(tag) = tag {
                by_tag.insert(tag.to_owned(), c.conn);
            }
        }
    }
    by_tag
}

async fn count_rows(chrome: &mut Chromium, page: &Page, phase: &str) -> u64 {
    chrome
        .eval(
            page,
            &format!("document.querySelectorAll('g.req[data-phase={phase}]').length"),
        )
        .await
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_opens_six_connections_then_reuses_them() {
    let (addr, lab) = start_page_server().await;
    let mut chrome = Chromium::launch().await;
    let page = chrome.open_live(&format!("http://{addr}/")).await;
    // The page issues its requests from its Worker (`index.html`), whose
    // requests share the page's pool (`request_script.rs`).
    eventually(
        "the page's requests issued from its Worker",
        LIMIT,
        async || {
            let place = chrome
                .eval(&page, "document.documentElement.dataset.requests")
                .await;
            (place == "worker").then_some(())
        },
    )
    .await;

    chrome
        .eval(&page, "document.getElementById('fire').click()")
        .await;

    // Server side: six requests arrive, each on its own connection.
    eventually("6 hanging requests at the server", LIMIT, async || {
        (lab.hangs().len() == 6).then_some(())
    })
    .await;
    // Give a seventh request every chance to arrive if the browser allowed it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(lab.hangs().len(), 6, "exactly 6 requests reach the server");
    let first_wave = connections_with_a_hang_in_flight(&lab);
    assert_eq!(
        first_wave.len(),
        6,
        "on 6 distinct connections: {first_wave:?}"
    );

    // Browser side, as the page displays it: 6 at the server, 6 queued.
    eventually(
        "the page to show 6 at the server and 6 queued",
        LIMIT,
        async || {
            let at_server = count_rows(&mut chrome, &page, "server").await;
            let queued = count_rows(&mut chrome, &page, "queued").await;
            (at_server == 6 && queued == 6).then_some(())
        },
    )
    .await;

    chrome.screenshot_if_asked(&page, "six-lanes-waiting").await;

    // Release over the page's WebSocket (an HTTP request would be starved).
    chrome
        .eval(&page, "document.getElementById('release').click()")
        .await;
    eventually(
        "the first 6 done and the next 6 hanging",
        LIMIT,
        async || {
            let done = count_rows(&mut chrome, &page, "done").await;
            (done == 6 && lab.hangs().len() == 6).then_some(())
        },
    )
    .await;
    let second_wave = connections_with_a_hang_in_flight(&lab);
    assert_eq!(
        second_wave, first_wave,
        "the waiting 6 went out on the same 6 connections (keep-alive reuse)"
    );

    chrome
        .eval(&page, "document.getElementById('release').click()")
        .await;
    eventually("all 12 requests done in the page", LIMIT, async || {
        (count_rows(&mut chrome, &page, "done").await == 12).then_some(())
    })
    .await;

    // The page's measured figure.
    let shown = chrome
        .eval(
            &page,
            "document.querySelector('[data-pool] .max-conns').dataset.value",
        )
        .await;
    assert_eq!(shown, "6", "the page shows the measured limit");

    // Every row names the connection the server recorded for that request.
    let rows = chrome
        .eval(
            &page,
            "Array.from(document.querySelectorAll('g.req')).map(li => [li.dataset.tag, li.dataset.conn])",
        )
        .await;
    let legend = chrome
        .eval(
            &page,
            "document.querySelectorAll('.legend .mb-legend').length",
        )
        .await;
    assert_eq!(legend, 0, "no middlebox in this run, so none in the legend");
    let by_tag = server_conn_by_tag(&lab);
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len(), 12);
    for row in rows {
        let tag = row[0].as_str().expect("tag");
        let shown: u64 = row[1].as_str().and_then(|c| c.parse().ok()).expect("conn");
        assert_eq!(
            by_tag.get(tag),
            Some(&ConnId(shown)),
            "request {tag}: page and server agree on its connection"
        );
    }
}
