//! What both participant pages are made of, without a framework: a
//! session from the server, then a [`Lab`] (the page's store, its frame
//! dispatcher and live link, where the lab's other ports listen, the agent's
//! newest run and the timeline's drawing), and the page's own state beside
//! it. The lesson track (`crate::track`) and the workbench
//! (`crate::workbench`) are each one such page.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use protocol::SessionId;
use web_sys::{Element, Event};

use crate::agent::AgentView;
use crate::components::timeline::{self, Input, Timeline};
use crate::dom::{self, Listener, Live, Node, Web, el};
use crate::frames::FrameDispatch;
use crate::services::live_link::LiveLink;
use crate::services::session;
use crate::settings::{BurstSettings, OtherPorts};
use crate::state::{LabState, Run};
use crate::store::Store;

/// The body's children as drawn.
pub type Drawn = Vec<Vec<Live<Element>>>;

/// Starts a participant page in the document's body: a session (the one
/// the other participant page handed over, or a new one), then `mount`
/// with the body, what is drawn in it, the session and whether it was
/// handed over.
pub fn start(mount: fn(Element, Drawn, SessionId, bool)) {
    let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
    else {
        return;
    };
    let body: Element = body.into();
    let mut live = Vec::new();
    let starting = el("p")
        .attr("class", "starting")
        .attr("aria-live", "polite")
        .text("Starting a session with the lab…")
        .done();
    dom::patch(&mut Web, &body, &mut live, &[vec![starting]]);
    // Taken before anything waits: a tab duplicated meanwhile must not
    // find it (found in review).
    let left = session::left_by_reload();
    wasm_bindgen_futures::spawn_local(async move {
        // A link's page leaves its session both ways: the hand-over wins.
        let id = match session::resume().await {
            Some(id) => Ok((id, true)),
            None => session::create(left).await.map(|id| (id, false)),
        };
        match id {
            Ok((id, resumed)) => mount(body, live, id, resumed),
            Err(problem) => {
                let problem = el("div")
                    .attr("class", "problem")
                    .attr("role", "alert")
                    .kids(vec![
                        el("p")
                            .text(format!("The lab could not start a session: {problem}"))
                            .done(),
                        el("p").text("Reload the page to try again.").done(),
                    ])
                    .done();
                dom::patch(&mut Web, &body, &mut live, &[vec![problem]]);
            }
        }
    });
}

/// A page's live lab.
pub struct Lab {
    /// Runs, lanes, policy: everything the page measured and heard.
    pub store: Rc<Store>,
    /// Queues changes to the store for the next animation frame.
    pub frames: FrameDispatch,
    /// The events socket.
    pub link: LiveLink,
    /// Where the lab's middlebox and HTTPS ports listen; `None` until the
    /// server answered.
    pub ports: Option<OtherPorts>,
    /// Whether the lab's host can see TCP keep-alive probes; `None` until
    /// the server answered.
    pub probes_visible: Option<bool>,
    /// The last run id given out.
    allocated: u32,
    /// The newest agent run, rebuilt only when an agent event arrived (the
    /// agent's run count and newest stamp say when).
    agent: ((usize, Option<protocol::Micros>), Option<Rc<AgentView>>),
    /// The session was handed over by the other participant page (the
    /// learner followed a link): the room's lesson at the first snapshot
    /// does not move them.
    resumed: bool,
    /// The room's lesson as last seen.
    room: crate::live::RoomSeen,
    /// The timeline's section, the same node at every drawing (so the
    /// patcher never looks into it: the timeline draws its children).
    section: Node,
    /// The timeline, drawn in its section.
    timeline: Rc<timeline::Cell>,
    /// What the timeline was last handed (`None` after an outline).
    drawn: Option<Input>,
    /// The run the last drawing outlined ([`Lab::outline`]).
    outlining: Option<u32>,
    /// The run last outlined in the drawing that settled it.
    settled: Option<u32>,
}

