//! The lesson track, the landing page, drawn without yew (issue #14,
//! figure 5: the download's size; yew's virtual DOM, scheduler and hooks,
//! with what they instantiated, were about a third of this bundle).
//!
//! One [`Track`] holds everything the page is: its [`Lab`] (store, frame
//! dispatcher, live link, the timeline's drawing), the lesson open with its
//! runner, and what is drawn. It draws with [`crate::dom`] (the whole page
//! described, what changed patched in place) after every change: a batch
//! of the server's events applied at an animation frame, a click, the
//! URL's fragment, an answer from the server, the running lesson's clock.
//! One listener per kind of event on the document's body finds what the
//! learner clicked by its id or data attribute.

mod lesson;

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use gloo_timers::callback::Interval;
use protocol::{ClientMessage, SessionId};
use wasm_bindgen::JsCast;
use web_sys::{Element, Event};

use self::lesson::{Click, Context, LessonPage};
use crate::dom::{self, Listener, Web, el, outwards, target};
use crate::lessons::runner::{Command, PutBack, Runner, Stage};
use crate::lessons::{self, LessonWords, Listed};
use crate::page::{Drawn, Holds, Lab, listen, with};
use crate::services::fetch::now_ms;
use crate::services::session;
use crate::shell::{self, Page, location_hash, set_hash};

/// The slot of the page's `main` holding the lesson list or the lesson
/// (after the header, the links, and the note on an unknown lesson).
const LESSON: usize = 3;
/// The slot of the timeline's section.
const TIMELINE: usize = 4;

/// Starts the lesson track: a session, then the page.
pub fn start() {
    crate::page::start(Track::mount);
}

/// The lesson in the URL (`#lesson=ID`), or `None` for the list.
fn lesson_from_location() -> Option<&'static str> {
    let hash = location_hash();
    let id = hash.trim_start_matches('#').strip_prefix("lesson=")?;
    lessons::find(id).map(|l| l.id())
}

/// A lesson named in the URL that this page does not have (a mistyped or
/// old link), cut to a readable length: the list says so instead of
/// showing itself as if nothing had been asked.
fn unknown_lesson_in_location() -> Option<String> {
    let hash = location_hash();
    let id = hash.trim_start_matches('#').strip_prefix("lesson=")?;
    if lessons::find(id).is_some() {
        return None;
    }
    let mut shown: String = id.chars().take(40).collect();
    if shown.len() < id.len() {
        shown.push('…');
    }
    Some(shown)
}

/// The page.
struct Track {
    /// Itself, for its clocks and fetches: weak, so they do not keep it.
    me: Weak<RefCell<Track>>,
    /// The document's body, which the page is drawn in.
    body: Element,
    /// The body's children as drawn (the page's `main`).
    live: Drawn,
    /// The live lab: store, link, ports, the timeline's drawing.
    lab: Lab,
    /// The page is drawn large, for the back of the room.
    projector: bool,
    /// The server's catalogue of lessons, once it answered.
    listed: Option<Result<Vec<Listed>, String>>,
    /// The lesson open, or `None` for the list.
    page: Option<LessonPage>,
    /// What a lesson left while the live link was down still owes the
    /// session (its settings put back, its held requests released): sent
    /// once the link is open, and no lesson runs before
    /// ([`Runner::unsent`]).
    owed: Vec<Command>,
    /// What the lesson left last put back, while the list is open: the
    /// next lesson opened waits for it as well ([`Runner::waits_for`]).
    parked: Option<PutBack>,
    /// The body's listeners, and the URL fragment's.
    _listeners: [Listener; 4],
}

impl Holds for Track {
    fn lab(&mut self) -> &mut Lab {
        &mut self.lab
    }

    /// The store changed: the lesson moves on, the room may have moved,
    /// and the page is drawn again.
    fn changed(&mut self) {
        let state = self.lab.state();
        if state.socket == crate::state::SocketStatus::Open && !self.owed.is_empty() {
            let owed = std::mem::take(&mut self.owed);
            self.execute(owed);
            // The lesson opened since (or the next) waits for them from now.
            if let Some(page) = &mut self.page {
                page.runner.put_back_sent(now_ms());
            } else if let Some(back) = &mut self.parked {
                back.sent(now_ms());
            }
        }
        if let Some(page) = &mut self.page {
            let commands = page.runner.poll(&state, now_ms());
            self.execute(commands);
        }
        let moved = self.lab.room_moved(&state);
        // The instructor moved the room: open that lesson (a late joiner
        // too; not a learner who came from the workbench to pick one).
        if let Some(lesson) = moved.as_deref().and_then(lessons::find) {
            self.open(Some(lesson.id()));
        }
        Track::draw(self);
    }

    fn draw(&mut self) {
        Track::draw(self);
    }
}

