//! The middlebox: a TCP proxy that forgets idle connections the way a NAT
//! gateway or a load balancer does (issue #10).
//!
//! A backend logs that it answered; the client never gets the answer, because
//! a NAT gateway between them dropped the idle connection minutes earlier. The
//! middlebox reproduces that on one machine, two ways:
//!
//! - **standalone** ([`cli::run_cli`], `keepalive-lab middlebox --listen …
//!   --upstream …`): in front of a TCP service on this machine (loopback
//!   addresses only, stopping by itself after `--duration`), printing one
//!   JSON line per event;
//! - **in the lab** ([`serve_in_lab`]): on a port of its own in front of the
//!   lab's server, so a page's requests go browser → middlebox → server. Each
//!   mapping follows the session its first request names (`session=` in the
//!   request line), with that session's settings ([`lab`]), and reports
//!   through the lab's [`Tracker`], so its events
//!   reach that session's `/api/events` viewers like everything else.
//!
//! # Layout
//!
//! - `mod.rs`: [`Middlebox`] (the accept loop, the cap on mappings, where
//!   settings and events go), [`Limits`], [`MiddleboxConfig`];
//! - [`mapping`]: one mapping (a client connection and the middlebox's
//!   connection to the server): bounded buffers, the idle timer, what happens
//!   at expiry, aggregated events;
//! - [`tcp_info`]: `getsockopt(TCP_INFO)`, the only `unsafe` code, which
//!   lets the middlebox see keep-alive probes it can never read;
//! - [`preset`]: preset names (the numbers and their sources live in
//!   [`protocol::Preset::spec`]);
//! - [`lab`]: per-owner settings, session sniffing, `GET/PUT /api/middlebox`,
//!   the `set_middlebox` control message;
//! - [`cli`]: the standalone command line.
//!
//! # What refreshes a mapping, and what does not
//!
//! Data in either direction refreshes it, when the middlebox reads it, or,
//! while it reads no more from a side (its buffer toward the other full),
//! when a look finds more bytes unread in that socket (`FIONREAD`, which
//! leaves a FIN out). So does a segment without new data
//! that its own traffic does not explain (a TCP keep-alive probe, with no
//! octet or one old one (RFC 1122 §4.2.3.6); rarely a window update) when
//! the preset says packets count (every preset but `alb`): the middlebox
//! cannot read probes, but on Linux it sees `tcpi_segs_in` rise on its
//! sockets. It polls `TCP_INFO`
//! every twentieth of the timeout in force (at least every 10 ms, at most
//! every second: 175 ms at a lesson's 3.5 s) and once more just before
//! expiring a mapping, so a probe is credited, drawn and restarts the timer
//! at most one poll interval after it came (Linux keeps no time of a probe's
//! arrival; measured). A mapping that expired and
//! lingers polls at least 250 ms apart (`mapping::POLL_FORGOTTEN_MIN`): a
//! client's probe to it is answered with its reset up to that late. Elsewhere probes cannot be seen,
//! and the middlebox says so (`probes_visible: false`) instead of pretending.
//!
//! # Time scale
//!
//! Every provider timeout is divided by the scale (100: 350 s become 3.5 s).
//! Keep-alive probes are sent by the peers on their own clocks (`TCP_KEEPIDLE`
//! and `TCP_KEEPINTVL` are whole seconds): **the scale does not change probe
//! intervals**, so at ×100 a probe every 45 s stands for one every 75 minutes.
//!
//! # Where a user-space proxy differs from the real thing
//!
//! The kernel under the middlebox acknowledges what the middlebox then drops
//! (and answers probes after expiry), where a real middlebox drops the packets
//! themselves and the sender retransmits until its own timeout. For data the
//! endpoints' *applications* see the same until that timeout (minutes): the
//! server's write succeeds, the client never gets the bytes. For keep-alive
//! probes they do not: a real middlebox leaves them unanswered, so the
//! sender's kernel gives up after its probe count (`ETIMEDOUT`), while here
//! every probe is answered and keep-alive never fails on an expired mapping
//! (`docs/facts.md`; the `dropped` event's `probes` says so). After expiry the sockets are kept until
//! the peers give up (FIN or RST), at most [`Limits::max_linger`]; then the
//! middlebox closes what is left, which a real middlebox would never do. At
//! a cap, the oldest lingering mapping (the client's own, at the cap per
//! client) is closed the same way at once, so that a new client gets its
//! slot: a real middlebox has forgotten it already.
//!
//! A proxy also holds bytes a real middlebox never does: what it wrote
//! toward a peer whose window is closed waits in its kernel. When the
//! mapping ends in order with such bytes unsent, its `closed` waits for them
//! to go out (the peer reading again), as a lingering mapping; if they have
//! not gone out by the end of `max_linger` (at once at a stop, or when a new
//! client needs the slot), they count as dropped and the middlebox resets
//! that side so that the peer never gets them. If that side resets first,
//! the mapping ends with its reset.

