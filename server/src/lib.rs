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
//! - [`sessions`]: sessions as capabilities the server issues, each with its
//!   own live policy and caps; the anonymous scope; the instructor key.
//! - [`watchdog`]: the per-connection idle timer that reads the live policy
//!   (and the fixed header-read guard), and tells a keep-alive race apart.
//! - [`peers`]: caps per client address (connections, requests in flight).
//! - [`web`]: the lab's own origins, for `Origin` and `Host` checks.
//! - [`hangs`]: requests held open until released (or until the hang cap).
//! - [`events`]: the `/api/events` WebSocket: snapshot, live events, control
//!   messages.
//! - [`params`] and [`error`]: query validation and the JSON error type.
//! - [`assets`]: the page's files, from a directory or built into the binary.
//! - [`middlebox`]: a TCP proxy that forgets idle connections like a NAT
//!   gateway or load balancer, in the lab (its own port) and standalone.
//! - [`cli`]: what the three command lines share (`keepalive-lab`, its
//!   `middlebox` and `agent` subcommands): `--flag value` or `--flag=value`,
//!   each once unless it repeats, mistakes explained with a hint.
//! - `main.rs`: a thin binary: flags, bind, serve until Ctrl-C or SIGTERM.

pub mod agent;
pub mod assets;
pub mod cli;
pub mod conn;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod hangs;
pub mod listener;
pub mod middlebox;
pub mod params;
pub mod peers;
pub mod routes;
pub mod sessions;
pub mod tls;
pub mod tracker;
pub mod watchdog;
pub mod web;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use protocol::{Micros, PolicyPatch, ServerEvent, ServerPolicy};
use tokio::sync::watch;

use crate::error::ApiError;
use crate::sessions::key::InstructorKey;
use crate::sessions::{Owner, SessionCaps};

