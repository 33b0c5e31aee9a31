//! `keepalive-lab-bench`: measures the lab against plain axum and writes
//! `BENCHMARKS.md`. Usually run by `cargo xtask bench`, which builds the
//! frontend first.
//!
//! Figures (numbered as in issue 5):
//!
//! 1. tracking overhead: keep-alive throughput and latency of `/api/fast`,
//!    the lab's accept loop vs the same router under plain `axum::serve`;
//! 2. held connections: resident memory per connection holding `/api/hang`;
//! 3. event pipeline and 4. frame time in Chromium: need a metrics hook in the
//!    page ([`browser`]);
//! 5. size of the frontend (document + wasm + js, raw, gzip and brotli);
//! 6. timing fidelity: the lab's own measure of `/api/slow?ms=1000`, beside
//!    the same wait in this process at the same moments (the host's part);
//! 7. soak: resident memory and open descriptors of the lab over a bounded
//!    run (10 minutes by default) of a workshop room's mixed traffic
//!    ([`soak`], issue 8);
//! 8. room scale: N participants (sessions, viewers, bursts of hangs released
//!    over the WebSocket) against one lab, for N in `--room` ([`room`], issue 12).
//!
//! Servers run as child processes of this same binary (`--serve`, see
//! [`server`]). All traffic goes to `127.0.0.1`, every loop is bounded in
//! time, and every child is killed when the bench ends.
//!
//! # Layout
//!
//! - [`server`]: the child servers, and their memory and CPU from `/proc`;
//! - [`client`]: the hyper load client and the raw hanging connections;
//! - [`figures`]: figures 1, 2, 5, 6; [`browser`]: figures 3 and 4;
//!   [`soak`]: figure 7; [`room`]: figure 8;
//! - [`report`]: the markdown, the machine, the budgets and known causes;
//! - [`compare`]: `--compare OTHER`, figure 1's load on two builds side by
//!   side (not a figure: a tool for finding what a change costs).

mod browser;
mod client;
mod compare;
mod figures;
mod profile;
mod report;
mod room;
mod server;
mod soak;
mod trace;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use figures::{Series, Variant};
use report::{Results, Settings};
use server::Kind;

const USAGE: &str = "\
usage: keepalive-lab-bench [--out FILE] [--dist DIR] [--quick]
                           [--connections N] [--rounds N] [--seconds S] [--hold N]
                           [--soak-secs N] [--room N,N,...] [--room-secs N]
                           [--only 1,2,...] [--profile PREFIX]
                           [--trace PREFIX] [--dump PREFIX] [--lesson-only]
       keepalive-lab-bench --compare OTHER_BENCH_BINARY [--connections N] [--rounds N]
                           [--seconds S]

  --out FILE        where to write the report (default BENCHMARKS.md)
  --dist DIR        the built frontend, for figures 3-5 (default dist)
  --quick           a short smoke run (1 round of 1 s, 1000 held connections,
                    a 60 s soak)
  --connections N   keep-alive connections for figure 1 (default 32)
  --rounds N        rounds per server for figure 1 (default 5)
  --seconds S       measured seconds per round (default 5)
  --hold N          held connections for figure 2 (default 10000)
  --soak-secs N     length of figure 7's soak in seconds (default 600)
  --room LIST       participants per step of figure 8 (default 50,100,200)
  --room-secs N     measured seconds per step of figure 8 (default 20)
  --only LIST       measure only these figures (e.g. --only 2,6); the others show as skipped
  --profile PREFIX  with figures 3-4, record Chromium's CPU profile of each page in each
                    phase into PREFIX-{lab,bare,drawing}-{light,lesson,load}.cpuprofile and print
                    where its main thread spent its time (build the page with `cargo xtask build
                    --names DIR` and pass --dist DIR, so wasm functions have names)
  --trace PREFIX    with figures 3-4, record a trace of the browser (style, layout, paint,
                    raster and compositing, on every thread of the browser, GPU and page
                    processes) in each phase into PREFIX-{lab,bare,drawing}-{light,lesson,load}.json
                    (Chrome's trace format, for Perfetto) and print the busiest threads and
                    the page's work per burst; tracing costs CPU, so compare traced runs
                    only with traced runs
  --dump PREFIX     with figures 3-4, write each page's raw figures of each phase (every
                    event's latency in the order the page applied it, the first burst's
                    count, every frame interval) into PREFIX-{lab,bare,drawing}-{light,lesson,load}.json
                    (the single bursts of 200 and the load: their first round)
  --lesson-only     figures 3-4 at lesson scale only (about 14 minutes): no load phase (its
                    rows show as skipped); the rounds run the single bursts of 200 alone
  --compare OTHER   instead of the figures: figure 1's load on this build's lab and on the
                    lab of OTHER (another keepalive-lab-bench binary, e.g. a copy built from
                    the commit before), both running at once, --seconds windows (default 2)
                    alternating between them for --rounds rounds (default 12); prints each
                    window's throughput and server CPU per request and the medians;
                    BENCHMARKS.md is not touched";

