//! The keepalive-lab page, Rust compiled to WebAssembly: three bundles
//! from this one library, so each page downloads only its own code:
//!
//! - the lesson track (`src/bin/app.rs`, [`lab`]), where a participant lands
//!   (`/`, `#lessons`, `#lesson=ID`);
//! - the workbench (`src/bin/workbench.rs`, [`workbench()`]): `#workbench`, or
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
//!   the document in place), which draws both participant pages: yew is
//!   left only in the instructor's bundle;
//! - [`page`]: what both participant pages are made of (a session, then a
//!   `Lab`: store, frame dispatcher, live link, ports, the timeline);
//!   [`mod@track`] is the lesson track and [`mod@workbench`] the workbench, each one
//!   page struct drawing itself after every change; [`shell`] (the header
//!   and links both show) and [`live`] (ports, firing a burst, the room's
//!   lesson, projector mode) are shared;
//! - `components/`: the instructor's yew components, and the timeline
//!   (drawn without yew, in a section of either participant page);
//! - [`frames`]: the frame dispatcher ([`frames::FrameDispatch`]), the one way
//!   the state changes;
//! - `services/`: browser I/O (the events WebSocket, the page's `fetch` calls).

mod agent;
mod clock;
mod components;
mod decimal;
mod dom;
mod flood;
mod frames;
mod har;
mod lessons;
mod live;
mod page;
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
mod workbench;

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
    workbench::start();
}

/// Starts the instructor's page (`#instructor&key=KEY`).
pub fn instructor() {
    yew::Renderer::<components::InstructorPage>::new().render();
}
