//! Both sides on one clock: the browser's requests above, this page's TCP
//! connections below, one shared time axis, a live "now" line.
//!
//! Layout: three columns. Words live only in the left column (what a row
//! is) and the right one (its connection, its `Connection` / `Keep-Alive`
//! headers, a lane's state); bars live only in the middle. Text is cut to
//! its column (and clipped to it), so a label never covers a bar, whatever
//! the mode or the screen.
//!
//! Which lanes are drawn is decided in [`crate::timeline::LaneGroups`]: the
//! run's and this page's, the page load's apart, earlier ones collapsed,
//! other clients' never.
//!
//! Drawn with the page's own DOM layer ([`crate::dom`]): [`picture`]
//! describes the section, the patcher changes only what differs from the
//! last drawing. [`island`] holds the timeline's own state and listens to
//! the learner; a page (`crate::page::Lab::draw_timeline`) hands it its
//! [`Input`] when that changed.
//!
//! A frame redraws only the rows whose request or lane changed: a row
//! whose inputs are the same (the same `Rc`s) keeps its node and the
//! patcher skips it. Segments still in progress are drawn to the right edge
//! of the plot and clipped by one rectangle that follows "now": a live frame
//! moves that rectangle instead of redrawing every row.

mod agent_row;
mod details;
mod island;
mod lane_row;
mod light;
mod middlebox_row;
mod request_row;
mod row;

use std::rc::Rc;

use protocol::ConnId;

use crate::agent::AgentView;
use crate::clock::ClockSync;
use crate::dom::{Node, el};
use crate::palette;
use crate::state::{Lane, Run};
use crate::tally::count;
use crate::timeline::{
    InView, LaneGroups, Scale, Segment, agent_extent, rows_to_draw, run_extent, shown, window,
};
use details::details;
pub use island::{Cell, Timeline};
use row::{Item, Row};

/// Drawing width (the SVG scales to the page).
const WIDTH: f64 = 1200.0;
/// Left column: what each row is.
const LABELS: f64 = 170.0;
/// Right column: connection, headers, state.
const NOTES: f64 = 380.0;
/// Height of a request row.
const ROW: f64 = 15.0;
/// Height of a lane.
const LANE: f64 = 17.0;
/// Top axis.
const AXIS: f64 = 20.0;
/// A group's title line.
const HEAD: f64 = 18.0;
/// Characters that fit in a column of `width` at the largest text size
/// (13 px in projector mode, about 7.2 px a character).
const fn chars(width: f64) -> usize {
    (width / 7.4) as usize
}

/// What the pointer or keyboard focus is on.
#[derive(Debug, Clone, PartialEq)]
pub enum Focus {
    /// Request `index` of the run.
    Request(usize),
    /// A connection lane.
    Lane(ConnId),
}

/// Whole pixels, in words (attributes take them with [`El::num`]).
///
/// [`El::num`]: crate::dom::El::num
fn px(v: f64) -> String {
    (v.round() as i64).to_string()
}

/// `text` cut to `max` characters, with an ellipsis.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        text.chars()
            .take(max.saturating_sub(1))
            .chain(['…'])
            .collect()
    }
}

/// A line of text in the left (`right` false) or right column, cut and
/// clipped to it.
fn column_text(class: &'static str, text: &str, y: f64, right: bool) -> Node {
    let (x, clip, max) = if right {
        (WIDTH - NOTES + 6.0, "url(#col-r)", chars(NOTES - 8.0))
    } else {
        (6.0, "url(#col-l)", chars(LABELS - 10.0))
    };
    el("text")
        .attr("class", class)
        .num("x", x)
        .num("y", y)
        .attr("clip-path", clip)
        .text(cut(text, max))
        .done()
}

/// A title line of the left column.
fn title(class: &'static str, y: f64, text: String) -> Node {
    el("text")
        .attr("class", class)
        .attr("x", "6")
        .num("y", y)
        .text(text)
        .done()
}

/// The first of a row's children: its background and its words (left and
/// right columns), with room for `more`.
fn row_start(y: f64, label: &str, note: &str, more: usize) -> Vec<Node> {
    let mut children = Vec::with_capacity(3 + more);
    children.push(row_bg(y, ROW));
    children.push(column_text("label", label, y + ROW - 5.0, false));
    children.push(column_text("note", note, y + ROW - 5.0, true));
    children
}

/// A row's background, `h` high.
fn row_bg(y: f64, h: f64) -> Node {
    el("rect")
        .attr("class", "row-bg")
        .attr("x", "0")
        .num("y", y - 1.0)
        .num("width", WIDTH)
        .num("height", h)
        .done()
}

/// One segment. No tooltip per segment: the row's words and the details
/// panel say what it is.
fn rect(s: &Segment, scale: &Scale, y: f64, h: f64) -> Node {
    bar(s.kind.class(), (s.from_ms, s.to_ms, s.open), scale, y, h)
}

