//! A timeline a room can trust (issue 9, item 4), in real headless Chromium,
//! compared with the server's own record:
//!
//! - the keep-alive race: each silently re-sent request is drawn as two
//!   attempts, each on the connection the server recorded for it, the first
//!   one dropped on a connection that closed in the race; and in projector
//!   mode at 1280 px no label covers a bar or another label;
//! - a lesson at 1280×720: its Run button and the timeline's first lane are
//!   on one screen;
//! - the lanes drawn are exactly this page's: a second tab's connections and
//!   a tool's request from the same host are never drawn in the first;
//! - a long run draws the rows in view, and its SVG export holds them all;
//! - a row that changes is patched in place (nothing moved or made again);
//! - the page's own latency figures (the bench's figure 3) time each event
//!   the server stamps once as handed over and once as applied, in order;
//! - the events socket runs in a Worker, and on the main thread where no
//!   Worker can start, and the run is drawn from its events either way.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use keepalive_lab_tests::chromium::Chromium;
use keepalive_lab_tests::{eventually, start_page_server};
use protocol::{CloseReason, ConnId, Micros, ServerEvent, SessionId};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast::Receiver;

const LIMIT: Duration = Duration::from_secs(30);

/// Timing-sensitive (the race): one browser at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn drain(events: &mut Receiver<ServerEvent>, into: &mut Vec<ServerEvent>) {
    while let Ok(event) = events.try_recv() {
        into.push(event);
    }
}

/// The `name=` query parameter of a target.
fn param<'a>(target: &'a str, name: &str) -> Option<&'a str> {
    target
        .split_once('?')?
        .1
        .split('&')
        .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
}

