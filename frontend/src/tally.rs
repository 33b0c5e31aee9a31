//! What a run measured, counted once: every figure the page shows about a
//! run (the live counters, the per-pool table, the run's summary sentence)
//! comes from one [`Tally`], so no two of them can disagree. Pure, tested on
//! the host.
//!
//! Definitions. Each request is in exactly one "now" state:
//! - *not sent yet*: `fetch` not called (sequential runs);
//! - *waiting in the browser now*: called, and no attempt of it at the
//!   server: never sent yet, or its attempt was dropped unanswered and the
//!   browser holds it again (to re-send it, or to fail it);
//! - *at the server now*: an attempt at the server, no response head in the
//!   page yet (HTTP/1.1: one per connection, so never more than the
//!   connections busy);
//! - *downloading*: the response head arrived, the body has not ended;
//! - *done*, *failed*, *aborted*: ended.
//!
//! Per pool:
//! - *queued in the browser*: the ones waiting now, plus those that first
//!   reached the server only after another request of the pool ended there,
//!   though issued before it ended ([`Run::queued_in`]); never below
//!   "waiting now";
//! - *connections*: every connection that carried one of its attempts, by
//!   where it came from: opened by this run, the page load's (the page's
//!   files, or Chromium's spare), or kept alive from before this run.

use crate::sorted::{SortedMap, SortedSet};

use protocol::ConnId;

use crate::state::{BrowserRequest, LabState, Phase, PoolKey, Run};

/// `n` of `one`, pluralised: "1 connection", "2 connections".
pub fn count(n: usize, one: &str) -> String {
    format!("{n} {one}{}", if n == 1 { "" } else { "s" })
}

/// Which connection a request went on, as far as the page can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnUse {
    /// Its connection was opened for it.
    New,
    /// Its connection had carried an earlier request of the same run.
    Reused,
    /// Its connection was kept alive from before this run (an earlier run,
    /// or another of this page's requests).
    Kept,
    /// The connection that loaded the page's files.
    PageLoad,
    /// The spare connection Chromium opened when the page loaded, unused until then.
    Spare,
}

impl ConnUse {
    /// Words after the connection's name, as the timeline writes them.
    pub fn words(self) -> &'static str {
        match self {
            ConnUse::New => "new",
            ConnUse::Reused => "reused",
            ConnUse::Kept => "kept alive",
            ConnUse::PageLoad => "page load",
            ConnUse::Spare => "spare",
        }
    }
}

/// Request `seq` on connection `conn`, for a request of `run`.
pub fn conn_use(state: &LabState, run: &Run, conn: ConnId, seq: u32) -> ConnUse {
    // The lane may be forgotten, or not shown to this page (another tab of
    // the same browser shares its pool, and the connection is that tab's):
    // the run's own attempts say whether it carried one of them before.
    if let Some(lane) = state.lanes.get(&conn)
        && state.is_page_load(lane)
    {
        return if seq == 1 {
            ConnUse::Spare
        } else {
            ConnUse::PageLoad
        };
    }
    match seq {
        1 => ConnUse::New,
        _ if run.carried_before(conn, seq) => ConnUse::Reused,
        _ => ConnUse::Kept,
    }
}

/// How a request went, for its row: the connection use of the attempt that
/// answered (or the latest).
pub fn request_use(state: &LabState, run: &Run, r: &BrowserRequest) -> Option<ConnUse> {
    Some(conn_use(state, run, r.conn?, r.seq?))
}

/// One pool's figures in a run.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolTally {
    /// The pool.
    pub pool: PoolKey,
    /// Its requests.
    pub requests: usize,
    /// Waiting in the browser now.
    pub waiting_now: usize,
    /// Queued in the browser: waiting now, waited earlier, or ended without
    /// reaching the server (each request once).
    pub queued: usize,
    /// The longest finished wait (ms), when the clocks are synchronised.
    pub longest_wait_ms: Option<f64>,
    /// Most connections carrying its requests at once.
    pub max_conns: usize,
    /// Connections that carried its attempts.
    pub conns: usize,
    /// ...of which opened by this run.
    pub opened: usize,
    /// ...of which the page load's.
    pub page_load: usize,
    /// ...of which kept alive from before this run.
    pub kept: usize,
    /// Requests (answering attempt) by connection use: new, reused, kept,
    /// page load (its files' connection or the spare).
    pub on: [usize; 4],
}

