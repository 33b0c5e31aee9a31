//! The client-timeout lesson in real Chromium: requests the page aborts
//! (`AbortController`, like axios' `timeout`) show as aborted in the page;
//! the server sees each of them end as aborted, and the browser closes those
//! connections instead of reusing them (lab notes: "Abort").

use std::collections::BTreeSet;
use std::time::Duration;

use keepalive_lab_tests::chromium::Chromium;
use keepalive_lab_tests::{eventually, start_page_server};
use protocol::{CloseReason, ConnId, RequestId, RequestOutcome, ServerEvent};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_requests_are_shown_aborted_and_their_connections_close() {
    let (addr, lab) = start_page_server().await;
    let (_, mut events) = lab.subscribe(None);
    let mut chrome = Chromium::launch().await;
    let page = chrome
        .open_live(&format!(
            "http://{addr}/#count=3&endpoint=hang&timeout_ms=300"
        ))
        .await;
    assert_eq!(
        chrome
            .eval(&page, "document.getElementById('c-timeout').value")
            .await,
        "300"
    );
    chrome
        .eval(&page, "document.getElementById('fire').click()")
        .await;

    // Page side: all three aborted by the page, with the reason in words.
    chrome
        .eval_until(
            &page,
            "3 requests shown aborted",
            LIMIT,
            "document.querySelectorAll('g.req[data-phase=aborted]').length",
            |n| (n == 3).then_some(()),
        )
        .await;

    // Server side: the three hangs ended as aborted (nobody released them),
    // and their connections closed.
    let mut hangs: BTreeSet<RequestId> = BTreeSet::new();
    let mut hang_conns: BTreeSet<ConnId> = BTreeSet::new();
    let mut aborted: BTreeSet<RequestId> = BTreeSet::new();
    let mut closed: BTreeSet<ConnId> = BTreeSet::new();
    eventually("the server to see 3 aborted hangs and their connections close", LIMIT, async || {
        while let Ok(event) = events.try_recv() {
            match event {
                ServerEvent::RequestStarted { conn, request, target, .. } if target.starts_with("/api/hang") => {
                    hangs.insert(request);
                    hang_conns.insert(conn);
                }
                ServerEvent::RequestFinished { request, outcome: RequestOutcome::Aborted, .. } => {
                    aborted.insert(request);
                }
                ServerEvent::ConnectionClosed { conn, reason, .. } => {
                    assert!(
                        matches!(reason, CloseReason::PeerClosed | CloseReason::PeerReset),
                        "{conn}: an aborted request's connection is closed by the browser, got {reason:?}"
                    );
                    closed.insert(conn);
                }
                _ => {}
            }
        }
        (hangs.len() == 3 && hangs.is_subset(&aborted) && hang_conns.is_subset(&closed)).then_some(())
    })
    .await;
    assert_eq!(
        lab.hangs().len(),
        0,
        "nothing is left hanging on the server"
    );
}
