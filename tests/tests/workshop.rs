//! Workshop mode, end to end: the instructor's view needs the key; two real
//! Chromium participants take the six-lanes lesson and the instructor's page
//! shows what each measured; moving the room to a lesson moves both pages.

use std::time::Duration;

use keepalive_lab_server::Config;
use keepalive_lab_server::sessions::key::InstructorKey;
use keepalive_lab_tests::chromium::{Chromium, Page};
use keepalive_lab_tests::{dist_dir, eventually, start_server_with_second_origin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(60);
const KEY: &str = "workshop-test-key";

/// The status line of `GET path` (with an optional header line).
async fn status(addr: std::net::SocketAddr, path: &str, extra: &str) -> String {
    status_of(addr, "GET", path, extra, "").await
}

/// The status line of `method path` with header lines `extra` and `body`.
async fn status_of(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    extra: &str,
    body: &str,
) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(LIMIT, s.read_to_end(&mut raw))
        .await
        .expect("an answer")
        .expect("read");
    String::from_utf8_lossy(&raw)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The lesson `page` shows ("" for none, or while it loads the other page).
async fn lesson_of(chrome: &mut Chromium, page: &Page) -> String {
    chrome
        .eval_across_loads(
            page,
            "document.querySelector('section.lesson')?.dataset.lesson || ''",
        )
        .await
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A lab with the page built and the instructor key `KEY` (and the second
/// origin every page runs with): its address, the second origin's, and the
/// lab.
async fn room() -> (
    std::net::SocketAddr,
    std::net::SocketAddr,
    keepalive_lab_server::Lab,
) {
    start_server_with_second_origin(Config {
        dist_dir: dist_dir(),
        instructor_key: InstructorKey::parse(KEY).expect("a key"),
        ..Config::default()
    })
    .await
}

/// Moves the room to `lesson` with the instructor's own controls.
async fn move_room(teacher: &mut Chromium, instructor: &Page, lesson: &str) {
    teacher
        .eval(
            instructor,
            &format!(
                "(() => {{ const s = document.getElementById('room-lesson'); s.value = '{lesson}'; \
                   s.dispatchEvent(new Event('change', {{ bubbles: true }})); }})()"
            ),
        )
        .await;
    teacher
        .eval_until(
            instructor,
            "the instructor's choice to register",
            LIMIT,
            "document.getElementById('move-room')?.dataset.lesson",
            |v| (v == lesson).then_some(()),
        )
        .await;
    teacher
        .eval(instructor, "document.getElementById('move-room').click()")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_instructor_sees_what_every_participant_measured_and_moves_the_room() {
    let (addr, _second, lab) = room().await;

    // Without the key (or with a wrong one) there is no room to see.
    assert!(status(addr, "/api/room", "").await.contains(" 403 "));
    assert!(
        status(addr, "/api/room?key=wrong-key-123", "")
            .await
            .contains(" 403 ")
    );
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    assert!(
        status(addr, "/api/events?key=wrong-key-123", upgrade)
            .await
            .contains(" 403 ")
    );
    assert!(
        status(addr, &format!("/api/room?key={KEY}"), "")
            .await
            .contains(" 200 ")
    );

    // Two participants, each in a browser of their own, take six lanes.
    let base = format!("http://{addr}/");
    let mut alice = Chromium::launch().await;
    let mut bob = Chromium::launch().await;
    let alice_page = alice.open_lesson(&base, "six-lanes").await;
    let (answer, _) = alice.take_lesson(&alice_page, 6, LIMIT).await;
    assert_eq!(answer, "6");
    let bob_page = bob.open_lesson(&base, "six-lanes").await;
    let (answer, _) = bob.take_lesson(&bob_page, 5, LIMIT).await;
    assert_eq!(answer, "6");
    let alice_session = alice.session_of(&alice_page).await;
    let bob_session = bob.session_of(&bob_page).await;

    // The instructor's page (a browser of its own: a background tab would
    // not draw) shows both, with what each measured.
    let mut teacher = Chromium::launch().await;
    let instructor = teacher.open(&format!("{base}#instructor&key={KEY}")).await;
    teacher
        .eval_until(
            &instructor,
            "both participants on the instructor's page",
            LIMIT,
            "Array.from(document.querySelectorAll('tr[data-participant]')) \
               .map(r => [r.dataset.participant, r.querySelector('td[data-answer]')?.dataset.answer])",
            |rows| {
                let rows = rows.as_array().cloned().unwrap_or_default();
                let measured = |owner: &keepalive_lab_server::sessions::Owner| {
                    let id = owner.session().map(|s| s.to_string()).unwrap_or_default();
                    rows.iter().any(|r| r[0] == id.as_str() && r[1] == "6")
                };
                (measured(&alice_session) && measured(&bob_session)).then_some(())
            },
        )
        .await;
    // The key is not left in the address bar of a page that goes on the
    // projector (found in review); a reload of the tab still has it, and a
    // tab opened without it says what it needs instead of a wrong key.
    assert_eq!(
        teacher.eval(&instructor, "location.hash").await,
        "#instructor"
    );
    teacher.eval(&instructor, "location.reload()").await;
    eventually("the room again after a reload", LIMIT, async || {
        let rows = teacher
            .eval_across_loads(
                &instructor,
                "document.querySelectorAll('tr[data-participant]').length",
            )
            .await;
        (rows == Some(2.into())).then_some(())
    })
    .await;
    let mut stranger = Chromium::launch().await;
    let keyless = stranger.open(&format!("{base}#instructor")).await;
    stranger
        .eval_until(
            &keyless,
            "a keyless tab says it needs the key",
            LIMIT,
            "document.getElementById('instructor-no-key')?.textContent || ''",
            |text| {
                text.as_str()
                    .is_some_and(|t| t.contains("needs the instructor key"))
                    .then_some(())
            },
        )
        .await;
    let room = lab.sessions().participants();
    assert_eq!(room.len(), 2, "{room:?}");
    for p in &room {
        let report = p
            .reports
            .iter()
            .find(|r| r.lesson == "six-lanes")
            .expect("a six-lanes report");
        assert_eq!(report.answer.as_deref(), Some("6"));
        assert!(
            report
                .figures
                .iter()
                .any(|(k, v)| k == "at-once" && v == "6")
        );
        assert!(p.browser.starts_with("Chrome"), "{}", p.browser);
    }

    // The chart: for the lesson in play, how many predicted and how many
    // measured each value, as the participants' reports at the server say.
    let lesson = teacher
        .eval(
            &instructor,
            "document.querySelector('section.instructor h3').dataset.lesson",
        )
        .await;
    let lesson = lesson.as_str().expect("the lesson in play").to_owned();
    // Named by its title (found in review: the id), and the room counted in
    // words that agree in number.
    assert_eq!(
        teacher
            .eval(
                &instructor,
                "document.querySelector('section.instructor h3').textContent",
            )
            .await,
        "Predicted and measured: Six lanes"
    );
    let counts = teacher
        .eval(
            &instructor,
            "document.getElementById('room-counts').textContent",
        )
        .await;
    assert!(
        counts
            .as_str()
            .is_some_and(|t| t.starts_with("2 participants, 2 online, ")),
        "{counts}"
    );
    let mut expected: std::collections::BTreeMap<String, (u32, u32)> = Default::default();
    for p in &room {
        if let Some(r) = p.reports.iter().find(|r| r.lesson == lesson) {
            if let Some(v) = &r.prediction {
                expected.entry(v.clone()).or_default().0 += 1;
            }
            if let Some(v) = &r.answer {
                expected.entry(v.clone()).or_default().1 += 1;
            }
        }
    }
    assert_eq!(lesson, "six-lanes", "the first lesson is in play");
    assert_eq!(
        expected.len(),
        2,
        "two predictions (6 and 5), one answer: {expected:?}"
    );
    // Each answer in the lesson's words once they have come: six-lanes
    // counts requests (found in review: a bare "6").
    let drawn = teacher
        .eval_until(
            &instructor,
            "the chart in the lesson's words",
            LIMIT,
            "Array.from(document.querySelectorAll('svg.room-chart g')) \
               .map(g => [g.dataset.value, ...Array.from(g.querySelectorAll('text')).map(t => t.textContent)])",
            // A chart still being drawn (a row without its value or words)
            // is waited on, not failed.
            |rows| {
                let rows: Vec<Vec<String>> = serde_json::from_value(rows).ok()?;
                (!rows.is_empty()
                    && rows
                        .iter()
                        .all(|r| r.get(1).is_some_and(|t| t.ends_with(" requests"))))
                .then_some(rows)
            },
        )
        .await;
    let drawn: std::collections::BTreeMap<String, (u32, u32)> = drawn
        .into_iter()
        .map(|row| {
            let n = |t: &str| {
                t.split(' ')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("a count")
            };
            assert_eq!(row[1], format!("{} requests", row[0]), "{row:?}");
            (row[0].clone(), (n(&row[2]), n(&row[3])))
        })
        .collect();
    assert_eq!(drawn, expected, "the chart is the room's record");

    // A new round forgets every report, at the server and on the chart.
    teacher
        .eval(&instructor, "document.getElementById('reset').click()")
        .await;
    eventually("the reports forgotten", LIMIT, async || {
        lab.sessions()
            .participants()
            .iter()
            .all(|p| p.reports.is_empty())
            .then_some(())
    })
    .await;
    teacher
        .eval_until(
            &instructor,
            "the chart emptied",
            LIMIT,
            "document.querySelectorAll('svg.room-chart').length",
            |bars| (bars == 0).then_some(()),
        )
        .await;

    // Move the room to the pools lesson: both pages open it.
    move_room(&mut teacher, &instructor, "pools").await;
    eventually("both participants on the pools lesson", LIMIT, async || {
        let a = lesson_of(&mut alice, &alice_page).await;
        let b = lesson_of(&mut bob, &bob_page).await;
        (a == "pools" && b == "pools").then_some(())
    })
    .await;
    assert_eq!(lab.sessions().room_lesson().as_deref(), Some("pools"));

    // Alice leaves for the workbench (a bundle of its own): she stays there,
    // the same participant, although the room is on a lesson ...
    to_workbench(&mut alice, &alice_page).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let still = alice
        .eval(&alice_page, "document.querySelector('main').dataset.page")
        .await;
    assert_eq!(still, "workbench", "not sent back to the room's lesson");
    assert_eq!(alice.session_of(&alice_page).await, alice_session);
    // ... until the instructor moves the room: then she is on that lesson,
    // still the same participant, and the room still has two.
    move_room(&mut teacher, &instructor, "keep-alive-off").await;
    eventually(
        "Alice moved from the workbench to the lesson",
        LIMIT,
        async || (lesson_of(&mut alice, &alice_page).await == "keep-alive-off").then_some(()),
    )
    .await;
    assert_eq!(alice.session_of(&alice_page).await, alice_session);
    assert_eq!(lab.sessions().participants().len(), 2);

    // Back on the workbench, she is gathered again when the instructor
    // moves the room to the lesson it is already on.
    to_workbench(&mut alice, &alice_page).await;
    move_room(&mut teacher, &instructor, "keep-alive-off").await;
    eventually("Alice gathered to the same lesson", LIMIT, async || {
        (lesson_of(&mut alice, &alice_page).await == "keep-alive-off").then_some(())
    })
    .await;

    // From the workbench, the Lessons link shows her the list, not the
    // room's lesson: she went there to pick one.
    to_workbench(&mut alice, &alice_page).await;
    alice
        .eval(
            &alice_page,
            "document.getElementById('nav-lessons').click()",
        )
        .await;
    eventually("Alice on the lesson list", LIMIT, async || {
        let list = alice
            .eval_across_loads(
                &alice_page,
                "document.querySelector('main[data-page=lessons]')?.dataset.socket === 'open' \
                 && !!document.querySelector('ol.lesson-list')",
            )
            .await;
        (list == Some(true.into())).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(lesson_of(&mut alice, &alice_page).await, "");
    assert_eq!(alice.session_of(&alice_page).await, alice_session);
}

/// Follows the Workbench link and waits until the workbench is live.
async fn to_workbench(chrome: &mut Chromium, page: &Page) {
    chrome
        .eval(page, "document.getElementById('nav-workbench').click()")
        .await;
    eventually("the workbench, live", LIMIT, async || {
        let on = chrome
            .eval_across_loads(
                page,
                "document.querySelector('main[data-page=workbench]')?.dataset.socket === 'open'",
            )
            .await;
        (on == Some(true.into())).then_some(())
    })
    .await;
}

/// The status line of `PUT /api/room?key=KEY` with the JSON `body`.
async fn put_room(addr: std::net::SocketAddr, body: &str) -> String {
    let path = format!("/api/room?key={KEY}");
    status_of(
        addr,
        "PUT",
        &path,
        "Content-Type: application/json\r\n",
        body,
    )
    .await
}

/// Whether `page`'s lesson says it waits for the unlock, and whether its Run
/// button is enabled, once the learner has predicted.
async fn locked_and_runnable(chrome: &mut Chromium, page: &Page) -> (bool, bool) {
    let v = chrome
        .eval(
            page,
            "[!!document.getElementById('lesson-locked'), \
              !document.getElementById('run-lesson').disabled]",
        )
        .await;
    (v[0] == true, v[1] == true)
}

/// While the instructor has locked the room's settings, a lesson that
/// changes the policy or the middlebox for its run says so before Run and
/// cannot be run (found in review: it let the learner run, waited 10 s, then
/// guessed why it stopped); a lesson that changes neither runs as usual; the
/// unlock lets the first run too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_room_says_which_lessons_wait_for_the_unlock() {
    let (addr, _second, _lab) = room().await;
    let base = format!("http://{addr}/");
    let mut chrome = Chromium::launch().await;
    let page = chrome.open_lesson(&base, "keep-alive-off").await;
    assert!(
        put_room(addr, r#"{"policy_locked": true}"#)
            .await
            .contains(" 200 ")
    );
    chrome.predict(&page, 6).await;
    eventually(
        "the lesson says it waits for the unlock",
        LIMIT,
        async || (locked_and_runnable(&mut chrome, &page).await == (true, false)).then_some(()),
    )
    .await;

    // A lesson that changes neither runs, locked (in a browser of its own:
    // a background tab would not draw).
    let mut other = Chromium::launch().await;
    let six = other.open_lesson(&base, "six-lanes").await;
    let (answer, _) = other.take_lesson(&six, 6, LIMIT).await;
    assert_eq!(answer, "6");

    // The instructor's list marks the lessons the lock holds back: those
    // the server's catalogue says change the settings, and no other.
    let mut teacher = Chromium::launch().await;
    let instructor = teacher.open(&format!("{base}#instructor&key={KEY}")).await;
    let marked = "[...document.querySelectorAll('#room-lesson option')] \
                  .filter(o => o.dataset.waits === 'true' && o.textContent.endsWith('(waits for the unlock)')) \
                  .map(o => o.value)";
    let expected: Vec<&str> = protocol::LESSONS
        .iter()
        .filter(|l| l.changes_settings)
        .map(|l| l.id)
        .collect();
    assert!(expected.contains(&"keep-alive-off") && !expected.contains(&"six-lanes"));
    teacher
        .eval_until(
            &instructor,
            "the locked lessons marked in the instructor's list",
            LIMIT,
            marked,
            |v| {
                let ids: Vec<String> = serde_json::from_value(v).ok()?;
                (ids == expected).then_some(())
            },
        )
        .await;

    // Unlocked, the first lesson's Run is offered and nothing says locked.
    assert!(
        put_room(addr, r#"{"policy_locked": false}"#)
            .await
            .contains(" 200 ")
    );
    eventually("the Run button after the unlock", LIMIT, async || {
        (locked_and_runnable(&mut chrome, &page).await == (false, true)).then_some(())
    })
    .await;
    teacher
        .eval_until(
            &instructor,
            "no lesson marked after the unlock",
            LIMIT,
            marked,
            |v| {
                let ids: Vec<String> = serde_json::from_value(v).ok()?;
                ids.is_empty().then_some(())
            },
        )
        .await;
}

/// The instructor moves the room while a participant's lesson runs (found
/// in review): the lesson left is undone before the next one opens. Its
/// requests held at the server are released, the ones still queued in the
/// browser ended (else they would reach the server once the lanes free, be
/// held there, and hold the lanes the next lesson needs), and the settings
/// it changed put back (hang-timeout's 2 s hang timeout is not left as the
/// learner's). The next lesson then measures its own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_the_room_while_a_lesson_runs_undoes_the_lesson_left() {
    let (addr, _second, lab) = room().await;
    let base = format!("http://{addr}/");
    let mut chrome = Chromium::launch().await;
    let page = chrome.open_lesson(&base, "hang-timeout").await;
    let session = chrome.session_of(&page).await;
    let before = lab.policy(&session);
    chrome.predict(&page, 1).await;
    chrome
        .click_when_enabled(&page, "run-lesson", Duration::from_secs(10))
        .await;
    // Its first six held (for 2 s, the lesson's hang timeout), six more
    // queued in the browser.
    eventually("the lesson's first six held", LIMIT, async || {
        (lab.hangs().len() == 6).then_some(())
    })
    .await;
    assert_ne!(lab.policy(&session), before, "the lesson's own settings");
    let moved = put_room(addr, r#"{"lesson": "keep-alive-off"}"#).await;
    assert!(moved.contains(" 200 "), "{moved}");
    eventually("the page on the room's lesson", LIMIT, async || {
        (lesson_of(&mut chrome, &page).await == "keep-alive-off").then_some(())
    })
    .await;
    eventually("the learner's settings back", LIMIT, async || {
        (lab.policy(&session) == before).then_some(())
    })
    .await;
    eventually("nothing held", LIMIT, async || {
        (lab.hangs().is_empty()).then_some(())
    })
    .await;
    // Past the left lesson's hang timeout: none of its queued six came.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(lab.hangs().len(), 0, "a queued request of the left lesson");
    let (answer, _) = chrome.take_lesson(&page, 6, LIMIT).await;
    assert_eq!(answer, "6", "keep-alive off: a connection per request");
}

/// A participant who reloads stays one participant: the reloaded page's
/// session takes the place of the one before (what it carries is checked
/// in `server/tests/isolation.rs`; here the reloaded lesson reports
/// itself again), and the instructor's page lists them once (found
/// in review: each reload was another participant, and the chart counted
/// both answers). A second tab is another participant all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_who_reloads_is_counted_once() {
    let (addr, _second, lab) = room().await;
    let base = format!("http://{addr}/");
    let mut learner = Chromium::launch().await;
    let page = learner.open_lesson(&base, "six-lanes").await;
    let (answer, _) = learner.take_lesson(&page, 6, LIMIT).await;
    assert_eq!(answer, "6");
    let before = learner.session_of(&page).await;
    let mut teacher = Chromium::launch().await;
    let instructor = teacher.open(&format!("{base}#instructor&key={KEY}")).await;
    let rows = "Array.from(document.querySelectorAll('tr[data-participant]')) \
                  .map(r => [r.dataset.participant, r.querySelector('td[data-answer]')?.dataset.answer])";
    let listed = |rows: &serde_json::Value, owner: &keepalive_lab_server::sessions::Owner| {
        let id = owner.session().map(|s| s.to_string()).unwrap_or_default();
        rows.as_array()
            .filter(|rows| rows.len() == 1 && rows[0][0] == id.as_str())
            .map(|rows| rows[0][1].as_str().unwrap_or_default().to_owned())
    };
    teacher
        .eval_until(&instructor, "the participant listed", LIMIT, rows, |r| {
            listed(&r, &before).filter(|answer| answer == "6")
        })
        .await;

    learner.eval(&page, "location.reload()").await;
    let after = eventually("the reloaded page's session", LIMIT, async || {
        let id = learner
            .eval_across_loads(
                &page,
                "document.querySelector('main')?.dataset.session || ''",
            )
            .await?;
        let id = protocol::SessionId::parse(id.as_str()?).ok()?;
        let owner = keepalive_lab_server::sessions::Owner::Session(id);
        (owner != before).then_some(owner)
    })
    .await;
    // Listed once, as the new session (the reloaded lesson starts again at
    // its prediction, as a lesson opened again does); the server's room
    // the same.
    teacher
        .eval_until(
            &instructor,
            "the participant listed once after the reload",
            LIMIT,
            rows,
            |r| listed(&r, &after),
        )
        .await;
    let room = lab.sessions().participants();
    assert_eq!(room.len(), 1, "{room:?}");
    assert_eq!(Some(&room[0].session), after.session());
    assert_eq!(room[0].lesson.as_deref(), Some("six-lanes"));

    // Another tab of the same browser is a participant of its own.
    let other = learner.open(&base).await;
    learner
        .eval_until(
            &other,
            "the second tab's session",
            LIMIT,
            "!!document.querySelector('main[data-session]')",
            |v| (v == true).then_some(()),
        )
        .await;
    let third = learner.session_of(&other).await;
    assert!(third != after && third != before);
    eventually("a second tab, a second participant", LIMIT, async || {
        (lab.sessions().participants().len() == 2).then_some(())
    })
    .await;
}