pub mod cli;
pub mod lab;
pub mod mapping;
pub mod preset;
pub mod tcp_info;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use protocol::{MappingId, MiddleboxEvent, MiddleboxSettings, Preset, ServerEvent, SessionId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast, watch};
use tokio::task::JoinSet;

use crate::sessions::Owner;
use crate::tracker::Tracker;
use crate::{Clock, Lab};

pub use lab::{serve_all_in_lab, serve_in_lab};

/// Caps of one middlebox: nothing it holds grows without bound.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Mappings open at once, lingering ones included (expired, or over
    /// with bytes still going out: [`mapping::Mapping`]). Past
    /// it, a new client gets an RST and a `refused` event.
    pub max_mappings: usize,
    /// Mappings open at once for one client address (in the lab, the
    /// participant an agent's connection is for): one client cannot take
    /// every mapping. Past it, the same RST and `refused` event.
    pub max_mappings_per_client: usize,
    /// Bytes buffered per direction of a mapping. When full, the middlebox
    /// stops reading that side (TCP backpressure), it never buffers more.
    pub buffer_bytes: usize,
    /// How long an expired mapping's sockets are kept, waiting for the peers
    /// to give up, before the middlebox closes them itself; and how long a
    /// side closed in order keeps the bytes its kernel has not sent yet
    /// (from the expiry for a mapping that expired, else from its end)
    /// before they are dropped and it is reset.
    pub max_linger: Duration,
    /// How long connecting to the server may take.
    pub connect_timeout: Duration,
    /// How much of a client's first bytes are searched for the request line
    /// (and its `session=`) in the lab.
    pub first_line_bytes: usize,
    /// How long shutdown waits for mappings to close.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_mappings: 1024,
            max_mappings_per_client: 256,
            buffer_bytes: 16 * 1024,
            max_linger: Duration::from_secs(10 * 60),
            connect_timeout: Duration::from_secs(10),
            first_line_bytes: 8 * 1024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The lab's middlebox settings, fixed at start ([`crate::Config::middlebox`]).
#[derive(Debug, Clone)]
pub struct MiddleboxConfig {
    /// What every owner's mappings run until it chooses otherwise (and what
    /// everyone runs while the room is locked): an AWS NAT gateway at ×100,
    /// so the lesson fits in seconds.
    pub defaults: MiddleboxSettings,
    /// Caps of the lab's middlebox.
    pub limits: Limits,
}

impl Default for MiddleboxConfig {
    fn default() -> Self {
        MiddleboxConfig {
            defaults: Preset::AwsNat.settings(100),
            limits: Limits::default(),
        }
    }
}

/// Where settings come from and where events go.
#[derive(Debug)]
enum Mode {
    /// One fixed setting; events on a tracker of its own.
    Standalone {
        settings: MiddleboxSettings,
        /// Boxed: a tracker is large beside the lab's handle.
        tracker: Box<Tracker>,
    },
    /// Per-owner settings and the lab's tracker.
    Lab(Lab),
}

/// A middlebox in front of one upstream address. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Middlebox {
    inner: Arc<Inner>,
}

/// A lingering mapping's place on [`Inner`]'s list, given up when it ends.
#[derive(Debug)]
pub(crate) struct LingerTicket {
    id: MappingId,
    inner: Arc<Inner>,
}

impl Drop for LingerTicket {
    fn drop(&mut self) {
        self.inner
            .lingering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|l| l.id != self.id);
    }
}

/// One open mapping counted against its client's share.
#[derive(Debug)]
struct ClientShare {
    ip: std::net::IpAddr,
    clients: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

impl Drop for ClientShare {
    fn drop(&mut self) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = clients.get_mut(&self.ip) {
            *open -= 1;
            if *open == 0 {
                clients.remove(&self.ip);
            }
        }
    }
}

