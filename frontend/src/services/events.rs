//! The `/api/events` WebSocket client.
//!
//! A WebSocket does not take one of the browser's six HTTP/1.1 connection
//! slots (an EventSource would), and it stays usable while six requests hang,
//! so it carries both the server's events and the page's control messages.

use protocol::{ClientMessage, ServerEvent, SessionId};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};
use yew::Callback;

use super::js_error;
use crate::state::SocketStatus;

/// An open (or opening) events socket, scoped to this page's session. Dropping it closes the socket and
/// silences its callbacks.
pub struct EventSocket {
    /// The browser's socket.
    ws: WebSocket,
    /// Handlers, kept alive as long as the socket.
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl std::fmt::Debug for EventSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSocket")
            .field("url", &self.ws.url())
            .finish()
    }
}

/// `ws://host/api/events?{query}` for the page's own origin.
fn events_url_with(query: &str) -> Result<String, String> {
    let location = web_sys::window().ok_or("no window")?.location();
    let scheme = match location.protocol().map_err(js_error)?.as_str() {
        "https:" => "wss",
        _ => "ws",
    };
    Ok(format!(
        "{scheme}://{}/api/events?{query}",
        location.host().map_err(js_error)?
    ))
}

/// `ws://host/api/events?session=…` for the page's own origin.
fn events_url(session: &SessionId) -> Result<String, String> {
    let location = web_sys::window().ok_or("no window")?.location();
    let scheme = match location.protocol().map_err(js_error)?.as_str() {
        "https:" => "wss",
        _ => "ws",
    };
    Ok(format!(
        "{scheme}://{}/api/events?session={session}",
        location.host().map_err(js_error)?
    ))
}

impl EventSocket {
    /// Opens the socket; `on_event` gets every server event, `on_status`
    /// every change of state.
    pub fn connect(
        session: &SessionId,
        on_event: Callback<ServerEvent>,
        on_status: Callback<SocketStatus>,
    ) -> Result<EventSocket, String> {
        Self::open(&events_url(session)?, on_event, on_status)
    }

    /// The instructor's whole-room socket (`key=`).
    pub fn connect_instructor(
        key: &str,
        on_event: Callback<ServerEvent>,
        on_status: Callback<SocketStatus>,
    ) -> Result<EventSocket, String> {
        let key = String::from(js_sys::encode_uri_component(key));
        Self::open(
            &events_url_with(&format!("key={key}"))?,
            on_event,
            on_status,
        )
    }

    fn open(
        url: &str,
        on_event: Callback<ServerEvent>,
        on_status: Callback<SocketStatus>,
    ) -> Result<EventSocket, String> {
        let ws = WebSocket::new(url).map_err(js_error)?;
        let on_event_for_close = on_event.clone();
        let on_open = {
            let on_status = on_status.clone();
            Closure::<dyn FnMut(Event)>::new(move |_| on_status.emit(SocketStatus::Open))
        };
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |message: MessageEvent| {
            let Some(text) = message.data().as_string() else {
                return;
            };
            match crate::wire::from_str::<ServerEvent>(&text) {
                Ok(event) => on_event.emit(event),
                Err(e) => on_event.emit(ServerEvent::Error(protocol::ErrorBody {
                    error: format!("the page could not read a server event: {e}"),
                    hint: "reload the page; the server and page may be different versions".into(),
                })),
            }
        });
        let on_close = {
            let on_event = on_event_for_close;
            Closure::<dyn FnMut(CloseEvent)>::new(move |closed: CloseEvent| {
                // A close the server explains (it fell behind, a protocol
                // error, shutdown) is shown with the server's words.
                if !closed.reason().is_empty() {
                    on_event.emit(ServerEvent::Error(protocol::ErrorBody {
                        error: format!(
                            "the server closed the events socket ({}): {}",
                            closed.code(),
                            closed.reason()
                        ),
                        hint: "the page reconnects by itself; reload for a complete picture".into(),
                    }));
                }
                on_status.emit(SocketStatus::Closed)
            })
        };
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(EventSocket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }

    /// Sends a control message.
    pub fn send(&self, message: &ClientMessage) -> Result<(), String> {
        let text = crate::wire::to_string(message);
        self.ws.send_with_str(&text).map_err(js_error)
    }
}

impl Drop for EventSocket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        // A normal close (1000): the server answers with its own close frame.
        let _ = self.ws.close_with_code_and_reason(1000, "page closed");
    }
}
