//! Both sides on one clock: the browser's requests above, the server's TCP
//! connections below, one shared time axis, a live "now" line.
//!
//! Rows are components with value props, so a frame re-renders only the rows
//! whose request or lane changed. Segments still in progress are drawn to
//! the right edge and clipped by one rectangle that follows "now": a live
//! frame moves that rectangle instead of re-rendering every row.

use std::rc::Rc;

use gloo_timers::callback::Interval;
use protocol::ConnId;
use yew::prelude::*;

use crate::clock::ClockSync;
use crate::services::fetch::now_ms;
use crate::state::{BrowserRequest, Lane, Phase, Run};
use crate::timeline::{Kind, Scale, Segment, fit, format_ms, lane_segments, request_segments};

/// Drawing width (the SVG scales to the page).
const WIDTH: f64 = 1200.0;
/// Label column.
const LABELS: f64 = 230.0;
/// Height of a request row.
const ROW: f64 = 16.0;
/// Height of a lane.
const LANE: f64 = 20.0;
/// Top axis.
const AXIS: f64 = 28.0;

/// What the pointer or keyboard focus is on.
#[derive(Debug, Clone, PartialEq)]
pub enum Focus {
    /// Request `index` of the run.
    Request(usize),
    /// A connection lane.
    Lane(ConnId),
}

/// Whole pixels: integers are cheaper to format and to set than `{:.1}`
/// floats, and a live frame can set hundreds of them.
fn px(v: f64) -> String {
    (v.round() as i64).to_string()
}

/// One segment. No tooltip per segment: the row's label and the details
/// panel say what it is, and a `<title>` per rect doubles the nodes a frame
/// has to patch.
fn rect(s: &Segment, scale: &Scale, y: f64, h: f64) -> Html {
    let x0 = scale.x(s.from_ms);
    let x1 = if s.open {
        scale.right
    } else {
        scale.x(s.to_ms)
    };
    let width = (x1 - x0).max(2.0);
    let clip = s.open.then_some("url(#until-now)");
    html! {
        <rect class={s.kind.class()} x={px(x0)} y={px(y)} width={px(width)} height={px(h)} clip-path={clip} />
    }
}

#[derive(Properties)]
struct RequestRowProps {
    index: usize,
    request: Rc<BrowserRequest>,
    y: f64,
    scale: Scale,
    clock: ClockSync,
    highlighted: bool,
    on_focus: Callback<Option<Focus>>,
}

fn connection_words(r: &BrowserRequest) -> String {
    match (r.conn, r.seq) {
        (Some(c), Some(1)) => format!("{c} new"),
        (Some(c), Some(seq)) => format!("{c} reused (request {seq} on it)"),
        (Some(c), None) => c.to_string(),
        (None, _) => String::new(),
    }
}

