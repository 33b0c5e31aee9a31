//! The shutdown's grace period bounds every connection, also one whose
//! request never completes (review N1): once the lab shuts down, the
//! watchdog is no longer polled, so `SHUTDOWN_GRACE` is what ends a request
//! whose body never comes.
//!
//! Every wait is bounded; nothing asserts how long it took beyond "ended
//! within a few grace periods" (without the bound it never ends).

mod common;

use common::{KEY, spawn_server};
use keepalive_lab_server::listener::SHUTDOWN_GRACE;

#[tokio::test]
async fn a_request_whose_body_never_comes_is_closed_after_the_shutdown_grace() {
    let (addr, lab, serve) = spawn_server(common::config()).await;
    let mut client = common::Client::connect(addr).await;
    // A body of 100 bytes is announced and 2 are sent: the handler waits
    // for the other 98, which never come.
    client
        .send_raw(
            format!(
                "PUT /api/config?key={KEY} HTTP/1.1\r\nHost: {addr}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{}}"
            )
            .as_bytes(),
        )
        .await;
    common::eventually("the request's head to be read", || {
        lab.tracker()
            .connections()
            .iter()
            .any(|c| !c.requests.is_empty())
    })
    .await;
    lab.begin_shutdown();
    let closed = tokio::time::timeout(SHUTDOWN_GRACE * 3, async {
        while !lab.tracker().connections().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the connection is still open {:?} after the shutdown began",
        SHUTDOWN_GRACE * 3
    );
    tokio::time::timeout(SHUTDOWN_GRACE * 2, serve)
        .await
        .expect("serve ends")
        .expect("serve task did not panic")
        .expect("serve returns Ok");
}
