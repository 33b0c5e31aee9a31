//! The `/api/events` WebSocket client.
//!
//! A WebSocket does not take one of the browser's six HTTP/1.1 connection
//! slots (an EventSource would), and it stays usable while six requests hang,
//! so it carries both the server's events and the page's control messages.

use protocol::{ClientMessage, ServerEvent, SessionId};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

use super::js_error;

#[wasm_bindgen]
extern "C" {
    /// The socket `index.html`'s `keepaliveLabSocket` opens: in a Worker,
    /// or on the main thread where no Worker can start.
    type LabSocket;

    /// Opens the events socket at `url`; the callbacks get `()`, the
    /// message's text, and the close's code and reason.
    #[wasm_bindgen(catch, js_namespace = window, js_name = keepaliveLabSocket)]
    fn open_socket(
        url: &str,
        on_open: &js_sys::Function,
        on_message: &js_sys::Function,
        on_close: &js_sys::Function,
    ) -> Result<LabSocket, JsValue>;

    /// Sends `text`; fails until the socket is open.
    #[wasm_bindgen(catch, method, structural)]
    fn send(this: &LabSocket, text: &str) -> Result<(), JsValue>;

    /// Closes the socket with `code` and `reason`; no callback follows.
    #[wasm_bindgen(method, structural)]
    fn close(this: &LabSocket, code: u16, reason: &str);
}

/// Told each server event.
pub type OnEvent = Box<dyn Fn(ServerEvent)>;
/// Told the socket opened.
pub type OnOpen = Box<dyn Fn()>;
/// Told the socket's close: its code and reason.
pub type OnClose = Box<dyn Fn(u16, String)>;

/// An open (or opening) events socket, scoped to this page's session. Dropping it closes the socket and
/// silences its callbacks.
pub struct EventSocket {
    /// The socket, in a Worker or on the main thread (`index.html`).
    socket: LabSocket,
    /// Where it connects, for the `Debug` output.
    url: String,
    /// Handlers, kept alive as long as the socket.
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(String)>,
    _on_close: Closure<dyn FnMut(u16, String)>,
}

impl std::fmt::Debug for EventSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSocket")
            .field("url", &self.url)
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
    /// Opens the socket; `on_event` gets every server event, `on_open` its
    /// opening, `on_close` its close's code and reason (the server's words
    /// when it refused or closed it, [`crate::state::socket_notice`]).
    pub fn connect(
        session: &SessionId,
        on_event: OnEvent,
        on_open: OnOpen,
        on_close: OnClose,
    ) -> Result<EventSocket, String> {
        Self::open(&events_url(session)?, on_event, on_open, on_close)
    }

    /// The instructor's whole-room socket (`key=`).
    pub fn connect_instructor(
        key: &str,
        on_event: OnEvent,
        on_open: OnOpen,
        on_close: OnClose,
    ) -> Result<EventSocket, String> {
        let key = String::from(js_sys::encode_uri_component(key));
        Self::open(
            &events_url_with(&format!("key={key}"))?,
            on_event,
            on_open,
            on_close,
        )
    }

    fn open(
        url: &str,
        on_event: OnEvent,
        on_open: OnOpen,
        on_close: OnClose,
    ) -> Result<EventSocket, String> {
        let on_open = Closure::<dyn FnMut()>::new(on_open);
        let on_message = Closure::<dyn FnMut(String)>::new(move |text: String| {
            match crate::wire::from_str::<ServerEvent>(&text) {
                Ok(event) => on_event(event),
                Err(e) => on_event(ServerEvent::Error(protocol::ErrorBody::new(
                    format!("the page could not read a server event: {e}"),
                    "reload the page; the server and page may be different versions",
                ))),
            }
        });
        // A refusal before the socket is of any use (the server accepts the
        // upgrade and closes at once: a browser cannot read an HTTP answer
        // to its handshake) comes as a close like any other, with a code
        // and a reason.
        let on_close = Closure::<dyn FnMut(u16, String)>::new(on_close);
        let socket = open_socket(
            url,
            on_open.as_ref().unchecked_ref(),
            on_message.as_ref().unchecked_ref(),
            on_close.as_ref().unchecked_ref(),
        )
        .map_err(js_error)?;
        Ok(EventSocket {
            socket,
            url: url.to_owned(),
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }

    /// Sends a control message.
    pub fn send(&self, message: &ClientMessage) -> Result<(), String> {
        let text = crate::wire::to_string(message);
        self.socket.send(&text).map_err(js_error)
    }
}

impl Drop for EventSocket {
    fn drop(&mut self) {
        // A normal close (1000): the server answers with its own close
        // frame. No callback runs after this (the script stops calling), so
        // the closures can go with `self`.
        self.socket.close(1000, "page closed");
    }
}