#[component]
fn RequestRow(props: &RequestRowProps) -> Html {
    let r = &props.request;
    let y = props.y;
    let segments = request_segments(r, &props.clock);
    let end_x = segments.last().map_or(props.scale.left, |s| {
        if s.open {
            props.scale.left
        } else {
            props.scale.x(s.to_ms)
        }
    });
    let mark = match r.phase {
        Phase::Done => "✓",
        Phase::Aborted => "✕ aborted",
        Phase::Failed => "! failed",
        _ => "",
    };
    let resent = r
        .resent()
        .then(|| format!(" · re-sent ×{}", r.server_sightings));
    let focus = Some(Focus::Request(props.index));
    let enter = props.on_focus.reform({
        let focus = focus.clone();
        move |_: MouseEvent| focus.clone()
    });
    let onfocus = props.on_focus.reform(move |_: FocusEvent| focus.clone());
    let label = format!(
        "request {} ({}): {}{}",
        props.index + 1,
        r.tag,
        r.phase.label(),
        r.conn.map(|c| format!(", on {c}")).unwrap_or_default()
    );
    html! {
        <g class={classes!("req", r.phase.name(), props.highlighted.then_some("hl"), r.resent().then_some("resent"))}
            data-tag={r.tag.clone()} data-phase={r.phase.name()}
            data-conn={r.conn.map(|c| c.0.to_string())}
            tabindex="0" role="listitem" aria-label={label}
            onmouseenter={enter} {onfocus}>
            <rect class="row-bg" x="0" y={format!("{:.1}", y - 1.0)} width={WIDTH.to_string()} height={ROW.to_string()} />
            <text class="label" x="6" y={format!("{:.1}", y + ROW - 5.0)}>
                { format!("#{:<3} {}", props.index + 1, r.phase.label()) }
            </text>
            // Always three slots (queued, waiting, downloading), so a row
            // patches widths instead of creating and removing elements.
            { for (0..3).map(|slot| match segments.get(slot) {
                Some(s) => rect(s, &props.scale, y + 2.0, ROW - 5.0),
                None => html! { <rect class="seg-empty" x="0" y="0" width="0" height="0" /> },
            }) }
            <text class="note" x={format!("{:.1}", (end_x + 4.0).min(WIDTH - 150.0))} y={format!("{:.1}", y + ROW - 5.0)}>
                { format!("{} {mark}{}", connection_words(r), resent.unwrap_or_default()) }
            </text>
        </g>
    }
}

