//! Custom hooks.

mod use_event_socket;

pub use use_event_socket::use_event_socket;