#[derive(Debug)]
struct Options {
    out: PathBuf,
    dist: PathBuf,
    connections: usize,
    rounds: usize,
    seconds: f64,
    hold: usize,
    slow_samples: usize,
    soak_secs: u64,
    room: Vec<usize>,
    room_secs: u64,
    only: Option<Vec<u8>>,
    /// Where figures 3-4 write the lab page's CPU profiles, if anywhere.
    profile: Option<PathBuf>,
    /// Where figures 3-4 write their browser traces, if anywhere.
    trace: Option<PathBuf>,
    /// Where figures 3-4 write each phase's raw figures, if anywhere.
    dump: Option<PathBuf>,
    /// Figures 3-4 without the load (`--lesson-only`).
    lesson_only: bool,
    /// `--compare`: the other build, instead of the figures.
    compare: Option<PathBuf>,
    /// `--rounds` or `--seconds` were given (`--compare` has its own defaults).
    rounds_given: bool,
    seconds_given: bool,
}

impl Options {
    /// Whether figure `n` is to be measured.
    fn wants(&self, n: u8) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(&n))
    }
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        out: PathBuf::from("BENCHMARKS.md"),
        dist: PathBuf::from("dist"),
        connections: 32,
        rounds: 5,
        seconds: 5.0,
        hold: 10_000,
        slow_samples: 5,
        soak_secs: soak::DEFAULT_SECS,
        room: room::DEFAULT_ROOM.to_vec(),
        room_secs: room::DEFAULT_SECS,
        only: None,
        profile: None,
        trace: None,
        dump: None,
        lesson_only: false,
        compare: None,
        rounds_given: false,
        seconds_given: false,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or(format!("{flag} needs a value\n\n{USAGE}"))
        };
        let number = |v: &String| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(format!("{flag} takes a positive number, not {v}"))
        };
        match flag.as_str() {
            "--out" => o.out = PathBuf::from(value()?),
            "--dist" => o.dist = PathBuf::from(value()?),
            "--quick" => {
                (o.rounds, o.seconds, o.hold, o.slow_samples, o.soak_secs) = (1, 1.0, 1000, 2, 60);
            }
            "--connections" => o.connections = number(value()?)?,
            "--rounds" => {
                o.rounds = number(value()?)?;
                o.rounds_given = true;
            }
            "--seconds" => {
                o.seconds = number(value()?)? as f64;
                o.seconds_given = true;
            }
            "--compare" => o.compare = Some(PathBuf::from(value()?)),
            "--hold" => o.hold = number(value()?)?,
            "--soak-secs" => {
                o.soak_secs = number(value()?)? as u64;
                if o.soak_secs < soak::MIN_SECS {
                    return Err(format!(
                        "--soak-secs takes at least {} (the warm-up is a fifth of the run)",
                        soak::MIN_SECS
                    ));
                }
            }
            "--room" => {
                let list = value()?;
                let sizes = list.split(',').map(|n| {
                    n.trim()
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=1000).contains(n))
                });
                o.room = sizes.collect::<Option<Vec<usize>>>().ok_or(format!(
                    "--room takes room sizes from 1 to 1000 such as 50,100,200, not {list}"
                ))?;
            }
            "--room-secs" => o.room_secs = number(value()?)? as u64,
            "--only" => {
                let list = value()?;
                let figures = list.split(',').map(|n| n.trim().parse::<u8>().ok());
                o.only = Some(figures.collect::<Option<Vec<u8>>>().ok_or(format!(
                    "--only takes figure numbers such as 1,2,6, not {list}"
                ))?);
            }
            "--profile" => o.profile = Some(PathBuf::from(value()?)),
            "--trace" => o.trace = Some(PathBuf::from(value()?)),
            "--dump" => o.dump = Some(PathBuf::from(value()?)),
            "--lesson-only" => o.lesson_only = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown option {other}\n\n{USAGE}")),
        }
    }
    Ok(o)
}

