//! The table of open connections and the live event stream.
//!
//! Every fact the lab reports goes through [`Tracker::record`], which applies
//! the event to the table and broadcasts it while holding one lock. A new
//! viewer takes its snapshot and subscribes under the same lock
//! ([`Tracker::subscribe`]), so it sees every event after its snapshot exactly
//! once: no gap, no double.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use std::net::SocketAddr;

use protocol::{
    CloseReason, ConnId, ConnectionSnapshot, Micros, RequestId, RequestOutcome, RequestSnapshot,
    ServerEvent, SessionId,
};
use tokio::sync::broadcast;

use crate::Clock;

/// Byte counters of one connection, written by its IO wrapper on every read
/// and write (atomics, so the hot path never takes the table lock) and read
/// when a snapshot is taken.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes read from the socket.
    pub bytes_in: AtomicU64,
    /// Bytes written to the socket.
    pub bytes_out: AtomicU64,
    /// Server clock + 1 at the last read (0: nothing read yet).
    last_in: AtomicU64,
    /// Server clock + 1 at the last write (0: nothing written yet).
    last_out: AtomicU64,
}

impl Counters {
    /// `n` bytes were read at `now`.
    pub fn record_in(&self, n: u64, now: Micros) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
        self.last_in.store(now.saturating_add(1), Ordering::Relaxed);
    }

    /// `n` bytes were written at `now`.
    pub fn record_out(&self, n: u64, now: Micros) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
        self.last_out
            .store(now.saturating_add(1), Ordering::Relaxed);
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
    /// Listener address it arrived on.
    local: SocketAddr,
    /// Its session, once attributed.
    session: Option<SessionId>,
    /// Set once upgraded.
    upgraded: Option<protocol::UpgradeRole>,
    /// Shared with the IO wrapper.
    counters: Arc<Counters>,
    /// Requests carried in total.
    requests_total: u32,
    /// Recent requests, oldest first; trimmed to the configured number of
    /// completed ones.
    requests: VecDeque<RequestSnapshot>,
}

impl ConnRecord {
    /// A request's head was read on this connection.
    fn started(
        &mut self,
        request: RequestId,
        seq: u32,
        method: String,
        target: String,
        at_us: Micros,
    ) {
        self.requests_total = self.requests_total.max(seq);
        self.requests.push_back(RequestSnapshot {
            request,
            seq,
            method,
            target,
            started_us: at_us,
            response_us: None,
            finished_us: None,
            status: None,
            outcome: None,
        });
    }
}

/// Connection table plus event broadcast. See the module docs.
#[derive(Debug)]
pub struct Tracker {
    /// The one clock every event is stamped with.
    clock: Clock,
    /// Next connection id; ids are never reused during a run.
    next_conn: AtomicU64,
    /// Next request id, server-wide.
    next_request: AtomicU64,
    /// Completed requests kept per connection.
    keep_per_conn: usize,
    /// Open connections.
    table: Mutex<BTreeMap<ConnId, ConnRecord>>,
    /// Live events; each viewer holds a receiver with a bounded lag.
    events: broadcast::Sender<ServerEvent>,
}

impl Tracker {
    /// An empty tracker that keeps `keep_per_conn` completed requests per
    /// connection and buffers `event_buffer` events for each viewer.
    pub fn new(clock: Clock, keep_per_conn: usize, event_buffer: usize) -> Tracker {
        Tracker {
            clock,
            next_conn: AtomicU64::new(1),
            next_request: AtomicU64::new(1),
            keep_per_conn,
            table: Mutex::new(BTreeMap::new()),
            events: broadcast::Sender::new(event_buffer.max(1)),
        }
    }

