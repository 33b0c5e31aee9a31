//! The table of open connections and the live event stream.
//!
//! Every fact the lab reports goes through [`Tracker::record`], which applies
//! the event to the table and hands it out while holding one lock, the
//! stream's. A new viewer takes its snapshot and subscribes under the same
//! lock ([`Tracker::subscribe`], [`Tracker::subscribe_scoped`]), so it sees
//! every event after its snapshot exactly once: no gap, no double.
//!
//! The table is split over shards by connection, each with its own lock
//! (taken after the stream's). While nobody listens, a connection's event
//! only changes its shard, under that shard's lock alone: every request
//! records three events, and this keeps the two cores' requests off one
//! shared lock (bench figure 1). A viewer marks the tracker watched before
//! it reads each shard, so an event that found it unwatched is in the
//! viewer's snapshot, and one that comes after is handed out to it.
//!
//! # Fan-out
//!
//! Two kinds of subscriber:
//! - the whole stream (the instructor's view, tests, the lab's own tasks): one
//!   [`broadcast`] channel;
//! - a participant's page ([`Feed`]): its own bounded queue, fed only the
//!   events that can concern it, routed under the lock by the event's owner
//!   (the session a connection's first request named, or the session a policy,
//!   middlebox or agent event belongs to) and, for connections that have not
//!   named a session yet, by the client's host. Filtering every event of a
//!   room in every participant's task cost N² work: at 200 participants the
//!   fan-out p99 was 0.9 s (bench figure 8). [`crate::events::Filter`] still
//!   decides what is shown; the routing only spares it events that could never
//!   concern its viewer.
//!
//! Each event is put in an [`Arc`] once, and that one allocation goes to the
//! broadcast channel and to every feed it is routed to: handing it out costs
//! a reference count per viewer under the lock, not a copy of the event (a
//! copy per viewer was the server's largest cost per event with many
//! viewers, `docs/known-gaps.md`). Each viewer serialises it in its own task,
//! for its own scope. Only [`Tracker::subscribe_copies`] (for
//! [`crate::Lab::subscribe`]: tests and tools that take events apart) hands
//! out owned copies, on a channel of its own.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use protocol::{
    CloseReason, ConnId, ConnectionSnapshot, Micros, RequestId, RequestOutcome, RequestSnapshot,
    ServerEvent, SessionId,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc};

use crate::{Clock, OwnLines};

/// How many shards the table of open connections is split over (see
/// `Tracker::shards`): enough that two requests running at once on two
/// cores rarely share one.
const SHARDS: usize = 16;

/// One shard of the table of open connections.
type Table = BTreeMap<ConnId, ConnRecord>;

/// Byte counters of one connection, written by its IO wrapper on every read
/// and write (atomics, so the hot path never takes the table lock) and read
/// when a snapshot is taken.
///
/// Each count has one writer: the connection's IO wrapper, whose reads and
/// writes come through `&mut` (`conn::TrackedStream`). So a count grows by a
/// load and a store, not a locked add (two a request, bench figure 1), and a
/// reader sees the count before a read or after it, never a torn one.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes read from the socket.
    bytes_in: AtomicU64,
    /// Bytes written to the socket.
    bytes_out: AtomicU64,
    /// Server clock + 1 at the last read (0: nothing read yet).
    last_in: AtomicU64,
    /// Server clock + 1 at the last write (0: nothing written yet).
    last_out: AtomicU64,
}

impl Counters {
    /// `n` bytes were read at `now`. Only the connection's IO wrapper calls
    /// this (the count's one writer). Released: what the wrapper stored
    /// before it (when a head started) is seen by whoever sees the count.
    pub fn record_in(&self, n: u64, now: Micros) {
        let total = self.bytes_in.load(Ordering::Relaxed).saturating_add(n);
        self.last_in.store(now.saturating_add(1), Ordering::Relaxed);
        self.bytes_in.store(total, Ordering::Release);
    }

    /// `n` bytes were written at `now`. Only the connection's IO wrapper
    /// calls this (the count's one writer).
    pub fn record_out(&self, n: u64, now: Micros) {
        let total = self.bytes_out.load(Ordering::Relaxed).saturating_add(n);
        self.last_out
            .store(now.saturating_add(1), Ordering::Relaxed);
        self.bytes_out.store(total, Ordering::Release);
    }

    /// Bytes read from the socket so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Acquire)
    }

    /// Bytes written to the socket so far.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Acquire)
    }

    /// When the last byte arrived, if any did.
    pub fn last_in_us(&self) -> Option<Micros> {
        self.last_in.load(Ordering::Relaxed).checked_sub(1)
    }

    /// When the last byte was written, if any was.
    pub fn last_out_us(&self) -> Option<Micros> {
        self.last_out.load(Ordering::Relaxed).checked_sub(1)
    }
}

/// What the table remembers of one open connection.
#[derive(Debug)]
struct ConnRecord {
    /// When it was accepted.
    opened_us: Micros,
    /// Client address.
    peer: SocketAddr,
    /// The client's machine, for routing its events before it names a
    /// session: the address it is charged to (`Conn::charged_ip`), which
    /// for a connection the lab's middlebox or agent made is the client it
    /// serves, not the loopback address it comes from.
    host: IpAddr,
    /// Listener address it arrived on.
    local: SocketAddr,
    /// Its session, once attributed.
    session: Option<SessionId>,
    /// Set once upgraded.
    upgraded: Option<protocol::UpgradeRole>,
    /// Set once a TLS port's handshake chose it (`connection_secured`).
    protocol: Option<String>,
    /// Shared with the IO wrapper.
    counters: Arc<Counters>,
    /// Requests carried in total.
    requests_total: u32,
    /// Recent requests, oldest first: every one in flight and at most
    /// [`trim_after`] completed ones, of which a viewer is shown the newest
    /// `keep` ([`ConnRecord::kept`]).
    requests: VecDeque<Kept>,
    /// How many of `requests` have completed (kept, not counted at every
    /// request's end: bench figure 1).
    completed: usize,
}

/// How many completed requests a connection's history holds before it drops
/// all but the newest `keep` ([`ConnRecord::finished`]): half as many again,
/// so a trim comes once every `keep / 2 + 1` requests.
fn trim_after(keep: usize) -> usize {
    keep + keep / 2
}

/// The most bytes the requests of the whole server's snapshot take (the
/// instructor's, [`Tracker::snapshot`]): past it, each connection shows
/// fewer of its newest completed requests (every one in flight stays).
/// 4 MiB: some 14 000 requests with targets of 100 bytes, a room of 30
/// with 15 connections each keeping all 32.
pub const SNAPSHOT_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// The same for a participant's snapshot (a session's, the anonymous
/// scope's): 256 KiB, some 900 requests with targets of 100 bytes, where a
/// lesson's burst of 200 on six connections keeps 192. With the requests
/// a session may have in flight (256), what its unread snapshots can hold
/// is bounded too (64 MiB at most, for the write-stall guard's 10 s).
pub const SCOPED_SNAPSHOT_REQUEST_BYTES: usize = 256 * 1024;

/// The most bytes of a request's JSON in a snapshot that are not its
/// method and target: its field names, ids, times (up to 115 days of
/// uptime), status and outcome (127 for a request just begun, 185 at most),
/// so that the budget is never overrun by an estimate short of the JSON.
const REQUEST_SNAPSHOT_FIELDS_BYTES: usize = 185;

/// Asked of a connection's requests oldest first: true for the first `n`
/// completed ones (the ones beyond the newest `keep`: a trim drops them, a
/// snapshot does not show them), false for every other.
fn oldest_completed(mut n: usize) -> impl FnMut(&Kept) -> bool {
    move |r| {
        let older = n > 0 && r.outcome.is_some();
        n -= usize::from(older);
        older
    }
}

/// The methods a [`Kept`] request names by number, in the order of their
/// numbers (RFC 9110 section 9 and RFC 5789's `PATCH`): every request
/// keeps its method, and these need no text of their own.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// [`Kept::method`] of any other method: its name is in [`Kept::text`],
/// before the target and a space (a method is a token: it has no space).
const EXTENSION: u8 = u8::MAX;

/// A time [`Kept`] does not know yet (no stamp comes near it: the clock
/// counts microseconds from the server's start).
const NOT_YET: Micros = Micros::MAX;

/// One of a connection's recent requests as the table keeps it: every fact
/// of its [`RequestSnapshot`] (made from it when a viewer asks for a
/// snapshot), in 64 bytes and one allocation (its target) instead of 112
/// and two (its method and its target).
///
/// Why: every open connection keeps at least its request in flight, and a
/// connection's history starts with room for four, so a held connection
/// costs 192 bytes less (bench figure 2: 9.84 → 9.65 KB), and a request one
/// allocation less (figure 1). Each request writes its connection's newest
/// entry; the oldest ones, last touched `keep` requests of that connection
/// ago, are dropped in batches ([`ConnRecord::finished`]), so the history's
/// size is also what a request waits for on a host whose shared cache is
/// busy (`bench/src/causes.md`).
#[derive(Debug)]
struct Kept {
    /// Server-wide id.
    request: RequestId,
    /// When its head was read.
    started_us: Micros,
    /// When its response head was produced; [`NOT_YET`] before.
    response_us: Micros,
    /// When it ended; [`NOT_YET`] before.
    finished_us: Micros,
    /// Its target, preceded by its method and a space when that is not one
    /// of [`METHODS`].
    text: Box<str>,
    /// n-th request on its connection.
    seq: u32,
    /// Response status, once known.
    status: Option<u16>,
    /// How it ended, once it has.
    outcome: Option<RequestOutcome>,
    /// Its method's index in [`METHODS`], or [`EXTENSION`].
    method: u8,
}

impl Kept {
    /// A request whose head was read at `at_us`.
    fn new(request: RequestId, seq: u32, method: &str, target: String, at_us: Micros) -> Kept {
        let (method, text) = match METHODS.iter().position(|m| *m == method) {
            Some(i) => (i as u8, target.into_boxed_str()),
            None => (EXTENSION, format!("{method} {target}").into_boxed_str()),
        };
        Kept {
            request,
            started_us: at_us,
            response_us: NOT_YET,
            finished_us: NOT_YET,
            text,
            seq,
            status: None,
            outcome: None,
            method,
        }
    }

    /// Its method and target.
    fn method_and_target(&self) -> (&str, &str) {
        match METHODS.get(usize::from(self.method)) {
            Some(method) => (method, &self.text),
            None => self.text.split_once(' ').unwrap_or(("", &self.text)),
        }
    }

    /// At least how many bytes of JSON it is in a snapshot: its fields and
    /// their names, its method and target, each `"` and `\` of which JSON
    /// writes as two (a target may have them: found in review, a target of
    /// backslashes was twice its estimate). Control characters, which JSON
    /// writes as six, are never in a target ([`Tracker::snapshot`]'s budget).
    fn snapshot_bytes(&self) -> usize {
        let escaped = self
            .text
            .bytes()
            .filter(|b| matches!(b, b'"' | b'\\'))
            .count();
        REQUEST_SNAPSHOT_FIELDS_BYTES + self.text.len() + escaped
    }

    /// The request as a viewer's snapshot shows it.
    fn snapshot(&self) -> RequestSnapshot {
        let (method, target) = self.method_and_target();
        let known = |at: Micros| (at != NOT_YET).then_some(at);
        RequestSnapshot {
            request: self.request,
            seq: self.seq,
            method: method.to_owned(),
            target: target.to_owned(),
            started_us: self.started_us,
            response_us: known(self.response_us),
            finished_us: known(self.finished_us),
            status: self.status,
            outcome: self.outcome,
        }
    }
}

