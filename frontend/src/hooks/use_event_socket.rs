//! A yew component's live link ([`LiveLink`]): opened after its first
//! render, closed when it goes.

use protocol::SessionId;
use yew::prelude::*;

use super::FrameDispatch;
use crate::services::live_link::LiveLink;

/// Opens `/api/events` for `session` and queues what it hears on `frames`
/// for the component's life.
#[hook]
pub fn use_event_socket(session: SessionId, frames: FrameDispatch) -> LiveLink {
    let link = (*use_memo((), move |()| LiveLink::new(session, frames))).clone();
    {
        let link = link.clone();
        use_effect_with((), move |()| {
            link.reconnect();
            move || link.close()
        });
    }
    link
}
