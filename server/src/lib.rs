//! The keepalive-lab server.
//!
//! An axum [`Router`](axum::Router) with slow and hanging endpoints, served by
//! an accept loop of our own instead of `axum::serve`, so that the lab can see
//! (and later control) every TCP connection: when it opened, each request it
//! carried, how many bytes went each way, and why it closed. Those facts are
//! streamed as [`protocol::ServerEvent`]s to every page on `/api/events`.
//!
//! # Layout
//!
//! - [`listener`]: the accept loop. One task per TCP connection, each served by
//!   hyper's HTTP/1.1 connection with a timer, wrapped so that it can be traced.
//! - [`conn`]: per-connection tracking: the IO wrapper that counts bytes and
//!   reports the close from its `Drop`, the per-request guard, and the
//!   response-body wrapper that notices when a response has been sent.
//! - [`tracker`]: the table of open connections plus the event broadcast; the
//!   one place where events are recorded, so snapshot and stream never disagree.
//! - [`routes`]: the HTTP API (`fn app() -> Router`), usable without a socket
//!   through `tower::ServiceExt::oneshot`; [`endpoints`] holds the lesson
//!   endpoints (fast, slow, hang, drip, close, sse).
//! - [`sessions`]: per-page-load accounting (requests in flight per session).
//! - [`hangs`]: requests held open until released (or until the hang cap).
//! - [`events`]: the `/api/events` WebSocket: snapshot, live events, control
//!   messages.
//! - [`params`] and [`error`]: query validation and the JSON error type.
//! - `main.rs`: a thin binary: flags, bind, serve until Ctrl-C.

pub mod conn;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod hangs;
pub mod listener;
pub mod params;
pub mod routes;
pub mod sessions;
pub mod tracker;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use protocol::{Micros, PolicyPatch, ServerEvent, ServerPolicy};
use tokio::sync::watch;

use crate::error::ApiError;

/// Settings fixed when the server starts.
#[derive(Debug, Clone)]
pub struct Config {
    /// The keep-alive policy the server starts with; it can be changed live
    /// (`PUT /api/config`, `set_config` on the WebSocket). Defaults mirror
    /// Apache httpd 2.4, see [`ServerPolicy`].
    pub policy: ServerPolicy,
    /// The longest `/api/hang` holds a request when nobody releases it. A hung
    /// request pins one of the browser's six slots, so it must end by itself.
    pub hang_cap: Duration,
    /// Hanging requests held at once, server-wide. Each holds a socket and a
    /// task; past this `/api/hang` answers 503 instead of growing without bound.
    pub max_hangs: usize,
    /// Hanging requests one session may hold: one participant cannot take
    /// the whole server's allowance in a workshop.
    pub max_hangs_per_session: usize,
    /// Requests one session may have in flight at once (any endpoint).
    pub max_in_flight_per_session: usize,
    /// Largest request head hyper buffers (hyper's `max_buf_size`); a larger
    /// head is answered with 431 and the connection closed.
    pub max_header_bytes: usize,
    /// Events buffered for each WebSocket viewer. A viewer that falls further
    /// behind is told how many it missed instead of growing server memory.
    pub event_buffer: usize,
    /// Completed requests remembered per connection for snapshots; in-flight
    /// requests are always kept. Bounds the memory of a long-lived connection.
    pub requests_kept_per_connection: usize,
    /// Where the built frontend (`index.html`, `app.js`, `app_bg.wasm`) lives.
    pub dist_dir: PathBuf,
    /// The addresses the server listens on, as told to pages (in the
    /// snapshot) so they can aim bursts at another origin.
    pub listeners: Vec<std::net::SocketAddr>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            policy: ServerPolicy::default(),
            hang_cap: Duration::from_secs(120),
            max_hangs: 1024,
            max_hangs_per_session: 64,
            max_in_flight_per_session: 256,
            max_header_bytes: 16 * 1024,
            event_buffer: 4096,
            requests_kept_per_connection: 32,
            dist_dir: PathBuf::from("dist"),
            listeners: Vec::new(),
        }
    }
}

/// State shared by the accept loop, every connection and every handler.
///
/// Cheap to clone: it is an `Arc`.
#[derive(Debug, Clone)]
pub struct Lab {
    inner: Arc<LabInner>,
}

