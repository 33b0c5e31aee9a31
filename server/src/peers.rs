//! Per-peer-address caps: connections open and requests in flight; and the
//! server-wide cap on connections open.
//!
//! Sessions cap what one participant's *session* may hold, but a hostile
//! client can simply send requests without a session, or open sockets and
//! send nothing. These caps bind whatever comes from one address, generous
//! enough for a browser (Chromium opens at most 6 per pool and 256 in all).
//! A client with many addresses (a LAN's aliases, an IPv6 prefix) gets a
//! share per address, so the server-wide cap bounds them all together,
//! below the process's open-file limit (found in review). And so that such
//! a client cannot take every place the server has (found in review: 16
//! addresses at 512 each fill 8192), the last quarter of the server's cap is
//! kept for addresses that hold little: past three quarters, an address
//! that already holds an eighth of its own cap (64 of 512, more than a
//! browser's page with an agent run needs) opens no more until the server
//! is below three quarters again.
//!
//! The lab also connects to itself for its clients: the middlebox's end
//! towards the lab, and the agent's sockets. Those come from loopback for
//! everyone, so each is registered, by its local address, before it
//! connects ([`Peers::on_behalf`]), and every cap per address charges the
//! client it serves ([`Peers::charged_ip`]). Over IPv4 they come from
//! addresses of their own, in turn ([`own_socket`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::error::ApiError;

/// How many loopback addresses the lab's own connections to itself take in
/// turn ([`own_socket`]): 127.77.0.1 to 127.77.0.254.
pub const OWN_ADDRESSES: u32 = 254;

/// How many of them a socket tries when one is out of ports.
const OWN_TRIES: u32 = 8;

/// Whether `ip` is one of the addresses the lab's own connections to itself
/// come from ([`own_socket`]): one accepted from there that is not
/// registered (its registration forgotten: accepted more than
/// [`ORPHAN_GRACE`] after its client had closed it) is closed at once, not
/// taken for one from the lab's own machine.
pub fn is_own_address(ip: IpAddr) -> bool {
    matches!(ip.to_canonical(), IpAddr::V4(v4) if v4.octets()[..3] == [127, 77, 0])
}

/// A socket for a connection the lab makes to itself at `dest`, an address
/// of this machine (its middlebox's end towards the lab, an agent's
/// socket), bound to a port of its own before it connects, so that it can
/// be registered first. Over IPv4, bound to the next of [`OWN_ADDRESSES`]
/// loopback addresses of its own (127.77.0.x: Linux routes all of
/// 127.0.0.0/8 to the loopback interface, and from there reaches the
/// machine's other addresses too): a port is picked at `bind` from the
/// address's own ephemeral range, and one the lab closed first stays in
/// `TIME_WAIT` for a minute, unusable to `bind` (found in review: a
/// participant who opened and closed some 500 connections a second through
/// the middlebox, no session needed, kept every port of 127.0.0.1 in
/// `TIME_WAIT`, and every mapping and agent socket then failed for
/// everyone). Across 254 addresses, that takes 254 times as many; an
/// address out of ports gives way to the next ones. Over IPv6 (a lab bound
/// to `::` or `::1`, which has one loopback address), or on a system where
/// 127.77.0.x cannot be bound: bound to `dest` itself, as before.
pub fn own_socket(dest: IpAddr) -> std::io::Result<tokio::net::TcpSocket> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    if dest.is_ipv4() {
        for _ in 0..OWN_TRIES {
            let n = NEXT.fetch_add(1, Ordering::Relaxed) % OWN_ADDRESSES;
            let own = Ipv4Addr::new(127, 77, 0, u8::try_from(n + 1).unwrap_or(1));
            let socket = tokio::net::TcpSocket::new_v4()?;
            match socket.bind(SocketAddr::new(own.into(), 0)) {
                Ok(()) => return Ok(socket),
                // Out of ports there: the next address.
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
                Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => break,
                Err(e) => return Err(e),
            }
        }
    }
    let socket = if dest.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(dest, 0))?;
    Ok(socket)
}

