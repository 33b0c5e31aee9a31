//! What a run measured, per connection pool, in figures and words.

use std::rc::Rc;

use yew::prelude::*;

use crate::clock::ClockSync;
use crate::state::{Phase, Run};
use crate::timeline::format_ms;

/// Props of [`Measured`].
#[derive(Properties)]
pub struct MeasuredProps {
    /// The run shown, if any.
    pub run: Option<Rc<Run>>,
    /// For queue times.
    pub clock: ClockSync,
    /// Events the server skipped for this page.
    pub events_dropped: u64,
}

impl PartialEq for MeasuredProps {
    fn eq(&self, other: &Self) -> bool {
        super::same_option(&self.run, &other.run)
            && self.clock == other.clock
            && self.events_dropped == other.events_dropped
    }
}

/// The measured panel.
#[component]
pub fn Measured(props: &MeasuredProps) -> Html {
    let dropped = (props.events_dropped > 0).then(|| html! {
        <p class="error" role="alert">
            { format!("This page fell behind and missed {} server events: figures may be incomplete. \
                       Reload to start from a fresh snapshot.", props.events_dropped) }
        </p>
    });
    let Some(run) = &props.run else {
        return html! {
            <section class="measured" aria-label="Measured">
                <h2>{ "Measured" }</h2>
                <p>{ "Nothing measured yet: fire a burst." }</p>
                { for dropped }
            </section>
        };
    };
    let at_server = run.count(Phase::AtServer) + run.count(Phase::Downloading);
    let queued = run.count(Phase::Queued);
    let resent = run.requests.iter().filter(|r| r.resent()).count();
    let rows = run.pools.iter().map(|(pool, stats)| {
        let waits = run.queued_in(pool, &props.clock);
        let longest = waits.iter().filter_map(|(_, w)| *w).fold(0.0_f64, f64::max);
        let in_pool: Vec<_> = run.requests.iter().filter(|r| &r.pool == pool).collect();
        let new = in_pool.iter().filter(|r| r.seq == Some(1)).count();
        let reused = in_pool.iter().filter(|r| r.seq.is_some_and(|s| s > 1)).count();
        let max = stats.max_concurrent_conns;
        html! {
            <tr data-pool={pool.to_string()}>
                <th scope="row">{ pool.to_string() }</th>
                <td><output class="max-conns" data-value={max.to_string()}>{ max }</output></td>
                <td class="queued-count" data-value={waits.len().to_string()}>
                    { format!("{}{}", waits.len(), if waits.is_empty() { String::new() } else { format!(" (longest {})", format_ms(longest)) }) }
                </td>
                <td class="conns-used" data-value={stats.conns.len().to_string()}>
                    { format!(
                        "{} used: {} opened for this run, {} request{} went on one already used",
                        stats.conns.len(),
                        new,
                        reused,
                        if reused == 1 { "" } else { "s" }
                    ) }
                </td>
            </tr>
        }
    });
    let first_max = run
        .pools
        .values()
        .map(|p| p.max_concurrent_conns)
        .max()
        .unwrap_or(0);
    let explanation = if run.pools.is_empty() {
        "No request has reached the server yet.".to_owned()
    } else if queued > 0 && at_server > 0 {
        format!(
            "Your browser opened {first_max} connections and is holding the other {queued} requests in \
             its own queue until one of those connections is free. The server has not seen them at all."
        )
    } else {
        format!(
            "At most {first_max} connections carried one pool's requests at once; {} requests reused a \
             connection an earlier request had used (keep-alive).",
            run.reused()
        )
    };
    html! {
        <section class="measured" aria-label="Measured">
            <h2>{ format!("Measured in run {}", run.name()) }</h2>
            <p class="now-figures">
                <span>{ "at the server now: " }<strong id="at-server">{ at_server }</strong></span>
                <span>{ "waiting in the browser now: " }<strong id="queued">{ queued }</strong></span>
                <span>{ "done: " }<strong>{ run.count(Phase::Done) }</strong></span>
                <span>{ "failed or aborted: " }<strong>{ run.count(Phase::Failed) + run.count(Phase::Aborted) }</strong></span>
                if resent > 0 {
                    <span class="error">{ "re-sent silently by the browser: " }<strong id="resent">{ resent }</strong></span>
                }
            </p>
            <table>
                <thead><tr>
                    <th scope="col">{ "Pool (origin · credentials mode)" }</th>
                    <th scope="col">{ "Most connections at once" }</th>
                    <th scope="col">{ "Requests that queued in the browser" }</th>
                    <th scope="col">{ "Connections" }</th>
                </tr></thead>
                <tbody>{ for rows }</tbody>
            </table>
            <p class="explain">{ explanation }</p>
            <p class="source">
                { "Computed from this run: connections from the server's events for requests carrying \
                   this run's tags; queueing = reached the server only after another request of the same \
                   pool finished there, though issued before it finished. Never typed in." }
            </p>
            { for dropped }
        </section>
    }
}
