//! The agent itself: the [`Pool`]'s decisions carried out with real sockets,
//! and every event reported, in order, through one [`EventSink`].
//!
//! One lock ([`Shared::inner`]) guards the pool; each decision and the
//! events it causes are made and emitted under it, so the event stream reads
//! in the order things happened. Each socket is a task ([`super::socket`])
//! that owns its `TcpStream` and asks the pool what to do at each turn
//! (released, idle timeout while free, FIN while free, closed).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use protocol::{
    AbortReason, AgentEvent, AgentOptions, FinishReason, FreeOutcome, RequestEvent,
    SocketCloseReason, SocketEvent, TimeoutSource,
};
use tokio::sync::{mpsc, watch};

use super::http1::request_head;
use super::options::{ConnectionRule, connection_rule, free_timeout, hint};
use super::pool::{Limits, Placement, Pool, Release, SocketId, Spawn};

/// Where every event goes (the command line prints it, the lab records it).
pub type EventSink = Arc<dyn Fn(AgentEvent) + Send + Sync>;

/// What a socket is made with before it connects to an address, and what
/// must live as long as its connection. In the lab: a socket bound to a port
/// of its own and registered as the agent's for the page's client
/// ([`crate::peers::Peers::on_behalf`]), so the lab's caps per address charge
/// that client, not the loopback address every agent shares.
#[derive(Clone)]
pub struct Binder(pub Arc<dyn Fn(SocketAddr) -> std::io::Result<Bound> + Send + Sync>);

/// A socket from a [`Binder`], and what to hold while it is connected.
pub type Bound = (tokio::net::TcpSocket, Box<dyn std::any::Any + Send + Sync>);

impl std::fmt::Debug for Binder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Binder")
    }
}

/// A server the agent sends requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The address it connects to.
    pub addr: SocketAddr,
    /// The other addresses its name resolved to, tried in turn when a
    /// connect to `addr` fails, as Node's `autoSelectFamily` does (on by
    /// default since v20.0.0; the order is [`crate::cli::connect_order`]'s).
    /// Empty for an address given as one.
    pub fallbacks: Vec<SocketAddr>,
    /// The `Host` header (`127.0.0.1:8080`; the port is left out when 80,
    /// as Node does).
    pub host: String,
}

impl Destination {
    /// Node's pool key (`getName`: host, port, local address): here the
    /// address.
    fn name(&self) -> String {
        self.addr.to_string()
    }
}

/// What the agent is built with besides Node's options.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Node's options.
    pub options: AgentOptions,
    /// The lab's ceiling on open sockets (see [`Limits::ceiling`]).
    pub ceiling: Option<usize>,
    /// How long a connect may take (Node has no connect timeout of its own;
    /// the lab bounds it).
    pub connect_timeout: Duration,
    /// How each socket is made before it connects; `None`: a plain connect
    /// (the command line).
    pub binder: Option<Binder>,
}

/// One request as the agent carries it.
#[derive(Debug)]
pub(super) struct Job {
    /// Its number in the run.
    pub id: u32,
    /// Where it goes.
    pub dest: Destination,
    /// `GET` or `HEAD`.
    pub method: String,
    /// The bytes of its head.
    pub head: Vec<u8>,
    /// Its `Connection` header and `shouldKeepAlive`.
    pub rule: ConnectionRule,
    /// Its request `timeout` was emitted: Node emits it once per request
    /// (`listenSocketTimeout` in `lib/_http_client.js` listens with
    /// `socket.once('timeout', …)`), while the socket's repeats each idle
    /// period.
    pub timeout_told: bool,
    /// Node's `req.reusedSocket`: set only when the request found a free
    /// socket as it was added (`addRequest` → `reuseSocket` in
    /// `lib/_http_agent.js`); a waiting request handed a socket by the
    /// `'free'` handler goes through `setRequestSocket` alone and keeps
    /// `false`.
    pub reused_socket: bool,
}

/// Counters for the run's last event.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    requests: u32,
    completed: u32,
    failed: u32,
}

/// What the agent has not finished.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Requests queued or in flight.
    pub unfinished: usize,
    /// Open sockets.
    pub open: usize,
}

#[derive(Debug)]
pub(super) struct Inner {
    pool: Pool<Job>,
    senders: HashMap<SocketId, mpsc::UnboundedSender<Job>>,
    next_request: u32,
    unfinished: usize,
    stats: Stats,
    stopped: bool,
}