impl ConnRecord {
    /// Its request `request`'s response head (`status`, stamped `at_us`),
    /// if that request is kept and has none yet; whether it was new.
    fn responded(&mut self, request: RequestId, status: u16, at_us: Micros) -> bool {
        match self
            .requests
            .iter_mut()
            .rev()
            .find(|r| r.request == request)
        {
            Some(r) if r.response_us == NOT_YET => {
                r.response_us = at_us;
                r.status = Some(status);
                true
            }
            _ => false,
        }
    }

    /// A request ended: records it. Whether it was in flight here.
    ///
    /// The table keeps the newest `keep` completed requests (and every one
    /// in flight): [`ConnRecord::kept`] is what a viewer is shown. The
    /// older completed ones are dropped in a batch once half as many again
    /// have come ([`trim_after`]), not one at each request's end: the
    /// oldest entry was last touched `keep` requests of this connection
    /// ago, and reading it at every request made each end wait for memory
    /// (bench figure 1, `bench/src/causes.md`), where a batch reads its
    /// entries in order.
    fn finished(
        &mut self,
        request: RequestId,
        outcome: RequestOutcome,
        at_us: Micros,
        keep: usize,
    ) -> bool {
        match self
            .requests
            .iter_mut()
            .rev()
            .find(|r| r.request == request)
        {
            Some(r) if r.outcome.is_none() => {
                r.outcome = Some(outcome);
                r.finished_us = at_us;
            }
            _ => return false,
        }
        self.completed += 1;
        if self.completed > trim_after(keep) {
            let mut older = oldest_completed(self.completed - keep);
            self.requests.retain(|r| !older(r));
            self.completed = keep;
        }
        true
    }

    /// The requests a viewer is shown: every one in flight and the newest
    /// `keep` completed ones, oldest first (the table may still hold older
    /// completed ones until its next trim: [`ConnRecord::finished`]).
    fn kept(&self, keep: usize) -> impl Iterator<Item = &Kept> {
        let mut older = oldest_completed(self.completed.saturating_sub(keep));
        self.requests.iter().filter(move |r| !older(r))
    }

    /// A request's head was read on this connection.
    fn started(
        &mut self,
        request: RequestId,
        seq: u32,
        method: &str,
        target: String,
        at_us: Micros,
    ) {
        self.requests_total = self.requests_total.max(seq);
        self.requests
            .push_back(Kept::new(request, seq, method, target, at_us));
    }
}

/// A request's head as read, for [`Tracker::request_started`].
#[derive(Debug)]
pub struct RequestHead<'a> {
    /// Its connection.
    pub conn: ConnId,
    /// Its server-wide id.
    pub request: RequestId,
    /// n-th request on its connection, from 1.
    pub seq: u32,
    /// Its method.
    pub method: &'a str,
    /// Its target as recorded (`conn::recorded_target`).
    pub target: String,
    /// Its `Connection` header, if it had one (shown in the event only).
    pub connection: Option<String>,
}

/// Connection table plus event broadcast. See the module docs.
#[derive(Debug)]
pub struct Tracker {
    /// The one clock every event is stamped with.
    clock: Clock,
    /// Next connection id; ids are never reused during a run.
    next_conn: AtomicU64,
    /// Next request id, server-wide. Written by every request: on cache
    /// lines of its own (see [`OwnLines`]).
    next_request: OwnLines<AtomicU64>,
    /// Completed requests kept per connection.
    keep_per_conn: usize,
    /// The stream's lock: an event is stamped, applied and handed out
    /// under it, and a viewer takes its snapshot and subscribes under it
    /// (see the module docs). Taken first (lock order: stream, a shard,
    /// viewers). On cache lines of its own, like each shard.
    stream: OwnLines<Mutex<()>>,
    /// Open connections, split by id over [`SHARDS`] tables. An event of a
    /// connection that nobody can hear (`watched` clear) is applied under
    /// its shard's lock alone: every request records three (two updates of
    /// the table when its head is kept for its end:
    /// [`Tracker::response_then_finished`]), and one table lock that both
    /// cores took three times a request was the lab's largest cost of its
    /// own (bench figure 1, `bench/src/causes.md`).
    /// Each shard on cache lines of its own.
    shards: [OwnLines<Mutex<Table>>; SHARDS],
    /// Live events for whole-stream subscribers, each with a bounded lag.
    /// Each event is one shared allocation, the same one the feeds get: a
    /// receiver's `recv` clones the `Arc`, not the event (see the module
    /// docs).
    events: broadcast::Sender<Arc<ServerEvent>>,
    /// The whole stream again as owned events, for
    /// [`Tracker::subscribe_copies`]: [`crate::Lab::subscribe`]'s callers
    /// (tests, the end-to-end crate among them) name
    /// `broadcast::Receiver<ServerEvent>` and take events apart by value.
    /// Made by its first subscriber, so a lab with none (in production,
    /// every viewer uses `events` or a feed) keeps no second buffer of
    /// `event_buffer` slots and copies nothing for it.
    copies: OnceLock<broadcast::Sender<ServerEvent>>,
    /// Participants' feeds, indexed for routing. Locked only while `stream`
    /// is held.
    viewers: Mutex<Viewers>,
    /// Events a feed may hold before it counts as lagging.
    event_buffer: usize,
    /// Someone may be listening: set when a subscriber or a feed is added,
    /// cleared by the first event that finds neither. Both under the
    /// stream's lock; a subscriber sets it before it takes each shard's
    /// lock for its snapshot, and an event read it clear under its shard's
    /// lock only if it is in that snapshot: so an event never misses a new
    /// listener, and an event for nobody costs one atomic read and its
    /// shard's lock instead of the stream's, the broadcast's and the
    /// feeds' locks (three events a request: bench figure 1).
    watched: AtomicBool,
    /// The client host of each open middlebox mapping that named no
    /// session: its events go to the viewers on that host, as an
    /// unattributed connection's do, not to every anonymous viewer on any
    /// machine (found in review). Its host is the one the middlebox charges
    /// it to when told (`Tracker::charge_mapping`), else its client's.
    /// Locked alone or while `stream` is held.
    anonymous_mappings: Mutex<HashMap<protocol::MappingId, IpAddr>>,
}

impl Tracker {
    /// An empty tracker that keeps `keep_per_conn` completed requests per
    /// connection and buffers `event_buffer` events for each viewer.
    pub fn new(clock: Clock, keep_per_conn: usize, event_buffer: usize) -> Tracker {
        Tracker {
            clock,
            next_conn: AtomicU64::new(1),
            next_request: OwnLines(AtomicU64::new(1)),
            keep_per_conn,
            stream: OwnLines(Mutex::new(())),
            shards: std::array::from_fn(|_| OwnLines(Mutex::new(BTreeMap::new()))),
            events: broadcast::Sender::new(event_buffer.max(1)),
            copies: OnceLock::new(),
            viewers: Mutex::new(Viewers::default()),
            event_buffer: event_buffer.max(1),
            watched: AtomicBool::new(false),
            anonymous_mappings: Mutex::new(HashMap::new()),
        }
    }

    /// Stamps an event with the clock and records it ([`Tracker::record`]).
    /// The stamp is taken under the table lock, so events stamped here are
    /// broadcast in the order of their timestamps. Returns the stamp.
    pub fn emit(&self, event: impl FnOnce(Micros) -> ServerEvent) -> Micros {
        self.record_with(None, event)
    }

    /// [`Tracker::emit`] with the stamp already taken, when the caller has
    /// one that says when it happened on the socket (the write that took a
    /// response's last bytes; a request's head, stamped by the read that
    /// brought it, goes through [`Tracker::request_started`]): no second
    /// reading of the clock (bench figure 1). Such a stamp can be a
    /// few microseconds older than an event of another connection broadcast
    /// before it. `None`: stamped now, as [`Tracker::emit`].
    pub fn emit_at(
        &self,
        at_us: Option<Micros>,
        event: impl FnOnce(Micros) -> ServerEvent,
    ) -> Micros {
        self.record_with(at_us, event)
    }

    /// The clock events are stamped with.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// A fresh request id.
    pub fn next_request_id(&self) -> RequestId {
        RequestId(self.next_request.fetch_add(1, Ordering::Relaxed))
    }

    // A panic while holding a lock cannot leave the table half-updated in a
    // way that matters more than losing the lab, so the guards are recovered.

    /// The stream's lock (see `stream`).
    fn stream(&self) -> MutexGuard<'_, ()> {
        self.stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The lock of `conn`'s shard of the table.
    fn shard(&self, conn: ConnId) -> MutexGuard<'_, Table> {
        // Ids are handed out in turn: consecutive connections, the ones open
        // at once, fall in different shards.
        let index = usize::try_from(conn.0 % SHARDS as u64).unwrap_or(0);
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every shard's lock in turn: what `f` makes of each. Under the
    /// stream's lock, one consistent view of the table (see `watched`);
    /// without it, shards read a moment apart.
    fn each_shard<T>(&self, mut f: impl FnMut(&Table) -> T) -> Vec<T> {
        self.shards
            .iter()
            .map(|shard| f(&shard.lock().unwrap_or_else(|p| p.into_inner())))
            .collect()
    }

    /// The open connections `include` picks, each as a viewer is shown it,
    /// in the order they were opened: with every request in flight and the
    /// newest completed ones, as many of them on each connection as keep
    /// the requests within `budget` bytes of JSON (up to the table's
    /// `keep_per_conn`), shared fairly between owners ([`fair_keeps`]: one
    /// participant's many connections do not cut another's history short).
    /// Found in the room review: one session with 500 connections of 32
    /// kept requests each, their targets of 500 bytes, made every
    /// `GET /api/connections` an 11 MB answer, built under the stream's lock
    /// and held while the client did not read it.
    fn snapshot(
        &self,
        mut include: impl FnMut(ConnId, &ConnRecord) -> bool,
        budget: usize,
    ) -> Vec<ConnectionSnapshot> {
        // Each owner's requests' bytes (a session's; a host's, for the
        // connections that named none) by how many completed ones each of
        // its connections shows (every one in flight is shown).
        let group = |r: &ConnRecord| match &r.session {
            Some(session) => (Some(session.clone()), None),
            None => (None, Some(HostKey::of(r.host))),
        };
        let mut groups: HashMap<(Option<SessionId>, Option<HostKey>), Vec<usize>> = HashMap::new();
        let mut completed = Vec::with_capacity(self.keep_per_conn);
        self.each_shard(|table| {
            for (_, r) in table.iter().filter(|(conn, r)| include(**conn, r)) {
                let mut in_flight = 0;
                completed.clear();
                for request in r.requests.iter().rev() {
                    if request.outcome.is_none() {
                        in_flight += request.snapshot_bytes();
                    } else if completed.len() < self.keep_per_conn {
                        completed.push(request.snapshot_bytes());
                    }
                }
                let bytes = groups
                    .entry(group(r))
                    .or_insert_with(|| vec![0; self.keep_per_conn + 1]);
                let mut shown = in_flight;
                for (k, at) in bytes.iter_mut().enumerate() {
                    if let Some(size) = k.checked_sub(1).and_then(|i| completed.get(i)) {
                        shown += size;
                    }
                    *at += shown;
                }
            }
        });
        let keeps = fair_keeps(groups, budget);
        let mut all: Vec<ConnectionSnapshot> = self
            .each_shard(|table| {
                table
                    .iter()
                    .filter(|(conn, r)| include(**conn, r))
                    .map(|(conn, r)| {
                        let keep = keeps.get(&group(r)).copied().unwrap_or(0);
                        snapshot_one(*conn, r, keep)
                    })
                    .collect::<Vec<_>>()
            })
            .into_iter()
            .flatten()
            .collect();
        all.sort_unstable_by_key(|c| c.conn);
        all
    }

