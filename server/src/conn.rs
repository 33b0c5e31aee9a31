//! Tracking one TCP connection and the requests it carries.
//!
//! - [`Conn`]: what the lab knows about one connection while it lives.
//! - [`TrackedStream`]: the socket wrapper hyper reads and writes through. It
//!   counts bytes, notices EOF and resets, and reports the close from `Drop`:
//!   a WebSocket upgrade moves the socket out of hyper's connection future, so
//!   only the socket itself knows when the connection is really gone.
//! - [`RequestGuard`] and [`TrackedBody`]: report when a response has been
//!   handed over completely, or was dropped half-way (the client went away).
//!
//! A connection reads its owner's policy live (a `watch` receiver of the
//! [`ScopeView`]): the first request that names a session moves it from the
//! anonymous scope to that session, and every later policy change applies to
//! it at once (the [`watchdog`](crate::watchdog) re-arms its idle timer, the
//! next response gets the new `Keep-Alive` header, TCP keep-alive is set again
//! at the next read).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Response, StatusCode, Uri};
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Frame, SizeHint};
use protocol::{
    CloseMode, CloseReason, ConnId, FramingRule, Initiator, RaceClose, RequestId, RequestOutcome,
    ServerEvent, ServerPolicy, SessionId, UpgradeRole, headers,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::Lab;
use crate::peers::{PeerConnection, PeerRequest};
use crate::sessions::{Owner, Permit, ScopeView};
use crate::tracker::Counters;

/// Bytes peeked at a close to name a request that raced it.
const RACE_PEEK: usize = 1024;

/// `Conn::planned_close` values: the close a response's `Connection: close`
/// announced because of the policy (or of `/api/close?mode=header`).
const PLANNED_NONE: u8 = 0;
const PLANNED_KEEP_ALIVE_OFF: u8 = 1;
const PLANNED_MAX_REQUESTS: u8 = 2;
/// The client asked to close (`Connection: close`, HTTP/1.0).
const PLANNED_CLIENT: u8 = 3;
/// The request's body was left unread.
const PLANNED_BODY_UNREAD: u8 = 4;
/// `/api/close?mode=header` answered with `Connection: close`.
const PLANNED_SERVER_CLOSE: u8 = 5;
/// HTTP's framing rules: [`FramingRule::Http10Unsized`].
const PLANNED_HTTP10_UNSIZED: u8 = 6;

/// What ends nearly every request's head (a client's CRLFs).
const HEAD_END: &[u8] = b"\r\n\r\n";

/// Where [`Conn::note_read`] stands in a head, read as hyper (httparse)
/// reads one: lines end with `\r\n` or a bare `\n`, and an empty line ends
/// the head. In a line with something on it...
const IN_LINE: u8 = 0;
/// ...after its `\r`...
const CR_IN_LINE: u8 = 1;
/// ...at the start of a line after one with something on it...
const LINE_START: u8 = 2;
/// ...after a `\r` there (an `\n` now ends the head)...
const CR_AT_START: u8 = 3;
/// ...or between two heads (at the start, after a head's end, after a
/// body), where empty lines are not a head's end: hyper skips them before a
/// request line, as RFC 9112 §2.2 allows.
const BETWEEN_HEADS: u8 = 4;

/// The most of a request body the server reads and throws away, when an
/// endpoint answered without reading it, to keep the connection for the
/// next request. A longer body (or one that ends later than the body guard
/// allows) ends the connection instead, announced with `Connection: close`.
/// The figure is Go's `net/http` (`maxPostHandlerReadBytes`, 256 KiB), which
/// does the same; hyper alone would close whenever the rest of the body has
/// not arrived yet, after a response that promised keep-alive.
pub const DRAIN_LIMIT: u64 = 256 * 1024;

/// `Conn::next_drop` values.
const DROP_NONE: u8 = 0;
const DROP_FIN: u8 = 1;
const DROP_RST: u8 = 2;

/// Finished HTTP/2 requests whose stream id is remembered (a reset may come
/// after the request ended: the server's own, written once its handler gave up).
const H2_FINISHED_KEPT: usize = 32;

/// Streams whose `END_STREAM` went out before their request was waiting for
/// it, remembered (a response without a body: hyper sends its head with
/// `END_STREAM` and drops the body after).
const H2_ENDED_KEPT: usize = 16;

// Header names as constants: inserting by `&str` checks the name against
// every standard header at run time, measurably on every response (bench).
const X_CONN_ID: HeaderName = HeaderName::from_static(headers::CONN_ID);
const X_REQUEST_SEQ: HeaderName = HeaderName::from_static(headers::REQUEST_SEQ);
const X_REQUEST_ID: HeaderName = HeaderName::from_static(headers::REQUEST_ID);
const TIMING_ALLOW_ORIGIN: HeaderName = HeaderName::from_static("timing-allow-origin");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Whether a client charged to `ip` is on the lab's own machine: loopback
/// only. Not the lab's own LAN address (the join link's), though a browser
/// on the lab's machine may use it: over plain HTTP to a LAN address a
/// browser sends neither `Origin` nor `Sec-Fetch-Site` for an `<img>`, so a
/// page of another site open in that browser could act in the anonymous
/// scope unseen (the hostile-room review of December 5, 2026). A request
/// is the lab machine's own only if its name is a loopback one as well
/// ([`loopback_authority`]). A page opened at the join link gets its own
/// session, as every participant's does.
pub fn labs_own_machine(ip: std::net::IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Whether a request addressed to `authority` (its `Host`, or an absolute
/// target's or HTTP/2's `:authority`) names the lab by a loopback name or
/// address: `localhost`, a name under `.localhost` (one given as
/// `--host-name`: the Host check lets no other through), an address in 127/8 or
/// `[::1]`; or names none (no `Host`: not a browser's). A browser sends
/// `Sec-Fetch-Site` by the URL's host, not by where it leads: to these it
/// does (potentially trustworthy origins), and `listener::Handler::foreign`
/// refuses another site's; to another name of the lab (`--host-name`, the
/// machine's own host name), even one that leads to 127.0.0.1, it sends
/// neither that nor `Origin` for an `<img>` (found in review, Chromium 148).
/// So over loopback too, only these are the lab machine's own.
pub fn loopback_authority(authority: Option<&[u8]>) -> bool {
    let Some(authority) = authority else {
        return true;
    };
    // The host, without the port; bytes, no copy (every request without a
    // session asks: bench figure 1's do).
    let host = match authority.strip_prefix(b"[") {
        Some(rest) => match rest.iter().position(|&b| b == b']') {
            Some(end) => rest.get(..end).unwrap_or_default(),
            None => return false,
        },
        None => authority.split(|&b| b == b':').next().unwrap_or_default(),
    };
    // The name a page on the lab's machine is opened at (`cargo xtask
    // run`'s link), compared at once: parsing it as an address is about 300
    // instructions a request (bench figure 1).
    if host == b"127.0.0.1" {
        return true;
    }
    const LOCALHOST: &[u8] = b"localhost";
    let under = host.len() > LOCALHOST.len()
        && host
            .get(host.len() - LOCALHOST.len() - 1..)
            .is_some_and(|end| end.eq_ignore_ascii_case(b".localhost"));
    if host.eq_ignore_ascii_case(LOCALHOST) || under {
        return true;
    }
    std::str::from_utf8(host)
        .ok()
        .and_then(|h| h.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.to_canonical().is_loopback())
}

/// One open TCP connection as the lab tracks it.
#[derive(Debug)]
pub struct Conn {
    /// Its id, also sent as `X-Conn-Id`.
    id: ConnId,
    /// The client's address.
    peer: std::net::SocketAddr,
    /// The address its per-address caps charge: the peer's, or for a
    /// connection the lab made to itself for a client (through its
    /// middlebox, an agent's; from loopback), that client's
    /// (`peers::Peers::charged_ip`).
    charged: std::net::IpAddr,
    /// Through what the lab made this connection to itself for a client, if
    /// it did (read at the accept: `peers::Peers::accepted`).
    via: Option<crate::peers::Via>,
    /// Its charged address's requests in flight, counted there without the
    /// table of addresses (`peers::Peers::enter_on`; bench figure 1). `None`
    /// for a connection opened without its address counted (tests): its
    /// requests count through the table.
    peer_in_flight: Option<Arc<crate::peers::InFlight>>,
    /// The lab's address the client connected to.
    local: std::net::SocketAddr,
    /// Where events go.
    lab: Lab,
    /// Bytes each way, shared with the tracker's table.
    counters: Arc<Counters>,
    /// Requests started so far; the next one's `seq` is this plus one.
    /// Written only by [`Conn::begin_request`], in the connection's task.
    requests: AtomicU32,
    /// Requests in flight on it (0 or 1 for HTTP/1.1). The idle timer runs
    /// only while this is 0.
    in_flight: AtomicU32,
    /// `bytes_in` when the last request head was read or the last response
    /// finished. More bytes than this while nothing is in flight means the
    /// next request head has started to arrive; none means idle.
    bytes_in_mark: AtomicU64,
    /// Server clock when the connection last became idle (the mark was set).
    idle_since_us: AtomicU64,
    /// Server clock when the first byte after the mark arrived (a head has
    /// started), for the header-read guard.
    head_since_us: AtomicU64,
    /// HTTP/1.1, a client that pipelines: where in `bytes_in` (over TLS, in
    /// `plain_in`) a head ended inside a read that also brought the next
    /// head's first bytes
    /// (the last such read's last head end; 0: none). Bytes past it are the
    /// next head arriving, not the requests' before it
    /// ([`Conn::mark_request_bytes`]).
    head_end_in: AtomicU64,
    /// The heads that ended in such reads and have not begun as requests
    /// yet: the requests whose bytes end at `head_end_in`. The one after
    /// them is the head that began there.
    heads_to_end: AtomicU32,
    /// Where the last read looked at for heads left off ([`IN_LINE`] to
    /// [`BETWEEN_HEADS`]): a head's end may be split across reads.
    head_end_begun: AtomicU8,
    /// HTTP/1.1 over TLS: its `bytes_in` are TLS records, which say nothing
    /// of where a head ends, so the head ends of reads that bring the next
    /// head's first bytes are found in the plaintext hyper reads above TLS
    /// ([`Conn::note_plain_read`]) and `head_end_in` counts in `plain_in`.
    over_tls: AtomicBool,
    /// HTTP/1.1 over TLS: the plaintext bytes hyper has read so far.
    plain_in: AtomicU64,
    /// The watchdog's task, woken whenever the idle/busy state changes or the
    /// connection moves to another owner: the watchdog re-evaluates then. Not
    /// woken for a change made in [`Conn::watched_in`]'s task (see
    /// [`Conn::changed`]). A waker slot rather than a `Notify`: the watchdog
    /// registers at every poll, and a slot takes no lock (bench figure 1).
    activity: AtomicWaker,
    /// Counts those changes, so a watchdog polled right after the
    /// connection's I/O in the same task sees them without a wake.
    epoch: AtomicU64,
    /// The task that polls this connection's watchdog after its I/O in every
    /// poll: changes made there need no wake (a wake would poll the whole
    /// connection a second time for every request, bench figure 1). Unset:
    /// every change wakes the watchdog.
    watched_in: OnceLock<tokio::task::Id>,
    /// The peer's FIN was read (a zero-byte read).
    saw_eof: AtomicBool,
    /// The connection became a WebSocket; hyper's future no longer owns it.
    /// Set when the 101 response is produced, before hyper's future ends, so
    /// that its `Ok(())` is not mistaken for the peer closing.
    upgraded: AtomicBool,
    /// The session of its first request that named one.
    session: OnceLock<SessionId>,
    /// Its owner's live policy: the anonymous scope's until a request names
    /// a session.
    view: Mutex<OwnerView>,
    /// Counts the times `view` was replaced (a change of owner), so that the
    /// watchdog fetches it again only then, not at every request.
    view_generation: AtomicU32,
    /// `view`'s policy as last read, read without a lock while no view
    /// changed and the owner did not: every request reads the policy twice
    /// (bench figure 1).
    policy_copy: crate::sessions::copy::PolicyCopy,
    /// TCP keep-alive must be (re)applied at the next read: the connection
    /// changed owner or its owner's policy changed.
    keepalive_dirty: AtomicBool,
    /// Set by `/api/fast?next=drop_fin|drop_rst`: the next request on this
    /// connection is read and then dropped unanswered (the keep-alive race,
    /// on purpose).
    next_drop: AtomicU8,
    /// A response said `Connection: close` (`PLANNED_*`) because of the
    /// policy, the client's request or a body left unread: the reason of the
    /// close if the connection then ends as announced, once its response is
    /// out. Not recorded as the reason
    /// straight away: a reset or a stalled write while that response is
    /// still being written is what really ends it, and the record says so.
    planned_close: AtomicU8,
    /// The watchdog closed it for being idle: at the close, look for request
    /// bytes that raced the close.
    idle_close: AtomicBool,
    /// Server clock + 1 since when a write has been blocked (the client's
    /// receive window is full); 0 while writes go through.
    write_blocked_since: AtomicU64,
    /// How long (µs) writes were blocked in all, the stall under way aside,
    /// since the connection last had no request in flight: over HTTP/1.1
    /// the response being written, over HTTP/2 the streams under way, whose
    /// spent flow-control windows count too. Bounded by
    /// [`Config::write_stall_total`](crate::Config): a client that reads
    /// just enough, just before each stall would trip, still has to read the
    /// response within it (found in the hostile-room review of December 5,
    /// 2026: a few bytes every 9 s held a response for ever).
    write_blocked_total_us: AtomicU64,
    /// HTTP/1.1: server clock + 1 since when a handler has been waiting for
    /// request body bytes that have not come; 0 otherwise. (Over HTTP/2,
    /// where bodies are read side by side, each waiting body's stamp is in
    /// `H2Streams::body_waits`.)
    body_wait_since: AtomicU64,
    /// The last request's body has not been read to its end yet (bytes after
    /// it are its body, not a new head).
    body_unfinished: AtomicBool,
    /// HTTP/1.1: the body of the request being answered, which its endpoint
    /// dropped unread (`GuardedBody`'s drop): read to its end before the
    /// response (up to [`DRAIN_LIMIT`]) so that the connection can carry
    /// the next request. Boxed: empty on nearly every connection.
    unread_body: Mutex<Option<Box<hyper::body::Incoming>>>,
    /// Close abortively (`SO_LINGER` 0, so the peer gets a RST).
    reset_on_close: AtomicBool,
    /// It speaks HTTP/2 (a TLS port, ALPN `h2`): many requests at once, no
    /// HTTP/1.1 keep-alive headers, and bytes between requests are frames
    /// (`WINDOW_UPDATE`, `PING`, …), not a head arriving.
    http2: AtomicBool,
    /// HTTP/2 only: which stream carries which request (`tls::frames`).
    h2: Mutex<Option<Box<H2Streams>>>,
    /// HTTP/1.1: the request whose response hyper has been handed whole but
    /// may still hold bytes of (the socket took less than it was given). It
    /// ends at the stream's next flush, which hyper makes only once its own
    /// buffer is empty ([`TrackedStream::poll_flush`]); until then the
    /// connection is not idle (found in review: a large response to a
    /// reader that stopped was recorded completed, and the idle timer then
    /// cut its tail).
    h1_writing: Mutex<Option<RequestGuard>>,
    /// [`Conn::h1_writing`] holds a request (read without its lock at every
    /// flush).
    h1_parked: AtomicBool,
    /// The first cause of the close that anybody recorded. Later ones are
    /// consequences of the first (a shutdown causes errors, for instance).
    /// Boxed: most connections are held or idle with none, and the largest
    /// reason (a keep-alive race's method and target) would take its 56
    /// bytes in every one of them (bench figure 2).
    reason: Mutex<Option<Box<CloseReason>>>,
}

/// An HTTP/2 connection's streams as far as the lab needs them: the stream
/// whose head was handed to hyper last (hyper calls the service for it
/// before it is handed another: `tls::frames`), and the lab's request on each
/// stream in flight and on the last [`H2_FINISHED_KEPT`] finished ones.
#[derive(Debug, Default)]
struct H2Streams {
    /// The last stream the client opened whose head hyper has been handed.
    opened: u32,
    /// A request was given `opened` already.
    taken: bool,
    /// (stream, request, finished), oldest first.
    requests: Vec<(u32, RequestId, bool)>,
    /// Since when each body a handler waits for has been waited for: one
    /// stamp per body, so that one stream's body ending does not lift the
    /// guard from another's (found in review). The guard runs from the
    /// earliest.
    body_waits: Vec<protocol::Micros>,
    /// Requests whose response body hyper has been handed whole, waiting for
    /// its `END_STREAM` to go out (`tls::frames`): h2 holds back what the
    /// client's flow-control window does not take yet, so the response is
    /// on the wire only then (found in review: a 1 MiB answer recorded
    /// complete at once, and the connection then closed as idle mid-way).
    ending: Vec<(u32, RequestGuard)>,
    /// Streams whose `END_STREAM` went out before their request was in
    /// `ending`, the last [`H2_ENDED_KEPT`].
    ended: Vec<u32>,
    /// Since when a response under way has had no flow-control window left
    /// (the client stopped reading: `tls::frames`). Kept here, not in the
    /// connection's atomics, so that HTTP/1.1 connections do not pay for it
    /// (bench figure 2).
    flow_blocked_since: Option<protocol::Micros>,
    /// Since when a frame header or a request's head has been part-way in
    /// (`tls::frames`).
    head_since: Option<protocol::Micros>,
    /// The client said `GOAWAY` (`tls::frames`): it ended the connection,
    /// also when h2 then ends with an error because its code was not
    /// `NO_ERROR`.
    client_goaway: bool,
    /// Told when the policy's `max_requests` is reached: the TLS port's
    /// serve loop waits on it to say `GOAWAY` (the way an HTTP/2 server ends
    /// a connection, as nginx's `keepalive_requests` does over HTTP/2).
    goaway_due: Arc<tokio::sync::Notify>,
    /// The grace after `max_requests`' `GOAWAY` is over: new streams are
    /// refused (`REFUSED_STREAM`), as after the second `GOAWAY` the client
    /// never asked for by answering h2's `PING` (see
    /// [`Conn::h2_refuse_new_streams`]).
    refusing: bool,
}

/// What the watchdog sees of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// A request is in flight, or it is a WebSocket now.
    Busy,
    /// Waiting for the next request since this server time.
    Idle(protocol::Micros),
    /// Bytes after the last request arrived at this server time: a new head,
    /// or (`body: true`) the rest of the last request's body.
    Arriving {
        /// Since when.
        since: protocol::Micros,
        /// They belong to the last request's unfinished body.
        body: bool,
    },
}

/// Stalls the watchdog bounds whatever the activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stalls {
    /// A write blocked since then (the client stopped reading).
    pub write_blocked_since: Option<protocol::Micros>,
    /// How long (µs) writes were blocked before, in the stalls of the
    /// response under way (HTTP/2: of the streams under way) that ended.
    pub write_blocked_before_us: u64,
    /// A handler has waited for request body bytes since then.
    pub body_wait_since: Option<protocol::Micros>,
    /// HTTP/2: a frame header or a new stream's head has been part-way in
    /// since then, also while other streams are in flight (found in review:
    /// a busy connection's slow head was bounded by nothing).
    pub head_since: Option<protocol::Micros>,
}

fn stamp(at: &AtomicU64) -> Option<protocol::Micros> {
    at.load(Ordering::Relaxed).checked_sub(1)
}

/// Clears `flag` and says whether it was set: read first, so that the
/// usual case (not set) costs a load, not a locked write at each of the
/// socket's reads and flushes (bench figure 1). A set that comes after the
/// load is taken at the next call, as one after the swap would be.
fn take_flag(flag: &AtomicBool) -> bool {
    flag.load(Ordering::Relaxed) && flag.swap(false, Ordering::Relaxed)
}

fn set_stamp(at: &AtomicU64, now: protocol::Micros) -> bool {
    at.compare_exchange(
        0,
        now.saturating_add(1),
        Ordering::Relaxed,
        Ordering::Relaxed,
    )
    .is_ok()
}

/// A connection's owner's view.
#[derive(Debug)]
struct OwnerView {
    /// The owner's live view (a `watch` receiver).
    rx: watch::Receiver<ScopeView>,
}

impl OwnerView {
    /// A view whose current value counts as seen: the watchdog's receiver,
    /// cloned from it, waits for the next change.
    fn new(mut rx: watch::Receiver<ScopeView>) -> OwnerView {
        rx.mark_unchanged();
        OwnerView { rx }
    }
}

impl Conn {
    /// Registers a freshly accepted connection and announces it. Until a
    /// request names a session it follows the anonymous scope's policy.
    /// `peer_in_flight`: its charged address's count of requests in flight
    /// (`peers::PeerConnection::in_flight`).
    pub fn open(
        lab: &Lab,
        peer: std::net::SocketAddr,
        (charged, via): (std::net::IpAddr, Option<crate::peers::Via>),
        local: std::net::SocketAddr,
        peer_in_flight: Option<Arc<crate::peers::InFlight>>,
    ) -> Arc<Conn> {
        let counters = Arc::new(Counters::default());
        let id = lab.tracker().next_conn_id();
        let view = lab.sessions().watch(&Owner::Anonymous).unwrap_or_else(|| {
            watch::Sender::new(ScopeView {
                policy: lab.config().policy.clone(),
                ended: false,
            })
            .subscribe()
        });
        lab.tracker()
            .open(id, (peer, charged), local, counters.clone());
        Arc::new(Conn {
            id,
            peer,
            charged,
            via,
            local,
            lab: lab.clone(),
            counters,
            requests: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            bytes_in_mark: AtomicU64::new(0),
            idle_since_us: AtomicU64::new(lab.tracker().clock().now_us()),
            head_since_us: AtomicU64::new(0),
            head_end_in: AtomicU64::new(0),
            heads_to_end: AtomicU32::new(0),
            head_end_begun: AtomicU8::new(BETWEEN_HEADS),
            over_tls: AtomicBool::new(false),
            plain_in: AtomicU64::new(0),
            activity: AtomicWaker::new(),
            epoch: AtomicU64::new(0),
            watched_in: OnceLock::new(),
            peer_in_flight,
            saw_eof: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
            session: OnceLock::new(),
            view: Mutex::new(OwnerView::new(view)),
            view_generation: AtomicU32::new(0),
            policy_copy: crate::sessions::copy::PolicyCopy::default(),
            keepalive_dirty: AtomicBool::new(true),
            next_drop: AtomicU8::new(DROP_NONE),
            planned_close: AtomicU8::new(PLANNED_NONE),
            idle_close: AtomicBool::new(false),
            write_blocked_since: AtomicU64::new(0),
            write_blocked_total_us: AtomicU64::new(0),
            body_wait_since: AtomicU64::new(0),
            body_unfinished: AtomicBool::new(false),
            unread_body: Mutex::new(None),
            reset_on_close: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            h2: Mutex::new(None),
            h1_writing: Mutex::new(None),
            h1_parked: AtomicBool::new(false),
            reason: Mutex::new(None),
        })
    }

    /// The client's address.
    pub fn peer(&self) -> std::net::SocketAddr {
        self.peer
    }

    /// The address its per-address caps charge (see `charged`).
    pub fn charged_ip(&self) -> std::net::IpAddr {
        self.charged
    }

    /// Counts a request against its charged address's cap
    /// (`peers::Peers::enter`), or refuses.
    pub fn enter_peer(&self) -> Result<PeerRequest, crate::error::ApiError> {
        match &self.peer_in_flight {
            Some(in_flight) => self.lab.peers().enter_on(in_flight),
            None => self.lab.peers().enter(self.charged),
        }
    }

    /// Whether its client is on the lab's own machine: a loopback address.
    /// Through the lab's middlebox or an agent, the client it serves, whose
    /// address is all the lab knows. See [`labs_own_machine`]; a request is
    /// the machine's own only if it also names the lab by a loopback name
    /// ([`loopback_authority`]).
    pub fn from_labs_machine(&self) -> bool {
        labs_own_machine(self.charged)
    }

    /// Through what the lab made this connection for a client (its
    /// middlebox, an agent), if it did: as it was at the accept.
    pub fn via(&self) -> Option<crate::peers::Via> {
        self.via
    }

    /// The lab's address the client connected to.
    pub fn local(&self) -> std::net::SocketAddr {
        self.local
    }

    /// The session this connection belongs to, once a request named one.
    pub fn session(&self) -> Option<&SessionId> {
        self.session.get()
    }

    /// Its owner: the session it belongs to, or the anonymous scope.
    pub fn owner(&self) -> Owner {
        Owner::of(self.session.get().cloned())
    }

    /// Makes the close abortive: the peer will get a TCP reset.
    pub fn reset_on_close(&self) {
        self.reset_on_close.store(true, Ordering::Relaxed);
    }

    /// Its id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The clock its events are stamped with.
    pub fn clock(&self) -> crate::Clock {
        self.lab.tracker().clock()
    }

    /// How long its writes may be blocked in all during one response
    /// ([`Config::write_stall_total`](crate::Config)).
    pub fn write_stall_total(&self) -> Duration {
        self.lab.config().write_stall_total
    }

    /// Bytes read from its socket so far.
    pub fn bytes_read(&self) -> u64 {
        self.counters.bytes_in()
    }

    /// The policy in force for it now (its owner's, live).
    pub fn policy(&self) -> ServerPolicy {
        // Read before the copy and before the channel, so that a change
        // after them is seen at the next call.
        let changed = crate::sessions::copy::views_changed();
        let generation = self.view_generation.load(Ordering::Acquire);
        if let Some(policy) = self.policy_copy.read(changed, generation) {
            return policy;
        }
        // Its view's lock orders the copy's writers. The channel's lock,
        // shared by every connection of the owner, is taken only here.
        let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        let policy = view.rx.borrow().policy.clone();
        self.policy_copy.write(&policy, changed, generation);
        policy
    }

    /// A receiver of its owner's view, for the watchdog.
    pub fn view(&self) -> watch::Receiver<ScopeView> {
        self.view
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rx
            .clone()
    }

    /// How many times its owner's view was replaced: read it before
    /// [`Conn::view`], and fetch the view again when it moves.
    pub fn view_generation(&self) -> u32 {
        self.view_generation.load(Ordering::Acquire)
    }

    /// Ready once [`Conn::epoch`] has moved on from `seen` (a change of
    /// activity or owner); otherwise registers `cx`'s task to be woken by the
    /// next change made outside [`Conn::watched_in`]'s task.
    pub fn poll_changed(&self, seen: u64, cx: &mut Context<'_>) -> Poll<()> {
        if self.epoch() != seen {
            return Poll::Ready(());
        }
        self.activity.register(cx.waker());
        // Read again: a change between the first read and the registration
        // woke no one.
        if self.epoch() == seen {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    /// How many changes of activity or owner there have been.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Declares that the current task polls this connection's watchdog after
    /// its I/O in every poll (again, if it polled the watchdog first and the
    /// I/O changed [`Conn::epoch`]): the watchdog then sees changes made in
    /// this task without being woken.
    pub fn watch_in_this_task(&self) {
        if let Some(task) = tokio::task::try_id() {
            let _ = self.watched_in.set(task);
        }
    }

    /// Something the watchdog depends on changed: count it, and wake the
    /// watchdog unless the change was made in the task that polls it next.
    fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        match (self.watched_in.get(), tokio::task::try_id()) {
            (Some(watched), Some(current)) if *watched == current => {}
            _ => self.activity.wake(),
        }
    }

    /// The time scale of the lab's middlebox, when this connection came
    /// through it (its owner's middlebox settings).
    pub fn middlebox_scale(&self) -> Option<u32> {
        (self.via == Some(crate::peers::Via::Middlebox))
            .then(|| crate::middlebox::lab::effective(&self.lab, &self.owner()).scale)
    }

    /// The owner's policy changed: TCP keep-alive is set again at the next
    /// read or flush.
    pub fn policy_changed(&self) {
        self.keepalive_dirty.store(true, Ordering::Relaxed);
    }

    /// Idle, busy, or a head arriving (see [`Activity`]).
    pub fn activity(&self) -> Activity {
        if self.upgraded.load(Ordering::Relaxed) || self.in_flight.load(Ordering::Acquire) > 0 {
            return Activity::Busy;
        }
        if self.http2.load(Ordering::Relaxed) {
            // A head part-way in is bounded like one over HTTP/1.1 (hyper's
            // h2 bounds its frames' count, not its time: found in review);
            // other frames between streams are not a head arriving.
            let head_since = self
                .h2
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .and_then(|h2| h2.head_since);
            return match head_since {
                Some(since) => Activity::Arriving { since, body: false },
                None => Activity::Idle(self.idle_since_us.load(Ordering::Relaxed)),
            };
        }
        let read = self.counters.bytes_in();
        let mark = self.bytes_in_mark.load(Ordering::Acquire);
        if read > mark {
            Activity::Arriving {
                since: self.head_since_us.load(Ordering::Relaxed),
                body: self.body_unfinished.load(Ordering::Relaxed),
            }
        } else {
            Activity::Idle(self.idle_since_us.load(Ordering::Relaxed))
        }
    }

    /// Writes blocked or a body awaited, with since when.
    pub fn stalls(&self) -> Stalls {
        let socket = stamp(&self.write_blocked_since);
        // Read only while blocked: the watchdog reads the stalls at every
        // request's start and end (bench figure 1).
        let before = |blocked: Option<protocol::Micros>| {
            blocked.map_or(0, |_| self.write_blocked_total_us.load(Ordering::Relaxed))
        };
        if !self.is_http2() {
            return Stalls {
                write_blocked_since: socket,
                write_blocked_before_us: before(socket),
                body_wait_since: stamp(&self.body_wait_since),
                head_since: None,
            };
        }
        let h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        let h2 = h2.as_ref();
        // A blocked socket, or a spent flow-control window.
        let flow = h2.and_then(|h2| h2.flow_blocked_since);
        let blocked = match (socket, flow) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Stalls {
            write_blocked_since: blocked,
            write_blocked_before_us: before(blocked),
            body_wait_since: h2.and_then(|h2| h2.body_waits.iter().min().copied()),
            head_since: h2.and_then(|h2| h2.head_since),
        }
    }

    /// A handler polled a request body and no bytes were there. `mine` is
    /// that body's own stamp (server clock + 1, 0 if it was not waited for).
    fn body_waiting(&self, mine: &mut u64) {
        if *mine != 0 {
            return; // the guard runs from the first wait
        }
        let now = self.lab.tracker().clock().now_us();
        *mine = now.saturating_add(1);
        if self.is_http2() {
            let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
            h2.get_or_insert_with(Box::default).body_waits.push(now);
        } else {
            self.body_wait_since.store(*mine, Ordering::Relaxed);
        }
        self.changed();
    }

    /// The body whose stamp is `mine` is no longer waited for (it ended, or
    /// nobody reads it any more).
    fn body_wait_over(&self, mine: &mut u64) {
        let Some(since) = std::mem::take(mine).checked_sub(1) else {
            return;
        };
        if self.is_http2() {
            let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(waits) = h2.as_mut().map(|h2| &mut h2.body_waits)
                && let Some(i) = waits.iter().position(|&w| w == since)
            {
                waits.swap_remove(i);
            }
        } else {
            self.body_wait_since.store(0, Ordering::Relaxed);
        }
    }

    /// Body bytes came (or the body ended, `done`) for the body whose stamp
    /// is `mine`.
    fn body_progress(&self, done: bool, mine: &mut u64) {
        // Fix (found by `tests/guards.rs`): the guard runs from when the
        // handler first waited until the body is whole, as
        // `Config::header_read_timeout` says ("must arrive within this long
        // once its first byte has"). Restarting it at every chunk let a body
        // trickled a byte at a time hold a handler and its permits forever.
        if done {
            self.body_wait_over(mine);
            self.body_unfinished.store(false, Ordering::Relaxed);
        }
    }

    /// The watchdog is closing it for being idle (or its session ended):
    /// at the close, the socket is checked for a request that raced it.
    pub fn closing_idle(&self, reason: CloseReason) {
        self.idle_close.store(true, Ordering::Relaxed);
        self.set_reason(reason);
    }

    /// `next=drop_fin|drop_rst`: drop the next request on this connection.
    pub fn drop_next(&self, close: RaceClose) {
        let value = match close {
            RaceClose::Fin => DROP_FIN,
            RaceClose::Rst => DROP_RST,
        };
        self.next_drop.store(value, Ordering::Relaxed);
    }

    /// Takes the mark set by [`Conn::drop_next`], if any.
    pub fn take_drop(&self) -> Option<RaceClose> {
        // Read first: a swap is a locked write at every request, and the
        // mark is almost never set (bench figure 1).
        if self.next_drop.load(Ordering::Relaxed) == DROP_NONE {
            return None;
        }
        match self.next_drop.swap(DROP_NONE, Ordering::Relaxed) {
            DROP_FIN => Some(RaceClose::Fin),
            DROP_RST => Some(RaceClose::Rst),
            _ => None,
        }
    }

    /// `/api/close` closes the connection in `mode`, now: its answer is
    /// going out (`header`: with `Connection: close`, recorded once hyper
    /// ends the connection as announced, as the policy's closes are), or is
    /// dropped on purpose (`fin`, `rst`), or its body is being cut
    /// (`mid_body`). Recorded when it takes effect, not when the handler
    /// returns (found in review: the handler's early record hid a client's
    /// reset, or the body guard's close, while an upload it left unread was
    /// read first; and a HEAD's `mid_body`, whose body is never sent, left
    /// it on a connection that went on).
    pub fn server_closes(&self, mode: CloseMode) {
        match mode {
            CloseMode::Header => self
                .planned_close
                .store(PLANNED_SERVER_CLOSE, Ordering::Relaxed),
            CloseMode::Rst => {
                self.set_reason(CloseReason::ServerClose { mode });
                self.reset_on_close();
            }
            CloseMode::Fin | CloseMode::MidBody => {
                self.set_reason(CloseReason::ServerClose { mode });
            }
        }
    }

    /// Records why the connection is ending, unless a cause is known already.
    pub fn set_reason(&self, reason: CloseReason) {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert_with(|| Box::new(reason));
    }

    /// A guard of the watchdog cut the connection for `reason` (or, over
    /// HTTP/2 after `max_requests`' `GOAWAY`, the idle timer: the client
    /// never answered the `PING`, so hyper never closed). Over HTTP/2, the
    /// `max_requests` taken when the last stream ended after the server's
    /// `GOAWAY` ([`Conn::h2_nothing_in_flight`]) gives way: the guard or the
    /// timer, not the `GOAWAY`, ended the connection (found in audit: a new
    /// stream's head that stopped part-way was recorded as `max_requests`).
    /// Any other reason recorded first stays.
    pub fn set_guard_reason(&self, reason: CloseReason) {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        let provisional = slot.as_deref() == Some(&CloseReason::MaxRequests)
            && self.http2.load(Ordering::Relaxed)
            && self.planned_close.load(Ordering::Relaxed) == PLANNED_MAX_REQUESTS;
        if slot.is_none() || provisional {
            *slot = Some(Box::new(reason));
        }
    }

    fn replace_reason(&self, reason: CloseReason) {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(reason));
    }

    /// Whether the server is closing with the last request's body not all
    /// read: as its last response announced because of that body, or on
    /// purpose by `/api/close` in a mode meant as a FIN (the endpoint drains
    /// as much as any, [`DRAIN_LIMIT`], before it answers).
    fn body_unread_at_close(&self) -> bool {
        let planned = self.planned_close.load(Ordering::Relaxed);
        planned == PLANNED_BODY_UNREAD
            || (self.body_unfinished.load(Ordering::Relaxed)
                && (planned == PLANNED_SERVER_CLOSE
                    || matches!(
                        self.reason
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .as_deref(),
                        Some(CloseReason::ServerClose {
                            mode: CloseMode::Header | CloseMode::Fin | CloseMode::MidBody
                        })
                    )))
    }

    /// The connection ends with bytes of the last request's unread body
    /// still in the receive buffer ([`Conn::body_unread_at_close`]): the
    /// kernel sends a RST. That replaces the close announced for the body
    /// and `/api/close`'s own (`header`, `fin`, `mid_body`: each meant as a
    /// FIN; found in review, `header` was recorded as `server_close` over
    /// the reset), not another reason: a peer's reset or a guard came first.
    fn body_unread_reset(&self) {
        let mut reason = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(
            reason.as_deref(),
            None | Some(CloseReason::BodyUnread { .. })
                | Some(CloseReason::ServerClose {
                    mode: CloseMode::Header | CloseMode::Fin | CloseMode::MidBody
                })
        ) {
            *reason = Some(Box::new(CloseReason::BodyUnread {
                close: RaceClose::Rst,
            }));
        }
    }

    /// Whether the server is closing with a FIN on purpose after reading a
    /// request it drops unanswered (`next=drop_fin`): bytes behind that
    /// request's head (its body, another request) turn the FIN into a RST.
    fn race_fin_on_purpose(&self) -> bool {
        matches!(
            self.reason
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_deref(),
            Some(CloseReason::KeepAliveRace {
                close: RaceClose::Fin,
                on_purpose: true,
                ..
            })
        )
    }

    /// The on-purpose FIN ([`Conn::race_fin_on_purpose`]) went out as a RST:
    /// bytes were left unread.
    fn race_fin_reset(&self) {
        let mut reason = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(CloseReason::KeepAliveRace { close, .. }) = reason.as_deref_mut() {
            *close = RaceClose::Rst;
        }
    }

    /// The orderly close the server meant, when it is one that a request
    /// pipelined behind it and left unread turns into a reset: the close the
    /// last response announced for the policy, the request's asking or
    /// `/api/close?mode=header`, or `/api/close` in another mode meant as a
    /// FIN (recorded as it took effect). `None` for any other, and over
    /// HTTP/2, where streams are not pipelined (its `max_requests` close is
    /// a `GOAWAY`).
    fn meant_close(&self) -> Option<CloseReason> {
        if self.is_http2() {
            return None;
        }
        match self.planned() {
            // A body left unread is `body_unread`'s own.
            Some(CloseReason::BodyUnread { .. }) => None,
            Some(announced) => Some(announced),
            None => self
                .reason
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_deref()
                .filter(|r| {
                    matches!(
                        r,
                        CloseReason::ServerClose {
                            mode: CloseMode::Header | CloseMode::Fin | CloseMode::MidBody
                        }
                    )
                })
                .cloned(),
        }
    }

    /// The connection ends as the server meant (`after`, [`Conn::meant_close`])
    /// with bytes the client sent behind it still in the receive buffer: the
    /// kernel answers the close with a RST. Recorded as `reset(after)`
    /// (`pipelined_unread`, or over TLS `records_unread`) instead of the
    /// meant close's own reason, and over no other reason (a peer's reset, a
    /// guard) recorded first.
    fn unread_reset(
        &self,
        after: CloseReason,
        reset: impl FnOnce(Box<CloseReason>) -> CloseReason,
    ) {
        let mut reason = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        // The policy's own reason (and `/api/close?mode=header`'s) is there
        // once hyper ended the connection as announced
        // (`Conn::note_connection_end`); `/api/close`'s other modes' since
        // they took effect (`Conn::server_closes`).
        if reason.as_deref().is_none_or(|r| *r == after) {
            *reason = Some(Box::new(reset(Box::new(after))));
        }
    }

    /// The client's RST came before the server closed a connection it
    /// meant to close in order (the policy's close, a body left unread,
    /// `/api/close` in a mode meant as a FIN): the record says the client
    /// reset it. Over no other reason recorded first.
    fn peer_reset_before_close(&self) {
        let meant = self.planned();
        let mut reason = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        let orderly = match reason.as_deref() {
            None => true,
            Some(
                CloseReason::BodyUnread { .. }
                | CloseReason::ServerClose {
                    mode: CloseMode::Header | CloseMode::Fin | CloseMode::MidBody,
                },
            ) => true,
            Some(r) => meant.as_ref() == Some(r),
        };
        if orderly {
            *reason = Some(Box::new(CloseReason::PeerReset));
        }
    }

    fn mark_bytes_in(&self) {
        let now = self.counters.bytes_in();
        self.bytes_in_mark.store(now, Ordering::Release);
    }

    /// Marks the bytes in as the current request's: all of them, or, for a
    /// request without a body whose head ended inside a read that also
    /// brought the next head's first bytes (`head_end_in`), those up to that
    /// end. The rest is the next head, arriving, timed from now (the
    /// request's answer): a head that then stops part-way is the
    /// header-read guard's, not the idle timer's (the wire: the client began
    /// a request and did not finish it).
    fn mark_request_bytes(&self, has_body: bool) {
        let now = self.counters.bytes_in();
        let end = self.head_end_in.load(Ordering::Relaxed);
        if !has_body && end != 0 && end < self.head_units(now) {
            // Timed from now (the answer; at a request's start, replaced at
            // its answer), not from the read that brought it: a head behind
            // a request slower than the guard would be cut the moment that
            // one is answered (found in review). The clock is read in this
            // rare case only (bench figure 1).
            let at = self.lab.tracker().clock().now_us();
            self.head_since_us.store(at, Ordering::Relaxed);
            // Over TLS the head's end is a place in the plaintext, not in
            // the records: any mark short of them says a head is arriving.
            let mark = if self.over_tls.load(Ordering::Relaxed) {
                now.saturating_sub(1)
            } else {
                end
            };
            self.bytes_in_mark.store(mark, Ordering::Release);
        } else {
            self.bytes_in_mark.store(now, Ordering::Release);
        }
    }

    /// A request's head has been read: if it is one of the heads that ended
    /// at or before `head_end_in`, the mark stays there; otherwise (it began
    /// there, or no read brought two heads) there is nothing pipelined past
    /// it any more. A request with a body forgets the end: what follows its
    /// head is its body.
    fn begin_request_bytes(&self, has_body: bool) {
        if has_body {
            // What follows is a body, not looked at for head ends: a head's
            // end begun before it is no longer the next read's, and the
            // next head comes after it (empty lines first, perhaps).
            self.head_end_begun.store(BETWEEN_HEADS, Ordering::Relaxed);
        }
        let left = self.heads_to_end.load(Ordering::Relaxed);
        if left > 0 && !has_body {
            self.heads_to_end.store(left - 1, Ordering::Relaxed);
        } else if self.head_end_in.load(Ordering::Relaxed) != 0 {
            self.heads_to_end.store(0, Ordering::Relaxed);
            self.head_end_in.store(0, Ordering::Relaxed);
        }
        self.mark_request_bytes(has_body);
    }

    /// `now` (`bytes_in`) in the units of `head_end_in`: the plaintext read
    /// so far over TLS ([`Conn::over_tls`]), `now` itself on the plain ports.
    fn head_units(&self, now: u64) -> u64 {
        if self.over_tls.load(Ordering::Relaxed) {
            self.plain_in.load(Ordering::Relaxed)
        } else {
            now
        }
    }

    /// HTTP/1.1 over TLS: `read`, plaintext hyper just read above TLS,
    /// looked at for head ends as the plain ports look at the socket's reads
    /// (found in review: a head begun in the same record as the request
    /// before it, then stopped part-way, was closed as idle at the idle
    /// timeout, not by the header-read guard).
    pub(crate) fn note_plain_read(&self, read: &[u8]) {
        let was = self
            .plain_in
            .fetch_add(read.len() as u64, Ordering::Relaxed);
        if self.reading_heads() {
            self.note_read(read, was);
        }
    }

    /// HTTP/1.1: what the connection reads now are heads, not a request's
    /// body or an upgraded protocol's frames (the pipelining check looks
    /// only at those).
    fn reading_heads(&self) -> bool {
        !self.body_unfinished.load(Ordering::Relaxed) && !self.upgraded.load(Ordering::Relaxed)
    }

    /// HTTP/1.1: `read`, just read when `bytes_in` (over TLS, `plain_in`)
    /// was `was`. A read that ends inside a head after one or more heads ended
    /// in it (a client that pipelines) sets `head_end_in` at the last of
    /// them. A read that ends a head (nearly every one) is looked at in its
    /// last four bytes only (bench figure 1).
    fn note_read(&self, read: &[u8], was: u64) {
        if read.ends_with(HEAD_END) {
            self.head_end_begun.store(BETWEEN_HEADS, Ordering::Relaxed);
            return;
        }
        // One pass, from where the read before left off (found in review: an
        // end split across two reads, `...\r\n\r` then `\nGET /next...`, was
        // not seen), empty lines between heads skipped as hyper skips them
        // (found in review: `\r\n` then `\r\nGET...` was taken for a head's
        // end), and bare-LF line ends taken as hyper takes them.
        let mut matched = self.head_end_begun.load(Ordering::Relaxed);
        let (mut count, mut last) = (0u32, None);
        for (i, &b) in read.iter().enumerate() {
            matched = match (matched, b) {
                (BETWEEN_HEADS, b'\r' | b'\n') => BETWEEN_HEADS,
                (LINE_START | CR_AT_START, b'\n') => {
                    count = count.saturating_add(1);
                    last = Some(i + 1);
                    BETWEEN_HEADS
                }
                (LINE_START, b'\r') => CR_AT_START,
                (IN_LINE | CR_IN_LINE, b'\n') => LINE_START,
                (_, b'\r') => CR_IN_LINE,
                _ => IN_LINE,
            };
        }
        self.head_end_begun.store(matched, Ordering::Relaxed);
        // None, or nothing pipelined after the last (the read's end, or only
        // empty lines: the same as a read that ends a head, found in review).
        let Some(last) = last.filter(|_| matched != BETWEEN_HEADS) else {
            return;
        };
        let end = was + last as u64;
        self.head_end_in.store(end, Ordering::Relaxed);
        let left = self.heads_to_end.load(Ordering::Relaxed);
        self.heads_to_end
            .store(left.saturating_add(count), Ordering::Relaxed);
    }

    /// A request head has been read: attributes the connection to the
    /// request's session (the first one named wins), numbers the request and
    /// announces it.
    pub fn begin_request(
        self: &Arc<Self>,
        method: &Method,
        uri: &Uri,
        connection: Option<String>,
        session: Option<SessionId>,
        has_body: bool,
    ) -> RequestGuard {
        // When its head had been read: the stamp of the read that brought
        // it, if bytes came since the last request's (they are this one's)
        // and no earlier than the last request's end; else now (a head read
        // with the one before it). No second clock reading: bench figure 1.
        let read_at = (self.counters.bytes_in() != self.bytes_in_mark.load(Ordering::Relaxed))
            .then(|| self.counters.last_in_us())
            .flatten()
            .filter(|&at| at >= self.idle_since_us.load(Ordering::Relaxed));
        self.begin_request_bytes(has_body);
        self.body_unfinished.store(has_body, Ordering::Relaxed);
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.h2_in_flight_again();
        }
        if let Some(session) = session
            && self.session.set(session.clone()).is_ok()
        {
            if let Some(view) = self.lab.sessions().watch(&Owner::Session(session.clone())) {
                *self.view.lock().unwrap_or_else(|p| p.into_inner()) = OwnerView::new(view);
                self.view_generation.fetch_add(1, Ordering::AcqRel);
                self.keepalive_dirty.store(true, Ordering::Relaxed);
            }
            self.lab
                .tracker()
                .emit(|at_us| ServerEvent::ConnectionAttributed {
                    conn: self.id,
                    session,
                    at_us,
                });
        }
        self.changed();
        // Its one writer is this, in the connection's task (hyper calls the
        // service there, over HTTP/2 too): a load and a store, not a locked
        // add (bench figure 1).
        let seq = self.requests.load(Ordering::Relaxed).wrapping_add(1);
        self.requests.store(seq, Ordering::Relaxed);
        let request = self.lab.tracker().next_request_id();
        let stream = self.h2_assign(request);
        let target = uri
            .path_and_query()
            .map_or_else(|| uri.path(), |pq| pq.as_str());
        let target = recorded_target(target);
        self.lab.tracker().request_started(
            read_at,
            crate::tracker::RequestHead {
                conn: self.id,
                request,
                seq,
                method: method.as_str(),
                target,
                connection,
            },
        );
        RequestGuard {
            ctx: RequestCtx {
                conn: self.clone(),
                request,
                seq,
                stream,
            },
            upgraded: false,
            done: false,
            permit: None,
            peer_permit: None,
            client_closes: false,
            has_origin: false,
            has_body,
            http10: false,
            bytes_marked: false,
            head: None,
        }
    }

    /// HTTP/2: the `seq`-th request reached `policy`'s `max_requests`: the
    /// serve loop is told to say `GOAWAY` (once).
    fn h2_goaway_if_max(&self, seq: u32, policy: &ServerPolicy) {
        if policy.max_requests.is_some_and(|max| seq >= max)
            && self
                .planned_close
                .swap(PLANNED_MAX_REQUESTS, Ordering::Relaxed)
                != PLANNED_MAX_REQUESTS
            && let Some(h2) = self.h2.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
        {
            h2.goaway_due.notify_one();
        }
    }

    /// HTTP/2: what to wait on before saying `GOAWAY` because the policy's
    /// `max_requests` was reached (see [`Conn::h2_max_requests_end`]).
    pub(crate) fn h2_goaway_due(&self) -> Arc<tokio::sync::Notify> {
        let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        h2.get_or_insert_with(Box::default).goaway_due.clone()
    }

    /// HTTP/2: the grace after `max_requests`' `GOAWAY` is over, and hyper
    /// still serves: the client has not answered the `PING` that came with
    /// it (h2 sends its second `GOAWAY`, the one that names the last stream
    /// it takes, only at that answer, and takes every stream until then).
    /// From now on a new stream is refused (`REFUSED_STREAM`, which a client
    /// may send again on a new connection) instead of served: found in
    /// review, a client that never answered kept opening streams and had
    /// each answered, past the policy's `max_requests` as far as it liked.
    pub(crate) fn h2_refuse_new_streams(&self) {
        let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        h2.get_or_insert_with(Box::default).refusing = true;
    }

    /// HTTP/2: whether a new stream is refused ([`Conn::h2_refuse_new_streams`]).
    pub(crate) fn h2_refuses(&self) -> bool {
        self.h2
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|h2| h2.refusing)
    }

    /// HTTP/2: the last request in flight ended. After the `GOAWAY` for
    /// `max_requests`, the connection now ends as announced (hyper closes
    /// it), so that is its reason from here: a client that closes or resets
    /// it on reading the `GOAWAY` acts on it (found in the test: hyper's
    /// client drops its socket at the `GOAWAY`, and the server's next frame
    /// draws a reset). A reset with a response still in flight came first
    /// and stays `peer_reset`. Decided under the reason's lock with the
    /// count read again, so that a stream beginning at the same moment
    /// ([`Conn::h2_in_flight_again`]) is never missed.
    fn h2_nothing_in_flight(&self) {
        if self.http2.load(Ordering::Relaxed)
            && self.planned_close.load(Ordering::Relaxed) == PLANNED_MAX_REQUESTS
        {
            let mut reason = self.reason.lock().unwrap_or_else(|p| p.into_inner());
            if self.in_flight.load(Ordering::Acquire) == 0 {
                reason.get_or_insert_with(|| Box::new(CloseReason::MaxRequests));
            }
        }
    }

    /// HTTP/2: a request begins with nothing else in flight. Until the
    /// second `GOAWAY` (sent once the client answers its `PING`) a client
    /// may still open streams after the one for `max_requests`, and h2
    /// answers them: the connection is no longer quiet, and a close that
    /// cuts this request is the client's or a guard's, not `max_requests`
    /// (found in audit: the reason stayed `max_requests` when the client
    /// reset the connection with such a stream in flight).
    fn h2_in_flight_again(&self) {
        if self.http2.load(Ordering::Relaxed)
            && self.planned_close.load(Ordering::Relaxed) == PLANNED_MAX_REQUESTS
        {
            let mut reason = self.reason.lock().unwrap_or_else(|p| p.into_inner());
            if reason.as_deref() == Some(&CloseReason::MaxRequests) {
                *reason = None;
            }
        }
    }

    /// HTTP/2: the connection ended after the server's `GOAWAY` for
    /// `max_requests`. Closed as announced (hyper closes once the streams
    /// in flight are done), or by the client after reading it (its FIN)
    /// with nothing in flight: `max_requests` either way, as over HTTP/1.1
    /// after `Connection: close`. A FIN that cuts a request still in flight
    /// is the client's close, `peer_closed` (h2 ends without an error at
    /// the client's FIN, whatever is in flight); anything else as
    /// [`Conn::note_connection_end`] says.
    pub fn h2_max_requests_end(&self, result: &Result<(), hyper::Error>) {
        let quiet = self.in_flight.load(Ordering::Acquire) == 0;
        let eof = self.saw_eof.load(Ordering::Relaxed);
        if quiet && (result.is_ok() || eof) {
            self.set_reason(CloseReason::MaxRequests);
        } else if eof {
            self.set_reason(CloseReason::PeerClosed);
        } else {
            self.note_connection_end(result);
        }
    }

    /// HTTP/2: hyper has just been handed the complete head of `stream`, a
    /// stream the client opened (`tls::frames`); the next request is on it.
    pub(crate) fn h2_stream_opened(&self, stream: u32) {
        let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        let h2 = h2.get_or_insert_with(Box::default);
        h2.opened = stream;
        h2.taken = false;
    }

    /// The stream of the request `request` starting now (0 over HTTP/1.1,
    /// or if no new stream's head came since the last request: unknown
    /// rather than guessed).
    fn h2_assign(&self, request: RequestId) -> u32 {
        // HTTP/1.1 (the flag is set at the TLS handshake, before any
        // request): no lock to take at every request (bench figure 1).
        if !self.is_http2() {
            return 0;
        }
        let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        let Some(h2) = h2.as_mut() else {
            return 0;
        };
        if std::mem::replace(&mut h2.taken, true) || h2.opened == 0 {
            return 0;
        }
        h2.requests.push((h2.opened, request, false));
        h2.opened
    }

    /// HTTP/2: the request on `stream` ended; its stream is remembered for
    /// a while (a reset can follow).
    fn h2_finished(&self, stream: u32) {
        let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        let Some(h2) = h2.as_mut() else {
            return;
        };
        if let Some(entry) = h2.requests.iter_mut().find(|e| e.0 == stream) {
            entry.2 = true;
        }
        if h2.requests.iter().filter(|e| e.2).count() > H2_FINISHED_KEPT
            && let Some(oldest) = h2.requests.iter().position(|e| e.2)
        {
            h2.requests.remove(oldest);
        }
    }

    /// HTTP/2: `guard`'s response body is all with hyper; the request ends
    /// when its `END_STREAM` goes out ([`Conn::h2_stream_ended`]).
    /// HTTP/1.1: `guard`'s response has been handed to hyper whole; it ends
    /// at the next flush ([`Conn::h1_flushed`]).
    fn h1_park(&self, mut guard: RequestGuard) {
        // hyper may read the next request's first bytes while this response
        // is written (it watches for the client's close): they are a head
        // arriving from then on, not bytes of this request (found in review:
        // marked at the flush, a head that stopped part-way then looked idle).
        self.mark_request_bytes(guard.has_body);
        guard.bytes_marked = true;
        let earlier = {
            let mut slot = self.h1_writing.lock().unwrap_or_else(|p| p.into_inner());
            self.h1_parked.store(true, Ordering::Release);
            slot.replace(guard)
        };
        // hyper reads the next request only after a flush (its keep-alive
        // state resets there), so there is never an earlier one; were there,
        // its bytes went before these.
        if let Some(mut earlier) = earlier {
            earlier.finish(true);
        }
    }

    /// HTTP/1.1: the stream was flushed (hyper holds no bytes): the response
    /// handed over whole is out, and its request ends (`completed`); or the
    /// socket is closing before that flush (not `completed`: bytes of it
    /// were never written).
    fn h1_flushed(&self, completed: bool) {
        if !self.h1_parked.load(Ordering::Acquire) {
            return;
        }
        let guard = {
            let mut slot = self.h1_writing.lock().unwrap_or_else(|p| p.into_inner());
            self.h1_parked.store(false, Ordering::Release);
            slot.take()
        };
        if let Some(mut guard) = guard {
            // Ended at the write that took its last bytes (this flush
            // follows it): no second clock reading, bench figure 1.
            let written_at = self.counters.last_out_us().filter(|_| completed);
            guard.finish_at(completed, written_at);
        }
    }

    fn h2_park(&self, mut guard: RequestGuard) {
        let stream = guard.ctx.stream;
        {
            let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(h2) = h2.as_mut() {
                match h2.ended.iter().position(|s| *s == stream) {
                    Some(i) => {
                        h2.ended.remove(i);
                    }
                    None => {
                        h2.ending.push((stream, guard));
                        return;
                    }
                }
            }
        }
        guard.finish(true);
    }

    /// HTTP/2: a frame with `END_STREAM` on `stream` has gone from hyper to
    /// TLS: the response on it is whole on its way (`tls::frames`).
    pub(crate) fn h2_stream_ended(&self, stream: u32) {
        let guard = {
            let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
            let Some(h2) = h2.as_mut() else {
                return;
            };
            match h2.ending.iter().position(|e| e.0 == stream) {
                Some(i) => Some(h2.ending.swap_remove(i).1),
                None => {
                    if h2.ended.len() >= H2_ENDED_KEPT {
                        h2.ended.remove(0);
                    }
                    h2.ended.push(stream);
                    None
                }
            }
        };
        if let Some(mut guard) = guard {
            guard.finish(true);
        }
    }

    /// HTTP/2: a frame header or a request's head is part-way in
    /// (`arriving`), or no longer: the header-read guard runs meanwhile.
    pub(crate) fn h2_head_arriving(&self, arriving: bool) {
        self.h2_since_or_clear(arriving, |h2| &mut h2.head_since);
    }

    /// HTTP/2: a response under way has no flow-control window left
    /// (`blocked`), or has some again: the write-stall guard runs meanwhile.
    /// The time it was blocked counts toward the write-stall guard's total,
    /// once with a socket blocked meanwhile: while both are, the watchdog
    /// counts one stall from the earlier start, and the socket's stamp then
    /// carries that start (found in review: each added its own length, so a
    /// slow client, whose socket and window are often spent together, was
    /// cut after half the total).
    pub(crate) fn h2_flow_blocked(&self, blocked: bool) {
        let (cleared, now) = self.h2_since_or_clear(blocked, |h2| &mut h2.flow_blocked_since);
        let Some(since) = cleared else {
            return;
        };
        // Stamps are the server clock + 1, 0 while writes go through, so a
        // socket not blocked keeps its 0.
        let socket = self
            .write_blocked_since
            .fetch_min(since.saturating_add(1), Ordering::Relaxed);
        if socket == 0 {
            self.write_blocked_total_us
                .fetch_add(now.saturating_sub(since), Ordering::Relaxed);
        }
    }

    /// The socket's blocked write (since `since`) went through at `now`:
    /// the stall counts toward the write-stall guard's total, unless over
    /// HTTP/2 a flow-control window is still spent, which then carries the
    /// earlier start ([`Conn::h2_flow_blocked`]).
    fn socket_stall_ended(&self, since: protocol::Micros, now: protocol::Micros) {
        if self.is_http2()
            && let Some(flow) = self
                .h2
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
                .and_then(|h2| h2.flow_blocked_since.as_mut())
        {
            *flow = (*flow).min(since);
            return;
        }
        self.write_blocked_total_us
            .fetch_add(now.saturating_sub(since), Ordering::Relaxed);
    }

    /// Stamps the stamp `at` picks with now (unless stamped already) when
    /// `on`, clears it otherwise, and lets the watchdog look again. Returns
    /// the stamp it cleared, if any, and now.
    fn h2_since_or_clear(
        &self,
        on: bool,
        at: impl FnOnce(&mut H2Streams) -> &mut Option<protocol::Micros>,
    ) -> (Option<protocol::Micros>, protocol::Micros) {
        let now = self.lab.tracker().clock().now_us();
        let mut cleared = None;
        if let Some(h2) = self.h2.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let at = at(h2);
            if on {
                *at = Some(at.unwrap_or(now));
            } else {
                cleared = at.take();
            }
        }
        self.changed();
        (cleared, now)
    }

    /// HTTP/2: the requests still waiting for their `END_STREAM` (all of
    /// them, or the one on `stream`), taken out to be ended aborted.
    fn h2_take_ending(&self, stream: Option<u32>) -> Vec<RequestGuard> {
        let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        let Some(h2) = h2.as_mut() else {
            return Vec::new();
        };
        let (taken, kept) = std::mem::take(&mut h2.ending)
            .into_iter()
            .partition(|e| stream.is_none_or(|s| s == e.0));
        h2.ending = kept;
        taken
            .into_iter()
            .map(|e: (u32, RequestGuard)| e.1)
            .collect()
    }

    /// A `RST_STREAM` frame for `stream` with error `code` crossed the
    /// connection, sent `by` the client or the server. A response on it
    /// that was still going out was cut: its request ends aborted.
    pub(crate) fn h2_reset(&self, stream: u32, by: Initiator, code: u32) {
        let request = self
            .h2
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|h2| h2.requests.iter().find(|e| e.0 == stream).map(|e| e.1));
        self.lab.tracker().emit(|at_us| ServerEvent::StreamReset {
            conn: self.id,
            stream,
            request,
            by,
            code,
            at_us,
        });
        for mut guard in self.h2_take_ending(Some(stream)) {
            guard.finish(false);
        }
    }

    /// A `GOAWAY` frame crossed the connection, sent `by` the client or the
    /// server.
    pub(crate) fn h2_goaway(&self, by: Initiator, last_stream: u32, code: u32, debug: String) {
        if by == Initiator::Client
            && let Some(h2) = self.h2.lock().unwrap_or_else(|p| p.into_inner()).as_mut()
        {
            h2.client_goaway = true;
        }
        self.lab.tracker().emit(|at_us| ServerEvent::GoAway {
            conn: self.id,
            by,
            last_stream,
            code,
            debug,
            at_us,
        });
    }

    /// Its TLS handshake completed (a TLS port): the bytes so far were the
    /// handshake, so the idle timer starts now; `http2` when ALPN chose
    /// `h2`. Announces the protocol. `early`: over HTTP/1.1, the client's
    /// first request bytes came with its last handshake flight (one TCP
    /// segment), so TLS read them with the handshake: a head is arriving
    /// since that read, under the header guard, not the idle timer (found in
    /// review: such a slow head was closed as idle).
    pub fn secured(&self, http2: bool, alpn: Option<String>, tls_version: String, early: bool) {
        self.http2.store(http2, Ordering::Relaxed);
        self.over_tls.store(!http2, Ordering::Relaxed);
        if http2 {
            *self.h2.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::default());
        }
        let now = self.lab.tracker().clock().now_us();
        if early && !http2 {
            let at = self.counters.last_in_us().unwrap_or(now);
            self.head_since_us.store(at, Ordering::Relaxed);
            self.idle_since_us.store(at, Ordering::Relaxed);
        } else {
            self.mark_bytes_in();
            self.idle_since_us.store(now, Ordering::Relaxed);
        }
        self.changed();
        let protocol = if http2 { "h2" } else { "http/1.1" }.to_owned();
        // Stamped with the read that brought the client's last handshake
        // message, as a request's start is with the read of its head: a
        // head in that same read began no earlier than the handshake
        // ended (found in review: `request_started` was stamped before
        // `connection_secured`, and the HAR's `connect` ran past `send`).
        let at = self.counters.last_in_us().unwrap_or(now);
        self.lab
            .tracker()
            .emit_at(Some(at), |at_us| ServerEvent::ConnectionSecured {
                conn: self.id,
                protocol,
                alpn,
                tls_version,
                at_us,
            });
    }

    /// HTTP/2: the client has said `GOAWAY`.
    fn client_said_goaway(&self) -> bool {
        self.is_http2()
            && self
                .h2
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .is_some_and(|h2| h2.client_goaway)
    }

    /// Over TLS, the client's `close_notify`: TLS reads nothing after it
    /// (the FIN that follows it stays unread), so the socket's own read
    /// never sees the end; the layer above TLS tells it (`tls::serve`).
    pub(crate) fn peer_eof(&self) {
        self.saw_eof.store(true, Ordering::Relaxed);
    }

    /// Whether it speaks HTTP/2.
    pub fn is_http2(&self) -> bool {
        self.http2.load(Ordering::Relaxed)
    }

    /// Whether it was upgraded (its `101 Switching Protocols` answered).
    pub fn is_upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Relaxed)
    }

    /// The connection was upgraded to a WebSocket serving `role`.
    pub fn mark_upgraded(&self, role: UpgradeRole) {
        self.upgraded.store(true, Ordering::Relaxed);
        self.changed();
        self.lab
            .tracker()
            .emit(|at_us| ServerEvent::ConnectionUpgraded {
                conn: self.id,
                role,
                at_us,
            });
    }

    /// Works out the close reason from how hyper's connection future ended.
    pub fn note_connection_end(&self, result: &Result<(), hyper::Error>) {
        match result {
            Ok(()) if self.upgraded.load(Ordering::Relaxed) => {}
            // The close the last response announced, now done; but a body
            // cut short by the client's FIN was not left unread: the
            // client closed first (found in review: `body_unread`).
            Ok(()) => self.set_reason(match self.planned() {
                Some(CloseReason::BodyUnread { .. }) if self.saw_eof.load(Ordering::Relaxed) => {
                    CloseReason::PeerClosed
                }
                Some(planned) => planned,
                // hyper closed after an answer, unasked and before the
                // client's FIN: HTTP/1.1's rule for a request with both
                // lengths (found in review: `peer_closed`).
                None if !self.saw_eof.load(Ordering::Relaxed) && !self.is_http2() => {
                    CloseReason::FramingClose {
                        rule: FramingRule::RequestFraming,
                    }
                }
                None => CloseReason::PeerClosed,
            }),
            // The client's FIN, or (HTTP/2) its `GOAWAY` with an error code,
            // which h2 ends the connection on as an error (found in review:
            // recorded as the server's `error`, "http2 error").
            Err(_) if self.saw_eof.load(Ordering::Relaxed) || self.client_said_goaway() => {
                self.set_reason(CloseReason::PeerClosed)
            }
            Err(e) => self.set_reason(CloseReason::Error {
                message: e.to_string(),
            }),
        }
    }

    fn note_io_error(&self, error: &io::Error) {
        match error.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => {
                // A client that resets the connection in
                // `/api/close?mode=mid_body`'s pause closed it first: the
                // cut is recorded only when it happens (`server_closes`).
                self.set_reason(CloseReason::PeerReset);
            }
            _ => self.set_reason(CloseReason::Error {
                message: error.to_string(),
            }),
        }
    }

    /// The close a response announced because of the policy, if any.
    fn planned(&self) -> Option<CloseReason> {
        match self.planned_close.load(Ordering::Relaxed) {
            PLANNED_KEEP_ALIVE_OFF => Some(CloseReason::KeepAliveOff),
            PLANNED_MAX_REQUESTS => Some(CloseReason::MaxRequests),
            PLANNED_CLIENT => Some(CloseReason::ClientRequestedClose),
            PLANNED_BODY_UNREAD => Some(CloseReason::BodyUnread {
                close: RaceClose::Fin,
            }),
            PLANNED_SERVER_CLOSE => Some(CloseReason::ServerClose {
                mode: CloseMode::Header,
            }),
            PLANNED_HTTP10_UNSIZED => Some(CloseReason::FramingClose {
                rule: FramingRule::Http10Unsized,
            }),
            _ => None,
        }
    }

    /// The socket is gone: report the close once.
    fn closed(&self) {
        // HTTP/2 responses whose end never went out were cut by the close
        // (and the guards held here would keep this record alive).
        for mut guard in self.h2_take_ending(None) {
            guard.finish(false);
        }
        let reason = self
            .reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .map(|reason| *reason)
            .or_else(|| self.planned())
            .unwrap_or_else(|| {
                if self.saw_eof.load(Ordering::Relaxed) {
                    CloseReason::PeerClosed
                } else {
                    CloseReason::Error {
                        message: "the server dropped the connection without a recorded cause"
                            .into(),
                    }
                }
            });
        self.lab
            .tracker()
            .close(self.id, reason, self.requests.load(Ordering::Relaxed));
    }

    /// Decides whether the response to the `seq`-th request keeps the
    /// connection open, per `policy`, and says so in its headers. When the
    /// client itself asked to close (`client_closes`), nothing is advertised
    /// (hyper writes the `Connection: close`); when the request's body is
    /// still unread (longer than [`DRAIN_LIMIT`], or a refused request), the
    /// response says `Connection: close`.
    /// Returns whether the answer now says `Connection: close`.
    fn apply_keep_alive(
        &self,
        seq: u32,
        (client_closes, unsized_http10): (bool, bool),
        headers: &mut axum::http::HeaderMap,
        policy: &ServerPolicy,
    ) -> bool {
        use axum::http::header::CONNECTION;
        if self.http2.load(Ordering::Relaxed) {
            // Connection-specific headers are illegal in HTTP/2 (RFC 9113
            // §8.2.2); an HTTP/2 connection ends with GOAWAY instead, which
            // the serve loop sends once told (`keep_alive` and
            // `advertise_keep_alive` have no HTTP/2 counterpart).
            self.h2_goaway_if_max(seq, policy);
            return false;
        }
        let closing_already = headers
            .get(CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if closing_already {
            return true; // the handler decided (and set the reason)
        }
        let body_unread = self.body_unfinished.load(Ordering::Relaxed);
        if client_closes && !body_unread {
            // hyper answers it with `Connection: close`, then closes.
            self.planned_close.store(PLANNED_CLIENT, Ordering::Relaxed);
            return false;
        }
        let close = if body_unread {
            // hyper could not find the next request's head without reading
            // the rest, and would close anyway once it needs to wait for it.
            // Even when the client asked to close: bytes of the body still
            // in the receive buffer at the close make it a reset, which the
            // record must say (`TrackedStream`'s drop looks for them).
            PLANNED_BODY_UNREAD
        } else if !policy.keep_alive {
            PLANNED_KEEP_ALIVE_OFF
        } else if policy.max_requests.is_some_and(|max| seq >= max) {
            PLANNED_MAX_REQUESTS
        } else if unsized_http10 {
            // An HTTP/1.0 answer without a length ends with the close:
            // hyper closes after it whatever the headers say (found in
            // review: the answer said keep-alive, the record `peer_closed`),
            // so it says so, and the record says why.
            PLANNED_HTTP10_UNSIZED
        } else {
            PLANNED_NONE
        };
        if close != PLANNED_NONE {
            // The reason only once the connection ends as announced (see
            // `planned_close`).
            self.planned_close.store(close, Ordering::Relaxed);
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
            return true;
        }
        if policy.advertise_keep_alive {
            // Whole seconds, rounded down: a client that trusts the header
            // (Node's agent keeps a free socket until `timeout` less its
            // buffer) must not be told the connection outlives the idle
            // timer (found in review: 1 500 ms was sent as `timeout=2`).
            // Below a second that is `timeout=0`: kept for no idle time.
            let timeout_s = policy.idle_timeout_ms / 1000;
            let max_left = policy.max_requests.map(|max| max - seq);
            if let Some(value) = keep_alive_value(timeout_s, max_left) {
                headers.insert(KEEP_ALIVE, value);
            }
        }
        false
    }
}

