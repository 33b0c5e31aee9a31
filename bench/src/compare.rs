//! `--compare OTHER`: figure 1's load on two builds of the lab at once,
//! side by side, to see what a change does to a request's cost on a host
//! whose speed moves from minute to minute (`causes.md`, figure 1).
//!
//! Both servers run the whole time (this binary's lab and `OTHER`'s, each
//! a `--serve lab --policy bench` child), and short windows of the same
//! keep-alive load alternate between them, the order swapping every round,
//! so a slow minute falls on both. Per window: throughput and the server's
//! CPU per request (user + system from `/proc`). The summary is the
//! medians and how many rounds the other build was the cheaper. The
//! windows spread; a difference smaller than that spread needs a profile
//! (`perf record -p` of each child: the report names their process ids).

use std::path::Path;
use std::time::Duration;

use crate::figures::{load_window, median};
use crate::server::{Extras, Kind, Policy, Server};

/// One window against one server: requests per second, and the server's
/// and the load client's CPU per request, µs.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Requests answered per second.
    pub throughput: f64,
    /// Server CPU time per request, µs.
    pub cpu_us: f64,
    /// This process's CPU time (the load client's) per request, µs: what the
    /// client spends per answer of this build, on the cores both share.
    pub client_cpu_us: f64,
}

/// Runs `rounds` rounds of one `seconds` window on each build and renders
/// the table. `other` is another `keepalive-lab-bench` binary.
pub async fn run(
    other: &Path,
    connections: usize,
    rounds: usize,
    seconds: f64,
) -> Result<String, String> {
    let this = Server::start(Kind::Lab, Policy::Bench, None).await?;
    let extras = Extras {
        exe: Some(other.to_owned()),
        ..Extras::default()
    };
    let that = Server::start_with(Kind::Lab, Policy::Bench, None, &extras).await?;
    let servers = [&this, &that];
    eprintln!(
        "bench: comparing this build (pid {}) with {} (pid {})",
        this.pid(),
        other.display(),
        that.pid()
    );
    let window = Duration::from_secs_f64(seconds);
    // Warm both (connections, allocator, caches) before anything counts.
    for server in servers {
        one(server, connections, Duration::from_secs(1)).await?;
    }
    let mut windows: [Vec<Window>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let w = one(servers[which], connections, window).await?;
            eprintln!(
                "bench: round {}/{rounds} {}: {:.0} req/s, {:.2} µs CPU/request (client {:.2})",
                round + 1,
                ["this", "other"][which],
                w.throughput,
                w.cpu_us,
                w.client_cpu_us
            );
            windows[which].push(w);
        }
    }
    Ok(render(other, &windows[0], &windows[1]))
}

/// One measured window of keep-alive `/api/fast` against `server`.
async fn one(server: &Server, connections: usize, window: Duration) -> Result<Window, String> {
    let warmup = Duration::from_millis(300);
    let (run, before, after) = load_window(server, connections, warmup, window, || {
        Ok([
            server.cpu_time()?,
            crate::server::process_cpu_time("/proc/self/stat")?,
        ])
    })
    .await?;
    if run.failures > 0 {
        return Err(format!("{} requests failed in a window", run.failures));
    }
    let per_request = |i: usize| run.per_request_us(after[i].saturating_sub(before[i]));
    Ok(Window {
        throughput: run.throughput(),
        cpu_us: per_request(0),
        client_cpu_us: per_request(1),
    })
}

/// The table: every round, then the medians and the rounds the other
/// build was cheaper.
pub fn render(other: &Path, this: &[Window], that: &[Window]) -> String {
    let mut out = format!(
        "| round | this build: req/s | CPU/request | client CPU/request | {}: req/s | CPU/request | client CPU/request |\n|---|---|---|---|---|---|---|\n",
        other.display()
    );
    for (i, (a, b)) in this.iter().zip(that).enumerate() {
        out += &format!(
            "| {} | {:.0} | {:.2} µs | {:.2} µs | {:.0} | {:.2} µs | {:.2} µs |\n",
            i + 1,
            a.throughput,
            a.cpu_us,
            a.client_cpu_us,
            b.throughput,
            b.cpu_us,
            b.client_cpu_us
        );
    }
    let med = |ws: &[Window], f: fn(&Window) -> f64| median(ws.iter().map(f));
    let (cpu_a, cpu_b) = (med(this, |w| w.cpu_us), med(that, |w| w.cpu_us));
    let cheaper = this
        .iter()
        .zip(that)
        .filter(|(a, b)| b.cpu_us < a.cpu_us)
        .count();
    let (client_a, client_b) = (
        med(this, |w| w.client_cpu_us),
        med(that, |w| w.client_cpu_us),
    );
    out += &format!(
        "| median | {:.0} | {:.2} µs | {:.2} µs | {:.0} | {:.2} µs | {:.2} µs |\n\nThe other build's CPU per request: {:.3}× this build's (medians); lower in {cheaper} of {} rounds. Against it the load client used {:.3}× the CPU per request it used against this build.\n",
        med(this, |w| w.throughput),
        cpu_a,
        client_a,
        med(that, |w| w.throughput),
        cpu_b,
        client_b,
        cpu_b / cpu_a,
        this.len().min(that.len()),
        client_b / client_a
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_compares_medians_and_counts_the_cheaper_rounds() {
        let w = |throughput, cpu_us, client_cpu_us| Window {
            throughput,
            cpu_us,
            client_cpu_us,
        };
        let this = [w(100.0, 10.0, 8.0), w(90.0, 12.0, 9.0), w(95.0, 11.0, 10.0)];
        let that = [w(110.0, 9.0, 7.0), w(80.0, 13.0, 9.0), w(99.0, 10.0, 8.0)];
        let table = render(Path::new("/tmp/other"), &this, &that);
        assert!(
            table.contains("| 2 | 90 | 12.00 µs | 9.00 µs | 80 | 13.00 µs | 9.00 µs |"),
            "{table}"
        );
        assert!(
            table.contains("| median | 95 | 11.00 µs | 9.00 µs | 99 | 10.00 µs | 8.00 µs |"),
            "{table}"
        );
        assert!(
            table.contains("0.909× this build's (medians); lower in 2 of 3 rounds"),
            "{table}"
        );
        assert!(
            table.contains(
                "the load client used 0.889× the CPU per request it used against this build"
            ),
            "{table}"
        );
    }
}