    /// Adds a connection to the table and announces it.
    pub fn open(
        &self,
        conn: ConnId,
        (peer, host): (SocketAddr, IpAddr),
        local: SocketAddr,
        counters: Arc<Counters>,
    ) {
        let at_us = self.clock.now_us();
        let _stream = self.stream();
        self.shard(conn).insert(
            conn,
            ConnRecord {
                opened_us: at_us,
                peer,
                host,
                local,
                session: None,
                upgraded: None,
                protocol: None,
                counters,
                requests_total: 0,
                requests: VecDeque::new(),
                completed: 0,
            },
        );
        let event = ServerEvent::ConnectionOpened {
            conn,
            at_us,
            peer: peer.to_string(),
            local_addr: local.to_string(),
            local_port: local.port(),
        };
        self.hand_out(event, Route::Conn(None, host));
    }

    /// Removes a connection and announces why it closed. Requests still in
    /// flight on it are reported as aborted first, so a viewer never sees a
    /// request outlive its connection.
    pub fn close(&self, conn: ConnId, reason: CloseReason, requests: u32) {
        let _stream = self.stream();
        let Some(record) = self.shard(conn).remove(&conn) else {
            return;
        };
        let at_us = self.clock.now_us();
        let route = || Route::Conn(record.session.clone(), record.host);
        for request in record.requests.iter().filter(|r| r.outcome.is_none()) {
            let event = ServerEvent::RequestFinished {
                conn,
                request: request.request,
                outcome: RequestOutcome::Aborted,
                at_us,
            };
            self.hand_out(event, route());
        }
        let event = ServerEvent::ConnectionClosed {
            conn,
            reason,
            bytes_in: record.counters.bytes_in(),
            bytes_out: record.counters.bytes_out(),
            last_in_us: record.counters.last_in_us(),
            last_out_us: record.counters.last_out_us(),
            requests,
            at_us,
        };
        self.hand_out(event, route());
    }

    /// Applies a per-request or upgrade event to the table and broadcasts it.
    ///
    /// Events for a connection that is no longer open, and a second
    /// `RequestFinished` for the same request, are dropped: they can only be
    /// late echoes of what [`Tracker::close`] already reported.
    pub fn record(&self, event: ServerEvent) {
        self.record_with(None, |_| event);
    }

    /// [`Tracker::emit`], [`Tracker::emit_at`] and [`Tracker::record`]:
    /// returns the stamp (`at_us`, or the clock's reading) given to `make`.
    fn record_with(
        &self,
        at_us: Option<Micros>,
        make: impl FnOnce(Micros) -> ServerEvent,
    ) -> Micros {
        if !self.watched.load(Ordering::Relaxed) {
            // Nobody is listening: a connection's event only changes its
            // shard of the table. Stamped outside any lock: nobody hears
            // the order.
            let now = at_us.unwrap_or_else(|| self.clock.now_us());
            let event = make(now);
            if let Some(mut table) = event.conn().and_then(|conn| self.unwatched_shard(conn)) {
                self.apply(&mut table, &event);
                return now;
            }
            // An event of no connection, or a viewer came in between: its
            // snapshot does not have the event, so it is handed out (its
            // stamp can be a few microseconds older than an event handed
            // out before it, as `emit_at`'s can).
            let _stream = self.stream();
            self.record_locked(event);
            return now;
        }
        let _stream = self.stream();
        let now = at_us.unwrap_or_else(|| self.clock.now_us());
        let event = make(now);
        self.record_locked(event);
        now
    }

