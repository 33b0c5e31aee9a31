//! The agent's rows: one request of the Node-style agent (queued in the
//! agent, in flight, done, with its socket), and one of its sockets with its
//! events under Node's names (`socket`, `free`, `timeout`, `end`, `close`
//! with `had_error`, `error`), drawn right above the server's lane of the
//! same connection. Words in the side columns, marks on the bars.

use super::row::Row;
use super::{Cap, NOTES, ROW, cap, chars, column_text, px, rect, row_bg, row_start};
use crate::agent::{AgentEnd, AgentRequest, AgentSocket};
use crate::dom::{Node, el};

/// The right column of a request: its socket and header.
pub(super) fn request_words(r: &AgentRequest) -> String {
    let socket = match r.socket {
        Some((n, true)) => format!("socket {n} reused"),
        Some((n, false)) => format!("socket {n} new"),
        None if r.end.is_none() => "no socket yet".into(),
        None => "no socket".into(),
    };
    let end = match &r.end {
        Some((_, AgentEnd::Error(code))) => format!(" · {code}"),
        Some((_, AgentEnd::Aborted(protocol::AbortReason::RequestTimeout))) => {
            " · request timeout".into()
        }
        _ => String::new(),
    };
    format!("{socket} · Connection: {}{end}", r.connection)
}

/// The row of the agent's request `r`.
pub(super) fn agent_request_row(r: &AgentRequest, props: &Row) -> Node {
    let (y, scale) = (props.y, &props.scale);
    let segments = r.segments(&props.clock);
    let note = request_words(r);
    let end_cap = segments.last().filter(|s| !s.open).and_then(|s| {
        let c = match r.end.as_ref()?.1 {
            AgentEnd::Done(_) => Cap::Done,
            AgentEnd::Aborted(_) => Cap::Cross,
            AgentEnd::Error(_) => Cap::Failed,
        };
        Some(cap(c, scale.x(s.to_ms), y))
    });
    // As a browser request's row: a change patches the row in place, its
    // words and bars keep their places.
    let mut children = row_start(
        y,
        &format!("A{:<3} {}", r.n, r.words()),
        &note,
        segments.len() + r.timeouts.len() + 1,
    );
    for s in &segments {
        children.push(rect(s, scale, y + 2.0, ROW - 5.0));
    }
    for (us, _) in &r.timeouts {
        if let Some(ms) = props.clock.to_page_ms(*us) {
            children.push(cap(Cap::ByServer, scale.x(ms), y));
        }
    }
    if let Some(c) = end_cap {
        children.push(c);
    }
    el("g")
        .attr(
            "class",
            crate::components::class(&["req", "agent-req"], &[(props.highlighted, "hl")]),
        )
        .attr("data-tag", r.tag.clone())
        .attr("data-state", r.words())
        .attr("data-waited", r.waited.to_string())
        .attr_if("data-socket", r.socket.map(|(n, _)| n.to_string()))
        .attr("tabindex", "0")
        .attr("role", "listitem")
        .attr(
            "aria-label",
            format!("agent request {} ({}): {}; {note}", r.n, r.tag, r.words()),
        )
        .kids(children)
        .done()
}

/// The row of the agent's socket `s`: its life, a tick per Node event, and
/// the events' names in the right column.
pub(super) fn agent_socket_row(s: &AgentSocket, props: &Row) -> Node {
    let (y, scale) = (props.y, &props.scale);
    let words = s.event_words();
    let life = s.life(&props.clock);
    let ticks: String = s
        .events
        .iter()
        .filter_map(|(us, _)| props.clock.to_page_ms(*us))
        .map(|ms| format!("M{} {}v{}", px(scale.x(ms)), px(y + 2.0), px(ROW - 5.0)))
        .collect();
    let end_cap = life
        .filter(|l| !l.open)
        .zip(s.closed)
        .map(|(l, (_, had_error))| {
            let mark = if had_error {
                Cap::Cross
            } else {
                Cap::ByBrowser
            };
            cap(mark, scale.x(l.to_ms), y)
        });
    let mut children = vec![
        row_bg(y, ROW),
        column_text(
            "label",
            &format!("agent socket {}", s.n),
            y + ROW - 5.0,
            false,
        ),
    ];
    if let Some(life) = life {
        children.push(rect(&life, scale, y + ROW / 2.0 - 2.0, 3.0));
    }
    children.push(el("path").attr("class", "cap").attr("d", ticks).done());
    if let Some(c) = end_cap {
        children.push(c);
    }
    children.push(column_text(
        "note",
        &s.last_events(chars(NOTES - 8.0)),
        y + ROW - 5.0,
        true,
    ));
    el("g")
        .attr(
            "class",
            crate::components::class(
                &["agent-socket"],
                &[(s.closed.is_some(), "closed"), (props.highlighted, "hl")],
            ),
        )
        .attr("data-socket", s.n.to_string())
        .attr_if("data-local", s.local.clone())
        .attr("data-events", words.clone())
        .attr("tabindex", "0")
        .attr("role", "listitem")
        .attr(
            "aria-label",
            format!(
                "agent socket {} ({}): {words}",
                s.n,
                s.local.as_deref().unwrap_or("connecting")
            ),
        )
        .kids(children)
        .done()
}