/// The same allocator as the `keepalive-lab` binary, so the servers this
/// bench starts (children of this binary) allocate as the product does.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--serve") {
        return match server::run_child(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let options = match parse(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bench: no tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(other) = &options.compare {
        let rounds = if options.rounds_given {
            options.rounds
        } else {
            12
        };
        let seconds = if options.seconds_given {
            options.seconds
        } else {
            2.0
        };
        return match runtime.block_on(compare::run(other, options.connections, rounds, seconds)) {
            Ok(table) => {
                println!("{table}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("bench: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // The date, machine and commit as the run begins: the code measured.
    let machine = report::machine();
    let results = runtime.block_on(measure(&options));
    let markdown = report::render(&results, &machine);
    if let Err(e) = std::fs::write(&options.out, &markdown) {
        eprintln!("bench: cannot write {}: {e}", options.out.display());
        return ExitCode::FAILURE;
    }
    println!("{markdown}");
    eprintln!("bench: report written to {}", options.out.display());
    ExitCode::SUCCESS
}

async fn measure(o: &Options) -> Results {
    // Each held connection takes a descriptor here and one in the server
    // (which raises its own limit the same way); keep some for everything else.
    let fd_limit = server::raise_fd_limit();
    let hold = o
        .hold
        .min(usize::try_from(fd_limit.saturating_sub(100)).unwrap_or(usize::MAX));
    let settings = Settings {
        connections: o.connections,
        rounds: o.rounds,
        warmup_s: 1.0,
        window_s: o.seconds,
        hold_wanted: o.hold,
        hold,
        fd_limit,
        slow_ms: 1000,
        slow_samples: o.slow_samples,
        soak_s: o.soak_secs,
        room: o.room.clone(),
        room_s: o.room_secs,
    };

    let fidelity = if o.wants(6) {
        eprintln!(
            "bench: 6. timing fidelity ({} × /api/slow?ms=1000)",
            o.slow_samples
        );
        figures::timing_fidelity(settings.slow_ms, o.slow_samples).await
    } else {
        skipped()
    };

    let size = if o.wants(5) {
        eprintln!("bench: 5. frontend size");
        figures::frontend_size(&o.dist)
    } else {
        skipped()
    };

    let load = if o.wants(1) {
        tracking_overhead(&settings).await
    } else {
        skipped()
    };

    let held = if o.wants(2) {
        eprintln!("bench: 2. held connections ({hold} per server)");
        async {
            let lab = figures::held_connections(Kind::Lab, hold).await?;
            eprintln!(
                "bench:    lab: {:.0} B per connection",
                lab.bytes_per_connection()
            );
            let axum = figures::held_connections(Kind::Axum, hold).await?;
            eprintln!(
                "bench:    axum: {:.0} B per connection",
                axum.bytes_per_connection()
            );
            Ok((lab, axum))
        }
        .await
    } else {
        skipped()
    };

    let browser = if o.wants(3) || o.wants(4) {
        eprintln!("bench: 3, 4. event pipeline and frame time in headless Chromium");
        let recording = browser::Recording {
            profile: o.profile.clone(),
            trace: o.trace.clone(),
            dump: o.dump.clone(),
            lesson_only: o.lesson_only,
        };
        browser::event_pipeline_and_frames(&o.dist, recording).await
    } else {
        browser::Browser::NotMeasured(report::SKIPPED.to_owned())
    };

    let soak = if o.wants(7) {
        eprintln!(
            "bench: 7. soak ({} s of a workshop room's mixed traffic)",
            o.soak_secs
        );
        let soak = soak::soak(Duration::from_secs(o.soak_secs)).await;
        match &soak {
            Ok(s) => eprintln!(
                "bench:    RSS drift after warm-up {:+.1} %, fds {} at start, {} at the end",
                s.drift().unwrap_or(f64::NAN) * 100.0,
                s.start().map_or(0, |x| x.fds),
                s.settled().map_or(0, |x| x.fds)
            ),
            Err(e) => eprintln!("bench:    soak failed: {e}"),
        }
        soak
    } else {
        skipped()
    };

    let room = if o.wants(8) {
        eprintln!(
            "bench: 8. room scale ({:?} participants, {} s each)",
            o.room, o.room_secs
        );
        room::room(&o.room, o.room_secs).await
    } else {
        skipped()
    };

    Results {
        settings,
        room,
        load,
        held,
        browser,
        size,
        fidelity,
        soak,
    }
}

/// A figure left out by `--only`.
fn skipped<T>() -> Result<T, String> {
    Err(report::SKIPPED.to_owned())
}

/// Figure 1: rounds alternate between the variants, in a rotating order.
async fn tracking_overhead(s: &Settings) -> Result<Vec<Series>, String> {
    let variants = [Variant::LAB, Variant::AXUM, Variant::LAB_DEFAULT_POLICY];
    let mut series: Vec<Series> = variants
        .iter()
        .map(|v| Series {
            variant: *v,
            rounds: Vec::new(),
            set_aside: Vec::new(),
        })
        .collect();
    let warmup = Duration::from_secs_f64(s.warmup_s);
    let window = Duration::from_secs_f64(s.window_s);
    let count = series.len();
    for round in 1..=s.rounds {
        // The variants take turns in an order that rotates each round, so
        // none is always first after a fresh start or always after the
        // same neighbour.
        for position in 0..count {
            let one = &mut series[(round - 1 + position) % count];
            // A round the machine was taken from (another process, or the
            // hypervisor running another guest) is run again, a bounded
            // number of times; the tries set aside stay in the report.
            let mut tries = 0;
            let r = loop {
                let r = figures::load_round(one.variant, s.connections, warmup, window).await?;
                eprintln!(
                    "bench: 1. round {round}/{} {:?}/{:?}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, {:.1} µs CPU/request (client {:.1}), {:.2} cores taken (steal {:.2})",
                    s.rounds,
                    one.variant.kind,
                    one.variant.policy,
                    r.throughput,
                    r.p50_us,
                    r.p99_us,
                    r.cpu_us_per_request,
                    r.client_cpu_us_per_request,
                    r.disturbance(),
                    r.stolen_load
                );
                if !r.disturbed() || tries == figures::MAX_REPEATS {
                    break r;
                }
                tries += 1;
                eprintln!(
                    "bench: 1. disturbed; running the round again ({tries}/{})",
                    figures::MAX_REPEATS
                );
                one.set_aside.push((round, r));
            };
            one.rounds.push(r);
        }
    }
    Ok(series)
}