/// State shared by the agent and its socket tasks.
pub(super) struct Shared {
    /// Node's options.
    pub options: AgentOptions,
    /// How long a connect may take.
    pub connect_timeout: Duration,
    /// How each socket is made (see [`AgentConfig::binder`]).
    pub binder: Option<Binder>,
    sink: EventSink,
    inner: Mutex<Inner>,
    /// Flipped once by [`Agent::stop`]; every socket task watches it.
    pub stop: watch::Sender<bool>,
    progress: watch::Sender<Progress>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What a socket whose request ended with reuse allowed does next.
#[derive(Debug)]
pub(super) enum Next {
    /// Serve this waiting request.
    Serve(Job),
    /// Wait in the free pool with this idle timeout.
    Pooled(Option<(u64, TimeoutSource)>),
    /// Close.
    Destroy(SocketCloseReason),
}

/// A Node-style HTTP agent. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Agent {
    shared: Arc<Shared>,
}

impl Agent {
    /// An agent with `config` whose events go to `sink`. Options must have
    /// been validated ([`AgentOptions::validate`]).
    pub fn new(config: AgentConfig, sink: EventSink) -> Agent {
        let options = config.options;
        let limits = Limits {
            keep_alive: options.keep_alive,
            max_sockets: options.max_sockets.map(|m| m as usize),
            max_total_sockets: options.max_total_sockets.map(|m| m as usize),
            max_free_sockets: options.max_free_sockets as usize,
            scheduling: options.scheduling,
            ceiling: config.ceiling,
        };
        Agent {
            shared: Arc::new(Shared {
                options,
                connect_timeout: config.connect_timeout,
                binder: config.binder,
                sink,
                inner: Mutex::new(Inner {
                    pool: Pool::new(limits),
                    senders: HashMap::new(),
                    next_request: 1,
                    unfinished: 0,
                    stats: Stats::default(),
                    stopped: false,
                }),
                stop: watch::Sender::new(false),
                progress: watch::Sender::new(Progress::default()),
            }),
        }
    }

    /// Node's options.
    pub fn options(&self) -> &AgentOptions {
        &self.shared.options
    }

    /// Reports an event that is not about one request or socket (the run's
    /// start and end).
    pub fn emit(&self, event: AgentEvent) {
        let _inner = self.shared.lock();
        (self.shared.sink)(event);
    }

    /// Hands a request to the agent (`http.request({agent})`): it goes out on
    /// a free socket, a new socket, or waits in the queue. `connection` is a
    /// `Connection` header the request sets itself. Returns its number, or
    /// `None` once the agent is destroyed.
    pub fn request(
        &self,
        dest: &Destination,
        method: &str,
        path: &str,
        connection: Option<&str>,
    ) -> Option<u32> {
        let shared = &self.shared;
        let mut inner = shared.lock();
        if inner.stopped {
            return None;
        }
        let id = inner.next_request;
        inner.next_request += 1;
        inner.stats.requests += 1;
        inner.unfinished += 1;
        let rule = connection_rule(&shared.options, connection);
        let head = request_head(method, path, &dest.host, &rule.header, rule.own);
        let header = rule.header.clone();
        let job = Job {
            id,
            dest: dest.clone(),
            method: method.to_owned(),
            head,
            rule,
            timeout_told: false,
            reused_socket: false,
        };
        let placement = inner.pool.add(&dest.name(), job);
        let (waiting, queue_len) = match &placement {
            Placement::Queued { queue_len } => (true, *queue_len),
            _ => (false, 0),
        };
        shared.emit_request(
            id,
            RequestEvent::Queued {
                method: method.to_owned(),
                path: path.to_owned(),
                connection: header,
                waiting,
                queue_len: u32::try_from(queue_len).unwrap_or(u32::MAX),
            },
        );
        match placement {
            Placement::Reuse(socket, mut job) => {
                job.reused_socket = true;
                if let Some(tx) = inner.senders.get(&socket)
                    && let Err(mpsc::error::SendError(job)) = tx.send(job)
                {
                    // Cannot happen: a socket leaves the pool (under this
                    // lock) before its task ends. Report rather than lose it.
                    shared.fail_unsent(&mut inner, job);
                }
            }
            Placement::Create(socket, job) => shared.spawn(&mut inner, socket, job, None),
            Placement::Queued { .. } => {}
        }
        shared.publish(&inner);
        Some(id)
    }