/// A bar of `class` from `from_ms` to `to_ms`, or to "now" while `open`.
fn bar(
    class: &'static str,
    (from_ms, to_ms, open): (f64, f64, bool),
    scale: &Scale,
    y: f64,
    h: f64,
) -> Node {
    let x0 = scale.x(from_ms);
    let x1 = if open { scale.right } else { scale.x(to_ms) };
    el("rect")
        .attr("class", class)
        .num("x", x0)
        .num("y", y)
        .num("width", (x1 - x0).max(2.0))
        .num("height", h)
        .attr_if("clip-path", open.then_some("url(#until-now)"))
        .done()
}

/// An end mark, drawn after a bar (its shape is in [`DEFS`]): a tick when
/// done, a cross when aborted, dropped or reset, a triangle when failed, a
/// square when the server closed the connection, a circle when the browser
/// did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// Done.
    Done,
    /// Aborted, dropped, reset: a cross.
    Cross,
    /// Failed.
    Failed,
    /// Closed by the server.
    ByServer,
    /// Closed by the browser.
    ByBrowser,
}

impl Cap {
    /// Its id in [`DEFS`] (the legend's copy), its classes and its shape in
    /// a 12-unit box whose left edge is the bar's end.
    const fn shape(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Cap::Done => ("cap-done", "cap", "M2 0v12"),
            Cap::Cross => ("cap-cross", "cap bad", "M1 3l6 6m0 -6l-6 6"),
            Cap::Failed => ("cap-failed", "cap bad fill", "M1 2l7 4l-7 4z"),
            Cap::ByServer => ("cap-server", "cap fill", "M-3 3h6v6h-6z"),
            Cap::ByBrowser => ("cap-browser", "cap", "M-3 6a3 3 0 1 0 6 0a3 3 0 1 0 -6 0"),
        }
    }
}

/// `cap` right after `x`, in the 12-unit box below `y`: a path of its own,
/// not a `<use>` of the legend's copy (each `<use>` is a shadow tree the
/// browser clones and styles; a burst of 200 draws 200 marks).
fn cap(cap: Cap, x: f64, y: f64) -> Node {
    let (_, class, d) = cap.shape();
    el("path")
        .attr("class", class)
        .attr("d", d)
        .attr("transform", format!("translate({} {})", px(x), px(y)))
        .done()
}

/// The legend: every state, with its pattern or mark and its words. Static
/// markup: the marks are [`Cap::shape`]'s, written out. The middlebox's and the
/// agent's entries are shown only when the picture has their rows.
const LEGEND: &str = concat!(
    r##"<span><svg width="24" height="12"><rect class="seg-queued" y="1" width="20" height="10"/></svg>queued in the browser (or connecting)</span>"##,
    r##"<span><svg width="24" height="12"><rect class="seg-waiting" y="1" width="20" height="10"/></svg>at the server, waiting for the first byte</span>"##,
    r##"<span><svg width="30" height="12"><rect class="seg-downloading" y="1" width="20" height="10"/><use href="#cap-done" x="20"/></svg>downloading, then ✓ done</span>"##,
    r##"<span><svg width="30" height="12"><rect class="seg-aborted" y="1" width="20" height="10"/><use href="#cap-cross" x="20"/></svg>aborted by the page</span>"##,
    r##"<span><svg width="30" height="12"><rect class="seg-failed" y="1" width="20" height="10"/><use href="#cap-failed" x="20"/></svg>failed</span>"##,
    r##"<span><svg width="30" height="12"><rect class="seg-dropped" y="1" width="20" height="10"/><use href="#cap-cross" x="20"/></svg>attempt dropped unanswered, then re-sent</span>"##,
    r##"<span><svg width="24" height="12"><rect class="seg-server" y="1" width="20" height="10"/></svg>request on its connection</span>"##,
    r##"<span><svg width="24" height="12"><rect class="seg-conn" y="5" width="20" height="3"/></svg>connection open</span>"##,
    r##"<span><svg width="14" height="12"><use href="#cap-server" x="6"/></svg>closed by the server</span>"##,
    r##"<span><svg width="14" height="12"><use href="#cap-browser" x="6"/></svg>closed by the browser</span>"##,
    r##"<span><svg width="14" height="12"><use href="#cap-cross" x="2"/></svg>reset (RST) or error</span>"##,
);

/// The middlebox lane's legend entries.
const LEGEND_MIDDLEBOX: &str = concat!(
    r##"<span class="mb-legend"><svg width="24" height="12"><rect class="mb-alive" y="4" width="20" height="5"/></svg>middlebox mapping, idle timer running</span>"##,
    r##"<span class="mb-legend"><svg width="24" height="12"><rect class="mb-expired" y="4" width="20" height="5"/></svg>mapping expired: forgotten</span>"##,
    r##"<span class="mb-legend"><svg width="10" height="12"><path class="mb-data" d="M4 1v5"/></svg>refreshed by data (above: from the browser, below: from the server)</span>"##,
    r##"<span class="mb-legend"><svg width="10" height="12"><path class="mb-probe" d="M4 1l3 2.5l-3 2.5l-3 -2.5z"/></svg>refreshed by a TCP keep-alive probe</span>"##,
    r##"<span class="mb-legend"><svg width="10" height="12"><path class="mb-wprobe" d="M2 1h5v5h-5z"/></svg>refreshed by a window probe (a window full: not keep-alive)</span>"##,
    r##"<span class="mb-legend"><svg width="10" height="12"><path class="mb-drop" d="M2 1l5 5m0 -5l-5 5"/></svg>dropped after expiry</span>"##,
    r##"<span class="mb-legend"><svg width="10" height="12"><path class="mb-rst" d="M1 6h6l-3 -5z"/></svg>RST sent (pointing to whom)</span>"##,
);