impl Track {
    /// The page for `session`, drawn in `body` (which shows `live`).
    fn mount(body: Element, live: Drawn, session: SessionId, resumed: bool) {
        let track = Rc::new_cyclic(|me: &Weak<RefCell<Track>>| {
            let window: web_sys::EventTarget = web_sys::window()
                .map(Into::into)
                .unwrap_or_else(|| body.clone().into());
            RefCell::new(Track {
                _listeners: [
                    listen(me, &body, "click", Track::on_click),
                    listen(me, &body, "input", Track::on_input),
                    listen(me, &body, "keydown", Track::on_key),
                    listen(me, &window, "hashchange", |t, _| {
                        t.open_in_place(lesson_from_location())
                    }),
                ],
                me: me.clone(),
                body,
                live,
                lab: Lab::new(session, resumed),
                projector: crate::live::projector_at_start(),
                listed: None,
                page: None,
                owed: Vec::new(),
                parked: None,
            })
        });
        let me = Rc::downgrade(&track);
        track.borrow_mut().open_in_place(lesson_from_location());
        Lab::go_live(track);
        // The catalogue.
        wasm_bindgen_futures::spawn_local(async move {
            let listed = session::json::<Vec<Listed>>("GET", "/api/lessons", None).await;
            with(&me, |t: &mut Track| {
                t.listed = Some(listed);
                t.draw();
            });
        });
    }

    /// Carries out the runner's commands (a failed burst start feeds back
    /// in).
    fn execute(&mut self, commands: Vec<Command>) {
        let mut queue = commands;
        while !queue.is_empty() {
            let mut next = Vec::new();
            for command in queue {
                let message = match command {
                    Command::SetPolicy(config) => ClientMessage::SetConfig { config },
                    Command::Release(id) => ClientMessage::Release { request: None, id },
                    Command::Send(message) => message,
                    Command::Fire(settings) => {
                        let fired = self.lab.fire(settings);
                        if let Some(page) = &mut self.page {
                            match fired {
                                Ok(run) => page.runner.fired(run),
                                Err(why) => next.extend(page.runner.fire_failed(why)),
                            }
                        }
                        continue;
                    }
                };
                // Not sent (the link is down): the runner notices by its
                // own timeouts and says so.
                let _ = self.lab.link.send(&message);
            }
            queue = next;
        }
    }

    /// Opens `lesson` (or the list, `None`), and says so in the URL.
    fn open(&mut self, lesson: Option<&'static str>) {
        set_hash(&lesson.map_or("lessons".to_owned(), |id| format!("lesson={id}")));
        self.open_in_place(lesson);
    }

