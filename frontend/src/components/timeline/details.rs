//! The focused request or connection, in words, with where each figure
//! comes from.

use std::fmt::Write;

use super::Focus;
use crate::clock::ClockSync;
use crate::state::{Phase, Run};
use crate::tally::count;
use crate::timeline::{LaneGroups, format_ms};

/// The story of what `focus` is on.
pub(super) fn details(
    focus: &Option<Focus>,
    run: &Run,
    g: &LaneGroups,
    clock: &ClockSync,
) -> String {
    let page = |us| clock.to_page_ms(us);
    let span = |from: Option<f64>, to: Option<f64>| {
        from.zip(to)
            .map_or(String::new(), |(a, b)| format_ms(b - a))
    };
    let mut w = String::new();
    match focus {
        None => w += "Point at (or tab to) a request or a connection to read its story here.",
        Some(Focus::Request(i)) => {
            let Some(r) = run.requests.get(*i) else {
                return w;
            };
            // A lesson's runs drawn as one: named by its tag alone, as its
            // row is (its place in the joined list is its number in no run).
            if run.is_joined() {
                let _ = write!(w, "{} is {}.", r.tag, r.phase.label());
            } else {
                let _ = write!(w, "#{} ({}) is {}.", i + 1, r.tag, r.phase.label());
            }
            if let Some(first) = r.attempts.first() {
                let _ = write!(
                    w,
                    " It waited {} in the browser before the server first saw it.",
                    span(r.issued_ms, page(first.start_us))
                );
            }
            if r.attempts.len() > 1 {
                let _ = write!(
                    w,
                    " The server saw it {} times: {}",
                    r.attempts.len(),
                    if r.phase == Phase::Failed {
                        "the browser re-sent it, and it failed all the same."
                    } else {
                        "the browser re-sent it silently, the page was never told."
                    }
                );
            }
            for (k, a) in r.attempts.iter().enumerate() {
                let _ = write!(
                    w,
                    " Attempt {}: on {}, request {} on it",
                    k + 1,
                    a.conn,
                    a.seq
                );
                if a.unanswered() {
                    let _ = write!(
                        w,
                        ", dropped unanswered after {}: {}",
                        span(page(a.start_us), a.end_us.and_then(page)),
                        a.dropped.as_ref().map_or("aborted", |d| d.label())
                    );
                } else if let Some(u) = g.uses.get(*i).copied().flatten() {
                    w += " (";
                    w += u.words();
                    w.push(')');
                }
                w.push('.');
            }
            if r.head_ms.is_some() {
                let _ = write!(
                    w,
                    " First byte {} after it arrived; body done {} after that.",
                    span(r.server_start_us.and_then(page), r.head_ms),
                    span(r.head_ms, r.ended_ms)
                );
            }
            for text in [r.keep_alive.words(), r.error.clone()]
                .into_iter()
                .flatten()
            {
                let _ = write!(w, " {text}.");
            }
            if let Some(t) = r.timing {
                let _ = write!(
                    w,
                    " Resource Timing: {} connection, requestStart − fetchStart = {}.",
                    if t.new_connection() {
                        "a new"
                    } else {
                        "a reused"
                    },
                    format_ms(t.request_start - t.fetch_start)
                );
            }
            w += " Sources: browser times from performance.now(); the server's from its events, on this \
                  page's clock via the clock sync; connections from the server's events and X-Conn-Id.";
        }
        Some(Focus::Lane(conn)) => {
            let Some(l) = g
                .run
                .iter()
                .chain(&g.page_load)
                .chain(&g.agent)
                .find(|l| l.conn == *conn)
            else {
                return w;
            };
            let _ = write!(
                w,
                "{} from {} to {}: {} so far",
                l.conn,
                l.peer,
                l.local_addr,
                count(l.requests_total as usize, "request")
            );
            if g.page_load.iter().any(|p| p.conn == *conn) {
                w += "; opened as this page loaded";
            }
            match &l.closed {
                Some(c) => {
                    let _ = write!(
                        w,
                        ". Closed after {}: {}. {} B in, {} B out.",
                        span(page(l.opened_us), page(c.at_us)),
                        c.reason.label(),
                        c.bytes_in,
                        c.bytes_out
                    );
                }
                None => w += ". Still open.",
            }
            w += " Source: the server's own accept loop.";
        }
    }
    w
}