/// The `Keep-Alive` header's value, `timeout=T` or `timeout=T, max=M`, written
/// without `core::fmt` (every kept-alive response carries one, bench figure 1).
fn keep_alive_value(timeout_s: u64, max_left: Option<u32>) -> Option<HeaderValue> {
    if max_left.is_none() {
        thread_local! {
            /// The last `timeout=T` written on this thread: under a policy
            /// without `max`, every response carries the same one, so it is
            /// written once and shared (a reference count) after that.
            static LAST: std::cell::RefCell<Option<(u64, HeaderValue)>> =
                const { std::cell::RefCell::new(None) };
        }
        return LAST.with_borrow_mut(|last| match last {
            Some((written, value)) if *written == timeout_s => Some(value.clone()),
            _ => {
                let value = write_keep_alive_value(timeout_s, None)?;
                *last = Some((timeout_s, value.clone()));
                Some(value)
            }
        });
    }
    write_keep_alive_value(timeout_s, max_left)
}

fn write_keep_alive_value(timeout_s: u64, max_left: Option<u32>) -> Option<HeaderValue> {
    let mut value = Vec::with_capacity(32);
    value.extend_from_slice(b"timeout=");
    push_decimal(&mut value, timeout_s);
    if let Some(max) = max_left {
        value.extend_from_slice(b", max=");
        push_decimal(&mut value, u64::from(max));
    }
    HeaderValue::from_maybe_shared(bytes::Bytes::from(value)).ok()
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(decimal(n, &mut [0u8; 20]));
}