/// From the server's record: each tag's attempts (the connection of each, in
/// order), and the connections closed in the keep-alive race.
fn attempts_of(seen: &[ServerEvent]) -> (BTreeMap<String, Vec<u64>>, BTreeSet<u64>) {
    let mut recorded: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut raced = BTreeSet::new();
    for event in seen {
        match event {
            ServerEvent::RequestStarted { conn, target, .. } => {
                if let Some(tag) = param(target, "id") {
                    recorded.entry(tag.to_owned()).or_default().push(conn.0);
                }
            }
            ServerEvent::ConnectionClosed {
                conn,
                reason: CloseReason::KeepAliveRace { .. },
                ..
            } => {
                raced.insert(conn.0);
            }
            _ => {}
        }
    }
    (recorded, raced)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keep_alive_race_draws_each_attempt_on_the_connection_the_server_recorded() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (addr, lab) = start_page_server().await;
    let (_, mut events) = lab.subscribe(None);
    let mut chrome = Chromium::launch().await;
    let page = chrome
        .open_live(&format!(
            "http://{addr}/#count=4&endpoint=race&drop=fin&order=sequential"
        ))
        .await;
    chrome.set_viewport(&page, 1280, 720).await;
    chrome.fire_and_wait(&page, 4).await;

    // The server's record: every attempt of every tag, in order, on its
    // connection; and the connections closed in the race.
    let mut seen = Vec::new();
    let mut recorded: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut raced: BTreeSet<u64> = BTreeSet::new();
    eventually("the server's record of every attempt", LIMIT, async || {
        drain(&mut events, &mut seen);
        (recorded, raced) = attempts_of(&seen);
        (recorded.values().filter(|a| a.len() == 2).count() == 3 && raced.len() == 3).then_some(())
    })
    .await;

    // What the page draws: per request, each attempt (data-attempt) with its
    // connection, and whether it was drawn as dropped. (Server times are
    // placed once the clock sync has its first sample.) Page and record are
    // read again until they agree or the limit passes: a late event (or a
    // late frame) must not be mistaken for a disagreement.
    let draw = "Object.fromEntries([...document.querySelectorAll('g.req')].map(g => [g.dataset.tag, \
                  [...g.querySelectorAll('[data-attempt]')].map(e => \
                    [Number(e.dataset.attempt), Number(e.dataset.conn), e.classList.contains('seg-dropped')])]))";
    let per_attempt = |drawn: &BTreeMap<String, Vec<(usize, u64, bool)>>, tag: &str| {
        let mut attempts: BTreeMap<usize, (u64, bool)> = BTreeMap::new();
        for (n, conn, dropped) in drawn.get(tag).map(Vec::as_slice).unwrap_or_default() {
            let e = attempts.entry(*n).or_insert((*conn, *dropped));
            e.1 |= *dropped;
        }
        attempts
    };
    let drawn: BTreeMap<String, Vec<(usize, u64, bool)>> = eventually(
        "the page to draw every attempt the server recorded",
        LIMIT,
        async || {
            drain(&mut events, &mut seen);
            (recorded, raced) = attempts_of(&seen);
            let drawn: BTreeMap<String, Vec<(usize, u64, bool)>> =
                serde_json::from_value(chrome.eval(&page, draw).await).ok()?;
            recorded
                .iter()
                .all(|(tag, conns)| {
                    per_attempt(&drawn, tag)
                        .values()
                        .map(|a| a.0)
                        .collect::<Vec<_>>()
                        == *conns
                })
                .then_some(drawn)
        },
    )
    .await;
    assert_eq!(drawn.len(), 4, "{drawn:?}");
    for (tag, conns) in &recorded {
        let mut attempts: BTreeMap<usize, (u64, bool)> = BTreeMap::new();
        for (n, conn, dropped) in &drawn[tag] {
            let e = attempts.entry(*n).or_insert((*conn, *dropped));
            assert_eq!(e.0, *conn, "{tag}: one connection per attempt");
            e.1 |= *dropped;
        }
        let shown: Vec<u64> = attempts.values().map(|a| a.0).collect();
        assert_eq!(
            &shown, conns,
            "{tag}: the page draws each attempt on the connection the server recorded"
        );
        if conns.len() == 2 {
            assert!(
                attempts[&1].1 && !attempts[&2].1,
                "{tag}: the first attempt is drawn dropped, the second answered: {attempts:?}"
            );
            assert!(
                raced.contains(&conns[0]),
                "{tag}: its first attempt's connection closed in the race"
            );
        }
    }
    // The first attempts' lanes say why they closed.
    for conn in &raced {
        let reason = chrome
            .eval(
                &page,
                &format!("document.querySelector('g.lane[data-conn=\"{conn}\"]')?.dataset.reason"),
            )
            .await;
        assert_eq!(
            reason, "keep_alive_race",
            "c{conn} drawn with its close reason"
        );
    }
    let resent = chrome
        .eval(&page, "document.getElementById('resent')?.textContent")
        .await;
    assert_eq!(resent, "3");

    // Projector mode at 1280 px: no label covers a bar or another label.
    chrome
        .eval(
            &page,
            "[...document.querySelectorAll('header button')].find(b => b.textContent.includes('Projector')).click()",
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    chrome
        .screenshot_if_asked(&page, "timeline-race-projector")
        .await;
    let overlaps = chrome
        .eval(
            &page,
            "(() => { \
               const svg = document.getElementById('timeline'); \
               const box = e => e.getBoundingClientRect(); \
               const hit = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5; \
               const texts = [...svg.querySelectorAll('text')].filter(t => t.textContent.trim() && !t.closest('.tick')).map(t => [t.textContent, box(t)]); \
               const bars = [...svg.querySelectorAll('g.req rect:not(.row-bg), g.lane rect:not(.row-bg), g.lane path, g.req path.cap')] \
                 .map(b => [b.getAttribute('class') || b.tagName, box(b)]).filter(b => b[1].width > 0); \
               const out = []; \
               texts.forEach(([t, a], i) => { \
                 bars.forEach(([c, b]) => { if (hit(a, b)) out.push(`${t} / ${c}`); }); \
                 texts.slice(i + 1).forEach(([u, b]) => { if (hit(a, b)) out.push(`${t} / ${u}`); }); \
               }); \
               return [out, texts.length, innerWidth]; })()",
        )
        .await;
    assert_eq!(overlaps[2], 1280);
    assert!(
        overlaps[1].as_u64().unwrap_or(0) >= 12,
        "labels measured: {overlaps}"
    );
    assert_eq!(overlaps[0], serde_json::json!([]), "labels overlapping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lesson_at_1280_by_720_shows_its_run_button_and_the_first_lane_on_one_screen() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (addr, _lab) = start_page_server().await;
    let mut chrome = Chromium::launch().await;
    let page = chrome
        .open_lesson(&format!("http://{addr}/"), "six-lanes")
        .await;
    chrome.set_viewport(&page, 1280, 720).await;
    // Predict and run, as a learner does; the lesson fires 12 requests.
    chrome.predict(&page, 6).await;
    chrome.click_when_enabled(&page, "run-lesson", LIMIT).await;
    // While it runs: 12 requests drawn, six at the server on six lanes.
    let seen = chrome
        .eval_until(
            &page,
            "the run drawn with its lanes",
            LIMIT,
            "(() => { const r = e => e && e.getBoundingClientRect(); \
               const run = r(document.getElementById('run-lesson')); \
               const lane = r(document.querySelector('svg#timeline g.lane')); \
               const rows = document.querySelectorAll('svg#timeline g.req').length; \
               if (!lane || rows < 12) return null; \
               return { run: [run.top, run.bottom], lane: [lane.top, lane.bottom], rows, \
                        stage: document.querySelector('section.lesson').dataset.stage, \
                        scroll: scrollY, width: innerWidth, height: innerHeight }; })()",
            |v| (!v.is_null()).then_some(v),
        )
        .await;
    chrome.screenshot_if_asked(&page, "lesson-1280x720").await;
    assert_eq!(
        (seen["width"].as_f64(), seen["height"].as_f64()),
        (Some(1280.0), Some(720.0))
    );
    assert_eq!(
        seen["scroll"].as_f64(),
        Some(0.0),
        "nothing scrolled: {seen}"
    );
    let within = |pair: &Value| {
        let (top, bottom) = (pair[0].as_f64().unwrap(), pair[1].as_f64().unwrap());
        top >= 0.0 && bottom <= 720.0
    };
    assert!(within(&seen["run"]), "the Run button is on screen: {seen}");
    assert!(within(&seen["lane"]), "the first lane is on screen: {seen}");
}

/// A tool on the same host (think curl): one request, no session.
async fn a_tool_request(addr: std::net::SocketAddr) {
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    socket
        .write_all(format!("GET /api/fast HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut answer = [0_u8; 256];
    let n = socket.read(&mut answer).await.expect("read");
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer[..n])
    );
    // Kept open: an idle connection from the page's host, not the page's.
    std::mem::forget(socket);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lanes_drawn_are_exactly_this_pages_never_another_tabs_or_a_tools() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (addr, lab) = start_page_server().await;
    let (_, mut events) = lab.subscribe(None);
    let mut chrome = Chromium::launch().await;
    let first = chrome
        .open_live(&format!("http://{addr}/#count=3&endpoint=fast"))
        .await;
    let mine: SessionId = chrome
        .session_of(&first)
        .await
        .session()
        .cloned()
        .expect("a session");
    chrome.fire_and_wait(&first, 3).await;
    // A second tab (its own session, its own pool: credentials omitted),
    // and a tool's request from the same host.
    let second = chrome
        .open_live(&format!(
            "http://{addr}/#count=3&endpoint=fast&credentials=omit"
        ))
        .await;
    let theirs = chrome
        .session_of(&second)
        .await
        .session()
        .cloned()
        .expect("a session");
    assert_ne!(mine, theirs);
    chrome.fire_and_wait(&second, 3).await;
    a_tool_request(addr).await;

    // The server's record: when each connection opened, whose it became,
    // what it carried.
    let mut seen = Vec::new();
    let mut opened: BTreeMap<ConnId, Micros> = BTreeMap::new();
    let mut owner: BTreeMap<ConnId, SessionId> = BTreeMap::new();
    let mut carried: BTreeMap<ConnId, Vec<String>> = BTreeMap::new();
    let mut monitors: Vec<(Micros, ConnId)> = Vec::new();
    eventually("the tool's request recorded", LIMIT, async || {
        drain(&mut events, &mut seen);
        opened.clear();
        owner.clear();
        carried.clear();
        monitors.clear();
        for event in &seen {
            match event {
                ServerEvent::ConnectionOpened { conn, at_us, .. } => {
                    opened.insert(*conn, *at_us);
                }
                ServerEvent::ConnectionAttributed { conn, session, .. } => {
                    owner.insert(*conn, session.clone());
                }
                ServerEvent::RequestStarted { conn, target, .. } => {
                    carried.entry(*conn).or_default().push(target.clone());
                }
                ServerEvent::ConnectionUpgraded { conn, .. } => {
                    monitors.push((opened.get(conn).copied().unwrap_or(0), *conn));
                }
                _ => {}
            }
        }
        carried
            .values()
            .any(|t| t.iter().any(|t| t == "/api/fast"))
            .then_some(())
    })
    .await;
    monitors.sort();
    // The first tab went live when its events socket opened: everything
    // opened before was its page load (nothing else had connected yet).
    let first_live = monitors
        .iter()
        .find(|(_, c)| owner.get(c) == Some(&mine))
        .map(|m| m.0)
        .expect("the first tab's events socket");
    let page_load: BTreeSet<ConnId> = opened
        .iter()
        .filter(|(c, at)| **at < first_live && !monitors.iter().any(|m| m.1 == **c))
        .map(|(c, _)| *c)
        .collect();
    let ours = |c: &ConnId| owner.get(c) == Some(&mine) || page_load.contains(c);
    let run_conns: BTreeSet<ConnId> = carried
        .iter()
        .filter(|(_, targets)| {
            targets
                .iter()
                .any(|t| param(t, "session") == Some(mine.as_str()) && param(t, "id").is_some())
        })
        .map(|(c, _)| *c)
        .collect();
    let others: BTreeSet<ConnId> = opened.keys().filter(|c| !ours(c)).copied().collect();
    assert!(
        others.iter().any(|c| owner.get(c) == Some(&theirs)),
        "the second tab has connections of its own: {owner:?}"
    );

    // Back to the first tab (a tab in the background does not redraw).
    chrome.bring_to_front(&first).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let drawn = chrome
        .eval(
            &first,
            "[...document.querySelectorAll('svg#timeline g.lane')].map(g => Number(g.dataset.conn))",
        )
        .await;
    let drawn: BTreeSet<ConnId> = serde_json::from_value::<Vec<u64>>(drawn)
        .expect("lanes")
        .into_iter()
        .map(ConnId)
        .collect();
    chrome
        .screenshot_if_asked(&first, "timeline-own-lanes")
        .await;
    for conn in &drawn {
        assert!(
            ours(conn),
            "{conn} is drawn in the first tab but is not its own (owner {:?}, carried {:?})",
            owner.get(conn),
            carried.get(conn)
        );
    }
    assert!(
        run_conns.is_subset(&drawn),
        "every connection of the first tab's run is drawn: {run_conns:?} in {drawn:?}"
    );
    assert!(drawn.is_disjoint(&others), "none of {others:?} drawn");
    // Counted apart, in words, never drawn.
    chrome
        .eval_until(
            &first,
            "the tool's connection counted apart",
            LIMIT,
            "Number(document.querySelector('.timeline .aside')?.dataset.foreign || 0)",
            |foreign| (foreign.as_u64().unwrap_or(0) >= 1).then_some(()),
        )
        .await;
}

/// A long run draws the rows in view of its scrolling box (and a margin),
/// follows the box as it scrolls, and still exports every row: the SVG file
/// holds all 200 requests, each on the connection the server recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_draws_the_rows_in_view_and_its_svg_export_holds_them_all() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (addr, lab) = start_page_server().await;
    let (_, mut events) = lab.subscribe(None);
    let mut chrome = Chromium::launch().await;
    let page = chrome
        .open_live(&format!("http://{addr}/#count=200&endpoint=fast"))
        .await;
    chrome
        .eval(&page, "document.getElementById('fire').click()")
        .await;
    // The server's record: each request's tag, connection, and whether done.
    let mut seen = Vec::new();
    let mut conn_of: BTreeMap<String, u64> = BTreeMap::new();
    eventually("the server to finish 200 requests", LIMIT, async || {
        drain(&mut events, &mut seen);
        let mut tags: BTreeMap<u64, (String, u64)> = BTreeMap::new();
        let mut finished = 0;
        for event in &seen {
            match event {
                ServerEvent::RequestStarted {
                    conn,
                    request,
                    target,
                    ..
                } => {
                    if let Some(tag) = param(target, "id") {
                        tags.insert(request.0, (tag.to_owned(), conn.0));
                    }
                }
                ServerEvent::RequestFinished { request, .. } if tags.contains_key(&request.0) => {
                    finished += 1;
                }
                _ => {}
            }
        }
        conn_of = tags.into_values().collect();
        (finished >= 200).then_some(())
    })
    .await;
    assert_eq!(conn_of.len(), 200, "200 tags at the server");
    let rows = "[...document.querySelectorAll('svg#timeline g.req')].map(g => g.dataset.tag)";
    // The page shows the run's top: its first rows, not all 200.
    let drawn = chrome
        .eval_until(&page, "the run's first rows drawn", LIMIT, rows, |v| {
            let tags: Vec<String> = serde_json::from_value(v).ok()?;
            tags.first()
                .is_some_and(|t| t.ends_with("-1"))
                .then_some(tags)
        })
        .await;
    assert!(
        (20..200).contains(&drawn.len()),
        "a long run draws the rows in view and a margin, not all: {} drawn",
        drawn.len()
    );
    // Scrolled to its end, the box draws the last rows instead.
    chrome
        .eval(
            &page,
            "(() => { const b = document.querySelector('.timeline .scroll'); \
               b.scrollTop = b.scrollHeight; b.dispatchEvent(new Event('scroll')); return true; })()",
        )
        .await;
    let scrolled = chrome
        .eval_until(
            &page,
            "the last rows drawn after scrolling",
            LIMIT,
            rows,
            |v| {
                let tags: Vec<String> = serde_json::from_value(v).ok()?;
                tags.iter().any(|t| t.ends_with("-200")).then_some(tags)
            },
        )
        .await;
    assert!(
        !scrolled.iter().any(|t| t.ends_with("-1")) && scrolled.len() < 200,
        "the first row is no longer drawn: {scrolled:?}"
    );
    // The SVG export holds every row, with the server's connection on each.
    // The file is the page's state at the click, and the page may apply the
    // run's last events after the server has answered the last request
    // (a busy CI machine): an export with a row not yet on a connection is
    // taken again.
    chrome
        .eval(
            &page,
            "(() => { const create = URL.createObjectURL; \
               URL.createObjectURL = b => { window.__exported = b; return create.call(URL, b); }; \
               return true; })()",
        )
        .await;
    let exported = chrome
        .eval_until(
            &page,
            "the SVG export",
            LIMIT,
            "(() => { const b = window.__exported; window.__exported = null; \
               if (!b) { document.getElementById('export-svg').click(); return null; } \
               return b.text().then(t => { \
                 const svg = new DOMParser().parseFromString(t, 'image/svg+xml'); \
                 return [...svg.querySelectorAll('g.req')].map(g => [g.dataset.tag, Number(g.dataset.conn)]); }); })()",
            |v| serde_json::from_value::<Vec<(String, u64)>>(v).ok(),
        )
        .await;
    assert_eq!(exported.len(), 200, "every request in the file");
    let in_file: BTreeMap<String, u64> = exported.into_iter().collect();
    assert_eq!(
        in_file, conn_of,
        "each on the connection the server recorded"
    );
    // After the export the box draws only what is in view again.
    let after = chrome
        .eval_until(
            &page,
            "the view back to the rows in view",
            LIMIT,
            rows,
            |v| {
                let tags: Vec<String> = serde_json::from_value(v).ok()?;
                (tags.len() < 200).then_some(tags)
            },
        )
        .await;
    assert!(after.iter().any(|t| t.ends_with("-200")));
}

/// On a phone the timeline keeps words that can be read, and its box
/// scrolls sideways instead (found in review: at 390 px its words were
/// about 4 px high); the page itself does not scroll sideways. A long run
/// scrolled down in that box still draws the rows in view: measured with
/// the box's own width, the drawing's scale came out 2.3 times too small
/// and the rows drawn started below the box's top.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_the_timeline_keeps_its_words_readable_and_scrolls_sideways() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (addr, _lab) = start_page_server().await;
    let mut chrome = Chromium::launch().await;
    let page = chrome
        .open_live(&format!("http://{addr}/#count=200&endpoint=fast"))
        .await;
    chrome.set_viewport(&page, 390, 800).await;
    chrome
        .eval(&page, "document.getElementById('fire').click()")
        .await;
    // The run drawn in full (not in outline), its first rows done.
    chrome
        .eval_until_true(
            &page,
            "the run drawn in full",
            LIMIT,
            "(() => { const rows = [...document.querySelectorAll('svg#timeline g.req')]; \
               return !document.querySelector('.timeline[data-light]') && rows.length >= 20 \
                 && rows.every(g => g.dataset.phase === 'done'); })()",
        )
        .await;
    const SIZES: &str = "(() => { const svg = document.querySelector('svg#timeline'); \
        const b = document.querySelector('.timeline .scroll'); \
        const t = svg.querySelector('g.req text'); \
        return [svg.getScreenCTM().a * parseFloat(getComputedStyle(t).fontSize), \
                b.scrollWidth, b.clientWidth, \
                document.documentElement.scrollWidth - document.documentElement.clientWidth]; })()";
    let phone = chrome.eval(&page, SIZES).await;
    let words_px = phone[0].as_f64().unwrap_or(0.0);
    assert!(words_px >= 8.0, "the words on screen at 390 px: {phone}");
    assert!(
        phone[1].as_f64().unwrap_or(0.0) > phone[2].as_f64().unwrap_or(0.0) + 100.0,
        "the timeline's box scrolls sideways at 390 px: {phone}"
    );
    assert_eq!(phone[3], 0, "the page does not scroll sideways: {phone}");

    // Scrolled halfway down, the rows drawn cover what the box shows.
    chrome
        .eval(
            &page,
            "(() => { const b = document.querySelector('.timeline .scroll'); \
               b.scrollTop = b.scrollHeight / 2; b.dispatchEvent(new Event('scroll')); return true; })()",
        )
        .await;
    let cover = "(() => { const b = document.querySelector('.timeline .scroll').getBoundingClientRect(); \
        const rows = [...document.querySelectorAll('svg#timeline g.req')].map(g => g.getBoundingClientRect()); \
        return [Math.min(...rows.map(r => r.top)), Math.max(...rows.map(r => r.bottom)), b.top, b.bottom, rows.length]; })()";
    let drawn = chrome
        .eval_until(
            &page,
            "the rows in view drawn after scrolling",
            LIMIT,
            cover,
            |v| {
                let n = |i: usize| v[i].as_f64().unwrap_or(f64::NAN);
                (n(0) <= n(2) && n(1) >= n(3)).then_some(v)
            },
        )
        .await;
    assert!(
        drawn[4].as_u64().unwrap_or(0) < 200,
        "still only the rows in view and a margin: {drawn}"
    );

    // On a laptop the drawing fits its box: no sideways scroll.
    chrome.set_viewport(&page, 1280, 800).await;
    let laptop = chrome
        .eval_until(&page, "the timeline at 1280 px", LIMIT, SIZES, |v| {
            (v[1] == v[2]).then_some(v)
        })
        .await;
    assert!(
        laptop[0].as_f64().unwrap_or(0.0) >= 10.0,
        "the words on screen at 1280 px: {laptop}"
    );
}

