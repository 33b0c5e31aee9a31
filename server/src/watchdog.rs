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
//! | idle since *t* | *t* + the owner's `idle_timeout_ms` | `idle_timeout` (or `keep_alive_race` if a request was in the receive buffer) |
//! | idle, and the owner's page is gone | now | `session_ended` |
//! | a head arriving since *t* | *t* + [`Config::header_read_timeout`](crate::Config) | `header_read_timeout` |
//! | the rest of a body arriving since *t* | the same guard | `body_read_timeout` |
//! | a handler waiting for body bytes since *t* | the same guard | `body_read_timeout` |
//! | a write blocked since *t* | *t* + [`Config::write_stall_timeout`](crate::Config) | `write_stalled` |

use std::sync::Arc;
use std::time::Duration;

use protocol::{CloseReason, Micros};

use crate::conn::{Activity, Conn};

/// What the watchdog decided: close the connection for this reason. An idle
/// close (`idle: true`) is checked for a racing request at the close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Why.
    pub reason: CloseReason,
    /// It was idle: look for a request that raced the close.
    pub idle: bool,
}

/// The earliest deadline that applies now, with its verdict.
fn next_deadline(
    conn: &Conn,
    idle_timeout_ms: u64,
    ended: bool,
    guard: Duration,
    stall: Duration,
    now: Micros,
) -> Option<(Micros, Verdict)> {
    let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    // The earliest so far (no allocation: evaluated at every change).
    let mut next: Option<(Micros, Verdict)> = None;
    let mut consider = |at: Micros, verdict: Verdict| {
        if next.as_ref().is_none_or(|(earliest, _)| at < *earliest) {
            next = Some((at, verdict));
        }
    };
    match conn.activity() {
        Activity::Busy => {}
        Activity::Idle(since) => {
            let (at, reason) = if ended {
                (now, CloseReason::SessionEnded)
            } else {
                (
                    since.saturating_add(idle_timeout_ms.saturating_mul(1000)),
                    CloseReason::IdleTimeout,
                )
            };
            consider(at, Verdict { reason, idle: true });
        }
        Activity::Arriving { since, body } => {
            let reason = if body {
                CloseReason::BodyReadTimeout
            } else {
                CloseReason::HeaderReadTimeout
            };
            consider(
                since.saturating_add(us(guard)),
                Verdict {
                    reason,
                    idle: false,
                },
            );
        }
    }
    let stalls = conn.stalls();
    if let Some(since) = stalls.body_wait_since {
        consider(
            since.saturating_add(us(guard)),
            Verdict {
                reason: CloseReason::BodyReadTimeout,
                idle: false,
            },
        );
    }
    if let Some(since) = stalls.write_blocked_since {
        consider(
            since.saturating_add(us(stall)),
            Verdict {
                reason: CloseReason::WriteStalled,
                idle: false,
            },
        );
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
        // False once the owner's sender is gone (a forgotten session): its last
        // policy stays in force and only activity wakes the watchdog.
        let mut view_alive = true;
        // One timer for the connection's life, moved only to an earlier
        // deadline: a later one (every request pushes the idle deadline on)
        // waits for the armed one to pass, which re-reads the state and arms
        // the timer again. So a request costs no timer registration (bench
        // figure 1), and a deadline is never missed.
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut armed: Option<Micros> = None;
        loop {
            // A change: woken (one made in another task), or made in the
            // connection's own task, which comes without a wake
            // (`Conn::changed`): this task polls us right after it. Read
            // before the state, so no change can slip between.
            let seen = conn.epoch();
            let moved_on = std::future::poll_fn(|cx| conn.poll_changed(seen, cx));
            let (idle_ms, ended) = {
                let v = view.borrow_and_update();
                (v.policy.idle_timeout_ms, v.ended)
            };
            let now = clock.now_us();
            // Only the deadline is kept while waiting (this future lasts as long
            // as the connection): the verdict is decided afresh when it passes.
            if let Some(at) =
                next_deadline(&conn, idle_ms, ended, guard, stall, now).map(|(at, _)| at)
                && armed.is_none_or(|armed| at < armed)
            {
                let wait = Duration::from_micros(at.saturating_sub(now));
                timer.as_mut().reset(tokio::time::Instant::now() + wait);
                armed = Some(at);
            }
            tokio::select! {
                () = timer.as_mut(), if armed.is_some() => {
                    armed = None;
                    // A deadline that still holds, with the state read afresh?
                    let (idle_ms, ended) = {
                        let v = view.borrow();
                        (v.policy.idle_timeout_ms, v.ended)
                    };
                    let now = clock.now_us();
                    if let Some((at, verdict)) = next_deadline(&conn, idle_ms, ended, guard, stall, now)
                        && at <= now
                    {
                        return verdict;
                    }
                }
                () = moved_on => {
                    // The owner may have changed: follow its view from now on.
                    let generation = conn.view_generation();
                    if generation != view_seen {
                        view_seen = generation;
                        view = conn.view();
                        view_alive = true;
                    }
                }
                result = view.changed(), if view_alive => {
                    conn.policy_changed();
                    view_alive = result.is_ok();
                }
            }
        }
    }
}

fn conn_clock(conn: &Conn) -> crate::Clock {
    conn.clock()
}