#[derive(Debug)]
struct LabInner {
    /// Fixed settings.
    config: Config,
    /// Connections, requests and the event stream.
    tracker: tracker::Tracker,
    /// Requests currently held by `/api/hang`.
    hangs: hangs::Hangs,
    /// Requests in flight per session.
    sessions: sessions::Sessions,
    /// The keep-alive policy in force. Read once per request and once per
    /// accepted connection; written only by [`Lab::set_policy`].
    policy: RwLock<ServerPolicy>,
    /// Flipped to `true` once; everything long-running watches it.
    shutdown: watch::Sender<bool>,
}

impl Lab {
    /// A lab with the given settings. Its clock starts now.
    pub fn new(config: Config) -> Lab {
        let clock = Clock::new();
        Lab {
            inner: Arc::new(LabInner {
                tracker: tracker::Tracker::new(clock, &config),
                hangs: hangs::Hangs::new(config.max_hangs, config.max_hangs_per_session),
                sessions: sessions::Sessions::new(config.max_in_flight_per_session),
                policy: RwLock::new(config.policy.clone()),
                shutdown: watch::Sender::new(false),
                config,
            }),
        }
    }

    /// The settings the lab was started with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The connection table and event stream.
    pub fn tracker(&self) -> &tracker::Tracker {
        &self.inner.tracker
    }

    /// The requests held by `/api/hang`.
    pub fn hangs(&self) -> &hangs::Hangs {
        &self.inner.hangs
    }

    /// Requests in flight per session.
    pub fn sessions(&self) -> &sessions::Sessions {
        &self.inner.sessions
    }

    /// The keep-alive policy in force now.
    pub fn policy(&self) -> ServerPolicy {
        self.inner
            .policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies `patch` to the policy and tells every viewer, or explains
    /// which setting is out of range (nothing changes then).
    pub fn set_policy(&self, patch: &PolicyPatch) -> Result<ServerPolicy, ApiError> {
        let mut policy = self.inner.policy.write().unwrap_or_else(|p| p.into_inner());
        let next = policy
            .patched(patch)
            .map_err(|body| ApiError::bad_request(body.error, body.hint))?;
        *policy = next.clone();
        // Announced while the lock is held, so no subscriber can take a
        // snapshot with the old policy and then miss this event.
        self.tracker().record(ServerEvent::ConfigChanged {
            config: next.clone(),
            at_us: self.tracker().clock().now_us(),
        });
        Ok(next)
    }

    /// The snapshot event: the policy and every open connection.
    pub fn snapshot(&self) -> ServerEvent {
        self.subscribe().0
    }

    /// A snapshot plus a receiver of every event after it, consistent with
    /// each other (same lock order as [`Lab::set_policy`]: policy, table).
    pub fn subscribe(&self) -> (ServerEvent, tokio::sync::broadcast::Receiver<ServerEvent>) {
        let policy = self.inner.policy.read().unwrap_or_else(|p| p.into_inner());
        let (now_us, connections, events) = self.tracker().subscribe();
        let snapshot = ServerEvent::Snapshot {
            now_us,
            config: policy.clone(),
            listeners: self
                .config()
                .listeners
                .iter()
                .map(|a| a.to_string())
                .collect(),
            connections,
        };
        (snapshot, events)
    }

    /// Asks everything to wind down: the accept loop stops, connections close
    /// gracefully with reason `shutdown`, hangs answer 503, viewers close.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Waits until every task watching [`Lab::shutting_down`] has finished,
    /// or `grace` has passed.
    pub async fn wait_for_tasks(&self, grace: std::time::Duration) {
        let _ = tokio::time::timeout(grace, self.inner.shutdown.closed()).await;
    }

    /// Resolves once [`Lab::begin_shutdown`] has been called.
    pub fn shutting_down(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.shutdown.subscribe();
        async move {
            // An error means the sender is gone, which also means "stop".
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
    }
}

/// The server's monotonic clock: microseconds since the lab started.
///
/// Every timestamp in the event stream comes from one `Clock`, so events from
/// different connections can be placed on one axis.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The instant that is "0 µs".
    start: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    /// Microseconds since the clock's zero.
    pub fn now_us(&self) -> Micros {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