/// A row that changes is patched in place: as a request moves through its
/// phases (and as the next run reuses the rows), its words change as text
/// and only its new bars are added; no node of a row is taken out and put
/// back, and no word is drawn as a new element. With the row's children
/// unkeyed, yew made them anew as the bars grew: this run of 12 made 35 to
/// 42 new text elements and 77 to 89 bars where 23 were needed, each
/// styled, laid out and painted as new (bench figure 3; `causes.md`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_changes_is_patched_in_place_nothing_moved_or_made_again() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (addr, _lab) = start_page_server().await;
    let mut chrome = Chromium::launch().await;
    let page = chrome
        .open_live(&format!("http://{addr}/#count=12&endpoint=slow&ms=300"))
        .await;
    chrome.fire_and_wait(&page, 12).await;
    // Watch the rows while a second run reuses them and runs to its end.
    chrome
        .eval(
            &page,
            "(() => { const m = window.__rows = {moved: 0, texts: 0, bars: 0, words: 0}; \
               const out = new Set(); \
               new MutationObserver(list => { for (const r of list) { \
                 if (r.type === 'characterData') { m.words++; continue; } \
                 if (!r.target.matches || !r.target.matches('g.req')) continue; \
                 r.removedNodes.forEach(n => out.add(n)); \
                 r.addedNodes.forEach(n => { if (out.has(n)) m.moved++; \
                   if (n.tagName === 'text') m.texts++; if (n.tagName === 'rect') m.bars++; }); } }) \
               .observe(document.getElementById('timeline'), {subtree: true, childList: true, characterData: true}); \
               document.getElementById('fire').click(); return true; })()",
        )
        .await;
    let done = "(() => { const rows = [...document.querySelectorAll('svg#timeline g.req')]; \
                  return rows.length === 12 && rows.every(g => g.dataset.tag.startsWith('b2-') \
                    && g.dataset.phase === 'done'); })()";
    chrome
        .eval_until_true(
            &page,
            "the second run's 12 requests drawn done",
            LIMIT,
            done,
        )
        .await;
    let counts = chrome.eval(&page, "window.__rows").await;
    println!("the second run's row changes: {counts}");
    let count = |k: &str| counts[k].as_u64().expect("a count");
    assert_eq!(
        count("moved"),
        0,
        "no node taken out and put back: {counts}"
    );
    assert_eq!(
        count("texts"),
        0,
        "no word drawn as a new element: {counts}"
    );
    // What did change: each request's words, and its bars for the phases
    // after the queue (at the server, downloading).
    assert!(count("words") >= 12, "the rows' words changed: {counts}");
    // At most two new bars a request: at the server, then downloading (the
    // queued bar is the row's first, reused from the run before).
    assert!(
        (12..=24).contains(&count("bars")),
        "each request's new bars added, and no more: {counts}"
    );
}

