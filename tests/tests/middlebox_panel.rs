//! The session's middlebox set by hand from the workbench's Middlebox panel
//! (over the control WebSocket): the server records the settings the panel
//! chose, a mapping opened afterwards runs them and expires on their clock, a
//! refused value is reported on the page and changes nothing; while the
//! instructor has locked the room the panel shows the defaults in force and a
//! change is refused, and unlocking brings the session's own settings back.

use std::time::Duration;

use keepalive_lab_server::middlebox::lab::effective;
use keepalive_lab_tests::chromium::{Chromium, Page};
use keepalive_lab_tests::{eventually, page_config, start_lab_with_middlebox};
use protocol::{MiddleboxEvent, OnExpiry, Preset, ServerEvent};

const LIMIT: Duration = Duration::from_secs(30);

/// Sets the panel's control `id` to `value` as a person would: edit, then
/// the `change` event.
async fn set(chrome: &mut Chromium, page: &Page, id: &str, value: &str) {
    chrome
        .eval(
            page,
            &format!(
                "(() => {{ const i = document.getElementById('{id}'); i.value = '{value}'; \
                   i.dispatchEvent(new Event('change', {{ bubbles: true }})); }})()"
            ),
        )
        .await;
}

/// What the page shows: the panel's idle field, its preset, the settings in
/// force, and the page's alerts (where a refused change is reported, as for
/// the policy panel).
async fn shown(chrome: &mut Chromium, page: &Page) -> [String; 4] {
    let v = chrome
        .eval(
            page,
            "[document.getElementById('mb-idle').value, document.getElementById('mb-preset').value, \
              document.getElementById('mb-in-force').textContent, \
              [...document.querySelectorAll('[role=alert]')].map(e => e.textContent).join(' ')]",
        )
        .await;
    std::array::from_fn(|i| v[i].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_middlebox_panel_sets_the_sessions_middlebox_and_reports_refusals() {
    let (addr, _, lab) = start_lab_with_middlebox(page_config()).await;
    let (_, mut events) = lab.subscribe(None);
    let mut chrome = Chromium::launch().await;
    let page = chrome.open_live(&format!("http://{addr}/")).await;
    let owner = chrome.session_of(&page).await;
    let session = owner.session().cloned();
    let before = effective(&lab, &owner);
    assert_eq!(before, Preset::AwsNat.settings(100), "the lab's defaults");
    eventually(
        "the panel to show the settings in force",
        LIMIT,
        async || {
            let [idle, preset, in_force, _] = shown(&mut chrome, &page).await;
            (idle == "350"
                && preset == "aws_nat"
                && in_force.contains("350 s shown as 3.5 s at ×100"))
            .then_some(())
        },
    )
    .await;

    // A preset, then a shorter idle timeout within its range, from the
    // panel's own controls.
    set(&mut chrome, &page, "mb-preset", "aws_nlb").await;
    eventually(
        "the server to run an AWS NLB for the session",
        LIMIT,
        async || (effective(&lab, &owner) == Preset::AwsNlb.settings(100)).then_some(()),
    )
    .await;
    set(&mut chrome, &page, "mb-idle", "120").await;
    let chosen = eventually(
        "the server to take the 120 s idle timeout",
        LIMIT,
        async || {
            let now = effective(&lab, &owner);
            (now.idle_timeout_ms == 120_000).then_some(now)
        },
    )
    .await;
    assert_eq!(
        (chosen.preset, chosen.on_expiry, chosen.scale),
        (Preset::AwsNlb, OnExpiry::RstEither, 100)
    );
    eventually(
        "the page to show what the server confirmed",
        LIMIT,
        async || {
            let [idle, preset, in_force, _] = shown(&mut chrome, &page).await;
            (idle == "120"
                && preset == "aws_nlb"
                && in_force.contains("AWS Network Load Balancer")
                && in_force.contains("2 min shown as 1.2 s at ×100"))
            .then_some(())
        },
    )
    .await;
    chrome.screenshot_if_asked(&page, "middlebox_panel").await;
    // The server recorded the change for this session.
    let mut announced = None;
    while let Ok(event) = events.try_recv() {
        if let ServerEvent::MiddleboxChanged {
            settings,
            session: s,
            in_force_ms,
            ..
        } = event
            && s == session
        {
            announced = Some((settings, in_force_ms));
        }
    }
    assert_eq!(
        announced,
        Some((chosen.clone(), 1_200)),
        "middlebox_changed"
    );

    // The phenomenon: a connection through the middlebox opened now runs
    // those settings, and is forgotten after 1.2 s idle with an NLB's expiry.
    let port = lab.middlebox().listeners()[0].port();
    let sid = session.clone().expect("a session");
    chrome
        .eval(
            &page,
            &format!(
                "fetch('http://127.0.0.1:{port}/api/fast?session={sid}&id=mb-panel', \
                   {{ cache: 'no-store' }}).then(r => r.status, e => String(e))"
            ),
        )
        .await;
    let mut mapping = None;
    let expired = eventually("the mapping to open and expire", LIMIT, async || {
        while let Ok(event) = events.try_recv() {
            if let ServerEvent::Middlebox {
                mapping: m,
                session: s,
                event,
                ..
            } = event
                && s == session
            {
                match event {
                    MiddleboxEvent::Opened {
                        settings,
                        in_force_ms,
                        ..
                    } => {
                        assert_eq!((settings, in_force_ms), (chosen.clone(), 1_200));
                        mapping = Some(m);
                    }
                    MiddleboxEvent::Expired {
                        idle_ms,
                        on_expiry,
                        transitory,
                    } if mapping == Some(m) => {
                        assert!(!transitory, "no FIN was sent");
                        return Some((idle_ms, on_expiry));
                    }
                    _ => {}
                }
            }
        }
        None
    })
    .await;
    assert!(expired.0 >= 1_200, "expired after 1.2 s idle: {expired:?}");
    assert_eq!(expired.1, OnExpiry::RstEither);

    // A value out of the NLB's range (60 to 6000 s): the page says why, the
    // field shows the value in force again, the server keeps it.
    set(&mut chrome, &page, "mb-idle", "5").await;
    eventually("the page to report the refusal", LIMIT, async || {
        let [idle, _, _, alert] = shown(&mut chrome, &page).await;
        (idle == "120" && alert.contains("out of range")).then_some(())
    })
    .await;
    assert_eq!(
        effective(&lab, &owner),
        chosen,
        "the refused value changed nothing"
    );

    // Real time, said plainly.
    set(&mut chrome, &page, "mb-scale", "1").await;
    eventually("real time on the server and the page", LIMIT, async || {
        let [_, _, in_force, _] = shown(&mut chrome, &page).await;
        (effective(&lab, &owner).scale == 1
            && in_force.contains("Real time (scale 1): the idle timeout is 2 min"))
        .then_some(())
    })
    .await;
    let chosen = effective(&lab, &owner);

    // The instructor locks the room: the session's new mappings run the
    // defaults, and the panel shows them as in force; a change is refused and
    // the page says so.
    lab.set_locked(true);
    eventually(
        "the panel to show the defaults under the lock",
        LIMIT,
        async || {
            let [_, preset, in_force, _] = shown(&mut chrome, &page).await;
            (preset == "aws_nat" && in_force.contains("350 s shown as 3.5 s")).then_some(())
        },
    )
    .await;
    assert_eq!(effective(&lab, &owner), before, "locked: the defaults run");
    set(&mut chrome, &page, "mb-preset", "gcp_nat").await;
    eventually("the page to report the lock", LIMIT, async || {
        let [_, preset, _, alert] = shown(&mut chrome, &page).await;
        (preset == "aws_nat" && alert.contains("locked")).then_some(())
    })
    .await;
    // Unlocked: the session's own settings again, on the server and the page.
    lab.set_locked(false);
    assert_eq!(
        effective(&lab, &owner),
        chosen,
        "the change refused under the lock changed nothing"
    );
    eventually(
        "the panel to show the session's own settings",
        LIMIT,
        async || {
            let [_, preset, _, _] = shown(&mut chrome, &page).await;
            (preset == "aws_nlb").then_some(())
        },
    )
    .await;
}
