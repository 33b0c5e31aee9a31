//! The instructor's page: the key from the URL, then the room's view. It
//! takes no session: the instructor is no participant.

use yew::prelude::*;

use super::instructor::InstructorView;
use crate::services::session::tab_storage;

/// Where the page keeps the key once it has taken it out of the address bar,
/// so that a reload of the same tab still has it.
const KEPT_KEY: &str = "keepalive-lab.instructor-key";

/// The instructor key: from the page's URL (`#instructor&key=KEY`), which is
/// then rewritten to `#instructor` (the README has the instructor put this
/// page on the projector, and the whole room would read the key in the
/// address bar: found in review), or the one this tab kept from it. Empty
/// when there is none.
fn instructor_key() -> String {
    let Some(window) = web_sys::window() else {
        return String::new();
    };
    let hash = window.location().hash().unwrap_or_default();
    let given = hash
        .trim_start_matches('#')
        .strip_prefix("instructor")
        .and_then(|rest| rest.split('&').find_map(|p| p.strip_prefix("key=")))
        .map(|k| String::from(js_sys::decode_uri_component(k).unwrap_or_else(|_| k.into())));
    let storage = tab_storage();
    match given {
        Some(key) => {
            if let Some(storage) = &storage {
                let _ = storage.set_item(KEPT_KEY, &key);
            }
            if let Ok(history) = window.history() {
                let _ = history.replace_state_with_url(
                    &wasm_bindgen::JsValue::NULL,
                    "",
                    Some("#instructor"),
                );
            }
            key
        }
        None => storage
            .and_then(|s| s.get_item(KEPT_KEY).ok().flatten())
            .unwrap_or_default(),
    }
}

/// The instructor's view, with the key its URL carried.
#[component]
pub fn InstructorPage() -> Html {
    let key = use_memo((), |()| instructor_key());
    html! {
        <main class="instructor-page">
            <header class="top"><h1>{ "keepalive-lab" }</h1></header>
            if key.is_empty() {
                <p class="error" role="alert" id="instructor-no-key">
                    { "This page needs the instructor key: open the instructor link the lab \
                       printed when it started (it ends in #instructor&key=…)." }
                </p>
            } else {
                <InstructorView key_text={(*key).clone()} />
            }
        </main>
    }
}
