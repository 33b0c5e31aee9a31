//! What a run measured, per connection pool, in figures and words (every
//! figure from one [`Tally`], so none contradicts another), and the last
//! runs with their exports (JSON, HAR 1.2, SVG).

use crate::dom::{Node, el, text};
use crate::state::Run;
use crate::tally::{PoolTally, Tally, count};
use crate::timeline::format_ms;

/// A pool's connections and the requests on them, in words.
fn connections_words(p: &PoolTally) -> String {
    format!(
        "{} used: {} opened by this run, {} from the page load, {} kept alive from before this \
         run; requests on them: {} new, {} reused (keep-alive), {} on a kept one, {} on the page \
         load's",
        p.conns, p.opened, p.page_load, p.kept, p.on[0], p.on[1], p.on[2], p.on[3]
    )
}

/// The measured panel: `run` and its tally, and how many server events the
/// page missed.
pub fn measured(run: Option<(&Run, &Tally)>, events_dropped: u64) -> Node {
    let dropped = (events_dropped > 0).then(|| {
        el("p")
            .attr("class", "error")
            .attr("role", "alert")
            .text(format!(
                "This page fell behind and missed {events_dropped} server events. The server \
                 sent its record of the open connections again, but connections that closed \
                 meanwhile, and why, were missed: figures of runs at that time may be \
                 incomplete."
            ))
            .done()
    });
    let section = el("section")
        .attr("class", "measured")
        .attr("aria-label", "Measured");
    let Some((run, t)) = run else {
        return section
            .kids(vec![
                el("h2").text("Measured").done(),
                el("p").text("Nothing measured yet: fire a burst.").done(),
            ])
            .kids(dropped.into_iter().collect())
            .done();
    };
    let rows = t
        .pools
        .iter()
        .map(|p| {
            let wait = p
                .longest_wait_ms
                .map(|w| format!(", longest wait {}", format_ms(w)))
                .unwrap_or_default();
            el("tr")
                .attr("data-pool", p.pool.to_string())
                .kids(vec![
                    el("th")
                        .attr("scope", "row")
                        .text(p.pool.to_string())
                        .done(),
                    el("td")
                        .kids(vec![
                            el("output")
                                .attr("class", "max-conns")
                                .attr("data-value", p.max_conns.to_string())
                                .text(p.max_conns.to_string())
                                .done(),
                        ])
                        .done(),
                    el("td")
                        .attr("class", "queued-count")
                        .attr("data-value", p.queued.to_string())
                        .text(format!(
                            "{} ({} waiting now{wait})",
                            p.queued, p.waiting_now
                        ))
                        .done(),
                    el("td")
                        .attr("class", "conns-used")
                        .attr("data-value", p.conns.to_string())
                        .text(connections_words(p))
                        .done(),
                ])
                .done()
        })
        .collect();
    // Each request is in exactly one of these.
    let others = format!(
        "downloading: {} · done: {} · failed: {} · aborted: {}{}",
        t.downloading,
        t.done,
        t.failed,
        t.aborted,
        if t.pending > 0 {
            format!(" · not sent yet: {}", t.pending)
        } else {
            String::new()
        }
    );
    let figure = |words: &'static str, id: &'static str, n: String| {
        vec![text(words), el("strong").attr("id", id).text(n).done()]
    };
    // Each figure only when it is not zero: "re-sent silently: 0" beside
    // the failed ones read as a claim about re-sends that did not happen
    // (found in review).
    let resent = (t.resent > 0).then(|| {
        let mut kids = Vec::new();
        if t.silently_resent() > 0 {
            kids.extend(figure(
                "re-sent silently by the browser: ",
                "resent",
                t.silently_resent().to_string(),
            ));
        }
        if t.resent_failed > 0 {
            if !kids.is_empty() {
                kids.push(text(" · "));
            }
            kids.extend(figure(
                "re-sent, then failed all the same: ",
                "resent-failed",
                t.resent_failed.to_string(),
            ));
        }
        el("span").attr("class", "error").kids(kids).done()
    });
    let mut at_server = figure("at the server now: ", "at-server", t.at_server.to_string());
    at_server.push(text(format!(" on {}", count(t.busy_conns, "connection"))));
    let head = |words: &'static str| el("th").attr("scope", "col").text(words).done();
    section
        .kids(vec![
            el("h2")
                .text(format!(
                    "Measured in run {}: {}",
                    run.name(),
                    count(t.total, "request")
                ))
                .done(),
            el("p")
                .attr("class", "now-figures")
                .kids(vec![
                    el("span")
                        .kids(figure(
                            "waiting in the browser now: ",
                            "queued",
                            t.waiting.to_string(),
                        ))
                        .done(),
                    el("span").kids(at_server).done(),
                    el("span").text(others).done(),
                ])
                .kids(resent.into_iter().collect())
                .done(),
            el("div")
                .attr("class", "table-scroll")
                .attr("role", "region")
                .attr("aria-label", "Figures per connection pool")
                .attr("tabindex", "0")
                .kids(vec![
                    el("table")
                        .kids(vec![
                            el("thead")
                                .kids(vec![
                                    el("tr")
                                        .kids(vec![
                                            head("Pool (origin · credentials mode)"),
                                            head("Most connections at once"),
                                            head("Requests that queued in the browser"),
                                            head("Connections"),
                                        ])
                                        .done(),
                                ])
                                .done(),
                            el("tbody").kids(rows).done(),
                        ])
                        .done(),
                ])
                .done(),
            el("p").attr("class", "explain").text(t.summary()).done(),
            el("p")
                .attr("class", "source")
                .text(
                    "Computed from this run, never typed in: each request is in exactly one of \
                     the states above. Queued in the browser = waiting there now, or reached the \
                     server only after another request of its pool ended there though issued \
                     before it ended, or ended (failed or aborted) without ever reaching the \
                     server. Connections come from the server's events for this run's tagged \
                     requests; the page load's are those open before this page went live.",
                )
                .done(),
        ])
        .kids(dropped.into_iter().collect())
        .done()
}

