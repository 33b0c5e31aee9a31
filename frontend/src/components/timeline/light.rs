//! A long run in outline, while the page is flooded with its changes
//! ([`crate::flood`]): its requests counted by phase, a bar each, and the
//! connections that carried them. Laid over the full drawing (which is kept
//! as it was, hidden, and patched when the flood ends), so a frame of the
//! flood changes a dozen numbers instead of a drawing of hundreds of
//! elements.

use crate::dom::{Node, el};
use crate::flood;
use crate::state::{Phase, Run};
use crate::tally::count;

/// The phases shown, in a request's order, with their words (the
/// timeline's, `Phase::label`); failed and aborted are one line. "Not sent
/// yet": composed, its `fetch` not called yet (a burst's calls go out 20 a
/// task, a sequential one's one after another).
const LINES: [(&str, &str); 6] = [
    ("pending", "not sent yet"),
    ("queued", "queued in the browser"),
    ("server", "on a connection, at the server"),
    ("downloading", "downloading"),
    ("done", "done"),
    ("failed", "failed or aborted"),
];

/// Which of [`LINES`] a request in `phase` is counted in.
fn line(phase: Phase) -> usize {
    match phase {
        Phase::Pending => 0,
        Phase::Queued => 1,
        Phase::AtServer => 2,
        Phase::Downloading => 3,
        Phase::Done => 4,
        Phase::Aborted | Phase::Failed => 5,
    }
}

/// The run's requests per line of [`LINES`].
pub fn counts(run: &Run) -> [usize; 6] {
    let mut n = [0; 6];
    for r in &run.requests {
        n[line(r.phase)] += 1;
    }
    n
}

/// Why the run is drawn in outline, in the page's words.
pub fn why() -> String {
    // Whole numbers (float formatting would cost the download kilobytes).
    let per_second = |n: u32| n * 1000 / flood::WINDOW_MS as u32;
    format!(
        "Drawn in outline while this page takes in {} or more changes a second (the \
         requests composed, their fetch steps, the server's events), until they slow below \
         {}: drawing every bar at every frame would delay the very events it draws. The full \
         timeline, with each request's times, connection and headers and the server's \
         connections, follows then or when the run ends, and so do the line beside Fire, the \
         measured figures and the run list.",
        per_second(flood::CHANGES),
        per_second(flood::STILL)
    )
}

/// The outline of `run`; `dropped`: events the server dropped for this page
/// so far (it fell behind), told here too, since a flood is when it does.
pub fn picture(run: &Run, dropped: u64) -> Node {
    let n = counts(run);
    let total = run.requests.len().max(1);
    let lines = LINES
        .iter()
        .zip(n)
        // Requests not sent yet, and failures, only when there are any; the
        // four phases of every request always.
        .filter(|((phase, _), k)| *k > 0 || !matches!(*phase, "pending" | "failed"))
        .map(|((phase, words), k)| {
            let width = format!(
                "width:{}%",
                crate::decimal::fixed(100.0 * k as f64 / total as f64, 1)
            );
            el("li")
                .attr("data-phase", *phase)
                .kids(vec![
                    el("span").attr("class", "lw").text(*words).done(),
                    el("span")
                        .attr("class", "lb")
                        .attr("aria-hidden", "true")
                        .kids(vec![el("i").attr("style", width).done()])
                        .done(),
                    el("span").attr("class", "ln").text(k.to_string()).done(),
                ])
                .done()
        })
        .collect();
    let conns = run.connections_used();
    let dropped = (dropped > 0).then(|| {
        el("p")
            .attr("class", "problem")
            .attr("role", "alert")
            .text(format!(
                "The server dropped {} for this page (it fell behind): these counts may miss some.",
                count(usize::try_from(dropped).unwrap_or(usize::MAX), "event")
            ))
            .done()
    });
    el("div")
        .attr("class", "light")
        .attr("tabindex", "-1")
        .kids(vec![
            el("h2")
                .text(format!(
                    "Timeline of {}: {}, {}",
                    run.title(),
                    count(run.requests.len(), "request"),
                    if run.is_live() { "live" } else { "ended" }
                ))
                .done(),
            el("ul").attr("class", "light-phases").kids(lines).done(),
            el("p")
                .attr("class", "light-conns")
                .text(format!(
                    "{} carried this run's requests so far.",
                    count(conns, "connection")
                ))
                .done(),
            el("p").attr("class", "light-why").text(why()).done(),
        ])
        .kids(dropped.into_iter().collect())
        .done()
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::settings::Credentials;
    use crate::state::{BrowserRequest, PoolKey};

    fn run_in(phases: &[Phase]) -> Run {
        let mut run = Run::empty();
        run.requests = phases
            .iter()
            .map(|p| {
                let pool = PoolKey {
                    origin: "http://127.0.0.1:8080".into(),
                    credentials: Credentials::Default,
                };
                let mut r = BrowserRequest::new("t".into(), "/api/fast".into(), pool);
                r.phase = *p;
                Rc::new(r)
            })
            .collect();
        run
    }

    #[test]
    fn every_request_is_counted_once_and_failures_show_only_when_there_are_some() {
        let mut phases = vec![Phase::Queued; 120];
        phases.extend([Phase::AtServer; 6]);
        phases.extend([Phase::Done; 74]);
        let run = run_in(&phases);
        assert_eq!(counts(&run), [0, 120, 6, 0, 74, 0]);
        let mut html = String::new();
        picture(&run, 0).write(&mut html);
        assert!(html.contains("200 requests, live"), "{html}");
        assert!(!html.contains("dropped"));
        assert!(html.contains(r#"data-phase="queued""#) && html.contains("width:60.0%"));
        assert!(
            html.contains(r#"data-phase="downloading""#),
            "the four phases of every request, also at 0"
        );
        assert!(!html.contains(r#"data-phase="failed""#));
        assert!(!html.contains(r#"data-phase="pending""#));
        let run = run_in(&[Phase::Aborted, Phase::Failed, Phase::Pending]);
        assert_eq!(counts(&run), [1, 0, 0, 0, 0, 2]);
        let mut html = String::new();
        picture(&run, 3).write(&mut html);
        assert!(html.contains("dropped 3 events"), "{html}");
        assert!(
            html.contains(r#"data-phase="failed""#) && html.contains(r#"data-phase="pending""#)
        );
    }

    #[test]
    fn each_line_has_the_timelines_words_for_its_phase() {
        for phase in [
            Phase::Pending,
            Phase::Queued,
            Phase::AtServer,
            Phase::Downloading,
            Phase::Done,
        ] {
            assert_eq!(LINES[line(phase)].1, phase.label());
            assert_eq!(LINES[line(phase)].0, phase.name());
        }
    }

    #[test]
    fn the_page_says_why_from_the_thresholds_it_uses() {
        assert!(
            why().contains("200 or more changes a second") && why().contains("slow below 100"),
            "{}",
            why()
        );
    }

    #[test]
    fn a_settled_run_is_not_called_live() {
        let ended = run_in(&[Phase::Done; 61]);
        let mut html = String::new();
        picture(&ended, 0).write(&mut html);
        assert!(html.contains("61 requests, ended"), "{html}");
    }
}
