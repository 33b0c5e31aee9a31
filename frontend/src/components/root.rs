//! The page's root: gets a session from the server, then shows the page.

use protocol::SessionId;
use yew::prelude::*;

use super::AppProps;
use crate::services::session;

/// Asks for a session once (or takes over the one the other participant
/// page handed over), then renders `P` with it.
#[component]
pub fn Root<P>() -> Html
where
    P: BaseComponent<Properties = AppProps>,
{
    // The session, and whether it was handed over.
    let session = use_state(|| None::<Result<(SessionId, bool), String>>);
    {
        let session = session.clone();
        use_effect_with((), move |()| {
            wasm_bindgen_futures::spawn_local(async move {
                let id = match session::resume().await {
                    Some(id) => Ok((id, true)),
                    None => session::create().await.map(|id| (id, false)),
                };
                session.set(Some(id));
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
        Some(Ok((id, resumed))) => html! { <P session={id.clone()} resumed={*resumed} /> },
    }
}
