//! Where things go on the shared time axis: pure layout, tested on the host.
//!
//! Everything is placed on the page's clock (`performance.now()`, ms). Server
//! times are converted with the clock sync, so a request's browser-side
//! segments and its server-side segment line up within the sync's uncertainty
//! (a fraction of a millisecond on loopback).

use crate::sorted::SortedSet;
use std::rc::Rc;

use protocol::{CloseMode, CloseReason, ConnId, Micros, RaceClose, RequestOutcome};

use crate::clock::ClockSync;
use crate::decimal::fixed;
use crate::state::{BrowserRequest, LabState, Lane, Run};
use crate::tally::{ConnUse, request_use};

pub mod middlebox;

/// What a stretch of time means, for pattern, colour and words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Called, not at the server: waiting in the browser for a connection
    /// (and, on a new one, connecting); after a dropped attempt, waiting to
    /// be re-sent.
    Queued,
    /// At the server, no response head yet: time to first byte.
    Waiting,
    /// Head arrived, body arriving.
    Downloading,
    /// An attempt its connection closed before answering: the browser
    /// re-sends the request (keep-alive race) or fails it.
    Dropped,
    /// A request as the server saw it, on its connection's lane.
    Server,
    /// A request the server dropped unanswered, on its lane.
    ServerDropped,
    /// A connection's life.
    Connection,
}

impl Kind {
    /// CSS class.
    pub fn class(self) -> &'static str {
        match self {
            Kind::Queued => "seg-queued",
            Kind::Waiting => "seg-waiting",
            Kind::Downloading => "seg-downloading",
            Kind::Dropped => "seg-dropped",
            Kind::Server => "seg-server",
            Kind::ServerDropped => "seg-server-dropped",
            Kind::Connection => "seg-conn",
        }
    }
}

/// A stretch of time on the page's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// Start (ms, page clock).
    pub from_ms: f64,
    /// End (ms, page clock); for an open segment, where it was last known.
    pub to_ms: f64,
    /// Still going: drawn to the live "now" line.
    pub open: bool,
    /// What it is.
    pub kind: Kind,
    /// Which attempt (index into the request's attempts) it belongs to.
    pub attempt: Option<usize>,
}

/// The browser-side segments of one request: queued, then each attempt the
/// server saw (a dropped one, the wait to re-send it, the next), then the
/// answer's wait and download.
pub fn request_segments(r: &BrowserRequest, clock: &ClockSync) -> Vec<Segment> {
    let Some(issued) = r.issued_ms else {
        return Vec::new();
    };
    let end = r.ended_ms;
    let mut segments = Vec::new();
    let mut push = |from: f64, to: Option<f64>, kind, attempt| {
        segments.push(Segment {
            from_ms: from,
            to_ms: to.unwrap_or(from).max(from),
            open: to.is_none(),
            kind,
            attempt,
        });
    };
    let page = |us| clock.to_page_ms(us);
    let last = r.attempts.len().saturating_sub(1);
    let mut cursor = Some(issued);
    for (k, a) in r.attempts.iter().enumerate() {
        let (Some(from), Some(arrived)) = (cursor, page(a.start_us)) else {
            continue;
        };
        let arrived = arrived.max(from);
        push(from, Some(arrived), Kind::Queued, None);
        // Dropped before the page itself gave up on it (an abort closes the
        // connection after the page ended it: that attempt is the abort's).
        let dropped = a
            .unanswered()
            .then(|| a.end_us.and_then(page))
            .flatten()
            .map(|t| t.max(arrived))
            .filter(|t| k < last || end.is_none_or(|e| *t <= e));
        if let Some(t) = dropped {
            push(arrived, Some(t), Kind::Dropped, Some(k));
            cursor = Some(t);
            continue;
        }
        let waiting_end = r.head_ms.or(end.filter(|_| !r.phase.is_open()));
        push(arrived, waiting_end, Kind::Waiting, Some(k));
        if let Some(head) = r.head_ms {
            push(head.max(arrived), end, Kind::Downloading, Some(k));
        }
        cursor = None;
        break;
    }
    if let Some(from) = cursor {
        // Not at the server (yet, or again): in the browser until it ends.
        match r.head_ms {
            Some(head) if r.attempts.is_empty() => {
                // The server's event is missing (not synced, or never seen).
                push(from, Some(head.max(from)), Kind::Queued, None);
                push(head.max(from), end, Kind::Downloading, None);
            }
            _ => push(from, end, Kind::Queued, None),
        }
    }
    segments
}