/// The agent rows' legend entry.
const LEGEND_AGENT: &str = r##"<span>A rows: the Node agent's requests (hatched: in the agent's queue); ticks on its sockets: Node's socket events</span>"##;

/// What the drawing's `<defs>` holds: patterns and the columns' clip
/// rectangles (`col-l` is [`LABELS`] wide, `col-r` the last [`NOTES`] of
/// [`WIDTH`]).
const DEFS: &str = concat!(
    r##"<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect class="p-q" width="6" height="6"/><line class="p-qi" x2="0" y2="6" stroke-width="2.5"/></pattern>"##,
    r##"<pattern id="dots" width="5" height="5" patternUnits="userSpaceOnUse"><rect class="p-d" width="5" height="5"/><circle class="p-di" cx="2.5" cy="2.5" r="1.2"/></pattern>"##,
    r##"<pattern id="xhatch" width="6" height="6" patternUnits="userSpaceOnUse"><rect class="p-b" width="6" height="6"/><path class="p-bi" d="M0 0l6 6M6 0l-6 6" stroke-width="1.2"/></pattern>"##,
    r##"<pattern id="mbx" width="5" height="5" patternUnits="userSpaceOnUse" patternTransform="rotate(-45)"><rect class="p-m" width="5" height="5"/><line class="p-bi" x2="0" y2="5" stroke-width="1.5"/></pattern>"##,
    r##"<pattern id="stripes" width="4" height="4" patternUnits="userSpaceOnUse"><rect class="p-b" width="4" height="4"/><path class="p-bi" d="M0 1h4" stroke-width="1.5"/></pattern>"##,
    // End marks, each in a 12-unit box whose left edge is the bar's end.
    r##"<path id="cap-done" class="cap" d="M2 0v12"/>"##,
    r##"<path id="cap-cross" class="cap bad" d="M1 3l6 6m0 -6l-6 6"/>"##,
    r##"<path id="cap-failed" class="cap bad fill" d="M1 2l7 4l-7 4z"/>"##,
    r##"<path id="cap-server" class="cap fill" d="M-3 3h6v6h-6z"/>"##,
    r##"<path id="cap-browser" class="cap" d="M-3 6a3 3 0 1 0 6 0a3 3 0 1 0 -6 0"/>"##,
    r##"<clipPath id="col-l"><rect width="166" height="100000"/></clipPath>"##,
    r##"<clipPath id="col-r"><rect x="820" width="380" height="100000"/></clipPath>"##,
);

/// What is not drawn as a lane: this page's events WebSocket, and other
/// clients' connections from the same host.
fn aside(g: &LaneGroups) -> String {
    let mut words: Vec<String> = g
        .monitors
        .iter()
        .map(|l| {
            format!(
                "{}: this page's live WebSocket, which does not take one of the six HTTP slots ({})",
                l.conn,
                l.closed.as_ref().map_or("open", |c| c.reason.label())
            )
        })
        .collect();
    if g.foreign > 0 {
        words.push(format!(
            "{} from your host carried none of this page's requests (another tab, browser or tool): not drawn",
            count(g.foreign, "connection")
        ));
    }
    if g.tls_refused > 0 {
        words.push(format!(
            "{} from your host ended in a failed TLS handshake, before any request: a browser \
             that refused the lab's certificate (this page's own, if its HTTPS requests \
             failed): not drawn",
            count(g.tls_refused, "connection")
        ));
    }
    words.join(". ")
}

/// What the timeline is drawn from.
#[derive(Clone)]
pub struct Input {
    /// The run shown.
    pub run: Option<Rc<Run>>,
    /// The page's connections, sorted for this run.
    pub groups: LaneGroups,
    /// Server clock ⇄ page clock.
    pub clock: ClockSync,
    /// The session's newest Node-style agent run.
    pub agent: Option<Rc<AgentView>>,
    /// Its sockets' server connections (socket, connection).
    pub agent_links: Vec<(u32, ConnId)>,
    /// Draw every row, also those out of view (for an SVG export).
    pub whole: bool,
}

/// Shared parts compare by identity: an unchanged run or agent run keeps
/// its pointer.
impl PartialEq for Input {
    fn eq(&self, other: &Self) -> bool {
        super::same_option(&self.run, &other.run)
            && super::same_option(&self.agent, &other.agent)
            && self.agent_links == other.agent_links
            && self.groups == other.groups
            && self.clock == other.clock
            && self.whole == other.whole
    }
}

/// The timeline's own state: what the learner looks at, and the clock.
#[derive(Debug, Default)]
struct Looking {
    /// The window zoomed or panned to; `None` fits the run.
    zoom: Option<(f64, f64)>,
    /// Where "now" ran past the right edge of a live view (plus a
    /// millisecond): the view grows to it.
    grown: f64,
    /// The row pointed at or tabbed to.
    focus: Option<Focus>,
    /// What of the drawing is in its scrolling box, in blocks of ten rows;
    /// `None` while the box shows its top.
    in_view: Option<InView>,
    /// "Now": as the clock last ticked, or as the last drawing was made.
    now: f64,
}