/// `n` in decimal, written at the end of `digits`.
fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b"0123456789"[(n % 10) as usize];
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[at..]
}

/// The numbers 0 to 999 written one after another ("0123…9101112…999"),
/// built when the server is compiled.
static SMALL_NUMBERS: [u8; 2890] = {
    let mut out = [0u8; 2890];
    let (mut n, mut at) = (0, 0);
    while n < 1000 {
        let digits: &[u32] = if n < 10 {
            &[1]
        } else if n < 100 {
            &[10, 1]
        } else {
            &[100, 10, 1]
        };
        let mut i = 0;
        while i < digits.len() {
            out[at] = b'0' + ((n / digits[i]) % 10) as u8;
            at += 1;
            i += 1;
        }
        n += 1;
    }
    out
};

/// [`SMALL_NUMBERS`] as text, checked when the server is compiled.
static SMALL_NUMBERS_TEXT: &str = match std::str::from_utf8(&SMALL_NUMBERS) {
    Ok(text) => text,
    Err(_) => panic!("SMALL_NUMBERS holds digits only"),
};

/// A number as a header value. Below 1000 (`X-Request-Seq` nearly always, and
/// a room's first connections' `X-Conn-Id`), a value over static bytes: no
/// allocation, and a clone copies a pointer. Others: the digits copied once
/// into a buffer of their size (`HeaderValue::from` writes them into a
/// `BytesMut` that grows and is then frozen). Three of them on every
/// response: bench figure 1.
fn number_value(n: u64) -> HeaderValue {
    let small = match n {
        0..10 => Some((n, 1)),
        10..100 => Some((10 + (n - 10) * 2, 2)),
        100..1000 => Some((190 + (n - 100) * 3, 3)),
        _ => None,
    };
    if let Some((at, len)) = small
        && let Some(text) = SMALL_NUMBERS_TEXT.get(at as usize..at as usize + len)
    {
        return HeaderValue::from_static(text);
    }
    HeaderValue::from_bytes(decimal(n, &mut [0u8; 20])).unwrap_or_else(|_| HeaderValue::from(n))
}

