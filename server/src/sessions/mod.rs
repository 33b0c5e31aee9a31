//! Sessions: capabilities the server issues, one per page load.
//!
//! A workshop shares one server, so everything a participant can see or
//! change is scoped to an [`Owner`]: a session the server issued
//! (`POST /api/sessions`, 128 random bits), or the one shared *anonymous*
//! scope of requests that name no session (curl, the page load itself).
//! Each owner has
//!
//! - its own keep-alive policy (starting from the server's defaults), which
//!   every connection attributed to it reads live through a
//!   [`watch`] channel ([`ScopeView`]);
//! - a cap on requests in flight ([`Permit`]);
//! - a count of its event viewers: when a session's last viewer leaves and
//!   nothing of it is in flight, its page is gone, and its idle connections
//!   are closed at once ([`ScopeView::ended`]).
//!
//! The instructor (see [`key`]) can lock the policy for the room: while
//! locked, every owner runs the server's defaults and changes are refused.
//!
//! Ids the server did not issue are refused, and sessions are capped per
//! peer address and in total; a session whose page is gone is forgotten
//! after [`SESSION_TTL`] (or sooner when room is needed, and at once when a
//! reload of its tab took its place: [`Sessions::issue_replacing`]).

pub mod copy;
pub mod key;
pub mod rate;
pub mod room;

use std::collections::HashMap;

/// Every owner's scope. foldhash, not std's SipHash: each request looks its
/// owner up three times (bench figure 1). Its seed is random per process, and
/// only ids the server issued are ever inserted.
type Scopes = HashMap<Owner, Scope, foldhash::fast::RandomState>;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use protocol::{LessonReport, Participant, PolicyPatch, ServerPolicy, SessionId};
use tokio::sync::watch;

use crate::error::ApiError;

/// How long a session whose page is gone (no viewer, nothing in flight) is
/// remembered, so a page whose events socket reconnects keeps its session.
pub const SESSION_TTL: Duration = Duration::from_secs(10 * 60);

/// How long a session that never had a viewer (a script's, or a page
/// between asking for it and opening its events socket) must go unused
/// before it can make room for a new one at the caps. Without it, anyone on
/// the same address asking for sessions in a loop forgot a session in use
/// (found in review).
pub const UNVIEWED_GRACE: Duration = Duration::from_secs(60);

/// Whose requests, connections and policy: one session, or the anonymous
/// scope shared by every request that names none (from the lab's own
/// machine: other machines need a session, [`session_needed`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// Requests without `session=`.
    Anonymous,
    /// A session the server issued.
    Session(SessionId),
}

impl Owner {
    /// The session, if this is one (the wire's `null` is the anonymous scope).
    pub fn session(&self) -> Option<&SessionId> {
        match self {
            Owner::Anonymous => None,
            Owner::Session(id) => Some(id),
        }
    }

    /// The owner named by an optional session id.
    pub fn of(session: Option<SessionId>) -> Owner {
        session.map_or(Owner::Anonymous, Owner::Session)
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Anonymous => f.write_str("the anonymous scope"),
            Owner::Session(id) => write!(f, "session `{id}`"),
        }
    }
}

/// When a session's viewer opening or closing is told to the instructor
/// ([`Sessions::presence_changed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Now.
    Now,
    /// Over the rate: once, [`crate::events::PRESENCE_DEFERRAL`] later, with
    /// the state as it is then (the caller schedules it).
    Later,
    /// An announcement is already deferred, and will tell this change too.
    Pending,
}

/// What a caller may see and release: everything (the instructor's key), or
/// one owner's world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// The whole server (the instructor key).
    All,
    /// One session's, or the anonymous scope's.
    Of(Owner),
}

impl Access {
    /// The owner, unless this is the whole-server view.
    pub fn owner(&self) -> Option<&Owner> {
        match self {
            Access::All => None,
            Access::Of(owner) => Some(owner),
        }
    }

    /// Whether something of `owner` is within reach.
    pub fn reaches(&self, owner: &Owner) -> bool {
        match self {
            Access::All => true,
            Access::Of(mine) => mine == owner,
        }
    }
}

/// What a connection of an owner needs to know, live: the policy in force
/// and whether the owner's page is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeView {
    /// The effective policy (the defaults while the room is locked).
    pub policy: ServerPolicy,
    /// The page went away: idle connections should close now.
    pub ended: bool,
}

/// Caps of the registry, from [`crate::Config`].
#[derive(Debug, Clone, Copy)]
pub struct SessionCaps {
    /// Requests one owner may have in flight at once.
    pub in_flight: usize,
    /// Event viewers one owner may have open at once.
    pub viewers: usize,
    /// Sessions issued and remembered at once, server-wide.
    pub sessions: usize,
    /// Sessions one peer address may hold at once.
    pub sessions_per_peer: usize,
}

/// One owner's state.
#[derive(Debug)]
struct Scope {
    /// Its own policy (what it runs while the room is unlocked).
    policy: ServerPolicy,
    /// The effective view, read live by its connections.
    view: watch::Sender<ScopeView>,
    /// Requests in flight. A session's changes only under the registry's
    /// lock (its page is gone when it reaches 0 with no viewer); the
    /// anonymous scope's without it (its page never goes, and every request
    /// without a session counts here: bench figure 1).
    in_flight: Arc<AtomicUsize>,
    /// Event viewers connected now.
    viewers: usize,
    /// Whether a viewer ever connected (a curl-only session never "ends").
    had_viewer: bool,
    /// Its tab's next page (a reload) took over its presence in the room
    /// ([`Sessions::issue_replacing`]): it is no longer a participant.
    replaced: bool,
    /// Who asked for it (for the per-peer cap); `None` for the anonymous scope.
    peer: Option<IpAddr>,
    /// For expiry: when its last request or viewer ended (or it was made),
    /// read only while it has neither. Set only when it becomes unused, so
    /// that a request's start and end read no clock (bench figure 1); never
    /// for the anonymous scope, which does not expire.
    last_used: Instant,
    /// What the instructor sees of this participant.
    presence: room::Presence,
    /// How many settings changes and lesson reports it may still send: one
    /// limit for all its sockets (`events::CONFIG_BURST`, `REPORT_BURST`),
    /// and how many of its viewers' comings and goings are told at once
    /// (`PRESENCE_BURST`).
    rates: rate::Buckets,
    /// An announcement of its presence is deferred (over its rate): later
    /// changes wait for it.
    presence_deferred: bool,
}

impl Scope {
    fn new(policy: ServerPolicy, peer: Option<IpAddr>) -> Scope {
        Scope {
            view: watch::Sender::new(ScopeView {
                policy: policy.clone(),
                ended: false,
            }),
            policy,
            in_flight: Arc::new(AtomicUsize::new(0)),
            viewers: 0,
            had_viewer: false,
            replaced: false,
            peer,
            last_used: Instant::now(),
            presence: room::Presence::default(),
            rates: rate::Buckets::new(),
            presence_deferred: false,
        }
    }