/// A lane's life and its requests as the server saw them.
pub fn lane_segments(lane: &Lane, clock: &ClockSync) -> Vec<Segment> {
    let page = |us| clock.to_page_ms(us);
    let Some(opened) = page(lane.opened_us) else {
        return Vec::new();
    };
    let mut segments = vec![Segment {
        from_ms: opened,
        to_ms: lane
            .closed
            .as_ref()
            .and_then(|c| page(c.at_us))
            .unwrap_or(opened),
        open: lane.closed.is_none(),
        kind: Kind::Connection,
        attempt: None,
    }];
    for r in &lane.requests {
        let Some(start) = page(r.started_us) else {
            continue;
        };
        let end = r.finished.and_then(|(us, _)| page(us));
        let dropped =
            r.response_us.is_none() && r.finished.is_some_and(|f| f.1 == RequestOutcome::Aborted);
        segments.push(Segment {
            from_ms: start,
            to_ms: end.unwrap_or(start).max(start),
            open: end.is_none(),
            kind: if dropped {
                Kind::ServerDropped
            } else {
                Kind::Server
            },
            attempt: None,
        });
    }
    segments
}

/// Who closed a connection, as its end mark shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closer {
    /// The server closed it (FIN): a timeout, a limit, on purpose.
    Server,
    /// The browser closed it (FIN).
    Browser,
    /// A reset (RST) or an error.
    Reset,
}

impl Closer {
    /// Who closed a connection that ended for `reason`.
    pub fn of(reason: &CloseReason) -> Closer {
        match reason {
            CloseReason::PeerClosed => Closer::Browser,
            CloseReason::PeerReset
            | CloseReason::Error { .. }
            | CloseReason::ServerClose {
                mode: CloseMode::Rst,
            }
            | CloseReason::KeepAliveRace {
                close: RaceClose::Rst,
                ..
            }
            | CloseReason::BodyUnread {
                close: RaceClose::Rst,
            }
            | CloseReason::PipelinedUnread { .. }
            | CloseReason::RecordsUnread { .. } => Closer::Reset,
            CloseReason::WebSocketClosed { initiator, .. }
                if *initiator == protocol::Initiator::Client =>
            {
                Closer::Browser
            }
            _ => Closer::Server,
        }
    }
}

/// Which of the page's connections the timeline of one run draws, and how.
/// Only this page's are ever drawn: a connection another tab, browser or
/// tool opened from the same host is counted, never drawn as a lane.
#[derive(Debug, Clone, Default)]
pub struct LaneGroups {
    /// This page's connections (opened after the page load) that carried the
    /// run's requests or were open during it, oldest first.
    pub run: Vec<Rc<Lane>>,
    /// The page load's connections (its files, Chromium's spare) that carried
    /// the run's requests or were open during it: shown apart.
    pub page_load: Vec<Rc<Lane>>,
    /// This page's other connections, closed before the run began (or opened
    /// after it ended): collapsed into one line.
    pub earlier: usize,
    /// Connections from this host that carried none of this page's requests.
    pub foreign: usize,
    /// Of those, the ones whose TLS handshake failed (a browser that
    /// refused the lab's certificate ends so): told apart, since after an
    /// HTTPS burst that failed they are most likely this page's own (found
    /// in review: they were counted as another tab's).
    pub tls_refused: usize,
    /// This page's events WebSocket(s).
    pub monitors: Vec<Rc<Lane>>,
    /// The connections of this session's Node-style agent: drawn beside the
    /// agent's sockets, never among the browser's.
    pub agent: Vec<Rc<Lane>>,
    /// How each of the run's requests went on its connection.
    pub uses: Vec<Option<ConnUse>>,
    /// The lab's middlebox's mappings the run went through (or open during
    /// it), drawn between the browser's rows and the server's lanes.
    pub middlebox: Vec<middlebox::MappingLane>,
}