    /// Shows `lesson` (or the list) without touching the URL (Back and
    /// Forward, or a link, changed it). The same lesson stays as it is.
    fn open_in_place(&mut self, lesson: Option<&'static str>) {
        if self.page.as_ref().map(|p| p.lesson.id()) == lesson {
            return self.draw();
        }
        // A lesson left while it runs is undone first: its requests ended
        // and released, its agent stopped, its settings put back.
        let link_open = self.lab.state().socket == crate::state::SocketStatus::Open;
        let undo = self
            .page
            .as_mut()
            .map_or_else(Vec::new, |p| p.runner.abandon(link_open));
        if self.page.as_ref().is_some_and(|p| p.tick.is_some()) {
            crate::services::burst::abort_all();
        }
        self.execute(undo);
        if let Some(page) = &mut self.page {
            self.owed.extend(page.runner.unsent());
        }
        // The next lesson's run waits for what the left one put back to be
        // in force, also when the list comes between them.
        if let Some(back) = self.page.as_mut().and_then(|p| p.runner.take_put_back()) {
            self.parked = Some(back);
        }
        self.page = lesson.and_then(lessons::find).map(LessonPage::new);
        if let Some(page) = &mut self.page {
            page.runner.waits_for(self.parked.take());
        }
        // A lesson of its own: its elements made anew, as for a new page
        // (a number typed in the last one stays with it).
        if let Some(main) = self.live.first_mut().and_then(|s| s.first_mut()) {
            let (parent, slots) = main.parts();
            if let Some(slot) = slots.get_mut(LESSON) {
                for gone in slot.drain(..) {
                    let _ = parent.remove_child(gone.dom());
                }
            }
        }
        if let Some(page) = &self.page {
            let (id, me) = (page.lesson.id(), self.me.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let path = format!("/api/lessons/{id}");
                let words = session::json::<LessonWords>("GET", &path, None).await;
                with(&me, |t| {
                    if let Some(page) = t.page.as_mut().filter(|p| p.lesson.id() == id) {
                        page.words = Some(words);
                        t.draw();
                    }
                });
            });
        }
        self.draw();
    }

    /// A click on the page.
    fn on_click(&mut self, e: &Event) {
        for el in outwards(target(e)) {
            match el.id().as_str() {
                shell::NAV_LESSONS => {
                    e.prevent_default();
                    return self.open(None);
                }
                shell::RECONNECT => return self.lab.link.reconnect(),
                shell::RELOAD => return shell::reload(),
                shell::PROJECTOR => {
                    self.projector = !self.projector;
                    crate::live::remember_projector(self.projector);
                    return self.draw();
                }
                _ => {}
            }
            if let Some(click) = Click::of(&el) {
                return self.lesson_click(click);
            }
        }
    }

    /// A click on the lesson list or the lesson.
    fn lesson_click(&mut self, click: Click) {
        let state = self.lab.state();
        match click {
            Click::Open(id) => return self.open(Some(id)),
            Click::Back => return self.open(None),
            _ => {}
        }
        let Some(page) = &mut self.page else { return };
        match click {
            Click::Choice(i) => page.runner.predict(lessons::Answer::Choice(i)),
            Click::LockNumber => {
                if let Some(n) = page.typed() {
                    page.runner.predict(lessons::Answer::Number(n));
                }
            }
            Click::Run => {
                let commands = page.runner.start(&state, now_ms());
                self.execute(commands);
            }
            Click::Again => page.runner = Runner::new(page.lesson),
            Click::Open(_) | Click::Back => {}
        }
        self.draw();
    }

    /// Typing the prediction.
    fn on_input(&mut self, e: &Event) {
        let Some(input) = target(e).and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return;
        };
        if let Some(page) = &mut self.page
            && input.id() == "prediction"
        {
            page.number = input.value();
            self.draw();
        }
    }

    /// Enter in the prediction's field locks it in, as the button does
    /// (found in review: Enter did nothing, and Run stayed disabled).
    fn on_key(&mut self, e: &Event) {
        let in_prediction = target(e)
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
            .is_some_and(|input| input.id() == "prediction");
        let enter = e
            .dyn_ref::<web_sys::KeyboardEvent>()
            .is_some_and(|k| k.key() == "Enter");
        if in_prediction && enter {
            e.prevent_default();
            self.lesson_click(Click::LockNumber);
        }
    }

    /// The running lesson's clock: it moves on, and is drawn again when its
    /// stage or step changed.
    fn tick(&mut self) {
        let state = self.lab.state();
        let Some(page) = &mut self.page else { return };
        let now = now_ms();
        let at = |r: &Runner| (r.stage.clone(), r.progress(), r.settled(&state, now));
        let before = at(&page.runner);
        let commands = page.runner.poll(&state, now);
        self.execute(commands);
        let after = self.page.as_ref().map(|p| at(&p.runner));
        if after.as_ref() != Some(&before) {
            self.draw();
        }
    }

    /// Draws the page as it is now.
    fn draw(&mut self) {
        let state = self.lab.state();
        let connected = state.socket == crate::state::SocketStatus::Open;
        // Nothing a lesson left is owed any more: a run now would save
        // those settings as the learner's.
        let ready = self.lab.ports.is_some() && state.config.is_some() && self.owed.is_empty();
        let https_origins = crate::live::https_origins(self.lab.ports);
        let now = now_ms();
        // The lesson's clock, while it runs and while what a run put back
        // waits for the server (found in review: a wait that ended by its
        // limit, nothing else changing, left Run disabled until a pong).
        if let Some(page) = &mut self.page {
            let running = page.runner.stage == Stage::Running;
            if running != page.running {
                page.running = running;
                // A run cut short (failed, or stopped at a wait's limit):
                // the page's requests still under way end with it.
                if !running && (page.runner.stopped_early || page.runner.outcome.is_none()) {
                    crate::services::burst::abort_all();
                }
            }
            let ticking = running || !page.runner.settled(&state, now);
            if ticking != page.tick.is_some() {
                page.tick = ticking.then(|| {
                    let me = self.me.clone();
                    Interval::new(100, move || with(&me, Track::tick))
                });
            }
        }
        // Tell the room (the instructor's view) where this learner is.
        if let Some(page) = &mut self.page {
            let now_reported = (page.report(), connected);
            if page.reported.as_ref() != Some(&now_reported) {
                if connected {
                    let _ = self.lab.link.send(&ClientMessage::LessonReport {
                        report: now_reported.0.clone(),
                    });
                }
                page.reported = Some(now_reported);
            }
        }
        let unknown = self
            .page
            .is_none()
            .then(unknown_lesson_in_location)
            .flatten()
            .map(|id| {
                el("p")
                    .attr("class", "error")
                    .attr("role", "status")
                    .attr("id", "unknown-lesson")
                    .text(format!(
                        "There is no lesson called “{id}” here: choose one from the list below."
                    ))
                    .done()
            });
        let lesson = match &self.page {
            Some(page) => page.draw(&Context {
                state: &state,
                ready,
                https_origins: &https_origins,
                now_ms: now,
            }),
            None => lesson::list(self.listed.as_ref()),
        };
        let main = shell::main(
            &state,
            Page::Lessons,
            self.projector,
            vec![
                unknown.into_iter().collect(),
                vec![lesson],
                vec![self.lab.section()],
            ],
        );
        dom::patch(&mut Web, &self.body, &mut self.live, &[vec![main]]);
        // An open lesson draws its own runs only: before it has fired, not
        // the lesson before's (found in review: "Six lanes", not yet run,
        // showed the pools lesson's run).
        let run = match &mut self.page {
            Some(page) => page.drawn_run(&state),
            None => state.current().cloned(),
        };
        let outline = self.lab.outline(run.as_ref(), false);
        self.lab
            .draw_timeline(&state, run, (&self.live, TIMELINE), (false, outline));
    }
}