/// The drawing's slots (`svg#timeline`'s children, each patched on its
/// own, so that one that grows does not shift the others): its style and
/// patterns, the "now" line, the ticks, then the sections, their rows apart.
/// The section's slot holding a flooded run's outline ([`light`]).
const LIGHT_SLOT: usize = 3;

mod slot {
    pub const NOW: usize = 1;
    pub const TICKS: usize = 2;
    pub const BROWSER: usize = 3;
    pub const REQUESTS: usize = 4;
    pub const MIDDLEBOX: usize = 5;
    pub const SERVER: usize = 6;
    pub const LANES: usize = 7;
    pub const PAGE_LOAD: usize = 8;
    pub const PAGE_LOAD_LANES: usize = 9;
    pub const EARLIER: usize = 10;
    pub const AGENT: usize = 11;
    pub const AGENT_ROWS: usize = 12;
    pub const SOCKETS: usize = 13;
    pub const SOCKET_ROWS: usize = 14;
    /// How many.
    pub const ALL: usize = 15;
}

/// A drawing of the timeline, and what the listeners and the clock need.
struct Picture {
    /// The section's children: the toolbar and legend, the empty drawing's
    /// words, then the scrolling box and the paragraphs under it.
    section: Vec<Vec<Node>>,
    /// The rows of each drawing slot with what they were drawn from (none
    /// in the slots that hold no rows), for the next drawing to keep those
    /// that did not change.
    rows: Vec<Vec<(Row, Node)>>,
    /// The time axis.
    scale: Scale,
    /// The drawing's height.
    height: f64,
    /// A run is going on: the clock ticks fast.
    live: bool,
    /// There is a run to draw; the drawing is empty otherwise.
    present: bool,
}

/// The clip rectangle for segments still in progress, and the "now" line,
/// at `now`.
fn now_line(scale: &Scale, height: f64, now: f64) -> Vec<Node> {
    let x = crate::decimal::fixed(scale.x(now), 1);
    vec![
        el("clipPath")
            .attr("id", "until-now")
            .kids(vec![
                el("rect")
                    .attr("x", "0")
                    .attr("y", "0")
                    .attr("width", x.clone())
                    .num("height", height)
                    .done(),
            ])
            .done(),
        el("line")
            .attr("class", "now")
            .attr("x1", x.clone())
            .attr("x2", x)
            .num("y1", AXIS)
            .num("y2", height)
            .done(),
    ]
}

/// `rows` as drawn in slot `slot`: a row drawn from the same inputs as the
/// one in its place last time keeps that one's node, which the patcher
/// skips.
fn keep(memo: &[Vec<(Row, Node)>], slot: usize, rows: Vec<Row>) -> Vec<(Row, Node)> {
    rows.into_iter()
        .enumerate()
        .map(|(k, row)| {
            let node = match memo.get(slot).and_then(|m| m.get(k)) {
                Some((was, node)) if *was == row => node.clone(),
                _ => row.draw(),
            };
            (row, node)
        })
        .collect()
}

/// A toolbar button.
fn button(label: Option<&'static str>, text: &'static str) -> Node {
    el("button").attr_if("aria-label", label).text(text).done()
}

/// The keys (and the buttons, in the toolbar's order) that zoom and pan.
const ZOOM_KEYS: [&str; 5] = ["+", "-", "ArrowLeft", "ArrowRight", "0"];

/// The window `key` moves `scale` to: `Some(None)` fits the run, `None`
/// is a key that does nothing here.
fn zoom_for(scale: Scale, key: &str) -> Option<Option<(f64, f64)>> {
    let s = match key {
        "+" | "=" => scale.zoomed(0.5),
        "-" => scale.zoomed(2.0),
        "ArrowLeft" => scale.panned(-0.25),
        "ArrowRight" => scale.panned(0.25),
        "0" => return Some(None),
        _ => return None,
    };
    Some(Some((s.start_ms, s.end_ms)))
}