/// State shared by the accept loop and every mapping.
#[derive(Debug)]
pub(crate) struct Inner {
    /// Where mappings connect to.
    upstream: SocketAddr,
    /// The other addresses the upstream's name resolved to (standalone,
    /// `--upstream localhost:…`), tried in turn when `upstream` fails
    /// ([`crate::cli::connect_in_turn`]).
    fallbacks: Vec<SocketAddr>,
    /// Caps.
    limits: Limits,
    /// Settings and events.
    mode: Mode,
    /// Next mapping id (standalone; the lab counts in its registry).
    next: AtomicU64,
    /// One permit per open mapping.
    slots: Arc<Semaphore>,
    /// Open mappings per client address (entries go at zero).
    clients: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    /// Flipped once to stop the accept loop and close every mapping.
    stop: watch::Sender<bool>,
    /// Mappings still lingering (expired, their sockets kept to answer late
    /// packets; or over, their sockets kept while the bytes their kernels
    /// hold go out), oldest first: the first to give up their slot to a new
    /// client at a cap ([`Inner::evict`]).
    lingering: std::sync::Mutex<std::collections::VecDeque<Lingerer>>,
}

/// A mapping that lingers (expired, or over with bytes still going out),
/// and how to tell it to go.
#[derive(Debug)]
pub(crate) struct Lingerer {
    /// Which.
    id: MappingId,
    /// The client address its share is counted against.
    ip: std::net::IpAddr,
    /// Notified to close it.
    evict: Arc<tokio::sync::Notify>,
}

/// How long a new client waits for an evicted mapping's slot.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

impl Middlebox {
    /// A standalone middlebox: `settings` for every mapping, events on its
    /// own stream ([`Middlebox::events`]).
    pub fn standalone(
        upstream: SocketAddr,
        settings: MiddleboxSettings,
        limits: Limits,
    ) -> Middlebox {
        Middlebox::standalone_to(&[upstream], settings, limits)
    }

    /// [`Middlebox::standalone`] in front of a name's addresses: each
    /// mapping connects to the first that answers, in turn (`upstreams` is
    /// not empty: [`crate::cli::resolve_all`]).
    pub fn standalone_to(
        upstreams: &[SocketAddr],
        settings: MiddleboxSettings,
        limits: Limits,
    ) -> Middlebox {
        let (upstream, fallbacks) = match upstreams {
            [first, rest @ ..] => (*first, rest.to_vec()),
            [] => (SocketAddr::from(([127, 0, 0, 1], 0)), Vec::new()),
        };
        Middlebox::new(
            upstream,
            fallbacks,
            limits,
            Mode::Standalone {
                settings,
                tracker: Box::new(Tracker::new(Clock::new(), 1, 4096)),
            },
        )
    }

    /// The lab's middlebox in front of `upstream` (the lab's own port):
    /// per-owner settings, events through the lab's tracker.
    pub fn in_lab(lab: Lab, upstream: SocketAddr) -> Middlebox {
        let limits = lab.config().middlebox.limits.clone();
        Middlebox::new(upstream, Vec::new(), limits, Mode::Lab(lab))
    }

    fn new(
        upstream: SocketAddr,
        fallbacks: Vec<SocketAddr>,
        limits: Limits,
        mode: Mode,
    ) -> Middlebox {
        Middlebox {
            inner: Arc::new(Inner {
                upstream,
                fallbacks,
                slots: Arc::new(Semaphore::new(limits.max_mappings)),
                clients: Arc::default(),
                limits,
                mode,
                next: AtomicU64::new(1),
                stop: watch::Sender::new(false),
                lingering: std::sync::Mutex::default(),
            }),
        }
    }

    /// Every event from now on (the lab's whole stream, in the lab), each
    /// as the `Arc` its other viewers share.
    pub fn events(&self) -> broadcast::Receiver<Arc<ServerEvent>> {
        self.inner.tracker().subscribe().2
    }

    /// Mappings open now (lingering ones included).
    pub fn open_mappings(&self) -> usize {
        self.inner.limits.max_mappings - self.inner.slots.available_permits()
    }

    /// Stops the accept loop and closes every mapping.
    pub fn stop(&self) {
        self.inner.stop.send_replace(true);
    }

