//! The workbench, drawn without yew: the burst composer, the server's
//! policy, the middlebox, the Node-style agent, what a run measured, the
//! timeline and the runs with their exports (issue #14, figure 5: each
//! participant page within the download budget).
//!
//! As the lesson track (`crate::track`): one [`Workbench`] holds the page's
//! [`Lab`] and its own settings, and draws the whole page with
//! [`crate::dom`] after every change; one listener per kind of event on the
//! body finds the control by its id (a click on a button, a change of a
//! field) and the edit is a pure function of the id and the value
//! ([`composer::edit_burst`], [`composer::edit_agent`],
//! [`panels::policy_patch`], [`panels::middlebox_patch`]).

mod composer;
mod measured;
mod panels;

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use protocol::{ClientMessage, SessionId};
use wasm_bindgen::JsValue;
use web_sys::{Element, Event};

use crate::agent::AgentSettings;
use crate::dom::{self, Listener, Web, el, outwards, target};
use crate::page::{Drawn, Holds, Lab, listen};
use crate::services::{burst, download};
use crate::settings::{BurstSettings, resolve_origin};
use crate::shell::{self, Page, location_hash, set_hash};

/// The slot of the page's `main` holding the timeline's section (after the
/// header, the links, and the panels with the measured figures).
const TIMELINE: usize = 3;

/// Starts the workbench: a session, then the page.
pub fn start() {
    crate::page::start(Workbench::mount);
}

/// Settings from the page's URL fragment (a shared link), and what in it
/// was ignored.
fn settings_from_location() -> (BurstSettings, Option<String>) {
    let hash = location_hash();
    let hash = if hash == "#workbench" {
        String::new()
    } else {
        hash
    };
    let (settings, ignored) = BurstSettings::from_fragment(&hash);
    let note =
        (!ignored.is_empty()).then(|| format!("Ignored in the link: {}", ignored.join(", ")));
    (settings, note)
}

/// The value of the control an event came from (a checkbox's: `"true"` or
/// `"false"`).
fn value(e: &Event) -> String {
    let Some(target) = e.target() else {
        return String::new();
    };
    let checkbox = js_sys::Reflect::get(&target, &JsValue::from_str("type"))
        .ok()
        .and_then(|t| t.as_string())
        .is_some_and(|t| t == "checkbox");
    let key = if checkbox { "checked" } else { "value" };
    let v = js_sys::Reflect::get(&target, &JsValue::from_str(key)).unwrap_or(JsValue::NULL);
    v.as_string()
        .or_else(|| v.as_bool().map(|b| b.to_string()))
        .unwrap_or_default()
}

/// The page.
struct Workbench {
    /// The document's body, which the page is drawn in.
    body: Element,
    /// The body's children as drawn (the page's `main`).
    live: Drawn,
    /// The live lab: store, link, ports, the timeline's drawing.
    lab: Lab,
    /// The page is drawn large, for the back of the room.
    projector: bool,
    /// The burst composer's settings.
    settings: BurstSettings,
    /// The link to the settings, once asked for.
    share_url: Option<String>,
    /// The latest problem to show (a message not sent, a burst refused, the
    /// link's ignored settings), if any.
    problem: Option<String>,
    /// Why the last export failed.
    export_problem: Option<String>,
    /// The agent composer's settings.
    agent_settings: AgentSettings,
    /// The run picked in the run list (`None`: the newest).
    selected: Option<u32>,
    /// The body's listeners.
    _listeners: [Listener; 2],
}

impl Holds for Workbench {
    fn lab(&mut self) -> &mut Lab {
        &mut self.lab
    }

    /// The store changed: the room may have moved, and the page is drawn
    /// again.
    fn changed(&mut self) {
        let state = self.lab.state();
        let moved = self.lab.room_moved(&state);
        // The instructor moves the room to a lesson: that is on the lesson
        // track (`index.html` loads it, with this page's session). A late
        // joiner is taken to the room's lesson; a learner who came here
        // from it stays.
        if let Some(id) = moved {
            set_hash(&format!("lesson={id}"));
        }
        // A frame of a flood draws the outline only (`crate::flood`).
        self.draw_page(false, true);
    }