/// The timeline of `input` as `v` looks at it; `memo` is the last drawing's
/// rows.
fn picture(input: &Input, v: &Looking, memo: &[Vec<(Row, Node)>]) -> Picture {
    let g = &input.groups;
    let clock = input.clock;
    let now = v
        .grown
        .max(input.run.as_ref().map_or(0.0, |r| r.started_ms));
    let drawn: Vec<&Lane> = g.run.iter().chain(&g.page_load).map(|l| &**l).collect();
    let agent_lanes: Vec<&Lane> = g.agent.iter().map(|l| &**l).collect();
    let browser_extent = input
        .run
        .as_ref()
        .map(|r| run_extent(r, &drawn, &clock, now));
    let agent_extent = input
        .agent
        .as_ref()
        .and_then(|a| agent_extent(a, &agent_lanes, &clock, now.max(v.grown)));
    let (show_browser, show_agent) = shown(browser_extent, agent_extent);
    let agent = input.agent.as_ref().filter(|_| show_agent);
    let lane_of = |socket: u32| {
        let conn = input.agent_links.iter().find(|(s, _)| *s == socket)?.1;
        g.agent.iter().find(|l| l.conn == conn)
    };
    // There is something to draw (what is in view is measured again when
    // this changes: the drawing comes and goes with the run shown).
    let present = (input.run.is_some() && show_browser) || agent.is_some();
    // Before anything is fired the drawing is there, empty: its style sheet
    // and patterns are created with the page, not in the frame the first
    // burst starts (a new style sheet restyles the whole page: bench
    // figure 3's worst event latency at lesson scale).
    let idle = !present;
    let empty = Rc::new(Run::empty());
    let run = match &input.run {
        Some(run) if show_browser => run,
        _ => &empty,
    };
    let live = run.is_live() || agent.is_some_and(|a| a.is_live());
    let extent = [
        browser_extent.filter(|_| show_browser),
        agent_extent.filter(|_| show_agent),
    ]
    .into_iter()
    .flatten()
    .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
    .unwrap_or((run.started_ms, run.started_ms));
    let origin = extent.0;
    let (fit_start, fit_end) = window(extent.0, extent.1);
    let (start_ms, end_ms) = v.zoom.unwrap_or((fit_start, fit_end));
    let scale = Scale {
        start_ms,
        end_ms,
        left: LABELS,
        right: WIDTH - NOTES - 12.0,
    };
    let highlight = match &v.focus {
        Some(Focus::Request(i)) => run.requests.get(*i).and_then(|r| r.conn),
        Some(Focus::Lane(c)) => Some(*c),
        None => None,
    };

    // Vertical layout: the browser's rows, this page's lanes, the page
    // load's lanes apart, then one line for what is not drawn.
    let mut y = AXIS;
    let browser_title = y + 12.0;
    let rows_top = y + HEAD;
    // The middlebox's mappings, between the browser and the server.
    let mb_title = rows_top + run.requests.len() as f64 * ROW + 6.0 + 12.0;
    let mb_top = mb_title - 12.0 + HEAD;
    let mb_height = if g.middlebox.is_empty() {
        0.0
    } else {
        HEAD + g.middlebox.len() as f64 * LANE + 4.0
    };
    let server_title = mb_title + mb_height;
    let lanes_top = server_title - 12.0 + HEAD;
    if show_browser {
        y = lanes_top + g.run.len() as f64 * LANE;
    }
    let page_load_title = y + 16.0;
    let page_load = if show_browser { &g.page_load[..] } else { &[] };
    if !page_load.is_empty() {
        y += HEAD + 4.0;
    }
    let page_load_top = y;
    y += page_load.len() as f64 * LANE;
    let earlier_line = y + 14.0;
    let earlier = if show_browser { g.earlier } else { 0 };
    if earlier > 0 {
        y += HEAD;
    }
    // The agent's requests, then each of its sockets right above the
    // server's lane of the same connection.
    let agent_title = y + 12.0;
    let agent_rows_top = y + HEAD;
    let sockets_title =
        agent_rows_top + agent.map_or(0, |a| a.requests.len()) as f64 * ROW + 6.0 + 12.0;
    let mut socket_rows: Vec<(f64, Rc<crate::agent::AgentSocket>, Option<Rc<Lane>>)> = Vec::new();
    if let Some(a) = agent {
        y = sockets_title - 12.0 + HEAD;
        for socket in &a.sockets {
            let lane = lane_of(socket.n).cloned();
            socket_rows.push((y, socket.clone(), lane.clone()));
            y += ROW + lane.map_or(2.0, |_| LANE + 4.0);
        }
    }
    let height = y + 6.0;

    // A long run's rows off screen are not drawn (its height is kept): only
    // those in view of the scrolling box and a margin, in blocks of ten rows.
    let drawn_rows = if input.whole {
        0..run.requests.len()
    } else {
        rows_to_draw(run.requests.len(), rows_top, ROW, v.in_view)
    };
    let row = |item, y, highlighted| Row {
        item,
        y,
        scale,
        clock,
        highlighted,
    };
    let lane = |l: &Rc<Lane>, y: f64| row(Item::Lane(l.clone()), y, highlight == Some(l.conn));
    let mut rows: Vec<Vec<Row>> = (0..slot::ALL).map(|_| Vec::new()).collect();
    let mut slots: Vec<Vec<Node>> = (0..slot::ALL).map(|_| Vec::new()).collect();
    slots[0] = vec![
        el("style").text(palette::CSS).done(),
        el("defs").markup(vec![DEFS]).done(),
    ];
    slots[slot::NOW] = now_line(&scale, height, v.now);
    slots[slot::TICKS] = scale
        .ticks(origin, 8)
        .into_iter()
        .filter(|(ms, _)| scale.x(*ms) < scale.right - 30.0)
        .map(|(ms, text)| {
            let x = px(scale.x(ms));
            el("g")
                .attr("class", "tick")
                .kids(vec![
                    el("line")
                        .attr("x1", x.clone())
                        .attr("x2", x.clone())
                        .num("y1", AXIS)
                        .num("y2", height)
                        .done(),
                    el("text")
                        .attr("x", x)
                        .attr("y", "16")
                        .attr("dx", "3")
                        .text(text)
                        .done(),
                ])
                .done()
        })
        .collect();
    if show_browser {
        slots[slot::BROWSER] = vec![
            title(
                "section",
                browser_title,
                format!(
                    "BROWSER: {} of {}",
                    count(run.requests.len(), "request"),
                    run.title()
                ),
            ),
            column_text(
                "section",
                "CONNECTION · RESPONSE HEADERS",
                browser_title,
                true,
            ),
        ];
        // A lesson's runs drawn as one: each request named by its tag, and
        // a line where each run after the first begins.
        let by_tag = run.is_joined();
        let mut first = 0;
        for part in run.parts() {
            if first > 0 {
                let y = rows_top + first as f64 * ROW - 1.5;
                slots[slot::BROWSER].push(
                    el("line")
                        .attr("class", "run-start")
                        .attr("x1", "0")
                        .num("x2", WIDTH)
                        .num("y1", y)
                        .num("y2", y)
                        .done(),
                );
            }
            first += part.requests.len();
        }
        // By position: the next run's rows patch these elements instead of
        // creating 200 new ones.
        for i in drawn_rows {
            let Some(r) = run.requests.get(i) else { break };
            let highlighted = highlight.is_some()
                && (r.conn == highlight || r.attempts.iter().any(|a| Some(a.conn) == highlight));
            rows[slot::REQUESTS].push(row(
                Item::Request(i, r.clone(), g.uses.get(i).copied().flatten(), by_tag),
                rows_top + i as f64 * ROW,
                highlighted,
            ));
        }
        if !g.middlebox.is_empty() {
            let mut mb = vec![
                title(
                    "section",
                    mb_title,
                    format!("MIDDLEBOX: {}", count(g.middlebox.len(), "mapping")),
                ),
                column_text("section", "WHAT THE MIDDLEBOX DID", mb_title, true),
            ];
            for (i, m) in g.middlebox.iter().enumerate() {
                let highlighted = highlight.is_some() && m.conn == highlight;
                let y = mb_top + i as f64 * LANE;
                mb.push(middlebox_row::mapping_row(
                    m,
                    y,
                    &scale,
                    &clock,
                    highlighted,
                ));
            }
            slots[slot::MIDDLEBOX] = mb;
        }
        slots[slot::SERVER] = vec![title(
            "section",
            server_title,
            format!("SERVER: {} of this page", count(g.run.len(), "connection")),
        )];
        for (i, l) in g.run.iter().enumerate() {
            rows[slot::LANES].push(lane(l, lanes_top + i as f64 * LANE));
        }
    }
    if !page_load.is_empty() {
        slots[slot::PAGE_LOAD] = vec![
            title(
                "section",
                page_load_title,
                format!("PAGE LOAD: {}", count(page_load.len(), "connection")),
            ),
            column_text(
                "note",
                "the page's files, and Chromium's spare",
                page_load_title,
                true,
            ),
        ];
        for (i, l) in page_load.iter().enumerate() {
            rows[slot::PAGE_LOAD_LANES].push(lane(l, page_load_top + i as f64 * LANE));
        }
    }
    if earlier > 0 {
        slots[slot::EARLIER] = vec![title(
            "note",
            earlier_line,
            format!(
                "+ {} of this page, closed before this run or opened after it: not drawn",
                count(earlier, "earlier connection")
            ),
        )];
    }
    if let Some(a) = agent {
        slots[slot::AGENT] = vec![
            title(
                "section",
                agent_title,
                format!(
                    "NODE AGENT: {} of agent run {}",
                    count(a.requests.len(), "request"),
                    a.run
                ),
            ),
            column_text("section", "SOCKET · CONNECTION HEADER", agent_title, true),
        ];
        for (i, r) in a.requests.iter().enumerate() {
            let conn = r.socket.and_then(|(n, _)| lane_of(n)).map(|l| l.conn);
            rows[slot::AGENT_ROWS].push(row(
                Item::AgentRequest(r.clone(), conn),
                agent_rows_top + i as f64 * ROW,
                highlight.is_some() && conn == highlight,
            ));
        }
        slots[slot::SOCKETS] = vec![
            title(
                "section",
                sockets_title,
                format!(
                    "AGENT SOCKETS ({}) ABOVE THE SERVER'S LANES",
                    a.sockets.len()
                ),
            ),
            column_text(
                "section",
                "NODE'S SOCKET EVENTS · SERVER'S STATE",
                sockets_title,
                true,
            ),
        ];
        for (y, s, l) in &socket_rows {
            let conn = l.as_ref().map(|l| l.conn);
            rows[slot::SOCKET_ROWS].push(row(
                Item::AgentSocket(s.clone(), conn),
                *y,
                highlight.is_some() && conn == highlight,
            ));
            if let Some(l) = l {
                rows[slot::SOCKET_ROWS].push(lane(l, *y + ROW + 1.0));
            }
        }
    }
    // Each row keeps its node if drawn from the same inputs as last time.
    let rows: Vec<Vec<(Row, Node)>> = rows
        .into_iter()
        .enumerate()
        .map(|(slot, rows)| keep(memo, slot, rows))
        .collect();
    for (slot, drawn) in slots.iter_mut().zip(&rows) {
        if !drawn.is_empty() {
            *slot = drawn.iter().map(|(_, node)| node.clone()).collect();
        }
    }

    let uncertainty = match clock.uncertainty_ms() {
        Some(u) => format!(
            "Server times on this page's clock to ±{} ms.",
            crate::decimal::fixed(u, 2)
        ),
        None => "Waiting for the clock sync with the server…".into(),
    };
    let heading = if idle {
        "Timeline".into()
    } else if show_browser {
        format!("Timeline of {}", run.title())
    } else {
        "Timeline of the agent".into()
    };
    let toolbar = el("div")
        .attr("class", "zoom")
        .attr("role", "toolbar")
        .attr("aria-label", "Zoom and pan")
        .kids(vec![
            el("h2").text(heading).done(),
            button(Some("Zoom in"), "+"),
            button(Some("Zoom out"), "−"),
            button(Some("Earlier"), "◀"),
            button(Some("Later"), "▶"),
            button(None, "fit"),
            el("span").attr("class", "source").text(uncertainty).done(),
        ])
        .done();
    let mut legend = vec![LEGEND];
    if !g.middlebox.is_empty() {
        legend.push(LEGEND_MIDDLEBOX);
    }
    if agent.is_some() {
        legend.push(LEGEND_AGENT);
    }
    let legend = el("div")
        .attr("class", "legend")
        .attr("data-middlebox", (!g.middlebox.is_empty()).to_string())
        .markup(legend)
        .done();
    let empty_words = idle.then(|| {
        el("p")
            .attr("class", "empty")
            .text(
                "When requests go out (a burst, or a lesson's run), they and the server's connections \
                 appear here, on one clock.",
            )
            .done()
    });
    let mut svg = el("svg")
        .attr("id", "timeline")
        .attr("xmlns", "http://www.w3.org/2000/svg")
        .attr("viewBox", format!("0 0 {} {}", px(WIDTH), px(height)))
        .attr("width", "100%")
        .attr("role", "list")
        .attr("aria-label", "Requests and connections on one time axis");
    for kids in slots {
        svg = svg.kids(kids);
    }
    let scroll = el("div")
        .attr("class", "scroll")
        .attr("tabindex", "0")
        .attr("aria-label", "Timeline: + and - zoom, arrows pan, 0 fits")
        .kids(vec![svg.done()])
        .done();
    let details = el("p")
        .attr("class", "details")
        .attr("aria-live", "polite")
        .text(details(&v.focus, run, g, &clock))
        .done();
    let aside = el("p")
        .attr("class", "aside")
        .attr("data-foreign", g.foreign.to_string())
        .text(aside(g))
        .done();
    Picture {
        section: vec![
            vec![toolbar, legend],
            empty_words.into_iter().collect(),
            vec![scroll, details, aside],
            // The outline of a flooded run ([`light`]), drawn by the island
            // in this slot: none in a full drawing.
            Vec::new(),
        ],
        rows,
        scale,
        height,
        live,
        present,
    }
}

