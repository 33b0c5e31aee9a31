//! Keeps the events socket open for the component's life, reconnecting after
//! a drop, and queues what it hears on the [`FrameDispatch`] (applied once
//! per animation frame). Pongs are stamped the moment they arrive and feed
//! the clock sync.
//!
//! How soon it reconnects depends on how the socket closed
//! ([`reconnect_after_ms`]): after a refusal that trying again will not
//! change (1008) not by itself, only when the learner asks
//! ([`SocketHandle::reconnect`]); after a cap (1013) later and later; after
//! anything else in a second.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::callback::{Interval, Timeout};
use protocol::{ClientMessage, ServerEvent, SessionId};
use yew::prelude::*;

use super::FrameDispatch;
use crate::clock::Sample;
use crate::services::events::EventSocket;
use crate::services::fetch::now_ms;
use crate::state::{Action, CLOSE_TRY_AGAIN_LATER, SocketStatus, reconnect_after_ms};

/// Clock pings: a quick series at first, then one now and then.
const PING_EVERY_MS: u32 = 250;
/// Pings in the first series; after it, every 20th tick (5 s).
const QUICK_PINGS: u32 = 8;

/// A handle to send control messages on the current socket.
#[derive(Clone, Debug)]
pub struct SocketHandle {
    socket: Rc<RefCell<Option<EventSocket>>>,
    /// The connection attempt (a new one opens the socket again).
    attempt: UseStateHandle<u32>,
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

    /// Opens the socket again now (the learner's Reconnect, after a refusal
    /// the page does not retry by itself).
    pub fn reconnect(&self) {
        self.attempt.set(*self.attempt + 1);
    }
}

/// Opens `/api/events` for `session`, queues its events and state on
/// `frames`, and keeps the clocks in sync.
#[hook]
pub fn use_event_socket(session: SessionId, frames: FrameDispatch) -> SocketHandle {
    let socket = use_mut_ref(|| None::<EventSocket>);
    let attempt = use_state(|| 0_u32);
    // 1013s in a row since the socket was last live (its snapshot).
    let later = use_mut_ref(|| 0_u32);
    {
        let socket = socket.clone();
        let retry = attempt.setter();
        use_effect_with(*attempt, move |attempt| {
            let attempt = *attempt;
            frames.send(Action::Socket(SocketStatus::Connecting));
            let pings: Rc<RefCell<Option<Interval>>> = Rc::default();
            let on_open = {
                let (socket, pings) = (socket.clone(), pings.clone());
                // Not `Open` yet: the link is live from its snapshot (the
                // reducer), since a refused socket opens too, then closes.
                Callback::from(move |()| {
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
                })
            };
            let on_close = {
                let (frames, pings, later) = (frames.clone(), pings.clone(), later.clone());
                Callback::from(move |(code, reason): (u16, String)| {
                    pings.borrow_mut().take();
                    frames.send(Action::SocketClosed { code, reason });
                    let in_a_row = {
                        let mut later = later.borrow_mut();
                        *later = if code == CLOSE_TRY_AGAIN_LATER {
                            *later + 1
                        } else {
                            0
                        };
                        *later
                    };
                    if let Some(ms) = reconnect_after_ms(code, in_a_row) {
                        let retry = retry.clone();
                        Timeout::new(ms, move || retry.set(attempt + 1)).forget();
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
                    event => {
                        if matches!(event, ServerEvent::Snapshot { .. }) {
                            // Live: the next cap refusal waits the least again.
                            *later.borrow_mut() = 0;
                        }
                        frames.event(event);
                    }
                })
            };
            match EventSocket::connect(&session, on_event, on_open, on_close.clone()) {
                Ok(opened) => *socket.borrow_mut() = Some(opened),
                Err(_) => on_close.emit((1006, String::new())),
            }
            move || {
                pings.borrow_mut().take();
                socket.borrow_mut().take();
            }
        });
    }
    SocketHandle { socket, attempt }
}
