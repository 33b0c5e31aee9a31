//! What both participant pages share at their top, as node descriptions
//! ([`crate::dom`]): the header with the live link and the projector
//! switch, and the links between the lesson track and the workbench.
//!
//! The two are bundles of their own (`src/bin/app.rs` is the lesson track,
//! the landing page; `src/bin/workbench.rs` the workbench), so a room that
//! opens the lessons never downloads the composer, the panels and the
//! exports. Following a link to the other one loads the other bundle;
//! `index.html` hands the page's session over, so the learner stays the same
//! participant with the same settings (see [`crate::services::session::resume`]).
//!
//! Both pages draw these in their `main` ([`main`]). Their buttons are
//! found by id by the page's one click listener: [`RECONNECT`], [`RELOAD`],
//! [`PROJECTOR`] and [`NAV_LESSONS`].

use crate::dom::{Node, el, text};
use crate::state::LabState;

/// Which participant page this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The lesson track (`#lessons`, `#lesson=ID`): the landing page.
    Lessons,
    /// The free workbench (`#workbench`, or a link carrying burst settings).
    Workbench,
}

impl Page {
    /// `data-page` of the page's `main`.
    pub fn name(self) -> &'static str {
        match self {
            Page::Lessons => "lessons",
            Page::Workbench => "workbench",
        }
    }
}

/// The id of the Reconnect button (shown when the server refused the live
/// link and the page does not retry by itself).
pub const RECONNECT: &str = "reconnect";

/// The id of the Reload button: shown instead of Reconnect when the server
/// refused the live link before it was live (a session it does not know,
/// as after a restart): the same session would be refused again, and a
/// reload asks for a new one (found in review: Reconnect did nothing).
pub const RELOAD: &str = "reload";

/// Reloads the page: a new session, its live link opened afresh.
pub fn reload() {
    if let Some(window) = web_sys::window() {
        let _ = window.location().reload();
    }
}

/// The id of the projector switch.
pub const PROJECTOR: &str = "projector";

/// The id of the link to the lesson track.
pub const NAV_LESSONS: &str = "nav-lessons";

/// What a link to the other participant page says it does.
const OTHER_PAGE: &str = "A page of its own: your session and settings come along, \
                          the runs drawn on this page do not.";

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

/// The children of the page's `header class="top"`: the title, the lede,
/// the live link's status with its buttons, and why the server closed or
/// refused the live link, if it did.
pub fn header(state: &LabState, page: Page, projector: bool) -> Vec<Vec<Node>> {
    let socket = state.socket.name();
    let reconnect = state.socket.waits_for_reconnect().then(|| {
        let (id, words) = if state.socket == crate::state::SocketStatus::Refused {
            (RELOAD, "Reload the page")
        } else {
            (RECONNECT, "Reconnect")
        };
        el("button")
            .attr("class", "secondary small")
            .attr("id", id)
            .text(words)
            .done()
    });
    let status = el("p")
        .attr("class", format!("socket {socket}"))
        .attr("role", "status")
        .kids(vec![
            text("Live link to the server: "),
            el("strong").text(socket).done(),
        ])
        .kids(reconnect.into_iter().collect())
        .kids(vec![
            el("button")
                .attr("class", "secondary small")
                .attr("id", PROJECTOR)
                .attr("aria-pressed", if projector { "true" } else { "false" })
                .text(if projector {
                    "Normal size"
                } else {
                    "Projector mode"
                })
                .done(),
        ])
        .done();
    // Why the server closed or refused the live link, in its words (a
    // browser learns them only from the close frame).
    let problem = state.socket_problem.as_ref().map(|problem| {
        el("p")
            .attr("class", "error")
            .attr("role", "alert")
            .attr("id", "socket-problem")
            .text(problem.clone())
            .done()
    });
    vec![
        vec![
            el("h1").text("keepalive-lab").done(),
            el("p").attr("class", "lede").text(lede(page)).done(),
            status,
        ],
        problem.into_iter().collect(),
    ]
}