    /// The run is over (its last request done and its linger passed, the
    /// Stop button, `agent_stop`, a cap, shutdown): every socket is
    /// destroyed, as Node's `agent.destroy()` destroys them, and requests
    /// still waiting or in flight are reported `aborted` (`agent_stopped`).
    /// That last part is the lab's, not Node's (found in review): Node's
    /// `destroy()` leaves its queue alone, and each destroyed socket's
    /// `removeSocket` makes a new one for the first waiting request, while
    /// a request in flight fails `ECONNRESET` "socket hang up". A run has
    /// to end, so the lab stops them instead; the run's events say so.
    pub fn stop(&self) {
        let shared = &self.shared;
        let mut inner = shared.lock();
        if inner.stopped {
            return;
        }
        inner.stopped = true;
        for job in inner.pool.drain_waiting() {
            shared.emit_request(
                job.id,
                RequestEvent::Aborted {
                    reason: AbortReason::AgentStopped,
                },
            );
            inner.unfinished -= 1;
            inner.stats.failed += 1;
        }
        shared.publish(&inner);
        shared.stop.send_replace(true);
    }

    /// Waits until no request is queued or in flight.
    pub async fn idle(&self) {
        let mut rx = self.shared.progress.subscribe();
        let _ = rx.wait_for(|p| p.unfinished == 0).await;
    }

    /// Waits until every socket is closed.
    pub async fn closed(&self) {
        let mut rx = self.shared.progress.subscribe();
        let _ = rx.wait_for(|p| p.open == 0).await;
    }

    /// Requests unfinished and sockets open now.
    pub fn progress(&self) -> Progress {
        *self.shared.progress.borrow()
    }

    /// Reports the run's end ([`AgentEvent::Finished`]) with its counts.
    pub fn finish(&self, reason: FinishReason) {
        let inner = self.shared.lock();
        (self.shared.sink)(AgentEvent::Finished {
            reason,
            requests: inner.stats.requests,
            completed: inner.stats.completed,
            failed: inner.stats.failed,
            sockets: inner.pool.created(),
        });
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, inner: &Inner) {
        self.progress.send_replace(Progress {
            unfinished: inner.unfinished,
            open: inner.pool.total(),
        });
    }

    fn emit_request(&self, request: u32, event: RequestEvent) {
        (self.sink)(AgentEvent::Request { request, event });
    }

    fn emit_socket(&self, socket: SocketId, event: SocketEvent) {
        (self.sink)(AgentEvent::Socket { socket, event });
    }

    /// Reports an event of request `id` (from a socket task).
    pub(super) fn request_event(&self, id: u32, event: RequestEvent) {
        let _inner = self.lock();
        self.emit_request(id, event);
    }

    /// Reports an event of socket `socket` (from its task).
    pub(super) fn socket_event(&self, socket: SocketId, event: SocketEvent) {
        let _inner = self.lock();
        self.emit_socket(socket, event);
    }

    /// Request `id` ended with `event` (`done`, `error` or `aborted`).
    pub(super) fn request_ended(&self, id: u32, event: RequestEvent) {
        let mut inner = self.lock();
        self.end_request(&mut inner, id, event);
        self.publish(&inner);
    }

    /// Counts and reports the end of request `id`, under the lock; the
    /// caller publishes.
    fn end_request(&self, inner: &mut Inner, id: u32, event: RequestEvent) {
        match event {
            RequestEvent::Done { .. } => inner.stats.completed += 1,
            _ => inner.stats.failed += 1,
        }
        inner.unfinished = inner.unfinished.saturating_sub(1);
        self.emit_request(id, event);
    }

    /// Starts `socket` for `job`; `first` is an event it reports right after
    /// it is made, before its task can report anything.
    fn spawn(
        self: &Arc<Self>,
        inner: &mut Inner,
        socket: SocketId,
        job: Job,
        first: Option<SocketEvent>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        inner.senders.insert(socket, tx);
        self.emit_socket(
            socket,
            SocketEvent::Socket {
                remote: job.dest.addr.to_string(),
            },
        );
        if let Some(event) = first {
            self.emit_socket(socket, event);
        }
        tokio::spawn(super::socket::run(self.clone(), socket, job, rx));
    }

    /// Node's `removeSocket`: a socket made for the first waiting request.
    /// Node makes it with `createSocket(req, options, cb)`, whose callback
    /// emits the socket's `'free'`; the agent's `'free'` handler then hands
    /// it to that request (`setRequestSocket`). So such a socket reports a
    /// `free` handed to the next request right after it is made, unlike one
    /// `addRequest` makes for its own request (found in review).
    fn spawn_for(self: &Arc<Self>, inner: &mut Inner, spawn: Spawn<Job>) {
        if let Some((name, socket, job)) = spawn {
            let free_sockets = u32::try_from(inner.pool.free_len(&name)).unwrap_or(u32::MAX);
            let free = SocketEvent::Free {
                outcome: FreeOutcome::NextRequest,
                free_sockets,
                timeout_ms: None,
                timeout_source: None,
            };
            self.spawn(inner, socket, job, Some(free));
        }
    }

