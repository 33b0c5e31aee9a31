//! The live lab behind both participant pages (the lesson track and the
//! workbench): the page's state, the events socket, the ports the lab serves,
//! and how a burst is fired.

use std::rc::Rc;

use protocol::{ClientMessage, SessionId};
use yew::prelude::*;

use super::{use_event_socket, use_frame_dispatch, use_store};
use crate::agent::AgentView;
use crate::services::burst;
use crate::settings::{BurstSettings, OtherPorts, port_of, resolve_origin};
use crate::state::LabState;
use crate::store::Store;

/// What [`use_lab`] gives a page.
#[derive(Clone)]
pub struct Lab {
    /// Runs, lanes, policy: everything the page measured and heard (the
    /// [`Store`]'s state as this render drew it).
    pub state: Rc<LabState>,
    /// Sends a control message over the events socket; a message that could
    /// not be sent is reported in [`Lab::problem`].
    pub send: Callback<ClientMessage>,
    /// The latest problem to show the learner (a message not sent, a burst
    /// refused), if any.
    pub problem: UseStateHandle<Option<String>>,
    /// Opens the events socket again (the Reconnect button, shown when the
    /// server refused it and the page does not retry by itself).
    pub reconnect: Callback<MouseEvent>,
    /// Where the lab's middlebox and HTTPS ports listen (origins of their
    /// own); `None` until the server has answered.
    pub other_ports: Option<OtherPorts>,
    /// Whether the lab's host can see TCP keep-alive probes (Linux
    /// `TCP_INFO`; `GET /api/middlebox`); `None` until the server has
    /// answered.
    pub probes_visible: Option<bool>,
    /// Fires a burst; answers its run id, or why it was not fired.
    pub fire: Callback<BurstSettings, Result<u32, String>>,
    /// The run picked in the run list (`None`: the newest).
    pub selected: UseStateHandle<Option<u32>>,
    /// The newest agent run, rebuilt only when an agent event arrived.
    pub agent: Rc<Option<Rc<AgentView>>>,
    /// The page is drawn large, for the back of the room.
    pub projector: UseStateHandle<bool>,
}

impl Lab {
    /// The run to draw: the one picked, else the newest.
    pub fn run(&self) -> Option<Rc<crate::state::Run>> {
        match *self.selected {
            Some(id) => self.state.run(id).or(self.state.current()),
            None => self.state.current(),
        }
        .cloned()
    }

    /// Which of the agent's sockets ride on which of the server's lanes.
    pub fn agent_links(&self) -> Vec<(u32, protocol::ConnId)> {
        self.agent
            .as_ref()
            .as_ref()
            .map(|a| a.links(&self.state))
            .unwrap_or_default()
    }