/// A one-line summary of a run.
pub fn summary(run: &Run) -> String {
    let s = &run.settings;
    format!(
        "{}: {} × /api/{}{}",
        run.name(),
        s.count,
        s.endpoint.name(),
        if s.identical_url {
            " (identical URLs)"
        } else {
            ""
        }
    )
}

/// The runs panel (none before the first run): `runs` oldest first (id,
/// summary), the one `selected` shown, and why the last export failed.
pub fn runs(
    runs: Vec<(u32, String)>,
    selected: Option<u32>,
    problem: Option<&str>,
) -> Option<Node> {
    if runs.is_empty() {
        return None;
    }
    let buttons = runs
        .into_iter()
        .map(|(id, label)| {
            let checked = selected == Some(id);
            el("button")
                .attr("class", if checked { "run selected" } else { "run" })
                .attr("role", "radio")
                .attr("aria-checked", if checked { "true" } else { "false" })
                .attr("data-run", id.to_string())
                .text(label)
                .done()
        })
        .collect();
    let export = |id: &'static str, words: &'static str| {
        el("button")
            .attr("class", "secondary")
            .attr("id", id)
            .text(words)
            .done()
    };
    let problem = problem.map(|problem| {
        el("p")
            .attr("class", "error")
            .attr("role", "alert")
            .text(problem.to_owned())
            .done()
    });
    Some(
        el("section")
            .attr("class", "runs")
            .attr("aria-label", "Runs")
            .kids(vec![
                el("h2").text("Runs").done(),
                el("div")
                    .attr("role", "radiogroup")
                    .attr("aria-label", "Run shown")
                    .kids(buttons)
                    .done(),
                el("div")
                    .attr("class", "actions")
                    .kids(vec![
                        export("export-json", "Export JSON"),
                        export("export-har", "Export HAR (DevTools)"),
                        export("export-svg", "Export timeline SVG"),
                    ])
                    .done(),
            ])
            .kids(problem.into_iter().collect())
            .done(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(t: &Tally) -> String {
        let mut out = String::new();
        measured(Some((&Run::empty(), t)), 0).write(&mut out);
        out
    }

    #[test]
    fn re_sends_show_only_the_figures_that_are_not_zero() {
        let all_failed = Tally {
            resent: 2,
            resent_failed: 2,
            ..Tally::default()
        };
        let out = html(&all_failed);
        assert!(out.contains("re-sent, then failed all the same: "), "{out}");
        assert!(!out.contains("re-sent silently"), "{out}");
        let silent = Tally {
            resent: 3,
            ..Tally::default()
        };
        let out = html(&silent);
        assert!(out.contains("re-sent silently by the browser: "), "{out}");
        assert!(out.contains(">3<"), "{out}");
        assert!(!out.contains("failed all the same"), "{out}");
        let both = Tally {
            resent: 3,
            resent_failed: 1,
            ..Tally::default()
        };
        let out = html(&both);
        assert!(
            out.contains(">2<") && out.contains(" · re-sent, then failed"),
            "{out}"
        );
        assert!(!html(&Tally::default()).contains("re-sent"));
    }
}
