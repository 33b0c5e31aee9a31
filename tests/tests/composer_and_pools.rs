//! Through the real UI: a shared link restores the burst composer; a burst
//! aimed at the lab's second origin with `credentials: omit` is measured as
//! its own pool, and what the page displays agrees with what the server saw.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use keepalive_lab_tests::chromium::Chromium;
use keepalive_lab_tests::{page_config, start_server_with_second_origin};
use protocol::{ConnId, RequestId, ServerEvent};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_link_restores_the_composer_and_the_second_origin_is_its_own_pool() {
    let (addr, second, lab) = start_server_with_second_origin(page_config()).await;
    let (_, mut events) = lab.subscribe(None);
    let mut chrome = Chromium::launch().await;
    let fragment = "count=8&endpoint=slow&ms=400&target=second-port&credentials=omit";
    let page = chrome
        .open_live(&format!("http://{addr}/#{fragment}"))
        .await;

    // The link restored every setting in the composer.
    let shown = chrome
        .eval(
            &page,
            "['c-count','c-endpoint','p-ms','p-phase','c-target','c-credentials','c-order'] \
               .map(id => document.getElementById(id).value)",
        )
        .await;
    assert_eq!(
        shown,
        serde_json::json!([
            "8",
            "slow",
            "400",
            "headers",
            "second-port",
            "omit",
            "concurrent"
        ])
    );
    chrome
        .eval(&page, "document.getElementById('share').click()")
        .await;
    let link = chrome
        .eval_until(
            &page,
            "the share link",
            LIMIT,
            "document.getElementById('share-url')?.textContent || ''",
            |v| v.as_str().filter(|t| !t.is_empty()).map(str::to_owned),
        )
        .await;
    let pairs = |text: &str| text.split('&').map(str::to_owned).collect::<BTreeSet<_>>();
    let (base, shared) = link.split_once('#').expect("a fragment");
    assert_eq!(base, format!("http://{addr}/"));
    assert_eq!(
        pairs(shared),
        pairs(fragment),
        "the link carries the same settings"
    );

    chrome
        .eval(&page, "document.getElementById('fire').click()")
        .await;
    chrome
        .eval_until(
            &page,
            "all 8 requests done",
            LIMIT,
            "document.querySelectorAll('g.req[data-phase=done]').length",
            |done| (done == 8).then_some(()),
        )
        .await;

    // What the server saw: which connection carried each tagged request, and
    // the most connections carrying them at once.
    let mut conn_of_tag = BTreeMap::new();
    let mut local_port = BTreeMap::new();
    let mut in_flight: BTreeMap<RequestId, ConnId> = BTreeMap::new();
    let mut max_at_once = 0;
    while let Ok(event) = events.try_recv() {
        match event {
            ServerEvent::ConnectionOpened {
                conn,
                local_port: port,
                ..
            } => {
                local_port.insert(conn, port);
            }
            ServerEvent::RequestStarted {
                conn,
                request,
                target,
                ..
            } if target.starts_with("/api/slow") => {
                let tag = target
                    .split("id=")
                    .nth(1)
                    .and_then(|t| t.split('&').next())
                    .unwrap_or("");
                conn_of_tag.insert(tag.to_owned(), conn);
                in_flight.insert(request, conn);
                let distinct: BTreeSet<ConnId> = in_flight.values().copied().collect();
                max_at_once = max_at_once.max(distinct.len());
            }
            ServerEvent::RequestFinished { request, .. } => {
                in_flight.remove(&request);
            }
            _ => {}
        }
    }
    assert_eq!(
        conn_of_tag.len(),
        8,
        "the server saw all 8: {conn_of_tag:?}"
    );
    for conn in conn_of_tag.values() {
        assert_eq!(
            local_port.get(conn),
            Some(&second.port()),
            "{conn} came in on the second origin"
        );
    }
    assert_eq!(
        max_at_once, 6,
        "the browser's per-pool limit, as the server saw it"
    );

    // What the page displays.
    let pool = chrome
        .eval(
            &page,
            "[...document.querySelectorAll('[data-pool]')].map(tr => [tr.dataset.pool, tr.querySelector('.max-conns').dataset.value])",
        )
        .await;
    let expected_pool = format!("http://127.0.0.1:{} · credentials omit", second.port());
    assert_eq!(
        pool,
        serde_json::json!([[expected_pool, max_at_once.to_string()]])
    );
    let rows = chrome
        .eval(
            &page,
            "[...document.querySelectorAll('g.req')].map(g => [g.dataset.tag, g.dataset.conn])",
        )
        .await;
    for row in rows.as_array().expect("rows") {
        let tag = row[0].as_str().expect("tag");
        let conn: u64 = row[1].as_str().and_then(|c| c.parse().ok()).expect("conn");
        assert_eq!(
            conn_of_tag.get(tag),
            Some(&ConnId(conn)),
            "{tag}: page and server agree"
        );
    }
}

/// A field the page clamps or does not take shows what is in use after the
/// change, not what was typed: the Fire button and the field agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_the_page_clamps_or_refuses_shows_the_value_in_use() {
    let (addr, _second, _lab) = start_server_with_second_origin(page_config()).await;
    let mut chrome = Chromium::launch().await;
    let page = chrome.open_live(&format!("http://{addr}/#workbench")).await;
    // Types `value` into field `id` and commits it, as a person would;
    // answers what the field shows afterwards.
    let mut typed = async |id: &str, value: &str| {
        let js = format!(
            "(() => {{ const e = document.getElementById('{id}'); e.value = '{value}'; \
               e.dispatchEvent(new Event('change', {{ bubbles: true }})); \
               return document.getElementById('{id}').value; }})()"
        );
        chrome.eval(&page, &js).await
    };
    assert_eq!(typed("c-count", "5000").await, "200", "at most 200");
    assert_eq!(
        typed("c-count", "5000").await,
        "200",
        "again, already at 200"
    );
    assert_eq!(typed("c-count", "0").await, "1", "at least 1");
    assert_eq!(typed("c-count", "7").await, "7");
    assert_eq!(
        typed("a-max-sockets", "abc").await,
        "Infinity",
        "not a number: no limit, Node's default, and the field says so"
    );
    assert_eq!(typed("a-max-sockets", "3").await, "3");
    assert_eq!(
        typed("a-max-sockets", "0").await,
        "Infinity",
        "0 is no limit"
    );
    let fire = chrome
        .eval(&page, "document.getElementById('fire').textContent")
        .await;
    assert_eq!(fire, "Fire 7 requests");
}
