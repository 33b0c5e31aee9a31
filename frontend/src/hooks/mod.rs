//! Custom hooks.

mod use_event_socket;
mod use_frame_dispatch;
mod use_lab;
mod use_store;

pub use use_event_socket::use_event_socket;
pub use use_frame_dispatch::{FrameDispatch, use_frame_dispatch};
pub use use_lab::{Lab, use_lab, use_room_move};
pub use use_store::use_store;
