//! One render per animation frame, whatever happens.
//!
//! Everything that changes the state (server events, the page's own
//! `fetch` steps, the socket's status, clock samples) is queued here and
//! applied as one [`Action::Batch`] at the next animation frame, or
//! [`SOON_MS`] after the last flush if that comes first: a change to an
//! idle page is applied at once, and one that arrives just after a frame
//! does not wait the whole of the next. A burst of hundreds of requests
//! therefore costs at most a few re-renders per frame, and the main thread
//! stays free to run the next frame on time.
//!
//! For `cargo xtask bench`, each stamped server event's latency is recorded
//! twice (ms from the server's stamp, on the synced clock, bounded lists in
//! `window.__keepaliveLab`): `eventReceiptMs` when the socket hands it to
//! the page (before this queue), and `eventLatencyMs` when the flush has
//! applied it to the document. The first is what the browser delivered;
//! the difference is the wait for the next flush and the flush's own work
//! (the drawing). The browser paints it at the next frame after that: a
//! flush by the timer applies it sooner, but shows it no sooner than that
//! frame (the bench stamps that frame itself, `bench/src/browser.rs`).

use std::cell::RefCell;
use std::rc::Rc;

use protocol::{Micros, ServerEvent};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

use crate::clock::{ClockSync, Sample};
use crate::flood::Flood;
use crate::services::fetch::now_ms;
use crate::state::Action;
use crate::store::Store;

/// Latencies kept in each of `window.__keepaliveLab`'s lists.
const MAX_LATENCIES: u32 = 20_000;

/// Actions waiting for the next frame.
#[derive(Default)]
struct Queue {
    /// In arrival order; consecutive server events share one `ServerBatch`.
    actions: Vec<Action>,
    /// A frame callback is already scheduled.
    frame_requested: bool,
    /// A timer is set to flush before the frame if that comes sooner
    /// ([`soon_wait_ms`]).
    soon_requested: bool,
    /// Page time of the last flush that applied anything, ms.
    flushed_at: f64,
    /// The page's request script has steps waiting (`services::burst`):
    /// taken before the next action is queued, so the order is kept.
    steps_waiting: bool,
    /// The best clock sync so far, for the latency figures.
    clock: ClockSync,
    /// The changes applied at recent frames: whether the page is flooded.
    flood: Flood,
    /// A timer is set for when the flood would end: then the page is told
    /// (so it draws in full without waiting for another change).
    flood_timer: bool,
}

/// What a timer or frame callback set by [`FrameDispatch::later`] is for.
#[derive(Clone, Copy)]
enum Wake {
    /// The next animation frame: flush.
    Frame,
    /// [`SOON_MS`] after the flush at this page time: flush, unless a frame
    /// flushed since.
    Soon(f64),
    /// The flood's end ([`FrameDispatch::watch_flood`]).
    FloodEnd,
    /// The frame after which a redraw asked for may come: asks for the
    /// next ([`FrameDispatch::redraw_next_frame`]).
    AfterPaint,
    /// That next frame: flush, and tell the watchers even with no change.
    Redraw,
}

/// Queues actions for the next animation frame. Cheap to clone.
#[derive(Clone)]
pub struct FrameDispatch {
    queue: Rc<RefCell<Queue>>,
    store: Rc<Store>,
}

impl PartialEq for FrameDispatch {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.queue, &other.queue)
    }
}

impl std::fmt::Debug for FrameDispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDispatch").finish_non_exhaustive()
    }
}

impl FrameDispatch {
    /// A dispatcher for the page's `store`, with an empty queue.
    pub fn new(store: Rc<Store>) -> FrameDispatch {
        FrameDispatch {
            queue: Rc::default(),
            store,
        }
    }