/// A page holding a [`Lab`]: what its listeners, clocks and fetches call.
pub trait Holds: Sized + 'static {
    /// The page's lab.
    fn lab(&mut self) -> &mut Lab;
    /// The store changed (a batch of events applied at an animation frame).
    fn changed(&mut self);
    /// Draws the page as it is now.
    fn draw(&mut self);
}

/// Calls `f` on the page, if it is still there and not busy (a change it
/// makes itself is drawn when it is done).
pub fn with<P>(me: &Weak<RefCell<P>>, f: impl FnOnce(&mut P)) {
    with_in(me, |p| Some(p), f)
}

/// Calls `f` on what `open` finds in `me`'s cell (the timeline in its
/// `Option`, for one), if the cell is still there and not busy.
pub fn with_in<S, T>(
    me: &Weak<RefCell<S>>,
    open: fn(&mut S) -> Option<&mut T>,
    f: impl FnOnce(&mut T),
) {
    if let Some(cell) = me.upgrade()
        && let Ok(mut held) = cell.try_borrow_mut()
        && let Some(t) = open(&mut held)
    {
        f(t)
    }
}

/// A listener for `kind` on `target` that hands the event to the page.
pub fn listen<P: 'static>(
    me: &Weak<RefCell<P>>,
    target: &web_sys::EventTarget,
    kind: &'static str,
    f: fn(&mut P, &Event),
) -> Listener {
    listen_in(me, |p| Some(p), target, kind, f)
}

/// A listener for `kind` on `target` that hands the event to what `open`
/// finds in `me`'s cell ([`with_in`]).
pub fn listen_in<S: 'static, T: 'static>(
    me: &Weak<RefCell<S>>,
    open: fn(&mut S) -> Option<&mut T>,
    target: &web_sys::EventTarget,
    kind: &'static str,
    f: fn(&mut T, &Event),
) -> Listener {
    let me = me.clone();
    Listener::new(target, kind, move |e: Event| {
        with_in(&me, open, |t| f(t, &e))
    })
}

impl Lab {
    /// The lab of a page for `session` (`resumed`: handed over by the other
    /// page); its link opens with [`Lab::go_live`].
    pub fn new(session: SessionId, resumed: bool) -> Lab {
        let store = Store::new(LabState::new(session.clone()));
        let frames = FrameDispatch::new(store.clone());
        let link = LiveLink::new(session, frames.clone());
        Lab {
            store,
            frames,
            link,
            ports: None,
            probes_visible: None,
            allocated: 0,
            agent: ((0, None), None),
            resumed,
            room: None,
            section: el("section")
                .attr("class", "timeline")
                .attr("aria-label", "Timeline")
                .done(),
            timeline: Rc::new(RefCell::new(None)),
            drawn: None,
            outlining: None,
            settled: None,
        }
    }

    /// Keeps `page` for the document's life, has it told of every change to
    /// the store, opens the live link and asks where the lab's other ports
    /// listen (the page is drawn again when the answer comes).
    pub fn go_live<P: Holds>(page: Rc<RefCell<P>>) {
        let me = Rc::downgrade(&page);
        let (store, link, frames, session) = {
            let mut p = page.borrow_mut();
            let lab = p.lab();
            let session = lab.store.state().session.clone();
            (
                lab.store.clone(),
                lab.link.clone(),
                lab.frames.clone(),
                session,
            )
        };
        store.watch(Rc::new({
            let me = me.clone();
            move || with(&me, P::changed)
        }));
        PAGES.with_borrow_mut(|pages| pages.push(page));
        link.reconnect();
        wasm_bindgen_futures::spawn_local(async move {
            let (ports, probes) = crate::live::other_ports(session, frames).await;
            with(&me, |p: &mut P| {
                let lab = p.lab();
                (lab.ports, lab.probes_visible) = (Some(ports), probes);
                p.draw();
            });
        });
    }

    /// The state now.
    pub fn state(&self) -> Rc<LabState> {
        self.store.state()
    }

