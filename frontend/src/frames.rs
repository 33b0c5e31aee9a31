//! One render per animation frame, whatever happens.
//!
//! Everything that changes the state (server events, the page's own
//! `fetch` steps, the socket's status, clock samples) is queued here and
//! applied as one [`Action::Batch`] at the next animation frame. A burst of
//! hundreds of requests therefore costs one re-render per frame, and the
//! main thread stays free to run the next frame on time.
//!
//! For `cargo xtask bench`, each stamped server event's latency is recorded
//! twice (ms from the server's stamp, on the synced clock, bounded lists in
//! `window.__keepaliveLab`): `eventReceiptMs` when the socket hands it to
//! the page (before this queue), and `eventLatencyMs` when the flush applies
//! it. The first is what the browser delivered; the difference is the wait
//! for the next frame's batch.

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
    /// The page's request script has steps waiting (`services::burst`):
    /// taken before the next action is queued, so the order is kept.
    steps_waiting: bool,
    /// The best clock sync so far, for the latency figures.
    clock: ClockSync,
    /// The changes applied at recent frames: whether the page is flooded.
    flood: Flood,
    /// The page asked to be told at the next frame even if nothing changes
    /// ([`FrameDispatch::redraw_next_frame`]).
    redraw: bool,
    /// A timer is set for when the flood would end: then the page is told
    /// (so it draws in full without waiting for another change).
    flood_timer: bool,
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
            let stamps: Vec<Micros> = events.iter().filter_map(ServerEvent::stamped_at).collect();
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
    /// next action is queued, or at the next frame.
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
        if std::mem::replace(&mut self.queue.borrow_mut().frame_requested, true) {
            return;
        }
        let this = self.clone();
        let flush = Closure::once_into_js(move || this.flush());
        if let Some(window) = web_sys::window() {
            let _ = window.request_animation_frame(flush.unchecked_ref());
        }
    }

    /// Tells the store's watchers at the next frame, with whatever changed
    /// by then or without a change: the drawing that settled a flooded run's
    /// outline asks for its full drawing so (`crate::page::Lab::outline`).
    pub fn redraw_next_frame(&self) {
        self.queue.borrow_mut().redraw = true;
        self.schedule();
    }

    fn flush(&self) {
        self.take_steps();
        let (actions, clock, redraw) = {
            let mut queue = self.queue.borrow_mut();
            queue.frame_requested = false;
            let redraw = std::mem::replace(&mut queue.redraw, false);
            (std::mem::take(&mut queue.actions), queue.clock, redraw)
        };
        if actions.is_empty() {
            if redraw {
                self.store.told_again();
            }
            return;
        }
        let changes: usize = actions
            .iter()
            .map(|a| match a {
                Action::ServerBatch(events) => events.len(),
                // Each request composed is a row to draw: a burst of 200 is
                // a flood from its first frame, before its `fetch` steps.
                Action::RunStarted { requests, .. } => requests.len(),
                _ => 1,
            })
            .sum();
        self.queue
            .borrow_mut()
            .flood
            .record(now_ms(), u32::try_from(changes).unwrap_or(u32::MAX));
        self.watch_flood();
        let stamps: Vec<Micros> = actions
            .iter()
            .filter_map(|a| match a {
                Action::ServerBatch(events) => {
                    Some(events.iter().filter_map(ServerEvent::stamped_at))
                }
                _ => None,
            })
            .flatten()
            .collect();
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
        let Some(window) = web_sys::window() else {
            return;
        };
        let this = self.clone();
        let at_end = Closure::once_into_js(move || {
            this.queue.borrow_mut().flood_timer = false;
            if this.still_flooding() {
                this.watch_flood();
            } else {
                this.store.told_again();
            }
        });
        // Whole milliseconds, rounded up (a timer early by a fraction would
        // find the flood still on and wait again).
        let wait = (end - now).ceil().clamp(1.0, crate::flood::WINDOW_MS) as i32;
        if window
            .set_timeout_with_callback_and_timeout_and_arguments_0(at_end.unchecked_ref(), wait)
            .is_ok()
        {
            self.queue.borrow_mut().flood_timer = true;
        }
    }
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
