//! The keepalive-lab page, Rust compiled to WebAssembly: three bundles
//! from this one library, so each page downloads only its own code:
//!
//! - the lesson track (`src/bin/app.rs`, [`lab`]), where a participant lands
//!   (`/`, `#lessons`, `#lesson=ID`);
//! - the workbench (`src/bin/workbench.rs`, [`workbench`]): `#workbench`, or
//!   a link carrying burst settings;
//! - the instructor's view (`src/bin/instructor.rs`, [`instructor`]):
//!   `#instructor&key=…`.
//!
//! `index.html` loads the one the URL asks for. Following a link between the
//! lesson track and the workbench loads the other bundle, and hands the
//! page's session over (`sessionStorage`, then checked with the server), so
//! the learner stays the same participant.
//!
//! # Layout
//!
//! - [`state`]: the page's state and its reducer, pure and host-tested, held
//!   by [`store`] (no framework: watchers told after each change); with
//!   [`settings`] (the burst composer and its shareable URL), [`clock`] (server
//!   time on the page's clock), [`timeline`] (layout on one axis) and [`har`]
//!   (HAR 1.2 export), all pure too;
//! - [`dom`]: the page's own small DOM layer (node descriptions patched into
//!   the document in place), which draws the lesson track and the timeline
//!   without yew;
//! - [`track`]: the lesson track, the landing page, with no yew at all: one
//!   `Track` holds the page's store, live link and lesson, and draws the page
//!   after every change; [`shell`] (the header and links both participant
//!   pages show) and [`live`] (ports, firing a burst, the room's lesson) are
//!   shared with the workbench;
//! - `components/`: the workbench's and the instructor's yew components, one
//!   per file, `Root` at the top of the workbench (it asks the server for a
//!   session, then shows `Workbench`), `InstructorPage` at the top of the
//!   instructor's view;
//! - `hooks/`: [`hooks::use_lab`], the workbench's live lab (state, events
//!   socket, firing a burst), [`hooks::use_event_socket`], a component's hold
//!   on the live link to the server ([`services::live_link`]);
//! - `services/`: browser I/O (the events WebSocket, the page's `fetch` calls).

mod agent;
mod clock;
mod components;
mod decimal;
mod dom;
mod har;
mod hooks;
mod lessons;
mod live;
mod palette;
mod services;
mod settings;
mod shell;
mod sorted;
mod state;
mod store;
mod tally;
mod timeline;
mod track;
mod wire;

/// TLSF in its code-size configuration instead of the default dlmalloc: the
/// page allocates mostly small, short-lived values (events, view nodes).
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: rlsf::SmallGlobalTlsf = rlsf::SmallGlobalTlsf::new();

/// Starts the participant's landing page: a session, then the lesson track.
pub fn lab() {
    track::start();
}

/// Starts the participant's workbench: a session, then the workbench.
pub fn workbench() {
    yew::Renderer::<components::Root<components::Workbench>>::new().render();
}

/// Starts the instructor's page (`#instructor&key=KEY`).
pub fn instructor() {
    yew::Renderer::<components::InstructorPage>::new().render();
}
