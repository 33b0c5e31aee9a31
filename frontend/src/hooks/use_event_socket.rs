//! Keeps the events socket open for the component's life, reconnecting after
//! a drop, and queues what it hears on the [`FrameDispatch`] (applied once
//! per animation frame). Pongs are stamped the moment they arrive and feed
//! the clock sync.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::callback::{Interval, Timeout};
use protocol::{ClientMessage, ServerEvent, SessionId};
use yew::prelude::*;

use super::FrameDispatch;
use crate::clock::Sample;
use crate::services::events::EventSocket;
use crate::services::fetch::now_ms;
use crate::state::{Action, SocketStatus};

/// Wait before reconnecting after the socket dropped.
const RECONNECT_MS: u32 = 1_000;
/// Clock pings: a quick series at first, then one now and then.
const PING_EVERY_MS: u32 = 250;
/// Pings in the first series; after it, every 20th tick (5 s).
const QUICK_PINGS: u32 = 8;

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

/// Opens `/api/events` for `session`, queues its events and state on
/// `frames`, and keeps the clocks in sync.
#[hook]
pub fn use_event_socket(session: SessionId, frames: FrameDispatch) -> SocketHandle {
    let socket = use_mut_ref(|| None::<EventSocket>);
    let attempt = use_state(|| 0_u32);
    {
        let socket = socket.clone();
        let retry = attempt.setter();
        use_effect_with(*attempt, move |attempt| {
            let attempt = *attempt;
            frames.send(Action::Socket(SocketStatus::Connecting));
            let pings: Rc<RefCell<Option<Interval>>> = Rc::default();
            let on_status = {
                let (frames, socket, pings) = (frames.clone(), socket.clone(), pings.clone());
                Callback::from(move |status: SocketStatus| {
                    frames.send(Action::Socket(status));
                    match status {
                        SocketStatus::Open => {
                            let socket = socket.clone();
                            let mut tick = 0_u32;
                            *pings.borrow_mut() = Some(Interval::new(PING_EVERY_MS, move || {
                                tick += 1;
                                if (tick <= QUICK_PINGS || tick.is_multiple_of(20))
                                    && let Some(s) = socket.borrow().as_ref()
                                {
                                    let _ = s.send(&ClientMessage::Ping {
                                        client_time_ms: now_ms(),
                                    });
                                }
                            }));
                        }
                        SocketStatus::Closed => {
                            pings.borrow_mut().take();
                            let retry = retry.clone();
                            Timeout::new(RECONNECT_MS, move || retry.set(attempt + 1)).forget();
                        }
                        SocketStatus::Connecting => {}
                    }
                })
            };
            let on_event = {
                let frames = frames.clone();
                Callback::from(move |event: ServerEvent| match event {
                    ServerEvent::Pong {
                        client_time_ms,
                        server_us,
                    } => {
                        // Stamped on arrival, not at the next frame.
                        frames.clock(Sample {
                            sent_ms: client_time_ms,
                            received_ms: now_ms(),
                            server_us,
                        });
                    }
                    event => frames.event(event),
                })
            };
            match EventSocket::connect(&session, on_event, on_status.clone()) {
                Ok(opened) => *socket.borrow_mut() = Some(opened),
                Err(_) => on_status.emit(SocketStatus::Closed),
            }
            move || {
                pings.borrow_mut().take();
                socket.borrow_mut().take();
            }
        });
    }
    SocketHandle { socket }
}