/// Which connection and request a handler is serving, put into the request's
/// extensions by the accept loop. Absent when the router is called directly
/// (`oneshot` in tests): handlers must cope with that.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// The connection carrying the request.
    pub conn: Arc<Conn>,
    /// Server-wide request id.
    pub request: RequestId,
    /// n-th request on the connection.
    pub seq: u32,
    /// Its HTTP/2 stream id; 0 over HTTP/1.1 (or not known).
    pub stream: u32,
}

/// Reports the end of one request exactly once: completed when its body was
/// handed over, aborted when dropped earlier (the client went away).
#[derive(Debug)]
pub struct RequestGuard {
    /// The request.
    ctx: RequestCtx,
    /// Answered with 101 Switching Protocols.
    upgraded: bool,
    /// Already reported.
    done: bool,
    /// Counts the request against its owner's cap until it ends.
    permit: Option<Permit>,
    /// Counts the request against its address's cap until it ends.
    peer_permit: Option<PeerRequest>,
    /// The client asked to close after this request (`Connection: close`,
    /// or HTTP/1.0 without `Connection: keep-alive`).
    client_closes: bool,
    /// The request came with an `Origin` header: a page on another origin
    /// (the lab's second one), or a same-origin POST. Only then does the
    /// answer need `Timing-Allow-Origin`, so that the page gets the full
    /// Resource Timing of a cross-origin request; a same-origin page has it
    /// anyway, and every byte of a header is work on every response.
    has_origin: bool,
    /// The request came with a body: the bytes after its head are its own
    /// ([`Conn::mark_request_bytes`]).
    has_body: bool,
    /// An HTTP/1.0 request kept alive: an answer without a length ends with
    /// the close ([`FramingRule::Http10Unsized`]).
    http10: bool,
    /// The connection's bytes in were marked as this request's when its
    /// response was handed over whole ([`Conn::h1_park`]): bytes read after
    /// that are the next request's, not to be marked again at its end.
    bytes_marked: bool,
    /// The response's head (status, and when it was handed to hyper), kept
    /// to be recorded with the request's end
    /// ([`Tracker::response_then_finished`]): set by
    /// [`RequestGuard::respond`] only while nobody listens, over HTTP/1.1,
    /// for a body of known length up to [`KEEP_HEAD_UP_TO`] bytes (written
    /// at once, so that its end follows within microseconds). One update
    /// of the tracker's table a request fewer: the table's shards are
    /// shared by both cores, and this measured 3 % less server CPU per
    /// request (bench figure 1, `causes.md`).
    ///
    /// [`Tracker::response_then_finished`]: crate::tracker::Tracker::response_then_finished
    head: Option<(u16, protocol::Micros)>,
}