impl PartialEq for LaneGroups {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &[Rc<Lane>], b: &[Rc<Lane>]| {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| Rc::ptr_eq(a, b))
        };
        same(&self.run, &other.run)
            && same(&self.page_load, &other.page_load)
            && same(&self.agent, &other.agent)
            && same(&self.monitors, &other.monitors)
            && (self.earlier, self.foreign, self.tls_refused)
                == (other.earlier, other.foreign, other.tls_refused)
            && self.uses == other.uses
            && self.middlebox == other.middlebox
    }
}

/// Whether `lane` ended in a failed TLS handshake, before any request (the
/// server's words for it: `server/src/tls/serve.rs`).
fn tls_refused(lane: &Lane) -> bool {
    lane.requests.is_empty()
        && matches!(
            lane.closed.as_ref().map(|c| &c.reason),
            Some(CloseReason::Error { message }) if message.starts_with("TLS handshake failed")
        )
}

impl LaneGroups {
    /// Sorts the page's lanes for `run`.
    pub fn of(state: &LabState, run: Option<&Run>) -> LaneGroups {
        let mut g = LaneGroups::default();
        let mut carried: SortedSet<ConnId> = SortedSet::new();
        carried.extend(run.iter().flat_map(|run| {
            run.requests
                .iter()
                .flat_map(|r| r.attempts.iter().map(|a| a.conn).chain(r.conn))
        }));
        // The run's time on the server's clock; open-ended while it is live.
        let window: Option<(Micros, Micros)> = run.and_then(|run| {
            let start = state.clock.to_server_us(run.started_ms)?;
            let last = run
                .requests
                .iter()
                .filter_map(|r| r.ended_ms)
                .fold(run.started_ms, f64::max);
            let end = if run.is_live() {
                Micros::MAX
            } else {
                state.clock.to_server_us(last)?
            };
            Some((start, end))
        });
        let agent = crate::agent::AgentView::conns(state);
        for lane in state.lanes.values() {
            if agent.contains(&lane.conn) {
                g.agent.push(lane.clone());
                continue;
            }
            if !state.is_ours(lane) {
                if tls_refused(lane) {
                    g.tls_refused += 1;
                } else {
                    g.foreign += 1;
                }
                continue;
            }
            if lane.upgraded.is_some() {
                g.monitors.push(lane.clone());
                continue;
            }
            let closed = lane.closed.as_ref().map_or(Micros::MAX, |c| c.at_us);
            let during = match window {
                Some((start, end)) => lane.opened_us <= end && closed >= start,
                None => lane.closed.is_none(),
            };
            if !carried.contains(&lane.conn) && !during {
                g.earlier += 1;
            } else if state.is_page_load(lane) {
                g.page_load.push(lane.clone());
            } else {
                g.run.push(lane.clone());
            }
        }
        g.middlebox =
            middlebox::MappingLane::of(&state.middlebox, window, &|c| carried.contains(&c));
        if let Some(run) = run {
            // Each request's use asked of the run it was fired in (a
            // lesson's runs drawn as one: [`Run::joined`]). A plain loop: an
            // iterator chain was 0.3 KB more of the download (figure 5).
            for part in run.parts() {
                for r in &part.requests {
                    g.uses.push(request_use(state, part, r));
                }
            }
        }
        g
    }
}

/// The visible time window and how it maps onto the drawing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// Left edge (ms, page clock).
    pub start_ms: f64,
    /// Right edge (ms, page clock).
    pub end_ms: f64,
    /// x of the left edge (after the label column).
    pub left: f64,
    /// x of the right edge.
    pub right: f64,
}

impl Scale {
    /// x for a time, clamped to the drawing.
    pub fn x(&self, ms: f64) -> f64 {
        let span = (self.end_ms - self.start_ms).max(1e-6);
        let x = self.left + (ms - self.start_ms) / span * (self.right - self.left);
        // `max` then `min`, not `clamp`: `clamp` panics on bounds out of
        // order and its message brings in float formatting.
        x.max(self.left).min(self.right)
    }

    /// Zoomed by `factor` (< 1 zooms in), its start kept: a run is drawn
    /// from its start, so zooming in keeps its first requests in view (found
    /// in review: around the middle, two presses left every bar of a short
    /// run out of view). The arrow keys pan.
    pub fn zoomed(&self, factor: f64) -> Scale {
        let span = ((self.end_ms - self.start_ms) * factor).max(1.0);
        Scale {
            end_ms: self.start_ms + span,
            ..*self
        }
    }

