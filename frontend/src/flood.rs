//! When the page is flooded with changes, and its timeline is drawn in
//! outline (bench figures 3 and 4, issue #14).
//!
//! A burst of hundreds of requests to a fast endpoint brings the page
//! thousands of changes a second (each request's `fetch` steps and at least
//! three server events). Drawn in full at every frame, the timeline of such a
//! run (its rows, bars, words and lanes, each moving as its request moves)
//! made the page's frames long enough to delay the very events it draws
//! (`bench/src/causes.md`, figure 3). While the flood lasts, a run of more
//! than [`crate::timeline::WHOLE_RUN`] requests is drawn in outline instead:
//! its requests counted by phase, a bar each
//! (`components/timeline/light.rs`). The full timeline follows as soon as the
//! changes slow down or the run settles, whichever comes first.
//!
//! Pure: the frame dispatcher (`crate::frames`) records each frame's
//! changes here and asks; the host tests below check the thresholds.

use std::collections::VecDeque;

/// The span over which changes are counted, ms.
pub const WINDOW_MS: f64 = 500.0;
/// Changes within [`WINDOW_MS`] from which the page is flooded: 200 a
/// second. A change is a server event, a step of a request in the page
/// (`fetch` called, the response's head, its end), or a request composed
/// (a row to draw). A burst of 200 to `/api/fast` brings about 1 400 in half
/// a second, from its first frame (its 200 rows); 200 requests to a slow
/// endpoint, six at a time, flood the page only in their first half second
/// (their rows and `fetch` calls), then bring a few dozen a second. A
/// lesson's burst of 12 brings about 85 in all, and a run of at most
/// [`crate::timeline::WHOLE_RUN`] requests is never outlined anyway.
pub const CHANGES: u32 = 100;
/// Changes within [`WINDOW_MS`] for a flood that began to go on: 100 a
/// second ([`Flood::still_flooding`]).
pub const STILL: u32 = 50;

/// Changes applied at recent frames.
#[derive(Debug, Default)]
pub struct Flood {
    /// (page time of the frame in ms, changes it applied), oldest first;
    /// only frames within [`WINDOW_MS`] of the newest are kept.
    frames: VecDeque<(f64, u32)>,
}

impl Flood {
    /// A frame at `now_ms` applied `changes`.
    pub fn record(&mut self, now_ms: f64, changes: u32) {
        self.forget(now_ms);
        if changes > 0 {
            self.frames.push_back((now_ms, changes));
        }
    }

    /// Frames older than the window at `now_ms` no longer count.
    fn forget(&mut self, now_ms: f64) {
        while self
            .frames
            .front()
            .is_some_and(|(at, _)| now_ms - at >= WINDOW_MS)
        {
            self.frames.pop_front();
        }
    }

    /// Changes applied by the frames of the last [`WINDOW_MS`] before
    /// `now_ms`.
    fn recent(&self, now_ms: f64) -> u32 {
        self.frames
            .iter()
            .filter(|(at, _)| now_ms - at < WINDOW_MS)
            .map(|(_, n)| *n)
            .sum()
    }

    /// Whether a flood begins (or goes on) at `now_ms`: [`CHANGES`] or more
    /// in the last [`WINDOW_MS`].
    pub fn flooding(&self, now_ms: f64) -> bool {
        self.recent(now_ms) >= CHANGES
    }

    /// Whether a flood that began goes on at `now_ms`: [`STILL`] or more.
    /// Lower than [`CHANGES`], so a rate that hovers about it does not
    /// switch the drawing back and forth.
    pub fn still_flooding(&self, now_ms: f64) -> bool {
        self.recent(now_ms) >= STILL
    }

    /// When a flood ends if no more changes come (page ms): the time the
    /// oldest frames leave the window and the rest fall below [`STILL`];
    /// `None` when there is none at `now_ms`.
    pub fn ends_at(&self, now_ms: f64) -> Option<f64> {
        let mut left = self.recent(now_ms);
        if left < STILL {
            return None;
        }
        for (at, n) in self.frames.iter().filter(|(at, _)| now_ms - at < WINDOW_MS) {
            left -= n;
            if left < STILL {
                return Some(at + WINDOW_MS);
            }
        }
        Some(now_ms + WINDOW_MS)
    }
}

/// How a drawing shows the run it draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drawing {
    /// The full timeline, and the page around it.
    Full,
    /// The run in outline; the page's panels wait.
    Outline,
    /// The run in outline this once (the drawing that settled it: its last
    /// events are in the outline's counts), then in full a frame after it is painted,
    /// so the full drawing's cost is not added to the time they waited.
    OutlineThenFull,
}