/// What the page is for, in a sentence or two: the lesson track says where
/// to start (found in review: it told of a burst control it does not have).
fn lede(page: Page) -> &'static str {
    match page {
        Page::Lessons => {
            "How many connections does your browser open to one server, and what happens to \
             the requests that do not get one? Each lesson asks you to predict, runs in your own \
             browser, and answers from what the lab measured on both sides. Start with the \
             first, Six lanes."
        }
        Page::Workbench => {
            "How many connections does your browser open to one server, and what happens to \
             the requests that do not get one? Fire a burst from this page, then read both \
             sides on one clock: the browser's queue above, the server's TCP connections below."
        }
    }
}

/// The links between the two participant pages, `page` marked current:
/// the children of the page's `nav class="views"`.
pub fn nav_links(page: Page) -> Vec<Node> {
    let link = |this: Page, href: &'static str, id: &'static str, words: &'static str| {
        el("a")
            .attr("href", href)
            .attr("id", id)
            .attr_if("aria-current", (page == this).then_some("page"))
            .attr_if("title", (page != this).then_some(OTHER_PAGE))
            .text(words)
            .done()
    };
    vec![
        link(Page::Lessons, "#lessons", NAV_LESSONS, "Lessons"),
        link(Page::Workbench, "#workbench", "nav-workbench", "Workbench"),
    ]
}

/// The page's `main`: its header and links first, then `body`, slot by
/// slot.
pub fn main(state: &LabState, page: Page, projector: bool, body: Vec<Vec<Node>>) -> Node {
    let mut header = el("header").attr("class", "top");
    for slot in self::header(state, page, projector) {
        header = header.kids(slot);
    }
    let nav = el("nav")
        .attr("class", "views")
        .attr("aria-label", "Views")
        .kids(nav_links(page));
    let mut main = el("main")
        .attr("data-socket", state.socket.name())
        .attr("data-session", state.session.to_string())
        .attr("data-page", page.name())
        .attr("class", if projector { "projector" } else { "" })
        .kids(vec![header.done()])
        .kids(vec![nav.done()]);
    for slot in body {
        main = main.kids(slot);
    }
    main.done()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SocketStatus;

    /// The header's markup with the live link in `socket`.
    fn markup(socket: SocketStatus) -> String {
        let mut state = crate::state::tests::fresh();
        state.socket = socket;
        let mut out = String::new();
        for node in header(&state, Page::Lessons, false).iter().flatten() {
            node.write(&mut out);
        }
        out
    }

    /// The lesson track says where to start, and promises no burst control
    /// it does not have; the workbench says to fire one (found in review).
    #[test]
    fn each_page_says_what_it_is_for() {
        assert!(lede(Page::Lessons).ends_with("Start with the first, Six lanes."));
        assert!(!lede(Page::Lessons).contains("Fire a burst"));
        assert!(lede(Page::Workbench).contains("Fire a burst from this page"));
    }

    /// Refused (a session the server does not know, as after a restart):
    /// Reload, since the same session would be refused again; ended after
    /// it was live: Reconnect (found in review: Reconnect did nothing).
    #[test]
    fn a_refused_link_offers_a_reload_and_an_ended_one_a_reconnect() {
        let refused = markup(SocketStatus::Refused);
        assert!(
            refused.contains("id=\"reload\">Reload the page</button>"),
            "{refused}"
        );
        assert!(!refused.contains("id=\"reconnect\""), "{refused}");
        let ended = markup(SocketStatus::Ended);
        assert!(
            ended.contains("id=\"reconnect\">Reconnect</button>"),
            "{ended}"
        );
        assert!(!ended.contains("id=\"reload\""), "{ended}");
        let open = markup(SocketStatus::Open);
        assert!(
            !open.contains("reload") && !open.contains("reconnect"),
            "{open}"
        );
    }
}