    /// Moved by `fraction` of its width (negative: earlier).
    pub fn panned(&self, fraction: f64) -> Scale {
        let shift = (self.end_ms - self.start_ms) * fraction;
        Scale {
            start_ms: self.start_ms + shift,
            end_ms: self.end_ms + shift,
            ..*self
        }
    }

    /// Tick marks: about `target` of them at a round step, with labels
    /// relative to `origin_ms` (the run's start).
    pub fn ticks(&self, origin_ms: f64, target: usize) -> Vec<(f64, String)> {
        let span = (self.end_ms - self.start_ms).max(1e-3);
        let raw = span / target.max(1) as f64;
        // The first of 1, 2, 5, 10, 20, 50… µs that is at least `raw`
        // (multiplications only: `powf` and `log10` would add 2 KB of wasm).
        let mut step = 0.001;
        let mut k = 0;
        while step < raw * 0.999_999 {
            step *= [2.0, 2.5, 2.0][k % 3];
            k += 1;
        }
        let first = ((self.start_ms - origin_ms) / step).ceil() * step;
        (0..=target * 2)
            .map(|i| first + i as f64 * step)
            .take_while(|t| origin_ms + t <= self.end_ms)
            .map(|t| (origin_ms + t, format_ms(t)))
            .collect()
    }
}

/// `250 ms`, `1.5 s`, `2 min`.
pub fn format_ms(ms: f64) -> String {
    let a = ms.abs();
    if a < 1.0 && a > 0.0 {
        format!("{} ms", fixed(ms, 2))
    } else if a < 1000.0 {
        format!("{} ms", fixed(ms, 0))
    } else if a < 120_000.0 {
        let s = ms / 1000.0;
        if (s - s.round()).abs() < 1e-9 {
            format!("{} s", fixed(s, 0))
        } else {
            format!("{} s", fixed(s, 2))
        }
    } else {
        format!("{} min", fixed(ms / 60_000.0, 1))
    }
}

/// The first and last moments of a run and of its lanes, on the page's
/// clock (`now_ms` for what is still going).
pub fn run_extent(run: &Run, lanes: &[&Lane], clock: &ClockSync, now_ms: f64) -> (f64, f64) {
    let start = run.started_ms;
    let mut end = start;
    for r in &run.requests {
        for s in request_segments(r, clock) {
            end = end.max(if s.open { now_ms } else { s.to_ms });
        }
    }
    (start, lanes_reach(lanes, clock, now_ms, end))
}

/// `end`, or later if a lane's requests (or its close) go on after it.
fn lanes_reach(lanes: &[&Lane], clock: &ClockSync, now_ms: f64, mut end: f64) -> f64 {
    for lane in lanes {
        for s in lane_segments(lane, clock) {
            if s.kind == Kind::Server || !s.open {
                end = end.max(if s.open { now_ms } else { s.to_ms });
            }
        }
    }
    end
}

/// Which of the browser's run and the agent's run (their extents) the
/// timeline draws: both when they overlap in time (within a second), else
/// only the newer one.
pub fn shown(browser: Option<(f64, f64)>, agent: Option<(f64, f64)>) -> (bool, bool) {
    match (browser, agent) {
        (Some(b), Some(a)) => {
            let overlap = b.0 <= a.1 + 1000.0 && a.0 <= b.1 + 1000.0;
            (overlap || b.0 > a.0, overlap || a.0 > b.0)
        }
        (b, a) => (b.is_some(), a.is_some()),
    }
}

/// The window from `start` that shows everything up to `end`, its width a
/// doubling of 250 ms (so a live view is not rescaled every frame).
pub fn window(start: f64, end: f64) -> (f64, f64) {
    let mut span = 250.0;
    while start + span < end * 1.0 + (end - start) * 0.05 && span < 1e9 {
        span *= 2.0;
    }
    (start - span * 0.02, start + span)
}

