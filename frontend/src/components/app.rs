//! What both participant pages share: the header with the live link and the
//! projector switch, and the links between the lesson track and the
//! workbench.
//!
//! The two are bundles of their own (`src/bin/app.rs` is the lesson track,
//! the landing page; `src/bin/workbench.rs` the workbench), so a room that
//! opens the lessons never downloads the composer, the panels and the
//! exports. Following a link to the other one loads the other bundle;
//! `index.html` hands the page's session over, so the learner stays the same
//! participant with the same settings (see [`crate::services::session::resume`]).

use yew::prelude::*;

use crate::hooks::Lab;
use crate::state::SocketStatus;

/// Which participant page this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The lesson track (`#lessons`, `#lesson=ID`): the landing page.
    Lessons,
    /// The free workbench (`#workbench`, or a link carrying burst settings).
    Workbench,
}

/// The page's URL fragment, with its `#`.
pub fn location_hash() -> String {
    web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default()
}

/// Sets the page's URL fragment (`index.html` loads the other bundle when
/// the fragment belongs to it).
pub fn set_hash(hash: &str) {
    if let Some(location) = web_sys::window().map(|w| w.location()) {
        let _ = location.set_hash(hash);
    }
}

/// What a link to the other participant page says it does.
const OTHER_PAGE: &str = "A page of its own: your session and settings come along, \
                          the runs drawn on this page do not.";

/// The page: header, the links between the views, then `body`.
/// `on_lessons` is what the Lessons link does on the lesson track (open the
/// list in place); elsewhere the link loads the lesson track.
pub fn shell(lab: &Lab, page: Page, on_lessons: Option<Callback<MouseEvent>>, body: Html) -> Html {
    let state = &lab.state;
    let projector = lab.projector.clone();
    let large = *projector;
    let toggle_projector = Callback::from(move |_: MouseEvent| {
        crate::hooks::remember_projector(!*projector);
        projector.set(!*projector);
    });
    let current = |this: Page| (page == this).then_some("page");
    html! {
        <main data-socket={state.socket.name()} data-session={state.session.to_string()}
            data-page={if page == Page::Lessons { "lessons" } else { "workbench" }}
            class={crate::components::class(&[], &[(large, "projector")])}>
            <header class="top">
                <h1>{ "keepalive-lab" }</h1>
                <p class="lede">
                    { "How many connections does your browser open to one server, and what happens to the \
                       requests that do not get one? Fire a burst from this page, then read both sides on \
                       one clock: the browser's queue above, the server's TCP connections below." }
                </p>
                <p class={crate::components::class(&["socket", state.socket.name()], &[])} role="status">
                    { "Live link to the server: " }<strong>{ state.socket.name() }</strong>
                    if state.socket.waits_for_reconnect() {
                        <button class="secondary small" id="reconnect" onclick={lab.reconnect.clone()}>
                            { "Reconnect" }
                        </button>
                    }
                    <button class="secondary small" onclick={toggle_projector} aria-pressed={large.to_string()}>
                        { if large { "Normal size" } else { "Projector mode" } }
                    </button>
                </p>
                // Why the server closed or refused the live link, in its
                // words (a browser learns them only from the close frame).
                if let Some(problem) = &state.socket_problem {
                    <p class="error" role="alert" id="socket-problem">{ problem.clone() }</p>
                }
            </header>
            <nav class="views" aria-label="Views">
                <a href="#lessons" id="nav-lessons" onclick={on_lessons} aria-current={current(Page::Lessons)}
                    title={(page == Page::Workbench).then_some(OTHER_PAGE)}>{ "Lessons" }</a>
                <a href="#workbench" id="nav-workbench" aria-current={current(Page::Workbench)}
                    title={(page == Page::Lessons).then_some(OTHER_PAGE)}>{ "Workbench" }</a>
            </nav>
            { body }
        </main>
    }
}

/// The live link is open.
pub fn connected(lab: &Lab) -> bool {
    lab.state.socket == SocketStatus::Open
}
