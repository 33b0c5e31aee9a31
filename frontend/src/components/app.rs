//! The whole page: state, the events socket, and the experiment's actions.

use protocol::ClientMessage;
use yew::prelude::*;

use super::browser_pane::BrowserPane;
use super::controls::Controls;
use super::measured::Measured;
use super::server_pane::ServerPane;
use crate::hooks::use_event_socket;
use super::policy::PolicyPanel;
use crate::services::fetch::{fetch_no_store, now_ms};
use crate::services::new_session_id;
use crate::state::{Action, LabState};

/// Requests in the "six lanes" burst: twice the expected limit, so half of
/// them have to wait.
pub const BURST_SIZE: usize = 12;

/// Fires `BURST_SIZE` hanging requests, each with a unique URL.
fn fire_burst(state: &LabState, dispatch: &UseReducerDispatcher<LabState>) {
    let run = state.next_run();
    let session = state.session.clone();
    let tags: Vec<String> = (1..=BURST_SIZE).map(|i| format!("{run}-{i}")).collect();
    dispatch.dispatch(Action::BurstFired {
        run,
        tags: tags.clone(),
        at_ms: now_ms(),
    });
    for tag in tags {
        let dispatch = dispatch.clone();
        let url = format!("/api/hang?id={tag}&session={session}");
        wasm_bindgen_futures::spawn_local(async move {
            let on_head = {
                let dispatch = dispatch.clone();
                let tag = tag.clone();
                move |head: crate::services::fetch::Head| {
                    dispatch.dispatch(Action::ResponseHead {
                        tag,
                        conn: head.conn,
                        request: head.request,
                        seq: head.seq,
                        status: head.status,
                    })
                }
            };
            let action = match fetch_no_store(&url, on_head).await {
                Ok(()) => Action::Finished {
                    tag,
                    at_ms: now_ms(),
                },
                Err(error) => Action::Failed {
                    tag,
                    error,
                    at_ms: now_ms(),
                },
            };
            dispatch.dispatch(action);
        });
    }
}

/// The lab page.
#[component]
pub fn App() -> Html {
    let state = use_reducer(|| LabState::new(new_session_id()));
    let socket = use_event_socket(state.session.clone(), state.dispatcher());
    let send_error = use_state(|| None::<String>);

    let on_fire = {
        let state = state.clone();
        Callback::from(move |_| fire_burst(&state, &state.dispatcher()))
    };
    let send = {
        let socket = socket.clone();
        let send_error = send_error.clone();
        Callback::from(move |message: ClientMessage| send_error.set(socket.send(&message).err()))
    };
    let on_release = send.reform(|()| ClientMessage::Release {
        request: None,
        id: None,
    });
    let on_policy = send.reform(|config| ClientMessage::SetConfig { config });

    html! {
        <main data-socket={state.socket.name()}>
            <header class="top">
                <h1>{ "keepalive-lab" }</h1>
                <p class="lede">
                    { "How many connections does your browser open to one server, and what \
                       happens to the requests that do not get one? Fire twelve requests that \
                       the server holds open, then watch both sides: the browser's queue on the \
                       left, the server's TCP connections on the right." }
                </p>
                <p class={classes!("socket", state.socket.name())} role="status">
                    { "Live link to the server: " }<strong>{ state.socket.name() }</strong>
                </p>
            </header>
            <Controls
                socket={state.socket}
                burst_size={BURST_SIZE}
                {on_fire}
                {on_release}
                send_error={(*send_error).clone()}
                server_error={state.server_error.clone()}
            />
            <Measured burst={state.burst.clone()} events_dropped={state.events_dropped} />
            <PolicyPanel
                config={state.config.clone()}
                enabled={state.socket == crate::state::SocketStatus::Open}
                on_change={on_policy}
            />
            <div class="panes">
                <BrowserPane burst={state.burst.clone()} />
                <ServerPane lanes={state.lanes.clone()} />
            </div>
        </main>
    }
}