/// The first and last moments of an agent run and of its lanes, on the
/// page's clock (`now_ms` for what is still going).
pub fn agent_extent(
    agent: &crate::agent::AgentView,
    lanes: &[&Lane],
    clock: &ClockSync,
    now_ms: f64,
) -> Option<(f64, f64)> {
    let start = clock.to_page_ms(agent.started_us)?;
    let mut end = start;
    let mut reach = |s: &Segment| end = end.max(if s.open { now_ms } else { s.to_ms });
    for r in &agent.requests {
        r.segments(clock).iter().for_each(&mut reach);
    }
    for s in &agent.sockets {
        s.life(clock).iter().for_each(&mut reach);
    }
    Some((start, lanes_reach(lanes, clock, now_ms, end)))
}

/// What of the drawing is on screen, in drawing units from its top edge:
/// the part of its scrolling box's content in view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InView {
    /// First unit in view.
    pub top: f64,
    /// Last unit in view.
    pub bottom: f64,
}

impl InView {
    /// From the scrolling box the drawing is in (CSS pixels: how far it is
    /// scrolled, the height it shows, and the drawing's width, wider than
    /// the box on a narrow screen) and the drawing's width in units. Rounded
    /// out to blocks of `block` units, so scrolling within a block changes
    /// nothing.
    pub fn measure(
        scroll_top: f64,
        (height, width): (f64, f64),
        drawing_width: f64,
        block: f64,
    ) -> InView {
        let per_unit = if width > 0.0 {
            width / drawing_width
        } else {
            1.0
        };
        let floor = |u: f64| (u / block).floor() * block;
        let ceil = |u: f64| (u / block).ceil() * block;
        InView {
            top: floor(scroll_top / per_unit),
            bottom: ceil((scroll_top + height.max(0.0)) / per_unit),
        }
    }
}

/// Runs up to this many requests are drawn whole; a longer one draws the
/// rows on screen and [`MARGIN_ROWS`] either side (figures 3 and 4: a new
/// run of 200 rows was the page's longest frame).
pub const WHOLE_RUN: usize = 60;
/// Rows drawn beyond the screen's edges, so a scroll or a keyboard step
/// finds its row already there.
pub const MARGIN_ROWS: usize = 15;

