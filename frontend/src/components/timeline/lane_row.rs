//! One TCP connection as the server saw it: its name (left), its life and
//! requests (middle), what it is doing or why it closed (right).

use super::row::Row;
use super::{Cap, LANE, cap, column_text, rect, row_bg};
use crate::dom::{Node, el};
use crate::state::Lane;
use crate::tally::count;
use crate::timeline::{Closer, Kind, Scale, Segment, lane_segments};

/// One SVG path of rectangles for the `kind` segments that are (or are not)
/// open; segments wholly before the visible window are left out, so earlier
/// requests do not pile up at the left edge.
fn lane_path(
    segments: &[Segment],
    scale: &Scale,
    y: f64,
    h: f64,
    kind: Kind,
    open: bool,
) -> String {
    use std::fmt::Write;
    let mut d = String::new();
    for s in segments
        .iter()
        .filter(|s| s.kind == kind && s.open == open && (open || s.to_ms >= scale.start_ms))
    {
        let x0 = scale.x(s.from_ms).round() as i64;
        let x1 = if open { scale.right } else { scale.x(s.to_ms) }.round() as i64;
        let w = (x1 - x0).max(2);
        let _ = write!(
            d,
            "M{x0} {}h{w}v{}h-{w}z",
            y.round() as i64,
            h.round() as i64
        );
    }
    d
}

/// What the connection is doing, or why it closed (short: the full reason
/// is in the details panel).
pub(super) fn lane_status(l: &Lane) -> String {
    // Over HTTP/2 a connection carries many requests at once, each a stream.
    let h2 = l.protocol.as_deref() == Some("h2");
    let unit = if h2 { "stream" } else { "request" };
    let in_flight: Vec<_> = l.requests.iter().filter(|r| r.finished.is_none()).collect();
    let doing = match &l.closed {
        Some(c) => {
            let reason = c.reason.label();
            format!("✕ {}", reason.split(" (").next().unwrap_or(reason))
        }
        None => match in_flight.as_slice() {
            [] => "open, idle".into(),
            [r] => format!(
                "carrying {}",
                r.tag
                    .as_deref()
                    .unwrap_or_else(|| r.target.split('?').next().unwrap_or(""))
            ),
            many => format!("carrying {}", count(many.len(), unit)),
        },
    };
    let over = match l.protocol.as_deref() {
        Some("h2") => "HTTP/2 · ",
        Some(_) => "TLS · ",
        None => "",
    };
    format!("{over}{doing} · {}", count(l.requests_total as usize, unit))
}

/// The row of connection `l`.
pub(super) fn lane_row(l: &Lane, props: &Row) -> Node {
    let (y, scale) = (props.y, &props.scale);
    let segments = lane_segments(l, &props.clock);
    let (life, requests) = segments
        .split_first()
        .map_or((None, &[][..]), |(a, b)| (Some(a), b));
    let status = lane_status(l);
    let end_cap = life
        .filter(|s| !s.open)
        .zip(l.closed.as_ref())
        .map(|(s, c)| {
            let mark = match Closer::of(&c.reason) {
                Closer::Server => Cap::ByServer,
                Closer::Browser => Cap::ByBrowser,
                Closer::Reset => Cap::Cross,
            };
            cap(mark, scale.x(s.to_ms), y + 2.0)
        });
    let path = |class: &'static str, kind, open: bool| {
        el("path")
            .attr("class", class)
            .attr_if("clip-path", open.then_some("url(#until-now)"))
            .attr(
                "d",
                lane_path(requests, scale, y + 3.0, LANE - 7.0, kind, open),
            )
            .done()
    };
    let mut children = vec![
        row_bg(y, LANE),
        column_text(
            "label",
            &format!("{} {}", l.conn, l.local_addr),
            y + LANE - 6.0,
            false,
        ),
    ];
    if let Some(life) = life {
        children.push(rect(life, scale, y + LANE / 2.0 - 1.5, 3.0));
    }
    // All of a lane's requests in three paths (finished; still going,
    // clipped at "now"; dropped unanswered): a busy lane changes one
    // attribute per frame instead of creating an element per request.
    children.push(path("seg-server", Kind::Server, false));
    children.push(path("seg-server", Kind::Server, true));
    children.push(path("seg-server-dropped", Kind::ServerDropped, false));
    if let Some(c) = end_cap {
        children.push(c);
    }
    children.push(column_text("status", &status, y + LANE - 6.0, true));
    el("g")
        .attr(
            "class",
            crate::components::class(
                &["lane"],
                &[(l.closed.is_some(), "closed"), (props.highlighted, "hl")],
            ),
        )
        .attr("data-conn", l.conn.0.to_string())
        .attr_if("data-reason", l.closed.as_ref().map(|c| c.reason.kind()))
        .attr("data-in-flight", l.in_flight().to_string())
        .attr("tabindex", "0")
        .attr("role", "listitem")
        .attr(
            "aria-label",
            format!(
                "connection {} from {} to {}: {status}",
                l.conn, l.peer, l.local_addr
            ),
        )
        .kids(children)
        .done()
}