impl PoolTally {
    fn new(pool: PoolKey) -> PoolTally {
        PoolTally {
            pool,
            requests: 0,
            waiting_now: 0,
            queued: 0,
            longest_wait_ms: None,
            max_conns: 0,
            conns: 0,
            opened: 0,
            page_load: 0,
            kept: 0,
            on: [0; 4],
        }
    }
}

/// Every counter of a run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tally {
    /// Requests in the run.
    pub total: usize,
    /// Not sent yet.
    pub pending: usize,
    /// Waiting in the browser now.
    pub waiting: usize,
    /// At the server now.
    pub at_server: usize,
    /// Downloading now.
    pub downloading: usize,
    /// Done.
    pub done: usize,
    /// Failed.
    pub failed: usize,
    /// Aborted by the page.
    pub aborted: usize,
    /// Re-sent by the browser (the server saw them more than once).
    pub resent: usize,
    /// Of those, failed all the same (every attempt lost, and the page was
    /// told): the others' re-sends were silent.
    pub resent_failed: usize,
    /// Attempts the server saw in all.
    pub attempts: usize,
    /// Connections holding a request at the server now.
    pub busy_conns: usize,
    /// Requests (by index) that went on a page-load connection, with it and how.
    pub on_page_load: Vec<(usize, ConnId, ConnUse)>,
    /// Per pool.
    pub pools: Vec<PoolTally>,
}

/// Where a request's use puts it: new, reused, kept, the page load's.
fn slot(u: ConnUse) -> usize {
    match u {
        ConnUse::New => 0,
        ConnUse::Reused => 1,
        ConnUse::Kept => 2,
        ConnUse::PageLoad | ConnUse::Spare => 3,
    }
}

impl Tally {
    /// Counts `run` (with the page's lanes for where connections came from),
    /// in one pass over its requests.
    pub fn of(run: &Run, state: &LabState) -> Tally {
        let mut t = Tally {
            total: run.requests.len(),
            ..Tally::default()
        };
        let mut busy = SortedSet::new();
        // Per pool: its figures, and where each connection it used came
        // from (the highest slot of its attempts' uses).
        // ... and the requests that queued in the browser: waiting now, or
        // ended (failed, aborted) without ever reaching the server.
        let mut pools: Vec<(PoolTally, SortedMap<ConnId, usize>, SortedSet<usize>)> = Vec::new();
        for (i, r) in run.requests.iter().enumerate() {
            let k = match pools.iter().position(|(p, ..)| p.pool == r.pool) {
                Some(k) => k,
                None => {
                    pools.push((
                        PoolTally::new(r.pool.clone()),
                        SortedMap::new(),
                        SortedSet::new(),
                    ));
                    pools.len() - 1
                }
            };
            let (p, from, queued) = &mut pools[k];
            p.requests += 1;
            let never_reached = r.issued_ms.is_some()
                && r.attempts.is_empty()
                && matches!(r.phase, Phase::Failed | Phase::Aborted);
            if r.phase == Phase::Queued || never_reached {
                queued.insert(i);
            }
            match r.phase {
                Phase::Pending => t.pending += 1,
                Phase::Queued => {
                    t.waiting += 1;
                    p.waiting_now += 1;
                }
                Phase::AtServer => {
                    t.at_server += 1;
                    busy.extend(r.conn);
                }
                Phase::Downloading => t.downloading += 1,
                Phase::Done => t.done += 1,
                Phase::Failed => t.failed += 1,
                Phase::Aborted => t.aborted += 1,
            }
            t.resent += usize::from(r.resent());
            t.resent_failed += usize::from(r.resent() && r.phase == Phase::Failed);
            t.attempts += r.attempts.len();
            for a in &r.attempts {
                let s = slot(conn_use(state, run, a.conn, a.seq));
                let e = from.get_or_insert_with(a.conn, || s);
                *e = (*e).max(s);
            }
            if let (Some(c), Some(u)) = (r.conn, request_use(state, run, r)) {
                p.on[slot(u)] += 1;
                if slot(u) == 3 {
                    t.on_page_load.push((i, c, u));
                }
            }
        }
        t.busy_conns = busy.len();
        for (mut p, from, mut queued) in pools {
            // Also those that waited before reaching the server (once each,
            // though a dropped attempt can send one back to wait again).
            let waits = run.queued_in(&p.pool, &state.clock);
            queued.extend(waits.iter().map(|w| w.0));
            p.queued = queued.len();
            p.longest_wait_ms = waits.iter().filter_map(|w| w.1).reduce(f64::max);
            p.max_conns = run.pools.get(&p.pool).map_or(0, |s| s.max_concurrent_conns);
            p.conns = from.len();
            for s in from.values() {
                match s {
                    0 | 1 => p.opened += 1,
                    2 => p.kept += 1,
                    _ => p.page_load += 1,
                }
            }
            t.pools.push(p);
        }
        t
    }