#[cfg(test)]
mod tests {
    use protocol::{CloseReason, RequestId, RequestOutcome};

    use super::*;
    use crate::settings::Credentials;
    use crate::state::{Attempt, BrowserRequest, KeepAliveHeaders, LaneClose, Phase, PoolKey};
    use crate::tally::ConnUse;

    #[test]
    fn a_resend_is_told_silent_only_when_it_did_not_fail() {
        let pool = PoolKey {
            origin: "http://h".into(),
            credentials: Credentials::Default,
        };
        let attempt = |conn: u64| Attempt {
            conn: ConnId(conn),
            request: RequestId(conn),
            seq: 1,
            conn_opened_us: None,
            start_us: conn,
            response_us: None,
            end_us: None,
            outcome: Some(RequestOutcome::Aborted),
            dropped: None,
        };
        let mut r = BrowserRequest::new("b1-1".into(), "/api/hang?id=b1-1".into(), pool);
        r.attempts = vec![attempt(1), attempt(2)];
        let told = |r: &BrowserRequest| {
            let mut run = Run::empty();
            run.requests = vec![std::rc::Rc::new(r.clone())];
            details::details(
                &Some(Focus::Request(0)),
                &run,
                &crate::timeline::LaneGroups::default(),
                &ClockSync::default(),
            )
        };
        r.phase = Phase::Failed;
        let words = told(&r);
        assert!(
            words.contains("re-sent it, and it failed all the same"),
            "{words}"
        );
        assert!(!words.contains("silently"), "{words}");
        r.phase = Phase::Done;
        assert!(told(&r).contains("re-sent it silently"));
    }

