//! One request of the run: what it is (left), its bars with one per attempt
//! the server saw (middle), its connection and response headers (right).

use super::row::Row;
use super::{Cap, ROW, cap, row_start};
use crate::dom::{Node, el};
use crate::state::{BrowserRequest, Phase};
use crate::tally::ConnUse;
use crate::timeline::{Kind, request_segments};

/// Its state in a few words, for the left column.
fn state_words(r: &BrowserRequest) -> &'static str {
    match r.phase {
        Phase::Pending => "not sent yet",
        Phase::Queued if !r.attempts.is_empty() => "queued again",
        Phase::Queued => "queued",
        Phase::AtServer => "at the server",
        Phase::Downloading => "downloading",
        Phase::Done => "✓ done",
        Phase::Aborted => "✕ aborted",
        Phase::Failed => "▶ failed",
    }
}

/// Its connections (each dropped attempt's, then the answer's) and the
/// response's `Connection` / `Keep-Alive` headers, for the right column.
pub(super) fn connection_words(r: &BrowserRequest, usage: Option<ConnUse>) -> String {
    let mut parts: Vec<String> = r
        .attempts
        .iter()
        .filter(|a| a.unanswered())
        .map(|a| format!("{} ✕", a.conn))
        .collect();
    if !r.dropped()
        && let Some(c) = r.conn
    {
        parts.push(match usage {
            Some(u) => format!("{c} {}", u.words()),
            None => c.to_string(),
        });
    }
    let mut words = parts.join(" → ");
    if let Some(h) = r.keep_alive.words() {
        words += &format!(" · {h}");
    }
    words
}

/// The row of request `index`, named by its number in the run or, `by_tag`,
/// by its tag (which says its run: a lesson's runs drawn as one).
pub(super) fn request_row(
    index: usize,
    r: &BrowserRequest,
    usage: Option<ConnUse>,
    by_tag: bool,
    props: &Row,
) -> Node {
    let (y, scale) = (props.y, &props.scale);
    let segments = request_segments(r, &props.clock);
    let note = connection_words(r, usage);
    let label = format!(
        "request {} ({}): {}; {}",
        index + 1,
        r.tag,
        r.phase.label(),
        note
    );
    let (top, h) = (y + 2.0, ROW - 5.0);
    let end_cap = segments.last().filter(|s| !s.open).and_then(|s| {
        let c = match r.phase {
            Phase::Done => Cap::Done,
            Phase::Aborted => Cap::Cross,
            Phase::Failed => Cap::Failed,
            _ => return None,
        };
        Some((c, scale.x(s.to_ms)))
    });
    // The background, the words, then a bar per segment and the marks over
    // them: as its bars grow, a row's words and bars keep their places and
    // only the new bar is added.
    let name = if by_tag {
        format!("{} {}", r.tag, state_words(r))
    } else {
        format!("#{:<3} {}", index + 1, state_words(r))
    };
    let mut children = row_start(y, &name, &note, segments.len() + 2);
    // Composed but not issued yet (a run is drawn before its requests go
    // out, `services::burst::fire`): an empty bar where the queue's will
    // be, so that the first bar of the row's request in the run before is
    // patched into this one's, not taken out and made again.
    if segments.is_empty() {
        children.push(
            el("rect")
                .attr("class", Kind::Queued.class())
                .num("x", scale.left)
                .num("y", top)
                .attr("width", "0")
                .num("height", h)
                .done(),
        );
    }
    for s in &segments {
        let x0 = scale.x(s.from_ms);
        let x1 = if s.open {
            scale.right
        } else {
            scale.x(s.to_ms)
        };
        let attempt = s.attempt.and_then(|k| r.attempts.get(k).map(|a| (k, a)));
        children.push(
            el("rect")
                .attr("class", s.kind.class())
                .num("x", x0)
                .num("y", top)
                .num("width", (x1 - x0).max(2.0))
                .num("height", h)
                .attr_if("clip-path", s.open.then_some("url(#until-now)"))
                .attr_if("data-attempt", attempt.map(|(k, _)| (k + 1).to_string()))
                .attr_if("data-conn", attempt.map(|(_, a)| a.conn.0.to_string()))
                .done(),
        );
    }
    for s in segments.iter().filter(|s| s.kind == Kind::Dropped) {
        children.push(cap(Cap::Cross, scale.x(s.to_ms), y));
    }
    if let Some((c, x)) = end_cap {
        children.push(cap(c, x, y));
    }
    el("g")
        .attr(
            "class",
            crate::components::class(
                &["req", r.phase.name()],
                &[(props.highlighted, "hl"), (r.resent(), "resent")],
            ),
        )
        .attr("data-tag", r.tag.clone())
        .attr("data-phase", r.phase.name())
        .attr_if("data-conn", r.conn.map(|c| c.0.to_string()))
        .attr("data-attempts", r.attempts.len().to_string())
        .attr("tabindex", "0")
        .attr("role", "listitem")
        .attr("aria-label", label)
        .kids(children)
        .done()
}
