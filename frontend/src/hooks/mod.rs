//! The page's frame dispatcher: every change to the state goes through it.

mod use_frame_dispatch;

pub use use_frame_dispatch::FrameDispatch;