/// Settings fixed when the server starts.
#[derive(Debug, Clone)]
pub struct Config {
    /// The keep-alive policy every session starts from (the server's
    /// defaults). Each session changes its own copy live (`PUT /api/config`,
    /// `set_config`); the instructor changes the defaults. Defaults mirror
    /// Apache httpd 2.4, see [`ServerPolicy`].
    pub policy: ServerPolicy,
    /// Whoever holds it may see and change the whole server (all sessions'
    /// connections, the defaults, the room's lock).
    pub instructor_key: InstructorKey,
    /// The longest `/api/hang` holds a request when nobody releases it. A hung
    /// request pins one of the browser's six slots, so it must end by itself.
    pub hang_cap: Duration,
    /// Hanging requests held at once, server-wide. Each holds a socket and a
    /// task; past this `/api/hang` answers 503 instead of growing without bound.
    pub max_hangs: usize,
    /// Hanging requests one session (or the anonymous scope) may hold: one
    /// participant cannot take the whole server's allowance in a workshop.
    pub max_hangs_per_session: usize,
    /// Hanging requests one client address may hold, whatever its sessions
    /// (one address may hold many sessions).
    pub max_hangs_per_peer: usize,
    /// Requests one session (or the anonymous scope) may have in flight.
    pub max_in_flight_per_session: usize,
    /// Event viewers (`/api/events` WebSockets) one session (or the
    /// anonymous scope) may have open. A page needs one (two while it
    /// reconnects, or in a second tab); each viewer of a session sees the
    /// others' connections, so without a cap one participant's viewers cost
    /// the server the square of their number (found in review: 500 viewers
    /// of one session slowed every participant's requests to seconds).
    pub max_viewers_per_session: usize,
    /// Sessions remembered at once; forgotten ones are those whose page is gone.
    pub max_sessions: usize,
    /// Sessions one client address may hold at once.
    pub max_sessions_per_peer: usize,
    /// TCP connections one client address may have open. A browser needs at
    /// most a few dozen; past this a connection is answered 503 and closed.
    pub max_connections_per_peer: usize,
    /// TCP connections open at once from every address together (the HTTP
    /// and HTTPS ports; the middlebox's mappings count once they reach the
    /// lab). A client with many addresses gets a share per address; this
    /// bounds them all, below the open-file limit (`main.rs` lowers it to
    /// fit). Past it a connection is answered 503 (closed at once on the
    /// TLS ports).
    pub max_connections: usize,
    /// Requests one client address may have in flight, whatever their session.
    pub max_in_flight_per_peer: usize,
    /// The slowloris guard: a request head (or the request body a handler
    /// waits for) must arrive within this long once its first byte has. Fixed
    /// for the server; no session can lengthen it.
    pub header_read_timeout: Duration,
    /// A response that cannot be written for this long (the client stopped
    /// reading) has its connection closed with `write_stalled`.
    pub write_stall_timeout: Duration,
    /// A response whose writes were blocked this long in all, stall after
    /// stall, has its connection closed with `write_stalled` too: a client
    /// that reads a little just before each stall would trip must still take
    /// the response within it (over HTTP/2: the streams under way together,
    /// until none is). A client on a slow link is blocked for about the time
    /// the response takes to cross it: the lab's largest answers (its page,
    /// `/api/drip`'s 1 MiB) cross a workshop's network in seconds.
    pub write_stall_total: Duration,
    /// A viewer (an events WebSocket) from which nothing has come for this
    /// long is closed (code 1001, saying so). Half-way through a silence the
    /// server sends a WebSocket ping, which browsers answer by themselves
    /// (a background tab too, whose timers are throttled), so only a client
    /// that is gone without a word (a laptop asleep, a dropped network) or
    /// that ignores the protocol reaches it. Without it such a viewer held
    /// its slot, and its session stayed online (its idle connections open)
    /// for as long as the server ran (found in review).
    pub viewer_silence_timeout: Duration,
    /// Largest request head hyper buffers (hyper's `max_buf_size`); a larger
    /// head is answered with 431 and the connection closed.
    pub max_header_bytes: usize,
    /// Events buffered for each WebSocket viewer. A viewer that falls further
    /// behind is disconnected with a close frame saying so.
    pub event_buffer: usize,
    /// Completed requests remembered per connection for snapshots; in-flight
    /// requests are always kept. Bounds the memory of a long-lived connection.
    pub requests_kept_per_connection: usize,
    /// Where the built frontend (`index.html` and each page's `*.js` and
    /// `*_bg.wasm`) lives.
    pub dist_dir: PathBuf,
    /// The addresses the server listens on, as told to pages (in the
    /// snapshot) so they can aim bursts at another origin. [`listener::serve_all`]
    /// adds the addresses it really serves.
    pub listeners: Vec<std::net::SocketAddr>,
    /// More host names the lab answers to besides its addresses,
    /// `localhost` and the loopback literals (a workshop machine's name).
    pub host_names: Vec<String>,
    /// The lab's middlebox: the settings every owner starts from and its
    /// caps (its port is bound by `main.rs`, see [`middlebox::serve_in_lab`]).
    pub middlebox: middlebox::MiddleboxConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            policy: ServerPolicy::default(),
            instructor_key: InstructorKey::random(),
            hang_cap: Duration::from_secs(120),
            max_hangs: 1024,
            max_hangs_per_session: 64,
            max_hangs_per_peer: 256,
            max_in_flight_per_session: 256,
            max_viewers_per_session: 8,
            max_sessions: 4096,
            max_sessions_per_peer: 256,
            max_connections_per_peer: 512,
            max_connections: 8192,
            max_in_flight_per_peer: 1024,
            header_read_timeout: Duration::from_secs(10),
            write_stall_timeout: Duration::from_secs(10),
            write_stall_total: Duration::from_secs(30),
            viewer_silence_timeout: Duration::from_secs(60),
            max_header_bytes: 16 * 1024,
            event_buffer: 4096,
            requests_kept_per_connection: 32,
            dist_dir: PathBuf::from("dist"),
            listeners: Vec::new(),
            host_names: Vec::new(),
            middlebox: middlebox::MiddleboxConfig::default(),
        }
    }
}

