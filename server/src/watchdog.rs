//! The per-connection watchdog: the idle timer, the header-read guard and the
//! stall guards, reading the owner's policy live.
//!
//! hyper's own `header_read_timeout` also runs while a kept-alive connection
//! waits for its next request (hyper ≥ 1.6), so it cannot be both a fixed
//! slowloris guard and a per-session idle timeout that changes while the
//! connection is open. The lab turns hyper's timer off and runs this instead,
//! one task-local future per connection, woken only when something changes
//! (a request starts or ends, bytes start arriving, a write blocks, the
//! owner's policy changes): no polling.
//!
//! | state | deadline | close reason |
//! |---|---|---|
//! | idle since *t* | *t* + the owner's `idle_timeout_ms` | `idle_timeout` (or `keep_alive_race` if a request was in the receive buffer; on the TLS ports' HTTP/1.1, `records_unread` if bytes other than a lone `close_notify` were) |
//! | idle, and the owner's page is gone | now | `session_ended` |
//! | a head arriving since *t* | *t* + [`Config::header_read_timeout`](crate::Config) | `header_read_timeout` |
//! | the rest of a body arriving since *t* | the same guard | `body_read_timeout` |
//! | a handler waiting for body bytes since *t* | the same guard | `body_read_timeout` |
//! | a write blocked since *t* | *t* + [`Config::write_stall_timeout`](crate::Config) | `write_stalled` |
//! | a write blocked since *t*, after stalls of *s* in all during the response (HTTP/2: while streams were under way) | *t* + [`Config::write_stall_total`](crate::Config) − *s* | `write_stalled` |

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use protocol::{CloseReason, Micros};
use tokio::sync::watch;

use crate::conn::{Activity, Conn};
use crate::sessions::ScopeView;

/// What the watchdog decided: close the connection for this reason. An idle
/// close (`idle: true`) is checked for a racing request at the close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Why.
    pub reason: CloseReason,
    /// It was idle: look for a request that raced the close.
    pub idle: bool,
}

/// Why a deadline would close the connection: plain data, so that working
/// out the next deadline at every change (every request starts and ends
/// one) builds and drops no [`CloseReason`] (bench figure 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    SessionEnded,
    IdleTimeout,
    BodyReadTimeout,
    HeaderReadTimeout,
    WriteStalled,
}

/// A deadline's verdict, to be given if it passes.
#[derive(Debug, Clone, Copy)]
struct Due {
    /// Why.
    why: Why,
    /// An idle close ([`Verdict::idle`]).
    idle: bool,
}

impl From<Due> for Verdict {
    fn from(due: Due) -> Verdict {
        let reason = match due.why {
            Why::SessionEnded => CloseReason::SessionEnded,
            Why::IdleTimeout => CloseReason::IdleTimeout,
            Why::BodyReadTimeout => CloseReason::BodyReadTimeout,
            Why::HeaderReadTimeout => CloseReason::HeaderReadTimeout,
            Why::WriteStalled => CloseReason::WriteStalled,
        };
        Verdict {
            reason,
            idle: due.idle,
        }
    }
}

