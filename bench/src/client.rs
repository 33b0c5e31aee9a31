//! Our load client: hyper 1.x HTTP/1.1 over a plain tokio `TcpStream`.
//!
//! - [`request`]: one request on a fresh connection (readiness checks,
//!   `POST /api/release`).
//! - [`keep_alive_load`]: N keep-alive connections, each sending `GET` in a
//!   loop for a fixed time, every latency kept (for p50/p99 by sorting).
//! - [`open_hanging`] and [`read_statuses`]: many connections, each with one
//!   request the server holds (raw bytes: nothing but a socket per connection
//!   on our side).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONNECTION, HOST};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Longest any single request of ours may take before we call it failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// A request to the server at `addr`. `Host` carries the port: the lab
/// refuses a `Host` that is not one of its own origins (DNS rebinding), and
/// `127.0.0.1` alone means port 80.
pub fn build(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> hyper::Request<Full<Bytes>> {
    hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr.to_string())
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap_or_default()
}

/// Sends one request on a new connection; returns the status and body.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, Bytes), String> {
    let exchange = async {
        let mut sender = connect(addr).await?;
        let response = sender
            .send_request(build(addr, method, path, body))
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{method} {path}: body: {e}"))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{method} {path}: no answer in {REQUEST_TIMEOUT:?}"))?
}

/// What one load run measured.
#[derive(Debug, Default)]
pub struct LoadRun {
    /// Requests answered `200` inside the measured window.
    pub requests: u64,
    /// Length of the measured window.
    pub window: Duration,
    /// Their latencies (send to last body byte), nanoseconds, unsorted.
    pub latencies_ns: Vec<u64>,
    /// Requests that failed or were not answered `200`.
    pub failures: u64,
    /// Connections the server closed with `Connection: close` (we reconnect).
    pub reconnects: u64,
}

impl LoadRun {
    /// Requests per second in the measured window.
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.window.as_secs_f64()
    }

    /// `cpu` (a process's CPU time over the window) per request answered, µs.
    pub fn per_request_us(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }
}

/// One connection's share of a load run.
#[derive(Debug, Default)]
struct Worker {
    latencies_ns: Vec<u64>,
    failures: u64,
    reconnects: u64,
}

/// `connections` keep-alive connections send `GET path` back to back until
/// `measure_from + window`; only requests sent at or after `measure_from`
/// and answered before the end count.
pub async fn keep_alive_load(
    addr: SocketAddr,
    path: &'static str,
    connections: usize,
    measure_from: Instant,
    window: Duration,
) -> LoadRun {
    let end = measure_from + window;
    let mut workers = JoinSet::new();
    for _ in 0..connections {
        workers.spawn(worker(addr, path, measure_from, end));
    }
    let mut run = LoadRun {
        window,
        ..LoadRun::default()
    };
    while let Some(joined) = workers.join_next().await {
        let Ok(w) = joined else {
            run.failures += 1;
            continue;
        };
        run.latencies_ns.extend(w.latencies_ns);
        run.failures += w.failures;
        run.reconnects += w.reconnects;
    }
    run.requests = run.latencies_ns.len() as u64;
    run
}

async fn worker(addr: SocketAddr, path: &str, measure_from: Instant, end: Instant) -> Worker {
    let mut w = Worker::default();
    'connections: while Instant::now() < end {
        let mut sender = match connect(addr).await {
            Ok(sender) => sender,
            Err(_) => {
                w.failures += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while Instant::now() < end {
            if sender.ready().await.is_err() {
                continue 'connections;
            }
            let sent = Instant::now();
            let outcome = tokio::time::timeout(REQUEST_TIMEOUT, async {
                let response = sender
                    .send_request(build(addr, "GET", path, ""))
                    .await
                    .ok()?;
                let close = response
                    .headers()
                    .get(CONNECTION)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                let ok = response.status() == 200;
                response.into_body().collect().await.ok()?;
                Some((ok, close))
            })
            .await
            .ok()
            .flatten();
            let done = Instant::now();
            let Some((ok, close)) = outcome else {
                w.failures += 1;
                continue 'connections;
            };
            if !ok {
                w.failures += 1;
            } else if sent >= measure_from && done <= end {
                let ns = u64::try_from((done - sent).as_nanos()).unwrap_or(u64::MAX);
                w.latencies_ns.push(ns);
            }
            if close {
                w.reconnects += 1;
                continue 'connections;
            }
        }
    }
    w
}

/// Connections [`open_hanging`] opens at once, then it pauses for
/// [`BATCH_PAUSE`]. Connecting completes in the kernel before the server
/// accepts; the servers listen with a backlog of 128 (tokio's and std's
/// default), and a SYN arriving while 128 connections wait to be accepted is
/// dropped and retried by the client's kernel only after a second.
pub const BATCH: usize = 50;
/// See [`BATCH`]: time for the server to accept one batch.
pub const BATCH_PAUSE: Duration = Duration::from_millis(5);

/// Opens `n` connections to `addr`, each sending `GET path_for(i)` that the
/// server will hold, [`BATCH`] at a time. Returns the sockets and how many
/// could not be opened.
pub async fn open_hanging(
    addr: SocketAddr,
    n: usize,
    path_for: impl Fn(usize) -> String,
) -> (Vec<TcpStream>, usize) {
    let mut streams = Vec::with_capacity(n);
    let mut failed = 0;
    for first in (0..n).step_by(BATCH) {
        tokio::time::sleep(BATCH_PAUSE).await;
        let mut batch = JoinSet::new();
        for i in first..(first + BATCH).min(n) {
            let head = format!("GET {} HTTP/1.1\r\nHost: {addr}\r\n\r\n", path_for(i));
            batch.spawn(async move {
                let mut stream = TcpStream::connect(addr).await.ok()?;
                stream.write_all(head.as_bytes()).await.ok()?;
                Some(stream)
            });
        }
        while let Some(joined) = batch.join_next().await {
            match joined.ok().flatten() {
                Some(stream) => streams.push(stream),
                None => failed += 1,
            }
        }
    }
    (streams, failed)
}

/// Reads the status line's code from each stream (within `limit`) and counts
/// how many were `200`; closes them all.
pub async fn read_statuses(streams: Vec<TcpStream>, limit: Duration) -> usize {
    let mut readers = JoinSet::new();
    for mut stream in streams {
        readers.spawn(async move {
            let mut head = [0_u8; 12];
            let read = tokio::time::timeout(limit, stream.read_exact(&mut head)).await;
            matches!(read, Ok(Ok(_))) && head.starts_with(b"HTTP/1.1 200")
        });
    }
    let mut ok = 0;
    while let Some(joined) = readers.join_next().await {
        if joined.unwrap_or(false) {
            ok += 1;
        }
    }
    ok
}

/// The `q`-quantile (0..=1) of `values`, which it sorts.
pub fn quantile(values: &mut [u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = (q * (values.len() - 1) as f64).round() as usize;
    values[rank.min(values.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_sorting() {
        let mut v: Vec<u64> = (1..=101).rev().collect();
        assert_eq!(quantile(&mut v, 0.5), 51);
        assert_eq!(quantile(&mut v, 0.99), 100);
        assert_eq!(quantile(&mut v, 0.0), 1);
        assert_eq!(quantile(&mut [], 0.5), 0);
    }
}
