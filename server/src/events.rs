//! The `/api/events` WebSocket.
//!
//! A viewer first gets a [`ServerEvent::Snapshot`], then every event live. It
//! may send [`ClientMessage`]s: `release` (the page cannot use HTTP for that
//! while six of its requests hang: the seventh would queue behind them),
//! `set_config`, and `ping` for clock sync. [`run_viewer`] is generic over
//! `Sink` and `Stream` so it can be driven without a socket.
//!
//! # Scope
//!
//! `/api/events?session=S` shows a page only its own world: connections whose
//! first request named session `S`, plus connections that have not named any
//! session yet and come from the same host (Chromium's spare socket). When
//! such a connection turns out to be someone else's, the viewer is told to
//! forget it ([`ServerEvent::ConnectionHidden`]). Without `session`, a viewer
//! sees everything (curl, and later the instructor's overview).

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Extension, RawQuery, State};
use axum::response::{IntoResponse, Response};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use protocol::{
    ClientMessage, CloseReason, ConnId, ErrorBody, ReleaseRequest, ServerEvent, SessionId,
    UpgradeRole,
};
use tokio::sync::broadcast::error::RecvError;

use crate::Lab;
use crate::conn::{Conn, RequestCtx};
use crate::error::ApiError;
use crate::params::Params;

/// Largest control message accepted from a page. Real ones are < 300 bytes.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// How long a viewer keeps streaming after shutdown begins, so it can show
/// the connections closing, before it closes itself.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_millis(500);

/// Upgrades `GET /api/events[?session=S]` and runs the viewer on the socket.
pub async fn upgrade(
    State(lab): State<Lab>,
    ctx: Option<Extension<RequestCtx>>,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let session = match Params::parse(
        "/api/events",
        query.as_deref(),
        &[],
        "ws://127.0.0.1:8080/api/events?session=s-1",
    )
    .and_then(|p| p.session())
    {
        Ok(session) => session,
        Err(error) => return error.into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::with_status(
                rejection.status(),
                format!("/api/events is a WebSocket: {}", rejection.body_text()),
                "connect with a WebSocket client, e.g. new WebSocket('ws://127.0.0.1:8080/api/events') \
                 or `websocat ws://127.0.0.1:8080/api/events`; plain HTTP gets GET /api/connections",
            )
            .into_response();
        }
    };
    let conn = ctx.map(|Extension(c)| c.conn);
    let scope = match session {
        Some(id) => Scope::Session {
            id,
            host: conn.as_ref().map(|c| c.peer().ip()),
        },
        None => Scope::All,
    };
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            if let Some(conn) = &conn {
                conn.mark_upgraded(UpgradeRole::Monitor);
            }
            let (sink, stream) = socket.split();
            run_viewer(lab, conn, scope, sink, stream).await;
        })
}

/// Which connections a viewer sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything (no session given).
    All,
    /// One session's connections, plus unattributed ones from `host`.
    Session {
        /// The session.
        id: SessionId,
        /// The viewer's own address, for unattributed connections.
        host: Option<IpAddr>,
    },
}

impl Scope {
    /// The session whose hangs this viewer may release (`None`: all).
    pub fn session(&self) -> Option<&SessionId> {
        match self {
            Scope::All => None,
            Scope::Session { id, .. } => Some(id),
        }
    }
}

/// Two addresses of the same machine: equal, or both loopback (a page at
/// `localhost` talks over ::1 while `127.0.0.1` is IPv4).
fn same_host(a: IpAddr, b: IpAddr) -> bool {
    a == b || (a.is_loopback() && b.is_loopback())
}

fn host_of(peer: &str) -> Option<IpAddr> {
    peer.parse::<SocketAddr>().ok().map(|a| a.ip())
}

/// Decides, event by event, what one viewer is shown.
#[derive(Debug)]
pub struct Filter {
    /// The viewer's scope.
    scope: Scope,
    /// Connections this viewer has been shown and not yet seen close.
    visible: HashSet<ConnId>,
}

impl Filter {
    /// A filter for `scope`.
    pub fn new(scope: Scope) -> Filter {
        Filter {
            scope,
            visible: HashSet::new(),
        }
    }

