//! The timeline on the page, without yew: its own state (zoom, focus, what
//! is in view, the clock), the drawing last made, and its listeners.
//!
//! One listener per kind of event on the section, not one per row and
//! button (delegation: a row is found from the element the event is on), and
//! one on the scrolling box (a scroll does not bubble). A change of its own
//! (a zoom, a focus, a scroll into other rows, the view growing with "now")
//! draws it again at once, without drawing the page around it;
//! the clock's tick only moves the "now" line, a few attributes.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use gloo_timers::callback::Interval;
use wasm_bindgen::JsCast;
use web_sys::{Element, Event, EventTarget, KeyboardEvent, MouseEvent};

use super::row::Row;
use super::{
    Focus, Input, LIGHT_SLOT, Looking, ROW, WIDTH, ZOOM_KEYS, now_line, picture, slot, zoom_for,
};
use crate::dom::{self, Listener, Live, Node, Web, outwards, target};
use crate::services::fetch::now_ms;
use crate::state::Run;
use crate::timeline::{InView, Scale};

/// Where the timeline lives: its page's cell (`crate::page::Lab`), kept for
/// the document's life with its listeners and clock.
pub type Cell = RefCell<Option<Timeline>>;

/// The timeline drawn in a section.
pub struct Timeline {
    /// The section it draws in (its page's timeline section).
    section: Element,
    /// Its own cell, for its listeners: weak, so that they do not keep it.
    me: Weak<Cell>,
    /// What it draws, as its page last handed it.
    input: Option<Input>,
    /// What the learner looks at, and the clock.
    looking: Looking,
    /// The section's children as drawn.
    live: Vec<Vec<Live<Element>>>,
    /// The rows drawn, with what they were drawn from.
    rows: Vec<Vec<(Row, Node)>>,
    /// The time axis drawn.
    scale: Scale,
    /// The drawing's height.
    height: f64,
    /// Whether there was a run to draw.
    present: bool,
    /// A flooded run's outline is shown over the drawing, which is kept as
    /// last drawn until the flood ends ([`crate::flood`]).
    light: bool,
    /// The clock, and whether it ticks fast (a run is going on).
    clock: Option<(bool, Interval)>,
    /// The scrolling box's listener, once the box is drawn.
    scroll: Option<Listener>,
    /// The section's listeners.
    _listeners: [Listener; 4],
}

/// Calls `f` on the timeline in `me`, if it is still mounted and not busy.
fn with(me: &Weak<Cell>, f: impl FnOnce(&mut Timeline)) {
    crate::page::with_in(me, Option::as_mut, f)
}

/// A listener for `kind` on `target` that hands the event to `f`.
fn listen(
    me: &Weak<Cell>,
    target: &EventTarget,
    kind: &'static str,
    f: fn(&mut Timeline, &Event),
) -> Listener {
    crate::page::listen_in(me, Option::as_mut, target, kind, f)
}

impl Timeline {
    /// Draws `input` in `section`: the timeline mounted in `cell` (first),
    /// or as it is there.
    pub fn show(cell: &Rc<Cell>, section: Option<Element>, input: Input) {
        let Ok(mut t) = cell.try_borrow_mut() else {
            return;
        };
        Timeline::mount(&mut t, cell, section);
        if let Some(t) = t.as_mut() {
            if std::mem::replace(&mut t.light, false) {
                let _ = t.section.remove_attribute("data-light");
            }
            // A new run (or agent run) is fitted whole: a zoom made on the
            // one before would show it squeezed at an edge, with negative
            // times (found in review). A lesson's runs drawn as one and its
            // last run alone are two drawings, and a request focused by its
            // place in one is another request in the next: neither is kept.
            let shown = |i: &Input| {
                (
                    i.run.as_ref().map(|r| (r.id, r.is_joined())),
                    i.agent.as_ref().map(|a| a.run),
                )
            };
            if t.input
                .as_ref()
                .map(shown)
                .is_some_and(|before| before != shown(&input))
            {
                t.looking.zoom = None;
                if matches!(t.looking.focus, Some(super::Focus::Request(_))) {
                    t.looking.focus = None;
                }
            }
            t.input = Some(input);
            t.draw();
        }
    }