    /// Its page is gone: a viewer came and went, and nothing is in flight.
    fn page_gone(&self) -> bool {
        self.had_viewer && self.viewers == 0 && self.in_flight() == 0
    }

    /// Its requests in flight now.
    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Pushes the effective view to the owner's connections; whether its
    /// policy changed.
    fn publish(&self, locked: bool, defaults: &ServerPolicy) -> bool {
        let view = ScopeView {
            policy: if locked {
                defaults.clone()
            } else {
                self.policy.clone()
            },
            ended: self.page_gone(),
        };
        let mut policy_changed = false;
        if self.view.send_if_modified(|current| {
            policy_changed = current.policy != view.policy;
            let changed = *current != view;
            *current = view;
            changed
        }) {
            // After the view is in the channel: a connection that sees the
            // count move reads it there (`copy::PolicyCopy`).
            copy::note_view_changed();
        }
        policy_changed
    }
}

#[derive(Debug)]
struct Registry {
    /// What new sessions start from, and what everyone runs while locked.
    defaults: ServerPolicy,
    /// The instructor locked the policy.
    locked: bool,
    /// Every owner, the anonymous scope included (it is never removed).
    scopes: Scopes,
    /// The lesson the instructor moved the room to.
    room_lesson: Option<String>,
    /// Rate limits per address that holds sessions, beside each session's
    /// own ([`rate::PER_ADDRESS`] times larger): sessions are cheap to mint,
    /// and one address minting a new one for each burst of messages made the
    /// session's limits none (found in review: the instructor's view fell
    /// behind). Dropped with the address's last session.
    peer_rates: HashMap<IpAddr, rate::Buckets>,
    /// Which session took each replaced one's place, and when, for
    /// [`SUCCESSOR_GRACE`] (at most [`MAX_SUCCESSORS`]): a page that names a
    /// session whose successor's grant never reached it (cut by another
    /// reload) takes that successor's place instead (found in review: the
    /// learner's reports stayed with a session no page held).
    successors: HashMap<SessionId, (SessionId, Instant)>,
}

/// How long a replaced session's successor is remembered.
pub const SUCCESSOR_GRACE: Duration = Duration::from_secs(60);

/// Most successors remembered at once (past it, none more until some age
/// out: a reload then carries nothing, as after a restart).
pub const MAX_SUCCESSORS: usize = 4096;

/// Every owner's policy, viewers and requests in flight. See the module docs.
#[derive(Debug)]
pub struct Sessions {
    /// Caps.
    caps: SessionCaps,
    /// The registry, behind one lock (touched by a session's requests).
    inner: Arc<Mutex<Registry>>,
    /// The anonymous scope's requests in flight (its [`Scope::in_flight`]),
    /// counted without the registry's lock: the scope is never removed,
    /// and its count changes nothing else (it has no page to be gone).
    anonymous: Arc<AtomicUsize>,
}

/// One request counted against its owner; dropping it uncounts it.
#[derive(Debug)]
pub struct Permit(Counted);

/// Where a [`Permit`] is counted.
#[derive(Debug)]
enum Counted {
    /// The anonymous scope's count (no lock: bench figure 1).
    Anonymous(Arc<AtomicUsize>),
    /// A session's: its count reaching 0 may end its page, under the lock.
    Session {
        /// Whose.
        owner: Owner,
        /// The registry.
        inner: Arc<Mutex<Registry>>,
    },
}

impl Drop for Permit {
    fn drop(&mut self) {
        match &self.0 {
            Counted::Anonymous(count) => {
                count.fetch_sub(1, Ordering::AcqRel);
            }
            Counted::Session { owner, inner } => update(inner, owner, |scope| {
                let _ = scope
                    .in_flight
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
            }),
        }
    }
}

/// One event viewer of an owner; dropping it ends the viewing.
#[derive(Debug)]
pub struct ViewerSlot {
    /// Whose.
    owner: Owner,
    /// The registry.
    inner: Arc<Mutex<Registry>>,
}

impl Drop for ViewerSlot {
    fn drop(&mut self) {
        update(&self.inner, &self.owner, |scope| {
            scope.viewers = scope.viewers.saturating_sub(1);
        });
    }
}

/// Changes `owner`'s scope, marks it used, and pushes its view to its
/// connections (its page may have gone: then its idle connections close).
/// Changes an owner's counts of viewers or requests in flight. Its view
/// depends on them only through [`Scope::page_gone`], so it is published only
/// when that flips (every request's end comes here: bench figure 1).
fn update(inner: &Mutex<Registry>, owner: &Owner, change: impl FnOnce(&mut Scope)) {
    let mut registry = lock(inner);
    let Registry {
        defaults,
        locked,
        scopes,
        ..
    } = &mut *registry;
    if let Some(scope) = scopes.get_mut(owner) {
        let was_gone = scope.page_gone();
        change(scope);
        // The anonymous scope is never forgotten, so its last use is never
        // read: no clock reading at the end of its requests (bench figure 1,
        // 1.2 % of the lab's CPU per request on the Xeon host).
        if scope.in_flight() == 0 && scope.viewers == 0 && *owner != Owner::Anonymous {
            scope.last_used = Instant::now();
        }
        if scope.page_gone() != was_gone {
            let _ = scope.publish(*locked, defaults);
        }
    }
}