/// How to draw a run of `requests` requests: flooded or not (by
/// [`Flood::flooding`], or [`Flood::still_flooding`] when the last drawing
/// outlined this run), going on (`live`) or settled, the last drawing an
/// outline of this very run or not, and whether its settling was outlined
/// already.
pub fn drawing(
    requests: usize,
    flooded: bool,
    live: bool,
    outlined_last: bool,
    settled_outlined: bool,
) -> Drawing {
    if requests <= crate::timeline::WHOLE_RUN || !flooded {
        Drawing::Full
    } else if live {
        Drawing::Outline
    } else if outlined_last && !settled_outlined {
        Drawing::OutlineThenFull
    } else {
        Drawing::Full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_run_is_outlined_while_flooded_and_drawn_in_full_a_frame_after_it_settles() {
        // A lesson's run is never outlined, flooded or not.
        assert_eq!(drawing(16, true, true, false, false), Drawing::Full);
        assert_eq!(drawing(60, true, true, false, false), Drawing::Full);
        // A burst of 200: in outline while the flood lasts...
        assert_eq!(drawing(200, true, true, false, false), Drawing::Outline);
        assert_eq!(drawing(200, true, true, true, false), Drawing::Outline);
        // ...in full as soon as it slows down, going on or not.
        assert_eq!(drawing(200, false, true, true, false), Drawing::Full);
        assert_eq!(drawing(200, false, false, true, false), Drawing::Full);
        // Settled in a flood: its settling outlined once, then in full.
        assert_eq!(
            drawing(200, true, false, true, false),
            Drawing::OutlineThenFull
        );
        assert_eq!(drawing(200, true, false, true, true), Drawing::Full);
        // A settled run that was drawn in full is not outlined again (a new
        // flood from another run picked does not make it flash).
        assert_eq!(drawing(200, true, false, false, false), Drawing::Full);
    }

    #[test]
    fn a_lesson_burst_is_no_flood_and_a_burst_of_two_hundred_is() {
        let mut f = Flood::default();
        // A burst of 12: its fetch calls, then its steps and events over
        // a few frames.
        for (k, n) in [12, 20, 18, 14, 11].into_iter().enumerate() {
            f.record(1000.0 + 16.7 * k as f64, n);
        }
        assert!(!f.flooding(1070.0), "75 changes in half a second");
        // A burst of 200 to a fast endpoint.
        let mut f = Flood::default();
        for k in 0..10 {
            f.record(2000.0 + 16.7 * f64::from(k), 60);
        }
        assert!(f.flooding(2160.0));
    }

    #[test]
    fn the_flood_ends_when_its_frames_leave_the_window() {
        let mut f = Flood::default();
        f.record(0.0, 60);
        f.record(100.0, 60);
        f.record(200.0, 10);
        assert!(f.flooding(300.0));
        // Without the first two frames, 10 are left: below `STILL` when the
        // second leaves the window.
        assert_eq!(f.ends_at(300.0), Some(600.0));
        assert!(!f.flooding(500.0), "70 left: no new flood begins");
        assert!(
            f.still_flooding(599.9),
            "70 left: a flood that began goes on"
        );
        assert!(!f.still_flooding(600.0));
        // A frame recorded later drops what is out of the window.
        f.record(650.0, 45);
        assert!(!f.flooding(650.0) && f.still_flooding(650.0), "10 + 45");
        assert_eq!(
            f.ends_at(650.0),
            Some(700.0),
            "the 10 of 200 ms leave at 700"
        );
        f.record(800.0, 0);
        assert!(!f.still_flooding(800.0));
        assert_eq!(f.ends_at(800.0), None);
    }

    #[test]
    fn a_rate_about_the_threshold_does_not_switch_back_and_forth() {
        // About 200 changes a second, a frame every 50 ms: once begun, the
        // flood goes on while the rate dips under 200 a second.
        let mut f = Flood::default();
        let (mut began, mut dipped) = (false, false);
        for k in 0..40 {
            let now = 50.0 * f64::from(k);
            f.record(now, if k % 4 == 0 { 6 } else { 11 });
            dipped |= began && !f.flooding(now);
            began |= f.flooding(now);
            if began {
                assert!(f.still_flooding(now), "at {now} ms");
            }
        }
        assert!(began && dipped, "the rate crossed 200 a second both ways");
    }

    #[test]
    fn an_endpoint_six_at_a_time_is_no_flood() {
        // 200 requests to a one-second endpoint: six start and six end each
        // second, with their steps (about 36 changes a second).
        let mut f = Flood::default();
        for s in 0..30 {
            f.record(1000.0 * f64::from(s), 36);
            assert!(!f.flooding(1000.0 * f64::from(s) + 1.0));
        }
    }
}