    fn unattributed_visible(&self, peer: &str) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Session { host, .. } => {
                matches!((host, host_of(peer)), (Some(mine), Some(theirs)) if same_host(*mine, theirs))
            }
        }
    }

    /// Trims a snapshot to this viewer's connections.
    pub fn snapshot(&mut self, event: ServerEvent) -> ServerEvent {
        let ServerEvent::Snapshot {
            now_us,
            config,
            listeners,
            mut connections,
        } = event
        else {
            return event;
        };
        connections.retain(|c| match (&self.scope, &c.session) {
            (Scope::All, _) => true,
            (Scope::Session { id, .. }, Some(session)) => session == id,
            (Scope::Session { .. }, None) => self.unattributed_visible(&c.peer),
        });
        self.visible = connections.iter().map(|c| c.conn).collect();
        ServerEvent::Snapshot {
            now_us,
            config,
            listeners,
            connections,
        }
    }

    /// What this viewer is shown of `event`: nothing, the event, or (for a
    /// connection that just became theirs) its opening first.
    pub fn route(&mut self, lab: &Lab, event: ServerEvent) -> Vec<ServerEvent> {
        let Scope::Session { id, .. } = &self.scope else {
            return vec![event];
        };
        match &event {
            ServerEvent::ConnectionOpened { conn, peer, .. } => {
                if self.unattributed_visible(peer) {
                    self.visible.insert(*conn);
                    vec![event]
                } else {
                    vec![]
                }
            }
            ServerEvent::ConnectionAttributed { conn, session, .. } if session == id => {
                let mut shown = Vec::new();
                if self.visible.insert(*conn) {
                    // Theirs, but from an address they were not shown (another
                    // IP): introduce it first.
                    if let Some(c) = lab.tracker().connection(*conn) {
                        shown.push(ServerEvent::ConnectionOpened {
                            conn: c.conn,
                            at_us: c.opened_us,
                            peer: c.peer,
                            local_addr: c.local_addr,
                            local_port: c.local_port,
                        });
                    }
                }
                shown.push(event);
                shown
            }
            ServerEvent::ConnectionAttributed { conn, .. } => {
                if self.visible.remove(conn) {
                    vec![ServerEvent::ConnectionHidden { conn: *conn }]
                } else {
                    vec![]
                }
            }
            ServerEvent::ConnectionClosed { conn, .. } => {
                if self.visible.remove(conn) {
                    vec![event]
                } else {
                    vec![]
                }
            }
            ServerEvent::RequestStarted { conn, .. }
            | ServerEvent::ResponseStarted { conn, .. }
            | ServerEvent::RequestFinished { conn, .. }
            | ServerEvent::ConnectionUpgraded { conn, .. }
            | ServerEvent::ConnectionHidden { conn } => {
                if self.visible.contains(conn) {
                    vec![event]
                } else {
                    vec![]
                }
            }
            ServerEvent::Snapshot { .. }
            | ServerEvent::ConfigChanged { .. }
            | ServerEvent::EventsDropped { .. }
            | ServerEvent::Pong { .. }
            | ServerEvent::Released { .. }
            | ServerEvent::Error(_) => vec![event],
        }
    }
}

/// Serves one viewer until it leaves, falls off, or the server shuts down.
pub async fn run_viewer<W, R, E>(
    lab: Lab,
    conn: Option<Arc<Conn>>,
    scope: Scope,
    mut sink: W,
    mut stream: R,
) where
    W: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
{
    let mut filter = Filter::new(scope);
    let (snapshot, mut events) = lab.subscribe();
    if send(&mut sink, &filter.snapshot(snapshot)).await.is_err() {
        return;
    }
    let shutdown = lab.shutting_down();
    tokio::pin!(shutdown);
    // Armed when shutdown begins; until then, effectively never.
    let drain = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
    tokio::pin!(drain);
    let mut stopping = false;
    loop {
        tokio::select! {
            event = events.recv() => {
                let shown = match event {
                    Ok(event) => filter.route(&lab, event),
                    Err(RecvError::Lagged(count)) => vec![ServerEvent::EventsDropped { count }],
                    Err(RecvError::Closed) => break,
                };
                let mut failed = false;
                for event in &shown {
                    failed |= send(&mut sink, event).await.is_err();
                }
                if failed {
                    break;
                }
            }
            message = stream.next() => {
                let reply = match message {
                    Some(Ok(Message::Text(text))) => handle(&lab, filter.scope.session(), text.as_str()),
                    Some(Ok(Message::Binary(_))) => Some(bad_message("binary frames are not understood".into())),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => {
                        if let Some(conn) = &conn {
                            conn.set_reason(CloseReason::PeerClosed);
                        }
                        break;
                    }
                    Some(Err(_)) => break,
                };
                if let Some(reply) = reply
                    && send(&mut sink, &reply).await.is_err()
                {
                    break;
                }
            }
            () = &mut shutdown, if !stopping => {
                stopping = true;
                if let Some(conn) = &conn {
                    conn.set_reason(CloseReason::Shutdown);
                }
                drain.as_mut().reset(tokio::time::Instant::now() + SHUTDOWN_DRAIN);
            }
            () = &mut drain => {
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
        }
    }
}

/// Answers one control message from a viewer whose releases are limited to
/// `session` (all sessions when `None`). `None`: nothing to answer directly
/// (a policy change is announced to every viewer instead).
pub fn handle(lab: &Lab, session: Option<&SessionId>, text: &str) -> Option<ServerEvent> {
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(ClientMessage::Release { request, id }) => Some(ServerEvent::Released {
            count: lab
                .hangs()
                .release(&ReleaseRequest { request, id }, session),
        }),
        Ok(ClientMessage::SetConfig { config }) => match lab.set_policy(&config) {
            Ok(_) => None,
            Err(error) => Some(ServerEvent::Error(error.body)),
        },
        Ok(ClientMessage::Ping { client_time_ms }) => Some(ServerEvent::Pong {
            client_time_ms,
            server_us: lab.tracker().clock().now_us(),
        }),
        Err(e) => Some(bad_message(format!("control message not understood: {e}"))),
    }
}

fn bad_message(error: String) -> ServerEvent {
    ServerEvent::Error(ErrorBody {
        error,
        hint: r#"send {"type":"release"}, {"type":"release","request":12}, {"type":"release","id":"tag"}, {"type":"set_config","config":{"idle_timeout_ms":2000}} or {"type":"ping","client_time_ms":0}"#.into(),
    })
}

async fn send<W: Sink<Message> + Unpin>(sink: &mut W, event: &ServerEvent) -> Result<(), ()> {
    let text = serde_json::to_string(event).map_err(|_| ())?;
    sink.send(Message::Text(text.into())).await.map_err(|_| ())
}