/// A value on cache lines of its own (128 bytes: a line and the one the CPU
/// fetches with it), for what every request writes: next to it, what every
/// request only reads would be fetched again from the other core after each
/// write (bench figure 1).
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct OwnLines<T>(pub(crate) T);

impl<T> std::ops::Deref for OwnLines<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// State shared by the accept loop, every connection and every handler.
///
/// Cheap to clone: it is an `Arc`.
#[derive(Debug, Clone)]
pub struct Lab {
    inner: Arc<LabInner>,
}

/// Aligned to its own cache lines (128 bytes: a line and the one the CPU
/// fetches with it): the `Arc`'s reference count before it is written
/// whenever a handler takes the `Lab` (every request), and the fields every
/// request reads would otherwise share its line (bench figure 1).
#[derive(Debug)]
#[repr(align(128))]
struct LabInner {
    /// Fixed settings.
    config: Config,
    /// Connections, requests and the event stream.
    tracker: tracker::Tracker,
    /// Requests currently held by `/api/hang`.
    hangs: hangs::Hangs,
    /// Sessions, their policies and caps, the anonymous scope, the room lock.
    sessions: sessions::Sessions,
    /// Caps per client address.
    peers: peers::Peers,
    /// The lab's own origins; grows as listeners are served.
    origins: RwLock<Listening>,
    /// How many times `origins` has changed: each thread keeps the origins
    /// it last fetched and fetches them again only when this moves
    /// ([`Lab::with_origins`]).
    origins_generation: AtomicU64,
    /// This lab among the labs of the process (tests make many): what a
    /// thread's kept origins belong to (`Lab::with_origins`).
    id: u64,
    /// Flipped to `true` once; everything long-running watches it.
    shutdown: watch::Sender<bool>,
    /// The same fact, readable without a lock: set before `shutdown` is
    /// sent, so a task woken by it sees it (`Lab::is_shutting_down`).
    stopping: AtomicBool,
    /// Every owner's middlebox settings.
    middlebox: middlebox::lab::Registry,
    /// The TLS ports being served (`GET /api/tls`).
    tls: RwLock<protocol::TlsListeners>,
    /// Held across a change to a policy, the lock or middlebox settings and
    /// its announcement, so that viewers hear racing changes (a
    /// participant's and the instructor's lock) in the order they took
    /// effect. Taken before the sessions' and the tracker's locks, never
    /// while holding them.
    changes: std::sync::Mutex<()>,
}

/// The addresses the lab serves and the origins they make.
#[derive(Debug)]
struct Listening {
    /// Every address it listens on (the TLS ports' too).
    all: Vec<std::net::SocketAddr>,
    /// Those that speak HTTPS.
    tls: Vec<std::net::SocketAddr>,
    /// The origins of the two above.
    origins: Arc<web::Origins>,
}

