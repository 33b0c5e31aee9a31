//! The keepalive-lab page, a Yew app compiled to WebAssembly.
//!
//! # Layout
//!
//! - [`state`]: the page's state and its reducer, pure and host-tested;
//! - `components/`: one component per file, [`components::App`] at the top;
//! - `hooks/`: [`hooks::use_event_socket`], the live link to the server;
//! - `services/`: browser I/O (the events WebSocket, the page's `fetch` calls).

mod components;
mod hooks;
mod services;
mod state;

fn main() {
    yew::Renderer::<components::App>::new().render();
}