    /// Whether TCP keep-alive probes can be seen on this platform.
    pub fn probes_visible() -> bool {
        tcp_info::AVAILABLE
    }

    /// Accepts clients on `listener` until [`Middlebox::stop`] (or, in the
    /// lab, until the lab shuts down), then waits (at most
    /// [`Limits::shutdown_grace`]) for the mappings to close.
    pub async fn serve(&self, listener: TcpListener) {
        let inner = &self.inner;
        let mut stop = inner.stop.subscribe();
        let lab_shutdown = {
            let lab = match &inner.mode {
                Mode::Lab(lab) => Some(lab.clone()),
                Mode::Standalone { .. } => None,
            };
            async move {
                match lab {
                    Some(lab) => lab.shutting_down().await,
                    None => std::future::pending().await,
                }
            }
        };
        tokio::pin!(lab_shutdown);
        let mut tasks = JoinSet::new();
        let mut failures = crate::listener::AcceptFailures::default();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        tasks.spawn(inner.clone().admit(stream, peer));
                    }
                    // Out of descriptors, or reset before we took it.
                    Err(e) => failures.failed("middlebox", &e).await,
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                () = stopped(&mut stop) => break,
                () = &mut lab_shutdown => {
                    inner.stop.send_replace(true);
                    break;
                }
            }
        }
        drop(listener);
        let _ = tokio::time::timeout(inner.limits.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
    }
}

impl Inner {
    /// The tracker events are recorded on.
    fn tracker(&self) -> &Tracker {
        match &self.mode {
            Mode::Standalone { tracker, .. } => tracker,
            Mode::Lab(lab) => lab.tracker(),
        }
    }

    /// Records one event of `mapping`, owned by `session`.
    pub(crate) fn emit(
        &self,
        mapping: MappingId,
        session: Option<SessionId>,
        event: MiddleboxEvent,
    ) {
        self.emit_earlier(mapping, session, event, std::time::Duration::ZERO);
    }

    /// As [`Inner::emit`], for something that happened `earlier` than now
    /// (stamped then).
    pub(crate) fn emit_earlier(
        &self,
        mapping: MappingId,
        session: Option<SessionId>,
        event: MiddleboxEvent,
        earlier: std::time::Duration,
    ) {
        let back = u64::try_from(earlier.as_micros()).unwrap_or(u64::MAX);
        self.tracker().emit(|at_us| ServerEvent::Middlebox {
            mapping,
            session,
            event,
            at_us: at_us.saturating_sub(back),
        });
    }

    /// The server clock now.
    pub(crate) fn now_us(&self) -> protocol::Micros {
        self.tracker().clock().now_us()
    }

    /// The caps.
    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The settings a mapping of `owner` runs.
    pub(crate) fn settings_for(&self, owner: &Owner) -> MiddleboxSettings {
        match &self.mode {
            Mode::Standalone { settings, .. } => settings.clone(),
            Mode::Lab(lab) => lab::effective(lab, owner),
        }
    }

    /// Whose mapping the client's first bytes make it (the lab only).
    pub(crate) fn owner_in(&self, first_bytes: &[u8]) -> Owner {
        match &self.mode {
            Mode::Standalone { .. } => Owner::Anonymous,
            Mode::Lab(lab) => lab::owner_in(lab, first_bytes),
        }
    }

    /// The lab's connection whose client address is `upstream_local` (the
    /// middlebox's own end), if the lab has accepted it yet.
    pub(crate) fn conn_of(&self, upstream_local: Option<SocketAddr>) -> Option<protocol::ConnId> {
        match (&self.mode, upstream_local) {
            (Mode::Lab(lab), Some(addr)) => lab::conn_of(lab, addr),
            _ => None,
        }
    }

