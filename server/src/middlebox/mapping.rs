//! One mapping: a client's connection, the middlebox's connection to the
//! server, and the idle timer between them.
//!
//! One task runs a mapping from its first byte to its end, waiting on
//! readiness (`readable`/`writable`, then `try_read`/`try_write`) so that one
//! loop owns both sockets, both bounded buffers and the timer:
//!
//! - **live**: bytes are copied each way through a buffer of
//!   [`Limits::buffer_bytes`](super::Limits::buffer_bytes) (full: that side
//!   is not read, TCP pushes back); a FIN is passed on once its direction's
//!   buffer is drained, a reset as a reset once the bytes read before it
//!   are written to the other side (within `max_linger`), as a NAT forwards
//!   the data and then the RST. Every read refreshes the idle timer; so do
//!   bytes and a FIN that a look at `TCP_INFO` finds in a socket the
//!   middlebox does not read now, and, when the preset counts packets, any
//!   segment `TCP_INFO` shows arriving (probes). Events are aggregated: at
//!   most one flush per [`FLUSH_EVERY`].
//! - **expiry** ([`OnExpiry`]): `rst_both` resets both sides and `fin`
//!   closes both at once; `rst`, `rst_either` and `silent` *forget* the
//!   mapping: nothing is forwarded any more, what arrives is read and dropped
//!   (so the sender's write succeeds), and the first packet from the client
//!   (`rst`, `rst_either`) or the server (`rst_either`) is answered with an
//!   RST, data, FIN or keep-alive probe alike.
//! - **end**: both peers gone (FIN or RST), or, after expiry,
//!   [`Limits::max_linger`](super::Limits::max_linger); then, if a side
//!   closed in order still has bytes in its kernel's send queue (a zero
//!   window), `closed` waits for them to go out ([`Mapping::deliver`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use protocol::{
    CloseHow, MappingId, Micros, MiddleboxEvent, MiddleboxSettings, OnExpiry, Party, RefreshCause,
    Side,
};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::tcp_info::{self, Segments};
use super::{Inner, stopped};
use crate::sessions::Owner;

/// Events of one mapping are flushed at most this often (with counts).
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// `TCP_INFO` is polled at least this far apart...
pub const POLL_MIN: Duration = Duration::from_millis(10);
/// ...and at most this far apart.
pub const POLL_MAX: Duration = Duration::from_secs(1);

/// A forgotten mapping (expired, lingering for up to `max_linger`) looks
/// at `TCP_INFO` no more often than this: it only counts what arrives, and
/// answers a client's probe with its reset at most this late (data is seen
/// at once, by its socket's readiness). Found in review: at the live rate of
/// a custom 100 ms timeout, 256 lingering mappings of one participant woke
/// 25 600 times a second for ten minutes, a sixth of a core.
pub const POLL_FORGOTTEN_MIN: Duration = Duration::from_millis(250);

/// A live mapping looks at `TCP_INFO` this many times per timeout in force.
/// A probe leaves no trace of when it came (it is not read, and Linux keeps
/// no time of it: `tcpi_last_ack_recv` and `tcpi_last_data_recv` stay put,
/// measured), so it is credited at the look that sees it: up to one interval
/// after it came. At a fifth, a lesson's probe drawn and its idle timer
/// restarted up to 700 ms late (of 3.5 s), and `expired.idle_ms` short by as
/// much (found in a record-against-wire review); a twentieth keeps that
/// within 175 ms there, and 1 s ([`POLL_MAX`]) in real time.
pub const POLLS_PER_TIMEOUT: u32 = 20;

/// How often a mapping whose timeout in force is `in_force` looks at
/// `TCP_INFO`: a [`POLLS_PER_TIMEOUT`]th of it, within
/// [`POLL_MIN`]..=[`POLL_MAX`]; once it has expired (`forgotten`), at least
/// [`POLL_FORGOTTEN_MIN`] apart.
pub fn poll_interval(in_force: Duration, forgotten: bool) -> Duration {
    let live = (in_force / POLLS_PER_TIMEOUT).clamp(POLL_MIN, POLL_MAX);
    if forgotten {
        live.max(POLL_FORGOTTEN_MIN)
    } else {
        live
    }
}

/// Closes `socket` with a reset (`SO_LINGER` 0).
pub fn reset(socket: TcpStream) {
    let _ = socket2::SockRef::from(&socket).set_linger(Some(Duration::ZERO));
    drop(socket);
}

/// The two connections of a new mapping.
#[derive(Debug)]
pub struct Ends {
    /// The client's connection (accepted).
    pub client: TcpStream,
    /// The client's address.
    pub client_addr: SocketAddr,
    /// The address its share is counted against (in the lab, an agent's
    /// connection counts against its participant's).
    pub charged_ip: std::net::IpAddr,
    /// The middlebox's connection to the server.
    pub server: TcpStream,
    /// When the client was accepted.
    pub accepted_us: Micros,
}

/// A bounded byte buffer: filled by reads at its end, drained by writes at
/// its start.
#[derive(Debug)]
struct Buf {
    data: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Buf {
    fn new(capacity: usize) -> Buf {
        Buf {
            data: vec![0; capacity.max(1)].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn has_room(&self) -> bool {
        self.end < self.data.len() || self.start > 0
    }

    /// The free space at the end (compacting first when needed).
    fn room(&mut self) -> &mut [u8] {
        if self.end == self.data.len() && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.data[self.end..]
    }

    fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.data.len());
    }

    /// Takes back the last `n` bytes filled.
    fn unfill(&mut self, n: usize) {
        self.end = self.end.saturating_sub(n).max(self.start);
    }

    /// The last `n` bytes filled.
    fn last(&self, n: usize) -> &[u8] {
        &self.data[self.end.saturating_sub(n)..self.end]
    }

    fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.clear();
        }
    }

    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// The whole storage, as scratch space (after expiry nothing is kept).
    fn scratch(&mut self) -> &mut [u8] {
        self.clear();
        &mut self.data[..]
    }
}