fn lock(inner: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

/// The refusal for a session id this server does not know.
pub fn unknown_session(id: &SessionId) -> ApiError {
    ApiError::with_status(
        axum::http::StatusCode::FORBIDDEN,
        format!("session `{id}` was not issued by this server, or it has expired"),
        "create one with POST /api/sessions (the page does this when it loads) and send \
         the id it returns as session=…; reload the page if the server was restarted",
    )
    .on_socket(UNKNOWN_SESSION_ON_SOCKET)
}

/// The refusal for an API request without a session from another machine
/// (not loopback, `conn::labs_own_machine`, even the lab's own LAN address;
/// through the lab's middlebox, its client's address), or over loopback to
/// a name of the lab that is not a loopback one (`conn::loopback_authority`).
/// The anonymous scope is the lab machine's: a room shares one server, and
/// a scope every laptop shared would let one of them (or another site's page
/// a participant visits, whose `<img src>` over a workshop's plain HTTP
/// address carries neither `Origin` nor `Sec-Fetch-Site`) fill its caps and
/// release its hangs for everyone. A session is the capability the server
/// issues for that.
pub fn session_needed() -> ApiError {
    ApiError::forbidden(
        "the API needs a session except over loopback: requests without one are \
         the lab machine's own (the anonymous scope), sent from it to localhost or a \
         loopback address (127.0.0.1, [::1])",
        "open the lab's page (it gets a session when it loads); on the lab's own \
         machine, http://localhost:PORT/ needs none if the lab listens on loopback (the \
         default, or --workshop without --bind); elsewhere, POST /api/sessions and send \
         the id it returns as session=… on each request; the instructor sends the key \
         (key=… or Authorization: Bearer …)",
    )
    .on_socket(SESSION_NEEDED_ON_SOCKET)
}

/// [`session_needed`] as an events socket's close reason (1008).
pub const SESSION_NEEDED_ON_SOCKET: &str = "the events need a session except from the lab's machine to localhost: open the lab's page, or add session=…";

/// The refusal for a session a reload of its tab took the place of
/// ([`Sessions::issue_replacing`]) while something of it was still open:
/// it takes no new page and no report (found in review: it was told it
/// had expired, or was never issued).
pub fn replaced_session(id: &SessionId) -> ApiError {
    ApiError::with_status(
        axum::http::StatusCode::FORBIDDEN,
        format!("session `{id}` was taken over by a reload of its tab"),
        "reload the page: it gets a session of its own",
    )
    .on_socket(REPLACED_ON_SOCKET)
}

/// [`replaced_session`] as an events socket's close reason (1008).
pub const REPLACED_ON_SOCKET: &str =
    "a reload of this tab took this session's place; reload the page";

/// [`unknown_session`] as an events socket's close reason (1008).
pub const UNKNOWN_SESSION_ON_SOCKET: &str = "this server does not know this session (it expired, \
     or the server restarted); reload the page for a new one";

impl Sessions {
    /// A registry whose owners start from `defaults`.
    pub fn new(defaults: ServerPolicy, caps: SessionCaps) -> Sessions {
        let mut scopes = Scopes::default();
        let anonymous = Scope::new(defaults.clone(), None);
        let anonymous_in_flight = anonymous.in_flight.clone();
        scopes.insert(Owner::Anonymous, anonymous);
        Sessions {
            caps,
            anonymous: anonymous_in_flight,
            inner: Arc::new(Mutex::new(Registry {
                defaults,
                locked: false,
                scopes,
                room_lesson: None,
                peer_rates: HashMap::new(),
                successors: HashMap::new(),
            })),
        }
    }

    /// Issues a new session to `peer`, refusing past the caps once the
    /// sessions whose pages are gone have been forgotten to make room.
    pub fn issue(&self, peer: Option<IpAddr>) -> Result<SessionId, ApiError> {
        self.issue_replacing(peer, None).map(|(id, _)| id)
    }

    /// [`Sessions::issue`] for a reload: the new session takes over the
    /// room's view of the session `from` its tab had before (its reports,
    /// the lesson it is on, its browser), and `from` is no longer a
    /// participant, so the room counts the learner once (found in review:
    /// each reload was a new participant, and the chart counted the
    /// answers of both). Only from a session issued to the same address,
    /// and not replaced already; also from one whose page never connected
    /// (a reload before its page had started, whose session may hold what
    /// it carried over). Taken before the caps are checked, under the same
    /// lock, so that making room cannot forget it first (found in review).
    /// `from` is forgotten at once when nothing of it is open; otherwise it
    /// takes no new viewer ([`Sessions::view`]: a page brought back from the
    /// back-forward cache is told to reload). A `from` already replaced
    /// stands for its successor, for [`SUCCESSOR_GRACE`]. With the new id:
    /// `None` when nothing was carried, or the session whose place it took
    /// and whether that one was listed as a participant.
    pub fn issue_replacing(
        &self,
        peer: Option<IpAddr>,
        from: Option<&SessionId>,
    ) -> Result<(SessionId, Option<(SessionId, bool)>), ApiError> {
        let mut registry = lock(&self.inner);
        let now = Instant::now();
        registry
            .successors
            .retain(|_, (_, at)| now.duration_since(*at) < SUCCESSOR_GRACE);
        // A session already replaced stands for the one that took its
        // place while that one's page never started (its grant was cut by
        // another reload), a few steps at most.
        let mut from = from.cloned();
        for _ in 0..4 {
            let Some(id) = &from else { break };
            let started = |id: &SessionId| {
                registry
                    .scopes
                    .get(&Owner::Session(id.clone()))
                    .is_none_or(|s| s.had_viewer || s.replaced)
            };
            match registry.successors.get(id) {
                Some((next, _)) if !started(next) => from = Some(next.clone()),
                _ => break,
            }
        }
        let replaced = from.clone();
        let from = from.map(Owner::Session);
        let taken = from.as_ref().and_then(|from| {
            let old = registry
                .scopes
                .get_mut(from)
                .filter(|s| !s.replaced && s.peer == peer)?;
            old.replaced = true;
            Some((old.had_viewer, std::mem::take(&mut old.presence)))
        });
        match self.issue_locked(&mut registry, peer) {
            Ok(id) => {
                if let Some(from) = &from
                    && taken.is_some()
                    && registry
                        .scopes
                        .get(from)
                        .is_some_and(|s| s.viewers == 0 && s.in_flight() == 0)
                {
                    registry.scopes.remove(from);
                }
                let carried = taken.zip(replaced).map(|((listed, presence), replaced)| {
                    if let Some(new) = registry.scopes.get_mut(&Owner::Session(id.clone())) {
                        new.presence = presence;
                    }
                    (replaced, listed)
                });
                if let Some((replaced, _)) = &carried
                    && registry.successors.len() < MAX_SUCCESSORS
                {
                    registry
                        .successors
                        .insert(replaced.clone(), (id.clone(), now));
                }
                Ok((id, carried))
            }
            Err(e) => {
                // Refused: the old session is as it was.
                if let (Some(from), Some((_, presence))) = (&from, taken)
                    && let Some(old) = registry.scopes.get_mut(from)
                {
                    old.replaced = false;
                    old.presence = presence;
                }
                Err(e)
            }
        }
    }

    /// [`Sessions::issue`] with the registry locked.
    fn issue_locked(
        &self,
        registry: &mut Registry,
        peer: Option<IpAddr>,
    ) -> Result<SessionId, ApiError> {
        let now = Instant::now();
        registry.scopes.retain(|owner, scope| {
            *owner == Owner::Anonymous
                || !(scope.viewers == 0
                    && scope.in_flight() == 0
                    && now.duration_since(scope.last_used) > SESSION_TTL)
        });
        // An address's buckets go with its last session (found in review:
        // expired sessions left theirs behind).
        let Registry {
            scopes, peer_rates, ..
        } = &mut *registry;
        peer_rates.retain(|ip, _| scopes.values().any(|s| s.peer == Some(*ip)));
        let of_peer = |registry: &Registry| {
            registry
                .scopes
                .values()
                .filter(|s| s.peer.is_some() && s.peer == peer)
                .count()
        };
        if of_peer(registry) >= self.caps.sessions_per_peer {
            forget_one_gone(registry, now, |s| s.peer == peer);
        }
        if registry.scopes.len() > self.caps.sessions {
            forget_one_gone(registry, now, |_| true);
        }
        if of_peer(registry) >= self.caps.sessions_per_peer {
            return Err(ApiError::too_many(
                format!(
                    "this address already holds {} sessions, the cap per address",
                    self.caps.sessions_per_peer
                ),
                "close some of your lab tabs (a session is forgotten once its page is gone)",
            ));
        }
        // Past three quarters of the cap, an address holding its busy share
        // gets no more (`peers::over_busy_share`): sixteen addresses each
        // taking their whole share would hold every session.
        let busy = |registry: &Registry| {
            peer.is_some()
                && crate::peers::over_busy_share(
                    registry.scopes.len(),
                    self.caps.sessions,
                    of_peer(registry),
                    self.caps.sessions_per_peer,
                )
        };
        if busy(registry) {
            forget_one_gone(registry, now, |s| s.peer == peer);
        }
        if busy(registry) {
            return Err(ApiError::over_capacity(
                format!(
                    "the server holds {} of its {} sessions; while it is this busy an address holding {} or more gets no more, and this one holds {}",
                    registry.scopes.len(),
                    self.caps.sessions,
                    crate::peers::busy_share(self.caps.sessions_per_peer),
                    of_peer(registry)
                ),
                "close some of your lab tabs (a session is forgotten once its page is gone): the rest is kept for participants who hold few",
            ));
        }
        if registry.scopes.len() > self.caps.sessions {
            return Err(ApiError::over_capacity(
                format!("the server holds {} sessions, its cap", self.caps.sessions),
                "wait for participants' pages to close, or start the server with a larger cap",
            ));
        }
        let id = new_session_id()?;
        let policy = registry.defaults.clone();
        let scope = Scope::new(policy, peer);
        if registry.locked {
            let _ = scope.publish(true, &registry.defaults);
        }
        registry.scopes.insert(Owner::Session(id.clone()), scope);
        Ok(id)
    }

    /// Whether `owner` exists (the anonymous scope always does).
    pub fn knows(&self, owner: &Owner) -> bool {
        // The anonymous scope is there from start to shutdown (no lock:
        // every request without a session asks).
        *owner == Owner::Anonymous || lock(&self.inner).scopes.contains_key(owner)
    }

    /// Counts one more request for `owner`, or refuses: an unknown session
    /// (403), or the owner's cap on requests in flight (503).
    pub fn enter(&self, owner: &Owner) -> Result<Permit, ApiError> {
        if *owner == Owner::Anonymous {
            // Counted without the lock, only while under the cap: never
            // over it, not even for a moment (a count taken and given back
            // would refuse another request that came between).
            let cap = self.caps.in_flight;
            return match self
                .anonymous
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < cap).then_some(n + 1)
                }) {
                Ok(_) => Ok(Permit(Counted::Anonymous(self.anonymous.clone()))),
                Err(_) => Err(self.at_in_flight_cap(owner)),
            };
        }
        let mut registry = lock(&self.inner);
        let Some(scope) = registry.scopes.get_mut(owner) else {
            return Err(match owner {
                Owner::Session(id) => unknown_session(id),
                Owner::Anonymous => ApiError::shutting_down(),
            });
        };
        // Under the lock: a session's count changes only there.
        let before = scope.in_flight();
        if before >= self.caps.in_flight {
            return Err(self.at_in_flight_cap(owner));
        }
        scope.in_flight.store(before + 1, Ordering::Release);
        if before == 0 && scope.had_viewer && scope.viewers == 0 {
            let (locked, defaults) = (registry.locked, registry.defaults.clone());
            if let Some(scope) = registry.scopes.get(owner) {
                let _ = scope.publish(locked, &defaults);
            }
        }
        Ok(Permit(Counted::Session {
            owner: owner.clone(),
            inner: self.inner.clone(),
        }))
    }

    /// The refusal of a request past `owner`'s cap on requests in flight.
    fn at_in_flight_cap(&self, owner: &Owner) -> ApiError {
        at_cap(
            owner,
            self.caps.in_flight,
            "requests in flight",
            "wait for some to finish or release hanging ones, then send fewer at once",
        )
        .on_socket(format!(
            "{} has {} requests in flight, its cap; wait for some to end, or release hanging ones",
            this(owner),
            self.caps.in_flight
        ))
    }

    /// Registers an event viewer of `owner` (refused for an unknown session,
    /// and past the owner's cap on viewers, 503).
    pub fn view(&self, owner: &Owner) -> Result<ViewerSlot, ApiError> {
        let mut registry = lock(&self.inner);
        let Registry {
            defaults,
            locked,
            scopes,
            ..
        } = &mut *registry;
        let Some(scope) = scopes.get_mut(owner) else {
            return Err(match owner {
                Owner::Session(id) => unknown_session(id),
                Owner::Anonymous => ApiError::shutting_down(),
            });
        };
        // A session a reload took over takes no new page.
        if let (true, Owner::Session(id)) = (scope.replaced, owner) {
            return Err(replaced_session(id));
        }
        if scope.viewers >= self.caps.viewers {
            return Err(at_cap(
                owner,
                self.caps.viewers,
                "event viewers open",
                "a page needs one: close the other tabs or tools watching this session",
            )
            .on_socket(format!(
                "{} viewers already watch {}; close another tab of it",
                self.caps.viewers,
                this(owner)
            )));
        }
        scope.viewers += 1;
        scope.had_viewer = owner != &Owner::Anonymous;
        let _ = scope.publish(*locked, defaults);
        Ok(ViewerSlot {
            owner: owner.clone(),
            inner: self.inner.clone(),
        })
    }

    /// The live view `owner`'s connections read; `None` for an unknown one.
    pub fn watch(&self, owner: &Owner) -> Option<watch::Receiver<ScopeView>> {
        lock(&self.inner)
            .scopes
            .get(owner)
            .map(|s| s.view.subscribe())
    }

    /// The policy in force for `owner` (the defaults for an unknown one).
    pub fn policy(&self, owner: &Owner) -> ServerPolicy {
        let registry = lock(&self.inner);
        match registry.scopes.get(owner) {
            Some(scope) => scope.view.borrow().policy.clone(),
            None => registry.defaults.clone(),
        }
    }

    /// Changes `owner`'s own policy; refused while the room is locked.
    /// Returns the new effective policy.
    pub fn set_policy(&self, owner: &Owner, patch: &PolicyPatch) -> Result<ServerPolicy, ApiError> {
        let mut registry = lock(&self.inner);
        if registry.locked {
            return Err(locked_error());
        }
        let Registry {
            defaults,
            locked,
            scopes,
            ..
        } = &mut *registry;
        let Some(scope) = scopes.get_mut(owner) else {
            return Err(match owner {
                Owner::Session(id) => unknown_session(id),
                Owner::Anonymous => ApiError::shutting_down(),
            });
        };
        scope.policy = scope
            .policy
            .patched(patch)
            .map_err(|body| ApiError::bad_request(body.error, body.hint))?;
        let _ = scope.publish(*locked, defaults);
        Ok(scope.policy.clone())
    }

    /// The server's defaults (what new sessions start from).
    pub fn defaults(&self) -> ServerPolicy {
        lock(&self.inner).defaults.clone()
    }

    /// Changes the defaults (the instructor's `PUT /api/config`): what new
    /// sessions start from. Existing owners keep their own policy (a
    /// session's choice is its own); while locked, everyone runs the new
    /// defaults. Returns the defaults and the owners whose effective policy
    /// changed, with it.
    #[allow(clippy::type_complexity)]
    pub fn set_defaults(
        &self,
        patch: &PolicyPatch,
    ) -> Result<(ServerPolicy, Vec<(Owner, ServerPolicy)>), ApiError> {
        let mut registry = lock(&self.inner);
        let next = registry
            .defaults
            .patched(patch)
            .map_err(|body| ApiError::bad_request(body.error, body.hint))?;
        registry.defaults = next.clone();
        let Registry {
            defaults,
            locked,
            scopes,
            ..
        } = &mut *registry;
        Ok((next, publish_all(scopes, *locked, defaults)))
    }

    /// Locks or unlocks the policy for the room; returns the owners to tell,
    /// with their effective policy: those whose policy changed, and every
    /// owner when the lock itself changed (their pages must know: a lesson
    /// that changes settings cannot run while locked, and a session already
    /// on the defaults was not told before; found in review).
    pub fn set_locked(&self, on: bool) -> Vec<(Owner, ServerPolicy)> {
        let mut registry = lock(&self.inner);
        let flipped = registry.locked != on;
        registry.locked = on;
        let Registry {
            defaults,
            locked,
            scopes,
            ..
        } = &mut *registry;
        let changed = publish_all(scopes, *locked, defaults);
        if !flipped {
            return changed;
        }
        scopes
            .iter()
            .map(|(owner, scope)| (owner.clone(), scope.view.borrow().policy.clone()))
            .collect()
    }

    /// A viewer of `owner` connected with this user agent.
    pub fn set_browser(&self, owner: &Owner, user_agent: &str) {
        if let Some(scope) = lock(&self.inner).scopes.get_mut(owner) {
            scope.presence.browser = Some(room::browser_of(user_agent));
        }
    }

    /// Keeps a participant's lesson report; whose it is and the report, to
    /// tell the instructor, or `None` when the report changed nothing (the
    /// same as the one kept).
    pub fn report(
        &self,
        owner: &Owner,
        report: LessonReport,
    ) -> Result<Option<(SessionId, LessonReport)>, ApiError> {
        let mut registry = lock(&self.inner);
        let Owner::Session(id) = owner else {
            return Err(ApiError::bad_request(
                "lesson reports need a session",
                "open the page, which has one",
            ));
        };
        let scope = registry
            .scopes
            .get_mut(owner)
            .ok_or_else(|| unknown_session(id))?;
        if scope.replaced {
            return Err(replaced_session(id));
        }
        let kept = report.clone();
        let changed = scope
            .presence
            .report(report)
            .map_err(|e| ApiError::bad_request(e, "report one of GET /api/lessons, briefly"))?;
        Ok(changed.then(|| (id.clone(), kept)))
    }

    /// Whether `owner` may send one more message of `kind` now (its
    /// sockets share the limit, and its address's sessions share another),
    /// or which limit it is over. An unknown owner is refused elsewhere.
    pub fn allow(&self, owner: &Owner, kind: rate::Kind) -> Result<(), rate::Over> {
        let mut registry = lock(&self.inner);
        let Registry {
            scopes, peer_rates, ..
        } = &mut *registry;
        scopes
            .get_mut(owner)
            .map_or(Ok(()), |scope| take_both(scope, peer_rates, kind))
    }

    /// A viewer of `owner` opened or closed: when to tell the instructor.
    pub fn presence_changed(&self, owner: &Owner) -> Presence {
        let mut registry = lock(&self.inner);
        let Registry {
            scopes, peer_rates, ..
        } = &mut *registry;
        let Some(scope) = scopes.get_mut(owner) else {
            return Presence::Pending;
        };
        if scope.presence_deferred {
            Presence::Pending
        } else if take_both(scope, peer_rates, rate::Kind::Presence).is_ok() {
            Presence::Now
        } else {
            scope.presence_deferred = true;
            Presence::Later
        }
    }

    /// The deferred announcement of `owner`'s presence is being made.
    pub fn presence_told(&self, owner: &Owner) {
        if let Some(scope) = lock(&self.inner).scopes.get_mut(owner) {
            scope.presence_deferred = false;
        }
    }

    /// `owner` as the instructor sees them (sessions only).
    pub fn participant(&self, owner: &Owner) -> Option<Participant> {
        let registry = lock(&self.inner);
        let Owner::Session(id) = owner else {
            return None;
        };
        let scope = registry.scopes.get(owner)?;
        (!scope.replaced).then(|| scope.presence.view(id, scope.viewers > 0))
    }

    /// Every participant: sessions whose page connected at least once (and
    /// that a reload's session has not taken over).
    pub fn participants(&self) -> Vec<Participant> {
        let registry = lock(&self.inner);
        let mut all: Vec<Participant> = registry
            .scopes
            .iter()
            .filter(|(_, s)| s.had_viewer && !s.replaced)
            .filter_map(|(owner, s)| owner.session().map(|id| s.presence.view(id, s.viewers > 0)))
            .collect();
        all.sort_by(|a, b| a.session.cmp(&b.session));
        all
    }

    /// Moves the room to `lesson` (an id of the catalogue), or (`None`)
    /// clears it: pages that load later are no longer sent to a lesson.
    pub fn set_room_lesson(&self, lesson: Option<&str>) -> Result<(), ApiError> {
        if let Some(lesson) = lesson
            && !protocol::LESSONS.iter().any(|l| l.id == lesson)
        {
            return Err(ApiError::bad_request(
                format!("there is no lesson `{lesson}`"),
                "send one of the ids GET /api/lessons lists, or null to clear the room's lesson",
            ));
        }
        lock(&self.inner).room_lesson = lesson.map(str::to_owned);
        Ok(())
    }

    /// The lesson the room was moved to.
    pub fn room_lesson(&self) -> Option<String> {
        lock(&self.inner).room_lesson.clone()
    }

    /// Forgets every participant's reports (a new round).
    pub fn reset_reports(&self) {
        for scope in lock(&self.inner).scopes.values_mut() {
            scope.presence.forget_reports();
        }
    }

    /// Whether the policy is locked.
    pub fn locked(&self) -> bool {
        lock(&self.inner).locked
    }

    /// Sessions issued and remembered (the anonymous scope not counted).
    pub fn count(&self) -> usize {
        lock(&self.inner).scopes.len() - 1
    }

    /// Owners with anything in flight (0 once every request has ended).
    pub fn active(&self) -> usize {
        lock(&self.inner)
            .scopes
            .values()
            .filter(|s| s.in_flight() > 0)
            .count()
    }

    /// Requests `owner` has in flight.
    pub fn in_flight(&self, owner: &Owner) -> usize {
        lock(&self.inner)
            .scopes
            .get(owner)
            .map_or(0, Scope::in_flight)
    }
}

