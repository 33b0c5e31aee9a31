//! The measurements behind figures 1, 2, 5 and 6 (3 and 4 are in
//! [`crate::browser`]). Each function starts its own server children and
//! stops them (by dropping them) before it returns.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use futures_util::StreamExt as _;
use protocol::ServerEvent;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::client;
use crate::server::{self, Kind, Policy, Server};

// ---------------------------------------------------------------------------
// 1. Tracking overhead: keep-alive throughput and latency of /api/fast.

/// One server setup compared in figure 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// Which server.
    pub kind: Kind,
    /// With which keep-alive policy (ignored by plain axum).
    pub policy: Policy,
}

impl Variant {
    /// The lab, with nothing but tracking differing from plain axum.
    pub const LAB: Variant = Variant {
        kind: Kind::Lab,
        policy: Policy::Bench,
    };
    /// Plain `axum::serve`, same router.
    pub const AXUM: Variant = Variant {
        kind: Kind::Axum,
        policy: Policy::Bench,
    };
    /// The lab as a workshop runs it (every 100th response closes).
    pub const LAB_DEFAULT_POLICY: Variant = Variant {
        kind: Kind::Lab,
        policy: Policy::Default,
    };
}

/// One load run against one fresh server.
#[derive(Debug, Clone, Copy, Default)]
pub struct Round {
    /// Requests per second.
    pub throughput: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// Server CPU time (user + system) per request, µs.
    pub cpu_us_per_request: f64,
    /// The load client's CPU time (this process: user + system) per
    /// request, µs. It shares the cores with the server, so what it spends
    /// per answer is throughput the server does not get; it follows the
    /// server's (a slower server leaves fewer answers ready at each of the
    /// client's wake-ups), which `causes.md` (figure 1) measures.
    pub client_cpu_us_per_request: f64,
    /// Failed or non-200 requests.
    pub failures: u64,
    /// Connections closed by the server (`Connection: close`).
    pub reconnects: u64,
    /// CPU used meanwhile on this machine by anything but the server and the
    /// bench (other processes, the kernel's own threads), in cores.
    pub other_load: f64,
    /// CPU time the hypervisor gave to other guests while our cores had
    /// work (steal), in cores. On a shared host this is the usual cause of a
    /// slow round: no process here shows it.
    pub stolen_load: f64,
}

/// Cores taken from the round, by other processes or the hypervisor, above
/// which a round (of figure 1 or a step of figure 8) is called disturbed.
pub const DISTURBED_CORES: f64 = 0.15;

/// How many times figure 1 runs a disturbed round again before it keeps
/// the last one (and the report says it was disturbed).
pub const MAX_REPEATS: usize = 3;

impl Round {
    /// Cores taken from the round by anything but the two processes measured.
    pub fn disturbance(&self) -> f64 {
        self.other_load + self.stolen_load
    }

    /// Whether the round is too disturbed to compare.
    pub fn disturbed(&self) -> bool {
        self.disturbance() > DISTURBED_CORES
    }
}

/// Runs `/api/fast` keep-alive load against a fresh `variant` server.
pub async fn load_round(
    variant: Variant,
    connections: usize,
    warmup: Duration,
    window: Duration,
) -> Result<Round, String> {
    let server = Server::start(variant.kind, variant.policy, None).await?;
    let cpu = || -> Result<([Duration; 2], server::MachineTime), String> {
        Ok((
            [
                server.cpu_time()?,
                server::process_cpu_time("/proc/self/stat")?,
            ],
            server::MachineTime::read()?,
        ))
    };
    let (mut run, before, after) = load_window(&server, connections, warmup, window, cpu).await?;
    let ([server_before, bench_before], machine_before) = before;
    let ([server_after, bench_after], machine_after) = after;
    let server_cpu = server_after.saturating_sub(server_before);
    let client_cpu = bench_after.saturating_sub(bench_before);
    let ours = server_cpu + client_cpu;
    let (other_load, stolen_load) = machine_before.disturbance(machine_after, ours, window);
    Ok(Round {
        throughput: run.throughput(),
        p50_us: client::quantile(&mut run.latencies_ns, 0.50) as f64 / 1e3,
        p99_us: client::quantile(&mut run.latencies_ns, 0.99) as f64 / 1e3,
        cpu_us_per_request: run.per_request_us(server_cpu),
        client_cpu_us_per_request: run.per_request_us(client_cpu),
        failures: run.failures,
        reconnects: run.reconnects,
        other_load,
        stolen_load,
    })
}

