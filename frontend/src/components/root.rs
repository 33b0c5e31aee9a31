//! The page's root: gets a session from the server, then shows the lab.

use protocol::SessionId;
use yew::prelude::*;

use super::app::App;
use super::instructor::InstructorView;
use crate::services::session;

/// The instructor key, when the page was opened as the instructor's view
/// (`#instructor&key=KEY`): that page is no participant and takes no session.
fn instructor_key() -> Option<String> {
    let hash = web_sys::window()?.location().hash().ok()?;
    let rest = hash.trim_start_matches('#').strip_prefix("instructor")?;
    Some(
        rest.split('&')
            .find_map(|p| p.strip_prefix("key="))
            .map(|k| String::from(js_sys::decode_uri_component(k).unwrap_or_else(|_| k.into())))
            .unwrap_or_default(),
    )
}

/// Asks for a session once, then renders [`App`] with it; or the
/// instructor's view, which needs none.
#[component]
pub fn Root() -> Html {
    let instructor = use_memo((), |()| instructor_key());
    let session = use_state(|| None::<Result<SessionId, String>>);
    {
        let session = session.clone();
        let participant = instructor.is_none();
        use_effect_with((), move |()| {
            if participant {
                wasm_bindgen_futures::spawn_local(async move {
                    session.set(Some(session::create().await));
                });
            }
        });
    }
    if let Some(key) = (*instructor).clone() {
        return html! {
            <main class="instructor-page">
                <header class="top"><h1>{ "keepalive-lab" }</h1></header>
                <InstructorView key_text={key} />
            </main>
        };
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
