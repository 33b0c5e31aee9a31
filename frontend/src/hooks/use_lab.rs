//! The live lab behind both participant pages (the lesson track and the
//! workbench): the page's state, the events socket, the ports the lab serves,
//! and how a burst is fired.

use std::rc::Rc;

use protocol::{ClientMessage, SessionId};
use yew::prelude::*;

use super::{use_event_socket, use_frame_dispatch, use_store};
use crate::agent::AgentView;
use crate::settings::{BurstSettings, OtherPorts};
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
    let projector = use_state(crate::live::projector_at_start);
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
                let (ports, probes) = crate::live::other_ports(session, frames).await;
                probes_visible.set(probes);
                other_ports.set(Some(ports));
            });
        });
    }
    let fire = {
        let (state, selected) = (state.clone(), selected.clone());
        let ports = other_ports.unwrap_or_default();
        Callback::from(move |settings: BurstSettings| -> Result<u32, String> {
            let fired = crate::live::fire(
                &state,
                ports,
                &mut runs_allocated.borrow_mut(),
                settings,
                &frames,
            );
            if fired.is_ok() {
                selected.set(None);
            }
            fired
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

/// Calls `on_move` with the lesson the instructor moves the room to
/// ([`crate::live::room_moved`] says when).
#[hook]
pub fn use_room_move(state: &LabState, follow_at_start: bool, on_move: Callback<String>) {
    // The room's lesson (with its move count) last seen, once live.
    let seen = use_mut_ref(|| None);
    use_effect_with(
        (state.room_lesson.clone(), state.config.is_some()),
        move |(room, live)| {
            let moved =
                crate::live::room_moved(&mut seen.borrow_mut(), room, *live, follow_at_start);
            if let Some(id) = moved {
                on_move.emit(id);
            }
        },
    );
}