/// The largest body whose response's head [`RequestGuard::respond`] keeps
/// for its request's end while nobody listens (see `RequestGuard::head`):
/// one that a socket's send buffer takes at once. A larger one (a download
/// a viewer may join part-way) has its head recorded when it is handed over.
const KEEP_HEAD_UP_TO: u64 = 16 * 1024;

impl RequestGuard {
    /// The request's identity, to hand to handlers.
    pub fn ctx(&self) -> &RequestCtx {
        &self.ctx
    }

    /// Notes that the client asked to close the connection after this request.
    pub fn client_closes(&mut self) {
        self.client_closes = true;
    }

    /// Notes that the request carried an `Origin` header.
    pub fn has_origin(&mut self) {
        self.has_origin = true;
    }

    /// Notes that the request was HTTP/1.0 (kept alive, unless it asked to
    /// close: [`RequestGuard::client_closes`]).
    pub fn http10(&mut self) {
        self.http10 = true;
    }

    /// Holds `permit` until the request ends.
    pub fn hold(&mut self, permit: Permit) {
        self.permit = Some(permit);
    }

    /// Holds the address's `permit` until the request ends.
    pub fn hold_peer(&mut self, permit: PeerRequest) {
        self.peer_permit = Some(permit);
    }

    fn finish(&mut self, completed: bool) {
        self.finish_at(completed, None);
    }