    /// Takes a client: refuses it over the cap or when the server cannot be
    /// reached, else runs its mapping to the end.
    async fn admit(self: Arc<Self>, client: TcpStream, peer: SocketAddr) {
        if let Mode::Lab(lab) = &self.mode
            && crate::peers::is_own_address(peer.ip())
            && lab.peers().accepted(peer).1.is_none()
        {
            // The lab's own (an agent's), accepted too late to be known:
            // its client closed it long ago; closed untracked, as the lab's
            // accept does (found in review: it was charged to loopback, and
            // its upstream connection then served as the lab's own machine).
            return;
        }
        let id = match &self.mode {
            Mode::Lab(lab) => lab.middlebox().next_mapping(),
            Mode::Standalone { .. } => MappingId(self.next.fetch_add(1, Ordering::Relaxed)),
        };
        let accepted_us = self.now_us();
        // At a cap, an expired mapping that only lingers gives up its slot
        // (a real middlebox has forgotten it already; found in review:
        // silent clients' expired mappings held every slot for the ten
        // minutes of `max_linger`).
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) if self.evict(None) => {
                tokio::time::timeout(EVICTION_WAIT, self.slots.clone().acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            Err(_) => None,
        };
        let Some(permit) = permit else {
            let reason = format!(
                "{} mappings open, the middlebox's cap",
                self.limits.max_mappings
            );
            return self.refuse(id, client, peer, reason);
        };
        // In the lab, a connection the lab made to itself (an agent's) is
        // its participant's.
        let ip = self.charged_ip(peer);
        let mut share = self.client_share(ip);
        if share.is_err() && self.evict(Some(ip)) {
            let _ = tokio::time::timeout(EVICTION_WAIT, async {
                loop {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    share = self.client_share(ip);
                    if share.is_ok() {
                        break;
                    }
                }
            })
            .await;
        }
        let share = match share {
            Ok(share) => share,
            Err(reason) => return self.refuse(id, client, peer, reason),
        };
        let _ = client.set_nodelay(true);
        let mut stop = self.stop.subscribe();
        // In the lab, the middlebox's end is chosen and registered before
        // it connects: the lab's accept loop must know, from the first
        // moment, that this connection is a client's through the middlebox
        // (its per-address caps charge that client, `Peers::charged_ip`).
        let (socket, upstream) = match self.upstream_socket(peer) {
            Ok(bound) => bound,
            Err(e) => {
                return self.refuse(
                    id,
                    client,
                    peer,
                    format!("no socket to reach the server at {}: {e}", self.upstream),
                );
            }
        };
        // One deadline for the whole and for the attempts in turn: the
        // attempts' errors are told, not the outer limit's (found in
        // review: the outer limit could end first and name one address).
        let deadline = tokio::time::Instant::now() + self.limits.connect_timeout;
        let connect = tokio::time::timeout_at(deadline, async {
            match socket {
                Some(socket) => socket.connect(self.upstream).await,
                None if self.fallbacks.is_empty() => TcpStream::connect(self.upstream).await,
                None => crate::cli::connect_in_turn(
                    self.upstream,
                    &self.fallbacks,
                    deadline,
                    TcpStream::connect,
                )
                .await
                .map(|(server, _)| server)
                .map_err(|errors| {
                    let each: Vec<String> = errors
                        .iter()
                        .map(|(addr, e)| format!("{addr}: {e}"))
                        .collect();
                    std::io::Error::other(format!("tried each: {}", each.join("; ")))
                }),
            }
        });
        let connected = tokio::select! {
            connected = connect => connected,
            () = stopped(&mut stop) => return,
        };
        let server = match connected {
            Ok(Ok(server)) => server,
            Ok(Err(e)) => {
                return self.refuse(
                    id,
                    client,
                    peer,
                    format!("the server at {} could not be reached: {e}", self.upstream),
                );
            }
            Err(_) => {
                return self.refuse(
                    id,
                    client,
                    peer,
                    format!(
                        "the server at {} did not answer within {:?}",
                        self.upstream, self.limits.connect_timeout
                    ),
                );
            }
        };
        let _ = server.set_nodelay(true);
        // Held for the mapping's life: the lab's side knows this connection
        // came through the middlebox (its TCP keep-alive follows the time
        // scale; its caps charge the client).
        let _upstream = upstream;
        let sniffing = matches!(self.mode, Mode::Lab(_));
        let mapping = mapping::Mapping::new(
            id,
            self.clone(),
            mapping::Ends {
                client,
                client_addr: peer,
                charged_ip: ip,
                server,
                accepted_us,
            },
            Owner::Anonymous,
            sniffing,
        );
        mapping.run(stop).await;
        drop((permit, share));
    }