    /// `conn`'s shard of the table, locked, if nobody listens: checked
    /// again under the shard's lock, which a new viewer takes after it
    /// sets `watched` (see there). `None` when someone may listen.
    fn unwatched_shard(&self, conn: ConnId) -> Option<MutexGuard<'_, Table>> {
        if self.watched.load(Ordering::Relaxed) {
            return None;
        }
        let table = self.shard(conn);
        (!self.watched.load(Ordering::Relaxed)).then_some(table)
    }

    /// Applies `event` and hands it out if anyone may hear it. Called with
    /// the stream's lock held.
    fn record_locked(&self, event: ServerEvent) {
        let mut table = event.conn().map(|conn| self.shard(conn));
        if !self.is_watched() {
            // Nobody is watching: keep the facts, hand out nothing (a
            // request's start comes through `request_started`, which does
            // not even make the event).
            if let ServerEvent::Middlebox {
                session: None,
                mapping,
                event: inner,
                ..
            } = &event
            {
                // Its route is learned from its `opened` and forgotten at
                // its `closed` even when nobody hears them: a viewer may
                // come in between.
                let _ = self.anonymous_mapping_route(*mapping, inner);
            }
            if let Some(table) = table.as_deref_mut() {
                self.apply(table, &event);
            }
            return;
        }
        self.apply_and_hand_out(table.as_deref_mut(), event);
    }

    /// A request's head was read: [`ServerEvent::RequestStarted`], as
    /// [`Tracker::emit_at`] records it, but the event (and its method's
    /// text) is made only when someone may hear it. Unwatched, its
    /// connection's shard of the table keeps the request without either
    /// (bench figure 1).
    pub fn request_started(&self, at_us: Option<Micros>, head: RequestHead<'_>) -> Micros {
        if let Some(mut table) = self.unwatched_shard(head.conn) {
            let now = at_us.unwrap_or_else(|| self.clock.now_us());
            if let Some(record) = table.get_mut(&head.conn) {
                record.started(head.request, head.seq, head.method, head.target, now);
            }
            return now;
        }
        let _stream = self.stream();
        let now = at_us.unwrap_or_else(|| self.clock.now_us());
        let event = ServerEvent::RequestStarted {
            conn: head.conn,
            request: head.request,
            seq: head.seq,
            method: head.method.to_owned(),
            target: head.target,
            connection: head.connection,
            at_us: now,
        };
        self.record_locked(event);
        now
    }

    /// Whether someone may hear an event now (one atomic read; a viewer
    /// can come at any moment after it). `conn::RequestGuard::respond`
    /// keeps a response's head for its request's end only when this is
    /// false.
    pub fn may_be_heard(&self) -> bool {
        self.watched.load(Ordering::Relaxed)
    }

    /// A request's end and, before it, its response's head that was kept
    /// for it (`status`, stamped `head_at` when the head was handed to
    /// hyper): [`ServerEvent::ResponseStarted`] then
    /// [`ServerEvent::RequestFinished`], as two [`Tracker::emit_at`] would
    /// record them, but under one lock of the connection's shard while
    /// nobody listens (one of a request's three table updates fewer: bench
    /// figure 1). A viewer who came since the head was kept hears both, in
    /// that order, each with its own stamp. Returns the end's stamp.
    pub fn response_then_finished(
        &self,
        (conn, request): (ConnId, RequestId),
        (status, head_at): (u16, Micros),
        outcome: RequestOutcome,
        at_us: Option<Micros>,
    ) -> Micros {
        if let Some(mut table) = self.unwatched_shard(conn) {
            let now = at_us.unwrap_or_else(|| self.clock.now_us());
            if let Some(record) = table.get_mut(&conn) {
                record.responded(request, status, head_at);
                record.finished(request, outcome, now, self.keep_per_conn);
            }
            return now;
        }
        self.emit_at(Some(head_at), |at_us| ServerEvent::ResponseStarted {
            conn,
            request,
            status,
            at_us,
        });
        self.emit_at(at_us, |at_us| ServerEvent::RequestFinished {
            conn,
            request,
            outcome,
            at_us,
        })
    }

    /// Applies a watched event to its connection's shard of the table
    /// (`None` for an event of no connection) and hands it out, unless it
    /// is a late echo ([`Tracker::record`]). Called with the stream's lock
    /// held.
    fn apply_and_hand_out(&self, mut table: Option<&mut Table>, event: ServerEvent) {
        if table
            .as_deref_mut()
            .is_none_or(|table| self.apply(table, &event))
        {
            let route = match &event {
                ServerEvent::Middlebox {
                    session: None,
                    mapping,
                    event: inner,
                    ..
                } => self.anonymous_mapping_route(*mapping, inner),
                _ => route_of(table.as_deref(), &event),
            };
            self.hand_out(event, route);
        }
    }

    /// Says that the events of mapping `mapping`, which names no session,
    /// go to the viewers on `host`: the middlebox charges an agent's
    /// mapping to its participant's address (`Peers::charged_ip`), where its
    /// client's is the lab's loopback (found in review: they went to the
    /// lab machine's own viewers). Called just before the mapping's
    /// `opened` or `refused` is recorded, which take the note (the
    /// `closed` that follows an `opened` forgets it).
    pub fn charge_mapping(&self, mapping: protocol::MappingId, host: IpAddr) {
        self.anonymous_mappings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(mapping, host);
    }

    /// Where an event of a mapping that named no session goes: the viewers
    /// on the host it is charged to ([`Tracker::charge_mapping`]), or else
    /// on its client's (learned from its `opened`; a `refused` one names
    /// its client too).
    fn anonymous_mapping_route(
        &self,
        mapping: protocol::MappingId,
        event: &protocol::MiddleboxEvent,
    ) -> Route {
        use protocol::MiddleboxEvent as M;
        let host = |client: &str| client.parse::<SocketAddr>().ok().map(|a| a.ip());
        let mut mappings = self
            .anonymous_mappings
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let ip = match event {
            M::Opened { client, .. } => match mappings.get(&mapping) {
                Some(charged) => Some(*charged),
                None => host(client).inspect(|ip| {
                    mappings.insert(mapping, *ip);
                }),
            },
            M::Refused { client, .. } => mappings.remove(&mapping).or_else(|| host(client)),
            M::Closed { .. } => mappings.remove(&mapping),
            _ => mappings.get(&mapping).copied(),
        };
        // Unknown: the instructor's whole stream only.
        ip.map_or(Route::Nobody, Route::AnonymousOn)
    }

    /// Whether anyone may hear an event (see `watched`). Called with the
    /// stream's lock held.
    fn is_watched(&self) -> bool {
        if !self.watched.load(Ordering::Relaxed) {
            return false;
        }
        if self.events.receiver_count() == 0
            && self.copies_wanted().is_none()
            && self.viewers().is_empty()
        {
            self.watched.store(false, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn viewers(&self) -> MutexGuard<'_, Viewers> {
        // Routing never panics half-way through an update; recover the guard.
        self.viewers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The owned copies' channel, if it has a receiver.
    fn copies_wanted(&self) -> Option<&broadcast::Sender<ServerEvent>> {
        self.copies.get().filter(|tx| tx.receiver_count() > 0)
    }

    /// Sends `event` to the whole stream and to the feeds `route` reaches:
    /// one `Arc` for all of them (see the module docs). Called with the
    /// stream's lock held.
    fn hand_out(&self, event: ServerEvent, route: Route) {
        let whole = self.events.receiver_count() > 0;
        let copies = self.copies_wanted();
        let event = {
            let mut viewers = self.viewers();
            if viewers.is_empty() && !whole && copies.is_none() {
                // `open` and `close` get here unwatched: no allocation for
                // nobody.
                return;
            }
            let event = Arc::new(event);
            viewers.send(&event, &route);
            event
        };
        if whole {
            let _ = self.events.send(Arc::clone(&event));
        }
        if let Some(copies) = copies {
            // Moved out when no feed or receiver holds it any more.
            let _ = copies.send(Arc::unwrap_or_clone(event));
        }
    }

    fn apply(&self, table: &mut Table, event: &ServerEvent) -> bool {
        match event {
            ServerEvent::RequestStarted {
                conn,
                request,
                seq,
                method,
                target,
                at_us,
                ..
            } => {
                let Some(record) = table.get_mut(conn) else {
                    return false;
                };
                record.started(*request, *seq, method, target.clone(), *at_us);
                true
            }
            ServerEvent::ResponseStarted {
                conn,
                request,
                status,
                at_us,
            } => table
                .get_mut(conn)
                .is_some_and(|record| record.responded(*request, *status, *at_us)),
            ServerEvent::RequestFinished {
                conn,
                request,
                outcome,
                at_us,
            } => table.get_mut(conn).is_some_and(|record| {
                record.finished(*request, *outcome, *at_us, self.keep_per_conn)
            }),
            ServerEvent::ConnectionAttributed { conn, session, .. } => match table.get_mut(conn) {
                Some(record) => {
                    record.session = Some(session.clone());
                    true
                }
                None => false,
            },
            ServerEvent::ConnectionUpgraded { conn, role, .. } => match table.get_mut(conn) {
                Some(record) => {
                    record.upgraded = Some(*role);
                    true
                }
                None => false,
            },
            ServerEvent::ConnectionSecured { conn, protocol, .. } => match table.get_mut(conn) {
                Some(record) => {
                    record.protocol = Some(protocol.clone());
                    true
                }
                None => false,
            },
            // Everything else is per viewer (pong, released, errors) or goes
            // through `open`/`close`; broadcast it as is.
            _ => true,
        }
    }

    /// How many connections are open.
    pub fn open_count(&self) -> usize {
        self.each_shard(BTreeMap::len).into_iter().sum()
    }

    /// The open connections right now.
    pub fn connections(&self) -> Vec<ConnectionSnapshot> {
        let _stream = self.stream();
        self.snapshot(|_, _| true, SNAPSHOT_REQUEST_BYTES)
    }

    /// The open connection whose client address is `peer`, if any: a scan
    /// of the table that copies nothing (the middlebox asks at each mapping,
    /// which anyone may open: found in review, a copy of the whole table
    /// under its lock per mapping stalled every request's events).
    pub fn conn_with_peer(&self, peer: SocketAddr) -> Option<ConnId> {
        self.each_shard(|table| {
            table
                .iter()
                .find(|(_, record)| record.peer == peer)
                .map(|(conn, _)| *conn)
        })
        .into_iter()
        .flatten()
        .next()
    }

    /// One open connection, if it is open.
    pub fn connection(&self, conn: ConnId) -> Option<ConnectionSnapshot> {
        self.shard(conn)
            .get(&conn)
            .map(|record| snapshot_one(conn, record, self.keep_per_conn))
    }

    /// Open connections plus a receiver for every event after them, taken
    /// atomically (see the module docs), and the time they were taken. Each
    /// event arrives as the `Arc` every other viewer of it shares.
    pub fn subscribe(
        &self,
    ) -> (
        Micros,
        Vec<ConnectionSnapshot>,
        broadcast::Receiver<Arc<ServerEvent>>,
    ) {
        let _stream = self.stream();
        let rx = self.events.subscribe();
        self.watched.store(true, Ordering::Relaxed);
        (
            self.clock.now_us(),
            self.snapshot(|_, _| true, SNAPSHOT_REQUEST_BYTES),
            rx,
        )
    }

    /// Like [`Tracker::subscribe`], with every event as an owned copy (each
    /// receiver takes one): for [`crate::Lab::subscribe`], whose callers
    /// keep and take apart what they hear. Not for the lab's viewers.
    pub fn subscribe_copies(
        &self,
    ) -> (
        Micros,
        Vec<ConnectionSnapshot>,
        broadcast::Receiver<ServerEvent>,
    ) {
        let _stream = self.stream();
        let rx = self
            .copies
            .get_or_init(|| broadcast::Sender::new(self.event_buffer))
            .subscribe();
        self.watched.store(true, Ordering::Relaxed);
        (
            self.clock.now_us(),
            self.snapshot(|_, _| true, SNAPSHOT_REQUEST_BYTES),
            rx,
        )
    }

    /// Like [`Tracker::subscribe`], for a participant's page: a [`Feed`] of
    /// the events that can concern `owner` (`None`: the anonymous scope)
    /// seen from `host` (for connections that have not named a session yet).
    pub fn subscribe_scoped(
        &self,
        owner: Option<SessionId>,
        host: Option<IpAddr>,
    ) -> (Micros, Vec<ConnectionSnapshot>, Feed) {
        let _stream = self.stream();
        let (feed, hidden) = {
            let mut viewers = self.viewers();
            let feed = viewers.add(owner.clone(), host, self.event_buffer);
            (feed, viewers.hidden.clone())
        };
        self.watched.store(true, Ordering::Relaxed);
        let connections = self.snapshot(
            shown_to(owner.as_ref(), host, &hidden),
            SCOPED_SNAPSHOT_REQUEST_BYTES,
        );
        (self.clock.now_us(), connections, feed)
    }

    /// The open connections of `owner` (`None`: the anonymous scope) and
    /// those not attributed yet from `host`'s machine: what a participant's
    /// viewer on `host` is shown of the table.
    pub fn scoped_connections(
        &self,
        owner: Option<&SessionId>,
        host: Option<IpAddr>,
    ) -> Vec<ConnectionSnapshot> {
        let _stream = self.stream();
        let hidden = self.viewers().hidden.clone();
        self.snapshot(
            shown_to(owner, host, &hidden),
            SCOPED_SNAPSHOT_REQUEST_BYTES,
        )
    }

    /// How many participants' feeds are registered (for tests and the bench).
    pub fn feeds(&self) -> usize {
        let _stream = self.stream();
        let mut viewers = self.viewers();
        viewers.prune();
        viewers.feeds.len()
    }
}

/// Which feeds an event can concern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// A connection's event: its owner's feeds once it named a session
    /// (`Some`), else the feeds on the client's host, within that host's
    /// budget (`Viewers::by_host_admits`).
    Conn(Option<SessionId>, IpAddr),
    /// An event of a middlebox mapping that named no session: the
    /// anonymous scope's feeds on the client's host (the only ones that
    /// show it, `events::Filter`; a participant's page is not sent it).
    AnonymousOn(IpAddr),
    /// A connection just named this session: that session's feeds, and the
    /// feeds on its host (which were shown it and must now forget it).
    Attributed(SessionId, IpAddr),
    /// Belongs to one owner (`None`: the anonymous scope).
    Owner(Option<SessionId>),
    /// The room's business (the instructor's whole stream only).
    Nobody,
    /// Every feed.
    Everyone,
}

/// Where `event` goes, from the table as it is after the event applied.
/// `table`: the event's connection's shard (`None` for an event of no
/// connection).
fn route_of(table: Option<&Table>, event: &ServerEvent) -> Route {
    let record = |conn: &ConnId| table.and_then(|table| table.get(conn));
    let conn_route = |conn: &ConnId| match record(conn) {
        Some(r) => Route::Conn(r.session.clone(), r.host),
        // Unknown connections' events are not recorded; nothing to route.
        None => Route::Nobody,
    };
    match event {
        ServerEvent::ConnectionAttributed { conn, session, .. } => match record(conn) {
            Some(r) => Route::Attributed(session.clone(), r.host),
            None => Route::Owner(Some(session.clone())),
        },
        ServerEvent::ConfigChanged { session, .. }
        | ServerEvent::Middlebox { session, .. }
        | ServerEvent::MiddleboxChanged { session, .. }
        | ServerEvent::Agent { session, .. } => Route::Owner(session.clone()),
        ServerEvent::ParticipantChanged { .. }
        | ServerEvent::ParticipantReported { .. }
        | ServerEvent::ParticipantLeft { .. } => Route::Nobody,
        ServerEvent::Snapshot { .. }
        | ServerEvent::RoomLesson { .. }
        | ServerEvent::EventsDropped { .. }
        | ServerEvent::Pong { .. }
        | ServerEvent::Released { .. }
        | ServerEvent::Error(_) => Route::Everyone,
        // Every other event is a connection's (`ServerEvent::conn`).
        _ => event.conn().map_or(Route::Nobody, |conn| conn_route(&conn)),
    }
}

/// A host as far as "the same machine" goes: `localhost` reaches the lab over
/// `::1` while `127.0.0.1` is IPv4, so every loopback address is one host;
/// an IPv4 address mapped into IPv6 (a listener on `::`) is itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum HostKey {
    Loopback,
    Ip(IpAddr),
}

impl HostKey {
    fn of(ip: IpAddr) -> HostKey {
        let ip = ip.to_canonical();
        if ip.is_loopback() {
            HostKey::Loopback
        } else {
            HostKey::Ip(ip)
        }
    }
}

/// One participant's queue, as the tracker holds it.
#[derive(Debug)]
struct FeedSlot {
    /// Its queue; full means the viewer is not keeping up. It holds the
    /// event every other viewer of it shares, not a copy.
    tx: mpsc::Sender<Arc<ServerEvent>>,
    /// Events that did not fit, not yet reported to the viewer.
    missed: Arc<AtomicU64>,
    /// Its owner's index key.
    owner: Option<SessionId>,
    /// Its host's index key.
    host: Option<HostKey>,
}

/// The participants' feeds and the indexes events are routed by.
#[derive(Debug, Default)]
struct Viewers {
    /// Next feed id.
    next: u64,
    /// Every feed by id.
    feeds: HashMap<u64, FeedSlot>,
    /// Feed ids by owner (`None`: the anonymous scope).
    by_owner: HashMap<Option<SessionId>, Vec<u64>>,
    /// Feed ids by host.
    by_host: HashMap<HostKey, Vec<u64>>,
    /// What each host (but the lab's own machine) may still send its
    /// feeds of connections that named no session (`by_host_admits`).
    budgets: HashMap<HostKey, HostBudget>,
    /// Connections that named no session whose events no longer go to
    /// their host's feeds (its budget ran out): told `connection_hidden`
    /// there, left out of that host's snapshots, shown again only to the
    /// session that claims one. Each leaves at its close or its claim.
    hidden: HashSet<ConnId>,
    /// Tests: budgets do not refill, so what passes does not depend on how
    /// fast the test runs.
    #[cfg(test)]
    frozen_budgets: bool,
}