/// The page's own latency figures (read by `cargo xtask bench`, figure 3):
/// each event the server stamps for the page is recorded once when its
/// socket hands it over and once when a frame applies it, in the same order,
/// the first never later than the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_is_timed_once_as_handed_over_and_once_as_applied_in_that_order() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (addr, lab) = start_page_server().await;
    let mut chrome = Chromium::launch().await;
    let page = chrome
        .open_live(&format!("http://{addr}/#workbench&endpoint=fast&count=12"))
        .await;
    let synced = "typeof window.__keepaliveLab?.clockUncertaintyMs === 'number' \
                  && Array.isArray(window.__keepaliveLab.eventReceiptMs)";
    chrome
        .eval_until_true(&page, "the page's clock synced", LIMIT, synced)
        .await;
    // From here on, what the server stamps and what the page times.
    let (_, mut feed) = lab.subscribe(None);
    chrome
        .eval(
            &page,
            "window.__keepaliveLab.eventLatencyMs.length = 0; \
             window.__keepaliveLab.eventReceiptMs.length = 0; true",
        )
        .await;
    chrome.fire_and_wait(&page, 12).await;
    let mut seen = Vec::new();
    let lists = "[window.__keepaliveLab.eventReceiptMs.slice(), \
                  window.__keepaliveLab.eventLatencyMs.slice()]";
    let (received, applied, expected) = eventually(
        "every stamped event of the run timed twice",
        LIMIT,
        async || {
            drain(&mut feed, &mut seen);
            let expected = seen.iter().filter(|e| e.stamped_at().is_some()).count();
            let got = chrome.eval(&page, lists).await;
            let list = |v: &Value| -> Vec<f64> {
                v.as_array()
                    .map(|a| a.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_default()
            };
            let (received, applied) = (list(&got[0]), list(&got[1]));
            (expected >= 36 && received.len() == expected && applied.len() == expected)
                .then_some((received, applied, expected))
        },
    )
    .await;
    println!("{expected} stamped events; handed over {received:?}; applied {applied:?}");
    // A sharper clock sample can move the page's offset between the two
    // readings, by at most its uncertainty (well under a millisecond here).
    for (i, (r, a)) in received.iter().zip(&applied).enumerate() {
        assert!(
            *r <= a + 1.0,
            "event {i} applied ({a} ms) before it was handed over ({r} ms)"
        );
        assert!(
            (-1.0..10_000.0).contains(r),
            "event {i}: {r} ms from the server's stamp to the page, on a synced clock"
        );
    }
}

