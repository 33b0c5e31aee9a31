//! The instructor's page: the key from the URL, then the room's view. It
//! takes no session: the instructor is no participant.

use yew::prelude::*;

use super::instructor::InstructorView;

/// The instructor key from the page's URL (`#instructor&key=KEY`); empty
/// when it has none, which the server then refuses with its own words.
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

/// The instructor's view, with the key its URL carries.
#[component]
pub fn InstructorPage() -> Html {
    let key = use_memo((), |()| instructor_key().unwrap_or_default());
    html! {
        <main class="instructor-page">
            <header class="top"><h1>{ "keepalive-lab" }</h1></header>
            <InstructorView key_text={(*key).clone()} />
        </main>
    }
}