/// How many events a second the connections of one host (a participant's
/// machine, or every machine behind one NAT) that have named no session
/// may send the feeds on that host, and how many at once: their openings,
/// and their other events, each so many. A page sees its browser's
/// connections before their first request names its session (a spare
/// socket, each new connection's opening: a few a burst), and a browser's
/// page load a handful of requests that name none; one participant sharing
/// the address could otherwise send requests without a session (each
/// refused, three events) into every other participant's feed faster than
/// a page reads (a room review, December 2026). Openings have a budget of
/// their own so that such requests, which spend the other, leave the
/// others' spare sockets shown. What an opening brings once (its TLS
/// handshake's end, and its close, its claim by a session or its hiding)
/// is not counted, so a host's feeds hear at most about three times this
/// a second, and three times [`HOST_EVENTS_AT_ONCE`] at once: within a
/// feed's 4096 while its page reads. The lab's own machine (loopback) has
/// no budget: the anonymous scope's traffic is all unattributed, and it has
/// nobody else's.
const HOST_EVENTS_PER_SECOND: f64 = 500.0;
/// See [`HOST_EVENTS_PER_SECOND`]: a room of 30 behind one NAT opening a
/// burst's six connections each at once spends 180 openings.
const HOST_EVENTS_AT_ONCE: f64 = 1000.0;

/// One host's budgets of unattributed events ([`HOST_EVENTS_PER_SECOND`]).
#[derive(Debug, Clone, Copy)]
struct HostBudget {
    /// For connections' openings.
    openings: Tokens,
    /// For their other events (a close is free: its opening paid).
    others: Tokens,
}

/// A budget of events that refills with time.
#[derive(Debug, Clone, Copy)]
struct Tokens {
    /// Events it may send now.
    left: f64,
    /// When `left` was last refilled.
    at: std::time::Instant,
}

impl Tokens {
    fn full(now: std::time::Instant) -> Tokens {
        Tokens {
            left: HOST_EVENTS_AT_ONCE,
            at: now,
        }
    }

    /// Spends one, if one is left after refilling for the time since the
    /// last (`refills` false: none, for tests).
    fn take(&mut self, now: std::time::Instant, refills: bool) -> bool {
        if refills {
            let refill = now.duration_since(self.at).as_secs_f64() * HOST_EVENTS_PER_SECOND;
            self.left = (self.left + refill).min(HOST_EVENTS_AT_ONCE);
        }
        self.at = now;
        let took = self.left >= 1.0;
        if took {
            self.left -= 1.0;
        }
        took
    }
}

/// What an unattributed connection's event does at its host's feeds.
enum Admit {
    /// Sent.
    Send,
    /// Not sent: the connection is hidden from them.
    Skip,
    /// Not sent, and the connection is hidden from now on: they are told
    /// `connection_hidden` instead.
    Hide(ConnId),
}

impl Viewers {
    fn is_empty(&self) -> bool {
        self.feeds.is_empty()
    }

    fn add(&mut self, owner: Option<SessionId>, host: Option<IpAddr>, buffer: usize) -> Feed {
        self.prune();
        let id = self.next;
        self.next += 1;
        let (tx, rx) = mpsc::channel(buffer);
        let missed = Arc::new(AtomicU64::new(0));
        let host = host.map(HostKey::of);
        self.by_owner.entry(owner.clone()).or_default().push(id);
        if let Some(host) = host {
            self.by_host.entry(host).or_default().push(id);
        }
        self.feeds.insert(
            id,
            FeedSlot {
                tx,
                missed: missed.clone(),
                owner,
                host,
            },
        );
        Feed::Scoped { rx, missed }
    }

    /// Forgets feeds whose viewer has gone.
    fn prune(&mut self) {
        let gone: Vec<u64> = self
            .feeds
            .iter()
            .filter(|(_, f)| f.tx.is_closed())
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.remove(id);
        }
    }

    fn remove(&mut self, id: u64) {
        let Some(slot) = self.feeds.remove(&id) else {
            return;
        };
        if let Some(ids) = self.by_owner.get_mut(&slot.owner) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_owner.remove(&slot.owner);
            }
        }
        if let Some(host) = slot.host
            && let Some(ids) = self.by_host.get_mut(&host)
        {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_host.remove(&host);
                self.budgets.remove(&host);
            }
        }
        if self.feeds.is_empty() {
            // Nobody to hide them from: the next viewer's snapshot shows
            // every connection of its host (events are not routed while
            // nobody listens, so none could be kept track of).
            self.hidden.clear();
        }
    }

    /// Whether an event of a connection that named no session goes to the
    /// feeds on its client's `host`, within the host's budgets
    /// ([`HOST_EVENTS_PER_SECOND`]). An event of a connection hidden there
    /// goes nowhere but to the instructor; the close and the TLS handshake's
    /// end of one shown there are always sent (its opening paid); an opening
    /// past its budget is hidden from the start, any other event past its
    /// own hides its connection.
    fn by_host_admits(&mut self, host: HostKey, conn: ConnId, event: &ServerEvent) -> Admit {
        let closing = matches!(event, ServerEvent::ConnectionClosed { .. });
        if self.hidden.contains(&conn) {
            if closing {
                self.hidden.remove(&conn);
            }
            return Admit::Skip;
        }
        // Its TLS handshake's end, as its close, comes once a connection:
        // its opening paid (found in review: a TLS spare socket was hidden
        // as soon as requests without a session had spent the other budget).
        let once = closing || matches!(event, ServerEvent::ConnectionSecured { .. });
        if host == HostKey::Loopback || once {
            return Admit::Send;
        }
        let now = std::time::Instant::now();
        #[cfg(test)]
        let refills = !self.frozen_budgets;
        #[cfg(not(test))]
        let refills = true;
        let budget = self.budgets.entry(host).or_insert(HostBudget {
            openings: Tokens::full(now),
            others: Tokens::full(now),
        });
        let opening = matches!(event, ServerEvent::ConnectionOpened { .. });
        let tokens = if opening {
            &mut budget.openings
        } else {
            &mut budget.others
        };
        if tokens.take(now, refills) {
            return Admit::Send;
        }
        self.hidden.insert(conn);
        if opening {
            Admit::Skip
        } else {
            Admit::Hide(conn)
        }
    }

    fn send(&mut self, event: &Arc<ServerEvent>, route: &Route) {
        if self.feeds.is_empty() {
            return;
        }
        let empty = Vec::new();
        let (first, second): (&Vec<u64>, &Vec<u64>) = match route {
            Route::Nobody => return,
            Route::Everyone => {
                let ids: Vec<u64> = self.feeds.keys().copied().collect();
                self.deliver(event, &ids);
                return;
            }
            Route::Owner(owner) => (self.by_owner.get(owner).unwrap_or(&empty), &empty),
            Route::Conn(Some(session), _) => (
                self.by_owner.get(&Some(session.clone())).unwrap_or(&empty),
                &empty,
            ),
            Route::Conn(None, ip) => {
                let host = HostKey::of(*ip);
                let Some(ids) = self.by_host.get(&host).cloned() else {
                    // Nobody on its host: no budget spent.
                    if let ServerEvent::ConnectionClosed { conn, .. } = &**event {
                        self.hidden.remove(conn);
                    }
                    return;
                };
                let Some(conn) = event.conn() else {
                    return;
                };
                let admit = self.by_host_admits(host, conn, event);
                match admit {
                    Admit::Send => self.deliver(event, &ids),
                    Admit::Skip => {}
                    Admit::Hide(conn) => {
                        let hidden = Arc::new(ServerEvent::ConnectionHidden { conn });
                        self.deliver(&hidden, &ids);
                    }
                }
                return;
            }
            Route::AnonymousOn(ip) => {
                let anonymous = self.by_owner.get(&None).unwrap_or(&empty);
                let ids: Vec<u64> = self
                    .by_host
                    .get(&HostKey::of(*ip))
                    .unwrap_or(&empty)
                    .iter()
                    .filter(|id| anonymous.contains(id))
                    .copied()
                    .collect();
                self.deliver(event, &ids);
                return;
            }
            Route::Attributed(session, ip) => {
                // Its host's feeds forget it (`events::Filter`), unless it
                // was hidden from them already.
                let shown_on_host = !event.conn().is_some_and(|c| self.hidden.remove(&c));
                (
                    self.by_owner.get(&Some(session.clone())).unwrap_or(&empty),
                    if shown_on_host {
                        self.by_host.get(&HostKey::of(*ip)).unwrap_or(&empty)
                    } else {
                        &empty
                    },
                )
            }
        };
        let mut ids = first.clone();
        ids.extend(second.iter().filter(|id| !first.contains(id)));
        self.deliver(event, &ids);
    }

    /// Queues `event` (the one `Arc`: a reference count per feed) in each
    /// feed of `ids`; a full feed counts it missed, a closed one is forgotten.
    fn deliver(&mut self, event: &Arc<ServerEvent>, ids: &[u64]) {
        let mut gone = Vec::new();
        for id in ids {
            let Some(slot) = self.feeds.get(id) else {
                continue;
            };
            match slot.tx.try_send(Arc::clone(event)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slot.missed.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(*id),
            }
        }
        for id in gone {
            self.remove(id);
        }
    }
}

/// A viewer's stream of events after its snapshot: the whole stream, or a
/// participant's own routed queue. Both report falling behind the same way
/// ([`RecvError::Lagged`]), so the viewer treats them alike. Either hands
/// out each event as the `Arc` every viewer of it shares.
#[derive(Debug)]
pub enum Feed {
    /// Every event (the instructor).
    All(broadcast::Receiver<Arc<ServerEvent>>),
    /// The events routed to one participant's page.
    Scoped {
        /// The queue.
        rx: mpsc::Receiver<Arc<ServerEvent>>,
        /// Events that did not fit in the queue, not yet reported.
        missed: Arc<AtomicU64>,
    },
}

impl Feed {
    /// The next event; `Lagged(n)` once when `n` events did not fit (the
    /// viewer fell behind); `Closed` when the tracker is gone.
    pub async fn recv(&mut self) -> Result<Arc<ServerEvent>, RecvError> {
        match self {
            Feed::All(rx) => rx.recv().await,
            Feed::Scoped { rx, missed } => {
                let lost = missed.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    return Err(RecvError::Lagged(lost));
                }
                rx.recv().await.ok_or(RecvError::Closed)
            }
        }
    }
}

fn snapshot_one(conn: ConnId, r: &ConnRecord, keep: usize) -> ConnectionSnapshot {
    ConnectionSnapshot {
        conn,
        opened_us: r.opened_us,
        peer: r.peer.to_string(),
        local_addr: r.local.to_string(),
        local_port: r.local.port(),
        session: r.session.clone(),
        upgraded: r.upgraded,
        bytes_in: r.counters.bytes_in(),
        bytes_out: r.counters.bytes_out(),
        last_in_us: r.counters.last_in_us(),
        last_out_us: r.counters.last_out_us(),
        requests_total: r.requests_total,
        requests: r.kept(keep).map(Kept::snapshot).collect(),
        protocol: r.protocol.clone(),
    }
}

/// How many completed requests each owner's connections show in a
/// snapshot of `budget` bytes, given each owner's bytes by that number
/// ([`Tracker::snapshot`]): the budget shared out from the lightest owner up
/// (water-filling), so that an owner within its share shows all it keeps
/// and what it leaves goes to the heavier ones. An owner whose requests in
/// flight alone are over its share shows none completed.
fn fair_keeps<K: std::hash::Hash + Eq>(
    groups: HashMap<K, Vec<usize>>,
    budget: usize,
) -> HashMap<K, usize> {
    let mut by_size: Vec<(K, Vec<usize>)> = groups.into_iter().collect();
    by_size.sort_unstable_by_key(|(_, bytes)| bytes.last().copied().unwrap_or(0));
    let mut left = budget;
    let mut owners = by_size.len();
    let mut keeps = HashMap::with_capacity(owners);
    for (key, bytes) in by_size {
        let share = left / owners.max(1);
        let keep = (0..bytes.len())
            .rev()
            .find(|&k| bytes[k] <= share)
            .unwrap_or(0);
        left = left.saturating_sub(bytes.get(keep).copied().unwrap_or(0));
        owners -= 1;
        keeps.insert(key, keep);
    }
    keeps
}

