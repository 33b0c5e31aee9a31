//! The page's live link to the server: keeps the events socket open,
//! reconnecting after a drop, and queues what it hears on the
//! [`FrameDispatch`] (applied once per animation frame). Pongs are stamped
//! the moment they arrive and feed the clock sync.
//!
//! How soon it reconnects depends on how the socket closed
//! ([`reconnect_after_ms`]): after a refusal that trying again will not
//! change (1008) not by itself, only when the learner asks
//! ([`LiveLink::reconnect`]); after a cap (1013) later and later; after
//! anything else in a second.
//!
//! No framework: each participant page holds one (`crate::page::Lab`) for
//! the document's life.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use gloo_timers::callback::{Interval, Timeout};
use protocol::{ClientMessage, ServerEvent, SessionId};

use crate::clock::Sample;
use crate::frames::FrameDispatch;
use crate::services::events::EventSocket;
use crate::services::fetch::now_ms;
use crate::state::{Action, CLOSE_TRY_AGAIN_LATER, SocketStatus, reconnect_after_ms};

/// Clock pings: a quick series at first, then one now and then.
const PING_EVERY_MS: u32 = 250;
/// Pings in the first series; after it, every 20th tick (5 s).
const QUICK_PINGS: u32 = 8;

/// The live link. Cheap to clone; it lives as long as its page.
#[derive(Clone)]
pub struct LiveLink(Rc<Link>);

/// What the link holds.
struct Link {
    /// Whose events.
    session: SessionId,
    /// Where what it hears goes.
    frames: FrameDispatch,
    /// The socket of the current attempt.
    socket: RefCell<Option<EventSocket>>,
    /// The clock pings of the current attempt, from its opening.
    pings: RefCell<Option<Interval>>,
    /// The current attempt's number: a retry scheduled for an earlier one
    /// (the learner reconnected meanwhile) does nothing.
    attempt: Cell<u32>,
    /// 1013s in a row since the socket was last live (its snapshot).
    later: Cell<u32>,
}

impl PartialEq for LiveLink {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl LiveLink {
    /// A link for `session`'s events, not connected yet ([`LiveLink::reconnect`]).
    pub fn new(session: SessionId, frames: FrameDispatch) -> LiveLink {
        LiveLink(Rc::new(Link {
            session,
            frames,
            socket: RefCell::new(None),
            pings: RefCell::new(None),
            attempt: Cell::new(0),
            later: Cell::new(0),
        }))
    }

    /// Sends `message`, or says why it could not be sent.
    pub fn send(&self, message: &ClientMessage) -> Result<(), String> {
        match self.0.socket.borrow().as_ref() {
            Some(socket) => socket.send(message),
            None => Err("not connected to the server".into()),
        }
    }

    /// Opens the socket (again) now: the first connection, a retry, or the
    /// learner's Reconnect after a refusal the page does not retry by
    /// itself. The attempt before it, if any, is closed first.
    pub fn reconnect(&self) {
        connect(&self.0);
    }
}

/// One attempt: its callbacks hold the link weakly, so a closed link and
/// its socket go together.
fn connect(link: &Rc<Link>) {
    link.attempt.set(link.attempt.get().wrapping_add(1));
    link.pings.borrow_mut().take();
    link.socket.borrow_mut().take();
    link.frames.send(Action::Socket(SocketStatus::Connecting));
    let weak = Rc::downgrade(link);
    // Not `Open` yet: the link is live from its snapshot (the reducer),
    // since a refused socket opens too, then closes.
    let on_open = {
        let weak = weak.clone();
        move || {
            let Some(link) = weak.upgrade() else { return };
            let pinged = Rc::downgrade(&link);
            let mut tick = 0_u32;
            *link.pings.borrow_mut() = Some(Interval::new(PING_EVERY_MS, move || {
                tick += 1;
                if (tick <= QUICK_PINGS || tick.is_multiple_of(20))
                    && let Some(link) = pinged.upgrade()
                    && let Some(socket) = link.socket.borrow().as_ref()
                {
                    let _ = socket.send(&ClientMessage::Ping {
                        client_time_ms: now_ms(),
                    });
                }
            }));
        }
    };
    let on_close = {
        let weak = weak.clone();
        move |code: u16, reason: String| {
            if let Some(link) = weak.upgrade() {
                closed(&link, code, reason);
            }
        }
    };
    let on_event = move |event: ServerEvent| {
        let Some(link) = weak.upgrade() else { return };
        match event {
            ServerEvent::Pong {
                client_time_ms,
                server_us,
            } => {
                // Stamped on arrival, not at the next frame.
                link.frames.clock(Sample {
                    sent_ms: client_time_ms,
                    received_ms: now_ms(),
                    server_us,
                });
            }
            event => {
                if matches!(event, ServerEvent::Snapshot { .. }) {
                    // Live: the next cap refusal waits the least again.
                    link.later.set(0);
                }
                link.frames.event(event);
            }
        }
    };
    match EventSocket::connect(
        &link.session,
        Box::new(on_event),
        Box::new(on_open),
        Box::new(on_close),
    ) {
        Ok(opened) => *link.socket.borrow_mut() = Some(opened),
        Err(_) => closed(link, 1006, String::new()),
    }
}

/// The socket closed with `code` and `reason`: told to the page, and tried
/// again when the code says to.
fn closed(link: &Rc<Link>, code: u16, reason: String) {
    link.pings.borrow_mut().take();
    link.frames.send(Action::SocketClosed { code, reason });
    let in_a_row = if code == CLOSE_TRY_AGAIN_LATER {
        link.later.get() + 1
    } else {
        0
    };
    link.later.set(in_a_row);
    if let Some(ms) = reconnect_after_ms(code, in_a_row) {
        // Not kept to be cancelled: dropping a timer from its own callback
        // (the retry's `connect`) would free the closure that is running.
        let (weak, attempt): (Weak<Link>, u32) = (Rc::downgrade(link), link.attempt.get());
        Timeout::new(ms, move || {
            if let Some(link) = weak.upgrade()
                && link.attempt.get() == attempt
            {
                connect(&link);
            }
        })
        .forget();
    }
}