    /// Queues `action`.
    pub fn send(&self, action: Action) {
        self.take_steps();
        if let Action::ServerBatch(events) = &action {
            let mut stamps = Vec::new();
            stamps_of(events, &mut stamps);
            if !stamps.is_empty() {
                let clock = self.queue.borrow().clock;
                record_latencies(List::Received, &stamps, &clock);
            }
        }
        let mut queue = self.queue.borrow_mut();
        match (queue.actions.last_mut(), action) {
            (Some(Action::ServerBatch(events)), Action::ServerBatch(more)) => events.extend(more),
            (_, Action::Clock(sample)) => {
                queue.clock.add(sample);
                queue.actions.push(Action::Clock(sample));
            }
            (_, action) => queue.actions.push(action),
        }
        drop(queue);
        self.schedule();
    }

    /// Queues one server event.
    pub fn event(&self, event: ServerEvent) {
        self.send(Action::ServerBatch(vec![event]));
    }

    /// Queues a clock-sync sample.
    pub fn clock(&self, sample: Sample) {
        self.send(Action::Clock(sample));
    }

    /// The page's request script recorded steps: they are taken before the
    /// next action is queued, or at the next flush.
    pub fn steps_waiting(&self) {
        self.queue.borrow_mut().steps_waiting = true;
        self.schedule();
    }

    /// Queues the request script's waiting steps, in the order they happened.
    fn take_steps(&self) {
        if !std::mem::replace(&mut self.queue.borrow_mut().steps_waiting, false) {
            return;
        }
        let steps = crate::services::burst::take_steps();
        self.queue.borrow_mut().actions.extend(steps);
    }

    fn schedule(&self) {
        let (frame, soon) = {
            let mut queue = self.queue.borrow_mut();
            let frame = !std::mem::replace(&mut queue.frame_requested, true);
            let soon = !std::mem::replace(&mut queue.soon_requested, true);
            let last = queue.flushed_at;
            (frame, soon.then(|| (last, soon_wait_ms(last, now_ms()))))
        };
        if frame {
            self.later(Wake::Frame, 0);
        }
        if let Some((last, wait)) = soon {
            self.later(Wake::Soon(last), wait);
        }
    }

    /// Calls [`FrameDispatch::fire`] with `wake` `wait` ms from now
    /// ([`Wake::Soon`], [`Wake::FloodEnd`]) or at the next animation frame
    /// (the others). Whether it was set.
    fn later(&self, wake: Wake, wait: i32) -> bool {
        let Some(window) = web_sys::window() else {
            return false;
        };
        let this = self.clone();
        let fire = Closure::once_into_js(move || this.fire(wake));
        let fire = fire.unchecked_ref();
        match wake {
            Wake::Soon(_) | Wake::FloodEnd => {
                window.set_timeout_with_callback_and_timeout_and_arguments_0(fire, wait)
            }
            _ => window.request_animation_frame(fire),
        }
        .is_ok()
    }

    /// What [`FrameDispatch::later`] set came.
    fn fire(&self, wake: Wake) {
        let mut queue = self.queue.borrow_mut();
        match wake {
            Wake::Frame => {
                queue.frame_requested = false;
                drop(queue);
                self.flush(false);
            }
            Wake::AfterPaint => {
                drop(queue);
                self.later(Wake::Redraw, 0);
            }
            Wake::Redraw => {
                drop(queue);
                self.flush(true);
            }
            Wake::Soon(last) => {
                queue.soon_requested = false;
                let waiting = !queue.actions.is_empty() || queue.steps_waiting;
                // A frame flushed since this timer was set: what came after
                // that waits from it.
                let flushed_since = queue.flushed_at != last;
                drop(queue);
                if !flushed_since {
                    self.flush(false);
                } else if waiting {
                    self.schedule();
                }
            }
            Wake::FloodEnd => {
                queue.flood_timer = false;
                drop(queue);
                if self.still_flooding() {
                    self.watch_flood();
                } else {
                    self.store.told_again();
                }
            }
        }
    }