    fn fail_unsent(&self, inner: &mut Inner, job: Job) {
        inner.stats.failed += 1;
        inner.unfinished = inner.unfinished.saturating_sub(1);
        self.emit_request(
            job.id,
            RequestEvent::Aborted {
                reason: AbortReason::AgentStopped,
            },
        );
    }

    /// Request `id` ended with `done` and reuse allowed, then the agent's
    /// `'free'` handler for its `socket`; `keep_alive` is the response's
    /// `Keep-Alive` header.
    ///
    /// Both happen under one lock, and the request counts as finished only
    /// when `free` has been reported: Node emits `'free'` as the response
    /// ends (`responseOnEnd` → `responseKeepAlive` → `emitFreeNT` in
    /// `lib/_http_client.js`), before anything the application does once
    /// its requests are over (a run's [`Agent::stop`], which waits for
    /// [`Agent::idle`]). Only a destroy that came first (the agent stopped
    /// while the response was read) closes the socket without a `free`.
    pub(super) fn released(
        self: &Arc<Self>,
        socket: SocketId,
        id: u32,
        done: RequestEvent,
        keep_alive: Option<&str>,
    ) -> Next {
        let mut inner = self.lock();
        self.end_request(&mut inner, id, done);
        if inner.stopped {
            self.publish(&inner);
            return Next::Destroy(SocketCloseReason::AgentStopped);
        }
        let mut timeout = None;
        let options = &self.options;
        let (release, spawn) = inner.pool.released(socket, || {
            // `keepSocketAlive`: setKeepAlive again (no change), then the
            // idle timeout from the agent's `timeout` and the server's hint.
            let (keep, t) = free_timeout(
                options.timeout,
                hint(keep_alive, options.agent_keep_alive_timeout_buffer),
            );
            timeout = t;
            keep
        });
        let (outcome, next) = match release {
            Release::Next(job) => (FreeOutcome::NextRequest, Next::Serve(job)),
            Release::Pooled { .. } => (FreeOutcome::Pooled, Next::Pooled(timeout)),
            Release::Destroy(reason) => (FreeOutcome::Destroyed, Next::Destroy(reason)),
        };
        let free_sockets = inner
            .pool
            .name_of(socket)
            .map_or(0, |name| inner.pool.free_len(name));
        let free_sockets = u32::try_from(free_sockets).unwrap_or(u32::MAX);
        let (timeout_ms, timeout_source) = match &next {
            Next::Pooled(Some((ms, source))) => (Some(*ms), Some(*source)),
            _ => (None, None),
        };
        self.emit_socket(
            socket,
            SocketEvent::Free {
                outcome,
                free_sockets,
                timeout_ms,
                timeout_source,
            },
        );
        self.spawn_for(&mut inner, spawn);
        self.publish(&inner);
        next
    }

    /// `socket` is going away while it may be free (idle timeout, FIN,
    /// error): `true` when it was free and is now out of the pool (the
    /// caller closes it), `false` when a request has just been given it.
    /// `event` is reported either way, in the same turn.
    pub(super) fn leave_free(
        &self,
        socket: SocketId,
        event: impl FnOnce(bool) -> SocketEvent,
    ) -> bool {
        let mut inner = self.lock();
        let free = inner.pool.take_free(socket);
        self.emit_socket(socket, event(free));
        free
    }

    /// An error on `socket` (`event`) while it may be free, as
    /// [`Shared::leave_free`]; a free socket then also reports
    /// `agent_remove`, as Node's `freeSocketErrorListener` does
    /// (`socket.destroy(); socket.emit('agentRemove')`; found in review).
    pub(super) fn error_while_free(&self, socket: SocketId, event: SocketEvent) -> bool {
        let mut inner = self.lock();
        let free = inner.pool.take_free(socket);
        self.emit_socket(socket, event);
        if free {
            self.emit_socket(socket, SocketEvent::AgentRemove);
        }
        free
    }

    /// `socket` closed: reported, removed from the pool, and a waiting
    /// request may get a new socket (Node's `removeSocket`).
    pub(super) fn closed(
        self: &Arc<Self>,
        socket: SocketId,
        had_error: bool,
        reason: SocketCloseReason,
        requests: u32,
    ) {
        let mut inner = self.lock();
        self.emit_socket(
            socket,
            SocketEvent::Close {
                had_error,
                reason,
                requests,
            },
        );
        inner.senders.remove(&socket);
        let spawn = inner.pool.closed(socket);
        if !inner.stopped {
            self.spawn_for(&mut inner, spawn);
        } else if let Some((_, id, job)) = spawn {
            // Cannot happen (the queue is drained on destroy); keep the
            // books straight anyway.
            let _ = inner.pool.closed(id);
            self.fail_unsent(&mut inner, job);
        }
        self.publish(&inner);
    }
}