/// Counts of one address.
#[derive(Debug)]
struct Counts {
    /// TCP connections open.
    connections: usize,
    /// Requests in flight, shared with its connections.
    in_flight: Arc<InFlight>,
}

impl Counts {
    fn new(ip: IpAddr, table: &Arc<Mutex<Table>>) -> Counts {
        Counts {
            connections: 0,
            in_flight: Arc::new(InFlight {
                ip,
                count: AtomicUsize::new(0),
                table: Arc::downgrade(table),
            }),
        }
    }

    /// Nothing open: the entry goes.
    fn unused(&self) -> bool {
        self.connections == 0 && self.in_flight.count.load(Ordering::Acquire) == 0
    }
}

/// The requests one address has in flight. Each of its connections holds
/// it ([`PeerConnection::in_flight`]), so that a request is counted with an
/// atomic add instead of the table's lock and a lookup (every request:
/// bench figure 1). The table's lock is taken only when the count falls to
/// zero, to forget an address that has nothing open.
#[derive(Debug)]
pub struct InFlight {
    /// Whose.
    ip: IpAddr,
    /// How many.
    count: AtomicUsize,
    /// The table it is in (weak: the table holds it).
    table: Weak<Mutex<Table>>,
}

/// The table of addresses with anything open.
#[derive(Debug)]
pub struct Peers {
    /// Most connections one address may have open.
    max_connections: usize,
    /// Most connections open at once from every address together.
    max_total_connections: usize,
    /// Most requests one address may have in flight.
    max_in_flight: usize,
    /// Addresses with something open; entries go when they reach zero.
    table: Arc<Mutex<Table>>,
    /// The lab's own connections to itself, by their local address: for
    /// whom, and through what.
    behalf: Arc<Mutex<Behalf>>,
}

/// What makes a connection the lab opens to itself on a client's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The lab's middlebox, forwarding its client.
    Middlebox,
    /// A session's agent, started from its page.
    Agent,
}

/// The lab's connections to itself: local address → its registration.
#[derive(Debug, Default)]
struct Behalf {
    /// The registrations.
    map: std::collections::HashMap<SocketAddr, Registration, foldhash::fast::RandomState>,
    /// How many of them are orphaned (their connection gone, the accept
    /// not come): only then does a new registration look for old ones.
    orphans: usize,
}

/// Whom a connection the lab made to itself serves.
#[derive(Debug, Clone, Copy)]
struct Registration {
    /// The client its caps charge.
    ip: IpAddr,
    /// What made it.
    via: Via,
    /// The lab's accept has read it ([`Peers::take_accepted`]).
    accepted: bool,
    /// When its [`OnBehalf`] was dropped, the accept not having read it.
    orphaned: Option<std::time::Instant>,
}

impl Registration {
    /// Not orphaned for longer than [`ORPHAN_GRACE`] (an older one may still
    /// be in the table until the next registration purges it).
    fn live(&self) -> bool {
        self.orphaned.is_none_or(|at| at.elapsed() < ORPHAN_GRACE)
    }
}

/// How long a registration outlives its [`OnBehalf`] for the accept that
/// has not read it yet: a connection the middlebox opened and ended at once
/// (its client reset) waits in the lab's accept queue, and it is still its
/// client's (found in review: read after the registration was gone, it was
/// taken for the lab's own machine, which may change the anonymous scope's
/// settings).
const ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// A connection the lab makes to itself for a client, registered until
/// dropped (hold it as long as the connection).
#[derive(Debug)]
pub struct OnBehalf {
    /// The connection's local end.
    local: SocketAddr,
    /// The registry.
    behalf: Arc<Mutex<Behalf>>,
}

