//! The page's root: gets a session from the server, then shows the lab.

use protocol::SessionId;
use yew::prelude::*;

use super::app::App;
use crate::services::session;

/// Asks for a session once, then renders [`App`] with it.
#[component]
pub fn Root() -> Html {
    let session = use_state(|| None::<Result<SessionId, String>>);
    {
        let session = session.clone();
        use_effect_with((), move |()| {
            wasm_bindgen_futures::spawn_local(async move {
                session.set(Some(session::create().await));
            });
        });
    }
    match &*session {
        None => {
            html! { <p class="starting" aria-live="polite">{ "Starting a session with the lab…" }</p> }
        }
        Some(Err(problem)) => html! {
            <div class="problem" role="alert">
                <p>{ format!("The lab could not start a session: {problem}") }</p>
                <p>{ "Reload the page to try again." }</p>
            </div>
        },
        Some(Ok(id)) => html! { <App session={id.clone()} /> },
    }
}