    #[test]
    fn a_request_of_a_lessons_joined_runs_is_named_by_its_tag_alone() {
        let pool = PoolKey {
            origin: "http://h".into(),
            credentials: Credentials::Default,
        };
        let run = |id: u32, n: usize| {
            let mut run = Run::empty();
            run.id = id;
            run.requests = (1..=n)
                .map(|k| {
                    let tag = format!("b{id}-{k}");
                    let url = format!("/api/fast?id={tag}");
                    std::rc::Rc::new(BrowserRequest::new(tag, url, pool.clone()))
                })
                .collect();
            std::rc::Rc::new(run)
        };
        let told = |run: &Run, i: usize| {
            details::details(
                &Some(Focus::Request(i)),
                run,
                &crate::timeline::LaneGroups::default(),
                &ClockSync::default(),
            )
        };
        assert!(told(&run(1, 2), 1).starts_with("#2 (b1-2) is "));
        let joined = Run::joined(&[run(1, 2), run(2, 3)]).unwrap();
        let words = told(&joined, 3);
        assert!(words.starts_with("b2-2 is "), "{words}");
        assert!(
            !words.contains('#'),
            "its place in the joined list is no number: {words}"
        );
    }

    #[test]
    fn each_request_shows_its_connections_and_its_keep_alive_headers() {
        let pool = PoolKey {
            origin: "http://h".into(),
            credentials: Credentials::Default,
        };
        let attempt = |conn: u64, request: u64| Attempt {
            conn: ConnId(conn),
            request: RequestId(request),
            seq: 1,
            conn_opened_us: None,
            start_us: request,
            response_us: None,
            end_us: None,
            outcome: None,
            dropped: None,
        };
        let mut r = BrowserRequest::new("b1-2".into(), "/api/fast?id=b1-2".into(), pool);
        r.attempts = vec![
            Attempt {
                outcome: Some(RequestOutcome::Aborted),
                ..attempt(1, 1)
            },
            attempt(2, 2),
        ];
        (r.conn, r.request) = (Some(ConnId(2)), Some(RequestId(2)));
        r.keep_alive = KeepAliveHeaders::parse(None, Some("timeout=5, max=99"));
        let words = request_row::connection_words(&r, Some(ConnUse::Spare));
        assert_eq!(words, "c1 ✕ → c2 spare · Keep-Alive: timeout=5, max=99");
        assert!(
            words.chars().count() <= chars(NOTES - 8.0),
            "fits its column"
        );
        r.keep_alive = KeepAliveHeaders::parse(Some("close"), None);
        assert!(request_row::connection_words(&r, None).ends_with("· Connection: close"));
    }