impl Drop for OnBehalf {
    fn drop(&mut self) {
        // Kept for the accept if the lab has not read it yet
        // ([`Peers::take_accepted`]); gone after [`ORPHAN_GRACE`].
        let mut behalf = self.behalf.lock().unwrap_or_else(|p| p.into_inner());
        match behalf.map.get_mut(&self.local) {
            Some(entry) if !entry.accepted => {
                entry.orphaned = Some(std::time::Instant::now());
                behalf.orphans += 1;
            }
            Some(_) => {
                behalf.map.remove(&self.local);
            }
            None => {}
        }
    }
}

/// One connection counted against its address. (Only its address's
/// [`InFlight`], which knows the address and the table: one is kept per
/// connection, bench figure 2.)
#[derive(Debug)]
pub struct PeerConnection {
    /// Its address's requests in flight.
    in_flight: Arc<InFlight>,
}

impl PeerConnection {
    /// Its address's requests in flight, for [`Peers::enter_on`].
    pub fn in_flight(&self) -> Arc<InFlight> {
        self.in_flight.clone()
    }
}

/// One request counted against its address.
#[derive(Debug)]
pub struct PeerRequest {
    /// Its address's requests in flight.
    in_flight: Arc<InFlight>,
}

/// Counts per address, and the connections of all of them.
#[derive(Debug, Default)]
struct Table {
    /// Addresses with something open; entries go when they reach zero.
    /// foldhash, not std's SipHash: every request looks its address up twice
    /// (bench figure 1), and the keys are the peers' own addresses, not
    /// chosen by them beyond the one each has.
    by_ip: std::collections::HashMap<IpAddr, Counts, foldhash::fast::RandomState>,
    /// Connections open from every address together.
    connections: usize,
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverCap {
    /// Its address's.
    Address,
    /// The server's, all addresses together.
    Server,
    /// The server is past three quarters of its cap, and the address
    /// already holds its share of what is left ([`Peers::busy_share`]).
    Share,
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for PeerConnection {
    fn drop(&mut self) {
        let Some(table) = self.in_flight.table.upgrade() else {
            return;
        };
        let mut table = lock(&table);
        table.connections = table.connections.saturating_sub(1);
        let ip = self.in_flight.ip;
        if let Some(counts) = table.by_ip.get_mut(&ip) {
            counts.connections = counts.connections.saturating_sub(1);
            if counts.unused() {
                table.by_ip.remove(&ip);
            }
        }
    }
}

impl Drop for PeerRequest {
    fn drop(&mut self) {
        let in_flight = &self.in_flight;
        if in_flight.count.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // The address's last request: its entry goes if it has nothing else
        // open (its last connection may have closed before this request
        // ended), and if it is still this one's.
        if let Some(table) = in_flight.table.upgrade() {
            let mut table = lock(&table);
            if table
                .by_ip
                .get(&in_flight.ip)
                .is_some_and(|c| Arc::ptr_eq(&c.in_flight, in_flight) && c.unused())
            {
                table.by_ip.remove(&in_flight.ip);
            }
        }
    }
}

impl Peers {
    /// An empty table with the given caps: connections per address and in
    /// all, requests in flight per address.
    pub fn new(
        (max_connections, max_total_connections): (usize, usize),
        max_in_flight: usize,
    ) -> Peers {
        Peers {
            max_connections,
            max_total_connections,
            max_in_flight,
            table: Arc::default(),
            behalf: Arc::default(),
        }
    }

    /// Registers a connection the lab is about to make to itself from
    /// `local` for `client`, through `via`. Registered before it connects,
    /// so the accept loop knows whose it is from the first moment. A client
    /// that is itself one of the lab's own connections (the agent through
    /// the middlebox) is charged to whom that one serves.
    pub fn on_behalf(&self, local: SocketAddr, client: SocketAddr, via: Via) -> OnBehalf {
        let mut behalf = self.registrations();
        let charged = behalf
            .map
            .get(&client)
            .map_or(client.ip().to_canonical(), |r| r.ip);
        self.register(&mut behalf, local, charged, via)
    }

    /// Registers a connection the lab is about to make to itself from
    /// `local`, charged to `ip`, an address already charged (the agent's
    /// page's, as read at its events socket's accept: looked up again from
    /// that socket's peer, a middlebox mapping it came through that had
    /// ended would charge the agent to the lab's own machine), through
    /// `via`.
    pub fn charged_to(&self, local: SocketAddr, ip: IpAddr, via: Via) -> OnBehalf {
        let mut behalf = self.registrations();
        self.register(&mut behalf, local, ip.to_canonical(), via)
    }

    /// The registrations, locked, with orphans past their grace forgotten.
    fn registrations(&self) -> MutexGuard<'_, Behalf> {
        let mut behalf = self.behalf.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if behalf.orphans > 0 {
            behalf.map.retain(|_, r| {
                r.orphaned
                    .is_none_or(|at| now.duration_since(at) < ORPHAN_GRACE)
            });
            behalf.orphans = behalf.map.values().filter(|r| r.orphaned.is_some()).count();
        }
        behalf
    }

    /// Registers `local`, charged to `ip`, in `behalf`.
    fn register(&self, behalf: &mut Behalf, local: SocketAddr, ip: IpAddr, via: Via) -> OnBehalf {
        behalf.map.insert(
            local,
            Registration {
                ip,
                via,
                accepted: false,
                orphaned: None,
            },
        );
        OnBehalf {
            local,
            behalf: self.behalf.clone(),
        }
    }

    /// The address the caps per address charge for a connection from
    /// `peer`: the client it serves when the lab made it for one, else
    /// `peer`'s own; an IPv4 client on an IPv6 socket (`::ffff:a.b.c.d`) as
    /// its IPv4 address, so that it has one share whichever port it used.
    /// (Once per connection, at its accept.)
    pub fn charged_ip(&self, peer: SocketAddr) -> IpAddr {
        self.accepted(peer).0
    }

    /// What a connection accepted from `peer` is, read once at its accept
    /// and kept with it: the address its caps charge, and through what the
    /// lab made it, if it did. (Looked up again later, a registration already
    /// dropped, when its mapping ended, would make the rest of its requests
    /// look like the lab's own machine.)
    pub fn accepted(&self, peer: SocketAddr) -> (IpAddr, Option<Via>) {
        self.behalf
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .get(&peer)
            .filter(|r| r.live())
            .map_or((peer.ip().to_canonical(), None), |r| (r.ip, Some(r.via)))
    }

    /// [`Peers::accepted`] for the lab's own accept, which is the last to
    /// read a registration whose [`OnBehalf`] is already gone: it is
    /// forgotten then.
    pub fn take_accepted(&self, peer: SocketAddr) -> (IpAddr, Option<Via>) {
        let mut behalf = self.behalf.lock().unwrap_or_else(|p| p.into_inner());
        let Some(r) = behalf.map.get_mut(&peer).filter(|r| r.live()) else {
            return (peer.ip().to_canonical(), None);
        };
        r.accepted = true;
        let found = (r.ip, Some(r.via));
        if r.orphaned.is_some() {
            behalf.map.remove(&peer);
            behalf.orphans = behalf.orphans.saturating_sub(1);
        }
        found
    }

    /// Past how many connections open in all the server is busy: three
    /// quarters of its cap.
    fn busy_from(&self) -> usize {
        busy_from(self.max_total_connections)
    }

    /// What an address may hold and still open more while the server is
    /// busy: an eighth of its own cap (at least one).
    pub fn busy_share(&self) -> usize {
        busy_share(self.max_connections)
    }

    /// Counts a new connection from `ip`, or says which cap it is over.
    pub fn connect(&self, ip: IpAddr) -> Result<PeerConnection, OverCap> {
        let mut table = lock(&self.table);
        if table.connections >= self.max_total_connections {
            return Err(OverCap::Server);
        }
        let in_use = table.connections;
        let counts = table
            .by_ip
            .entry(ip)
            .or_insert_with(|| Counts::new(ip, &self.table));
        if counts.connections >= self.max_connections {
            return Err(OverCap::Address);
        }
        if over_busy_share(
            in_use,
            self.max_total_connections,
            counts.connections,
            self.max_connections,
        ) {
            return Err(OverCap::Share);
        }
        counts.connections += 1;
        let in_flight = counts.in_flight.clone();
        table.connections += 1;
        Ok(PeerConnection { in_flight })
    }

    /// Counts a request from `ip`, or refuses past the cap. (A connection's
    /// requests use [`Peers::enter_on`].)
    pub fn enter(&self, ip: IpAddr) -> Result<PeerRequest, ApiError> {
        let mut table = lock(&self.table);
        let in_flight = table
            .by_ip
            .entry(ip)
            .or_insert_with(|| Counts::new(ip, &self.table))
            .in_flight
            .clone();
        // Counted under the lock: an entry with nothing open could
        // otherwise be forgotten between the lookup and the count.
        let entered = self.enter_on(&in_flight);
        if entered.is_err() && table.by_ip.get(&ip).is_some_and(Counts::unused) {
            table.by_ip.remove(&ip);
        }
        entered
    }

    /// Counts a request on a connection whose address's count is
    /// `in_flight` ([`PeerConnection::in_flight`]), or refuses past the cap.
    /// No lock: every request comes here (bench figure 1).
    pub fn enter_on(&self, in_flight: &Arc<InFlight>) -> Result<PeerRequest, ApiError> {
        if in_flight.count.fetch_add(1, Ordering::AcqRel) >= self.max_in_flight {
            // Given back at once, and refused. (Not through a dropped
            // `PeerRequest`, which may take the table's lock: `enter` holds
            // it.)
            in_flight.count.fetch_sub(1, Ordering::AcqRel);
            let ip = in_flight.ip;
            return Err(ApiError::too_many(
                format!(
                    "{ip} already has {} requests in flight, the cap per address",
                    self.max_in_flight
                ),
                "wait for some to finish; a browser never needs this many at once",
            )
            .on_socket(format!(
                "your address has {} requests in flight, its cap; wait for some to end",
                self.max_in_flight
            )));
        }
        Ok(PeerRequest {
            in_flight: in_flight.clone(),
        })
    }

    /// The refusal written to a connection from `ip` over the cap `over`,
    /// before closing it.
    pub fn over_cap_response(&self, ip: IpAddr, over: OverCap) -> Vec<u8> {
        let body = match over {
            OverCap::Address => serde_json::json!({
                "error": format!("{ip} already has {} connections open, the cap per address", self.max_connections),
                "hint": "close idle connections or tabs; a browser needs at most a few dozen",
            }),
            OverCap::Server => serde_json::json!({
                "error": format!("the lab already has {} connections open, its cap", self.max_total_connections),
                "hint": "try again once other connections have closed (idle ones close by \
                         themselves at the server's idle timeout)",
            }),
            OverCap::Share => serde_json::json!({
                "error": format!(
                    "the lab has {} or more of its {} connections open, and {ip} already holds {} or more; \
                     while it is this busy, only addresses holding fewer may open more",
                    self.busy_from(), self.max_total_connections, self.busy_share()
                ),
                "hint": "close idle connections or tabs; the room's other machines get the last quarter",
            }),
        }
        .to_string();
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// Addresses with anything open (0 once everything closed).
    pub fn active(&self) -> usize {
        lock(&self.table).by_ip.len()
    }

    /// Connections open from every address together.
    pub fn connections(&self) -> usize {
        lock(&self.table).connections
    }
}

/// Past how much of a server-wide `cap` in use the server is busy: three
/// quarters of it.
pub fn busy_from(cap: usize) -> usize {
    cap - cap / 4
}

/// What an address may hold of a resource and still take more while the
/// server is busy: an eighth of its own cap `per_address` (at least one).
pub fn busy_share(per_address: usize) -> usize {
    (per_address / 8).max(1)
}

/// Whether an address holding `theirs` of a resource gets no more: `in_use`
/// of the server's `cap` is past [`busy_from`], and `theirs` is past
/// [`busy_share`] of the address's own cap. So a server-wide cap does not
/// fall to the few addresses that each take their whole share: its last
/// quarter goes to addresses that hold little. Connections
/// ([`Peers::connect`]), hanging requests and agents follow it (found in
/// review: four addresses took every hang, sixteen every session).
pub fn over_busy_share(in_use: usize, cap: usize, theirs: usize, per_address: usize) -> bool {
    in_use >= busy_from(cap) && theirs >= busy_share(per_address)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lab's own sockets to itself over IPv4 come from its own loopback
    /// addresses in turn, each with its own ports (a port in `TIME_WAIT` on
    /// one does not take it on the others), and reach the lab there; over
    /// IPv6 from the destination's address.
    #[tokio::test]
    async fn own_sockets_take_the_labs_own_addresses_in_turn() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = listener.local_addr().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        // Other tests may take turns meanwhile: until each was seen.
        for _ in 0..3 * OWN_ADDRESSES {
            if seen.len() == OWN_ADDRESSES as usize {
                break;
            }
            let socket = own_socket(to.ip()).expect("a socket");
            let local = socket.local_addr().unwrap();
            assert!(local.port() != 0, "bound before it connects: {local}");
            let IpAddr::V4(v4) = local.ip() else {
                panic!("IPv4: {local}")
            };
            assert_eq!(v4.octets()[..3], [127, 77, 0], "{local}");
            seen.insert(v4);
            if seen.len() == 1 {
                let stream = socket.connect(to).await.expect("reaches the lab");
                let (_, peer) = listener.accept().await.unwrap();
                assert_eq!(peer, stream.local_addr().unwrap());
            }
        }
        assert_eq!(seen.len(), OWN_ADDRESSES as usize, "each address in turn");
        let v6 = own_socket(std::net::Ipv6Addr::LOCALHOST.into()).expect("a socket");
        assert_eq!(v6.local_addr().unwrap().ip(), std::net::Ipv6Addr::LOCALHOST);
    }

    #[test]
    fn a_connections_requests_share_its_address_count_and_the_last_to_end_forgets_it() {
        let peers = Peers::new((4, 100), 2);
        let a = IpAddr::from([10, 0, 0, 1]);
        let c = peers.connect(a).unwrap();
        let in_flight = c.in_flight();
        let r1 = peers.enter_on(&in_flight).unwrap();
        // Through the table: the same count.
        let r2 = peers.enter(a).unwrap();
        assert_eq!(peers.enter_on(&in_flight).unwrap_err().status.as_u16(), 429);
        assert_eq!(peers.enter(a).unwrap_err().status.as_u16(), 429);
        drop(r2);
        let r3 = peers.enter_on(&in_flight).unwrap();
        // The connection closes before its requests end: they keep the
        // address until the last one does.
        drop(c);
        assert_eq!(peers.active(), 1);
        drop(r1);
        assert_eq!(peers.active(), 1);
        drop(r3);
        assert_eq!(peers.active(), 0);
        // A request refused on its own leaves nothing behind.
        let none = Peers::new((4, 100), 0);
        assert!(none.enter(a).is_err());
        assert_eq!(none.active(), 0);
    }

    #[test]
    fn caps_connections_and_requests_per_address_and_forgets_idle_ones() {
        let peers = Peers::new((2, 100), 1);
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let c1 = peers.connect(a).unwrap();
        let _c2 = peers.connect(a).unwrap();
        assert_eq!(peers.connect(a).unwrap_err(), OverCap::Address);
        assert!(peers.connect(b).is_ok());
        let r = peers.enter(a).unwrap();
        assert_eq!(peers.enter(a).unwrap_err().status.as_u16(), 429);
        drop(r);
        drop(c1);
        assert!(peers.connect(a).is_ok());
        assert!(peers.enter(a).is_ok());
    }

    #[test]
    fn caps_connections_from_every_address_together() {
        let peers = Peers::new((2, 3), 1);
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        let open: Vec<PeerConnection> = (1..=3).map(|n| peers.connect(ip(n)).unwrap()).collect();
        assert_eq!(peers.connections(), 3);
        assert_eq!(peers.connect(ip(4)).unwrap_err(), OverCap::Server);
        assert_eq!(peers.connect(ip(1)).unwrap_err(), OverCap::Server);
        drop(open);
        assert_eq!((peers.connections(), peers.active()), (0, 0));
        assert!(peers.connect(ip(4)).is_ok());
    }

    /// Past three quarters of the server's cap, an address that holds its
    /// busy share opens no more, and the rest is left to the addresses that
    /// hold little (found in review: a client with many addresses could
    /// take every place); below three quarters again, it may.
    #[test]
    fn past_three_quarters_the_rest_is_kept_for_addresses_that_hold_little() {
        let peers = Peers::new((16, 16), 1);
        assert_eq!(peers.busy_share(), 2);
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        let mut many: Vec<PeerConnection> =
            (0..12).map(|_| peers.connect(ip(1)).unwrap()).collect();
        assert_eq!(peers.connect(ip(1)).unwrap_err(), OverCap::Share, "busy");
        let b: Vec<PeerConnection> = (0..2).map(|_| peers.connect(ip(2)).unwrap()).collect();
        assert_eq!(
            peers.connect(ip(2)).unwrap_err(),
            OverCap::Share,
            "its share"
        );
        let c: Vec<PeerConnection> = (0..2).map(|_| peers.connect(ip(3)).unwrap()).collect();
        assert_eq!(peers.connections(), 16);
        assert_eq!(peers.connect(ip(4)).unwrap_err(), OverCap::Server);
        drop((b, c));
        many.truncate(11);
        assert!(peers.connect(ip(1)).is_ok(), "below three quarters again");
        let text = String::from_utf8(peers.over_cap_response(ip(1), OverCap::Share)).unwrap();
        assert!(text.contains("10.0.0.1 already holds 2 or more"), "{text}");
    }

    /// A connection the lab made for a client and that ended before the
    /// lab's accept read its registration (the middlebox's client reset at
    /// once) is still that client's at the accept, and only there; one the
    /// accept read first is forgotten with its `OnBehalf`.
    #[test]
    fn a_registration_outlives_its_connection_until_the_accept_reads_it() {
        let peers = Peers::new((2, 100), 1);
        let client: SocketAddr = "192.168.1.7:50000".parse().unwrap();
        let (early, late): (SocketAddr, SocketAddr) = (
            "127.0.0.1:40001".parse().unwrap(),
            "127.0.0.1:40002".parse().unwrap(),
        );
        let charged = IpAddr::from([192, 168, 1, 7]);
        // Ended before the accept.
        drop(peers.on_behalf(early, client, Via::Middlebox));
        assert_eq!(peers.take_accepted(early), (charged, Some(Via::Middlebox)));
        assert_eq!(
            peers.accepted(early),
            (early.ip(), None),
            "read once, then gone"
        );
        // Accepted first, then ended.
        let held = peers.on_behalf(late, client, Via::Middlebox);
        assert_eq!(peers.take_accepted(late), (charged, Some(Via::Middlebox)));
        assert_eq!(
            peers.accepted(late).0,
            charged,
            "still open: still its client's"
        );
        drop(held);
        assert_eq!(peers.accepted(late), (late.ip(), None));
    }
}