/// Which connections a participant's viewer on `host` is shown: its
/// owner's (`None`: the anonymous scope's), and the unattributed ones from
/// the same machine (by each connection's client machine,
/// `ConnRecord::host`) but those `hidden` from it (`Viewers::hidden`).
fn shown_to<'a>(
    owner: Option<&'a SessionId>,
    host: Option<IpAddr>,
    hidden: &'a HashSet<ConnId>,
) -> impl Fn(ConnId, &ConnRecord) -> bool + 'a {
    move |conn, r| match &r.session {
        Some(session) => owner == Some(session),
        None => {
            host.is_some_and(|h| crate::events::same_host(h, r.host)) && !hidden.contains(&conn)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_ipv4_address_is_its_own_host() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(HostKey::of(ip("::ffff:127.0.0.1")), HostKey::Loopback);
        assert_eq!(HostKey::of(ip("::1")), HostKey::Loopback);
        assert_eq!(
            HostKey::of(ip("::ffff:10.0.0.5")),
            HostKey::of(ip("10.0.0.5"))
        );
    }

    fn started(conn: u64, request: u64, seq: u32) -> ServerEvent {
        ServerEvent::RequestStarted {
            conn: ConnId(conn),
            request: RequestId(request),
            seq,
            method: "GET".into(),
            target: "/api/slow?ms=1".into(),
            connection: None,
            at_us: 1,
        }
    }

    fn finished(conn: u64, request: u64) -> ServerEvent {
        ServerEvent::RequestFinished {
            conn: ConnId(conn),
            request: RequestId(request),
            outcome: RequestOutcome::Completed,
            at_us: 2,
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn tracker(keep: usize) -> Tracker {
        Tracker::new(Clock::new(), keep, 64)
    }

    /// A snapshot's requests stay within [`SNAPSHOT_REQUEST_BYTES`] of JSON
    /// (a participant's within [`SCOPED_SNAPSHOT_REQUEST_BYTES`]) however
    /// many connections and long targets a session has: each
    /// connection shows fewer of its newest completed requests, and every
    /// one in flight. A few connections show all they keep.
    #[test]
    fn a_snapshot_keeps_its_requests_within_its_budget_and_every_one_in_flight() {
        let t = tracker(32);
        let request_bytes = |snapshot: &[ConnectionSnapshot]| -> usize {
            snapshot
                .iter()
                .flat_map(|c| &c.requests)
                .map(|r| serde_json::to_string(r).unwrap().len())
                .sum()
        };
        let long = format!("/api/fast?id={}", "a".repeat(480));
        // A light session's one connection, opened last, its targets with
        // characters JSON escapes (a target of them is twice its length).
        let escaped = format!("/api/fast?id={}", "\\\"".repeat(20));
        let mut request = 0;
        for conn in 1..=301u64 {
            t.open(ConnId(conn), direct(addr(1)), addr(80), Arc::default());
            if conn == 301 {
                t.record(attributed(301, "light"));
            }
            for seq in 1..=33u32 {
                request += 1;
                t.record(ServerEvent::RequestStarted {
                    conn: ConnId(conn),
                    request: RequestId(request),
                    seq,
                    method: "GET".into(),
                    target: if conn == 301 {
                        escaped.clone()
                    } else {
                        long.clone()
                    },
                    connection: None,
                    at_us: 1_000_000_000,
                });
                // The last one of each stays in flight.
                if seq < 33 {
                    t.record(ServerEvent::RequestFinished {
                        conn: ConnId(conn),
                        request: RequestId(request),
                        outcome: RequestOutcome::Completed,
                        at_us: 1_000_000_001,
                    });
                }
            }
            if conn == 2 {
                // Two connections: everything they keep.
                let few = t.connections();
                assert!(few.iter().all(|c| c.requests.len() == 33), "{}", few.len());
            }
        }
        let many = t.connections();
        assert_eq!(many.len(), 301);
        // The light session keeps all it has: the heavy owner's connections
        // are the ones cut short.
        let light = many.iter().find(|c| c.conn == ConnId(301)).unwrap();
        assert_eq!(light.requests.len(), 33);
        assert!(many[0].requests.len() < 33, "{}", many[0].requests.len());
        let total = request_bytes(&many);
        assert!(total <= SNAPSHOT_REQUEST_BYTES, "{total} bytes");
        assert!(
            total > SNAPSHOT_REQUEST_BYTES / 2,
            "{total} bytes: budget left"
        );
        for c in &many {
            assert!(c.requests.iter().any(|r| r.outcome.is_none()), "{c:?}");
            assert_eq!(c.requests_total, 33);
        }
        // A participant's snapshot (the anonymous scope's on the lab's own
        // machine, which these connections are) within its smaller budget.
        let scoped = t.scoped_connections(None, Some([127, 0, 0, 1].into()));
        assert_eq!(scoped.len(), 300);
        let own = t.scoped_connections(Some(&session("light")), None);
        assert_eq!(own[0].requests.len(), 33);
        let total = request_bytes(&scoped);
        assert!(total <= SCOPED_SNAPSHOT_REQUEST_BYTES, "{total} bytes");
        assert!(
            scoped
                .iter()
                .all(|c| c.requests.iter().any(|r| r.outcome.is_none()))
        );
        // The estimate is never short of the JSON, and not far over it.
        for one in many.iter().flat_map(|c| &c.requests) {
            let escaped = one.target.matches(['"', '\\']).count();
            let estimate =
                REQUEST_SNAPSHOT_FIELDS_BYTES + one.method.len() + one.target.len() + escaped;
            let json = serde_json::to_string(one).unwrap().len();
            assert!(
                json <= estimate && estimate <= json + 60,
                "{json} {estimate}"
            );
        }
    }

    #[test]
    fn a_kept_request_shows_every_fact_of_its_snapshot_in_one_cache_line() {
        assert!(
            std::mem::size_of::<Kept>() <= 64,
            "{}",
            std::mem::size_of::<Kept>()
        );
        let t = tracker(4);
        t.open(ConnId(1), direct(addr(1)), addr(80), Arc::default());
        let head = |request: u64, method: &'static str, target: &str| RequestHead {
            conn: ConnId(1),
            request: RequestId(request),
            seq: request as u32,
            method,
            target: target.to_owned(),
            connection: None,
        };
        // Unwatched (nobody subscribed): kept without an event.
        t.request_started(Some(10), head(1, "GET", "/api/fast?id=a"));
        t.request_started(Some(20), head(2, "PURGE", "/x?y=a b"));
        t.request_started(Some(30), head(3, "PATCH", "*"));
        t.record(ServerEvent::ResponseStarted {
            conn: ConnId(1),
            request: RequestId(1),
            status: 204,
            at_us: 15,
        });
        t.record(ServerEvent::RequestFinished {
            conn: ConnId(1),
            request: RequestId(1),
            outcome: RequestOutcome::Completed,
            at_us: 16,
        });
        let requests = t.connections().remove(0).requests;
        let shown: Vec<_> = requests
            .iter()
            .map(|r| (r.method.as_str(), r.target.as_str(), r.started_us))
            .collect();
        assert_eq!(
            shown,
            [
                ("GET", "/api/fast?id=a", 10),
                ("PURGE", "/x?y=a b", 20),
                ("PATCH", "*", 30)
            ]
        );
        let first = &requests[0];
        assert_eq!(
            (
                first.response_us,
                first.finished_us,
                first.status,
                first.outcome
            ),
            (
                Some(15),
                Some(16),
                Some(204),
                Some(RequestOutcome::Completed)
            )
        );
        let second = &requests[1];
        assert_eq!(
            (
                second.seq,
                second.response_us,
                second.finished_us,
                second.status,
                second.outcome
            ),
            (2, None, None, None, None)
        );
    }

    #[tokio::test]
    async fn a_watched_request_start_is_recorded_and_handed_out_with_its_method() {
        let t = tracker(4);
        t.open(ConnId(1), direct(addr(1)), addr(80), Arc::default());
        let (_, _, mut rx) = t.subscribe();
        let at = t.request_started(
            None,
            RequestHead {
                conn: ConnId(1),
                request: RequestId(7),
                seq: 1,
                method: "MKCOL",
                target: "/dav".to_owned(),
                connection: Some("keep-alive".to_owned()),
            },
        );
        let event = rx.recv().await.expect("the event");
        assert_eq!(
            *event,
            ServerEvent::RequestStarted {
                conn: ConnId(1),
                request: RequestId(7),
                seq: 1,
                method: "MKCOL".to_owned(),
                target: "/dav".to_owned(),
                connection: Some("keep-alive".to_owned()),
                at_us: at,
            }
        );
        let kept = &t.connections()[0].requests[0];
        assert_eq!(
            (kept.method.as_str(), kept.target.as_str()),
            ("MKCOL", "/dav")
        );
    }

    #[test]
    fn keeps_in_flight_requests_and_the_newest_completed_ones() {
        let t = tracker(2);
        t.open(ConnId(1), direct(addr(1)), addr(80), Arc::default());
        for i in 1..=5 {
            t.record(started(1, i, i as u32));
        }
        for i in 1..=4 {
            t.record(finished(1, i));
        }
        let conns = t.connections();
        let ids: Vec<u64> = conns[0].requests.iter().map(|r| r.request.0).collect();
        assert_eq!(ids, vec![3, 4, 5], "2 newest completed + the one in flight");
        assert_eq!(conns[0].requests_total, 5);
    }

    #[test]
    fn a_viewer_is_shown_the_newest_completed_requests_between_trims() {
        // The history drops its oldest completed requests in batches
        // (`trim_after`): between two trims a snapshot still shows exactly
        // the newest `keep` completed ones and every one in flight, and the
        // table never holds more than `trim_after(keep)` completed ones.
        let keep = 4;
        let t = tracker(keep);
        t.open(ConnId(1), direct(addr(1)), addr(80), Arc::default());
        // Request 1 stays in flight throughout (an HTTP/2 stream, say).
        t.record(started(1, 1, 1));
        for i in 2..=40 {
            t.record(started(1, i, i as u32));
            t.record(finished(1, i));
            let ids: Vec<u64> = t.connections()[0]
                .requests
                .iter()
                .map(|r| r.request.0)
                .collect();
            let newest = (2.max((i + 1).saturating_sub(keep as u64))..=i).collect::<Vec<_>>();
            assert_eq!(ids, [vec![1], newest].concat(), "after request {i}");
            let held = t.shard(ConnId(1))[&ConnId(1)].requests.len();
            assert!(
                held <= 1 + trim_after(keep),
                "{held} held after request {i}"
            );
        }
    }

    #[test]
    fn requests_ending_out_of_order_or_twice_are_kept_by_completion() {
        // HTTP/2 streams end in any order; an end told twice counts once.
        let t = tracker(2);
        t.open(ConnId(1), direct(addr(1)), addr(80), Arc::default());
        for i in 1..=5 {
            t.record(started(1, i, i as u32));
        }
        for i in [4, 2, 2, 5, 4] {
            t.record(finished(1, i));
        }
        let ids = |t: &Tracker| -> Vec<u64> {
            t.connections()[0]
                .requests
                .iter()
                .map(|r| r.request.0)
                .collect()
        };
        assert_eq!(ids(&t), vec![1, 3, 4, 5], "the oldest completed (2) went");
        t.record(finished(1, 1));
        assert_eq!(ids(&t), vec![3, 4, 5], "then 1; 3 is still in flight");
    }

    #[test]
    fn subscribers_see_events_after_their_snapshot_once_and_late_echoes_are_dropped() {
        let t = tracker(8);
        t.open(ConnId(1), direct(addr(1)), addr(80), Arc::default());
        t.record(started(1, 1, 1));
        let (_, connections, mut rx) = t.subscribe();
        assert_eq!(connections[0].requests.len(), 1);
        t.close(ConnId(1), CloseReason::PeerReset, 1);
        t.record(finished(1, 1)); // the guard's late echo
        assert!(matches!(
            *rx.try_recv().unwrap(),
            ServerEvent::RequestFinished {
                outcome: RequestOutcome::Aborted,
                ..
            }
        ));
        assert!(matches!(
            *rx.try_recv().unwrap(),
            ServerEvent::ConnectionClosed {
                reason: CloseReason::PeerReset,
                ..
            }
        ));
        assert!(rx.try_recv().is_err(), "the late echo is not broadcast");
    }

    #[test]
    fn viewers_arriving_while_unwatched_requests_run_see_each_start_and_end_once() {
        // Requests on eight connections (eight shards) run on two threads,
        // unwatched between viewers, while a thousand viewers come and go:
        // each start, response head and end a viewer hears of must be in
        // its snapshot or among the events after it, never both, and no
        // end without its start, however the threads interleave. Every
        // other request's head was kept for its end
        // (`Tracker::response_then_finished`, as `conn::RequestGuard` does
        // while nobody listens): a viewer hears that head before that end.
        // The last viewer stays to the end: every request it heard of ended
        // once, with its head if it had one.
        const CONNS: u64 = 8;
        let t = Arc::new(Tracker::new(Clock::new(), 16, 1 << 16));
        for conn in 1..=CONNS {
            t.open(
                ConnId(conn),
                direct(addr(conn as u16)),
                addr(80),
                Arc::default(),
            );
        }
        let (issued, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let runners: Vec<_> = (0..2)
            .map(|_| {
                let (t, issued, stop) = (t.clone(), issued.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let request = issued.fetch_add(1, Ordering::Relaxed) + 1;
                        let conn = ConnId(request % CONNS + 1);
                        t.request_started(
                            Some(request),
                            RequestHead {
                                conn,
                                request: RequestId(request),
                                seq: 1,
                                method: "GET",
                                target: "/api/fast".into(),
                                connection: None,
                            },
                        );
                        if request % 2 == 1 {
                            t.response_then_finished(
                                (conn, RequestId(request)),
                                (200, request),
                                RequestOutcome::Completed,
                                None,
                            );
                        } else {
                            t.record(finished(conn.0, request));
                        }
                    }
                })
            })
            .collect();
        // What a viewer was told of each request: starts, heads and ends,
        // from its snapshot and its events together.
        let told = |connections: &[ConnectionSnapshot],
                    rx: &mut broadcast::Receiver<Arc<ServerEvent>>|
         -> BTreeMap<u64, (u32, u32, u32)> {
            let mut told = BTreeMap::<u64, (u32, u32, u32)>::new();
            for request in connections.iter().flat_map(|c| &c.requests) {
                let entry = told.entry(request.request.0).or_default();
                entry.0 += 1;
                if let Some(status) = request.status {
                    assert_eq!(status, 200);
                    assert_eq!(request.response_us, Some(request.request.0));
                    entry.1 += 1;
                }
                entry.2 += u32::from(request.outcome.is_some());
            }
            while let Ok(event) = rx.try_recv() {
                match *event {
                    ServerEvent::RequestStarted { request, .. } => {
                        told.entry(request.0).or_default().0 += 1;
                    }
                    ServerEvent::ResponseStarted { request, at_us, .. } => {
                        let entry = told.entry(request.0).or_default();
                        assert_eq!(entry.0, 1, "request {}: a head, never started", request.0);
                        assert_eq!(entry.2, 0, "request {}: a head after its end", request.0);
                        assert_eq!(at_us, request.0, "the head keeps its own stamp");
                        entry.1 += 1;
                    }
                    ServerEvent::RequestFinished { request, .. } => {
                        let entry = told.entry(request.0).or_default();
                        assert_eq!(entry.0, 1, "request {} ended, never started", request.0);
                        let head = u32::from(request.0 % 2 == 1);
                        assert_eq!(
                            entry.1, head,
                            "request {}: its head before its end",
                            request.0
                        );
                        entry.2 += 1;
                    }
                    ref other => panic!("unexpected {other:?}"),
                }
            }
            told
        };
        while issued.load(Ordering::Relaxed) == 0 {
            std::hint::spin_loop();
        }
        for _ in 0..1_000 {
            let (_, connections, mut rx) = t.subscribe();
            for _ in 0..200 {
                std::hint::spin_loop();
            }
            for (request, (starts, heads, ends)) in told(&connections, &mut rx) {
                assert!(
                    starts == 1 && heads <= 1 && ends <= 1,
                    "request {request}: {starts} starts, {heads} heads, {ends} ends"
                );
            }
        }
        let (_, connections, mut rx) = t.subscribe();
        stop.store(true, Ordering::Relaxed);
        for runner in runners {
            runner.join().unwrap();
        }
        let last = told(&connections, &mut rx);
        assert!(!last.is_empty(), "the last viewer was told of requests");
        for (request, told) in last {
            let head = u32::from(request % 2 == 1);
            assert_eq!(told, (1, head, 1), "request {request}");
        }
    }

    fn session(id: &str) -> SessionId {
        SessionId::parse(id).unwrap()
    }

    fn from(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((ip, port))
    }

    /// A client connecting itself (not through the lab's middlebox): its
    /// machine is its own address.
    fn direct(peer: SocketAddr) -> (SocketAddr, IpAddr) {
        (peer, peer.ip())
    }

    fn attributed(conn: u64, id: &str) -> ServerEvent {
        ServerEvent::ConnectionAttributed {
            conn: ConnId(conn),
            session: session(id),
            at_us: 1,
        }
    }

    /// Everything queued in a feed right now, as event kinds and connections.
    fn drain(feed: &mut Feed) -> Vec<(String, Option<u64>)> {
        let Feed::Scoped { rx, missed } = feed else {
            panic!("a participant's feed is scoped");
        };
        assert_eq!(missed.load(Ordering::Relaxed), 0);
        let mut seen = Vec::new();
        while let Ok(event) = rx.try_recv() {
            let json = serde_json::to_value(&*event).unwrap();
            let kind = json["type"].as_str().unwrap().to_owned();
            seen.push((kind, json["conn"].as_u64()));
        }
        seen
    }

    fn kinds(seen: &[(String, Option<u64>)]) -> Vec<&str> {
        seen.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn a_participants_feed_gets_its_own_connections_and_its_hosts_unattributed_ones() {
        let t = tracker(8);
        let alice_ip = [10, 0, 0, 1];
        let bob_ip = [10, 0, 0, 2];
        let (_, _, mut alice) = t.subscribe_scoped(Some(session("alice")), Some(alice_ip.into()));
        let (_, _, mut bob) = t.subscribe_scoped(Some(session("bob")), Some(bob_ip.into()));

        // Alice's browser opens a connection: only feeds on her host see it.
        t.open(
            ConnId(1),
            direct(from(alice_ip, 5000)),
            addr(80),
            Arc::default(),
        );
        t.record(attributed(1, "alice"));
        t.record(started(1, 1, 1));
        t.record(finished(1, 1));
        // Bob's connection comes from Alice's address (a shared proxy):
        // Alice is shown it until it names Bob, then told to forget it.
        t.open(
            ConnId(2),
            direct(from(alice_ip, 5001)),
            addr(80),
            Arc::default(),
        );
        t.record(attributed(2, "bob"));
        t.record(started(2, 2, 1));
        t.close(ConnId(2), CloseReason::PeerClosed, 1);
        t.close(ConnId(1), CloseReason::IdleTimeout, 1);

        assert_eq!(
            drain(&mut alice),
            vec![
                ("connection_opened".into(), Some(1)),
                ("connection_attributed".into(), Some(1)),
                ("request_started".into(), Some(1)),
                ("request_finished".into(), Some(1)),
                ("connection_opened".into(), Some(2)),
                ("connection_attributed".into(), Some(2)),
                ("connection_closed".into(), Some(1)),
            ]
        );
        assert_eq!(
            kinds(&drain(&mut bob)),
            vec![
                "connection_attributed",
                "request_started",
                "request_finished",
                "connection_closed"
            ],
            "Bob never sees Alice's connection; his own from another address \
             arrives from its attribution on (the viewer introduces it)"
        );
    }

    /// A room behind one NAT: Mallory, on Alice's address, pipelines
    /// requests that name no session (each refused in the lab: three events
    /// apiece). Alice's feed gets her host's unattributed events only up to
    /// the host's budget, then is told to forget Mallory's connection and
    /// hears nothing more of it, so her queue never overflows; her own new
    /// connection's opening is still shown (openings have a budget of their
    /// own), and it reaches her once it names her; past the openings'
    /// budget a connection is hidden from the start, also from a new
    /// viewer's snapshot; the lab's own machine has no budget.
    #[test]
    fn a_hosts_unattributed_connections_reach_its_feeds_within_a_budget() {
        let t = Tracker::new(Clock::new(), 4, 4096);
        t.viewers().frozen_budgets = true;
        let nat = [10, 0, 0, 9];
        let budget = HOST_EVENTS_AT_ONCE as usize;
        let (_, _, mut alice) = t.subscribe_scoped(Some(session("alice")), Some(nat.into()));
        t.open(ConnId(1), direct(from(nat, 5000)), addr(80), Arc::default());
        for request in 1..=3000 {
            t.record(started(1, request, request as u32));
            t.record(finished(1, request));
        }
        t.open(ConnId(2), direct(from(nat, 5001)), addr(80), Arc::default());
        t.record(attributed(2, "alice"));
        t.record(started(2, 9000, 1));
        t.close(ConnId(1), CloseReason::PeerClosed, 3000);
        let seen = drain(&mut alice);
        // Mallory's opening and the budget of its requests' events.
        assert_eq!(seen.len(), 1 + budget + 4, "{:?}", &seen[budget..]);
        assert_eq!(
            seen[1 + budget..],
            [
                ("connection_hidden".to_owned(), Some(1)),
                ("connection_opened".to_owned(), Some(2)),
                ("connection_attributed".to_owned(), Some(2)),
                ("request_started".to_owned(), Some(2)),
            ],
            "nothing more of Mallory's, not even its close"
        );
        // A TLS spare socket's handshake comes with its opening, paid: shown
        // though the other events' budget is spent.
        t.open(
            ConnId(5),
            direct(from(nat, 5003)),
            addr(443),
            Arc::default(),
        );
        t.record(ServerEvent::ConnectionSecured {
            conn: ConnId(5),
            protocol: "HTTP/2".into(),
            alpn: Some("h2".into()),
            tls_version: "TLSv1.3".into(),
            at_us: 1,
        });
        t.close(ConnId(5), CloseReason::IdleTimeout, 0);
        assert_eq!(
            kinds(&drain(&mut alice)),
            [
                "connection_opened",
                "connection_secured",
                "connection_closed"
            ]
        );
        // Openings past their budget: hidden from the start, and from a
        // new viewer on the host.
        // (Three of them spent already: Mallory's, Alice's, the spare's.)
        for conn in 100..97 + budget as u64 {
            t.open(
                ConnId(conn),
                direct(from(nat, 6000)),
                addr(80),
                Arc::default(),
            );
            t.close(ConnId(conn), CloseReason::PeerClosed, 0);
        }
        assert_eq!(drain(&mut alice).len(), 2 * (budget - 3));
        t.open(ConnId(3), direct(from(nat, 5002)), addr(80), Arc::default());
        let (_, snapshot, _) = t.subscribe_scoped(Some(session("carol")), Some(nat.into()));
        assert!(snapshot.is_empty(), "{snapshot:?}");
        t.record(started(3, 9001, 1));
        t.close(ConnId(3), CloseReason::PeerClosed, 1);
        assert_eq!(drain(&mut alice), []);

        // The lab's own machine: every event, however many.
        let (_, _, mut local) = t.subscribe_scoped(None, Some([127, 0, 0, 1].into()));
        t.open(
            ConnId(4),
            direct(from([127, 0, 0, 1], 6000)),
            addr(80),
            Arc::default(),
        );
        for request in 1..=1500 {
            t.record(started(4, 10_000 + request, request as u32));
            t.record(finished(4, 10_000 + request));
        }
        assert_eq!(drain(&mut local).len(), 3001);
    }

    /// Event `event` of mapping `id`, which named no session.
    fn anonymous_mapping(id: u64, event: protocol::MiddleboxEvent) -> ServerEvent {
        ServerEvent::Middlebox {
            mapping: protocol::MappingId(id),
            session: None,
            event,
            at_us: 1,
        }
    }

    /// A mapping's `opened`, for a client at `client`.
    fn mapping_opened(client: &str) -> protocol::MiddleboxEvent {
        protocol::MiddleboxEvent::Opened {
            client: client.into(),
            upstream: None,
            conn: None,
            accepted_us: 1,
            settings: protocol::MiddleboxSettings::default(),
            in_force_ms: 1,
            probes_visible: true,
        }
    }

    /// A middlebox mapping that named no session is the anonymous scope's
    /// (`events::Filter` shows it to nobody else): its events go only to
    /// the anonymous feeds on its client's host, not into a participant's
    /// queue there to be filtered out (one sharing the address could fill
    /// it so).
    #[test]
    fn an_anonymous_mappings_events_go_only_to_the_anonymous_feeds_of_its_host() {
        let t = tracker(4);
        let (_, _, mut alice) =
            t.subscribe_scoped(Some(session("alice")), Some([127, 0, 0, 1].into()));
        let (_, _, mut local) = t.subscribe_scoped(None, Some([127, 0, 0, 1].into()));
        let (_, _, mut elsewhere) = t.subscribe_scoped(None, Some([10, 0, 0, 1].into()));
        t.record(anonymous_mapping(1, mapping_opened("127.0.0.1:5000")));
        assert_eq!(kinds(&drain(&mut local)), ["middlebox"]);
        assert_eq!(drain(&mut alice), []);
        assert_eq!(drain(&mut elsewhere), []);
    }

    /// A mapping the middlebox charges to another host than its client's
    /// (an agent's, from loopback) is told on that host; the note is taken
    /// by its `refused`, or kept from its `opened` to its `closed`, and
    /// none is left behind.
    #[test]
    fn a_charged_mappings_events_go_to_the_host_it_is_charged_to_and_the_note_goes() {
        use protocol::MiddleboxEvent as M;
        let t = tracker(4);
        let remote = IpAddr::from([10, 0, 0, 2]);
        let (_, _, mut on_remote) = t.subscribe_scoped(None, Some(remote));
        let (_, _, mut local) = t.subscribe_scoped(None, Some([127, 0, 0, 1].into()));
        t.charge_mapping(protocol::MappingId(1), remote);
        t.record(anonymous_mapping(
            1,
            M::Refused {
                client: "127.0.0.1:5000".into(),
                reason: "full".into(),
            },
        ));
        t.charge_mapping(protocol::MappingId(2), remote);
        t.record(anonymous_mapping(2, mapping_opened("127.0.0.1:5001")));
        assert_eq!(t.anonymous_mappings.lock().unwrap().len(), 1);
        t.record(anonymous_mapping(
            2,
            M::Closed {
                by: protocol::Party::Client,
                how: protocol::CloseHow::Fin,
                after_expiry: false,
                client_bytes: 0,
                server_bytes: 0,
                dropped_bytes: 0,
            },
        ));
        assert_eq!(kinds(&drain(&mut on_remote)), ["middlebox"; 3]);
        assert_eq!(drain(&mut local), []);
        assert!(t.anonymous_mappings.lock().unwrap().is_empty());
    }

    #[test]
    fn a_connection_through_the_middlebox_is_routed_to_its_clients_machine_not_to_loopback() {
        let t = tracker(8);
        let alice_ip = [10, 0, 0, 1];
        let (_, _, mut alice) = t.subscribe_scoped(Some(session("alice")), Some(alice_ip.into()));
        // A viewer on the lab's own machine (the instructor's laptop, or a
        // participant whose viewer comes through the middlebox, which the
        // listener charges to its real client, not to loopback).
        let (_, _, mut local) = t.subscribe_scoped(None, Some([127, 0, 0, 1].into()));
        // The middlebox's connection for Alice comes from loopback.
        t.open(
            ConnId(1),
            (from([127, 0, 0, 1], 6000), alice_ip.into()),
            addr(80),
            Arc::default(),
        );
        t.record(started(1, 1, 1));
        assert_eq!(
            kinds(&drain(&mut alice)),
            vec!["connection_opened", "request_started"],
            "Alice sees her own connection through the middlebox"
        );
        assert!(drain(&mut local).is_empty(), "loopback viewers do not");
        let conns = |host: [u8; 4]| -> Vec<u64> {
            t.scoped_connections(None, Some(host.into()))
                .iter()
                .map(|c| c.conn.0)
                .collect()
        };
        assert_eq!((conns(alice_ip), conns([127, 0, 0, 1])), (vec![1], vec![]));
    }

    #[test]
    fn owner_events_reach_only_their_owner_and_room_events_nobody_but_the_whole_stream() {
        let t = tracker(8);
        let (_, _, mut anonymous) = t.subscribe_scoped(None, Some([127, 0, 0, 1].into()));
        let (_, _, mut alice) = t.subscribe_scoped(Some(session("alice")), None);
        let (_, _, mut all) = t.subscribe();
        t.emit(|at_us| ServerEvent::ConfigChanged {
            config: protocol::ServerPolicy::default(),
            session: Some(session("alice")),
            locked: false,
            at_us,
        });
        t.emit(|at_us| ServerEvent::ConfigChanged {
            config: protocol::ServerPolicy::default(),
            session: None,
            locked: false,
            at_us,
        });
        t.emit(|_| ServerEvent::EventsDropped { count: 1 });
        // A connection from ::1 is on the same host as a viewer on 127.0.0.1.
        let local6: SocketAddr = "[::1]:4000".parse().unwrap();
        t.open(ConnId(7), direct(local6), addr(80), Arc::default());
        assert_eq!(
            kinds(&drain(&mut alice)),
            vec!["config_changed", "events_dropped"]
        );
        assert_eq!(
            kinds(&drain(&mut anonymous)),
            vec!["config_changed", "events_dropped", "connection_opened"]
        );
        let mut whole = 0;
        while all.try_recv().is_ok() {
            whole += 1;
        }
        assert_eq!(whole, 4, "the whole stream gets everything");
    }

    #[tokio::test]
    async fn every_viewer_of_an_event_is_handed_the_same_allocation_not_a_copy() {
        // Before, each feed and each whole-stream receiver got a clone of
        // the event, made under the table lock (`docs/known-gaps.md`).
        let t = tracker(8);
        let alice_ip = [10, 0, 0, 1];
        // Two tabs of one participant, the anonymous scope on the same
        // machine, and the instructor's whole stream.
        let (_, _, mut tab1) = t.subscribe_scoped(Some(session("alice")), Some(alice_ip.into()));
        let (_, _, mut tab2) = t.subscribe_scoped(Some(session("alice")), Some(alice_ip.into()));
        let (_, _, mut neighbour) = t.subscribe_scoped(None, Some(alice_ip.into()));
        let mut whole = Feed::All(t.subscribe().2);
        let (_, _, mut copies) = t.subscribe_copies();

        // Routed by host, by owner, and to everyone.
        t.open(
            ConnId(1),
            direct(from(alice_ip, 5000)),
            addr(80),
            Arc::default(),
        );
        t.emit(|at_us| ServerEvent::ConfigChanged {
            config: protocol::ServerPolicy::default(),
            session: Some(session("alice")),
            locked: false,
            at_us,
        });
        t.emit(|_| ServerEvent::EventsDropped { count: 1 });

        async fn take(feed: &mut Feed, n: usize) -> Vec<Arc<ServerEvent>> {
            let mut seen = Vec::new();
            for _ in 0..n {
                seen.push(feed.recv().await.expect("an event"));
            }
            seen
        }
        let whole = take(&mut whole, 3).await;
        let tab1 = take(&mut tab1, 3).await;
        let tab2 = take(&mut tab2, 3).await;
        let neighbour = take(&mut neighbour, 2).await;
        let kinds: Vec<&str> = whole
            .iter()
            .map(|e| match **e {
                ServerEvent::ConnectionOpened { .. } => "connection_opened",
                ServerEvent::ConfigChanged { .. } => "config_changed",
                ServerEvent::EventsDropped { .. } => "events_dropped",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            ["connection_opened", "config_changed", "events_dropped"]
        );
        for (i, event) in whole.iter().enumerate() {
            assert!(
                Arc::ptr_eq(event, &tab1[i]) && Arc::ptr_eq(event, &tab2[i]),
                "event {i}: the whole stream and the two tabs hold copies, not one event"
            );
        }
        assert!(
            Arc::ptr_eq(&whole[0], &neighbour[0]) && Arc::ptr_eq(&whole[2], &neighbour[1]),
            "the anonymous viewer on the same machine shares them too"
        );
        assert!(
            !Arc::ptr_eq(&whole[0], &whole[1]),
            "each event is an allocation of its own"
        );
        // Nothing is held back for later: the same events, in order.
        for event in &whole {
            assert_eq!(copies.try_recv().as_ref(), Ok(&**event));
        }
        assert!(copies.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_full_feed_reports_its_lag_and_a_dropped_one_is_forgotten() {
        let t = Tracker::new(Clock::new(), 8, 2);
        let (_, _, mut slow) = t.subscribe_scoped(Some(session("slow")), None);
        let (_, _, gone) = t.subscribe_scoped(Some(session("gone")), None);
        assert_eq!(t.feeds(), 2);
        drop(gone);
        for _ in 0..5 {
            t.emit(|_| ServerEvent::EventsDropped { count: 0 });
        }
        assert_eq!(t.feeds(), 1, "a feed whose viewer left is forgotten");
        assert!(matches!(slow.recv().await, Err(RecvError::Lagged(3))));
        assert!(slow.recv().await.is_ok());
        assert!(slow.recv().await.is_ok());
        t.emit(|_| ServerEvent::EventsDropped { count: 0 });
        assert!(
            slow.recv().await.is_ok(),
            "after the lag, events flow again"
        );
    }
}