fn publish_all(
    scopes: &Scopes,
    locked: bool,
    defaults: &ServerPolicy,
) -> Vec<(Owner, ServerPolicy)> {
    scopes
        .iter()
        .filter(|(_, scope)| scope.publish(locked, defaults))
        .map(|(owner, scope)| (owner.clone(), scope.view.borrow().policy.clone()))
        .collect()
}

/// Forgets the least recently used session among those `which` selects whose
/// page is gone, or that never had a viewer and have gone unused (nothing in
/// flight) for [`UNVIEWED_GRACE`].
fn forget_one_gone(registry: &mut Registry, now: Instant, which: impl Fn(&Scope) -> bool) {
    let victim = registry
        .scopes
        .iter()
        .filter(|(owner, s)| {
            **owner != Owner::Anonymous
                && which(s)
                && s.viewers == 0
                && s.in_flight() == 0
                && (s.had_viewer || now.duration_since(s.last_used) > UNVIEWED_GRACE)
        })
        .min_by_key(|(_, s)| s.last_used)
        .map(|(owner, _)| owner.clone());
    if let Some(owner) = victim
        && let Some(gone) = registry.scopes.remove(&owner)
        && let Some(peer) = gone.peer
        && !registry.scopes.values().any(|s| s.peer == Some(peer))
    {
        registry.peer_rates.remove(&peer);
    }
}