impl Lab {
    /// A lab with the given settings. Its clock starts now.
    pub fn new(config: Config) -> Lab {
        let clock = Clock::new();
        let caps = SessionCaps {
            in_flight: config.max_in_flight_per_session,
            viewers: config.max_viewers_per_session,
            sessions: config.max_sessions,
            sessions_per_peer: config.max_sessions_per_peer,
        };
        Lab {
            inner: Arc::new(LabInner {
                tracker: tracker::Tracker::new(
                    clock,
                    config.requests_kept_per_connection,
                    config.event_buffer,
                ),
                hangs: hangs::Hangs::new(
                    config.max_hangs,
                    config.max_hangs_per_session,
                    config.max_hangs_per_peer,
                ),
                sessions: sessions::Sessions::new(config.policy.clone(), caps),
                peers: peers::Peers::new(
                    (config.max_connections_per_peer, config.max_connections),
                    config.max_in_flight_per_peer,
                ),
                origins: RwLock::new(Listening {
                    all: config.listeners.clone(),
                    tls: Vec::new(),
                    origins: Arc::new(web::Origins::new(&config.listeners, &config.host_names)),
                }),
                origins_generation: AtomicU64::new(0),
                id: {
                    static LABS: AtomicU64 = AtomicU64::new(0);
                    LABS.fetch_add(1, Ordering::Relaxed)
                },
                shutdown: watch::Sender::new(false),
                stopping: AtomicBool::new(false),
                middlebox: middlebox::lab::Registry::new(config.middlebox.defaults.clone()),
                tls: RwLock::new(protocol::TlsListeners::default()),
                changes: std::sync::Mutex::new(()),
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

    /// Sessions, their policies and caps.
    pub fn sessions(&self) -> &sessions::Sessions {
        &self.inner.sessions
    }

    /// Caps per client address.
    pub fn peers(&self) -> &peers::Peers {
        &self.inner.peers
    }

    /// Every owner's middlebox settings.
    pub fn middlebox(&self) -> &middlebox::lab::Registry {
        &self.inner.middlebox
    }

    /// Adds addresses the lab serves (plain HTTP) to its own origins.
    pub fn add_listeners(&self, addresses: &[std::net::SocketAddr]) {
        self.add_addresses(addresses, false);
    }

    /// Adds addresses the lab serves to its own origins; `tls`: they speak
    /// HTTPS (a page there is an `https://` origin).
    fn add_addresses(&self, addresses: &[std::net::SocketAddr], tls: bool) {
        let mut listening = self
            .inner
            .origins
            .write()
            .unwrap_or_else(|p| p.into_inner());
        for address in addresses {
            if !listening.all.contains(address) {
                listening.all.push(*address);
            }
            if tls && !listening.tls.contains(address) {
                listening.tls.push(*address);
            }
        }
        listening.origins = Arc::new(web::Origins::with_tls(
            &listening.all,
            &listening.tls,
            &self.config().host_names,
        ));
        // Under the lock: a thread that sees the new count and then fetches
        // the origins gets these or newer ones (`Lab::with_origins`).
        self.inner.origins_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Records a TLS listener (offering `h2` with this many streams at once
    /// per connection, or only `http/1.1`): it becomes one of the lab's
    /// origins and is listed by `GET /api/tls`.
    pub fn add_tls_listener(&self, address: std::net::SocketAddr, h2_streams: Option<u32>) {
        self.add_addresses(&[address], true);
        let mut tls = self.inner.tls.write().unwrap_or_else(|p| p.into_inner());
        match h2_streams {
            None => tls.http1_only.push(address.to_string()),
            Some(streams) if streams < tls::MAX_CONCURRENT_STREAMS => {
                tls.h2_limited.push(address.to_string());
                tls.limited_streams = Some(streams);
            }
            Some(streams) => {
                tls.h2.push(address.to_string());
                tls.max_concurrent_streams = Some(streams);
            }
        }
    }

    /// The TLS ports being served.
    pub fn tls(&self) -> protocol::TlsListeners {
        self.inner
            .tls
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Runs `f` with the lab's own origins as this thread last fetched
    /// them, fetched again when they have changed since. Every request
    /// checks its `Host` against them: through [`Lab::origins`] each would
    /// take the read lock and copy the `Arc`, both written by every thread
    /// of the server (bench figure 1). Kept per thread, not per
    /// connection, which would cost every held connection (bench figure 2).
    pub fn with_origins<R>(&self, f: impl FnOnce(&web::Origins) -> R) -> R {
        thread_local! {
            /// The lab's id, the generation, and its origins then.
            static KEPT: std::cell::RefCell<Option<(u64, u64, Arc<web::Origins>)>> =
                const { std::cell::RefCell::new(None) };
        }
        // Read before the origins: a change after it is seen next time.
        let generation = self.inner.origins_generation.load(Ordering::Acquire);
        KEPT.with_borrow_mut(|kept| {
            if kept
                .as_ref()
                .is_some_and(|(lab, seen, _)| (*lab, *seen) != (self.inner.id, generation))
            {
                *kept = None;
            }
            let (_, _, origins) =
                kept.get_or_insert_with(|| (self.inner.id, generation, self.origins()));
            f(origins)
        })
    }

    /// The lab's own origins now (shared: every request checks them).
    pub fn origins(&self) -> Arc<web::Origins> {
        self.inner
            .origins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .origins
            .clone()
    }

    /// The addresses the lab listens on.
    pub fn listeners(&self) -> Vec<std::net::SocketAddr> {
        self.inner
            .origins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .all
            .clone()
    }

    /// The keep-alive policy in force for `owner` now.
    pub fn policy(&self, owner: &Owner) -> ServerPolicy {
        self.sessions().policy(owner)
    }

    /// Applies `patch` to `owner`'s policy and tells its viewers, or explains
    /// which setting is out of range or that the room is locked.
    pub fn set_policy(&self, owner: &Owner, patch: &PolicyPatch) -> Result<ServerPolicy, ApiError> {
        let _order = self.ordered_change();
        let next = self.sessions().set_policy(owner, patch)?;
        self.announce_policy(owner, next.clone());
        Ok(next)
    }

    /// The instructor changes the defaults (what new sessions start from,
    /// and what everyone runs while the room is locked).
    pub fn set_defaults(&self, patch: &PolicyPatch) -> Result<ServerPolicy, ApiError> {
        let _order = self.ordered_change();
        let (defaults, changed) = self.sessions().set_defaults(patch)?;
        for (owner, policy) in changed {
            self.announce_policy(&owner, policy);
        }
        Ok(defaults)
    }

    /// The instructor locks or unlocks the policy for the room.
    pub fn set_locked(&self, locked: bool) {
        let _order = self.ordered_change();
        for (owner, policy) in self.sessions().set_locked(locked) {
            self.announce_policy(&owner, policy);
        }
        // The middlebox follows the lock too: locked, a session with
        // settings of its own runs the defaults; unlocked, its own again.
        for owner in self.middlebox().owners() {
            let settings = middlebox::lab::effective(self, &owner);
            middlebox::lab::announce(self, settings, owner.session().cloned());
        }
    }

    /// Held while a setting changes and the change is announced (see
    /// `Inner::changes`).
    pub(crate) fn ordered_change(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner.changes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn announce_policy(&self, owner: &Owner, config: ServerPolicy) {
        self.tracker().emit(|at_us| ServerEvent::ConfigChanged {
            config,
            session: owner.session().cloned(),
            locked: self.sessions().locked(),
            at_us,
        });
    }

    /// The snapshot event for `owner` (`None`: the instructor's whole-server
    /// view, with the defaults as its policy).
    pub fn snapshot(&self, owner: Option<&Owner>) -> ServerEvent {
        // The shared stream's receiver, dropped at once: no owned copies'
        // channel is made for a snapshot (see `Lab::subscribe`).
        let (now_us, connections, _) = self.tracker().subscribe();
        self.snapshot_with(owner, now_us, connections)
    }

    /// The snapshot a viewer with `access` on `host` is shown: the whole
    /// server for the instructor, else its owner's world (see
    /// [`tracker::Tracker::scoped_connections`]).
    pub fn snapshot_for(
        &self,
        access: &sessions::Access,
        host: Option<std::net::IpAddr>,
    ) -> ServerEvent {
        match access.owner() {
            None => self.snapshot(None),
            Some(owner) => {
                let connections = self.tracker().scoped_connections(owner.session(), host);
                self.snapshot_with(Some(owner), self.tracker().clock().now_us(), connections)
            }
        }
    }

    /// A snapshot plus a receiver of every event after it. The receiver is
    /// taken first, so a policy change is either in the snapshot or among the
    /// events (possibly both, which is harmless: it carries the whole policy).
    ///
    /// Each event arrives as an owned copy, for tests and tools that keep
    /// and take apart what they hear
    /// ([`tracker::Tracker::subscribe_copies`]); the lab's viewers share one
    /// allocation per event instead ([`Lab::subscribe_viewer`]).
    pub fn subscribe(
        &self,
        owner: Option<&Owner>,
    ) -> (ServerEvent, tokio::sync::broadcast::Receiver<ServerEvent>) {
        let (now_us, connections, events) = self.tracker().subscribe_copies();
        (self.snapshot_with(owner, now_us, connections), events)
    }

    fn snapshot_with(
        &self,
        owner: Option<&Owner>,
        now_us: Micros,
        connections: Vec<protocol::ConnectionSnapshot>,
    ) -> ServerEvent {
        let config = match owner {
            Some(owner) => self.policy(owner),
            None => self.sessions().defaults(),
        };
        ServerEvent::Snapshot {
            now_us,
            config,
            listeners: self.listeners().iter().map(|a| a.to_string()).collect(),
            session: owner.and_then(|o| o.session().cloned()),
            locked: self.sessions().locked(),
            room_lesson: self.sessions().room_lesson(),
            connections,
        }
    }

    /// What a viewer with `access` on `host` starts from: its snapshot, and a
    /// [`tracker::Feed`] of the events after it (the whole stream for the
    /// instructor, the routed events that can concern it for a participant).
    pub fn subscribe_viewer(
        &self,
        access: &sessions::Access,
        host: Option<std::net::IpAddr>,
    ) -> (ServerEvent, tracker::Feed) {
        let owner = access.owner();
        let (now_us, connections, feed) = match owner {
            None => {
                let (now_us, connections, rx) = self.tracker().subscribe();
                (now_us, connections, tracker::Feed::All(rx))
            }
            Some(owner) => self
                .tracker()
                .subscribe_scoped(owner.session().cloned(), host),
        };
        (self.snapshot_with(owner, now_us, connections), feed)
    }

    /// Asks everything to wind down: the accept loop stops, connections close
    /// gracefully with reason `shutdown`, hangs answer 503, viewers close.
    pub fn begin_shutdown(&self) {
        self.inner.stopping.store(true, Ordering::Release);
        self.inner.shutdown.send_replace(true);
    }

    /// Whether [`Lab::begin_shutdown`] has been called: one atomic read, for
    /// a task that has registered with [`Lab::shutting_down`] once and only
    /// needs to poll it again after shutdown began.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.stopping.load(Ordering::Acquire)
    }

    /// Waits until every task watching [`Lab::shutting_down`] has finished,
    /// or `grace` has passed.
    pub async fn wait_for_tasks(&self, grace: std::time::Duration) {
        let _ = tokio::time::timeout(grace, self.inner.shutdown.closed()).await;
    }

    /// A token that keeps [`Lab::wait_for_tasks`] waiting while it is held:
    /// for tasks that still have work to finish after shutdown began (a
    /// WebSocket's close handshake).
    pub fn task_token(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Resolves once [`Lab::begin_shutdown`] has been called.
    pub fn shutting_down(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.shutdown.subscribe();
        // `changed` rather than `wait_for`: the same wait in a smaller future
        // (one of these is kept per connection, bench figure 2).
        async move {
            // An error means the sender is gone, which also means "stop".
            while !*rx.borrow_and_update() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread keeps the origins it fetched (no lock per request), but
    /// sees a port added after that, and never another lab's.
    #[tokio::test]
    async fn a_thread_sees_the_origins_of_a_port_added_after_it_last_looked() {
        let lab = Lab::new(Config::default());
        let page = "https://127.0.0.1:8443";
        assert!(!lab.with_origins(|o| o.allows_origin(page)), "not yet");
        lab.add_tls_listener("127.0.0.1:8443".parse().expect("address"), None);
        assert!(lab.with_origins(|o| o.allows_origin(page)), "fetched again");
        let other = Lab::new(Config::default());
        assert!(
            !other.with_origins(|o| o.allows_origin(page)),
            "another lab's own"
        );
        assert!(lab.with_origins(|o| o.allows_origin(page)), "and back");
    }
}