    /// Stamps an event with the clock and records it ([`Tracker::record`]).
    /// The stamp is taken under the table lock, so events are broadcast in
    /// the order of their timestamps.
    pub fn emit(&self, event: impl FnOnce(Micros) -> ServerEvent) {
        self.record_with(event);
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

    fn lock(&self) -> MutexGuard<'_, BTreeMap<ConnId, ConnRecord>> {
        // A panic while holding the lock cannot leave the table half-updated in
        // a way that matters more than losing the lab, so recover the guard.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a connection to the table and announces it.
    pub fn open(&self, conn: ConnId, peer: SocketAddr, local: SocketAddr, counters: Arc<Counters>) {
        let at_us = self.clock.now_us();
        let mut table = self.lock();
        table.insert(
            conn,
            ConnRecord {
                opened_us: at_us,
                peer,
                local,
                session: None,
                upgraded: None,
                counters,
                requests_total: 0,
                requests: VecDeque::new(),
            },
        );
        let _ = self.events.send(ServerEvent::ConnectionOpened {
            conn,
            at_us,
            peer: peer.to_string(),
            local_addr: local.to_string(),
            local_port: local.port(),
        });
    }

    /// Removes a connection and announces why it closed. Requests still in
    /// flight on it are reported as aborted first, so a viewer never sees a
    /// request outlive its connection.
    pub fn close(&self, conn: ConnId, reason: CloseReason, requests: u32) {
        let mut table = self.lock();
        let Some(record) = table.remove(&conn) else {
            return;
        };
        let at_us = self.clock.now_us();
        for request in record.requests.iter().filter(|r| r.outcome.is_none()) {
            let _ = self.events.send(ServerEvent::RequestFinished {
                conn,
                request: request.request,
                outcome: RequestOutcome::Aborted,
                at_us,
            });
        }
        let _ = self.events.send(ServerEvent::ConnectionClosed {
            conn,
            reason,
            bytes_in: record.counters.bytes_in.load(Ordering::Relaxed),
            bytes_out: record.counters.bytes_out.load(Ordering::Relaxed),
            last_in_us: record.counters.last_in_us(),
            last_out_us: record.counters.last_out_us(),
            requests,
            at_us,
        });
    }

    /// Applies a per-request or upgrade event to the table and broadcasts it.
    ///
    /// Events for a connection that is no longer open, and a second
    /// `RequestFinished` for the same request, are dropped: they can only be
    /// late echoes of what [`Tracker::close`] already reported.
    pub fn record(&self, event: ServerEvent) {
        self.record_with(|_| event);
    }

    fn record_with(&self, make: impl FnOnce(Micros) -> ServerEvent) {
        let mut table = self.lock();
        let event = make(self.clock.now_us());
        if self.events.receiver_count() == 0 {
            // Nobody is watching: keep the facts, but move a request's strings
            // into the table instead of cloning them for an event nobody gets.
            match event {
                ServerEvent::RequestStarted {
                    conn,
                    request,
                    seq,
                    method,
                    target,
                    at_us,
                } => {
                    if let Some(record) = table.get_mut(&conn) {
                        record.started(request, seq, method, target, at_us);
                    }
                }
                other => {
                    self.apply(&mut table, &other);
                }
            }
            return;
        }
        if self.apply(&mut table, &event) {
            let _ = self.events.send(event);
        }
    }

    fn apply(&self, table: &mut BTreeMap<ConnId, ConnRecord>, event: &ServerEvent) -> bool {
        match event {
            ServerEvent::RequestStarted {
                conn,
                request,
                seq,
                method,
                target,
                at_us,
            } => {
                let Some(record) = table.get_mut(conn) else {
                    return false;
                };
                record.started(*request, *seq, method.clone(), target.clone(), *at_us);
                true
            }
            ServerEvent::ResponseStarted {
                conn,
                request,
                status,
                at_us,
            } => match find(table, *conn, *request) {
                Some(r) if r.response_us.is_none() => {
                    r.response_us = Some(*at_us);
                    r.status = Some(*status);
                    true
                }
                _ => false,
            },
            ServerEvent::RequestFinished {
                conn,
                request,
                outcome,
                at_us,
            } => {
                match find(table, *conn, *request) {
                    Some(r) if r.outcome.is_none() => {
                        r.outcome = Some(*outcome);
                        r.finished_us = Some(*at_us);
                    }
                    _ => return false,
                }
                if let Some(record) = table.get_mut(conn) {
                    trim(&mut record.requests, self.keep_per_conn);
                }
                true
            }
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
            // Everything else is per viewer (pong, released, errors) or goes
            // through `open`/`close`; broadcast it as is.
            _ => true,
        }
    }

    /// How many connections are open.
    pub fn open_count(&self) -> usize {
        self.lock().len()
    }

    /// The open connections right now.
    pub fn connections(&self) -> Vec<ConnectionSnapshot> {
        snapshot_of(&self.lock())
    }

    /// One open connection, if it is open.
    pub fn connection(&self, conn: ConnId) -> Option<ConnectionSnapshot> {
        let table = self.lock();
        table.get(&conn).map(|record| snapshot_one(conn, record))
    }

    /// Open connections plus a receiver for every event after them, taken
    /// atomically (see the module docs), and the time they were taken.
    pub fn subscribe(
        &self,
    ) -> (
        Micros,
        Vec<ConnectionSnapshot>,
        broadcast::Receiver<ServerEvent>,
    ) {
        let table = self.lock();
        let rx = self.events.subscribe();
        (self.clock.now_us(), snapshot_of(&table), rx)
    }
}

fn find(
    table: &mut BTreeMap<ConnId, ConnRecord>,
    conn: ConnId,
    request: RequestId,
) -> Option<&mut RequestSnapshot> {
    table
        .get_mut(&conn)?
        .requests
        .iter_mut()
        .rev()
        .find(|r| r.request == request)
}

/// Drops the oldest *completed* requests beyond `keep`; in-flight ones stay.
fn trim(requests: &mut VecDeque<RequestSnapshot>, keep: usize) {
    let mut done = requests.iter().filter(|r| r.outcome.is_some()).count();
    while done > keep {
        let Some(pos) = requests.iter().position(|r| r.outcome.is_some()) else {
            break;
        };
        requests.remove(pos);
        done -= 1;
    }
}

fn snapshot_one(conn: ConnId, r: &ConnRecord) -> ConnectionSnapshot {
    ConnectionSnapshot {
        conn,
        opened_us: r.opened_us,
        peer: r.peer.to_string(),
        local_addr: r.local.to_string(),
        local_port: r.local.port(),
        session: r.session.clone(),
        upgraded: r.upgraded,
        bytes_in: r.counters.bytes_in.load(Ordering::Relaxed),
        bytes_out: r.counters.bytes_out.load(Ordering::Relaxed),
        last_in_us: r.counters.last_in_us(),
        last_out_us: r.counters.last_out_us(),
        requests_total: r.requests_total,
        requests: r.requests.iter().cloned().collect(),
    }
}

fn snapshot_of(table: &BTreeMap<ConnId, ConnRecord>) -> Vec<ConnectionSnapshot> {
    table
        .iter()
        .map(|(conn, r)| snapshot_one(*conn, r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(conn: u64, request: u64, seq: u32) -> ServerEvent {
        ServerEvent::RequestStarted {
            conn: ConnId(conn),
            request: RequestId(request),
            seq,
            method: "GET".into(),
            target: "/api/slow?ms=1".into(),
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

    #[test]
    fn keeps_in_flight_requests_and_the_newest_completed_ones() {
        let t = tracker(2);
        t.open(ConnId(1), addr(1), addr(80), Arc::default());
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
    fn subscribers_see_events_after_their_snapshot_once_and_late_echoes_are_dropped() {
        let t = tracker(8);
        t.open(ConnId(1), addr(1), addr(80), Arc::default());
        t.record(started(1, 1, 1));
        let (_, connections, mut rx) = t.subscribe();
        assert_eq!(connections[0].requests.len(), 1);
        t.close(ConnId(1), CloseReason::PeerReset, 1);
        t.record(finished(1, 1)); // the guard's late echo
        assert!(matches!(
            rx.try_recv().unwrap(),
            ServerEvent::RequestFinished {
                outcome: RequestOutcome::Aborted,
                ..
            }
        ));
        assert!(matches!(
            rx.try_recv().unwrap(),
            ServerEvent::ConnectionClosed {
                reason: CloseReason::PeerReset,
                ..
            }
        ));
        assert!(rx.try_recv().is_err(), "the late echo is not broadcast");
    }
}
