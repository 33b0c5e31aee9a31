//! The `/api/events` WebSocket.
//!
//! A viewer first gets a [`ServerEvent::Snapshot`], then every event live. It
//! may send [`ClientMessage`]s: `release` (the page cannot use HTTP for that
//! while six of its requests hang: the seventh would queue behind them) and
//! `ping` for clock sync. [`run_viewer`] is generic over `Sink` and `Stream` so
//! it can be driven without a socket.

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::response::Response;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use protocol::{ClientMessage, ErrorBody, ReleaseRequest, ServerEvent, UpgradeRole};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

use crate::Lab;
use crate::conn::{Conn, RequestCtx};

/// Largest control message accepted from a page. Real ones are < 100 bytes.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Upgrades `GET /api/events` and runs the viewer on the socket.
pub async fn upgrade(
    State(lab): State<Lab>,
    ctx: Option<Extension<RequestCtx>>,
    ws: WebSocketUpgrade,
) -> Response {
    let conn = ctx.map(|Extension(c)| c.conn);
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            if let Some(conn) = &conn {
                conn.mark_upgraded(UpgradeRole::Monitor);
            }
            let (sink, stream) = socket.split();
            run_viewer(lab, conn, sink, stream).await;
        })
}

/// Serves one viewer until it leaves, falls off, or the server shuts down.
pub async fn run_viewer<W, R, E>(lab: Lab, conn: Option<Arc<Conn>>, mut sink: W, mut stream: R)
where
    W: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
{
    let (snapshot, mut events) = lab.tracker().subscribe();
    if send(&mut sink, &snapshot).await.is_err() {
        return;
    }
    let shutdown = lab.shutting_down();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            event = events.recv() => {
                let event = match event {
                    Ok(event) => event,
                    Err(RecvError::Lagged(count)) => ServerEvent::EventsDropped { count },
                    Err(RecvError::Closed) => break,
                };
                if send(&mut sink, &event).await.is_err() {
                    break;
                }
            }
            message = stream.next() => {
                let reply = match message {
                    Some(Ok(Message::Text(text))) => handle(&lab, text.as_str()),
                    Some(Ok(Message::Binary(_))) => bad_message("binary frames are not understood".into()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => {
                        if let Some(conn) = &conn {
                            conn.set_reason(protocol::CloseReason::PeerClosed);
                        }
                        break;
                    }
                    Some(Err(_)) => break,
                };
                if send(&mut sink, &reply).await.is_err() {
                    break;
                }
            }
            () = &mut shutdown => {
                if let Some(conn) = &conn {
                    conn.set_reason(protocol::CloseReason::Shutdown);
                }
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
        }
    }
}

/// Answers one control message.
pub fn handle(lab: &Lab, text: &str) -> ServerEvent {
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(ClientMessage::Release { request, id }) => ServerEvent::Released {
            count: lab.hangs().release(&ReleaseRequest { request, id }),
        },
        Ok(ClientMessage::Ping { client_time_ms }) => ServerEvent::Pong {
            client_time_ms,
            server_us: lab.tracker().clock().now_us(),
        },
        Err(e) => bad_message(format!("control message not understood: {e}")),
    }
}

fn bad_message(error: String) -> ServerEvent {
    ServerEvent::Error(ErrorBody {
        error,
        hint: r#"send {"type":"release"}, {"type":"release","request":12}, {"type":"release","id":"tag"} or {"type":"ping","client_time_ms":0}"#.into(),
    })
}

async fn send<W: Sink<Message> + Unpin>(sink: &mut W, event: &ServerEvent) -> Result<(), ()> {
    let text = serde_json::to_string(event).map_err(|_| ())?;
    sink.send(Message::Text(text.into())).await.map_err(|_| ())
}
