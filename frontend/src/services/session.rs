//! Asking the server for this page load's session.
//!
//! Sessions are capabilities the server issues (`POST /api/sessions`): the
//! page cannot make one up. The request goes to the page's own origin before
//! any burst, so it never waits behind the page's own hung requests.

use protocol::{ErrorBody, SessionGrant, SessionId};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{RequestInit, Response};

use super::js_error;

/// A new session for this page load, or what went wrong in words. After a
/// reload, it takes over the room's view of the session this tab had,
/// `left` ([`left_by_reload`]): the learner stays one participant.
pub async fn create(left: Option<SessionId>) -> Result<SessionId, String> {
    // Until the new session is granted, a reload names the old one again
    // (found in review: the name was taken, then lost with a refused or
    // cut request, and the old session counted twice again).
    if let Some(id) = &left {
        hold(id);
    }
    let path = match &left {
        Some(id) => format!("/api/sessions?replaces={id}"),
        None => "/api/sessions".to_owned(),
    };
    let granted = json::<SessionGrant>("POST", &path, None)
        .await
        .map(|grant| grant.session);
    if let Ok(id) = &granted {
        hold(id);
    }
    granted
}

/// Marks `id` as this page's session for `index.html`'s `pagehide` while
/// the page does not show it yet (`main[data-session]`): a reload before
/// the page started names it, so what it holds in the room is carried on
/// (found in review: a reload while the page started left the session
/// just granted, which had taken over the room's view, to no page).
fn hold(id: &SessionId) {
    if let Some(root) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.document_element())
    {
        let _ = root.set_attribute("data-session-held", id.as_str());
    }
}

/// Where `index.html` leaves the session of a participant page as it goes
/// (`pagehide`): a reload's page names it when it asks for its own.
const LEFT: &str = "keepalive-lab.left";

/// The session this tab's page had before this one, if it left one; taken
/// as a participant page starts, before anything waits, so that a tab
/// duplicated later (which copies this storage) names nothing. (The
/// instructor's page does not take it: a participant page opened after it
/// in the same tab, or in a copy of that tab, names it, and is the same
/// learner.)
pub fn left_by_reload() -> Option<SessionId> {
    let storage = tab_storage()?;
    let left = storage.get_item(LEFT).ok()??;
    let _ = storage.remove_item(LEFT);
    SessionId::parse(&left).ok()
}

/// This tab's `sessionStorage`: what one participant page leaves for the
/// other (the session, projector mode).
pub fn tab_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok()?
}

/// Where a participant page leaves its session for the other one (the lesson
/// track and the workbench are bundles of their own; `index.html` writes it
/// when a link leads to the other page).
const HANDED_OVER: &str = "keepalive-lab.session";

/// The session the other participant page handed over, if it left one and
/// the server still knows it. Taken once: a reload after it starts afresh.
pub async fn resume() -> Option<SessionId> {
    let storage = tab_storage()?;
    let left = storage.get_item(HANDED_OVER).ok()??;
    let _ = storage.remove_item(HANDED_OVER);
    let id = SessionId::parse(&left).ok()?;
    // The server refuses a session it did not issue or has forgotten.
    let id = text("GET", &format!("/api/config?session={id}"), None)
        .await
        .ok()
        .map(|_| id)?;
    hold(&id);
    Some(id)
}

/// `method path` with an optional JSON `body` on the page's own origin;
/// the answer's JSON, or the server's `{error, hint}` in words.
pub async fn json<T: crate::wire::FromJson>(
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<T, String> {
    text(method, path, body).await.and_then(read)
}

/// `GET path` on the page's own origin, its answer (or what went wrong) set
/// into `state` when it comes.
pub fn get_into<T: crate::wire::FromJson + 'static>(
    state: yew::UseStateHandle<Option<Result<T, String>>>,
    path: String,
) {
    wasm_bindgen_futures::spawn_local(async move {
        let answer = text("GET", &path, None).await;
        state.set(Some(answer.and_then(read)));
    });
}

/// The JSON `text` as a `T`, or why not in words. The fetch itself is not
/// generic ([`text`]): one copy of it serves every type the page asks for.
fn read<T: crate::wire::FromJson>(text: String) -> Result<T, String> {
    crate::wire::from_str(&text).map_err(|e| format!("the answer is not understood: {e}"))
}

/// The body of a successful answer, or the server's `{error, hint}` (or what
/// else went wrong) in words.
async fn text(method: &str, path: &str, body: Option<String>) -> Result<String, String> {
    let window = web_sys::window().ok_or("no window")?;
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(body) = body {
        init.set_body(&wasm_bindgen::JsValue::from_str(&body));
    }
    let response = JsFuture::from(window.fetch_with_str_and_init(path, &init))
        .await
        .map_err(|e| format!("the lab's server did not answer: {}", js_error(e)))?;
    let response: Response = response.dyn_into().map_err(js_error)?;
    let text = JsFuture::from(response.text().map_err(js_error)?)
        .await
        .map_err(js_error)?
        .as_string()
        .unwrap_or_default();
    if !response.ok() {
        return Err(match crate::wire::from_str::<ErrorBody>(&text) {
            Ok(body) => format!("{} ({})", body.error, body.hint),
            Err(_) => format!("the server answered {}", response.status()),
        });
    }
    Ok(text)
}
