//! The keepalive-lab page, a Yew app compiled to WebAssembly: two bundles
//! from this one library, the participant's page (`src/bin/app.rs`, [`lab`])
//! and the instructor's (`src/bin/instructor.rs`, [`instructor`]), so no
//! participant downloads the instructor's view. `index.html` loads the one
//! its URL asks for (`#instructor&key=…` is the instructor's).
//!
//! # Layout
//!
//! - [`state`]: the page's state and its reducer, pure and host-tested; with
//!   [`settings`] (the burst composer and its shareable URL), [`clock`] (server
//!   time on the page's clock), [`timeline`] (layout on one axis) and [`har`]
//!   (HAR 1.2 export), all pure too;
//! - `components/`: one component per file, `Root` at the top of the lab (it
//!   asks the server for a session, then shows it, `components/app.rs`),
//!   `InstructorPage` at the top of the instructor's view;
//! - `hooks/`: [`hooks::use_event_socket`], the live link to the server;
//! - `services/`: browser I/O (the events WebSocket, the page's `fetch` calls).

mod agent;
mod clock;
mod components;
mod decimal;
mod har;
mod hooks;
mod lessons;
mod palette;
mod services;
mod settings;
mod sorted;
mod state;
mod tally;
mod timeline;
mod wire;

/// TLSF in its code-size configuration instead of the default dlmalloc: the
/// page allocates mostly small, short-lived values (events, view nodes).
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: rlsf::SmallGlobalTlsf = rlsf::SmallGlobalTlsf::new();

/// Starts the participant's page: a session, then the lab.
pub fn lab() {
    yew::Renderer::<components::Root>::new().render();
}

/// Starts the instructor's page (`#instructor&key=KEY`).
pub fn instructor() {
    yew::Renderer::<components::InstructorPage>::new().render();
}