/// Takes a token of `kind` from `scope`'s buckets, then from its address's
/// ([`Registry::peer_rates`]); both must have one. The session's first, so
/// that a session over its own limit does not drain its address's (found
/// in review); given back when the address's refuses. Every kind is
/// something the instructor is told: reports, presence, and settings
/// changes (each a `config_changed` at the instructor's view: 256 sessions
/// minted from one address changed their settings 2 560 times in 6.8 s,
/// found in the hostile-room review of December 5, 2026); the address's
/// share ([`rate::PER_ADDRESS`] sessions' worth) still lets a room behind
/// one NAT start its lessons at once.
fn take_both(
    scope: &mut Scope,
    peer_rates: &mut HashMap<IpAddr, rate::Buckets>,
    kind: rate::Kind,
) -> Result<(), rate::Over> {
    if !scope.rates.take(kind) {
        return Err(rate::Over::Session);
    }
    let Some(peer) = scope.peer else {
        return Ok(());
    };
    if peer_rates
        .entry(peer)
        .or_insert_with(rate::Buckets::per_address)
        .take(kind)
    {
        Ok(())
    } else {
        // Refused, it spends nothing of the session's own (found in review:
        // a session retrying while its room's address was over emptied its
        // own bucket, and was then told it was over its own rate).
        scope.rates.refund(kind);
        Err(rate::Over::Address)
    }
}