    /// [`RequestGuard::finish`], stamped `at_us` if given (else now).
    fn finish_at(&mut self, completed: bool, at_us: Option<protocol::Micros>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let outcome = match (completed, self.upgraded) {
            (_, true) => RequestOutcome::Upgraded,
            (true, false) => RequestOutcome::Completed,
            (false, false) => RequestOutcome::Aborted,
        };
        let conn = &self.ctx.conn;
        if self.ctx.stream != 0 {
            conn.h2_finished(self.ctx.stream);
            if !completed {
                // It counts even if it got no response (its stream was reset
                // by the client or the hang timeout): found in audit, the
                // `GOAWAY` waited for a later response, and the connection
                // carried more requests than `max_requests`.
                conn.h2_goaway_if_max(self.ctx.seq, &conn.policy());
            }
        }
        if !self.bytes_marked {
            conn.mark_request_bytes(self.has_body);
        }
        self.permit = None;
        self.peer_permit = None;
        let tracker = conn.lab.tracker();
        let at_us = match self.head.take() {
            Some(head) => {
                tracker.response_then_finished((conn.id, self.ctx.request), head, outcome, at_us)
            }
            None => tracker.emit_at(at_us, |at_us| ServerEvent::RequestFinished {
                conn: conn.id,
                request: self.ctx.request,
                outcome,
                at_us,
            }),
        };
        // Idle from the stamp of its last request's end (one clock reading
        // for both); set before the connection counts as idle. The latest
        // wins: two HTTP/2 streams can end at once.
        if !conn.is_http2() {
            // HTTP/1.1: one request at a time, and its end is the one
            // writer (a load and a store: bench figure 1).
            if conn.idle_since_us.load(Ordering::Relaxed) < at_us {
                conn.idle_since_us.store(at_us, Ordering::Relaxed);
            }
        } else {
            conn.idle_since_us.fetch_max(at_us, Ordering::Relaxed);
        }
        if conn.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The write-stall guard's total starts again with the next
            // response (read first: nearly always 0, bench figure 1).
            if conn.write_blocked_total_us.load(Ordering::Relaxed) != 0 {
                conn.write_blocked_total_us.store(0, Ordering::Relaxed);
            }
            conn.h2_nothing_in_flight();
        }
        conn.changed();
    }

    /// Stamps the lab's headers on a response, applies the keep-alive
    /// `policy`, announces the head and wraps the body so its end is reported.
    pub fn respond(
        mut self,
        response: Response<Body>,
        policy: &ServerPolicy,
    ) -> Response<TrackedBody> {
        let (mut parts, body) = response.into_parts();
        self.upgraded = parts.status == StatusCode::SWITCHING_PROTOCOLS;
        if self.upgraded {
            self.ctx.conn.upgraded.store(true, Ordering::Relaxed);
        } else {
            let unsized_http10 = self.http10
                && http_body::Body::size_hint(&body).exact().is_none()
                && !parts
                    .headers
                    .contains_key(axum::http::header::CONTENT_LENGTH);
            let closes = self.ctx.conn.apply_keep_alive(
                self.ctx.seq,
                (self.client_closes, unsized_http10),
                &mut parts.headers,
                policy,
            );
            if closes && self.http10 {
                // Told as HTTP/1.0 already (hyper answers a 1.0 client so
                // anyway): on an HTTP/1.1 head hyper adds `keep-alive` to
                // the `Connection: close` of a client that asked for it
                // (found in review, under `max_requests`). Only when
                // closing: an HTTP/1.0 head without `keep-alive` is one
                // hyper does not keep.
                parts.version = axum::http::Version::HTTP_10;
            }
        }
        let h = &mut parts.headers;
        h.insert(X_CONN_ID, number_value(self.ctx.conn.id.0));
        h.insert(X_REQUEST_SEQ, number_value(u64::from(self.ctx.seq)));
        h.insert(X_REQUEST_ID, number_value(self.ctx.request.0));
        // `Access-Control-Expose-Headers` (which of these a page on another
        // origin may read) is the CORS layer's (`routes::cors`).
        if self.has_origin {
            h.insert(TIMING_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        }
        let conn = &self.ctx.conn;
        let status = parts.status.as_u16();
        let exact = http_body::Body::size_hint(&body).exact();
        let expected = exact.or_else(|| {
            // Streamed bodies (files) announce their length in the header.
            parts
                .headers
                .get(axum::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
        });
        let tracker = conn.lab.tracker();
        if self.ctx.stream == 0
            && !self.upgraded
            && exact.is_some_and(|len| len <= KEEP_HEAD_UP_TO)
            && !tracker.may_be_heard()
        {
            self.head = Some((status, tracker.clock().now_us()));
        } else {
            tracker.emit(|at_us| ServerEvent::ResponseStarted {
                conn: conn.id,
                request: self.ctx.request,
                status,
                at_us,
            });
        }
        Response::from_parts(
            parts,
            TrackedBody {
                inner: body,
                guard: Some(self),
                expected,
                sent: 0,
            },
        )
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// A request body that tells its connection when a handler waits for bytes
/// that do not come (the slow-body guard) and when it has been read whole.
#[derive(Debug)]
pub struct GuardedBody {
    /// hyper's body (`None` once handed to the connection to be drained).
    inner: Option<hyper::body::Incoming>,
    /// Its connection.
    conn: Arc<Conn>,
    /// Dropped unread, it is kept for the server to drain
    /// (`Conn::unread_body`); not the drain's own.
    keep_unread: bool,
    /// The request said `Expect: 100-continue`: its client sends the body
    /// only once told to, and hyper tells it (`100 Continue`) at the first
    /// read. Left unread, it is not drained: that would ask for a body the
    /// endpoint never wanted; the connection closes instead.
    expects_continue: bool,
    /// Polled at least once (hyper has sent its `100 Continue`, if asked).
    polled: bool,
    /// Server clock + 1 since when a handler has waited for its bytes; 0
    /// while it is not waited for (`Conn::body_waiting`).
    wait_since: u64,
}

impl GuardedBody {
    /// Wraps a request's body.
    pub fn new(
        inner: hyper::body::Incoming,
        conn: Arc<Conn>,
        expects_continue: bool,
    ) -> GuardedBody {
        GuardedBody {
            inner: Some(inner),
            conn,
            keep_unread: true,
            expects_continue,
            polled: false,
            wait_since: 0,
        }
    }

    /// Reads the rest of the body and throws it away, up to [`DRAIN_LIMIT`]
    /// bytes. Read to its end, the connection may carry the next request
    /// (`body_progress` clears `body_unfinished`); otherwise the response
    /// says `Connection: close`. A body that stops coming is the body
    /// guard's, as when an endpoint reads it (`body_waiting`).
    async fn drain(mut self) {
        let mut read = 0u64;
        while let Some(Ok(frame)) =
            std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut self), cx)).await
        {
            read += frame.data_ref().map_or(0, |d| d.len() as u64);
            if read > DRAIN_LIMIT {
                return;
            }
        }
    }
}