/// The events socket runs in a Worker (its messages then do not queue on
/// the main thread behind the page's own requests), and on the main thread
/// where no Worker can start; either way the page draws its run from the
/// server's events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_socket_runs_in_a_worker_or_without_one_on_the_main_thread() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (addr, _lab) = start_page_server().await;
    let mut chrome = Chromium::launch().await;
    let url = format!("http://{addr}/#workbench&endpoint=fast&count=12");
    let page = chrome.open_live(&url).await;
    let place = "document.documentElement.dataset.eventsSocket";
    assert_eq!(chrome.eval(&page, place).await, "worker");
    chrome.fire_and_wait(&page, 12).await;
    // The lanes are the server's connections, drawn from its events.
    let lanes = "document.querySelectorAll('svg#timeline g.lane').length";
    let drawn = |v: Value| v.as_u64().is_some_and(|n| (1..=6).contains(&n));
    assert!(
        drawn(chrome.eval(&page, lanes).await),
        "lanes from the server's events"
    );

    // A browser that cannot start a Worker (a browser of its own: the
    // first one's pool holds connections the server gave the first page).
    drop(chrome);
    let mut chrome = Chromium::launch().await;
    let page = chrome.open("about:blank").await;
    chrome
        .command(&page, "Page.enable", serde_json::json!({}))
        .await;
    chrome
        .command(
            &page,
            "Page.addScriptToEvaluateOnNewDocument",
            serde_json::json!({ "source": "window.Worker = undefined;" }),
        )
        .await;
    chrome
        .command(&page, "Page.navigate", serde_json::json!({ "url": url }))
        .await;
    let live = "document.querySelector('main')?.dataset.socket === 'open' \
                && !document.getElementById('fire')?.disabled";
    chrome
        .eval_until_true(&page, "the page live without a Worker", LIMIT, live)
        .await;
    assert_eq!(chrome.eval(&page, place).await, "main thread");
    chrome.fire_and_wait(&page, 12).await;
    assert!(
        drawn(chrome.eval(&page, lanes).await),
        "lanes from the server's events"
    );
}

