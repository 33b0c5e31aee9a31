//! The page's components, one per file.

mod app;
mod browser_pane;
mod controls;
mod measured;
mod policy;
mod server_pane;

pub use app::App;
