//! The experiment's buttons.

use yew::prelude::*;

use crate::state::SocketStatus;

/// Props of [`Controls`].
#[derive(Properties, PartialEq)]
pub struct ControlsProps {
    /// Release needs the socket.
    pub socket: SocketStatus,
    /// How many requests a burst fires.
    pub burst_size: usize,
    /// Fire a burst.
    pub on_fire: Callback<()>,
    /// Release every hanging request.
    pub on_release: Callback<()>,
    /// Why the last control message (release, policy change) could not be sent.
    pub send_error: Option<String>,
    /// The last error the server reported on the socket.
    pub server_error: Option<String>,
}

/// Fire and Release.
#[component]
pub fn Controls(props: &ControlsProps) -> Html {
    let fire = props.on_fire.reform(|_: MouseEvent| ());
    let release = props.on_release.reform(|_: MouseEvent| ());
    let open = props.socket == SocketStatus::Open;
    html! {
        <section class="controls" aria-label="Experiment controls">
            <button id="fire" onclick={fire} disabled={!open}>
                { format!("Fire {} hanging requests", props.burst_size) }
            </button>
            <button id="release" onclick={release} disabled={!open}>
                { "Release all" }
            </button>
            <p class="help">
                { "Each request goes to /api/hang with its own URL and cache: 'no-store', and the \
                   server holds it until you release it (or for at most 120 s). Release goes over \
                   the WebSocket: an ordinary request from this page would wait behind the hung \
                   ones and never arrive." }
            </p>
            if let Some(error) = &props.send_error {
                <p class="error" role="alert">{ format!("Not sent to the server: {error}") }</p>
            }
            if let Some(error) = &props.server_error {
                <p class="error" role="alert">{ format!("Server says: {error}") }</p>
            }
        </section>
    }
}