impl Conn {
    /// The request body its endpoint left unread, to drain before the
    /// response goes out ([`GuardedBody::drain`]); `None` nearly always.
    pub(crate) fn take_unread_body(
        self: &Arc<Self>,
    ) -> Option<impl Future<Output = ()> + Send + use<>> {
        // Nearly every request: read whole, or had no body (no lock).
        if !self.body_unfinished.load(Ordering::Relaxed) {
            return None;
        }
        let inner = self
            .unread_body
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        let body = GuardedBody {
            inner: Some(*inner),
            conn: self.clone(),
            keep_unread: false,
            expects_continue: false,
            polled: true,
            wait_since: 0,
        };
        Some(body.drain())
    }
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        this.polled = true;
        let poll = Pin::new(&mut *inner).poll_frame(cx);
        match &poll {
            Poll::Pending => this.conn.body_waiting(&mut this.wait_since),
            Poll::Ready(None) => this.conn.body_progress(true, &mut this.wait_since),
            Poll::Ready(Some(_)) => this
                .conn
                .body_progress(inner.is_end_stream(), &mut this.wait_since),
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for GuardedBody {
    fn drop(&mut self) {
        // Nobody waits for it any more.
        self.conn.body_wait_over(&mut self.wait_since);
        // Left unread over HTTP/1.1: kept for the server to drain before
        // the response (`Route::run`), unless it is known to be longer than
        // that would read. (Over HTTP/2 hyper resets just the stream.)
        if self.keep_unread
            && (self.polled || !self.expects_continue)
            && self.conn.body_unfinished.load(Ordering::Relaxed)
            && !self.conn.is_http2()
            && let Some(inner) = self.inner.take()
            && !http_body::Body::is_end_stream(&inner)
            && http_body::Body::size_hint(&inner).lower() <= DRAIN_LIMIT
        {
            *self
                .conn
                .unread_body
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(Box::new(inner));
        }
    }
}

/// A response body that reports, through its [`RequestGuard`], when it ended.
#[derive(Debug)]
pub struct TrackedBody {
    /// The handler's body.
    inner: Body,
    /// Reports the end (`None` once handed on: an HTTP/2 request waiting for
    /// its `END_STREAM`, see [`TrackedBody::ended`]).
    guard: Option<RequestGuard>,
    /// The body's length when known up front (it then goes out with a
    /// `Content-Length`, and hyper stops polling once it has that many bytes).
    expected: Option<u64>,
    /// Data bytes handed to hyper so far.
    sent: u64,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
                // The last bytes are handed over now: the request ends
                // now, not when hyper drops the body later (over HTTP/2 the
                // client may open its next stream as soon as their
                // END_STREAM arrives: found by `http2_lesson.rs`, five in
                // flight in the record on a connection allowing four).
                if http_body::Body::is_end_stream(&this.inner)
                    || this.expected.is_some_and(|n| n == this.sent)
                {
                    this.ended(true);
                }
            }
            Poll::Ready(None) => this.ended(true),
            Poll::Ready(Some(Err(_))) => this.ended(false),
            _ => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl TrackedBody {
    /// The body ended (`completed`: all of it was handed to hyper). Over
    /// HTTP/1.1 the request ends once hyper has written it all (the next
    /// flush: a socket that takes less than it is given leaves hyper holding
    /// the rest); over HTTP/2 when its `END_STREAM` goes out (h2 holds back
    /// what the client's flow-control window does not take yet).
    fn ended(&mut self, completed: bool) {
        let Some(mut guard) = self.guard.take() else {
            return;
        };
        if completed && !guard.upgraded {
            let conn = guard.ctx.conn.clone();
            if guard.ctx.stream != 0 {
                conn.h2_park(guard);
            } else if conn.is_http2() {
                // Over HTTP/2 with its stream not known: as before, now.
                guard.finish(true);
            } else {
                conn.h1_park(guard);
            }
        } else {
            guard.finish(completed);
        }
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        // hyper stops polling a body whose length it knows once it has it all,
        // then drops it: that is a completed response, not an aborted one.
        let completed = http_body::Body::is_end_stream(&self.inner)
            || self.expected.is_some_and(|n| n == self.sent);
        self.ended(completed);
    }
}

/// The socket as hyper sees it: counts bytes, notes EOF and resets, and
/// reports the connection closed when dropped.
#[derive(Debug)]
pub struct TrackedStream {
    /// The accepted socket.
    inner: TcpStream,
    /// Its tracking record.
    conn: Arc<Conn>,
    /// Its place in its address's connection cap, held as long as the
    /// socket lives (WebSockets included).
    _slot: PeerConnection,
    /// It carries TLS: bytes left unread at the close are records, which
    /// cannot be read as a request's start.
    tls: bool,
}

impl TrackedStream {
    /// Wraps an accepted socket.
    pub fn new(inner: TcpStream, conn: Arc<Conn>, slot: PeerConnection) -> TrackedStream {
        TrackedStream {
            inner,
            conn,
            _slot: slot,
            tls: false,
        }
    }

    /// Writes `bytes` if the socket takes them now, never waiting (a drop
    /// has no time to: TLS's `close_notify` of an upgraded stream,
    /// `tls::serve`), counted as every write is. What it does not take is
    /// dropped.
    pub fn write_now(&self, bytes: &[u8]) {
        if let Ok(n) = self.inner.try_write(bytes)
            && n > 0
        {
            let now = self.conn.lab.tracker().clock().now_us();
            self.conn.counters.record_out(n as u64, now);
        }
    }

    /// Marks the stream as carrying TLS (the lab's TLS ports).
    pub fn over_tls(mut self) -> TrackedStream {
        self.tls = true;
        self
    }

    /// A second handle on the socket, to look for the client's FIN or RST
    /// while TLS and hyper own this stream ([`CloseWatch`]); `None` if the
    /// descriptor could not be duplicated.
    #[cfg(unix)]
    pub fn close_watch(&self) -> Option<CloseWatch> {
        use std::os::fd::AsFd;
        let fd = self.inner.as_fd().try_clone_to_owned().ok()?;
        Some(CloseWatch(std::net::TcpStream::from(fd)))
    }

    /// Not a Unix: no watch (the idle deadline's verdict stands).
    #[cfg(not(unix))]
    pub fn close_watch(&self) -> Option<CloseWatch> {
        None
    }
}

/// A duplicate of a TLS connection's descriptor, to see whether the
/// client's FIN or RST is already in as the idle deadline passes (on the
/// plain ports [`TrackedStream`]'s drop looks; on the TLS ports hyper and
/// rustls own the stream, and over HTTP/2 they read the client's close while
/// the server's `GOAWAY` goes out). It shares the socket's non-blocking
/// mode, so a look never waits. Dropped with its connection: the socket
/// closes when the last of the two descriptors does.
#[derive(Debug)]
pub struct CloseWatch(std::net::TcpStream);

impl CloseWatch {
    /// The client's close, if it is in: `peer_closed` for a FIN (also one
    /// behind bytes not read, as a TLS client's `close_notify` comes before
    /// its FIN: seen in the socket's state, Linux only), `peer_reset` for a
    /// RST. Otherwise (nothing, or bytes alone: a raced request is
    /// encrypted and cannot be named) `None`.
    pub fn client_closed(&self) -> Option<CloseReason> {
        // A peek still returns the bytes queued before a client's RST: the
        // reset is told by the socket's error, as `TrackedStream::unread`
        // tells it (found in review: bytes then a RST were taken for bytes
        // the server's close would reset).
        if let Ok(Some(e)) = self.0.take_error()
            && e.kind() == io::ErrorKind::ConnectionReset
        {
            return Some(CloseReason::PeerReset);
        }
        let mut byte = [0_u8; 1];
        match self.0.peek(&mut byte) {
            Ok(0) => Some(CloseReason::PeerClosed),
            Ok(_) if crate::middlebox::tcp_info::peer_fin_in(&self.0) == Some(true) => {
                Some(CloseReason::PeerClosed)
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Some(CloseReason::PeerReset),
            _ => None,
        }
    }

    /// Bytes the client sent are in the receive buffer, unread: closing now
    /// makes the kernel answer with a RST. (Looked at after
    /// [`CloseWatch::client_closed`], which tells a FIN or RST behind them.)
    pub fn bytes_unread(&self) -> bool {
        let mut byte = [0_u8; 1];
        matches!(self.0.peek(&mut byte), Ok(n) if n > 0)
    }

    /// Reads the client's `close_notify` if what is unread is that alone,
    /// counting it in `conn`'s bytes in as hyper's reads are counted: one
    /// TLS record of an alert, by its type (TLS 1.2: the record type is in
    /// the clear, the alert encrypted, at most 26 bytes with AES-GCM's nonce
    /// and tag) or, under TLS 1.3, where it is sent as application data, by
    /// its size (two bytes, the inner type and a 16-byte tag, RFC 8446
    /// §5.2: the tag of every TLS 1.3 suite the lab offers, ring's defaults
    /// without CCM_8, `tls::server_config`). Read, it no longer turns the
    /// close that follows into a RST, as a server that reads the client's
    /// `close_notify` closes with a FIN. Anything else is left unread (a
    /// request sent before a half-close, say) and `false` returned. The
    /// idle verdict means nothing came since the last request, so a record
    /// this small is all the client sent since: never a request.
    pub fn take_close_notify(&self, conn: &Conn) -> bool {
        use std::io::Read as _;
        /// An alert's record type; application data's.
        const ALERT: u8 = 21;
        const DATA: u8 = 23;
        let mut bytes = [0_u8; 64];
        let Ok(n) = self.0.peek(&mut bytes) else {
            return false;
        };
        let length = usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
        let alert = match bytes[0] {
            ALERT => length <= 8 + 2 + 16,
            DATA => length == 2 + 1 + 16,
            _ => false,
        };
        // The record whole and nothing behind it (the peek saw all there
        // is: fewer bytes than its buffer holds).
        if !alert || bytes[1] != 3 || n != 5 + length || n >= bytes.len() {
            return false;
        }
        let read = (&self.0).read(&mut bytes[..n]).ok();
        if let Some(read) = read.filter(|&r| r > 0) {
            let now = conn.lab.tracker().clock().now_us();
            conn.counters.record_in(read as u64, now);
        }
        read == Some(n)
    }
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        // A response hyper still held bytes of when the socket closed: they
        // were never written.
        self.conn.h1_flushed(false);
        let idle = self.conn.idle_close.load(Ordering::Relaxed);
        let body = self.conn.body_unread_at_close();
        let meant = self.conn.meant_close();
        let race = self.conn.race_fin_on_purpose();
        // Looked at once (taking the socket's error clears it), and only
        // when the reason depends on it.
        let unread = if idle || body || race || meant.is_some() {
            self.unread()
        } else {
            Unread::Nothing
        };
        if idle {
            match unread {
                // A next request was already in the receive buffer as the
                // server closed: closing with unread bytes makes the kernel
                // send a RST.
                Unread::Request(method, target, _) => {
                    self.conn.replace_reason(CloseReason::KeepAliveRace {
                        method,
                        target,
                        close: RaceClose::Rst,
                        on_purpose: false,
                    })
                }
                // The client's FIN (or RST) was already in as the idle
                // deadline passed: the client closed first, whichever of the
                // two this task looked at first.
                Unread::Fin => self.conn.replace_reason(CloseReason::PeerClosed),
                Unread::Reset => self.conn.replace_reason(CloseReason::PeerReset),
                Unread::Nothing => {}
            }
        } else {
            match unread {
                // The client reset the connection before the server closed
                // it: the close the server meant never happened (found in
                // review: a client gone before its answer, with bytes still
                // queued, was recorded as the server's reset).
                Unread::Reset => self.conn.peer_reset_before_close(),
                // Bytes of the unread body are in the receive buffer: the
                // kernel answers the close with a RST.
                Unread::Request(..) if body => self.conn.body_unread_reset(),
                // The dropped request's body, or a request behind it, left
                // unread: the FIN meant went out as a RST (found in review).
                Unread::Request(..) if race => self.conn.race_fin_reset(),
                // Bytes behind the close the server meant: the kernel
                // answers the close with a RST. In the clear they are a
                // request pipelined behind the last one, named only if what
                // is left begins with its request line; over TLS they are
                // records, which may hold a request or the client's
                // `close_notify`, and are not read to tell.
                Unread::Request(method, target, head) => {
                    if let Some(after) = meant {
                        if self.tls {
                            self.conn
                                .unread_reset(after, |after| CloseReason::RecordsUnread { after });
                        } else {
                            self.conn
                                .unread_reset(after, |after| CloseReason::PipelinedUnread {
                                    after,
                                    method: head.then_some(method),
                                    target: head.then_some(target),
                                });
                        }
                    }
                }
                _ => {}
            }
        }
        if self.conn.reset_on_close.load(Ordering::Relaxed) {
            // Linger 0: closing now sends a RST instead of a FIN.
            let _ = socket2::SockRef::from(&self.inner).set_linger(Some(Duration::ZERO));
        }
        self.conn.closed();
    }
}

/// Whether `bytes` begin like a request line: one of the methods of RFC
/// 9110 §9 and PATCH (RFC 5789), then a space. The body bytes or the rest of
/// a head that follow a start already read do not (the end of a method cut
/// mid-line, `ST `, is none of them); a request with another method is not
/// named.
fn begins_a_request(bytes: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH",
    ];
    METHODS
        .iter()
        .any(|m| bytes.starts_with(m) && bytes.get(m.len()) == Some(&b' '))
}

/// Method and target from the start of a request head (as much as arrived).
pub fn request_line(bytes: &[u8]) -> (String, String) {
    let line_end = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(bytes.len());
    let line = String::from_utf8_lossy(&bytes[..line_end]);
    let mut words = line.split(' ');
    let method: String = words.next().unwrap_or("").chars().take(16).collect();
    // A request never read is tied to no session, so its connection's close
    // is shown to every viewer of the connection's scope: its `session=` is
    // blanked as well as its `key=` (found in review: a page's next request,
    // raced at an idle close, showed its session, the capability, to every
    // anonymous viewer on the same address).
    let target = blanked(words.next().unwrap_or(""), &["key", "session", "replaces"]);
    (method, target)
}

/// A request target as the lab records and shows it: truncated to
/// [`protocol::MAX_TARGET_LEN`], and with the value of any `key=` parameter
/// blanked to `key=…`, and of `replaces=` (`POST /api/sessions`: the
/// session a reload replaces, which still acts in the room until the new
/// one's page connects) to `replaces=…`.
///
/// Fix (found by `tests/isolation.rs`): the instructor's page opens
/// `/api/events?key=KEY`, and that request's target went verbatim into
/// `request_started` and snapshots, which an anonymous viewer on the same
/// host is shown (an unattributed connection from its own address): the
/// key, which grants the whole server, reached a participant.
pub fn recorded_target(target: &str) -> String {
    blanked(target, &["key", "replaces"])
}

/// `target` truncated, with the values of the parameters named `names`
/// blanked (`name=…`).
fn blanked(target: &str, names: &[&str]) -> String {
    // The name as `Params` reads it (percent-decoded: `k%65y` is `key`).
    let blank = |pair: &str| {
        let name = pair.split('=').next().unwrap_or("");
        form_urlencoded::parse(name.as_bytes())
            .next()
            .and_then(|(name, _)| names.iter().find(|n| **n == name).copied())
    };
    // A byte scan: `split_once('?')`'s searcher costs about 100
    // instructions on every request's target (bench figure 1).
    let query_at = target.bytes().position(|b| b == b'?');
    match query_at.map(|at| (&target[..at], &target[at + 1..])) {
        Some((path, query)) if query.split('&').any(|pair| blank(pair).is_some()) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match blank(pair) {
                    Some(name) => format!("{name}=…"),
                    None => pair.to_owned(),
                })
                .collect();
            protocol::truncate_target(&format!("{path}?{}", query.join("&")))
        }
        _ => protocol::truncate_target(target),
    }
}