    /// The lab's HTTPS origins, for a lesson over TLS to link.
    pub fn https_origins(&self) -> Vec<String> {
        burst::page_origin()
            .ok()
            .map(|page| {
                let ports = self.other_ports.unwrap_or_default();
                [ports.tls_h2, ports.tls_h1, ports.tls_h2_limited]
                    .into_iter()
                    .flatten()
                    .map(|port| format!("https://{}:{port}", page.host))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The page's lab for `session`: starts the events socket and asks where the
/// lab's other ports listen; `problem` is what to show at first (a link's
/// ignored settings). One per page: the request script's steps go to the
/// dispatcher of the page's last burst (`services::burst::take_steps`).
#[hook]
pub fn use_lab(session: SessionId, problem: Option<String>) -> Lab {
    let store = (*use_memo((), move |()| Store::new(LabState::new(session)))).clone();
    let state = use_store(&store);
    // Run ids are allocated at fire time: a queued RunStarted is applied at
    // the next frame, and a second click before it must not reuse the id.
    let runs_allocated = use_mut_ref(|| 0_u32);
    let frames = use_frame_dispatch(store);
    let socket = use_event_socket(state.session.clone(), frames.clone());
    let problem = use_state(|| problem);
    let selected = use_state(|| None::<u32>);
    let projector = use_state(projector_at_start);
    let agent = {
        let key = (state.agent.len(), state.agent.back().map(|r| r.at_us));
        let state = state.clone();
        use_memo(key, move |_| AgentView::latest(&state).map(Rc::new))
    };
    let reconnect = {
        let socket = socket.clone();
        Callback::from(move |_: MouseEvent| socket.reconnect())
    };
    let send = {
        let problem = problem.clone();
        Callback::from(move |message: ClientMessage| {
            problem.set(
                socket
                    .send(&message)
                    .err()
                    .map(|e| format!("Not sent to the server: {e}")),
            )
        })
    };
    let other_ports = use_state(|| None::<OtherPorts>);
    let probes_visible = use_state(|| None::<bool>);
    {
        let (other_ports, session) = (other_ports.clone(), state.session.clone());
        let probes_visible = probes_visible.clone();
        let frames = frames.clone();
        use_effect_with((), move |()| {
            wasm_bindgen_futures::spawn_local(async move {
                let path = format!("/api/middlebox?session={session}");
                let view =
                    crate::services::session::json::<protocol::MiddleboxView>("GET", &path, None)
                        .await;
                if let Ok(view) = &view {
                    probes_visible.set(Some(view.probes_visible));
                    // The session's settings, which a lesson that changes
                    // them puts back.
                    frames.event(protocol::ServerEvent::MiddleboxChanged {
                        settings: view.settings.clone(),
                        in_force_ms: view.in_force_ms,
                        session: Some(session.clone()),
                        at_us: 0,
                    });
                }
                let middlebox = view
                    .ok()
                    .and_then(|view| view.listeners.iter().find_map(|l| port_of(l)));
                let tls = crate::services::session::json::<protocol::TlsListeners>(
                    "GET", "/api/tls", None,
                )
                .await
                .unwrap_or_default();
                other_ports.set(Some(OtherPorts {
                    middlebox,
                    tls_h2: tls.h2.iter().find_map(|l| port_of(l)),
                    tls_h1: tls.http1_only.iter().find_map(|l| port_of(l)),
                    tls_h2_limited: tls.h2_limited.iter().find_map(|l| port_of(l)),
                }));
            });
        });
    }
    let fire = {
        let (state, selected) = (state.clone(), selected.clone());
        let ports = other_ports.unwrap_or_default();
        Callback::from(move |settings: BurstSettings| -> Result<u32, String> {
            // The server's listeners arrive with its first snapshot; until
            // then a second-port target would look absent.
            if state.config.is_none() {
                return Err(
                    "the page has not heard from the server yet; try again in a moment".into(),
                );
            }
            let origin = burst::page_origin()
                .and_then(|page| resolve_origin(settings.target, &page, &state.listeners, ports))?;
            selected.set(None);
            let run = {
                let mut last = runs_allocated.borrow_mut();
                *last = (*last).max(state.runs_fired) + 1;
                *last
            };
            burst::fire(
                settings,
                run,
                origin,
                state.session.as_str(),
                frames.clone(),
            );
            Ok(run)
        })
    };
    Lab {
        state,
        send,
        problem,
        reconnect,
        other_ports: *other_ports,
        probes_visible: *probes_visible,
        fire,
        selected,
        agent,
        projector,
    }
}

/// Calls `on_move` with the lesson the instructor moves the room to. The
/// room's lesson at the page's first snapshot counts as a move only when
/// `follow_at_start` (a late joiner is taken to it; a learner who came from
/// the other participant page, with their session, stays where they went).
/// A later move counts every time, to the same lesson too: it gathers the
/// room.
#[hook]
pub fn use_room_move(state: &LabState, follow_at_start: bool, on_move: Callback<String>) {
    // The room's lesson (with its move count) last seen, once live.
    let seen = use_mut_ref(|| None::<Option<(String, u64)>>);
    use_effect_with(
        (state.room_lesson.clone(), state.config.is_some()),
        move |(room, live)| {
            if !*live {
                return;
            }
            let mut seen = seen.borrow_mut();
            let moved = match &*seen {
                None => follow_at_start,
                Some(was) => was != room,
            };
            *seen = Some(room.clone());
            if moved && let Some((id, _)) = room {
                on_move.emit(id.clone());
            }
        },
    );
}

/// Whether this page is drawn large, for the back of the room: kept for
/// the tab (`sessionStorage`), so the other participant page opens the same.
pub fn projector_at_start() -> bool {
    crate::services::session::tab_storage().and_then(|s| s.get_item(PROJECTOR).ok().flatten())
        == Some("1".into())
}

/// Remembers the projector mode for the tab.
pub fn remember_projector(on: bool) {
    if let Some(s) = crate::services::session::tab_storage() {
        let _ = if on {
            s.set_item(PROJECTOR, "1")
        } else {
            s.remove_item(PROJECTOR)
        };
    }
}

const PROJECTOR: &str = "keepalive-lab.projector";