/// `/api/fast` keep-alive load on `server` from `connections`: a `window`
/// measured after `warmup`, with `read` (CPU clocks) taken as the window
/// starts and as it ends.
pub async fn load_window<T>(
    server: &Server,
    connections: usize,
    warmup: Duration,
    window: Duration,
    read: impl Fn() -> Result<T, String>,
) -> Result<(client::LoadRun, T, T), String> {
    let measure_from = Instant::now() + warmup;
    let load = tokio::spawn(client::keep_alive_load(
        server.addr,
        "/api/fast",
        connections,
        measure_from,
        window,
    ));
    tokio::time::sleep_until(measure_from).await;
    let before = read()?;
    tokio::time::sleep_until(measure_from + window).await;
    let after = read()?;
    let run = load.await.map_err(|e| format!("load task: {e}"))?;
    Ok((run, before, after))
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    }
}

/// Figure 1's result per variant: each round, and the medians.
#[derive(Debug, Clone)]
pub struct Series {
    /// What was measured.
    pub variant: Variant,
    /// Every round kept, in the order run: the one measure of each round
    /// (the last try when a disturbed round was run again).
    pub rounds: Vec<Round>,
    /// Tries set aside because they were disturbed and run again, each with
    /// the number of the round (from 1) it was a try of.
    pub set_aside: Vec<(usize, Round)>,
}

impl Series {
    /// The median of one field over the rounds.
    pub fn median(&self, field: impl Fn(&Round) -> f64) -> f64 {
        median(self.rounds.iter().map(field))
    }
}

// ---------------------------------------------------------------------------
// 2. Held connections: resident memory per connection with a hanging request.

/// One held-connections run against one fresh server.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    /// Which server.
    pub kind: Kind,
    /// Connections we tried to open.
    pub wanted: usize,
    /// Connections that could not be opened.
    pub connect_failures: usize,
    /// Requests the server was holding when memory was read (its answer to
    /// the release that followed).
    pub held: usize,
    /// Of those, answered `200` after the release.
    pub answered: usize,
    /// `VmRSS` after start (one request served), bytes.
    pub rss_before: u64,
    /// `VmRSS` with every connection held, bytes.
    pub rss_held: u64,
    /// How long opening the connections took.
    pub open_time: Duration,
}

impl Held {
    /// Resident memory per held connection, bytes.
    pub fn bytes_per_connection(&self) -> f64 {
        self.rss_held.saturating_sub(self.rss_before) as f64 / self.held.max(1) as f64
    }
}

/// Opens `n` connections to a fresh `kind` server, each with `GET /api/hang`,
/// reads the server's memory once it has settled, then releases them all.
pub async fn held_connections(kind: Kind, n: usize) -> Result<Held, String> {
    let server = Server::start(kind, Policy::Bench, None).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = server.rss_bytes()?;
    let opening = Instant::now();
    let (streams, connect_failures) =
        client::open_hanging(server.addr, n, |i| format!("/api/hang?id=h{i}")).await;
    let open_time = opening.elapsed();
    let rss_held = settled_rss(&server).await?;

    let (status, body) = client::request(server.addr, "POST", "/api/release", "").await?;
    let released: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let held = released["released"].as_u64().unwrap_or(0) as usize;
    if status != 200 {
        return Err(format!("POST /api/release answered {status}"));
    }
    let answered = client::read_statuses(streams, Duration::from_secs(30)).await;
    Ok(Held {
        kind,
        wanted: n,
        connect_failures,
        held,
        answered,
        rss_before,
        rss_held,
        open_time,
    })
}

/// Reads `VmRSS` every 500 ms until two readings in a row differ by less
/// than 0.5 % (the server has taken every request), at most 20 s.
async fn settled_rss(server: &Server) -> Result<u64, String> {
    let give_up = Instant::now() + Duration::from_secs(20);
    let mut last = server.rss_bytes()?;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = server.rss_bytes()?;
        if now.abs_diff(last) * 200 < last || Instant::now() > give_up {
            return Ok(now.max(last));
        }
        last = now;
    }
}

// ---------------------------------------------------------------------------
// 5. Size of the frontend.

/// One shipped file.
#[derive(Debug, Clone)]
pub struct Shipped {
    /// File name in `dist/`.
    pub name: &'static str,
    /// Bytes on disk.
    pub raw: u64,
    /// Bytes after gzip (level 6, `gzip`'s default).
    pub gzip: u64,
    /// Bytes the server sends to a browser (every browser accepts gzip):
    /// the `.gz` that `cargo xtask build` writes beside the file (gzip at
    /// its best compression), sent with `Content-Encoding: gzip`.
    pub served: u64,
    /// Bytes after brotli (quality 11, window 22: what a server
    /// precompressing its files would send).
    pub brotli: u64,
}

/// The page's document, which every page downloads: its style sheet, the
/// loader that picks a bundle, and the script that issues the page's own
/// requests (`services/burst.rs`). Counted in each page's size.
pub const DOCUMENT: &str = "index.html";
/// The lesson track, the landing page: what every learner downloads.
pub const LESSON_FILES: [&str; 2] = ["app_bg.wasm", "app.js"];
/// The workbench, a bundle of its own (its own URL, one link away).
pub const WORKBENCH_FILES: [&str; 2] = ["workbench_bg.wasm", "workbench.js"];
/// The instructor's page, a bundle of its own (reported beside them).
pub const INSTRUCTOR_FILES: [&str; 2] = ["instructor_bg.wasm", "instructor.js"];