/// The earliest deadline that applies now, with its verdict.
fn next_deadline(
    conn: &Conn,
    idle_timeout_ms: u64,
    ended: bool,
    guard: Duration,
    stall: Duration,
    now: &mut Now,
) -> Option<(Micros, Due)> {
    let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    // The earliest so far (no allocation: evaluated at every change).
    let mut next: Option<(Micros, Due)> = None;
    let mut consider = |at: Micros, verdict: Due| {
        if next.as_ref().is_none_or(|(earliest, _)| at < *earliest) {
            next = Some((at, verdict));
        }
    };
    match conn.activity() {
        Activity::Busy => {}
        Activity::Idle(since) => {
            let (at, reason) = if ended {
                (now.get(), Why::SessionEnded)
            } else {
                (
                    since.saturating_add(idle_timeout_ms.saturating_mul(1000)),
                    Why::IdleTimeout,
                )
            };
            consider(
                at,
                Due {
                    why: reason,
                    idle: true,
                },
            );
        }
        Activity::Arriving { since, body } => {
            let reason = if body {
                Why::BodyReadTimeout
            } else {
                Why::HeaderReadTimeout
            };
            consider(
                since.saturating_add(us(guard)),
                Due {
                    why: reason,
                    idle: false,
                },
            );
        }
    }
    // A stall is never idle: its guard runs also while requests are in
    // flight (over HTTP/2 a head part-way in among busy streams; when
    // nothing else is in flight `Activity::Arriving` says the same).
    let stalls = conn.stalls();
    // A client that reads a little just before each stall would trip still
    // has to take the whole response within the total.
    let left = stalls.write_blocked_since.map(|_| {
        conn.write_stall_total()
            .saturating_sub(Duration::from_micros(stalls.write_blocked_before_us))
    });
    for (since, after, reason) in [
        (stalls.body_wait_since, guard, Why::BodyReadTimeout),
        (stalls.head_since, guard, Why::HeaderReadTimeout),
        (stalls.write_blocked_since, stall, Why::WriteStalled),
        // (`left` is read only while a write is blocked.)
        (
            stalls.write_blocked_since,
            left.unwrap_or_default(),
            Why::WriteStalled,
        ),
    ] {
        if let Some(since) = since {
            consider(
                since.saturating_add(us(after)),
                Due {
                    why: reason,
                    idle: false,
                },
            );
        }
    }
    next
}

/// Watches `conn` until one of its deadlines passes, and says why to close.
/// Never resolves while the connection stays within every limit.
/// (Not an `async fn`: one copies its arguments into the future a second
/// time, and one of these is kept per connection, bench figure 2.)
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep a second copy of its arguments"
)]
pub fn watch(
    conn: Arc<Conn>,
    guard: Duration,
    stall: Duration,
) -> impl Future<Output = Verdict> + Send + 'static {
    async move {
        let clock = conn_clock(&conn);
        // The owner's view is fetched again only when the connection changed
        // owner (once at most: the first request that names a session).
        let mut view_seen = conn.view_generation();
        let mut view = conn.view();
        // The wait for the owner's next view lives across turns of the loop:
        // made anew at every turn, its registration and removal took the
        // `watch` channel's lock twice per request (bench figure 1). Polled
        // once to register, then only when `view` says it has changed: its
        // waker is this task's, which stays the same. `view` and the wait's
        // own receiver mark a change seen together (below), so neither misses one.
        let changed = changed_from(view.clone());
        tokio::pin!(changed);
        let mut registered = false;
        // False once the owner's sender is gone (a forgotten session): its last
        // policy stays in force and only activity wakes the watchdog.
        let mut view_alive = true;
        // The owner's idle timeout and whether its page is gone, as of the
        // last view seen: read again when the view changes (or the owner
        // does), not at every turn. Reading them takes the view channel's
        // lock, which every connection of the owner shares (bench figure 1).
        // A turn that runs before a change of view is seen can only arm the
        // timer for a deadline the view's own turn, in the same poll, then
        // moves earlier; a deadline that passes is judged with the view read
        // afresh.
        let mut owner = owner_of(&view);
        // One timer for the connection's life, moved only to an earlier
        // deadline: a later one (every request pushes the idle deadline on)
        // waits for the armed one to pass, which re-reads the state and arms
        // the timer again. So a request costs no timer registration (bench
        // figure 1), and a deadline is never missed.
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut armed: Option<Micros> = None;
        // Reset since it was last polled: polled now, to register this task.
        let mut timer_fresh = false;
        loop {
            // A change: woken (one made in another task), or made in the
            // connection's own task, which comes without a wake
            // (`Conn::changed`): this task polls us right after it. Read
            // before the state, so no change can slip between.
            let seen = conn.epoch();
            // Only the deadline is kept while waiting (this future lasts as
            // long as the connection, so what it holds across the wait below
            // is held per connection: bench figure 2): the verdict is decided
            // afresh when it passes.
            {
                let (idle_ms, ended) = owner;
                // Read only if a deadline needs it: a request that starts
                // and ends moves no deadline earlier (bench figure 1).
                let mut now = Now::of(clock);
                if let Some(at) =
                    next_deadline(&conn, idle_ms, ended, guard, stall, &mut now).map(|(at, _)| at)
                    && armed.is_none_or(|armed| at < armed)
                {
                    let wait = Duration::from_micros(at.saturating_sub(now.get()));
                    timer.as_mut().reset(tokio::time::Instant::now() + wait);
                    armed = Some(at);
                    timer_fresh = true;
                }
            }
            // What `tokio::select!` would do, except that the timer and the
            // view's wait are polled only when they can be ready (decided at
            // every poll, not once per turn): the timer once after each reset
            // (to register this task), then once tokio's timer has fired (an
            // atomic read, then a wake: no clock reading per poll); the
            // view's wait once after it is made (see `changed` above), then
            // when `view` has changed (a closed channel counts as a change).
            // Both unconstrained by tokio's budget, which would otherwise
            // answer that first poll without registering. In a fixed order (no
            // random draw per poll): each branch reads the state afresh, so
            // which goes first changes no verdict.
            let wake = std::future::poll_fn(|cx| {
                if armed.is_some() && (timer_fresh || timer.is_elapsed()) {
                    timer_fresh = false;
                    let poll = std::pin::pin!(tokio::task::unconstrained(timer.as_mut())).poll(cx);
                    if poll.is_ready() {
                        return Poll::Ready(Wake::Deadline);
                    }
                }
                if conn.poll_changed(seen, cx).is_ready() {
                    return Poll::Ready(Wake::Activity);
                }
                if view_alive && (!registered || view.has_changed().unwrap_or(true)) {
                    registered = true;
                    if let Poll::Ready((receiver, alive)) = changed.as_mut().poll(cx) {
                        return Poll::Ready(Wake::View(receiver, alive));
                    }
                }
                Poll::Pending
            })
            .await;
            match wake {
                Wake::Deadline => {
                    armed = None;
                    // A deadline that still holds, with the state read afresh?
                    owner = owner_of(&view);
                    let (idle_ms, ended) = owner;
                    let mut now = Now::of(clock);
                    if let Some((at, verdict)) =
                        next_deadline(&conn, idle_ms, ended, guard, stall, &mut now)
                        && at <= now.get()
                    {
                        return verdict.into();
                    }
                }
                Wake::Activity => {
                    // The owner may have changed: follow its view from now on.
                    let generation = conn.view_generation();
                    if generation != view_seen {
                        view_seen = generation;
                        view = conn.view();
                        owner = owner_of(&view);
                        changed.set(changed_from(view.clone()));
                        registered = false;
                        view_alive = true;
                    }
                }
                Wake::View(receiver, alive) => {
                    // Both receivers have now seen the same version.
                    view.mark_unchanged();
                    owner = owner_of(&view);
                    changed.set(changed_from(receiver));
                    registered = false;
                    conn.policy_changed();
                    view_alive = alive;
                }
            }
        }
    }
}

