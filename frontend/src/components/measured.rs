//! What a run measured, per connection pool, in figures and words. Every
//! figure comes from one [`Tally`] (defined there), so none contradicts
//! another.

use std::rc::Rc;

use yew::prelude::*;

use crate::state::Run;
use crate::tally::{PoolTally, Tally, count};
use crate::timeline::format_ms;

/// What [`measured`] shows. A plain function, not a component: it changes
/// whenever the run does, and each component type costs about 2 KB of
/// compressed WebAssembly.
pub struct MeasuredProps {
    /// The run shown, if any.
    pub run: Option<Rc<Run>>,
    /// Its figures.
    pub tally: Option<Tally>,
    /// Events the server skipped for this page.
    pub events_dropped: u64,
}

/// Where one pool's connections came from, and how its requests used them.
fn connections_words(p: &PoolTally) -> String {
    format!(
        "{} used: {} opened by this run, {} from the page load, {} kept alive from before this run; \
         requests on them: {} new, {} reused (keep-alive), {} on a kept one, {} on the page load's",
        p.conns, p.opened, p.page_load, p.kept, p.on[0], p.on[1], p.on[2], p.on[3]
    )
}

/// The measured panel.
pub fn measured(props: &MeasuredProps) -> Html {
    let dropped = (props.events_dropped > 0).then(|| {
        html! {
            <p class="error" role="alert">
                { format!("This page fell behind and missed {} server events. The server sent its \
                           record of the open connections again, but connections that closed \
                           meanwhile, and why, were missed: figures of runs at that time may be \
                           incomplete.", props.events_dropped) }
            </p>
        }
    });
    let (Some(run), Some(t)) = (&props.run, &props.tally) else {
        return html! {
            <section class="measured" aria-label="Measured">
                <h2>{ "Measured" }</h2>
                <p>{ "Nothing measured yet: fire a burst." }</p>
                { for dropped }
            </section>
        };
    };
    let rows = t.pools.iter().map(|p| {
        let wait = p.longest_wait_ms.map(|w| format!(", longest wait {}", format_ms(w))).unwrap_or_default();
        html! {
            <tr data-pool={p.pool.to_string()}>
                <th scope="row">{ p.pool.to_string() }</th>
                <td><output class="max-conns" data-value={p.max_conns.to_string()}>{ p.max_conns }</output></td>
                <td class="queued-count" data-value={p.queued.to_string()}>
                    { format!("{} ({} waiting now{wait})", p.queued, p.waiting_now) }
                </td>
                <td class="conns-used" data-value={p.conns.to_string()}>{ connections_words(p) }</td>
            </tr>
        }
    });
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
    html! {
        <section class="measured" aria-label="Measured">
            <h2>{ format!("Measured in run {}: {}", run.name(), count(t.total, "request")) }</h2>
            <p class="now-figures">
                <span>{ "waiting in the browser now: " }<strong id="queued">{ t.waiting }</strong></span>
                <span>{ "at the server now: " }<strong id="at-server">{ t.at_server }</strong>
                    { format!(" on {}", count(t.busy_conns, "connection")) }</span>
                <span>{ others }</span>
                if t.resent > 0 {
                    <span class="error">{ "re-sent silently by the browser: " }<strong id="resent">{ t.resent }</strong></span>
                }
            </p>
            <div class="table-scroll" role="region" aria-label="Figures per connection pool" tabindex="0">
            <table>
                <thead><tr>
                    <th scope="col">{ "Pool (origin · credentials mode)" }</th>
                    <th scope="col">{ "Most connections at once" }</th>
                    <th scope="col">{ "Requests that queued in the browser" }</th>
                    <th scope="col">{ "Connections" }</th>
                </tr></thead>
                <tbody>{ for rows }</tbody>
            </table>
            </div>
            <p class="explain">{ t.summary() }</p>
            <p class="source">
                { "Computed from this run, never typed in: each request is in exactly one of the states \
                   above. Queued in the browser = waiting there now, or reached the server only after \
                   another request of its pool ended there though issued before it ended, or ended \
                   (failed or aborted) without ever reaching the server. Connections \
                   come from the server's events for this run's tagged requests; the page load's are \
                   those open before this page went live." }
            </p>
            { for dropped }
        </section>
    }
}