    /// Tells the store's watchers in a frame after the next one's paint,
    /// with whatever changed by then or without a change: the drawing that
    /// settled a flooded run's outline asks for its full drawing so
    /// (`crate::page::Lab::outline`), and the outline with the run's last
    /// events is painted first whether that drawing came at a frame or from
    /// the timer (found in review: from the timer, the full drawing came
    /// before the frame's paint, and the last events waited for it).
    pub fn redraw_next_frame(&self) {
        self.later(Wake::AfterPaint, 0);
    }

    /// Applies what is queued; with nothing queued, tells the watchers all
    /// the same when `told`.
    fn flush(&self, told: bool) {
        self.take_steps();
        let (actions, clock) = {
            let mut queue = self.queue.borrow_mut();
            (std::mem::take(&mut queue.actions), queue.clock)
        };
        if actions.is_empty() {
            if told {
                self.store.told_again();
            }
            return;
        }
        let now = now_ms();
        self.queue.borrow_mut().flushed_at = now;
        // Each request composed is a row to draw: a burst of 200 is a flood
        // from its first frame, before its `fetch` steps.
        let mut changes = 0;
        let mut stamps = Vec::new();
        for action in &actions {
            changes += match action {
                Action::ServerBatch(events) => stamps_of(events, &mut stamps),
                Action::RunStarted { requests, .. } => requests.len(),
                _ => 1,
            };
        }
        self.queue
            .borrow_mut()
            .flood
            .record(now, u32::try_from(changes).unwrap_or(u32::MAX));
        self.watch_flood();
        self.store.dispatch(Action::Batch(actions));
        record_latencies(List::Applied, &stamps, &clock);
    }

    /// Whether a flood of changes begins or goes on now ([`crate::flood`]).
    pub fn flooding(&self) -> bool {
        self.queue.borrow().flood.flooding(now_ms())
    }

    /// Whether a flood that began goes on now ([`crate::flood::STILL`]).
    pub fn still_flooding(&self) -> bool {
        self.queue.borrow().flood.still_flooding(now_ms())
    }

    /// While flooded, a timer at the flood's end: then, if no change came
    /// meanwhile to keep it going, the store's watchers are told, so the
    /// page draws in full.
    fn watch_flood(&self) {
        let now = now_ms();
        let end = {
            let queue = self.queue.borrow();
            if queue.flood_timer {
                return;
            }
            let Some(end) = queue.flood.ends_at(now) else {
                return;
            };
            end
        };
        // Whole milliseconds, rounded up (a timer early by a fraction would
        // find the flood still on and wait again).
        let wait = (end - now).ceil().clamp(1.0, crate::flood::WINDOW_MS) as i32;
        if self.later(Wake::FloodEnd, wait) {
            self.queue.borrow_mut().flood_timer = true;
        }
    }
}

/// At most one flush per this many ms before the frame's: a change is
/// applied at the next frame or this long after the last flush, whichever
/// comes first (bench figure 3: waiting for the frame was about 7 ms of a
/// burst of 200's p99, `bench/src/causes.md`).
pub const SOON_MS: f64 = 8.0;

/// How long a change queued at `now` waits for its timer: until
/// [`SOON_MS`] after the last flush (`flushed_at`), whole ms rounded up.
fn soon_wait_ms(flushed_at: f64, now: f64) -> i32 {
    (flushed_at + SOON_MS - now).ceil().clamp(0.0, SOON_MS) as i32
}

/// Appends `events`' server stamps to `stamps`; how many events there were.
fn stamps_of(events: &[ServerEvent], stamps: &mut Vec<Micros>) -> usize {
    stamps.extend(events.iter().filter_map(ServerEvent::stamped_at));
    events.len()
}

/// Stamp to applied by the flush: figure 3 of `cargo xtask bench`.
const APPLIED: &str = "eventLatencyMs";
/// Stamp to handed to the page by its socket, before the queue.
const RECEIVED: &str = "eventReceiptMs";