/// Bars still going end at "now": each is drawn to the plot's right edge
/// and cut by the clip that follows the "now" line, which moves with the
/// clock; no bar begins right of the line (the drawing takes "now" as it is
/// made, not at the clock's last tick); and the SVG export cuts them the
/// same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_still_going_end_at_now_and_the_cut_follows_the_clock() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (addr, lab) = start_page_server().await;
    let (_, mut events) = lab.subscribe(None);
    let mut chrome = Chromium::launch().await;
    let page = chrome
        .open_live(&format!("http://{addr}/#count=8&endpoint=hang"))
        .await;
    chrome
        .eval(&page, "document.getElementById('fire').click()")
        .await;
    // Six requests hang at the server (two wait in the browser's queue).
    let mut seen = Vec::new();
    eventually("six requests hanging at the server", LIMIT, async || {
        drain(&mut events, &mut seen);
        let started = seen
            .iter()
            .filter(|e| {
                matches!(e, ServerEvent::RequestStarted { target, .. } if target.contains("/api/hang"))
            })
            .count();
        (started >= 6).then_some(())
    })
    .await;
    // In the drawing's units: the "now" line, the clip's right edge, and
    // each bar's ends and clip.
    let measure = "(() => { \
        const svg = document.querySelector('svg#timeline'); \
        const n = (e, a) => Number(e.getAttribute(a)); \
        const line = svg.querySelector('line.now'); \
        const clip = svg.querySelector('clipPath#until-now rect'); \
        const bars = [...svg.querySelectorAll('g.req rect[class^=seg-], g.lane rect[class^=seg-]')] \
          .map(b => [n(b, 'x'), n(b, 'x') + n(b, 'width'), b.getAttribute('clip-path') || '', \
                     b.closest('g.req')?.querySelector('rect[class^=seg-]') === b]); \
        return { now: n(line, 'x1'), cut: clip ? n(clip, 'width') : -1, bars }; })()";
    let check = |v: &Value| -> (f64, usize) {
        let now = v["now"].as_f64().expect("a now line");
        let cut = v["cut"].as_f64().expect("a clip");
        assert!((cut - now).abs() < 0.11, "the clip ends at the line: {v}");
        let bars: Vec<(f64, f64, String, bool)> =
            serde_json::from_value(v["bars"].clone()).expect("bars");
        let mut going = 0;
        for (from, to, clip, first) in &bars {
            // A request's first bar begins when the page called `fetch`, on
            // the page's own clock (later ones, and lanes, at server times
            // placed on it to within the clock sync's uncertainty).
            assert!(
                !first || *from <= now + 0.5,
                "a request's bar begins right of now ({now}): {v}"
            );
            if *to > now + 1.0 {
                going += 1;
                assert_eq!(clip, "url(#until-now)", "a bar past now is cut there: {v}");
            }
        }
        (now, going)
    };
    let first = chrome
        .eval_until(&page, "eight bars going on past now", LIMIT, measure, |v| {
            (check(&v).1 >= 8).then_some(v)
        })
        .await;
    chrome.screenshot_if_asked(&page, "bars-going").await;
    let (was, _) = check(&first);
    // The clock ticks: the line moves right and the cut with it.
    let later = chrome
        .eval_until(&page, "now to move on", LIMIT, measure, |v| {
            (v["now"].as_f64()? > was + 3.0).then_some(v)
        })
        .await;
    assert!(check(&later).1 >= 8, "still going: {later}");
    // The export cuts the same bars at now.
    chrome
        .eval(
            &page,
            "(() => { const create = URL.createObjectURL; \
               URL.createObjectURL = b => { window.__exported = b; return create.call(URL, b); }; \
               document.getElementById('export-svg').click(); return true; })()",
        )
        .await;
    let (cut, width) = chrome
        .eval_until(
            &page,
            "the SVG export",
            LIMIT,
            "(() => { const b = window.__exported; if (!b) return null; \
               return b.text().then(t => { \
                 const svg = new DOMParser().parseFromString(t, 'image/svg+xml'); \
                 const cut = [...svg.querySelectorAll('g.req [clip-path=\"url(#until-now)\"]')]; \
                 const clip = svg.querySelector('clipPath#until-now rect'); \
                 return [cut.length, clip ? Number(clip.getAttribute('width')) : -1]; }); })()",
            |v| serde_json::from_value::<(f64, f64)>(v).ok(),
        )
        .await;
    assert!(
        cut >= 8.0,
        "the export cuts each request's open bar at now: {cut}"
    );
    assert!(
        (170.0..808.0).contains(&width),
        "the export's clip ends at now, inside the plot: {width}"
    );
}