    #[test]
    fn lane_states_are_words_with_counts_pluralised() {
        let mut lane = Lane {
            conn: ConnId(4),
            peer: "127.0.0.1:1".into(),
            local_addr: "127.0.0.1:8080".into(),
            local_port: 8080,
            session: None,
            opened_us: 0,
            upgraded: None,
            protocol: None,
            secured_us: None,
            requests: vec![],
            requests_total: 1,
            closed: None,
        };
        assert_eq!(lane_row::lane_status(&lane), "open, idle · 1 request");
        lane.requests_total = 2;
        lane.closed = Some(LaneClose {
            at_us: 1,
            reason: CloseReason::IdleTimeout,
            bytes_in: 0,
            bytes_out: 0,
        });
        assert_eq!(lane_row::lane_status(&lane), "✕ idle timeout · 2 requests");
        // Over HTTP/2 one connection carries many streams at once.
        lane.closed = None;
        lane.protocol = Some("h2".into());
        lane.requests_total = 12;
        let request = |n: u64| crate::state::LaneRequest {
            tag: Some(format!("b1-{n}")),
            request: protocol::RequestId(n),
            seq: n as u32,
            method: "GET".into(),
            target: "/api/hang".into(),
            started_us: 0,
            response_us: None,
            finished: None,
            status: None,
            whose: crate::state::Whose::Other,
        };
        lane.requests = (1..=12).map(request).collect();
        assert_eq!(
            lane_row::lane_status(&lane),
            "HTTP/2 · carrying 12 streams · 12 streams"
        );
        lane.protocol = Some("http/1.1".into());
        lane.requests.truncate(1);
        lane.requests_total = 1;
        assert_eq!(
            lane_row::lane_status(&lane),
            "TLS · carrying b1-1 · 1 request"
        );
    }

    #[test]
    fn words_are_cut_to_their_column_and_the_clips_match_the_columns() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
        assert!(DEFS.contains(&format!(
            r#"<clipPath id="col-l"><rect width="{}""#,
            LABELS - 4.0
        )));
        assert!(DEFS.contains(&format!(
            r#"<clipPath id="col-r"><rect x="{}" width="{}""#,
            WIDTH - NOTES,
            NOTES
        )));
        for mark in [
            Cap::Done,
            Cap::Cross,
            Cap::Failed,
            Cap::ByServer,
            Cap::ByBrowser,
        ] {
            let (id, class, d) = mark.shape();
            assert!(
                DEFS.contains(&format!(r#"<path id="{id}" class="{class}" d="{d}"/>"#)),
                "{id}: the legend's copy is the mark the rows draw"
            );
            assert!(LEGEND.contains(&format!("#{id}")), "{id} in the legend");
        }
        for class in [
            "seg-queued",
            "seg-waiting",
            "seg-downloading",
            "seg-aborted",
            "seg-failed",
            "seg-dropped",
            "seg-server",
            "seg-conn",
        ] {
            assert!(LEGEND.contains(class), "{class} in the legend");
        }
    }
}