/// One SVG path of rectangles for the segments that are (or are not) open.
fn lane_path(segments: &[Segment], scale: &Scale, y: f64, h: f64, open: bool) -> String {
    use std::fmt::Write;
    let mut d = String::new();
    for s in segments.iter().filter(|s| s.open == open) {
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

#[derive(Properties)]
struct LaneRowProps {
    lane: Rc<Lane>,
    y: f64,
    scale: Scale,
    clock: ClockSync,
    highlighted: bool,
    on_focus: Callback<Option<Focus>>,
}

#[component]
fn LaneRow(props: &LaneRowProps) -> Html {
    let l = &props.lane;
    let y = props.y;
    let segments = lane_segments(l, &props.clock);
    let (life, requests) = segments
        .split_first()
        .map_or((None, &[][..]), |(a, b)| (Some(a), b));
    let status = match &l.closed {
        Some(c) => format!("✕ {}", c.reason.label()),
        None if l.in_flight() > 0 => "busy".into(),
        None => "open, idle".into(),
    };
    let end_x = life.map_or(props.scale.left, |s| {
        if s.open {
            props.scale.right - 150.0
        } else {
            props.scale.x(s.to_ms)
        }
    });
    let focus = Some(Focus::Lane(l.conn));
    let enter = props.on_focus.reform({
        let focus = focus.clone();
        move |_: MouseEvent| focus.clone()
    });
    let onfocus = props.on_focus.reform(move |_: FocusEvent| focus.clone());
    html! {
        <g class={classes!("lane", l.closed.is_some().then_some("closed"), props.highlighted.then_some("hl"))}
            data-conn={l.conn.0.to_string()}
            data-reason={l.closed.as_ref().map(|c| c.reason.kind())}
            data-in-flight={l.in_flight().to_string()}
            tabindex="0" role="listitem"
            aria-label={format!("connection {} from {}: {} requests, {status}", l.conn, l.peer, l.requests_total)}
            onmouseenter={enter} {onfocus}>
            <rect class="row-bg" x="0" y={format!("{:.1}", y - 1.0)} width={WIDTH.to_string()} height={LANE.to_string()} />
            <text class="label" x="6" y={format!("{:.1}", y + LANE - 6.0)}>
                { format!("{} :{} {}", l.conn, l.peer.rsplit(':').next().unwrap_or(""), l.local_addr) }
            </text>
            if let Some(life) = life {
                { rect(life, &props.scale, y + LANE / 2.0 - 1.5, 3.0) }
            }
            // All of a lane's requests in two paths (finished; still going,
            // clipped at "now"): a busy lane changes one attribute per frame
            // instead of creating and removing an element per request.
            <path class="seg-server" d={lane_path(requests, &props.scale, y + 3.0, LANE - 7.0, false)} />
            <path class="seg-server" clip-path="url(#until-now)"
                d={lane_path(requests, &props.scale, y + 3.0, LANE - 7.0, true)} />
            <text class="status" x={format!("{:.1}", (end_x + 4.0).min(WIDTH - 150.0))} y={format!("{:.1}", y + LANE - 6.0)}>
                { status }
            </text>
        </g>
    }
}

#[derive(Properties, PartialEq)]
struct NowLineProps {
    scale: Scale,
    height: f64,
    live: bool,
    /// Told when "now" runs past the right edge, so the view can grow.
    on_overflow: Callback<f64>,
}

/// The clip rectangle for open segments and the "now" line; re-renders
/// itself on a timer, alone.
#[component]
fn NowLine(props: &NowLineProps) -> Html {
    let now = use_state(now_ms);
    {
        let (now, live) = (now.clone(), props.live);
        use_effect_with(live, move |live| {
            let every = if *live { 40 } else { 500 };
            let timer = Interval::new(every, move || now.set(now_ms()));
            move || drop(timer)
        });
    }
    if *now > props.scale.end_ms && props.live {
        props.on_overflow.emit(*now);
    }
    let x = props.scale.x(*now);
    html! { <>
        <clipPath id="until-now">
            <rect x="0" y="0" width={format!("{x:.1}")} height={format!("{:.1}", props.height)} />
        </clipPath>
        <line class="now" x1={format!("{x:.1}")} x2={format!("{x:.1}")} y1={AXIS.to_string()} y2={format!("{:.1}", props.height)} />
    </> }
}

/// Props of [`TimelineView`].
#[derive(Properties)]
pub struct TimelineProps {
    /// The run shown.
    pub run: Option<Rc<Run>>,
    /// Connections that count (HTTP, this page's), oldest first.
    pub lanes: Vec<Rc<Lane>>,
    /// Connections shown apart (the page's WebSocket, spare sockets).
    pub others: Vec<Rc<Lane>>,
    /// Server clock ⇄ page clock.
    pub clock: ClockSync,
}

/// The timeline.
#[component]
pub fn TimelineView(props: &TimelineProps) -> Html {
    let zoom = use_state(|| None::<(f64, f64)>);
    let grown = use_state(|| 0.0_f64);
    let focus = use_state(|| None::<Focus>);
    let Some(run) = &props.run else {
        return html! {
            <section class="timeline" aria-label="Timeline">
                <h2>{ "Timeline" }</h2>
                <p>{ "Fire a burst: its requests and the server's connections appear here, on one clock." }</p>
            </section>
        };
    };
    let live = run.is_live();
    let lane_refs: Vec<&Lane> = props.lanes.iter().map(|l| &**l).collect();
    let (fit_start, fit_end) = fit(run, &lane_refs, &props.clock, (*grown).max(run.started_ms));
    let (start_ms, end_ms) = zoom.unwrap_or((fit_start, fit_end));
    let scale = Scale {
        start_ms,
        end_ms,
        left: LABELS,
        right: WIDTH - 10.0,
    };

    let highlight = match &*focus {
        Some(Focus::Request(i)) => run.requests.get(*i).and_then(|r| r.conn),
        Some(Focus::Lane(c)) => Some(*c),
        None => None,
    };
    // Stable across renders, so rows whose data did not change are skipped.
    let on_focus = use_callback(focus.setter(), |f: Option<Focus>, set| set.set(f));
    let on_overflow = {
        let grown = grown.clone();
        Callback::from(move |now: f64| {
            if now > *grown {
                grown.set(now * 1.0 + 1.0)
            }
        })
    };
    let browser_top = AXIS + 22.0;
    let server_top = browser_top + run.requests.len() as f64 * ROW + 30.0;
    let height = server_top + props.lanes.len().max(1) as f64 * LANE + 10.0;

    let set_zoom = |f: fn(Scale) -> Option<Scale>| {
        let zoom = zoom.clone();
        Callback::from(move |_: MouseEvent| zoom.set(f(scale).map(|s| (s.start_ms, s.end_ms))))
    };
    let onkeydown = {
        let zoom = zoom.clone();
        Callback::from(move |e: KeyboardEvent| {
            let next = match e.key().as_str() {
                "+" | "=" => Some(Some(scale.zoomed(0.5))),
                "-" => Some(Some(scale.zoomed(2.0))),
                "ArrowLeft" => Some(Some(scale.panned(-0.25))),
                "ArrowRight" => Some(Some(scale.panned(0.25))),
                "0" => Some(None),
                _ => None,
            };
            if let Some(next) = next {
                e.prevent_default();
                zoom.set(next.map(|s| (s.start_ms, s.end_ms)));
            }
        })
    };

    let ticks = scale.ticks(run.started_ms, 8);
    html! {
        <section class="timeline" aria-label="Timeline">
            <h2>{ format!("Timeline of run {} (both sides, one clock)", run.name()) }</h2>
            <div class="zoom" role="toolbar" aria-label="Zoom and pan">
                <button onclick={set_zoom(|s| Some(s.zoomed(0.5)))} aria-label="Zoom in">{ "+ zoom in" }</button>
                <button onclick={set_zoom(|s| Some(s.zoomed(2.0)))} aria-label="Zoom out">{ "− zoom out" }</button>
                <button onclick={set_zoom(|s| Some(s.panned(-0.25)))}>{ "◀ earlier" }</button>
                <button onclick={set_zoom(|s| Some(s.panned(0.25)))}>{ "later ▶" }</button>
                <button onclick={set_zoom(|_| None)}>{ "fit" }</button>
                <span class="source">
                    { match props.clock.uncertainty_ms() {
                        Some(u) => format!("Server times placed on this page's clock to ±{u:.2} ms (ping/pong over the WebSocket)."),
                        None => "Waiting for the clock sync with the server…".into(),
                    } }
                </span>
            </div>
            <div class="legend" aria-hidden="true">
                { for [Kind::Queued, Kind::Waiting, Kind::Downloading, Kind::Server, Kind::Connection].iter().map(|k| html! {
                    <span><svg width="26" height="12"><rect class={k.class()} x="0" y="1" width="26" height="10" /></svg>{ format!(" {}", k.label()) }</span>
                }) }
            </div>
            <div class="scroll" tabindex="0" {onkeydown} aria-label="Timeline: + and - zoom, arrows pan, 0 fits">
            <svg id="timeline" xmlns="http://www.w3.org/2000/svg" viewBox={format!("0 0 {WIDTH} {height:.0}")}
                width="100%" role="list" aria-label="Requests and connections on one time axis">
                <style>{ SVG_STYLE }</style>
                <defs>
                    <pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
                        <rect width="6" height="6" fill="#f2c14e" /><line x1="0" y1="0" x2="0" y2="6" stroke="#8a5a00" stroke-width="2.5" />
                    </pattern>
                    <pattern id="dots" width="5" height="5" patternUnits="userSpaceOnUse">
                        <rect width="5" height="5" fill="#5fbf7f" /><circle cx="2.5" cy="2.5" r="1.1" fill="#1e6b35" />
                    </pattern>
                </defs>
                <NowLine scale={scale} height={height} live={live} on_overflow={on_overflow} />
                { for ticks.iter().map(|(ms, text)| {
                    let x = scale.x(*ms);
                    html! { <g class="tick">
                        <line x1={format!("{x:.1}")} x2={format!("{x:.1}")} y1={AXIS.to_string()} y2={format!("{height:.0}")} />
                        <text x={format!("{:.1}", x + 3.0)} y="18">{ text.clone() }</text>
                    </g> }
                }) }
                <text class="section" x="6" y={format!("{:.1}", browser_top - 6.0)}>{ "BROWSER: your requests" }</text>
                // Keyed by position, not by tag: the next run's rows patch these
                // elements instead of creating 200 new ones.
                { for run.requests.iter().enumerate().map(|(i, r)| html! {
                    <RequestRow key={i} index={i} request={r.clone()} y={browser_top + i as f64 * ROW}
                        scale={scale} clock={props.clock} highlighted={highlight.is_some() && r.conn == highlight}
                        on_focus={on_focus.clone()} />
                }) }
                <text class="section" x="6" y={format!("{:.1}", server_top - 8.0)}>{ "SERVER: TCP connections" }</text>
                { for props.lanes.iter().enumerate().map(|(i, l)| html! {
                    <LaneRow key={l.conn.0} lane={l.clone()} y={server_top + i as f64 * LANE}
                        scale={scale} clock={props.clock} highlighted={highlight == Some(l.conn)}
                        on_focus={on_focus.clone()} />
                }) }
            </svg>
            </div>
            <Details focus={(*focus).clone()} run={run.clone()} lanes={props.lanes.clone()} clock={props.clock} />
            if !props.others.is_empty() {
                <h3>{ "Not counted in the experiment" }</h3>
                <ul class="aside">
                    { for props.others.iter().map(|l| {
                        let what = if l.upgraded.is_some() {
                            "this page's live WebSocket (it does not take one of the six HTTP slots)"
                        } else {
                            "no request yet: browsers open a spare connection when a page loads"
                        };
                        let state = l.closed.as_ref().map_or("open".to_owned(), |c| format!("closed: {}", c.reason.label()));
                        html! { <li data-conn={l.conn.0.to_string()}>{ format!("{} from {}: {what} · {state}", l.conn, l.peer) }</li> }
                    }) }
                </ul>
            }
        </section>
    }
}

#[derive(Properties)]
struct DetailsProps {
    focus: Option<Focus>,
    run: Rc<Run>,
    lanes: Vec<Rc<Lane>>,
    clock: ClockSync,
}

impl PartialEq for RequestRowProps {
    fn eq(&self, other: &Self) -> bool {
        super::same(&self.request, &other.request)
            && self.index == other.index
            && self.y == other.y
            && self.scale == other.scale
            && self.clock == other.clock
            && self.highlighted == other.highlighted
            && self.on_focus == other.on_focus
    }
}

impl PartialEq for LaneRowProps {
    fn eq(&self, other: &Self) -> bool {
        super::same(&self.lane, &other.lane)
            && self.y == other.y
            && self.scale == other.scale
            && self.clock == other.clock
            && self.highlighted == other.highlighted
            && self.on_focus == other.on_focus
    }
}

impl PartialEq for TimelineProps {
    fn eq(&self, other: &Self) -> bool {
        super::same_option(&self.run, &other.run)
            && super::same_all(&self.lanes, &other.lanes)
            && super::same_all(&self.others, &other.others)
            && self.clock == other.clock
    }
}

impl PartialEq for DetailsProps {
    fn eq(&self, other: &Self) -> bool {
        self.focus == other.focus
            && super::same(&self.run, &other.run)
            && super::same_all(&self.lanes, &other.lanes)
            && self.clock == other.clock
    }
}

/// The focused request or connection, in words, with where each figure comes from.
#[component]
fn Details(props: &DetailsProps) -> Html {
    let text = match &props.focus {
        None => "Point at (or tab to) a request or a connection to read its story here.".to_owned(),
        Some(Focus::Request(i)) => match props.run.requests.get(*i) {
            None => String::new(),
            Some(r) => {
                let at_server = r.server_start_us.and_then(|us| props.clock.to_page_ms(us));
                let mut words = format!("#{} ({}) is {}.", i + 1, r.tag, r.phase.label());
                if let (Some(issued), Some(arrived)) = (r.issued_ms, at_server) {
                    words += &format!(
                        " It waited {} in the browser before the server saw it",
                        format_ms(arrived - issued)
                    );
                    if let (Some(c), Some(seq)) = (r.conn, r.seq) {
                        words += &if seq == 1 {
                            format!(", on a new connection {c}.")
                        } else {
                            format!(", on {c}, reused (request {seq} on it).")
                        };
                    } else {
                        words += ".";
                    }
                }
                if let (Some(arrived), Some(head)) = (at_server, r.head_ms) {
                    words += &format!(" First byte {} later", format_ms(head - arrived));
                    if let Some(end) = r.ended_ms {
                        words += &format!(", body done {} after that.", format_ms(end - head));
                    } else {
                        words += ".";
                    }
                }
                if r.resent() {
                    words += &format!(
                        " The server saw it {} times: the browser re-sent it silently (keep-alive race); the page was never told.",
                        r.server_sightings
                    );
                }
                if let Some(e) = &r.error {
                    words += &format!(" Error: {e}.");
                }
                if let Some(t) = r.timing {
                    words += &format!(
                        " Resource Timing says: {} connection, requestStart − fetchStart = {}.",
                        if t.new_connection() {
                            "a new"
                        } else {
                            "a reused"
                        },
                        format_ms(t.request_start - t.fetch_start)
                    );
                }
                words
                    + " Sources: browser times from performance.now(); arrival at the server from the server's event, on this page's clock via the clock sync; connection from X-Conn-Id."
            }
        },
        Some(Focus::Lane(conn)) => match props.lanes.iter().find(|l| l.conn == *conn) {
            None => String::new(),
            Some(l) => {
                let mut words = format!(
                    "{} from {} to {}: {} request{} so far.",
                    l.conn,
                    l.peer,
                    l.local_addr,
                    l.requests_total,
                    if l.requests_total == 1 { "" } else { "s" }
                );
                if let Some(c) = &l.closed {
                    let life = props
                        .clock
                        .to_page_ms(c.at_us)
                        .zip(props.clock.to_page_ms(l.opened_us))
                        .map(|(a, b)| a - b);
                    words += &format!(
                        " Closed after {}: {}. {} B in, {} B out.",
                        life.map(format_ms).unwrap_or_default(),
                        c.reason.label(),
                        c.bytes_in,
                        c.bytes_out
                    );
                } else {
                    words += " Still open.";
                }
                words + " Source: the server's own accept loop."
            }
        },
    };
    html! { <p class="details" aria-live="polite">{ text }</p> }
}

/// Styles inside the SVG, so an exported SVG looks the same on its own.
const SVG_STYLE: &str = "
text { font: 11px system-ui, sans-serif; fill: currentColor; }
.label { font-variant-numeric: tabular-nums; }
.note, .status { fill: #5d5d66; }
.section { font-weight: 700; letter-spacing: .06em; }
.tick line { stroke: #8884; stroke-width: 1; }
.tick text { fill: #5d5d66; }
.row-bg { fill: transparent; }
.hl .row-bg { fill: #ffd24d33; }
g:focus { outline: none; } g:focus .row-bg { fill: #0b57a422; stroke: #0b57a4; }
.seg-queued { fill: url(#hatch); }
.seg-waiting { fill: #0b57a4; }
.seg-downloading { fill: url(#dots); }
.seg-server { fill: #5b8fd6; stroke: #0b57a4; stroke-width: .6; }
.seg-conn { fill: #8a8a96; }
.aborted .seg-waiting, .failed .seg-waiting { fill: #a1261f; }
.closed .status { fill: #a1261f; font-weight: 600; }
.now { stroke: #d0312d; stroke-width: 1.5; stroke-dasharray: 4 3; }
";