/// The refusal while the room's policy is locked.
pub fn locked_error() -> ApiError {
    ApiError::with_status(
        axum::http::StatusCode::LOCKED,
        "the instructor has locked the keep-alive policy for the room",
        "run the lesson with the room's policy; the instructor can unlock it",
    )
}

/// 128 random bits from the operating system, as `s-` and 32 hex digits.
fn new_session_id() -> Result<SessionId, ApiError> {
    let hex = key::random_hex(16).map_err(|e| {
        ApiError::over_capacity(format!("no randomness for a session id: {e}"), "try again")
    })?;
    SessionId::parse(&format!("s-{hex}")).map_err(|e| ApiError::over_capacity(e, "try again"))
}

/// `owner` as a close reason names it (short: a reason is at most 123 bytes).
fn this(owner: &Owner) -> &'static str {
    match owner {
        Owner::Anonymous => "the anonymous scope",
        Owner::Session(_) => "this session",
    }
}

/// 503: `owner` already has `cap` of `what`, its cap.
fn at_cap(owner: &Owner, cap: usize, what: &str, hint: &str) -> ApiError {
    ApiError::over_capacity(format!("{owner} already has {cap} {what}, its cap"), hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(in_flight: usize, sessions: usize, per_peer: usize) -> SessionCaps {
        SessionCaps {
            in_flight,
            viewers: 8,
            sessions,
            sessions_per_peer: per_peer,
        }
    }

    #[test]
    fn issued_ids_are_random_128_bit_and_only_they_are_known() {
        let sessions = Sessions::new(ServerPolicy::default(), caps(2, 10, 10));
        let a = sessions.issue(None).unwrap();
        let b = sessions.issue(None).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 2 + 32);
        assert!(sessions.knows(&Owner::Session(a)));
        let forged = Owner::Session(SessionId::parse("s-1").unwrap());
        assert_eq!(sessions.enter(&forged).unwrap_err().status.as_u16(), 403);
        assert!(sessions.view(&forged).is_err());
    }

    /// A change refused by its address's limit spends nothing of its
    /// session's own (found in review: a session retrying while its room's
    /// address was over emptied its own bucket, and was then told, having
    /// changed nothing, that it was over its own rate).
    #[test]
    fn a_change_its_address_refuses_spends_nothing_of_the_sessions_own_rate() {
        use crate::events::CONFIG_BURST;
        let sessions = Sessions::new(ServerPolicy::default(), caps(2, 4096, 4096));
        let peer = Some(IpAddr::from([192, 168, 1, 9]));
        // Sessions of the address spend its share, each within its own.
        let mut spent = 0;
        while spent < (CONFIG_BURST * rate::PER_ADDRESS) as usize {
            let owner = Owner::Session(sessions.issue(peer).unwrap());
            spent += (0..8)
                .filter(|_| sessions.allow(&owner, rate::Kind::Changes).is_ok())
                .count();
        }
        let late = Owner::Session(sessions.issue(peer).unwrap());
        for _ in 0..3 * CONFIG_BURST as usize {
            assert_eq!(
                sessions.allow(&late, rate::Kind::Changes),
                Err(rate::Over::Address)
            );
        }
        // The address earns some back; the late session's own bucket is
        // whole: its burst goes through as far as the address allows.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(sessions.allow(&late, rate::Kind::Changes), Ok(()));
    }

    /// Sessions minted one after another from one address share its rate
    /// limit: a fresh session's full buckets do not reset it (found in
    /// review: a loop of new sessions made the session's limit none).
    #[test]
    fn minting_sessions_does_not_refill_an_addresss_rate_limit() {
        use crate::events::REPORT_BURST;
        let sessions = Sessions::new(ServerPolicy::default(), caps(2, 4096, 4096));
        let peer = Some(IpAddr::from([192, 168, 1, 7]));
        let mut allowed = 0;
        for _ in 0..100 {
            let owner = Owner::Session(sessions.issue(peer).unwrap());
            allowed += (0..20)
                .filter(|_| sessions.allow(&owner, rate::Kind::Reports).is_ok())
                .count();
        }
        // The address's burst, and what it earns while the loop runs.
        let most = (REPORT_BURST * rate::PER_ADDRESS) as usize + 10;
        assert!(allowed <= most, "{allowed} reports allowed, at most {most}");
        // Another address has its own.
        let other = Owner::Session(
            sessions
                .issue(Some(IpAddr::from([192, 168, 1, 8])))
                .unwrap(),
        );
        assert!(sessions.allow(&other, rate::Kind::Reports).is_ok());
    }

    #[test]
    fn caps_in_flight_per_owner_the_anonymous_scope_included() {
        let sessions = Sessions::new(ServerPolicy::default(), caps(2, 10, 10));
        let a = Owner::Session(sessions.issue(None).unwrap());
        let p1 = sessions.enter(&a).unwrap();
        let _p2 = sessions.enter(&a).unwrap();
        assert_eq!(sessions.enter(&a).unwrap_err().status.as_u16(), 503);
        let _x1 = sessions.enter(&Owner::Anonymous).unwrap();
        let _x2 = sessions.enter(&Owner::Anonymous).unwrap();
        assert!(sessions.enter(&Owner::Anonymous).is_err());
        drop(p1);
        assert_eq!(sessions.in_flight(&a), 1);
        assert!(sessions.enter(&a).is_ok());
    }

    #[test]
    fn the_anonymous_scopes_lock_free_count_holds_its_cap_across_threads() {
        // Counted without the registry's lock: four threads entering and
        // leaving at once never hold more than the cap together, each
        // refusal is an over-cap one, and every permit given back is
        // uncounted.
        let cap = 3;
        let sessions = Arc::new(Sessions::new(ServerPolicy::default(), caps(cap, 10, 10)));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (sessions, most) = (sessions.clone(), most.clone());
                std::thread::spawn(move || {
                    let (mut admitted, mut refused) = (0, 0);
                    for _ in 0..20_000 {
                        match sessions.enter(&Owner::Anonymous) {
                            Ok(permit) => {
                                admitted += 1;
                                most.fetch_max(
                                    sessions.in_flight(&Owner::Anonymous),
                                    Ordering::Relaxed,
                                );
                                drop(permit);
                            }
                            Err(e) => {
                                assert_eq!(e.status.as_u16(), 503, "only the cap refuses");
                                refused += 1;
                            }
                        }
                    }
                    (admitted, refused)
                })
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap().0).sum();
        assert!(admitted > 0);
        assert!(most.load(Ordering::Relaxed) <= cap, "never over the cap");
        assert_eq!(
            sessions.in_flight(&Owner::Anonymous),
            0,
            "every permit given back"
        );
        assert_eq!(sessions.active(), 0);
        let held: Vec<_> = (0..cap)
            .map(|_| sessions.enter(&Owner::Anonymous).unwrap())
            .collect();
        assert_eq!(
            sessions
                .enter(&Owner::Anonymous)
                .unwrap_err()
                .status
                .as_u16(),
            503
        );
        assert_eq!(
            sessions.in_flight(&Owner::Anonymous),
            cap,
            "a refusal is given back"
        );
        drop(held);
        assert_eq!(sessions.in_flight(&Owner::Anonymous), 0);
    }

    #[test]
    fn policies_are_per_owner_and_the_lock_imposes_the_defaults() {
        let sessions = Sessions::new(ServerPolicy::default(), caps(2, 10, 10));
        let a = Owner::Session(sessions.issue(None).unwrap());
        let b = Owner::Session(sessions.issue(None).unwrap());
        let watch_b = sessions.watch(&b).unwrap();
        let patch = PolicyPatch {
            idle_timeout_ms: Some(1234),
            ..PolicyPatch::default()
        };
        sessions.set_policy(&a, &patch).unwrap();
        assert_eq!(sessions.policy(&a).idle_timeout_ms, 1234);
        assert_eq!(sessions.policy(&b).idle_timeout_ms, 5000);
        assert_eq!(watch_b.borrow().policy.idle_timeout_ms, 5000);
        sessions.set_locked(true);
        assert_eq!(sessions.policy(&a).idle_timeout_ms, 5000);
        assert_eq!(
            sessions.set_policy(&a, &patch).unwrap_err().status.as_u16(),
            423
        );
        sessions.set_locked(false);
        assert_eq!(
            sessions.policy(&a).idle_timeout_ms,
            1234,
            "its own choice is back"
        );
    }

    #[test]
    fn a_session_ends_when_its_last_viewer_leaves_with_nothing_in_flight() {
        let sessions = Sessions::new(ServerPolicy::default(), caps(4, 10, 10));
        let a = Owner::Session(sessions.issue(None).unwrap());
        let view = sessions.watch(&a).unwrap();
        let viewer = sessions.view(&a).unwrap();
        let permit = sessions.enter(&a).unwrap();
        drop(viewer);
        assert!(!view.borrow().ended, "a request is still in flight");
        drop(permit);
        assert!(view.borrow().ended);
        let _again = sessions.view(&a).unwrap();
        assert!(!view.borrow().ended, "a reconnecting page revives it");
    }

    #[test]
    fn per_peer_cap_forgets_gone_sessions_before_refusing() {
        let sessions = Sessions::new(ServerPolicy::default(), caps(4, 100, 2));
        let peer = Some(IpAddr::from([10, 0, 0, 7]));
        let a = Owner::Session(sessions.issue(peer).unwrap());
        let b = Owner::Session(sessions.issue(peer).unwrap());
        let _va = sessions.view(&a).unwrap();
        let _vb = sessions.view(&b).unwrap();
        let refused = sessions.issue(peer).unwrap_err();
        assert_eq!(refused.status.as_u16(), 429);
        assert!(sessions.issue(Some(IpAddr::from([10, 0, 0, 8]))).is_ok());
        drop(_vb);
        assert!(
            sessions.issue(peer).is_ok(),
            "b's page is gone: it made room"
        );
        assert!(!sessions.knows(&b));
    }

    /// A report of six lanes at `stage`, its prediction and answer `value`.
    fn six_lanes(stage: &str, value: Option<&str>) -> LessonReport {
        LessonReport {
            lesson: "six-lanes".into(),
            stage: stage.into(),
            prediction: value.map(str::to_owned),
            answer: value.map(str::to_owned),
            figures: Vec::new(),
            stopped_early: false,
        }
    }

    /// A session of `peer` whose page answered six lanes, then went: its id
    /// and the report.
    fn answered_and_gone(sessions: &Sessions, peer: Option<IpAddr>) -> (SessionId, LessonReport) {
        let id = sessions.issue(peer).unwrap();
        let owner = Owner::Session(id.clone());
        let page = sessions.view(&owner).unwrap();
        let report = six_lanes("answered", Some("6"));
        sessions.report(&owner, report.clone()).unwrap();
        drop(page);
        (id, report)
    }

    /// A reload at the address's cap: the session it replaces is the one
    /// gone page there, and making room forgets it, but only after its
    /// place in the room was taken (found in review: issued first and
    /// carried after, its reports were forgotten with it).
    #[test]
    fn a_reload_at_the_cap_carries_the_session_that_makes_room() {
        let sessions = Sessions::new(ServerPolicy::default(), caps(4, 100, 2));
        let peer = Some(IpAddr::from([10, 0, 0, 7]));
        let (a_id, report) = answered_and_gone(&sessions, peer);
        let a = Owner::Session(a_id.clone());
        let b = Owner::Session(sessions.issue(peer).unwrap());
        let _vb = sessions.view(&b).unwrap();
        // Another address's reload names nothing of it.
        let elsewhere = Some(IpAddr::from([10, 0, 0, 8]));
        let (_, carried) = sessions.issue_replacing(elsewhere, Some(&a_id)).unwrap();
        assert_eq!(carried, None);
        let (c_id, carried) = sessions.issue_replacing(peer, Some(&a_id)).unwrap();
        assert_eq!(carried, Some((a_id.clone(), true)));
        assert!(!sessions.knows(&a), "the replaced session is forgotten");
        let c = Owner::Session(c_id);
        let _vc = sessions.view(&c).unwrap();
        let room = sessions.participants();
        assert_eq!(room.len(), 2, "{room:?}");
        let carried = room.iter().find(|p| Owner::Session(p.session.clone()) == c);
        assert_eq!(carried.map(|p| p.reports.clone()), Some(vec![report]));
    }

    /// A page that names the session before a reload whose grant never
    /// reached it (cut by another reload) takes the place of the session
    /// that was granted, as long as that one's page never started; once
    /// it has, naming the old one carries nothing.
    #[test]
    fn a_reload_whose_grant_was_cut_follows_to_the_session_granted() {
        let sessions = Sessions::new(ServerPolicy::default(), caps(4, 100, 10));
        let peer = Some(IpAddr::from([10, 0, 0, 7]));
        let (a_id, report) = answered_and_gone(&sessions, peer);
        let (b_id, carried) = sessions.issue_replacing(peer, Some(&a_id)).unwrap();
        assert_eq!(carried, Some((a_id.clone(), true)));
        // B's answer is lost: the next page names A again.
        let (c_id, carried) = sessions.issue_replacing(peer, Some(&a_id)).unwrap();
        assert_eq!(carried, Some((b_id.clone(), false)));
        assert!(!sessions.knows(&Owner::Session(b_id)));
        let c = Owner::Session(c_id);
        let _vc = sessions.view(&c).unwrap();
        let room = sessions.participants();
        assert_eq!(room.len(), 1, "{room:?}");
        assert_eq!(room[0].reports, [report]);
        // C's page started: A named once more carries nothing.
        let (_, carried) = sessions.issue_replacing(peer, Some(&a_id)).unwrap();
        assert_eq!(carried, None);
        assert_eq!(sessions.participants().len(), 1);
    }

    /// A replaced session still open (its page's socket not yet closed)
    /// takes no new page and no report, and says why.
    #[test]
    fn a_replaced_session_still_open_takes_no_new_page_nor_report() {
        let sessions = Sessions::new(ServerPolicy::default(), caps(4, 100, 10));
        let peer = Some(IpAddr::from([10, 0, 0, 7]));
        let a_id = sessions.issue(peer).unwrap();
        let a = Owner::Session(a_id.clone());
        let _still_open = sessions.view(&a).unwrap();
        let (_, carried) = sessions.issue_replacing(peer, Some(&a_id)).unwrap();
        assert_eq!(carried, Some((a_id.clone(), true)));
        assert!(sessions.knows(&a));
        let Err(refused) = sessions.view(&a) else {
            panic!("a replaced session took a new page");
        };
        assert!(
            refused.body.error.contains("taken over by a reload"),
            "{}",
            refused.body.error
        );
        let refused = sessions.report(&a, six_lanes("predict", None)).unwrap_err();
        assert!(
            refused.body.error.contains("taken over by a reload"),
            "{}",
            refused.body.error
        );
        assert!(sessions.participants().is_empty());
    }

    #[test]
    fn a_session_that_never_had_a_viewer_makes_room_only_after_going_unused_a_while() {
        let sessions = Sessions::new(ServerPolicy::default(), caps(4, 100, 2));
        let peer = Some(IpAddr::from([10, 0, 0, 7]));
        // A script's sessions (or pages that have not opened their events
        // socket yet): in use, never viewed.
        let a = Owner::Session(sessions.issue(peer).unwrap());
        let b = Owner::Session(sessions.issue(peer).unwrap());
        for _ in 0..5 {
            let refused = sessions.issue(peer).unwrap_err();
            assert_eq!(
                refused.status.as_u16(),
                429,
                "no session in use is forgotten"
            );
        }
        assert!(sessions.knows(&a) && sessions.knows(&b));
        // `a` has gone unused for longer than the grace: it makes room.
        let long_ago = Instant::now() - UNVIEWED_GRACE - Duration::from_secs(1);
        lock(&sessions.inner).scopes.get_mut(&a).unwrap().last_used = long_ago;
        assert!(sessions.issue(peer).is_ok());
        assert!(!sessions.knows(&a) && sessions.knows(&b));
    }
}