/// The server clock, read at most once per turn of the watchdog, and only
/// when asked: most turns (a request starting or ending) need no reading.
struct Now {
    /// The clock.
    clock: crate::Clock,
    /// Its reading, once taken.
    read: Option<Micros>,
}

impl Now {
    fn of(clock: crate::Clock) -> Now {
        Now { clock, read: None }
    }

    /// The reading (taken at the first call of this turn).
    fn get(&mut self) -> Micros {
        *self.read.get_or_insert_with(|| self.clock.now_us())
    }
}

/// The owner's idle timeout (ms) and whether its page is gone, from `view`.
fn owner_of(view: &watch::Receiver<ScopeView>) -> (u64, bool) {
    let v = view.borrow();
    (v.policy.idle_timeout_ms, v.ended)
}

/// What woke the watchdog.
enum Wake {
    /// The armed deadline passed.
    Deadline,
    /// The connection's activity or owner changed.
    Activity,
    /// The owner's view changed: the receiver that saw it, and whether its
    /// sender is still there.
    View(watch::Receiver<ScopeView>, bool),
}

/// The owner's next view, and the receiver that waited for it (whether its
/// sender is still there).
async fn changed_from(mut view: watch::Receiver<ScopeView>) -> (watch::Receiver<ScopeView>, bool) {
    let alive = tokio::task::unconstrained(view.changed()).await.is_ok();
    (view, alive)
}

fn conn_clock(conn: &Conn) -> crate::Clock {
    conn.clock()
}
