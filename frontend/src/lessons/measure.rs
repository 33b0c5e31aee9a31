//! What a lesson can measure from the page's state: pure functions over runs
//! and lanes, host-tested. Every figure a lesson quotes comes from here.

use crate::sorted::SortedSet;

use protocol::{CloseReason, ConnId, Micros};

use crate::state::{BrowserRequest, LabState, Phase, Run};

/// Requests of `run` the server has seen (at the server now, or ended after).
pub fn reached_server(run: &Run) -> usize {
    run.requests
        .iter()
        .filter(|r| r.server_start_us.is_some())
        .count()
}

/// Requests of `run` that have ended, one way or another.
pub fn ended(run: &Run) -> usize {
    run.requests.iter().filter(|r| !r.phase.is_open()).count()
}

/// Requests of `run` in `phase`.
pub fn in_phase(run: &Run, phase: Phase) -> usize {
    run.count(phase)
}

/// The most requests of `requests` the server held at the same moment: with
/// HTTP/1.1 each is on its own connection, so this is the most connections
/// busy at once. Measured on the server's clock.
pub fn peak_at_server<'a>(requests: impl Iterator<Item = &'a BrowserRequest>) -> usize {
    peak_at_server_when(requests).0
}

/// [`peak_at_server`], and the server's time when it was first reached
/// (`None` with no request at the server).
pub fn peak_at_server_when<'a>(
    requests: impl Iterator<Item = &'a BrowserRequest>,
) -> (usize, Option<Micros>) {
    let mut edges: Vec<(Micros, i32)> = Vec::new();
    for r in requests {
        if let Some(start) = r.server_start_us {
            edges.push((start, 1));
            if let Some(end) = r.server_end_us {
                edges.push((end, -1));
            }
        }
    }
    // Ends before starts at the same instant: a freed lane is taken next.
    sort(&mut edges);
    let (mut now, mut peak, mut when) = (0_i32, 0_i32, None);
    for (at, delta) in edges {
        now += delta;
        if now > peak {
            (peak, when) = (now, Some(at));
        }
    }
    (usize::try_from(peak).unwrap_or(0), when)
}

/// Distinct connections that carried `run`'s requests. Sets are built by
/// `extend` (one insert each), not `collect` (which sorts its input with
/// `core`'s sort, about 5 KB of wasm per element type).
pub fn connections(run: &Run) -> SortedSet<ConnId> {
    let mut conns = SortedSet::new();
    conns.extend(run.requests.iter().filter_map(|r| r.conn));
    conns
}

/// Sorts `v` in place, stably: an insertion sort, for the few dozen edges
/// and requests a lesson measures. `core`'s sort costs about 5 KB of wasm for
/// each element type it is used with; this, a few hundred bytes (issue 14).
/// The same result as `sort`, and as `sort_unstable` on plain numbers.
pub fn sort<T: Ord>(v: &mut [T]) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && v[j - 1] > v[j] {
            v.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Requests of `run` that went out on a connection opened for them: the
/// first on theirs, and not the page load's spare (open before the run,
/// nothing waited for it: [`crate::tally::ConnUse::Spare`]).
pub fn on_new_connections(state: &LabState, run: &Run) -> usize {
    run.requests
        .iter()
        .filter(|r| crate::tally::request_use(state, run, r) == Some(crate::tally::ConnUse::New))
        .count()
}

/// Requests the browser sent more than once (seen twice by the server).
pub fn resent(run: &Run) -> usize {
    run.requests.iter().filter(|r| r.resent()).count()
}

/// Requests of `run` the browser re-sent that then ended in `phase`:
/// answered (`Done`: the page never knew of the re-send) or failed anyway
/// (`Failed`: every attempt was lost, and the page saw the failure).
pub fn resent_then(run: &Run, phase: Phase) -> usize {
    run.requests
        .iter()
        .filter(|r| r.resent() && r.phase == phase)
        .count()
}

/// When the server first saw `r`: its first attempt's start, not its
/// latest (a request the browser re-sent reached the server first with the
/// attempt that was cut).
pub fn first_arrival(r: &BrowserRequest) -> Option<Micros> {
    r.attempts.first().map(|a| a.start_us).or(r.server_start_us)
}

/// Indices of `run`'s requests in the order the server first saw them.
pub fn arrival_order(run: &Run) -> Vec<usize> {
    let mut seen: Vec<(Micros, usize)> = run
        .requests
        .iter()
        .enumerate()
        .filter_map(|(i, r)| first_arrival(r).map(|at| (at, i)))
        .collect();
    sort(&mut seen);
    seen.into_iter().map(|(_, i)| i).collect()
}

/// The longest pause between two of `run`'s first arrivals at the server
/// (the earliest, if several are as long): how many arrived before it, and
/// when the first after it arrived, in ms after the first of all and on the
/// server's clock. A burst
/// held by the browser's lanes arrives in waves, and the pause before the
/// second is the wait for a lane: measured, not assumed to follow the 6th
/// (another browser's pool may be another size). `None` with fewer than
/// two arrivals.
pub fn longest_pause(run: &Run) -> Option<(usize, u32, Micros)> {
    let at: Vec<Micros> = arrival_order(run)
        .into_iter()
        .filter_map(|i| run.requests.get(i).and_then(|r| first_arrival(r)))
        .collect();
    let first = *at.first()?;
    // `max_by_key` keeps the last of equals: counted down, the earliest.
    let before = (1..at.len())
        .rev()
        .max_by_key(|&i| at[i].saturating_sub(at[i - 1]))?;
    Some((before, ms_between(first, at[before]), at[before]))
}

/// Why connection `conn` closed, if it has.
pub fn close_reason(state: &LabState, conn: ConnId) -> Option<&CloseReason> {
    state
        .lanes
        .get(&conn)
        .and_then(|l| l.closed.as_ref())
        .map(|c| &c.reason)
}

/// Connections of `runs` that have closed, with why.
pub fn closes<'a>(state: &'a LabState, runs: &[&Run]) -> Vec<(ConnId, &'a CloseReason)> {
    let mut conns = SortedSet::new();
    conns.extend(runs.iter().flat_map(|r| connections(r)));
    conns
        .into_iter()
        .filter_map(|c| close_reason(state, c).map(|reason| (c, reason)))
        .collect()
}

