//! Where things go on the shared time axis: pure layout, tested on the host.
//!
//! Everything is placed on the page's clock (`performance.now()`, ms). Server
//! times are converted with the clock sync, so a request's browser-side
//! segments and its server-side segment line up within the sync's uncertainty
//! (a fraction of a millisecond on loopback).

use crate::clock::ClockSync;
use crate::state::{BrowserRequest, Lane, Phase, Run};

/// What a stretch of time means, for colour, pattern and words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Called, not yet at the server: waiting in the browser for a
    /// connection (and, on a new one, connecting).
    Queued,
    /// At the server, no response head yet: time to first byte.
    Waiting,
    /// Head arrived, body arriving.
    Downloading,
    /// A request as the server saw it, on its connection's lane.
    Server,
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
            Kind::Server => "seg-server",
            Kind::Connection => "seg-conn",
        }
    }

    /// Words for the legend and tooltips.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Queued => "queued in the browser (and connecting)",
            Kind::Waiting => "waiting for the first byte",
            Kind::Downloading => "downloading",
            Kind::Server => "request at the server",
            Kind::Connection => "connection open",
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
}

/// The browser-side segments of one request.
pub fn request_segments(r: &BrowserRequest, clock: &ClockSync) -> Vec<Segment> {
    let Some(issued) = r.issued_ms else {
        return Vec::new();
    };
    let at_server = r.server_start_us.and_then(|us| clock.to_page_ms(us));
    let end = r.ended_ms;
    let mut segments = Vec::new();
    let mut push = |from: f64, to: Option<f64>, kind| {
        segments.push(Segment {
            from_ms: from,
            to_ms: to.unwrap_or(from).max(from),
            open: to.is_none(),
            kind,
        });
    };
    match (at_server, r.head_ms) {
        (Some(arrived), head) => {
            push(issued, Some(arrived.max(issued)), Kind::Queued);
            let waiting_end =
                head.or(end.filter(|_| r.phase == Phase::Failed || r.phase == Phase::Aborted));
            push(arrived.max(issued), waiting_end, Kind::Waiting);
            if let Some(head) = head {
                push(head, end, Kind::Downloading);
            }
        }
        (None, Some(head)) => {
            // The server's event is missing (not synced, or never seen).
            push(issued, Some(head), Kind::Queued);
            push(head, end, Kind::Downloading);
        }
        (None, None) => push(issued, end, Kind::Queued),
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
    }];
    for r in &lane.requests {
        let Some(start) = page(r.started_us) else {
            continue;
        };
        let end = r.finished.and_then(|(us, _)| page(us));
        segments.push(Segment {
            from_ms: start,
            to_ms: end.unwrap_or(start),
            open: end.is_none(),
            kind: Kind::Server,
        });
    }
    segments
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
        x.clamp(self.left, self.right)
    }

    /// Zoomed by `factor` (< 1 zooms in) around the middle.
    pub fn zoomed(&self, factor: f64) -> Scale {
        let mid = (self.start_ms + self.end_ms) / 2.0;
        let half = ((self.end_ms - self.start_ms) / 2.0 * factor).max(0.5);
        Scale {
            start_ms: mid - half,
            end_ms: mid + half,
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
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * magnitude);
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
        format!("{ms:.2} ms")
    } else if a < 1000.0 {
        format!("{ms:.0} ms")
    } else if a < 120_000.0 {
        let s = ms / 1000.0;
        if (s - s.round()).abs() < 1e-9 {
            format!("{s:.0} s")
        } else {
            format!("{s:.2} s")
        }
    } else {
        format!("{:.1} min", ms / 60_000.0)
    }
}

/// The window that shows a whole run: from its start to its last known
/// moment (or `now` while it is live), rounded up to a doubling step so a
/// live view is not rescaled every frame.
pub fn fit(run: &Run, lanes: &[&Lane], clock: &ClockSync, now_ms: f64) -> (f64, f64) {
    let start = run.started_ms;
    let mut end = start;
    for r in &run.requests {
        for s in request_segments(r, clock) {
            end = end.max(if s.open { now_ms } else { s.to_ms });
        }
    }
    for lane in lanes {
        for s in lane_segments(lane, clock) {
            if s.kind == Kind::Server || !s.open {
                end = end.max(if s.open { now_ms } else { s.to_ms });
            }
        }
    }
    let mut span = 250.0;
    while start + span < end * 1.0 + (end - start) * 0.05 && span < 1e9 {
        span *= 2.0;
    }
    (start - span * 0.02, start + span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Sample;
    use crate::settings::Credentials;
    use crate::state::PoolKey;
    use protocol::{ConnId, RequestId};

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
                kind: Kind::Queued
            }]
        );
        r.phase = Phase::AtServer;
        r.server_start_us = Some(1_400_000); // page 400 ms
        r.conn = Some(ConnId(1));
        r.request = Some(RequestId(1));
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
        assert_eq!((z.start_ms, z.end_ms), (250.0, 750.0));
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
}