    /// Re-sent by the browser without the page being told: re-sent and not
    /// failed (answered, still under way, or aborted by the page itself).
    pub fn silently_resent(&self) -> usize {
        self.resent - self.resent_failed
    }

    /// The run in one or two sentences, from these figures only.
    pub fn summary(&self) -> String {
        if self.attempts == 0 {
            return "No request has reached the server yet.".to_owned();
        }
        if self.waiting > 0 && self.at_server > 0 {
            return format!(
                "Your browser holds {} in its own queue while {} at the server on {}: the server \
                 has not seen the waiting ones at all.",
                count(self.waiting, "request"),
                is_are(self.at_server),
                count(self.busy_conns, "connection")
            );
        }
        let max = self.pools.iter().map(|p| p.max_conns).max().unwrap_or(0);
        let on = |k: usize| self.pools.iter().map(|p| p.on[k]).sum::<usize>();
        let mut words = format!(
            "At most {} carried one pool's requests at once. {} went on a connection opened for \
             it, {} reused a connection of this run (keep-alive)",
            count(max, "connection"),
            on(0),
            on(1)
        );
        if on(2) > 0 {
            words += &format!(", {} one kept alive from before this run", on(2));
        }
        for (i, conn, u) in &self.on_page_load {
            words += &format!(
                "; #{} went on {}",
                i + 1,
                if *u == ConnUse::Spare {
                    format!("the spare connection {conn} opened at page load")
                } else {
                    format!("the page-load connection {conn}")
                }
            );
        }
        words.push('.');
        let silent = self.silently_resent();
        if silent > 0 {
            words += &format!(
                " The browser re-sent {} silently ({} attempts in all).",
                count(silent, "request"),
                self.attempts
            );
        }
        if self.resent_failed > 0 {
            words += &format!(
                " It re-sent {} that failed all the same.",
                count(self.resent_failed, "request"),
            );
        }
        words
    }
}

/// "1 is", "3 are".
fn is_are(n: usize) -> String {
    format!("{n} {}", if n == 1 { "is" } else { "are" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Credentials;

    #[test]
    fn counts_are_pluralised() {
        assert_eq!(count(0, "connection"), "0 connections");
        assert_eq!(count(1, "connection"), "1 connection");
        assert_eq!(count(2, "request"), "2 requests");
        assert_eq!(is_are(1), "1 is");
        assert_eq!(is_are(6), "6 are");
    }

    #[test]
    fn the_summary_says_one_connection_and_one_request() {
        let pool = PoolTally {
            pool: PoolKey {
                origin: "http://h".into(),
                credentials: Credentials::Default,
            },
            requests: 2,
            waiting_now: 1,
            queued: 1,
            longest_wait_ms: None,
            max_conns: 1,
            conns: 1,
            opened: 1,
            page_load: 0,
            kept: 0,
            on: [1, 0, 0, 0],
        };
        let mut t = Tally {
            total: 2,
            waiting: 1,
            at_server: 1,
            busy_conns: 1,
            attempts: 1,
            pools: vec![pool],
            ..Tally::default()
        };
        assert_eq!(
            t.summary(),
            "Your browser holds 1 request in its own queue while 1 is at the server on 1 \
             connection: the server has not seen the waiting ones at all."
        );
        (t.waiting, t.at_server, t.done, t.resent, t.attempts) = (0, 0, 2, 1, 3);
        let words = t.summary();
        assert!(words.starts_with("At most 1 connection carried"), "{words}");
        assert!(words.contains("re-sent 1 request silently"), "{words}");
        // A re-send that failed all the same was not silent: the page saw
        // the failure (found in review).
        (t.done, t.failed, t.resent_failed) = (1, 1, 1);
        let words = t.summary();
        assert!(!words.contains("silently"), "{words}");
        assert!(
            words.contains("re-sent 1 request that failed all the same"),
            "{words}"
        );
    }
}