    fn draw(&mut self) {
        self.draw_whole(false);
    }
}

impl Workbench {
    /// The page for `session`, drawn in `body` (which shows `live`).
    fn mount(body: Element, live: Drawn, session: SessionId, resumed: bool) {
        let (settings, problem) = settings_from_location();
        let page = Rc::new_cyclic(|me: &Weak<RefCell<Workbench>>| {
            RefCell::new(Workbench {
                _listeners: [
                    listen(me, &body, "click", Workbench::on_click),
                    listen(me, &body, "change", Workbench::on_change),
                ],
                body,
                live,
                lab: Lab::new(session, resumed),
                projector: crate::live::projector_at_start(),
                settings,
                share_url: None,
                problem,
                export_problem: None,
                agent_settings: AgentSettings::default(),
                selected: None,
            })
        });
        page.borrow_mut().draw();
        Lab::go_live(page);
    }

    /// Sends `message` over the live link; a message not sent is the
    /// problem shown.
    fn send(&mut self, message: ClientMessage) {
        self.problem = self
            .lab
            .link
            .send(&message)
            .err()
            .map(|e| format!("Not sent to the server: {e}"));
    }

    /// A click on the page.
    fn on_click(&mut self, e: &Event) {
        let Some(el) =
            outwards(target(e)).find(|el| !el.id().is_empty() || el.has_attribute("data-run"))
        else {
            return;
        };
        if let Some(run) = el.get_attribute("data-run") {
            self.selected = run.parse().ok();
            return self.draw_page(false, true);
        }
        match el.id().as_str() {
            shell::RECONNECT => return self.lab.link.reconnect(),
            shell::RELOAD => return shell::reload(),
            shell::PROJECTOR => {
                self.projector = !self.projector;
                crate::live::remember_projector(self.projector);
            }
            "fire" => match self.lab.fire(self.settings) {
                Ok(_) => (self.selected, self.problem) = (None, None),
                Err(why) => self.problem = Some(why),
            },
            "release" => self.send(ClientMessage::Release {
                request: None,
                id: None,
            }),
            "share" => {
                let Some(location) = web_sys::window().map(|w| w.location()) else {
                    return;
                };
                let _ = location.set_hash(&self.settings.to_fragment());
                self.share_url = location.href().ok();
            }
            "agent-start" => match self.agent_settings.message() {
                Ok(message) => self.send(message),
                Err(why) => self.problem = Some(why),
            },
            "agent-stop" => self.send(ClientMessage::AgentStop {}),
            "export-json" => self.export("json"),
            "export-har" => self.export("har"),
            "export-svg" => self.export("svg"),
            _ => return,
        }
        // As a frame draws: while a run is outlined, a click (Fire again,
        // Release, a run picked) waits for the flood's end with the panels
        // (bench figure 3: the bench fires its bursts with this button, and
        // each click drawing the whole page cost the page under load).
        self.draw_page(false, true);
    }

    /// A change of a field.
    fn on_change(&mut self, e: &Event) {
        let Some(el) = target(e) else { return };
        let (id, v) = (el.id(), value(e));
        if composer::edit_burst(&mut self.settings, &id, &v)
            || composer::edit_agent(&mut self.agent_settings, &id, &v)
        {
            self.draw();
            return dom::show_drawn_value(&el);
        }
        let state = self.lab.state();
        if let Some(config) = &state.config
            && let Some(config) = panels::policy_patch(config, &id, &v)
        {
            self.send(ClientMessage::SetConfig { config });
        } else if let Some(middlebox) = panels::middlebox_patch(&id, &v) {
            self.send(ClientMessage::SetMiddlebox { middlebox });
        } else {
            return;
        }
        // Until the server confirms it, the form shows what is in force.
        self.draw();
        dom::show_drawn_value(&el);
    }