/// Which of `n` request rows (row `i` at `first + i * row` units) to draw:
/// all of a short run; of a long one, those in `view` and a margin, or the
/// first [`WHOLE_RUN`] while its box shows its top (`None`: not scrolled).
#[inline(never)]
pub fn rows_to_draw(
    n: usize,
    first: f64,
    row: f64,
    view: Option<InView>,
) -> std::ops::Range<usize> {
    if n <= WHOLE_RUN {
        return 0..n;
    }
    let Some(view) = view else {
        return 0..WHOLE_RUN;
    };
    let index = |u: f64| ((u - first) / row).floor().max(0.0) as usize;
    let from = index(view.top).saturating_sub(MARGIN_ROWS).min(n);
    let to = (index(view.bottom) + 1 + MARGIN_ROWS).min(n);
    from..to.max(from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Sample;
    use crate::settings::Credentials;
    use crate::state::{Attempt, Phase, PoolKey};
    use protocol::RequestId;

    fn attempt(conn: u64, request: u64, start_us: Micros) -> Attempt {
        Attempt {
            conn: ConnId(conn),
            request: RequestId(request),
            seq: 1,
            conn_opened_us: None,
            start_us,
            response_us: None,
            end_us: None,
            outcome: None,
            dropped: None,
        }
    }

    fn synced(offset_ms: f64) -> ClockSync {
        let mut c = ClockSync::default();
        c.add(Sample {
            sent_ms: 0.0,
            received_ms: 0.0,
            server_us: (offset_ms * 1000.0) as u64,
        });
        c
    }

    fn request() -> BrowserRequest {
        let pool = PoolKey {
            origin: "http://x".into(),
            credentials: Credentials::Default,
        };
        BrowserRequest {
            phase: Phase::Queued,
            issued_ms: Some(100.0),
            ..BrowserRequest::new("b1-1".into(), "/api/hang?id=b1-1".into(), pool)
        }
    }

    #[test]
    fn a_request_is_queued_then_waiting_then_downloading_on_one_clock() {
        let clock = synced(1000.0); // server clock = page + 1 s
        let mut r = request();
        assert_eq!(
            request_segments(&r, &clock),
            vec![Segment {
                from_ms: 100.0,
                to_ms: 100.0,
                open: true,
                kind: Kind::Queued,
                attempt: None,
            }]
        );
        r.phase = Phase::AtServer;
        r.attempts.push(attempt(1, 1, 1_400_000)); // page 400 ms
        let s = request_segments(&r, &clock);
        assert_eq!(
            (s[0].kind, s[0].from_ms, s[0].to_ms, s[0].open),
            (Kind::Queued, 100.0, 400.0, false)
        );
        assert_eq!(
            (s[1].kind, s[1].from_ms, s[1].open),
            (Kind::Waiting, 400.0, true)
        );
        r.head_ms = Some(900.0);
        r.ended_ms = Some(950.0);
        r.phase = Phase::Done;
        let s = request_segments(&r, &clock);
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[1].to_ms, s[2].kind, s[2].from_ms, s[2].to_ms),
            (900.0, Kind::Downloading, 900.0, 950.0)
        );
        assert!(s.iter().all(|seg| !seg.open));
    }

    #[test]
    fn an_abort_ends_its_attempt_as_the_abort_not_as_a_dropped_attempt() {
        let clock = synced(0.0);
        let mut r = request();
        // At the server from 200 ms; the page aborts at 300 ms; the server
        // sees the browser close the connection 5 ms later.
        r.attempts.push(Attempt {
            end_us: Some(305_000),
            outcome: Some(RequestOutcome::Aborted),
            dropped: Some(CloseReason::PeerClosed),
            ..attempt(1, 1, 200_000)
        });
        r.phase = Phase::Aborted;
        r.ended_ms = Some(300.0);
        let s = request_segments(&r, &clock);
        assert_eq!(
            s.iter()
                .map(|s| (s.kind, s.from_ms, s.to_ms, s.open))
                .collect::<Vec<_>>(),
            [
                (Kind::Queued, 100.0, 200.0, false),
                (Kind::Waiting, 200.0, 300.0, false)
            ]
        );
        // Dropped by the server before anything came back, and the browser
        // gave up later: a dropped attempt, then the wait in the browser.
        r.attempts[0].end_us = Some(250_000);
        r.phase = Phase::Failed;
        let kinds: Vec<Kind> = request_segments(&r, &clock)
            .iter()
            .map(|s| s.kind)
            .collect();
        assert_eq!(kinds, [Kind::Queued, Kind::Dropped, Kind::Queued]);
    }

    #[test]
    fn who_closed_a_connection_decides_its_end_mark() {
        assert_eq!(Closer::of(&CloseReason::IdleTimeout), Closer::Server);
        assert_eq!(Closer::of(&CloseReason::PeerClosed), Closer::Browser);
        assert_eq!(Closer::of(&CloseReason::PeerReset), Closer::Reset);
        assert_eq!(
            Closer::of(&CloseReason::KeepAliveRace {
                method: "GET".into(),
                target: "/".into(),
                close: RaceClose::Rst,
                on_purpose: false
            }),
            Closer::Reset
        );
        assert_eq!(
            Closer::of(&CloseReason::PipelinedUnread {
                after: Box::new(CloseReason::MaxRequests),
                method: None,
                target: None,
            }),
            Closer::Reset,
            "the policy's close, answered by the kernel with a reset"
        );
        assert_eq!(
            Closer::of(&CloseReason::RecordsUnread {
                after: Box::new(CloseReason::KeepAliveOff),
            }),
            Closer::Reset,
            "the same over TLS, with records left unread"
        );
    }

    #[test]
    fn nothing_is_drawn_before_the_clock_is_synced_or_the_request_is_sent() {
        let r = BrowserRequest {
            issued_ms: None,
            ..request()
        };
        assert!(request_segments(&r, &synced(0.0)).is_empty());
        let lane = Lane {
            conn: ConnId(1),
            peer: String::new(),
            local_addr: String::new(),
            local_port: 1,
            session: None,
            opened_us: 5,
            upgraded: None,
            protocol: None,
            secured_us: None,
            requests: vec![],
            requests_total: 0,
            closed: None,
        };
        assert!(lane_segments(&lane, &ClockSync::default()).is_empty());
        assert_eq!(lane_segments(&lane, &synced(0.0)).len(), 1);
    }

    #[test]
    fn scale_maps_zooms_pans_and_ticks() {
        let s = Scale {
            start_ms: 0.0,
            end_ms: 1000.0,
            left: 100.0,
            right: 1100.0,
        };
        assert_eq!(s.x(500.0), 600.0);
        assert_eq!(s.x(-5.0), 100.0, "clamped");
        let z = s.zoomed(0.5);
        assert_eq!((z.start_ms, z.end_ms), (0.0, 500.0));
        let out = z.zoomed(2.0);
        assert_eq!((out.start_ms, out.end_ms), (0.0, 1000.0));
        let p = s.panned(0.1);
        assert_eq!((p.start_ms, p.end_ms), (100.0, 1100.0));
        let ticks = s.ticks(0.0, 5);
        assert_eq!(
            ticks.iter().map(|t| t.1.as_str()).collect::<Vec<_>>(),
            ["0 ms", "200 ms", "400 ms", "600 ms", "800 ms", "1 s"]
        );
        assert_eq!(format_ms(1500.0), "1.50 s");
        assert_eq!(format_ms(180_000.0), "3.0 min");
    }

    #[test]
    fn the_browsers_and_the_agents_runs_share_the_axis_only_when_they_overlap() {
        assert_eq!(shown(Some((0.0, 10.0)), None), (true, false));
        assert_eq!(shown(None, Some((0.0, 10.0))), (false, true));
        assert_eq!(shown(Some((0.0, 10.0)), Some((5.0, 20.0))), (true, true));
        // An old burst and a new agent run: only the agent's.
        assert_eq!(
            shown(Some((0.0, 10.0)), Some((60_000.0, 70_000.0))),
            (false, true)
        );
        assert_eq!(
            shown(Some((60_000.0, 70_000.0)), Some((0.0, 10.0))),
            (true, false)
        );
        assert_eq!(window(0.0, 900.0), (-20.0, 1000.0));
    }

    #[test]
    fn what_is_in_view_is_measured_in_drawing_units_rounded_out_to_blocks() {
        // A drawing 1200 units wide in a box 600 px wide (2 units a pixel)
        // and 400 px high, scrolled down 100 px.
        let v = InView::measure(100.0, (400.0, 600.0), 1200.0, 1.0);
        assert_eq!(
            v,
            InView {
                top: 200.0,
                bottom: 1000.0
            }
        );
        // Rounded out to blocks of 150 units.
        let v = InView::measure(100.0, (400.0, 600.0), 1200.0, 150.0);
        assert_eq!(
            v,
            InView {
                top: 150.0,
                bottom: 1050.0
            }
        );
        // Not laid out (no width): pixels taken as units, never a division by 0.
        let v = InView::measure(0.0, (300.0, 0.0), 1200.0, 1.0);
        assert_eq!(
            v,
            InView {
                top: 0.0,
                bottom: 300.0
            }
        );
    }

    #[test]
    fn a_long_run_draws_the_rows_on_screen_and_a_margin_a_short_one_all() {
        let view = |top: f64, bottom: f64| Some(InView { top, bottom });
        // Short runs are drawn whole, measured or not.
        assert_eq!(
            rows_to_draw(WHOLE_RUN, 40.0, 15.0, view(0.0, 10.0)),
            0..WHOLE_RUN
        );
        assert_eq!(rows_to_draw(12, 40.0, 15.0, None), 0..12);
        // A long run before the page measured: its head.
        assert_eq!(rows_to_draw(200, 40.0, 15.0, None), 0..WHOLE_RUN);
        // Rows 0 to 20 on screen (40 + 20 * 15 = 340): and the margin below.
        assert_eq!(
            rows_to_draw(200, 40.0, 15.0, view(0.0, 340.0)),
            0..21 + MARGIN_ROWS
        );
        // Rows 100 to 140 on screen: the margin either side.
        let r = rows_to_draw(200, 40.0, 15.0, view(1540.0, 2140.0));
        assert_eq!(r, 100 - MARGIN_ROWS..141 + MARGIN_ROWS);
        // The drawing just below the fold: its first rows, ready to scroll to.
        assert_eq!(
            rows_to_draw(200, 40.0, 15.0, view(-30.0, -30.0)),
            0..1 + MARGIN_ROWS
        );
        // Scrolled far past: none, never a range past the end.
        assert_eq!(
            rows_to_draw(200, 40.0, 15.0, view(9000.0, 9900.0)),
            200..200
        );
    }
}