/// From the server's record: the requests of the run whose tags begin with
/// `prefix` (request id → connection id), and every request finished.
fn run_record(seen: &[ServerEvent], prefix: &str) -> (BTreeMap<u64, u64>, BTreeSet<u64>) {
    let (mut ours, mut finished) = (BTreeMap::new(), BTreeSet::new());
    for event in seen {
        match event {
            ServerEvent::RequestStarted {
                conn,
                request,
                target,
                ..
            } if param(target, "id").is_some_and(|t| t.starts_with(prefix)) => {
                ours.insert(request.0, conn.0);
            }
            ServerEvent::RequestFinished { request, .. } => {
                finished.insert(request.0);
            }
            _ => {}
        }
    }
    (ours, finished)
}

/// Samples the timeline at every animation frame into `window.__outline`:
/// frames with a run's outline shown over the drawing, and at each, the
/// outline's counts by phase and its connections; then clicks Fire.
const SAMPLE_AND_FIRE: &str = "(() => { \
    const s = window.__outline = {outlined: 0, sums: [], done: [], conns: []}; \
    const n = (li, p) => { const l = li.find(l => l.dataset.phase === p); \
      return l ? Number(l.querySelector('.ln').textContent) : 0; }; \
    const tick = () => { \
      const li = [...document.querySelectorAll('.timeline .light li')]; \
      if (document.querySelector('.timeline[data-light]') && li.length) { \
        s.outlined++; \
        s.sums.push(li.reduce((a, l) => a + Number(l.querySelector('.ln').textContent), 0)); \
        s.done.push(n(li, 'done')); \
        const c = /(\\d+) connections? carried/.exec(document.querySelector('.timeline .light-conns').textContent); \
        s.conns.push(c ? Number(c[1]) : -1); } \
      requestAnimationFrame(tick); }; \
    requestAnimationFrame(tick); \
    document.getElementById('fire').click(); return true; })()";