    /// Shows `run` in outline over the drawing, which stays as it was
    /// ([`super::light`]): the timeline mounted in `cell` (first), or as it
    /// is there.
    pub fn show_light(cell: &Rc<Cell>, section: Option<Element>, run: &Run, dropped: u64) {
        let Ok(mut t) = cell.try_borrow_mut() else {
            return;
        };
        Timeline::mount(&mut t, cell, section);
        let Some(t) = t.as_mut() else { return };
        let began = !std::mem::replace(&mut t.light, true);
        if began {
            let _ = t.section.set_attribute("data-light", "");
        }
        if t.live.len() <= LIGHT_SLOT {
            t.live.resize_with(LIGHT_SLOT + 1, Vec::new);
        }
        let outline = super::light::picture(run, dropped);
        dom::patch_slot(&mut Web, &t.section, &mut t.live, LIGHT_SLOT, &[outline]);
        // The keyboard's focus in the hidden drawing (a row, its box) moves
        // to the outline, so keys do not go to what cannot be seen.
        if began
            && let Some(active) = web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.active_element())
            && t.section.contains(Some(&active))
            && let Some(outline) = t.live.get(LIGHT_SLOT).and_then(|s| s.first())
        {
            let _ = outline
                .dom()
                .unchecked_ref::<web_sys::HtmlElement>()
                .focus();
        }
    }

    /// The timeline in `t`, mounted in `section` if it is not yet.
    fn mount(t: &mut Option<Timeline>, cell: &Rc<Cell>, section: Option<Element>) {
        if t.is_none()
            && let Some(section) = section
        {
            let me = Rc::downgrade(cell);
            let on = |kind, f| listen(&me, &section, kind, f);
            *t = Some(Timeline {
                _listeners: [
                    on("click", Timeline::on_click),
                    on("keydown", Timeline::on_key),
                    on("mouseover", Timeline::on_over),
                    on("focusin", Timeline::on_focus),
                ],
                section,
                me,
                input: None,
                looking: Looking {
                    now: now_ms(),
                    ..Looking::default()
                },
                live: Vec::new(),
                rows: Vec::new(),
                scale: Scale {
                    start_ms: 0.0,
                    end_ms: 0.0,
                    left: 0.0,
                    right: 0.0,
                },
                height: 0.0,
                present: false,
                light: false,
                clock: None,
                scroll: None,
            });
        }
    }

    /// Draws it again, patching what changed (not while a flooded run's
    /// outline is shown: the drawing waits for the flood's end).
    fn draw(&mut self) {
        let Some(input) = self.input.as_ref().filter(|_| !self.light) else {
            return;
        };
        // "Now" as this drawing is made: the events it draws may be newer
        // than the clock's last tick, and a bar must not begin right of
        // the "now" line (nor be cut away by the clip there).
        self.looking.now = now_ms();
        let mut pic = picture(input, &self.looking, &self.rows);
        loop {
            // The drawing and its box come and go with the run shown; a new
            // box starts at its top.
            if pic.present != self.present {
                self.present = pic.present;
                if self.looking.in_view.take().is_some() {
                    pic = picture(input, &self.looking, &self.rows);
                    continue;
                }
            }
            // "Now" past the right edge of a live view: the view grows.
            let now = self.looking.now;
            if pic.live && now > pic.scale.end_ms && now > self.looking.grown {
                self.looking.grown = now + 1.0;
                pic = picture(input, &self.looking, &self.rows);
                continue;
            }
            break;
        }
        dom::patch(&mut Web, &self.section, &mut self.live, &pic.section);
        (self.rows, self.scale, self.height) = (pic.rows, pic.scale, pic.height);
        if self.clock.as_ref().map(|c| c.0) != Some(pic.live) {
            let me = self.me.clone();
            let every = if pic.live { 40 } else { 500 };
            let tick = Interval::new(every, move || with(&me, Timeline::tick));
            self.clock = Some((pic.live, tick));
        }
        if self.scroll.is_none()
            && let Some(b) = self.scroll_box()
        {
            self.scroll = Some(listen(&self.me, b, "scroll", Timeline::on_scroll));
        }
    }

    /// The clock: "now" moves; past the right edge of a live view the view
    /// grows, otherwise only the "now" line moves.
    fn tick(&mut self) {
        if self.light {
            return;
        }
        let now = now_ms();
        self.looking.now = now;
        let live = self.clock.as_ref().is_some_and(|c| c.0);
        if live && now > self.scale.end_ms && now > self.looking.grown {
            self.draw();
            return;
        }
        let line = now_line(&self.scale, self.height, now);
        if let Some(svg) = self.svg() {
            let (dom, kids) = svg.parts();
            dom::patch_slot(&mut Web, dom, kids, slot::NOW, &line);
        }
    }

    /// The scrolling box.
    fn scroll_box(&self) -> Option<&Element> {
        Some(self.live.get(2)?.first()?.dom())
    }

    /// The drawing, `svg#timeline`.
    fn svg(&mut self) -> Option<&mut Live<Element>> {
        let (_, kids) = self.live.get_mut(2)?.first_mut()?.parts();
        kids.first_mut()?.first_mut()
    }

    /// The row drawn as `el`, if it is one.
    fn row_of(&self, el: &Element) -> Option<&Row> {
        let svg = self.live.get(2)?.first()?.kid(0, 0)?;
        self.rows.iter().enumerate().find_map(|(slot, rows)| {
            let k = svg.slot(slot).iter().position(|l| l.dom() == el)?;
            rows.get(k).map(|(row, _)| row)
        })
    }

    /// Zooms or pans as `key` says, if it is a zoom key.
    fn zoom(&mut self, key: &str) -> bool {
        // Not while the outline is shown: the drawing it would zoom is hidden.
        let Some(zoom) = zoom_for(self.scale, key).filter(|_| !self.light) else {
            return false;
        };
        self.looking.zoom = zoom;
        self.draw();
        true
    }

    /// The focus moves to `focus` (pointed at, tabbed to).
    fn focus(&mut self, focus: Option<Focus>) {
        if self.looking.focus != focus {
            self.looking.focus = focus;
            self.draw();
        }
    }

    /// A toolbar button.
    fn on_click(&mut self, e: &Event) {
        let Some(button) = target(e) else {
            return;
        };
        let toolbar = self.live.first().and_then(|s| s.first());
        let k = toolbar.and_then(|t| t.slot(0).iter().position(|l| *l.dom() == button));
        if let Some(key) = k.and_then(|k| ZOOM_KEYS.get(k.wrapping_sub(1))) {
            self.zoom(key);
        }
    }

    /// The zoom keys, in the scrolling box (or on a row in it).
    fn on_key(&mut self, e: &Event) {
        let inside = self
            .scroll_box()
            .is_some_and(|b| outwards(target(e)).any(|t| t == *b));
        // A `keydown` listener's events are keyboard events.
        if inside && self.zoom(&e.unchecked_ref::<KeyboardEvent>().key()) {
            e.prevent_default();
        }
    }

    /// The pointer enters a row (from outside it: moving within the row
    /// changes nothing, as `mouseenter`).
    fn on_over(&mut self, e: &Event) {
        // A row's children hold no elements: the pointer is on the row or on
        // one of its children.
        let Some((row, focus)) = outwards(target(e)).take(2).find_map(|t| {
            let focus = self.row_of(&t)?.focus();
            Some((t, focus))
        }) else {
            return;
        };
        // A `mouseover` listener's events are mouse events, and what the
        // pointer comes from is an element (or nothing, from outside).
        let from = e.unchecked_ref::<MouseEvent>().related_target();
        if !outwards(from.map(JsCast::unchecked_into))
            .take(2)
            .any(|f| f == row)
        {
            self.focus(focus);
        }
    }

    /// The keyboard focus lands on a row.
    fn on_focus(&mut self, e: &Event) {
        if let Some(focus) = target(e).and_then(|t| self.row_of(&t).map(Row::focus)) {
            self.focus(focus);
        }
    }

    /// The box scrolled: what is in view, in blocks of ten rows (most
    /// scrolls stay in their block and draw nothing).
    fn on_scroll(&mut self, _: &Event) {
        let Some(b) = self.scroll_box() else {
            return;
        };
        // The drawing's width is the box's scrolled width: on a narrow
        // screen the drawing is wider than the box (its `min-width`), and
        // the box's own width would put the rows in view further down than
        // they are.
        let v = InView::measure(
            f64::from(b.scroll_top()),
            (f64::from(b.client_height()), f64::from(b.scroll_width())),
            WIDTH,
            ROW * 10.0,
        );
        if self.looking.in_view != Some(v) {
            self.looking.in_view = Some(v);
            self.draw();
        }
    }
}
