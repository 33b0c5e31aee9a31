//! The page's components, one per file.

mod app;
mod composer;
mod measured;
mod policy;
mod runs;
mod timeline_view;

pub use app::App;