/// Which of the hook's two lists a latency goes to.
#[derive(Clone, Copy)]
enum List {
    /// [`RECEIVED`].
    Received,
    /// [`APPLIED`].
    Applied,
}

/// `window.__keepaliveLab`, its two lists and the clock figures last
/// written there: made once and kept, since every event the socket hands
/// over is timed (a property lookup by name, and each name turned into a
/// JavaScript string, per event were most of what timing it cost).
struct Hook {
    /// `window.__keepaliveLab`.
    lab: JsValue,
    /// Its `eventReceiptMs` ([`RECEIVED`]).
    received: js_sys::Array,
    /// Its `eventLatencyMs` ([`APPLIED`]).
    applied: js_sys::Array,
    /// `clockUncertaintyMs` and `clockOffsetMs` as last written, so they are
    /// written only when the clock sync changes.
    clock: Option<(Option<f64>, Option<f64>)>,
}

impl Hook {
    /// Finds or makes `window.__keepaliveLab` and its lists.
    fn new() -> Option<Self> {
        let window = web_sys::window()?;
        let key = JsValue::from_str("__keepaliveLab");
        let lab = js_sys::Reflect::get(&window, &key)
            .ok()
            .filter(JsValue::is_object)
            .unwrap_or_else(|| {
                let lab = js_sys::Object::new();
                let _ = js_sys::Reflect::set(&window, &key, &lab);
                lab.into()
            });
        let list = |name: &str| -> js_sys::Array {
            let name = JsValue::from_str(name);
            match js_sys::Reflect::get(&lab, &name) {
                Ok(found) if js_sys::Array::is_array(&found) => found.unchecked_into(),
                _ => {
                    let made = js_sys::Array::new();
                    let _ = js_sys::Reflect::set(&lab, &name, &made);
                    made
                }
            }
        };
        let (received, applied) = (list(RECEIVED), list(APPLIED));
        Some(Hook {
            lab,
            received,
            applied,
            clock: None,
        })
    }
}

thread_local! {
    static HOOK: RefCell<Option<Hook>> = RefCell::new(Hook::new());
}

/// Appends stamp-to-now latencies to `window.__keepaliveLab[list]`.
fn record_latencies(list: List, stamps: &[Micros], clock: &ClockSync) {
    HOOK.with_borrow_mut(|hook| {
        let Some(hook) = hook else { return };
        let list = match list {
            List::Received => &hook.received,
            List::Applied => &hook.applied,
        };
        let now = now_ms();
        for stamped in stamps.iter().filter_map(|us| clock.to_page_ms(*us)) {
            list.push(&JsValue::from_f64(now - stamped));
        }
        if list.length() > MAX_LATENCIES {
            list.splice(0, list.length() - MAX_LATENCIES, &JsValue::UNDEFINED);
        }
        // Server ms minus page ms, so a script can place server stamps itself.
        let figures = (clock.uncertainty_ms(), clock.best.map(|b| b.offset_ms()));
        if hook.clock != Some(figures) {
            hook.clock = Some(figures);
            let number = |v: Option<f64>| v.map_or(JsValue::NULL, JsValue::from_f64);
            let _ =
                js_sys::Reflect::set(&hook.lab, &"clockUncertaintyMs".into(), &number(figures.0));
            let _ = js_sys::Reflect::set(&hook.lab, &"clockOffsetMs".into(), &number(figures.1));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_waits_at_most_the_rest_of_soon_ms_after_the_last_flush() {
        // Right after a flush: the whole of SOON_MS (or the frame first).
        assert_eq!(soon_wait_ms(100.0, 100.0), 8);
        // Part-way: the rest, rounded up to whole ms.
        assert_eq!(soon_wait_ms(100.0, 103.5), 5);
        // Long after (an idle page): at once.
        assert_eq!(soon_wait_ms(100.0, 108.0), 0);
        assert_eq!(soon_wait_ms(0.0, 5_000.0), 0);
    }
}