    /// Fires a burst: its run id, or why not.
    pub fn fire(&mut self, settings: BurstSettings) -> Result<u32, String> {
        crate::live::fire(
            &self.store.state(),
            self.ports.unwrap_or_default(),
            &mut self.allocated,
            settings,
            &self.frames,
        )
    }

    /// The lesson the instructor moved the room to, if `state` says it
    /// moved since the last call ([`crate::live::room_moved`]).
    pub fn room_moved(&mut self, state: &LabState) -> Option<String> {
        let live = state.config.is_some();
        crate::live::room_moved(&mut self.room, &state.room_lesson, live, !self.resumed)
    }

    /// The timeline's section, to draw in the page: always the same node.
    pub fn section(&self) -> Node {
        self.section.clone()
    }

    /// The agent's newest run.
    pub fn agent(&mut self, state: &LabState) -> Option<Rc<AgentView>> {
        let key = (state.agent.len(), state.agent.back().map(|r| r.at_us));
        if self.agent.0 != key {
            self.agent = (key, AgentView::latest(state).map(Rc::new));
        }
        self.agent.1.clone()
    }

    /// Whether `run` is drawn in outline at this drawing: a long run going on
    /// while the page is flooded with changes ([`crate::flood`]); `whole`:
    /// drawn for an export, never outlined. The drawing that settles an
    /// outlined run still outlines it (its last events are in the outline's
    /// counts) and asks for the next frame, which draws it in full: the full
    /// drawing's cost is not added to the time those events wait.
    pub fn outline(&mut self, run: Option<&Rc<Run>>, whole: bool) -> bool {
        use crate::flood::Drawing;
        let outlined = self.outlining.take();
        let Some(run) = run.filter(|_| !whole) else {
            return false;
        };
        let outlined_last = outlined == Some(run.id);
        let long = run.requests.len() > crate::timeline::WHOLE_RUN;
        let flooded = long
            && if outlined_last {
                self.frames.still_flooding()
            } else {
                self.frames.flooding()
            };
        let drawing = crate::flood::drawing(
            run.requests.len(),
            flooded,
            long && run.is_live(),
            outlined_last,
            self.settled == Some(run.id),
        );
        if drawing == Drawing::OutlineThenFull {
            self.settled = Some(run.id);
            self.frames.redraw_next_frame();
        }
        self.outlining = (drawing != Drawing::Full).then_some(run.id);
        self.outlining.is_some()
    }

    /// Hands the timeline what it draws (`run`, all rows when `whole`; in
    /// outline when `outline`, as [`Lab::outline`] said), when that
    /// changed. `drawn` is the body as drawn, its `main` with
    /// [`Lab::section`] in slot `slot`.
    pub fn draw_timeline(
        &mut self,
        state: &LabState,
        run: Option<Rc<Run>>,
        (drawn, slot): (&Drawn, usize),
        (whole, outline): (bool, bool),
    ) {
        let section = || {
            drawn
                .first()
                .and_then(|s| s.first())
                .and_then(|main| main.kid(slot, 0))
                .map(|s| s.dom().clone())
        };
        if let Some(run) = run.as_deref().filter(|_| outline) {
            Timeline::show_light(&self.timeline, section(), run, state.events_dropped);
            self.drawn = None;
            return;
        }
        let agent = self.agent(state);
        let input = Input {
            groups: crate::timeline::LaneGroups::of(state, run.as_deref()),
            run,
            clock: state.clock,
            agent_links: agent.as_ref().map(|a| a.links(state)).unwrap_or_default(),
            agent,
            whole,
        };
        if self.drawn.as_ref() == Some(&input) {
            return;
        }
        Timeline::show(&self.timeline, section(), input.clone());
        self.drawn = Some(input);
    }
}

thread_local! {
    /// The page, for as long as the document lives.
    static PAGES: RefCell<Vec<Rc<dyn std::any::Any>>> = const { RefCell::new(Vec::new()) };
}