/// Milliseconds between two server times.
pub fn ms_between(from: Micros, to: Micros) -> u32 {
    u32::try_from(to.saturating_sub(from) / 1000).unwrap_or(u32::MAX)
}

/// Words for a count: "1 connection", "6 connections".
pub fn count(n: usize, unit: &str) -> String {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    format!("{n} {}", super::plural(n, unit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::PoolKey;

    fn at(start: Micros, end: Option<Micros>, conn: u64, seq: u32) -> BrowserRequest {
        let pool = PoolKey {
            origin: "http://h:1".into(),
            credentials: crate::settings::Credentials::Default,
        };
        let mut r = BrowserRequest::new("t".into(), "u".into(), pool);
        r.server_start_us = Some(start);
        r.server_end_us = end;
        r.conn = Some(ConnId(conn));
        r.seq = Some(seq);
        r
    }

    #[test]
    fn peak_counts_overlaps_and_a_freed_lane_is_not_double_counted() {
        let requests = [
            at(0, Some(100), 1, 1),
            at(10, Some(100), 2, 1),
            at(100, Some(200), 1, 2), // starts as the first ends
            at(150, None, 3, 1),      // still at the server
        ];
        assert_eq!(peak_at_server(requests.iter()), 2);
        assert_eq!(peak_at_server(requests[..1].iter()), 1);
        assert_eq!(peak_at_server(std::iter::empty()), 0);
    }

    #[test]
    fn the_longest_pause_splits_the_waves_whatever_the_pool() {
        let run = |starts: &[Micros]| {
            let mut run = Run::empty();
            run.requests = starts
                .iter()
                .map(|&us| std::rc::Rc::new(at(us, None, 1, 1)))
                .collect();
            run
        };
        // Six lanes: six at once, the rest when the first six were cut.
        let six: Vec<Micros> = (0..6).chain((0..6).map(|i| 2_001_000 + i)).collect();
        assert_eq!(longest_pause(&run(&six)), Some((6, 2001, 2_001_000)));
        // A browser with four lanes, waves of four: the first pause.
        let four: Vec<Micros> = (0..12).map(|i| (i / 4) * 2_000_000 + i).collect();
        assert_eq!(longest_pause(&run(&four)), Some((4, 2000, 2_000_004)));
        // All at once: the longest pause is short (the grading decides).
        assert_eq!(
            longest_pause(&run(&[0, 300, 900, 1_000])),
            Some((2, 0, 900))
        );
        assert_eq!(longest_pause(&run(&[5])), None);
        assert_eq!(longest_pause(&run(&[])), None);
    }

    #[test]
    fn counts_in_words() {
        assert_eq!(count(1, "connections"), "1 connection");
        assert_eq!(count(6, "connections"), "6 connections");
        assert_eq!(ms_between(1_000, 2_501_000), 2500);
    }

    #[test]
    fn the_small_sort_sorts_as_core_does() {
        let cases: [Vec<(u64, i32)>; 4] = [
            vec![],
            vec![(5, 1)],
            vec![(3, 1), (1, -1), (3, -1), (2, 1), (1, 1), (3, 1)],
            (0..40).rev().map(|i| (i % 7, (i % 3) as i32 - 1)).collect(),
        ];
        for case in cases {
            let mut ours = case.clone();
            sort(&mut ours);
            let mut core = case;
            core.sort();
            assert_eq!(ours, core);
        }
    }
}