/// A long run drawn in outline while it floods the page (bench figures 3
/// and 4: drawing every bar at every frame delayed the events it drew),
/// and in full once it settles; a lesson's burst is never outlined. The
/// outline's figures are the page's own state at that frame: every request
/// counted once, "done" only growing, and no more connections than the
/// server recorded for the run. (Not "no more in flight than connections":
/// a response whose head the page has and whose body it has not read yet
/// is "downloading" in the page while its connection already carries the
/// next request, in the full drawing too.) The events socket's Worker hands
/// the flood's events to the page in batches, none lost: the page's counts
/// are the server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_run_is_outlined_then_drawn_in_full_and_a_lessons_burst_never_is() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (addr, lab) = start_page_server().await;
    let (_, mut events) = lab.subscribe(None);
    let mut chrome = Chromium::launch().await;
    // A lesson's scale first: 12 requests.
    let page = chrome
        .open_live(&format!("http://{addr}/#count=12&endpoint=fast"))
        .await;
    chrome.eval(&page, SAMPLE_AND_FIRE).await;
    chrome.until_done(&page, 12).await;
    let sampled = chrome.eval(&page, "window.__outline").await;
    assert_eq!(
        sampled["outlined"], 0,
        "a burst of 12 is drawn in full at every frame: {sampled}"
    );

    // Then 200 to the fast endpoint: the composer's field, as a learner
    // sets it.
    chrome
        .eval(
            &page,
            "(() => { const c = document.getElementById('c-count'); c.value = '200'; \
               c.dispatchEvent(new Event('change', {bubbles: true})); return true; })()",
        )
        .await;
    chrome
        .eval_until(
            &page,
            "the composer set to 200",
            LIMIT,
            "document.getElementById('fire').textContent",
            |label| {
                label
                    .as_str()
                    .is_some_and(|l| l.contains("200"))
                    .then_some(())
            },
        )
        .await;
    chrome.eval(&page, SAMPLE_AND_FIRE).await;
    chrome.screenshot_if_asked(&page, "outline").await;
    let mut seen = Vec::new();
    let conns = eventually(
        "the server to finish run 2's 200 requests",
        LIMIT,
        async || {
            drain(&mut events, &mut seen);
            let (ours, finished) = run_record(&seen, "b2-");
            (ours.len() >= 200 && ours.keys().all(|r| finished.contains(r)))
                .then(|| ours.into_values().collect::<BTreeSet<u64>>())
        },
    )
    .await;
    // The full drawing once the run settled: no outline, the rows drawn.
    let settled = "(() => !document.querySelector('.timeline[data-light]') \
                     && !document.querySelector('.timeline .light') \
                     && document.querySelectorAll('svg#timeline g.req[data-phase=done]').length >= 20 \
                     && [...document.querySelectorAll('svg#timeline g.req')].every(g => g.dataset.tag.startsWith('b2-')))()";
    chrome
        .eval_until_true(&page, "the run drawn in full once settled", LIMIT, settled)
        .await;
    let sampled = chrome.eval(&page, "window.__outline").await;
    println!("the outline, frame by frame: {sampled}");
    let list = |k: &str| -> Vec<u64> {
        serde_json::from_value(sampled[k].clone()).expect("a list of numbers")
    };
    assert!(
        sampled["outlined"].as_u64().is_some_and(|n| n >= 1),
        "200 requests to the fast endpoint flood the page, and it shows their outline: {sampled}"
    );
    assert!(
        list("sums").iter().all(|s| *s == 200),
        "every request counted once at every frame: {sampled}"
    );
    let done = list("done");
    assert!(
        done.windows(2).all(|w| w[0] <= w[1]),
        "'done' only grows: {done:?}"
    );
    // The connections it names are the page's own count: at most those the
    // server recorded for the run (a connection the page saw is one the
    // server had).
    let carried = list("conns");
    assert!(
        carried.iter().all(|c| *c as usize <= conns.len()) && carried.iter().any(|c| *c > 0),
        "the outline's connections {carried:?}, the server's {}",
        conns.len()
    );
    let why = chrome
        .eval(
            &page,
            "document.querySelector('.timeline .light-why') === null",
        )
        .await;
    assert_eq!(why, Value::Bool(true), "the outline and its words are gone");
    // The flood's events came from the Worker in batches: fewer posts than
    // messages (each post a task on the page's main thread).
    let counts = chrome.eval(&page, "window.keepaliveLabSocket.counts").await;
    let (messages, posts) = (
        counts["messages"].as_u64().unwrap_or(0),
        counts["posts"].as_u64().unwrap_or(0),
    );
    println!("the events socket's Worker: {posts} posts of {messages} messages");
    assert!(
        messages >= 3 * 212 && posts < messages,
        "the events of 212 requests in {posts} posts of {messages} messages"
    );
}

/// A long run to a slow endpoint floods the page only at its start (its 200
/// rows and their `fetch` calls at once), then brings a few dozen changes a
/// second, six requests at a time: the outline, then, while the run still
/// goes on, the full timeline and the page's panels again, drawn when the
/// flood's end comes with no change to draw (the frame dispatcher's timer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_long_run_is_outlined_at_its_start_then_drawn_in_full_while_it_goes_on() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (addr, lab) = start_page_server().await;
    let (_, mut events) = lab.subscribe(None);
    let mut chrome = Chromium::launch().await;
    let page = chrome
        .open_live(&format!("http://{addr}/#count=200&endpoint=slow&ms=400"))
        .await;
    chrome.eval(&page, SAMPLE_AND_FIRE).await;
    let full_while_going = "(() => !document.querySelector('.timeline[data-light]') \
        && document.querySelectorAll('svg#timeline g.req').length >= 20 \
        && [...document.querySelectorAll('svg#timeline g.req')].every(g => g.dataset.tag.startsWith('b1-')) \
        && document.querySelectorAll('svg#timeline g.req[data-phase=done]').length < 200 \
        && document.getElementById('run-status').textContent.startsWith('Run b1: 200 requests fired, running'))()";
    chrome
        .eval_until_true(
            &page,
            "the full drawing and the run line while the run goes on",
            LIMIT,
            full_while_going,
        )
        .await;
    let sampled = chrome.eval(&page, "window.__outline").await;
    assert!(
        sampled["outlined"].as_u64().is_some_and(|n| n >= 1),
        "its start floods the page, and it shows the outline: {sampled}"
    );
    // The server has the run going on: requests of it still held, six at
    // a time.
    let mut seen = Vec::new();
    drain(&mut events, &mut seen);
    let (started, finished) = run_record(&seen, "b1-");
    let done = started.keys().filter(|r| finished.contains(*r)).count();
    assert!(
        !started.is_empty() && done < 200,
        "drawn in full before the run ended: {done} of its requests finished at the server"
    );
}