/// One of the two connections.
#[derive(Debug)]
struct Peer {
    /// The socket, until it is closed or reset.
    sock: Option<TcpStream>,
    /// The peer sent FIN, and the middlebox read it (it reads no more).
    eof: bool,
    /// The peer's FIN has reached the middlebox: read (`eof`), or seen at a
    /// look behind bytes not read yet (`Segments::fin_in`), which is when it
    /// came through: it refreshed the mapping then, and starts Cloud NAT's
    /// timer for a closing connection (found reviewing the fixes of
    /// December 5, 2026: a FIN behind data on a side not read counted only
    /// once read, up to the established timeout later).
    fin_seen: bool,
    /// The middlebox sent FIN to it.
    shut: bool,
    /// The last `TCP_INFO` look.
    seen: Option<Segments>,
    /// Read from or written to since that look.
    touched: bool,
    /// Bytes read from it, all told.
    read: u64,
    /// Bytes from it reported as having reached the middlebox (`refreshed`,
    /// `dropped`): at a read, or earlier, at a look at `TCP_INFO` that finds
    /// them in its socket unread (its buffer toward the other side full).
    /// Never less than `read`; what lies between was reported and is in the
    /// kernel's receive queue.
    arrived: u64,
    /// `tcpi_bytes_acked` when the mapping began (Linux counts the SYN): what
    /// the peer acknowledged since, of the middlebox's writes, is told from
    /// it when the peer resets.
    acked_at_start: Option<u64>,
    /// How many bytes the middlebox had written toward it when its FIN was
    /// read: what comes after, a peer that has closed may reject.
    written_at_fin: Option<u64>,
}

impl Peer {
    fn new(sock: TcpStream) -> Peer {
        let seen = tcp_info::read(&sock);
        Peer {
            sock: Some(sock),
            eof: false,
            fin_seen: false,
            shut: false,
            seen,
            touched: false,
            read: 0,
            arrived: 0,
            acked_at_start: seen.map(|s| s.bytes_acked),
            written_at_fin: None,
        }
    }

    /// Counts `n` bytes just read; answers how many of them had not been
    /// reported as arrived yet.
    fn take_read(&mut self, n: usize) -> u64 {
        self.read += n as u64;
        let new = self.read.saturating_sub(self.arrived);
        self.arrived += new;
        new
    }

    /// Bytes reported as arrived and still in the kernel, unread.
    fn queued(&self) -> u64 {
        self.arrived - self.read
    }

    fn can_read(&self) -> bool {
        self.sock.is_some() && !self.eof
    }

    /// After expiry: it gave up (FIN, RST) or was reset.
    fn done(&self) -> bool {
        self.sock.is_none() || self.eof
    }
}

/// Counts waiting to be reported.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    bytes: u64,
    count: u32,
    probes: u32,
}

impl Tally {
    fn is_empty(&self) -> bool {
        self.count == 0 && self.probes == 0
    }
}

/// Aggregated events of one mapping, per side (index 0 client, 1 server).
#[derive(Debug, Default)]
struct Pending {
    /// Refreshes by cause ([`CAUSES`]' order), then side.
    refreshed: [[Tally; 2]; 3],
    dropped: [Tally; 2],
}

/// The causes of a refresh, in the order they are reported in.
const CAUSES: [RefreshCause; 3] = [
    RefreshCause::Data,
    RefreshCause::Probe,
    RefreshCause::WindowProbe,
];

fn index(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Server => 1,
    }
}

fn party(side: Side) -> Party {
    match side {
        Side::Client => Party::Client,
        Side::Server => Party::Server,
    }
}

const SIDES: [Side; 2] = [Side::Client, Side::Server];

/// Reads a draining side's socket takes at most at a time
/// ([`Mapping::drop_arrivals`]).
const DRAIN_READS: usize = 64;

/// What a pass over a draining side's socket found.
#[derive(Debug, Clone, Copy)]
enum Arrivals {
    /// All it sent was read (nothing, or up to its FIN).
    Drained,
    /// More is waiting: the pass stopped at [`DRAIN_READS`].
    More,
    /// Its connection failed.
    Failed(Failed),
}

/// How a draining side's connection failed.
#[derive(Debug, Clone, Copy)]
enum Failed {
    /// The peer reset it (`ECONNRESET`; `EPIPE`, a reset after its FIN).
    Reset,
    /// Anything else: the kernel gave up on the peer.
    Other,
}

impl Failed {
    fn of(e: &std::io::Error) -> Failed {
        match e.kind() {
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => Failed::Reset,
            _ => Failed::Other,
        }
    }
}

/// What woke the loop.
#[derive(Debug, Clone, Copy)]
enum Ready {
    Stop,
    Read(Side),
    Write(Side),
    Timer,
    /// Expired and lingering, its slot wanted by a new client.
    Evicted,
}

/// One mapping. See the module docs.
#[derive(Debug)]
pub struct Mapping {
    id: MappingId,
    inner: Arc<Inner>,
    client_addr: SocketAddr,
    /// See [`Ends::charged_ip`].
    charged_ip: std::net::IpAddr,
    /// Once expired and lingering: told when a new client needs its slot,
    /// and its place on the middlebox's list of lingering mappings.
    lingering: Option<(Arc<tokio::sync::Notify>, super::LingerTicket)>,
    /// The middlebox's own address towards the server.
    upstream_local: Option<SocketAddr>,
    accepted_us: Micros,
    /// The settings it runs (its owner's, once attributed).
    settings: MiddleboxSettings,
    /// Whose mapping.
    owner: Owner,
    /// `opened` has been reported.
    announced: bool,
    /// The client's first bytes, while its request line is awaited (lab).
    sniff: Option<Vec<u8>>,
    /// It carries the lab's own event stream (`/api/events`): the server's
    /// data on it is events, and reporting each as a `refreshed` event
    /// would make more events for that same stream, about ten a second with
    /// nothing happening. That side's data still refreshes the idle timer;
    /// it is counted in `closed`'s totals, not reported as it flows.
    carries_events: bool,
    /// Client (0) and server (1).
    peers: [Peer; 2],
    /// Bytes from the client on their way to the server.
    to_server: Buf,
    /// Bytes from the server on their way to the client.
    to_client: Buf,
    /// The last packet that refreshed the idle timer.
    last_activity: Instant,
    /// When it expired, if it has.
    expired_at: Option<Instant>,
    /// `TCP_INFO` can be read on both sockets.
    visible: bool,
    next_poll: Instant,
    pending: Pending,
    last_flush: Option<Instant>,
    flush_due: Option<Instant>,
    client_bytes: u64,
    server_bytes: u64,
    dropped_bytes: u64,
    /// Who closed first while live.
    first_close: Option<(Party, CloseHow)>,
    /// Who ended last (after expiry).
    last_close: (Party, CloseHow),
    /// Set once the mapping is over.
    ended: Option<(Party, CloseHow)>,
    /// A side reset while the mapping was live, and until when the bytes
    /// already read from it for the other side are written before that side
    /// is reset in turn: a NAT forwards the data and then the RST, in order
    /// (found in review: the bytes were dropped and the RST passed on at
    /// once, so a response the server finished was never seen).
    resetting: Option<(Side, Instant)>,
    /// Sides closed in order while their kernel still held bytes the
    /// middlebox had written to them and not yet sent (a peer that stopped
    /// reading: a zero window), kept once the mapping is over until those
    /// bytes go out ([`Mapping::deliver`]): counted as forwarded at the
    /// write, they reach a peer that never reads again never (found in a
    /// record-against-wire review: `closed` counted them forwarded).
    draining: Vec<(Side, TcpStream)>,
}