/// Raw, gzip and brotli sizes of every page's files in `dist/`: the
/// document, then the lesson track's, the workbench's and the instructor's.
pub fn frontend_size(dist: &Path) -> Result<Vec<Shipped>, String> {
    [DOCUMENT]
        .into_iter()
        .chain(LESSON_FILES)
        .chain(WORKBENCH_FILES)
        .chain(INSTRUCTOR_FILES)
        .map(|name| {
            let path = dist.join(name);
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut gz = GzEncoder::new(Vec::new(), Compression::default());
            gz.write_all(&bytes).map_err(|e| e.to_string())?;
            let gzip = gz.finish().map_err(|e| e.to_string())?.len() as u64;
            let mut br = Vec::new();
            let params = brotli::enc::BrotliEncoderParams {
                quality: 11,
                lgwin: 22,
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &bytes[..], &mut br, &params).map_err(|e| e.to_string())?;
            let gz_path = dist.join(format!("{name}.gz"));
            let served = std::fs::metadata(&gz_path)
                .map_err(|e| format!("{}: {e} (`cargo xtask build` writes it)", gz_path.display()))?
                .len();
            Ok(Shipped {
                name,
                raw: bytes.len() as u64,
                gzip,
                served,
                brotli: br.len() as u64,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// 6. Timing fidelity of the server's own events.

/// Figure 6's samples, in µs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fidelity {
    /// Each request's duration as the lab's events tell it.
    pub lab_us: Vec<u64>,
    /// The baseline: a bare wait of the same length in this process, as
    /// the lab's `/api/slow` waits (tokio's timer to 2 ms before the end,
    /// which alone would round up to the next millisecond, then yielding
    /// until the end), started with each request and timed with `Instant`.
    /// A host that runs a waiter late (a pause of the virtual machine, a
    /// core taken by another process) makes this late too; the lab's own
    /// lateness is what the lab adds to it.
    pub bare_us: Vec<u64>,
}

/// Asks a fresh lab for `/api/slow?ms={ms}` `samples` times, one after the
/// other, and returns each request's duration as the lab's events tell it:
/// `response_started.at_us - request_started.at_us`, in µs; beside each, a
/// bare wait of `ms` in this process started at the same moment
/// ([`Fidelity::bare_us`]).
pub async fn timing_fidelity(ms: u64, samples: usize) -> Result<Fidelity, String> {
    let server = Server::start(Kind::Lab, Policy::Bench, None).await?;
    let url = format!("ws://{}/api/events", server.addr);
    let (mut events, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let mut lab_us = Vec::new();
    let mut bare_us = Vec::new();
    for i in 0..samples {
        let tag = format!("fidelity-{i}");
        let path = format!("/api/slow?ms={ms}&id={tag}");
        let addr = server.addr;
        let answer = tokio::spawn(async move { client::request(addr, "GET", &path, "").await });
        let bare = tokio::spawn(async move {
            let from = Instant::now();
            let end = from + Duration::from_millis(ms);
            tokio::time::sleep_until(end - Duration::from_millis(ms.min(2))).await;
            while Instant::now() < end {
                tokio::task::yield_now().await;
            }
            from.elapsed()
        });
        let mut started: Option<(protocol::RequestId, u64)> = None;
        let duration = loop {
            let message = tokio::time::timeout(Duration::from_millis(ms + 5_000), events.next())
                .await
                .map_err(|_| format!("no event for {tag} in time"))?
                .ok_or("the events socket closed")?
                .map_err(|e| format!("events socket: {e}"))?;
            let Message::Text(text) = message else {
                continue;
            };
            match serde_json::from_str::<ServerEvent>(&text) {
                Ok(ServerEvent::RequestStarted {
                    request,
                    target,
                    at_us,
                    ..
                }) if target.ends_with(&format!("id={tag}")) => started = Some((request, at_us)),
                Ok(ServerEvent::ResponseStarted { request, at_us, .. }) => match started {
                    Some((id, from)) if id == request => break at_us.saturating_sub(from),
                    _ => {}
                },
                _ => {}
            }
        };
        let (status, _) = answer.await.map_err(|e| e.to_string())??;
        if status != 200 {
            return Err(format!("/api/slow answered {status}"));
        }
        let bare = bare.await.map_err(|e| e.to_string())?;
        lab_us.push(duration);
        bare_us.push(u64::try_from(bare.as_micros()).unwrap_or(u64::MAX));
    }
    Ok(Fidelity { lab_us, bare_us })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median([]).is_nan());
    }
}
