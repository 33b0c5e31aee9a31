//! The keepalive-lab page, a Yew app compiled to WebAssembly.
//!
//! # Layout
//!
//! - [`state`]: the page's state and its reducer, pure and host-tested; with
//!   [`settings`] (the burst composer and its shareable URL), [`clock`] (server
//!   time on the page's clock), [`timeline`] (layout on one axis) and [`har`]
//!   (HAR 1.2 export), all pure too;
//! - `components/`: one component per file, [`components::Root`] at the top
//!   (it asks the server for a session, then shows the lab, `components/app.rs`);
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
mod state;
mod tally;
mod timeline;
mod wire;

/// TLSF in its code-size configuration instead of the default dlmalloc: the
/// page allocates mostly small, short-lived values (events, view nodes).
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: rlsf::SmallGlobalTlsf = rlsf::SmallGlobalTlsf::new();

fn main() {
    yew::Renderer::<components::Root>::new().render();
}
