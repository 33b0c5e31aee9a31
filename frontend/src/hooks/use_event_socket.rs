//! Keeps the events socket open for the component's life, reconnecting after
//! a drop, and feeds everything it hears into the reducer.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::callback::Timeout;
use protocol::ClientMessage;
use yew::prelude::*;

use crate::services::events::EventSocket;
use crate::state::{Action, LabState, SocketStatus};

/// Wait before reconnecting after the socket dropped.
const RECONNECT_MS: u32 = 1_000;

/// A handle to send control messages on the current socket.
#[derive(Clone, Debug)]
pub struct SocketHandle {
    socket: Rc<RefCell<Option<EventSocket>>>,
}

impl PartialEq for SocketHandle {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.socket, &other.socket)
    }
}

impl SocketHandle {
    /// Sends `message`, or says why it could not be sent.
    pub fn send(&self, message: &ClientMessage) -> Result<(), String> {
        match self.socket.borrow().as_ref() {
            Some(socket) => socket.send(message),
            None => Err("not connected to the server".into()),
        }
    }
}

/// Opens `/api/events` for `session`, dispatches its events and state into
/// `dispatch`.
#[hook]
pub fn use_event_socket(
    session: protocol::SessionId,
    dispatch: UseReducerDispatcher<LabState>,
) -> SocketHandle {
    let socket = use_mut_ref(|| None::<EventSocket>);
    let attempt = use_state(|| 0_u32);
    {
        let socket = socket.clone();
        let retry = attempt.setter();
        use_effect_with(*attempt, move |attempt| {
            let attempt = *attempt;
            dispatch.dispatch(Action::Socket(SocketStatus::Connecting));
            let on_status = {
                let dispatch = dispatch.clone();
                Callback::from(move |status: SocketStatus| {
                    dispatch.dispatch(Action::Socket(status));
                    if status == SocketStatus::Closed {
                        let retry = retry.clone();
                        Timeout::new(RECONNECT_MS, move || retry.set(attempt + 1)).forget();
                    }
                })
            };
            let on_event = Callback::from(move |event| dispatch.dispatch(Action::Server(event)));
            match EventSocket::connect(&session, on_event, on_status.clone()) {
                Ok(opened) => *socket.borrow_mut() = Some(opened),
                Err(_) => on_status.emit(SocketStatus::Closed),
            }
            move || {
                socket.borrow_mut().take();
            }
        });
    }
    SocketHandle { socket }
}