impl Mapping {
    /// A mapping of `ends`, owned by `owner` until (with `sniffing`) the
    /// client's first request line names a session.
    pub(crate) fn new(
        id: MappingId,
        inner: Arc<Inner>,
        ends: Ends,
        owner: Owner,
        sniffing: bool,
    ) -> Mapping {
        let settings = inner.settings_for(&owner);
        let buffer = inner.limits().buffer_bytes;
        let upstream_local = ends.server.local_addr().ok();
        let client = Peer::new(ends.client);
        let server = Peer::new(ends.server);
        let visible = client.seen.is_some() && server.seen.is_some();
        let now = Instant::now();
        Mapping {
            id,
            client_addr: ends.client_addr,
            charged_ip: ends.charged_ip,
            lingering: None,
            upstream_local,
            accepted_us: ends.accepted_us,
            settings,
            owner,
            announced: false,
            sniff: sniffing.then(Vec::new),
            carries_events: false,
            peers: [client, server],
            to_server: Buf::new(buffer),
            to_client: Buf::new(buffer),
            last_activity: now,
            expired_at: None,
            visible,
            next_poll: now,
            pending: Pending::default(),
            last_flush: None,
            flush_due: None,
            client_bytes: 0,
            server_bytes: 0,
            dropped_bytes: 0,
            first_close: None,
            last_close: (Party::Middlebox, CloseHow::Fin),
            ended: None,
            resetting: None,
            draining: Vec::new(),
            inner,
        }
    }

    fn in_force(&self) -> Duration {
        self.timer().0
    }

    /// The timer the mapping runs by, and whether it is the closing
    /// connection's: once a FIN has been seen from either side, where the
    /// preset has one (Cloud NAT's transitory timeout), and only where it is
    /// the shorter ([`MiddleboxSettings::transitory_in_force_us`] is never
    /// longer than the established one, so equal means the established one).
    fn timer(&self) -> (Duration, bool) {
        let established = self.settings.in_force_us();
        let closing = self
            .settings
            .transitory_in_force_us()
            .filter(|_| self.peers.iter().any(|p| p.fin_seen));
        match closing {
            Some(us) if us < established => (Duration::from_micros(us), true),
            _ => (Duration::from_micros(established), false),
        }
    }

    fn deadline(&self) -> Instant {
        self.last_activity + self.in_force()
    }

    fn expired(&self) -> bool {
        self.expired_at.is_some()
    }

    /// Whether `TCP_INFO` is worth polling now: live, when packets refresh,
    /// or while a side is not read (data that reaches its socket is traffic
    /// all the same); after expiry, to see what arrives for a forgotten
    /// mapping.
    fn polling(&self) -> bool {
        self.visible
            && (self.expired()
                || self.settings.probes_refresh
                || self.stalled()
                || self.resetting.is_some())
    }

    /// A side is not read: its buffer toward the other side is full.
    fn stalled(&self) -> bool {
        !self.to_server.has_room() || !self.to_client.has_room()
    }

    /// Runs the mapping until it ends, or `stop` flips.
    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        if self.sniff.is_none() {
            self.announce();
        }
        self.next_poll = Instant::now() + poll_interval(self.in_force(), false);
        loop {
            self.settle();
            if let Some((by, how)) = self.ended {
                // The sockets still held are let go first, so that `closed`
                // counts what their last look finds and what they sent.
                for side in SIDES {
                    self.close_gracefully(side, true);
                }
                // Who ended it, if a side still draining did not end in order.
                let (by, how) = self.deliver(&mut stop).await.unwrap_or((by, how));
                self.finish(by, how);
                return;
            }
            let wake = self.next_wake();
            let expired = self.expired();
            let [client, server] = &self.peers;
            // Nothing more is read once a side was reset: there is no one
            // left to take it.
            let reading = self.resetting.is_none();
            let read_client =
                reading && client.can_read() && (expired || self.to_server.has_room());
            let read_server =
                reading && server.can_read() && (expired || self.to_client.has_room());
            let write_server =
                !expired && server.sock.is_some() && !server.shut && !self.to_server.is_empty();
            let write_client =
                !expired && client.sock.is_some() && !client.shut && !self.to_client.is_empty();
            let ready = tokio::select! {
                () = stopped(&mut stop) => Ready::Stop,
                _ = readable(client.sock.as_ref()), if read_client => Ready::Read(Side::Client),
                _ = readable(server.sock.as_ref()), if read_server => Ready::Read(Side::Server),
                _ = writable(server.sock.as_ref()), if write_server => Ready::Write(Side::Server),
                _ = writable(client.sock.as_ref()), if write_client => Ready::Write(Side::Client),
                () = tokio::time::sleep_until(wake) => Ready::Timer,
                () = evicted(self.lingering.as_ref().map(|(evict, _)| evict)) => Ready::Evicted,
            };
            match ready {
                // As at the end of `max_linger`, earlier: a new client needs
                // the slot.
                Ready::Evicted | Ready::Stop => self.close_both(false),
                Ready::Read(side) => self.on_read(side),
                Ready::Write(side) => self.on_write(side),
                Ready::Timer => self.on_timer(),
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let mut wake = match self.expired_at {
            Some(at) => at + self.inner.limits().max_linger,
            None => self.deadline(),
        };
        if self.polling() {
            wake = wake.min(self.next_poll);
        }
        if let Some(due) = self.flush_due {
            wake = wake.min(due);
        }
        if let Some((_, by)) = self.resetting {
            wake = wake.min(by);
        }
        wake
    }

    // ---- reading and writing -------------------------------------------

    fn on_read(&mut self, side: Side) {
        let expired = self.expired();
        let i = index(side);
        let Some(sock) = self.peers[i].sock.as_ref() else {
            return;
        };
        let buf = match (expired, side) {
            (true, _) => self.to_server.scratch(),
            (false, Side::Client) => self.to_server.room(),
            (false, Side::Server) => self.to_client.room(),
        };
        let result = sock.try_read(buf);
        self.peers[i].touched = true;
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => self.gone(side),
            // A FIN that came while the mapping was live (seen at a look
            // behind bytes not read) is not late, as the bytes before it are
            // not (found in review: answered with the preset's reset).
            Ok(0) if expired && self.peers[i].fin_seen => {
                self.peers[i].eof = true;
                self.last_close = (party(side), CloseHow::Fin);
            }
            Ok(0) if expired => self.late(side, 0, true),
            Ok(0) => {
                self.peers[i].eof = true;
                if !self.peers[i].fin_seen {
                    self.fin_came(side);
                }
            }
            Ok(n) if expired => {
                // Bytes reported as arrived before the expiry (a look found
                // them in the socket) were not late: forgotten with the
                // mapping, like its buffers, and not answered.
                let late = self.peers[i].take_read(n);
                self.dropped_bytes += n as u64 - late;
                if late > 0 {
                    self.late(side, late, false);
                }
            }
            Ok(n) => {
                match side {
                    Side::Client => {
                        self.to_server.filled(n);
                        if self.sniff.is_some() {
                            let bytes = self.to_server.last(n).to_vec();
                            self.sniff(&bytes);
                            if let Some(deadline) = self.passed_before_attribution() {
                                // These bytes came after it: late.
                                self.to_server.unfill(n);
                                self.expire(deadline);
                                let late = self.peers[i].take_read(n);
                                self.late(side, late, false);
                                return;
                            }
                        }
                    }
                    Side::Server => self.to_client.filled(n),
                }
                let new = self.peers[i].take_read(n);
                if new > 0 {
                    self.refreshed(side, RefreshCause::Data, new, 1);
                }
            }
        }
    }