/// What waits in a socket's receive buffer as the server closes it.
enum Unread {
    /// Nothing, as far as the socket knows.
    Nothing,
    /// Bytes: as the start of a request, its method and target, and
    /// whether they do begin like a request line (a method, a space), not
    /// the middle of a request whose start was already read.
    Request(String, String, bool),
    /// The client's FIN.
    Fin,
    /// The client's RST.
    Reset,
}

impl TrackedStream {
    /// What waits unread in the socket's receive buffer as the server
    /// closes it, looked at without taking it (so a close with bytes unread
    /// still resets, as it would have).
    fn unread(&self) -> Unread {
        // A peek still returns the bytes queued before a client's RST: the
        // reset is told by the socket's error (found in review).
        if let Ok(Some(e)) = self.inner.take_error()
            && e.kind() == io::ErrorKind::ConnectionReset
        {
            return Unread::Reset;
        }
        let mut bytes = [0_u8; RACE_PEEK];
        let mut buf = ReadBuf::new(&mut bytes);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.inner.poll_peek(&mut cx, &mut buf) {
            Poll::Ready(Ok(0)) => Unread::Fin,
            Poll::Ready(Ok(_)) => {
                let (method, target) = request_line(buf.filled());
                Unread::Request(method, target, begins_a_request(buf.filled()))
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => Unread::Reset,
            _ => Unread::Nothing,
        }
    }

    /// Applies the owner's TCP keep-alive setting to the socket; through
    /// the lab's middlebox, scaled with it ([`protocol::TcpKeepalive::scaled`]).
    fn apply_keepalive(&self) {
        let sock = socket2::SockRef::from(&self.inner);
        let result = match self.conn.policy().tcp_keepalive {
            Some(tcp) => {
                let tcp = match self.conn.middlebox_scale() {
                    Some(scale) => tcp.scaled(scale),
                    None => tcp,
                };
                sock.set_tcp_keepalive(
                    &socket2::TcpKeepalive::new()
                        .with_time(Duration::from_secs(tcp.idle_s.into()))
                        .with_interval(Duration::from_secs(tcp.interval_s.into())),
                )
            }
            None => sock.set_keepalive(false),
        };
        if let Err(e) = result {
            tracing::warn!("could not set TCP keep-alive: {e}");
        }
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if take_flag(&this.conn.keepalive_dirty) {
            this.apply_keepalive();
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        match &poll {
            Poll::Ready(Ok(())) => {
                let n = (buf.filled().len() - before) as u64;
                if n == 0 {
                    this.conn.saw_eof.store(true, Ordering::Relaxed);
                } else {
                    let conn = &this.conn;
                    let now = conn.lab.tracker().clock().now_us();
                    let was = conn.counters.bytes_in();
                    // A read of heads, not of a body, TLS records or an
                    // upgraded protocol's frames.
                    if !this.tls && conn.reading_heads() {
                        conn.note_read(&buf.filled()[before..], was);
                    }
                    if was == conn.bytes_in_mark.load(Ordering::Relaxed) {
                        // The first bytes since the last request: a head (or
                        // the rest of a body) has started; the watchdog
                        // switches from the idle timer to the header guard.
                        conn.head_since_us.store(now, Ordering::Relaxed);
                        conn.counters.record_in(n, now);
                        conn.changed();
                    } else {
                        conn.counters.record_in(n, now);
                    }
                }
            }
            Poll::Ready(Err(e)) => this.conn.note_io_error(e),
            Poll::Pending => {}
        }
        poll
    }
}

impl TrackedStream {
    fn count_write(&self, poll: &Poll<io::Result<usize>>) {
        match poll {
            Poll::Ready(Ok(n)) => {
                let now = self.conn.lab.tracker().clock().now_us();
                self.conn.counters.record_out(*n as u64, now);
                // Read first: a write that was not blocked (nearly every
                // one) costs a load, not a store (bench figure 1).
                if self.conn.write_blocked_since.load(Ordering::Relaxed) != 0 {
                    // Swapped, not stored: a flow-control stall that ended
                    // meanwhile may have moved its start earlier.
                    let since = self.conn.write_blocked_since.swap(0, Ordering::Relaxed);
                    self.conn.socket_stall_ended(since.saturating_sub(1), now);
                }
            }
            Poll::Ready(Err(e)) => self.conn.note_io_error(e),
            Poll::Pending => {
                let now = self.conn.lab.tracker().clock().now_us();
                if set_stamp(&self.conn.write_blocked_since, now) {
                    self.conn.changed();
                }
            }
        }
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.count_write(&poll);
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.count_write(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // hyper does not read while a request is in flight, but it flushes
        // after polling the handler: a request that just attributed the
        // connection gets its owner's TCP keep-alive here, before its answer.
        if take_flag(&this.conn.keepalive_dirty) {
            this.apply_keepalive();
        }
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = poll {
            // hyper flushes the stream once its own buffer is empty: a
            // response handed over whole is now all written.
            this.conn.h1_flushed(true);
        }
        poll
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_loopback_name_or_none_is_the_labs_machines_own() {
        for own in [
            None,
            Some("localhost:8080"),
            Some("LOCALHOST"),
            Some("lab.localhost:8080"),
            Some("127.0.0.1:8080"),
            Some("127.0.0.2"),
            Some("[::1]:8080"),
            Some("[::ffff:127.0.0.1]:8080"),
        ] {
            assert!(loopback_authority(own.map(str::as_bytes)), "{own:?}");
        }
        // Names that lead to 127.0.0.1 on the lab's machine (a
        // `--host-name`, its own host name) and every other address.
        for other in [
            "lab.test:8080",
            "vm",
            "localhost.example:8080",
            "notlocalhost",
            "192.0.2.2:8080",
            "[fe80::1]:8080",
            "0.0.0.0:8080",
            "",
            "bad host",
        ] {
            assert!(!loopback_authority(Some(other.as_bytes())), "{other}");
        }
    }

    #[test]
    fn only_loopback_is_the_labs_own_machine_not_its_lan_address() {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        for own in [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            // IPv4 loopback on a dual-stack socket.
            IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()),
        ] {
            assert!(labs_own_machine(own), "{own}");
        }
        // A LAN address, even the lab's own (the join link's), is not:
        // a browser sends it no `Sec-Fetch-Site` over plain HTTP.
        for other in [
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, 20)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            IpAddr::V6(Ipv4Addr::new(192, 168, 1, 20).to_ipv6_mapped()),
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ] {
            assert!(!labs_own_machine(other), "{other}");
        }
    }

    #[test]
    fn bytes_left_are_named_as_a_request_only_when_they_begin_with_its_line() {
        assert!(begins_a_request(b"POST /api/fast?id=3 HTTP/1.1\r\n"));
        assert!(begins_a_request(b"GET "), "as far as it arrived");
        assert!(!begins_a_request(b"xxxxxxxx"), "the rest of a body");
        assert!(
            !begins_a_request(b"ST /api/fast HTTP/1.1"),
            "the middle of a line"
        );
        assert!(!begins_a_request(b"Host: x\r\n"), "the rest of a head");
        assert!(!begins_a_request(b"GET"), "no space yet: not known");
        assert!(!begins_a_request(b""));
    }

    #[test]
    fn a_request_never_read_shows_neither_its_key_nor_its_session() {
        let (method, target) =
            request_line(b"GET /api/fast?id=b2-1&session=s-abc&k%65y=K HTTP/1.1\r\nHost: x\r\n");
        assert_eq!(method, "GET");
        assert_eq!(target, "/api/fast?id=b2-1&session=…&key=…");
        // Nor the session a reload replaces (found in review).
        let (_, target) = request_line(b"POST /api/sessions?replaces=s-abc HTTP/1.1\r\n");
        assert_eq!(target, "/api/sessions?replaces=…");
        // A request that was read keeps its session (it is its owner's), not
        // the one it replaces.
        assert_eq!(
            recorded_target("/api/fast?session=s-abc&key=K"),
            "/api/fast?session=s-abc&key=…"
        );
        assert_eq!(
            recorded_target("/api/sessions?replaces=s-abc"),
            "/api/sessions?replaces=…"
        );
    }

    /// Over HTTP/2 the socket and a stream's flow-control window are often
    /// blocked together (TLS takes plaintext while TCP is full): the
    /// watchdog counts one stall from the earlier start, and so does the
    /// total once both end (found in review: each added its own length, so
    /// a slow client was cut after half the total).
    #[tokio::test]
    async fn a_stall_of_the_socket_and_a_window_together_counts_once() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let lab = Lab::new(crate::Config::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpSocket::new_v4().unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        let mut client = client.connect(addr).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let slot = lab.peers().connect(peer.ip()).unwrap();
        let conn = Conn::open(&lab, peer, (peer.ip(), None), addr, Some(slot.in_flight()));
        conn.secured(true, Some("h2".into()), "TLSv1.3".into(), false);
        let mut tracked = TrackedStream::new(server, conn.clone(), slot);
        // The socket's writes block, then a window is spent too.
        let chunk = vec![b'.'; 64 * 1024];
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        while let Poll::Ready(written) = Pin::new(&mut tracked).poll_write(&mut cx, &chunk) {
            written.unwrap();
        }
        let started = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(100)).await;
        conn.h2_flow_blocked(true);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Both end: the client reads, the socket takes a write, and the
        // stream's window opens.
        let mut sink = vec![0u8; 1 << 20];
        let mut freed = 0;
        while freed < 4 << 20 {
            match tokio::time::timeout(Duration::from_millis(200), client.read(&mut sink)).await {
                Ok(Ok(n)) if n > 0 => freed += n,
                _ => break,
            }
        }
        assert_eq!(tracked.write(&chunk[..1]).await.unwrap(), 1);
        assert!(
            conn.stalls().write_blocked_since.is_some(),
            "the window's stall still runs, from the socket's start"
        );
        conn.h2_flow_blocked(false);
        let stalled = started.elapsed();
        let total = Duration::from_micros(conn.write_blocked_total_us.load(Ordering::Relaxed));
        assert!(
            total >= Duration::from_millis(390) && total <= stalled + Duration::from_millis(10),
            "one stall of {stalled:?} counted {total:?}"
        );
    }

    #[test]
    fn number_values_read_as_format_writes_them() {
        for n in (0..1100).chain([65_535, 4_294_967_296, u64::MAX]) {
            assert_eq!(number_value(n).to_str().ok(), Some(n.to_string().as_str()));
        }
    }

    #[test]
    fn keep_alive_values_read_as_format_writes_them() {
        for (timeout_s, max_left) in [
            (0, None),
            (5, None),
            (600, Some(99)),
            (10, Some(0)),
            (u64::MAX, Some(u32::MAX)),
        ] {
            let expected = match max_left {
                Some(max) => format!("timeout={timeout_s}, max={max}"),
                None => format!("timeout={timeout_s}"),
            };
            let value = keep_alive_value(timeout_s, max_left).expect("ASCII");
            assert_eq!(value.to_str().expect("ASCII"), expected);
            // Again: the shared value of the thread's cache, when without `max`.
            let again = keep_alive_value(timeout_s, max_left).expect("ASCII");
            assert_eq!(again.to_str().expect("ASCII"), expected);
        }
    }
}