    /// Exports the run shown: `json`, `har` or `svg` (the timeline with
    /// every row of the run, drawn for the export and then as before).
    fn export(&mut self, kind: &str) {
        let state = self.lab.state();
        let Some(run) = self.run(&state) else { return };
        let name = format!("keepalive-lab-{}", run.name());
        let saved = match kind {
            "json" => download::save(
                &format!("{name}.json"),
                "application/json",
                &crate::har::run_json(&run, &state),
            ),
            "har" => download::save(
                &format!("{name}.har"),
                "application/json",
                &crate::har::export(&run, &state),
            ),
            _ => {
                self.draw_whole(true);
                download::outer_html("timeline")
                    .ok_or_else(|| "no timeline to export yet".to_owned())
                    .and_then(|svg| download::save(&format!("{name}.svg"), "image/svg+xml", &svg))
            }
        };
        self.export_problem = saved.err();
    }

    /// The run to draw: the one picked, else the newest.
    fn run(&self, state: &crate::state::LabState) -> Option<Rc<crate::state::Run>> {
        match self.selected {
            Some(id) => state.run(id).or(state.current()),
            None => state.current(),
        }
        .cloned()
    }

    /// Draws the page as it is now; the timeline with every row of its run
    /// when `whole` (for an SVG export).
    fn draw_whole(&mut self, whole: bool) {
        self.draw_page(whole, false);
    }

    /// [`Workbench::draw_whole`]; `frame`: for a frame's changes (or a
    /// click), which while a run is outlined draw the outline alone. A
    /// change of a field draws the whole page, outlined or not, so the field
    /// shows what was typed in it.
    fn draw_page(&mut self, whole: bool, frame: bool) {
        let state = self.lab.state();
        let connected = state.socket == crate::state::SocketStatus::Open;
        let run = self.run(&state);
        let agent = self.lab.agent(&state);
        let ports = self.lab.ports.unwrap_or_default();
        // Where an HTTPS target goes, for the composer's certificate note.
        let https_origin = self
            .settings
            .target
            .is_tls()
            .then(|| {
                let page = burst::page_origin().ok()?;
                resolve_origin(self.settings.target, &page, &state.listeners, ports).ok()
            })
            .flatten();
        // A flooded run's outline is all a frame changes while the flood
        // lasts (`crate::flood`): the panels and the run list wait for it to
        // end, as the timeline's full drawing does.
        let outline = self.lab.outline(run.as_ref(), whole);
        if outline && frame {
            self.lab
                .draw_timeline(&state, run, (&self.live, TIMELINE), (whole, true));
            return;
        }
        let heard = state.middlebox_settings.as_ref().map_or(0, |m| m.1);
        let panels = el("div").attr("class", "bench").kids(vec![
            composer::burst(composer::BurstView {
                settings: self.settings,
                share_url: self.share_url.as_deref(),
                connected,
                problem: self.problem.clone().or_else(|| state.server_error.clone()),
                https_origin,
                run_status: run.as_deref().map(composer::run_status),
            }),
            panels::policy(state.config.as_ref(), connected, state.config_revision),
            panels::middlebox(
                state.middlebox_settings.as_ref().map(|m| &m.0),
                self.lab.probes_visible,
                state.config_revision + heard,
                connected,
            ),
            composer::agent(composer::AgentView {
                settings: &self.agent_settings,
                running: agent.as_ref().is_some_and(|a| a.is_live()),
                connected,
                status: agent.as_ref().map(|a| a.summary()),
            }),
        ]);
        let tally = run
            .as_deref()
            .map(|r| (r, crate::tally::Tally::of(r, &state)));
        let measured =
            measured::measured(tally.as_ref().map(|(r, t)| (*r, t)), state.events_dropped);
        let runs = measured::runs(
            state
                .runs
                .iter()
                .map(|r| (r.id, measured::summary(r)))
                .collect(),
            run.as_ref().map(|r| r.id),
            self.export_problem.as_deref(),
        );
        let main = shell::main(
            &state,
            Page::Workbench,
            self.projector,
            vec![
                vec![panels.done(), measured],
                vec![self.lab.section()],
                runs.into_iter().collect(),
            ],
        );
        dom::patch(&mut Web, &self.body, &mut self.live, &[vec![main]]);
        self.lab
            .draw_timeline(&state, run, (&self.live, TIMELINE), (whole, outline));
    }
}