    fn on_write(&mut self, side: Side) {
        let i = index(side);
        let Some(sock) = self.peers[i].sock.as_ref() else {
            return;
        };
        let buf = match side {
            Side::Server => &mut self.to_server,
            Side::Client => &mut self.to_client,
        };
        match sock.try_write(buf.pending()) {
            Ok(n) => {
                buf.consume(n);
                self.peers[i].touched = true;
                match side {
                    Side::Server => self.client_bytes += n as u64,
                    Side::Client => self.server_bytes += n as u64,
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => self.gone(side),
        }
    }

    /// Passes a FIN on once its direction is drained, and a reset once the
    /// bytes that came before it are written (or could not be in time).
    fn settle(&mut self) {
        if self.ended.is_some() {
            return;
        }
        if let Some((side, by)) = self.resetting {
            let other = 1 - index(side);
            let drained = match side {
                Side::Client => self.to_server.is_empty(),
                Side::Server => self.to_client.is_empty(),
            };
            if drained || self.peers[other].sock.is_none() || Instant::now() >= by {
                if let Some(sock) = self.peers[other].sock.take() {
                    self.last_look(SIDES[other], &sock);
                    self.undelivered_dropped(SIDES[other], &sock);
                    reset(sock);
                }
                self.ended = Some((party(side), CloseHow::Rst));
            }
            return;
        }
        if self.expired() {
            if self.peers.iter().all(Peer::done) {
                self.ended = Some(self.last_close);
            }
            return;
        }
        for (from, to) in [(0, 1), (1, 0)] {
            let drained = if to == 1 {
                self.to_server.is_empty()
            } else {
                self.to_client.is_empty()
            };
            if self.peers[from].eof && drained && !self.peers[to].shut {
                if let Some(sock) = &self.peers[to].sock {
                    let _ = socket2::SockRef::from(sock).shutdown(std::net::Shutdown::Write);
                }
                self.peers[to].shut = true;
            }
        }
        if self.peers.iter().all(|p| p.eof && p.shut) {
            self.ended = Some(self.first_close.unwrap_or((Party::Client, CloseHow::Fin)));
        }
    }

    /// `side`'s connection failed (reset, or a write error).
    fn gone(&mut self, side: Side) {
        let i = index(side);
        if let Some(sock) = self.peers[i].sock.take() {
            self.last_look(side, &sock);
            self.peer_reset_dropped(side, &sock);
        }
        if self.expired() {
            self.last_close = (party(side), CloseHow::Rst);
            return;
        }
        // Live: pass the reset on (`settle`), after the bytes that came from
        // `side` before it, within `max_linger`. (The other side failing too
        // meanwhile ends it there; the first reset is the mapping's end.)
        if self.resetting.is_none() {
            let by = Instant::now() + self.inner.limits().max_linger;
            self.resetting = Some((side, by));
            // A RST is a packet through the middlebox too.
            self.last_activity = Instant::now();
        }
    }

    /// Something arrived from `side` for a forgotten mapping: `bytes` of data,
    /// a FIN, or (with `bytes` 0 and not `fin`) probes seen by `TCP_INFO`.
    fn late(&mut self, side: Side, bytes: u64, fin: bool) {
        if bytes > 0 {
            let tally = &mut self.pending.dropped[index(side)];
            tally.bytes += bytes;
            tally.count += 1;
            self.dropped_bytes += bytes;
            self.schedule_flush();
        }
        let answers_rst = match self.settings.on_expiry {
            OnExpiry::Rst => side == Side::Client,
            OnExpiry::RstEither => true,
            OnExpiry::RstBoth | OnExpiry::Silent | OnExpiry::Fin => false,
        };
        if answers_rst {
            self.flush();
            self.reset_side(side);
        } else if fin {
            self.peers[index(side)].eof = true;
            self.last_close = (party(side), CloseHow::Fin);
        }
    }

    /// The middlebox resets `side`.
    fn reset_side(&mut self, side: Side) {
        if let Some(sock) = self.peers[index(side)].sock.take() {
            self.last_look(side, &sock);
            self.undelivered_dropped(side, &sock);
            reset(sock);
            // What the last look found came before the reset: told first.
            self.flush();
            self.emit(MiddleboxEvent::RstSent { side });
        }
        self.last_close = (Party::Middlebox, CloseHow::Rst);
    }

    /// What the middlebox wrote to `side` and its kernel had not yet sent
    /// (a zero window held it back) is lost when that connection ends in a
    /// reset (the kernel drops its send queue): moved from the forwarded
    /// count to `dropped_bytes`, so that `closed` counts as forwarded what
    /// reached the peer (found in a record-against-wire review: a server's
    /// reset passed on to a slow reader recorded 4.1 MB forwarded, of which
    /// it had 1.3 MB). What was sent counts as forwarded, acknowledged or
    /// not: on loopback it is in the peer's kernel, readable after the reset
    /// (measured; found in review: counting unacknowledged bytes as lost
    /// took 100 bytes a delayed-ACK client had read for dropped). Not known
    /// without `TCP_INFO` (then nothing moves).
    fn undelivered_dropped(&mut self, side: Side, sock: &TcpStream) {
        let Some(now) = tcp_info::read(sock) else {
            return;
        };
        let unsent = self.unsent(side, &now);
        self.lost_toward(side, |_| unsent);
    }

    /// Bytes written toward `side` that its kernel has not sent: its
    /// `tcpi_notsent_bytes`, less a FIN queued behind them (the middlebox
    /// shut that side down), which takes a number in the sequence too.
    fn unsent(&self, side: Side, now: &tcp_info::Segments) -> u64 {
        let fin = u64::from(self.peers[index(side)].shut && now.notsent_bytes > 0);
        u64::from(now.notsent_bytes) - fin
    }

    /// Bytes written toward `side`, counted forwarded.
    fn written_toward(&self, side: Side) -> u64 {
        match side {
            Side::Client => self.server_bytes,
            Side::Server => self.client_bytes,
        }
    }

    /// Moves what `lost` (given the bytes written toward `side`) says was
    /// lost, at most all of them, from the forwarded count to
    /// `dropped_bytes`.
    fn lost_toward(&mut self, side: Side, lost: impl FnOnce(u64) -> u64) {
        let written = match side {
            Side::Client => &mut self.server_bytes,
            Side::Server => &mut self.client_bytes,
        };
        let lost = lost(*written).min(*written);
        *written -= lost;
        self.dropped_bytes += lost;
    }

    /// When `side` itself reset the connection: what was not yet sent is
    /// lost (as at the middlebox's own reset), and so is what it wrote after
    /// `side`'s FIN that `side` never acknowledged (a client that had closed
    /// rejects a late answer with that reset: found in review, counted
    /// forwarded). Bytes before the FIN count as forwarded, acknowledged or
    /// not: a peer that reads and resets before its delayed ACK goes out had
    /// them, and Linux does not take the ACK a reset carries (found in
    /// review: 100 bytes a client read were counted dropped).
    fn peer_reset_dropped(&mut self, side: Side, sock: &TcpStream) {
        let peer = &self.peers[index(side)];
        let (Some(start), Some(at_fin), Some(now)) = (
            peer.acked_at_start,
            peer.written_at_fin,
            tcp_info::read(sock),
        ) else {
            self.undelivered_dropped(side, sock);
            return;
        };
        let acknowledged = now.bytes_acked.saturating_sub(start);
        let unsent = self.unsent(side, &now);
        self.lost_toward(side, |written| {
            let after_fin = written.saturating_sub(at_fin);
            unsent.max(after_fin.min(written.saturating_sub(acknowledged)))
        });
    }

    /// Shuts down writing, then closes `side`: `true` for the FIN it means,
    /// `false` when bytes `side` sent were still unread as it closed (the
    /// middlebox had stopped reading them: its buffer toward the other side
    /// was full), which Linux answers with a RST (found in review: an expiry
    /// with `fin`, a stop, an eviction or the end of `max_linger` was
    /// recorded `fin` while the wire had a reset). Bytes written to `side`
    /// that its kernel has not sent yet (a zero window) go out before the
    /// FIN if `side` reads again: with `wait`, the socket is kept until they
    /// have ([`Mapping::deliver`]); without (a stop, a slot wanted, the end
    /// of `max_linger`), they are lost now, counted dropped, and `side` is
    /// reset so that they are (`false`).
    fn close_gracefully(&mut self, side: Side, wait: bool) -> bool {
        let Some(sock) = self.peers[index(side)].sock.take() else {
            return true;
        };
        self.last_look(side, &sock);
        if matches!(sock.take_error(), Ok(Some(_))) {
            // A reset from `side` the middlebox had not noticed (it read no
            // more from a side whose FIN it had, and wrote nothing after):
            // found in review, a client that had closed rejected a late
            // answer with a RST, and `closed` counted it forwarded.
            self.peer_reset_dropped(side, &sock);
            return true;
        }
        let socket = socket2::SockRef::from(&sock);
        let mut one = [std::mem::MaybeUninit::<u8>::uninit()];
        let unread = matches!(socket.peek(&mut one), Ok(n) if n > 0);
        if unread {
            // The close goes out as a reset: the send queue is lost with it
            // (found in review: counted forwarded).
            self.undelivered_dropped(side, &sock);
        }
        let _ = socket.shutdown(std::net::Shutdown::Write);
        if unread {
            return false;
        }
        self.peers[index(side)].shut = true;
        let unsent = tcp_info::read(&sock).map_or(0, |now| self.unsent(side, &now));
        if unsent == 0 {
            return true;
        }
        if wait {
            self.draining.push((side, sock));
            return true;
        }
        self.lose_unsent(side, sock);
        false
    }

    /// What the middlebox wrote to `side` and its kernel has not sent is
    /// lost: counted dropped, and `side` reset so that it is (closed in
    /// order, its kernel would go on offering them to the peer).
    fn lose_unsent(&mut self, side: Side, sock: TcpStream) {
        self.undelivered_dropped(side, &sock);
        reset(sock);
        self.flush();
        self.emit(MiddleboxEvent::RstSent { side });
    }

    /// Once the mapping is over: waits until the sides closed with bytes
    /// their kernel had not sent ([`Mapping::draining`]) have sent them
    /// (a peer reading again), looking at `TCP_INFO` from every 10 ms to
    /// every 250 ms, and at once when something arrives: what a peer sends
    /// meanwhile is read and dropped (nothing is forwarded any more; left
    /// unread, the close would go out as a reset), and a peer's reset ends
    /// its side's wait (its kernel drops the send queue, which
    /// `tcpi_notsent_bytes` goes on counting: found in review, the wait ran
    /// to its end and the middlebox was said to have reset it). At most
    /// `max_linger` (after the expiry, for a mapping that expired), cut
    /// short by a stop or a new client's need of the slot (it lingers
    /// meanwhile); then what is left is lost ([`Mapping::lose_unsent`]).
    /// `None` when every byte went out, else who ended it and how.
    async fn deliver(&mut self, stop: &mut watch::Receiver<bool>) -> Option<(Party, CloseHow)> {
        let mut draining = std::mem::take(&mut self.draining);
        if draining.is_empty() {
            return None;
        }
        let by = self.expired_at.unwrap_or_else(Instant::now) + self.inner.limits().max_linger;
        if self.lingering.is_none() {
            self.lingering = Some(self.inner.linger(self.id, self.charged_ip));
        }
        let mut end = None;
        let mut scratch = vec![0u8; 16 * 1024];
        let mut interval = POLL_MIN;
        loop {
            let mut i = 0;
            while let Some((side, sock)) = draining.get(i) {
                let side = *side;
                let done = match self.drop_arrivals(side, sock, &mut scratch) {
                    // More to read: judged once it is all read (closed
                    // unread, it would go out as a reset); the next pass
                    // comes at once, the socket still readable.
                    Arrivals::More => false,
                    Arrivals::Failed(how) => {
                        let (_, sock) = draining.swap_remove(i);
                        self.drain_failed(side, &sock, how, &mut end);
                        continue;
                    }
                    Arrivals::Drained => match tcp_info::read(sock) {
                        Some(now) if self.unsent(side, &now) > 0 => {
                            if let Some(how) = gone(sock) {
                                let (_, sock) = draining.swap_remove(i);
                                self.drain_failed(side, &sock, how, &mut end);
                                continue;
                            }
                            false
                        }
                        _ => true,
                    },
                };
                if done {
                    let (_, sock) = draining.swap_remove(i);
                    self.last_look(side, &sock);
                } else {
                    i += 1;
                }
            }
            if self.flush_due.is_some_and(|due| Instant::now() >= due) {
                self.flush();
            }
            if draining.is_empty() {
                return end;
            }
            let now = Instant::now();
            if now >= by {
                break;
            }
            let wake = self.flush_due.map_or(by, |due| due.min(by));
            let watched = |k: usize| {
                draining
                    .get(k)
                    .map(|(side, sock)| (sock, self.peers[index(*side)].eof))
            };
            tokio::select! {
                () = stopped(stop) => break,
                () = evicted(self.lingering.as_ref().map(|(evict, _)| evict)) => break,
                () = stirs(watched(0)) => {}
                () = stirs(watched(1)) => {}
                () = tokio::time::sleep_until((now + interval).min(wake)) => {}
            }
            interval = (interval * 2).min(POLL_FORGOTTEN_MIN);
        }
        let mut reset = false;
        for (side, sock) in draining {
            // (A pass that stopped at its bound of reads has not looked for
            // an error: bytes that came before a reset are read first.)
            let failed = match self.drop_arrivals(side, &sock, &mut scratch) {
                Arrivals::Failed(how) => Some(how),
                Arrivals::Drained | Arrivals::More => gone(&sock),
            };
            if let Some(how) = failed {
                self.drain_failed(side, &sock, how, &mut end);
                continue;
            }
            self.last_look(side, &sock);
            self.lose_unsent(side, sock);
            reset = true;
        }
        // A peer's reset before, if there was one, stays on the record (the
        // middlebox's own is its `rst_sent`); with neither, nothing was sent
        // (a kernel gave up) and the close stays as it was.
        end.or(reset.then_some((Party::Middlebox, CloseHow::Rst)))
    }

    /// While `side`'s socket drains: reads what it sent and drops it,
    /// reported as `dropped`, at most [`DRAIN_READS`] reads a call (a peer
    /// that never stops sending cannot hold the thread).
    fn drop_arrivals(&mut self, side: Side, sock: &TcpStream, scratch: &mut [u8]) -> Arrivals {
        let i = index(side);
        let mut drained = false;
        for _ in 0..DRAIN_READS {
            match sock.try_read(scratch) {
                Ok(0) => {
                    self.peers[i].eof = true;
                    drained = true;
                    break;
                }
                Ok(n) => {
                    let new = self.peers[i].take_read(n);
                    self.dropped_bytes += n as u64 - new;
                    if new > 0 {
                        let tally = &mut self.pending.dropped[i];
                        tally.bytes += new;
                        tally.count += 1;
                        self.dropped_bytes += new;
                        self.schedule_flush();
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                Err(e) => return Arrivals::Failed(Failed::of(&e)),
            }
        }
        if !drained {
            return Arrivals::More;
        }
        match sock.take_error() {
            Ok(Some(e)) => Arrivals::Failed(Failed::of(&e)),
            _ => Arrivals::Drained,
        }
    }

    /// A draining side's connection failed (`how`): the peer's reset ends
    /// the mapping with it, and loses the bytes its kernel held (as at any
    /// peer's reset); anything else, its kernel gave up on the peer (its
    /// machine gone: not a peer on loopback, where the middlebox runs), the
    /// bytes are lost and nothing went out that the record could name.
    fn drain_failed(
        &mut self,
        side: Side,
        sock: &TcpStream,
        how: Failed,
        end: &mut Option<(Party, CloseHow)>,
    ) {
        self.last_look(side, sock);
        match how {
            Failed::Reset => {
                self.peer_reset_dropped(side, sock);
                *end = Some((party(side), CloseHow::Rst));
            }
            Failed::Other => self.undelivered_dropped(side, sock),
        }
    }

    /// Closes both sides as the middlebox's own close (`wait`: see
    /// [`Mapping::close_gracefully`]): a FIN each, or, if either went out
    /// as a reset, recorded as one.
    fn close_both(&mut self, wait: bool) {
        let clean = SIDES.map(|side| self.close_gracefully(side, wait));
        let how = if clean.iter().all(|&c| c) {
            CloseHow::Fin
        } else {
            CloseHow::Rst
        };
        self.ended = Some((Party::Middlebox, how));
    }

    // ---- the timer -----------------------------------------------------

    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.polling() && now >= self.next_poll {
            self.poll();
            self.next_poll = now + poll_interval(self.in_force(), self.expired());
        }
        if self.flush_due.is_some_and(|due| now >= due) {
            self.flush();
        }
        match self.expired_at {
            // (Not while a reset waits to be passed on: `settle` ends it.)
            None if self.resetting.is_some() => {}
            None => {
                if now >= self.deadline() {
                    if self.polling() {
                        // A last look: a probe may have come since the poll.
                        self.poll();
                    }
                    if now >= self.deadline() {
                        self.expire(now);
                    }
                }
            }
            Some(at) => {
                if now >= at + self.inner.limits().max_linger {
                    self.close_both(false);
                }
            }
        }
    }

    /// Looks at `TCP_INFO` on both sockets: data that reached a live
    /// mapping's socket unread, and probes (when packets count), refresh it
    /// and are reported.
    fn poll(&mut self) {
        let expired = self.expired();
        // Sides the middlebox does not read now (see `run`); the others'
        // bytes are read as they come, and reported then.
        let reading = self.resetting.is_none();
        let not_read = [
            !reading || !self.to_server.has_room(),
            !reading || !self.to_client.has_room(),
        ];
        for side in SIDES {
            let i = index(side);
            let peer = &mut self.peers[i];
            let Some(sock) = peer.sock.as_ref() else {
                continue;
            };
            let Some(current) = tcp_info::read(sock) else {
                continue;
            };
            let unread = if !expired && not_read[i] {
                tcp_info::unread(sock)
            } else {
                None
            };
            let probes = peer
                .seen
                .map_or(0, |seen| current.probes_since(&seen, peer.touched));
            // A window closed at either look: the segments between are window
            // probes or their answers (found in review: reported as keep-alive
            // probes, which the NAT lessons count).
            let by = if current.window_closed() || peer.seen.is_some_and(|s| s.window_closed()) {
                RefreshCause::WindowProbe
            } else {
                RefreshCause::Probe
            };
            peer.seen = Some(current);
            peer.touched = false;
            // Bytes in its socket that the middlebox has not read (it reads
            // no more from a side while its buffer toward the other is
            // full): they came through, and refresh as data does (found in
            // review: they counted as nothing, and were taken at the expiry
            // for late bytes, reset and all).
            if let Some(unread) = unread {
                self.credit_unread(side, unread);
                // Its FIN behind them: it came through now, not when read.
                let peer = &self.peers[i];
                if !peer.fin_seen && !peer.eof && current.fin_in(peer.read + unread) {
                    self.fin_came(side);
                }
            }
            if expired {
                // While the middlebox's own socket still has data on its way
                // to this side (a zero window), the segments it gets are the
                // answers to its kernel's window probes, not this side's
                // traffic (found in review: counted as the server's probes
                // and, under `aws_nlb`, answered with a reset to a server
                // that had sent nothing).
                let probes = if current.sending { 0 } else { probes };
                if probes > 0 && !self.peers[i].done() {
                    self.pending.dropped[i].probes += probes;
                    self.schedule_flush();
                    self.late(side, 0, false);
                }
                continue;
            }
            // Only what the middlebox's own traffic does not explain: the
            // data and FINs it read were credited when read, and the ACKs of
            // what it wrote came with it; crediting them again here, up to a
            // poll interval later, kept a mapping alive past its timeout
            // (found in review: expiry a fifth of the timeout late, and
            // `expired` understating the idle time).
            if probes > 0 && self.settings.probes_refresh {
                self.refreshed(side, by, 0, probes);
            }
        }
    }

    /// Expires the mapping as of `now` (earlier than the present when a
    /// late attribution finds its deadline passed: stamped then).
    fn expire(&mut self, now: Instant) {
        self.flush();
        let idle = now.saturating_duration_since(self.last_activity);
        let on_expiry = self.settings.on_expiry;
        let (_, transitory) = self.timer();
        self.announce();
        self.inner.emit_earlier(
            self.id,
            self.owner.session().cloned(),
            MiddleboxEvent::Expired {
                idle_ms: u64::try_from(idle.as_millis()).unwrap_or(u64::MAX),
                on_expiry,
                transitory,
            },
            Instant::now().saturating_duration_since(now),
        );
        self.expired_at = Some(now);
        // What was read but not yet delivered is forgotten with the mapping.
        self.discard_buffers();
        match on_expiry {
            OnExpiry::RstBoth => {
                self.reset_side(Side::Client);
                self.reset_side(Side::Server);
                self.ended = Some((Party::Middlebox, CloseHow::Rst));
            }
            OnExpiry::Fin => self.close_both(true),
            OnExpiry::Rst | OnExpiry::RstEither | OnExpiry::Silent => {
                // Lingers: the first to go when a new client needs a slot.
                self.lingering = Some(self.inner.linger(self.id, self.charged_ip));
                // What arrived before the expiry is not "late".
                for peer in &mut self.peers {
                    if let Some(sock) = &peer.sock {
                        peer.seen = tcp_info::read(sock);
                    }
                    peer.touched = false;
                }
                self.next_poll = now;
            }
        }
    }

    // ---- attribution and events ----------------------------------------

    /// Collects the client's first bytes until its request line is complete.
    fn sniff(&mut self, bytes: &[u8]) {
        let cap = self.inner.limits().first_line_bytes;
        let Some(seen) = self.sniff.as_mut() else {
            return;
        };
        let room = cap.saturating_sub(seen.len());
        seen.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if seen.contains(&b'\n') || seen.len() >= cap {
            let owner = self.inner.owner_in(seen);
            self.carries_events = is_events_stream(seen);
            self.sniff = None;
            if owner != self.owner {
                self.owner = owner;
                self.settings = self.inner.settings_for(&self.owner);
            }
            self.announce();
        }
    }

    /// `side`'s FIN has reached the middlebox (read, or seen at a look).
    fn fin_came(&mut self, side: Side) {
        let i = index(side);
        self.peers[i].fin_seen = true;
        self.peers[i].written_at_fin = Some(self.written_toward(side));
        self.first_close.get_or_insert((party(side), CloseHow::Fin));
        // A FIN is a packet through the middlebox too.
        self.last_activity = Instant::now();
    }

    /// Reports the bytes in `side`'s receive queue (`unread`) that were not
    /// reported yet: while live as `refreshed` data (which restarts the
    /// timer), after expiry as `dropped` (late, but not answered: the
    /// socket is being let go). Counted in `dropped_bytes` when read after
    /// expiry or when the mapping ends unread.
    fn credit_unread(&mut self, side: Side, unread: u64) {
        let i = index(side);
        let peer = &mut self.peers[i];
        let new = (peer.read + unread).saturating_sub(peer.arrived);
        if new == 0 {
            return;
        }
        peer.arrived += new;
        if self.expired() {
            let tally = &mut self.pending.dropped[i];
            tally.bytes += new;
            tally.count += 1;
            self.schedule_flush();
        } else {
            self.refreshed(side, RefreshCause::Data, new, 1);
        }
    }

    /// A last look at what reached `side`'s socket before the middlebox lets
    /// it go (a reset, a close, the end): found in review, bytes that came
    /// after the last look (up to a second before) or while a reset waited
    /// to be passed on were counted nowhere.
    fn last_look(&mut self, side: Side, sock: &TcpStream) {
        if let Some(unread) = tcp_info::unread(sock) {
            self.credit_unread(side, unread);
        }
    }

    /// Just attributed (the request line came): when the silence before it
    /// outlasted the owner's timeout, the deadline it passed. Until the line
    /// names its session a mapping runs the anonymous scope's timer; without
    /// this, a spare socket silent for 3 s under the default 3.5 s, then a
    /// request of a session whose timeout is 2.4 s, passed, while `opened`
    /// showed only the 2.4 s (found in a record-against-wire review). With
    /// it the mapping expires as of that deadline, as a middlebox with the
    /// settings the record names would have, and the request is late.
    fn passed_before_attribution(&self) -> Option<Instant> {
        if self.sniff.is_some() || self.expired() {
            return None;
        }
        let deadline = self.deadline();
        (Instant::now() >= deadline).then_some(deadline)
    }

    /// Reports `opened` (once), with the owner and settings decided now.
    fn announce(&mut self) {
        if self.announced {
            return;
        }
        self.announced = true;
        self.sniff = None;
        let event = MiddleboxEvent::Opened {
            client: self.client_addr.to_string(),
            upstream: self.upstream_local.map(|a| a.to_string()),
            conn: self.inner.conn_of(self.upstream_local),
            accepted_us: self.accepted_us,
            settings: self.settings.clone(),
            in_force_ms: self.settings.in_force_ms(),
            probes_visible: self.visible,
        };
        let session = self.owner.session().cloned();
        if session.is_none() {
            self.inner.charge_mapping(self.id, self.charged_ip);
        }
        self.inner.emit(self.id, session, event);
        self.next_poll = Instant::now() + poll_interval(self.in_force(), false);
        self.flush();
    }

    fn emit(&mut self, event: MiddleboxEvent) {
        self.announce();
        self.inner
            .emit(self.id, self.owner.session().cloned(), event);
    }

    /// `side`'s traffic refreshed the idle timer.
    fn refreshed(&mut self, side: Side, by: RefreshCause, bytes: u64, count: u32) {
        self.last_activity = Instant::now();
        if self.carries_events && side == Side::Server && by == RefreshCause::Data {
            return; // see `carries_events`
        }
        let cause = match by {
            RefreshCause::Data => 0,
            RefreshCause::Probe => 1,
            RefreshCause::WindowProbe => 2,
        };
        debug_assert_eq!(CAUSES[cause], by);
        let tally = &mut self.pending.refreshed[cause][index(side)];
        tally.bytes += bytes;
        tally.count += count;
        self.schedule_flush();
    }

    /// Flushes now, or at the end of the current [`FLUSH_EVERY`] window.
    /// While the request line is awaited nothing is flushed: the owner is
    /// not known yet (announcing flushes).
    fn schedule_flush(&mut self) {
        if self.sniff.is_some() {
            return;
        }
        let now = Instant::now();
        match self.last_flush {
            Some(at) if now < at + FLUSH_EVERY => {
                self.flush_due.get_or_insert(at + FLUSH_EVERY);
            }
            _ => self.flush(),
        }
    }

    /// Reports everything aggregated so far.
    fn flush(&mut self) {
        self.flush_due = None;
        let pending = std::mem::take(&mut self.pending);
        let mut events = Vec::new();
        for (by, tallies) in CAUSES.into_iter().zip(pending.refreshed) {
            for side in SIDES {
                let tally = tallies[index(side)];
                if !tally.is_empty() {
                    events.push(MiddleboxEvent::Refreshed {
                        side,
                        by,
                        bytes: tally.bytes,
                        count: tally.count,
                    });
                }
            }
        }
        for side in SIDES {
            let tally = pending.dropped[index(side)];
            if !tally.is_empty() {
                events.push(MiddleboxEvent::Dropped {
                    side,
                    bytes: tally.bytes,
                    count: tally.count,
                    probes: tally.probes,
                });
            }
        }
        if events.is_empty() {
            return;
        }
        self.last_flush = Some(Instant::now());
        for event in events {
            self.emit(event);
        }
    }

    /// Counts what is still buffered, read but never to be delivered, as
    /// dropped, and empties the buffers: so that `closed`'s totals account
    /// for every byte read (`client_bytes + server_bytes + dropped_bytes`
    /// is what `refreshed` and `dropped` reported read), at expiry, at stop
    /// and after a reset alike (review L8: at stop, up to a buffer per
    /// direction was discarded and counted nowhere).
    fn discard_buffers(&mut self) {
        for buf in [&mut self.to_server, &mut self.to_client] {
            self.dropped_bytes += buf.pending().len() as u64;
            buf.clear();
        }
    }

    /// Reports the end and lets the sockets go.
    fn finish(&mut self, by: Party, how: CloseHow) {
        self.flush();
        self.discard_buffers();
        // Reported as arrived, never read: gone with the sockets.
        for peer in &mut self.peers {
            self.dropped_bytes += peer.queued();
            peer.read = peer.arrived;
        }
        self.emit(MiddleboxEvent::Closed {
            by,
            how,
            after_expiry: self.expired(),
            client_bytes: self.client_bytes,
            server_bytes: self.server_bytes,
            dropped_bytes: self.dropped_bytes,
        });
    }
}

/// Whether a request line asks for the lab's event stream.
fn is_events_stream(first_bytes: &[u8]) -> bool {
    let line = first_bytes
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or_default();
    let mut words = line.split(|b| *b == b' ');
    let _method = words.next();
    words
        .next()
        .and_then(|target| target.split(|b| *b == b'?').next())
        .is_some_and(|path| path == b"/api/events")
}

async fn readable(sock: Option<&TcpStream>) -> std::io::Result<()> {
    match sock {
        Some(sock) => sock.readable().await,
        None => std::future::pending().await,
    }
}

async fn writable(sock: Option<&TcpStream>) -> std::io::Result<()> {
    match sock {
        Some(sock) => sock.writable().await,
        None => std::future::pending().await,
    }
}

/// Whether a draining side's connection is gone, and how: its error if it
/// has one, else, with its state `TCP_CLOSE` while bytes are unsent (our FIN
/// behind them cannot have been acknowledged, so no orderly close leads
/// there), a reset whose error was taken before (on loopback, where the
/// middlebox runs, only a reset ends a connection so unless a user timeout
/// is set, and none is).
fn gone(sock: &TcpStream) -> Option<Failed> {
    match sock.take_error() {
        Ok(Some(e)) => Some(Failed::of(&e)),
        _ => (tcp_info::closed(sock) == Some(true)).then_some(Failed::Reset),
    }
}

/// Resolves when a draining side stirs: something to read, or (after its
/// FIN, when there is nothing more to read) an error, its reset; never
/// without one.
async fn stirs(side: Option<(&TcpStream, bool)>) {
    match side {
        Some((sock, eof)) => {
            let interest = if eof {
                tokio::io::Interest::ERROR
            } else {
                tokio::io::Interest::READABLE | tokio::io::Interest::ERROR
            };
            let _ = sock.ready(interest).await;
        }
        None => std::future::pending().await,
    }
}

/// Resolves when `evict` is notified; never without one.
async fn evicted(evict: Option<&Arc<tokio::sync::Notify>>) {
    match evict {
        Some(evict) => evict.notified().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_a_twentieth_of_the_timeout_within_bounds() {
        assert_eq!(
            poll_interval(Duration::from_millis(3500), false),
            Duration::from_millis(175)
        );
        assert_eq!(poll_interval(Duration::from_millis(20), false), POLL_MIN);
        assert_eq!(poll_interval(Duration::from_secs(350), false), POLL_MAX);
        // Forgotten: no faster than POLL_FORGOTTEN_MIN, never slower than live.
        assert_eq!(
            poll_interval(Duration::from_millis(20), true),
            POLL_FORGOTTEN_MIN
        );
        assert_eq!(
            poll_interval(Duration::from_millis(3500), true),
            POLL_FORGOTTEN_MIN
        );
        assert_eq!(
            poll_interval(Duration::from_secs(10), true),
            Duration::from_millis(500)
        );
        assert_eq!(poll_interval(Duration::from_secs(350), true), POLL_MAX);
    }

    #[test]
    fn buffers_are_bounded_and_compact() {
        let mut buf = Buf::new(4);
        assert!(buf.is_empty() && buf.has_room());
        buf.room()[..4].copy_from_slice(b"abcd");
        buf.filled(4);
        assert!(!buf.has_room(), "full: the side is not read");
        assert_eq!(buf.pending(), b"abcd");
        buf.consume(3);
        assert!(buf.has_room());
        assert_eq!(buf.room().len(), 3, "compacted");
        assert_eq!(buf.pending(), b"d");
        buf.filled(10);
        assert_eq!(buf.pending().len(), 4, "never past its capacity");
        buf.consume(4);
        assert!(buf.is_empty());
    }
}
