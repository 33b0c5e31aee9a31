//! Keeps the events socket open for the component's life, reconnecting after
//! a drop, and feeds what it hears into the reducer.
//!
//! Events are not dispatched one by one: they are buffered and applied once
//! per animation frame as one [`Action::ServerBatch`], so a burst of
//! thousands of events costs one re-render per frame, not one per event.
//! Pongs are stamped the moment they arrive and feed the clock sync.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::callback::{Interval, Timeout};
use protocol::{ClientMessage, ServerEvent, SessionId};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use yew::prelude::*;

use crate::clock::{ClockSync, Sample};
use crate::services::events::EventSocket;
use crate::services::fetch::now_ms;
use crate::state::{Action, LabState, SocketStatus};

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

/// Events waiting for the next animation frame.
#[derive(Default)]
struct Batch {
    events: Vec<ServerEvent>,
    frame_requested: bool,
    /// The hook's own copy of the clock sync, for the latency figures.
    clock: ClockSync,
}

/// Latencies kept for `window.__keepaliveLab.eventLatencyMs`.
const MAX_LATENCIES: u32 = 20_000;

/// When the server stamped an event, if it carries a time.
fn stamped_at(event: &ServerEvent) -> Option<protocol::Micros> {
    match event {
        ServerEvent::ConnectionOpened { at_us, .. }
        | ServerEvent::ConnectionAttributed { at_us, .. }
        | ServerEvent::RequestStarted { at_us, .. }
        | ServerEvent::ResponseStarted { at_us, .. }
        | ServerEvent::RequestFinished { at_us, .. }
        | ServerEvent::ConnectionUpgraded { at_us, .. }
        | ServerEvent::ConnectionClosed { at_us, .. }
        | ServerEvent::ConfigChanged { at_us, .. } => Some(*at_us),
        _ => None,
    }
}

/// Instrumentation for `cargo xtask bench`: how long each event took from
/// the server's stamp to being applied here (ms, on the synced clock),
/// appended to `window.__keepaliveLab.eventLatencyMs` (bounded).
fn record_latencies(events: &[ServerEvent], clock: &ClockSync) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let key = JsValue::from_str("__keepaliveLab");
    let lab = js_sys::Reflect::get(&window, &key)
        .ok()
        .filter(|v| v.is_object())
        .unwrap_or_else(|| {
            let lab = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&lab, &"eventLatencyMs".into(), &js_sys::Array::new());
            let _ = js_sys::Reflect::set(&window, &key, &lab);
            lab.into()
        });
    let Ok(list) = js_sys::Reflect::get(&lab, &"eventLatencyMs".into()) else {
        return;
    };
    let list: js_sys::Array = list.unchecked_into();
    let now = now_ms();
    for at in events.iter().filter_map(stamped_at) {
        if let Some(stamped) = clock.to_page_ms(at) {
            list.push(&JsValue::from_f64(now - stamped));
        }
    }
    if list.length() > MAX_LATENCIES {
        list.splice(0, list.length() - MAX_LATENCIES, &JsValue::UNDEFINED);
    }
    let _ = js_sys::Reflect::set(
        &lab,
        &"clockUncertaintyMs".into(),
        &clock
            .uncertainty_ms()
            .map_or(JsValue::NULL, JsValue::from_f64),
    );
}

fn schedule_flush(batch: &Rc<RefCell<Batch>>, dispatch: &UseReducerDispatcher<LabState>) {
    if std::mem::replace(&mut batch.borrow_mut().frame_requested, true) {
        return;
    }
    let (batch, dispatch) = (batch.clone(), dispatch.clone());
    let flush = Closure::once_into_js(move || {
        let (events, clock) = {
            let mut b = batch.borrow_mut();
            b.frame_requested = false;
            (std::mem::take(&mut b.events), b.clock)
        };
        if !events.is_empty() {
            record_latencies(&events, &clock);
            dispatch.dispatch(Action::ServerBatch(events));
        }
    });
    if let Some(window) = web_sys::window() {
        let _ = window.request_animation_frame(flush.unchecked_ref());
    }
}

/// Opens `/api/events` for `session`, dispatches its events (in per-frame
/// batches) and state into `dispatch`, and keeps the clocks in sync.
#[hook]
pub fn use_event_socket(
    session: SessionId,
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
            let pings: Rc<RefCell<Option<Interval>>> = Rc::default();
            let on_status = {
                let (dispatch, socket, pings) = (dispatch.clone(), socket.clone(), pings.clone());
                Callback::from(move |status: SocketStatus| {
                    dispatch.dispatch(Action::Socket(status));
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
            let batch: Rc<RefCell<Batch>> = Rc::default();
            let on_event = {
                let dispatch = dispatch.clone();
                Callback::from(move |event: ServerEvent| match event {
                    ServerEvent::Pong {
                        client_time_ms,
                        server_us,
                    } => {
                        dispatch.dispatch(Action::Clock(Sample {
                            sent_ms: client_time_ms,
                            received_ms: now_ms(),
                            server_us,
                        }));
                    }
                    event => {
                        batch.borrow_mut().events.push(event);
                        schedule_flush(&batch, &dispatch);
                    }
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