    /// Registers mapping `id` of the client at `ip` as lingering (expired,
    /// or over with bytes still going out);
    /// the ticket takes it off the list when the mapping ends.
    pub(crate) fn linger(
        self: &Arc<Self>,
        id: MappingId,
        ip: std::net::IpAddr,
    ) -> (Arc<tokio::sync::Notify>, LingerTicket) {
        let evict = Arc::new(tokio::sync::Notify::new());
        self.lingering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(Lingerer {
                id,
                ip,
                evict: evict.clone(),
            });
        (
            evict,
            LingerTicket {
                id,
                inner: self.clone(),
            },
        )
    }

    /// Tells the oldest lingering mapping (of the client at `ip`, if given)
    /// to close; whether there was one.
    fn evict(&self, ip: Option<std::net::IpAddr>) -> bool {
        let mut lingering = self.lingering.lock().unwrap_or_else(|p| p.into_inner());
        let Some(at) = lingering
            .iter()
            .position(|l| ip.is_none_or(|ip| l.ip == ip))
        else {
            return false;
        };
        if let Some(oldest) = lingering.remove(at) {
            oldest.evict.notify_one();
        }
        true
    }

    /// Counts a mapping for the client at `ip`, or says why not: its cap
    /// per client, or, in the lab, its share while the middlebox is busy
    /// (`peers::over_busy_share`: past three quarters of the mappings, a
    /// client holding an eighth of its cap gets no more, so that a few
    /// addresses cannot take them all; found in review). The standalone
    /// middlebox serves one developer: no share there.
    fn client_share(&self, ip: std::net::IpAddr) -> Result<ClientShare, String> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let open = clients.entry(ip).or_default();
        let per_client = self.limits.max_mappings_per_client;
        if *open >= per_client {
            return Err(format!(
                "{per_client} mappings open for {ip}, the middlebox's cap per client"
            ));
        }
        // Open before this one, whose slot is already taken.
        let others = (self.limits.max_mappings - self.slots.available_permits()).saturating_sub(1);
        if matches!(self.mode, Mode::Lab(_))
            && crate::peers::over_busy_share(others, self.limits.max_mappings, *open, per_client)
        {
            return Err(format!(
                "{others} of the middlebox's {} mappings are open; while it is this busy a client holding {} or more gets no more, and {ip} holds {}",
                self.limits.max_mappings,
                crate::peers::busy_share(per_client),
                *open
            ));
        }
        *open += 1;
        Ok(ClientShare {
            ip,
            clients: self.clients.clone(),
        })
    }

    /// In the lab: a socket bound to a port of its own on one of the lab's
    /// own loopback addresses (`peers::own_socket`), registered as the middlebox's end for `client` before it
    /// connects. Elsewhere (the standalone middlebox) nothing to register:
    /// the connection is made plainly.
    fn upstream_socket(
        &self,
        client: SocketAddr,
    ) -> std::io::Result<(
        Option<tokio::net::TcpSocket>,
        Option<crate::peers::OnBehalf>,
    )> {
        let Mode::Lab(lab) = &self.mode else {
            return Ok((None, None));
        };
        let socket = crate::peers::own_socket(self.upstream.ip())?;
        let local = socket.local_addr()?;
        let guard = lab
            .peers()
            .on_behalf(local, client, crate::peers::Via::Middlebox);
        Ok((Some(socket), Some(guard)))
    }

    /// The address a client at `peer` is charged to: in the lab, a
    /// connection the lab made to itself (an agent's) is its participant's.
    fn charged_ip(&self, peer: SocketAddr) -> std::net::IpAddr {
        match &self.mode {
            Mode::Lab(lab) => lab.peers().charged_ip(peer),
            Mode::Standalone { .. } => peer.ip(),
        }
    }

    /// Routes anonymous mapping `id`'s events to the viewers on `ip`
    /// ([`Tracker::charge_mapping`]); just before its `opened` or
    /// `refused`.
    pub(crate) fn charge_mapping(&self, id: MappingId, ip: std::net::IpAddr) {
        self.tracker().charge_mapping(id, ip);
    }

    fn refuse(&self, id: MappingId, client: TcpStream, peer: SocketAddr, reason: String) {
        self.charge_mapping(id, self.charged_ip(peer));
        self.emit(
            id,
            None,
            MiddleboxEvent::Refused {
                client: peer.to_string(),
                reason,
            },
        );
        mapping::reset(client);
    }
}

/// Resolves once `stop` has flipped (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}
