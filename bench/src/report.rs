//! `BENCHMARKS.md`: the machine, the date, and per figure the lab's value,
//! the baseline's, the ratio and whether it is within budget.

use std::fmt::Write as _;
use std::process::Command;

use crate::browser::{
    BURST_EVERY, BURSTS, Browser, HEAVY_BURST, HEAVY_BURSTS, HEAVY_EVERY, HOOK, LESSON_BURSTS,
    LESSON_EVERY, LIGHT_BURST, LONG_FRAME_MS, PageRound, Phase, Phases, ROUNDS,
};

/// Budget of figures 3 and 4 under load (2 000 requests): the lab's page's
/// event p99 and frame p95 over the bare page's, measured in the same run.
const MAX_PAGE_RATIO: f64 = 1.25;
/// Budget of figure 3 at lesson scale: event p99, ms (two 60 Hz frames).
const LESSON_EVENT_P99_MS: f64 = 33.0;
/// Budget of figure 4 at lesson scale: the longest frame interval, ms.
const LESSON_MAX_FRAME_MS: f64 = 50.0;
use crate::client;
use crate::figures::{
    DISTURBED_CORES, DOCUMENT, Fidelity, Held, INSTRUCTOR_FILES, LESSON_FILES, MAX_REPEATS, Round,
    Series, Shipped, Variant, WORKBENCH_FILES,
};
use crate::room;
use crate::server::{self, Kind};
use crate::soak::{self, STUCK_KINDS, Soak, When};

/// Budget of figure 1: the lab's throughput over plain axum's.
pub const MIN_THROUGHPUT_RATIO: f64 = 0.90;
/// Budget of figure 2: resident bytes per held connection (1 KB = 1000 B).
pub const MAX_BYTES_PER_HELD: f64 = 10_000.0;
/// Budget of figure 2: the lab's bytes per held connection over plain axum's.
pub const MAX_HELD_RATIO: f64 = 1.25;
/// Budget of figure 5: document + wasm + js after gzip, bytes (1 KB = 1000 B).
pub const MAX_GZIP_BYTES: u64 = 150_000;
/// Budget of figure 6: largest error of a server-measured duration, µs.
pub const MAX_TIMING_ERROR_US: u64 = 1_000;
/// Budget of figure 7: RSS growth after warm-up, as a fraction (see
/// [`Soak::drift`]).
pub const MAX_RSS_DRIFT: f64 = 0.05;

/// How the figures were taken (echoed in the report).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Keep-alive connections in figure 1.
    pub connections: usize,
    /// Rounds per variant in figure 1.
    pub rounds: usize,
    /// Unmeasured warm-up per round, seconds.
    pub warmup_s: f64,
    /// Measured window per round, seconds.
    pub window_s: f64,
    /// Connections asked for in figure 2.
    pub hold_wanted: usize,
    /// Connections actually attempted (the descriptor limit may cap it).
    pub hold: usize,
    /// The bench's open-file limit after raising it.
    pub fd_limit: u64,
    /// What `/api/slow` was asked to take in figure 6, ms.
    pub slow_ms: u64,
    /// Requests in figure 6.
    pub slow_samples: usize,
    /// Length of figure 7's soak, seconds.
    pub soak_s: u64,
    /// Participants per step of figure 8.
    pub room: Vec<usize>,
    /// Measured seconds per step of figure 8.
    pub room_s: u64,
}

/// Everything measured in one run; an `Err` is a figure that could not be taken.
#[derive(Debug)]
pub struct Results {
    /// How.
    pub settings: Settings,
    /// Figure 1: one series per variant.
    pub load: Result<Vec<Series>, String>,
    /// Figure 2: lab, then plain axum.
    pub held: Result<(Held, Held), String>,
    /// Figures 3 and 4.
    pub browser: Browser,
    /// Figure 5.
    pub size: Result<Vec<Shipped>, String>,
    /// Figure 6: durations in µs, the lab's and a bare wait's.
    pub fidelity: Result<Fidelity, String>,
    /// Figure 7.
    pub soak: Result<Soak, String>,
    /// Figure 8: one step per room size.
    pub room: Result<Vec<room::Step>, String>,
}

/// The causes found for figures that miss their budget: `## Figure N`
/// sections of `causes.md`, written after analysing each miss.
const CAUSES: &str = include_str!("causes.md");

/// The analysed cause of figure `n`'s miss, if one is written down.
fn known_cause(n: u8) -> Option<&'static str> {
    CAUSES.split("\n## Figure ").skip(1).find_map(|section| {
        let (number, text) = section.split_once('\n')?;
        (number.trim() == n.to_string()).then_some(text.trim())
    })
}

/// Why a figure was not taken when `--only` left it out.
pub const SKIPPED: &str = "skipped (--only)";

/// The last column for a figure that could not be taken.
fn not_taken(e: &str) -> &'static str {
    if e == SKIPPED { "skipped" } else { "**NO**" }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "**yes**" } else { "**NO**" }
}

/// Groups thousands with thin spaces: 12345 → "12 345".
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

fn kb(bytes: f64) -> String {
    format!("{:.2} KB", bytes / 1000.0)
}

/// The sample furthest from `asked_us` (figure 6); 0 for none.
fn worst_of(samples: &[u64], asked_us: u64) -> u64 {
    samples
        .iter()
        .copied()
        .max_by_key(|d| d.abs_diff(asked_us))
        .unwrap_or(0)
}

fn us(value: f64) -> String {
    if value.is_nan() {
        "—".to_owned()
    } else if value >= 1000.0 {
        format!("{:.2} ms", value / 1000.0)
    } else if value >= 100.0 {
        format!("{value:.0} µs")
    } else {
        format!("{value:.1} µs")
    }
}

/// Milliseconds with one decimal, or a dash when there is no value.
fn ms(value: f64) -> String {
    if value.is_nan() {
        "—".to_owned()
    } else {
        format!("{value:.1} ms")
    }
}

/// "first", "second", "third" (a page's place in its round; the bench has
/// three pages).
fn ordinal(n: usize) -> String {
    match n {
        1 => "first".to_owned(),
        2 => "second".to_owned(),
        3 => "third".to_owned(),
        n => format!("number {n}"),
    }
}

/// Lab over baseline.
fn ratio(lab: f64, base: f64) -> String {
    format!("{:.3}×", lab / base)
}

/// The three pages of figures 3 and 4, as measured in one run.
struct Pages<'a> {
    /// The lab's page.
    lab: &'a Phases,
    /// The bare page: the baseline of the budgets under load.
    bare: &'a Phases,
    /// The bare page with its cheap live picture: what any page that draws
    /// the run at its frames gets (information beside the budgets).
    drawing: &'a Phases,
}

/// What the summary calls the bare page with its live picture.
const DRAWING: &str = "the bare page with a live picture";

/// One lesson-scale phase of the three pages, named for the summary: each
/// page's rounds of it (once per round, [`ROUNDS`]; one when profiled or
/// traced). Its figures are the medians of the rounds.
struct Scale<'a> {
    /// "bursts of 12", "single bursts of 200".
    what: String,
    /// The lab page's rounds.
    lab: Vec<&'a Phase>,
    /// The bare page's.
    bare: Vec<&'a Phase>,
    /// The bare page's with its picture.
    drawing: Vec<&'a Phase>,
}

impl Scale<'_> {
    /// " (median of N rounds)" when there is more than one, else nothing.
    fn rounds(&self) -> String {
        match self.lab.len() {
            0 | 1 => String::new(),
            n => format!(" (median of {n} rounds)"),
        }
    }
}

/// The median of `figure` over `rounds`.
fn median_of(rounds: &[&Phase], figure: impl Fn(&Phase) -> f64) -> f64 {
    crate::figures::median(rounds.iter().map(|p| figure(p)))
}

/// The two lesson-scale phases of the three pages.
fn lesson_phases<'a>(p: &Pages<'a>) -> [Scale<'a>; 2] {
    let burst = p.lab.lesson.first().map_or(HEAVY_BURST, |l| l.phase.burst);
    let light = p.lab.light.first().map_or(LIGHT_BURST, |l| l.phase.burst);
    [
        Scale {
            what: format!("bursts of {light}"),
            lab: p.lab.light_rounds(),
            bare: p.bare.light_rounds(),
            drawing: p.drawing.light_rounds(),
        },
        Scale {
            what: format!("single bursts of {burst}"),
            lab: p.lab.lesson_rounds(),
            bare: p.bare.lesson_rounds(),
            drawing: p.drawing.lesson_rounds(),
        },
    ]
}

/// Figures 3 and 4's rows of the summary: under load against the bare page,
/// and at lesson scale against the absolute budgets; beside each, the bare
/// page with a live picture, for information.
fn browser_rows(w: &mut String, pages: &Pages<'_>, misses: &mut Vec<(u8, String)>) {
    let Pages { lab, bare, drawing } = *pages;
    let q = Phase::quantile;
    let max = |p: &Phase| q(&p.frames_ms, 1.0);
    let rounds = lab.heavy.len();
    let load = format!(
        "{} requests in bursts of {HEAVY_BURST} `/api/fast`, {} ms apart, fired by the page{}",
        HEAVY_BURST * HEAVY_BURSTS,
        HEAVY_EVERY.as_millis(),
        match rounds {
            0 => String::new(),
            1 => "; median of 1 round".to_owned(),
            n => format!("; median of {n} rounds"),
        }
    );
    // No load round on any page: `--lesson-only` (its rows show as skipped).
    let loaded = [lab, bare, drawing].iter().all(|p| !p.heavy.is_empty());
    let empty = [lab, bare, drawing].iter().any(|p| {
        p.light.is_empty() || p.lesson.is_empty() || p.all().any(|p| p.latencies_ms.is_empty())
    });
    if empty {
        let why = format!(
            "a page's `{HOOK}.eventLatencyMs` stayed empty while its events arrived \
             (the lab page's `clockUncertaintyMs`: {})",
            lab.all()
                .find_map(|p| p.clock_uncertainty_ms)
                .map_or("null".to_owned(), |u| format!("{u:.1} ms"))
        );
        misses.push((3, format!("not measured: {why}")));
        let _ = writeln!(
            w,
            "| 3 | event pipeline: server stamp to applied in the page | not measured: {why} | | | | not measured |"
        );
    } else {
        if loaded {
            load_event_rows(w, pages, &load, misses);
        } else {
            skipped_load_row(
                w,
                3,
                "event pipeline: server stamp to applied in the page",
                &load,
            );
        }
        lesson_event_rows(w, pages, misses);
    }
    if loaded {
        load_frame_rows(w, pages, &load, misses);
    } else {
        skipped_load_row(w, 4, "frame interval in Chromium", &load);
    }
    for scale in lesson_phases(pages) {
        if scale.lab.is_empty() {
            continue;
        }
        let what = &scale.what;
        let (l, b) = (median_of(&scale.lab, max), median_of(&scale.bare, max));
        let ok = l <= LESSON_MAX_FRAME_MS;
        if !ok {
            misses.push((
                4,
                format!(
                    "lesson scale, {what}: a frame of {}{}{}",
                    ms(l),
                    floor_note("the bare page", b, LESSON_MAX_FRAME_MS),
                    floor_note(DRAWING, median_of(&scale.drawing, max), LESSON_MAX_FRAME_MS)
                ),
            ));
        }
        let _ = writeln!(
            w,
            "| 4 | frame interval at lesson scale, {what}: longest{} | {} | {} (bare page{}) | {} | ≤ {LESSON_MAX_FRAME_MS:.0} ms | {} |",
            scale.rounds(),
            ms(l),
            ms(b),
            over_too(b, LESSON_MAX_FRAME_MS),
            ratio(l, b),
            verdict(ok)
        );
        if scale.lab.len() > 1 {
            let worst = |rounds: &[&Phase]| rounds.iter().map(|p| max(p)).fold(f64::NAN, f64::max);
            let _ = writeln!(
                w,
                "| 4 | the same, {what}: the longest frame of any round | {} | {} (bare page) | {} | none | (information) |",
                ms(worst(&scale.lab)),
                ms(worst(&scale.bare)),
                ratio(worst(&scale.lab), worst(&scale.bare))
            );
        }
    }
}

/// Figure 3 or 4's row under load when `--lesson-only` left the load out.
fn skipped_load_row(w: &mut String, n: u8, what: &str, load: &str) {
    let budget = load_budget(n);
    let _ = writeln!(
        w,
        "| {n} | {what}, under load ({load}) | skipped (--lesson-only) | | | {budget} | skipped |"
    );
}

/// The budget under load of figure 3 (event latency p99) or 4 (frame
/// interval p95), as its row states it, measured or skipped.
fn load_budget(n: u8) -> String {
    let quantile = if n == 3 { "p99" } else { "p95" };
    format!("{quantile} ≤ {MAX_PAGE_RATIO:.2}× the bare page's")
}

/// Figure 3's rows under load: the lab page against the bare page (the
/// budget), beside the bare page with a live picture, and what its socket
/// handed over.
fn load_event_rows(w: &mut String, pages: &Pages<'_>, load: &str, misses: &mut Vec<(u8, String)>) {
    let Pages { lab, bare, drawing } = *pages;
    let q = Phase::quantile;
    let latency = |p: &Phases, x| p.load_median(|r| q(&r.latencies_ms, x));
    let (l50, l99) = (latency(lab, 0.5), latency(lab, 0.99));
    let (b50, b99) = (latency(bare, 0.5), latency(bare, 0.99));
    let d99 = latency(drawing, 0.99);
    let ok = l99 <= MAX_PAGE_RATIO * b99;
    if !ok {
        misses.push((
            3,
            format!(
                "under load p99 {} of the bare page's ({DRAWING}: {} of the bare page's; \
                     the lab page {} of it)",
                ratio(l99, b99),
                ratio(d99, b99),
                ratio(l99, d99)
            ),
        ));
    }
    let _ = writeln!(
        w,
        "| 3 | event pipeline: server stamp to applied in the page, p50 / p99 ({load}) | {} / {} | {} / {} (bare page) | {} (p99) | {} | {} |",
        ms(l50),
        ms(l99),
        ms(b50),
        ms(b99),
        ratio(l99, b99),
        load_budget(3),
        verdict(ok)
    );
    let _ = writeln!(
        w,
        "| 3 | the same under load, beside {DRAWING} (`/bare.html?draw`: 60 bars and a line of counts, applied at its frames): p50 / p99 | {} / {} | {} / {} ({DRAWING}) | {} (p99) | none | (information) |",
        ms(l50),
        ms(l99),
        ms(latency(drawing, 0.5)),
        ms(d99),
        ratio(l99, d99)
    );
    // What the browser delivered to the lab page under load, before the
    // wait for the frame that applies it (the bare page's figure is on
    // arrival already).
    if lab.heavy.iter().all(|l| !l.phase.received_ms.is_empty()) {
        information(
            w,
            "the same under load: server stamp to handed to the page by its socket, before the page's batch: p99",
            lab.load_median(|r| q(&r.received_ms, 0.99)),
            (b99, "bare page, on arrival"),
        );
    }
    // When a learner can first see it: the frame after the page applied it.
    if lab.heavy.iter().all(|l| !l.phase.painted_ms.is_empty()) {
        information(
            w,
            PAINTED_UNDER_LOAD,
            lab.load_median(|r| q(&r.painted_ms, 0.99)),
            (bare.load_median(|r| q(&r.painted_ms, 0.99)), "bare page"),
        );
    }
}

/// The row of the frame after the page applied an event, under load.
const PAINTED_UNDER_LOAD: &str = "the same under load: server stamp to the first frame after the page applied it (the earliest frame that shows it; the bare page: had it): p99";

/// Figure 3's rows at lesson scale, against the absolute budget: each
/// figure the median of its rounds, and the slowest round beside it.
fn lesson_event_rows(w: &mut String, pages: &Pages<'_>, misses: &mut Vec<(u8, String)>) {
    let q = Phase::quantile;
    let p99 = |p: &Phase| q(&p.latencies_ms, 0.99);
    for scale in lesson_phases(pages) {
        let what = &scale.what;
        let (l99, b99) = (median_of(&scale.lab, p99), median_of(&scale.bare, p99));
        let d99 = median_of(&scale.drawing, p99);
        let ok = l99 <= LESSON_EVENT_P99_MS;
        if !ok {
            // Whether a page that does none of the lab page's work misses
            // it too: the bare page, and the cheapest page that draws the
            // run at its frames, as the lab page does.
            misses.push((
                3,
                format!(
                    "lesson scale, {what}: p99 {}{}{}",
                    ms(l99),
                    floor_note("the bare page", b99, LESSON_EVENT_P99_MS),
                    floor_note(DRAWING, d99, LESSON_EVENT_P99_MS)
                ),
            ));
        }
        let _ = writeln!(
            w,
            "| 3 | event pipeline at lesson scale, {what}: p99{} | {} | {} (bare page{}) | {} | p99 ≤ {LESSON_EVENT_P99_MS:.0} ms | {} |",
            scale.rounds(),
            ms(l99),
            ms(b99),
            over_too(b99, LESSON_EVENT_P99_MS),
            ratio(l99, b99),
            verdict(ok)
        );
        // The round the host was slowest in, shown, judging nothing.
        if scale.lab.len() > 1 {
            let slowest =
                |rounds: &[&Phase]| rounds.iter().map(|p| p99(p)).fold(f64::NAN, f64::max);
            information(
                w,
                &format!("the same, {what}: the slowest round's p99"),
                slowest(&scale.lab),
                (slowest(&scale.bare), "bare page"),
            );
        }
        // Where the lateness is: before the page's code sees the event
        // (the browser's delivery, held up by the page's frames) or in
        // the wait for the page's next flush.
        if scale.lab.iter().all(|p| !p.received_ms.is_empty()) {
            information(
                w,
                &format!(
                    "the same, {what}: server stamp to handed to the page by its socket, before the page's batch: p99"
                ),
                median_of(&scale.lab, |p| q(&p.received_ms, 0.99)),
                (b99, "bare page, on arrival"),
            );
        }
        if scale.lab.iter().all(|p| !p.painted_ms.is_empty()) {
            let painted = |rounds: &[&Phase]| median_of(rounds, |p| q(&p.painted_ms, 0.99));
            information(
                w,
                &format!(
                    "the same, {what}: server stamp to the first frame after the page applied it (the earliest frame that shows it; the bare page: had it): p99"
                ),
                painted(&scale.lab),
                (painted(&scale.bare), "bare page"),
            );
        }
        information(
            w,
            &format!("the same, {what}, beside {DRAWING}: p99"),
            l99,
            (
                d99,
                &format!("{DRAWING}{}", over_too(d99, LESSON_EVENT_P99_MS)),
            ),
        );
        // Where in the phase the worst events were: the first burst is
        // the lab page's first run of that size (new rows, table and
        // run list laid out, their fonts resolved, their code compiled).
        if scale.lab.iter().all(|p| !p.later_bursts_ms.is_empty()) {
            let first = |p: &Phase| p.first_burst_ms.last().copied().unwrap_or(f64::NAN);
            let later = |p: &Phase| q(&p.later_bursts_ms, 0.99);
            information(
                w,
                &format!(
                    "the same, {what}: the phase's first burst (on the lab page, its first run of that size), worst event"
                ),
                median_of(&scale.lab, first),
                (median_of(&scale.bare, first), "bare page"),
            );
            information(
                w,
                &format!("the same, {what}: the later bursts (all but the first), p99"),
                median_of(&scale.lab, later),
                (median_of(&scale.bare, later), "bare page"),
            );
        }
    }
}

/// Figure 4's rows under load: the lab page against the bare page (the
/// budget) and beside the bare page with a live picture.
fn load_frame_rows(w: &mut String, pages: &Pages<'_>, load: &str, misses: &mut Vec<(u8, String)>) {
    let Pages { lab, bare, drawing } = *pages;
    let q = Phase::quantile;
    let frame = |p: &Phases, x| p.load_median(|r| q(&r.frames_ms, x));
    let (f95, g95) = (frame(lab, 0.95), frame(bare, 0.95));
    let ok = f95 <= MAX_PAGE_RATIO * g95;
    if !ok {
        misses.push((
            4,
            format!("under load p95 {} of the bare page's", ratio(f95, g95)),
        ));
    }
    // p50 / p95 (medians of the rounds), and the frames over the line of
    // all the rounds' frames.
    let frames = |p: &Phases| {
        let all = p.heavy.iter().map(|l| &l.phase);
        format!(
            "{} / {}, {} of {}",
            ms(frame(p, 0.5)),
            ms(frame(p, 0.95)),
            all.clone().map(Phase::long_frames).sum::<usize>(),
            all.map(|r| r.frames_ms.len()).sum::<usize>()
        )
    };
    let _ = writeln!(
        w,
        "| 4 | frame interval in Chromium, p50 / p95, frames over {LONG_FRAME_MS:.0} ms ({load}) | {} | {} (bare page) | {} (p95) | {} | {} |",
        frames(lab),
        frames(bare),
        ratio(f95, g95),
        load_budget(4),
        verdict(ok)
    );
    let _ = writeln!(
        w,
        "| 4 | the same under load, beside {DRAWING}: p50 / p95, frames over {LONG_FRAME_MS:.0} ms | {} | {} ({DRAWING}) | {} (p95) | none | (information) |",
        frames(lab),
        frames(drawing),
        ratio(f95, frame(drawing, 0.95))
    );
}

/// A row of figure 3 for information, judged by no budget: `what`, the lab
/// page's `lab_ms` and a `base` page's milliseconds beside it.
fn information(w: &mut String, what: &str, lab_ms: f64, (base_ms, base): (f64, &str)) {
    let _ = writeln!(
        w,
        "| 3 | {what} | {} | {} ({base}) | {} | none | (information) |",
        ms(lab_ms),
        ms(base_ms),
        ratio(lab_ms, base_ms)
    );
}

/// For the baseline column of a lesson-scale budget in milliseconds: a note
/// when the bare page, which does none of the lab page's work (or the bare
/// page with its live picture, which does the least a page drawing the run
/// at its frames can), is itself over `budget` in the same run (the budget
/// is then under what this browser on this machine gives such a page;
/// `causes.md`).
fn over_too(bare_ms: f64, budget: f64) -> &'static str {
    if bare_ms > budget {
        ", itself over the budget"
    } else {
        ""
    }
}

/// The same, for the list of misses.
fn floor_note(page: &str, page_ms: f64, budget: f64) -> String {
    if page_ms > budget {
        format!(" ({page}: {}, over {budget:.0} ms too)", ms(page_ms))
    } else {
        String::new()
    }
}

fn series(load: &[Series], variant: Variant) -> Option<&Series> {
    load.iter().find(|s| s.variant == variant)
}

/// Builds the whole report; `machine` is [`machine`] as read when the run
/// began (the code measured is the code checked out then).
pub fn render(results: &Results, machine: &[(&'static str, String)]) -> String {
    let s = &results.settings;
    let mut md = String::new();
    let mut misses: Vec<(u8, String)> = Vec::new();
    let w = &mut md;
    let _ = writeln!(w, "# Benchmarks\n");
    let _ = writeln!(
        w,
        "Written by `cargo xtask bench` (the harness is `bench/`). One run on one machine: \
         the bench client and the server under test share its cores, so absolute numbers are \
         this machine's; the ratios are the point. 1 KB = 1000 bytes.\n"
    );
    for (name, value) in machine {
        let _ = writeln!(w, "- **{name}**: {value}");
    }

    let _ = writeln!(w, "\n## Summary\n");
    let _ = writeln!(
        w,
        "| # | figure | lab | baseline | ratio | budget | within budget |\n|---|---|---|---|---|---|---|"
    );

    // 1.
    match &results.load {
        Ok(load) => {
            if let (Some(lab), Some(axum)) =
                (series(load, Variant::LAB), series(load, Variant::AXUM))
            {
                let (l, a) = (lab.median(|r| r.throughput), axum.median(|r| r.throughput));
                let ok = l / a >= MIN_THROUGHPUT_RATIO;
                if !ok {
                    misses.push((1, format!("throughput {} of plain axum's", ratio(l, a))));
                }
                let _ = writeln!(
                    w,
                    "| 1 | `/api/fast` keep-alive throughput, {} connections | {} req/s | {} req/s (plain axum) | {} | ≥ {MIN_THROUGHPUT_RATIO:.2}× | {} |",
                    s.connections,
                    grouped(l as u64),
                    grouped(a as u64),
                    ratio(l, a),
                    verdict(ok)
                );
                for (label, field) in [
                    ("latency p50", (|r: &Round| r.p50_us) as fn(&Round) -> f64),
                    ("latency p99", |r: &Round| r.p99_us),
                    ("server CPU per request", |r: &Round| r.cpu_us_per_request),
                    (
                        "load client CPU per request (on the same cores)",
                        |r: &Round| r.client_cpu_us_per_request,
                    ),
                ] {
                    let (l, a) = (lab.median(field), axum.median(field));
                    let _ = writeln!(
                        w,
                        "| 1 | {label} | {} | {} | {} | none | (information) |",
                        us(l),
                        us(a),
                        ratio(l, a)
                    );
                }
                if let Some(default) = series(load, Variant::LAB_DEFAULT_POLICY) {
                    let d = default.median(|r| r.throughput);
                    let _ = writeln!(
                        w,
                        "| 1 | throughput, lab with its default policy (`max_requests` 100) | {} req/s | {} req/s | {} | none | (information) |",
                        grouped(d as u64),
                        grouped(a as u64),
                        ratio(d, a)
                    );
                }
            }
        }
        Err(e) => {
            if e != SKIPPED {
                misses.push((1, format!("not measured: {e}")));
            }
            let _ = writeln!(
                w,
                "| 1 | tracking overhead | failed: {e} | | | ≥ {MIN_THROUGHPUT_RATIO:.2}× | {} |",
                not_taken(e)
            );
        }
    }

    // 2.
    match &results.held {
        Ok((lab, axum)) => {
            let (l, a) = (lab.bytes_per_connection(), axum.bytes_per_connection());
            let ok = l <= MAX_BYTES_PER_HELD && l / a <= MAX_HELD_RATIO;
            if !ok {
                misses.push((
                    2,
                    format!(
                        "{} per held connection, {} of plain axum's",
                        kb(l),
                        ratio(l, a)
                    ),
                ));
            }
            let _ = writeln!(
                w,
                "| 2 | resident memory per held connection ({} held) | {} | {} (plain axum) | {} | ≤ 10 KB and ≤ {MAX_HELD_RATIO:.2}× | {} |",
                grouped(lab.held as u64),
                kb(l),
                kb(a),
                ratio(l, a),
                verdict(ok)
            );
        }
        Err(e) => {
            if e != SKIPPED {
                misses.push((2, format!("not measured: {e}")));
            }
            let _ = writeln!(
                w,
                "| 2 | held connections | failed: {e} | | | ≤ 10 KB and ≤ {MAX_HELD_RATIO:.2}× | {} |",
                not_taken(e)
            );
        }
    }

    // 3, 4.
    match &results.browser {
        Browser::Measured { lab, bare, drawing } => {
            browser_rows(w, &Pages { lab, bare, drawing }, &mut misses)
        }
        Browser::NotMeasured(why) => {
            for (n, name) in [(3, "event pipeline"), (4, "frame time in Chromium")] {
                let _ = writeln!(
                    w,
                    "| {n} | {name} | not measured: {why} | | | | not measured |"
                );
            }
        }
    }

    // 5.
    match &results.size {
        Ok(files) => {
            for (page, names) in [
                ("lesson track (the landing page)", LESSON_FILES),
                ("workbench (a bundle of its own)", WORKBENCH_FILES),
            ] {
                let size = page_size(files, &names);
                let ok = size.served <= MAX_GZIP_BYTES;
                if !ok {
                    misses.push((5, format!("{page}: {} gzip", kb(size.served as f64))));
                }
                let _ = writeln!(
                    w,
                    "| 5 | {page}, document + wasm + js as the server sends them, gzip (raw {}, gzip -6 {}, brotli {}) | {} | none | | ≤ 150 KB gzip | {} |",
                    kb(size.raw as f64),
                    kb(size.gzip as f64),
                    kb(size.brotli as f64),
                    kb(size.served as f64),
                    verdict(ok)
                );
            }
            let size = page_size(files, &INSTRUCTOR_FILES);
            let _ = writeln!(
                w,
                "| 5 | instructor's page (a bundle of its own), document + wasm + js as sent, gzip (raw {}, gzip -6 {}, brotli {}) | {} | none | | none | (information) |",
                kb(size.raw as f64),
                kb(size.gzip as f64),
                kb(size.brotli as f64),
                kb(size.served as f64),
            );
        }
        Err(e) => {
            if e != SKIPPED {
                misses.push((5, format!("not measured: {e}")));
            }
            let _ = writeln!(
                w,
                "| 5 | frontend size | failed: {e} | | | ≤ 150 KB gzip | {} |",
                not_taken(e)
            );
        }
    }

    // 6.
    let asked_us = s.slow_ms * 1000;
    match &results.fidelity {
        Ok(f) if !f.lab_us.is_empty() => {
            let durations = &f.lab_us;
            let worst = worst_of(durations, asked_us);
            let ok = worst.abs_diff(asked_us) <= MAX_TIMING_ERROR_US;
            if !ok {
                misses.push((
                    6,
                    format!("worst {} for {} ms", us(worst as f64), s.slow_ms),
                ));
            }
            let _ = writeln!(
                w,
                "| 6 | server-measured `/api/slow?ms={}` (worst of {}) | {} | {} ms (asked) | {} | within 1 ms | {} |",
                s.slow_ms,
                durations.len(),
                us(worst as f64),
                s.slow_ms,
                ratio(worst as f64, asked_us as f64),
                verdict(ok)
            );
            if !f.bare_us.is_empty() {
                let bare = worst_of(&f.bare_us, asked_us);
                let _ = writeln!(
                    w,
                    "| 6 | the baseline: a bare wait of {} ms in the bench process, as the lab's \
                     (tokio's timer, then yielding to the end), started with each request (worst \
                     of {}) | {} | {} ms (asked) | {} | none | (information) |",
                    s.slow_ms,
                    f.bare_us.len(),
                    us(bare as f64),
                    s.slow_ms,
                    ratio(bare as f64, asked_us as f64),
                );
            }
        }
        Ok(_) | Err(_) => {
            let e = results
                .fidelity
                .as_ref()
                .err()
                .cloned()
                .unwrap_or_else(|| "no sample".to_owned());
            if e != SKIPPED {
                misses.push((6, format!("not measured: {e}")));
            }
            let _ = writeln!(
                w,
                "| 6 | timing fidelity | failed: {e} | | | within 1 ms | {} |",
                not_taken(&e)
            );
        }
    }

    // 7.
    soak_summary(w, results, &mut misses);

    // 8.
    room_summary(w, results, &mut misses);

    if let Ok(load) = &results.load {
        let kept = || load.iter().flat_map(|s| s.rounds.iter());
        let worst = kept().map(Round::disturbance).fold(0.0_f64, f64::max);
        if worst > DISTURBED_CORES {
            let stolen = kept().map(|r| r.stolen_load).fold(0.0_f64, f64::max);
            let other = kept().map(|r| r.other_load).fold(0.0_f64, f64::max);
            let _ = writeln!(
                w,
                "\n**Figure 1 was disturbed**: even after running disturbed rounds again (up to \
                 {MAX_REPEATS} times each), a round kept lost up to {worst:.2} of the machine's \
                 cores (the hypervisor took up to {stolen:.2} for other guests, other processes \
                 here up to {other:.2}; see its table). Its throughput and latency are then \
                 unreliable, and its CPU per request rises too (the neighbours share the caches). \
                 Re-run `cargo xtask bench` on an idle machine."
            );
        }
    }

    if let Browser::Measured { lab, bare, drawing } = &results.browser {
        let stolen = [lab, bare, drawing]
            .into_iter()
            .flat_map(|p| p.all())
            .map(|p| p.stolen_cores)
            .fold(0.0_f64, f64::max);
        if stolen > DISTURBED_CORES {
            let _ = writeln!(
                w,
                "\n**Figures 3 and 4 were disturbed**: the hypervisor took up to {stolen:.2} of the \
                 machine's cores for other guests during a phase (see the *steal* column). A phase \
                 measured once (the bursts of 12) is then unreliable; the medians of rounds less so."
            );
        }
    }

    if let Ok(steps) = &results.room {
        let worst = steps
            .iter()
            .map(|st| st.other_load + st.stolen_load)
            .fold(0.0_f64, f64::max);
        if worst > DISTURBED_CORES {
            let stolen = steps
                .iter()
                .map(|st| st.stolen_load)
                .fold(0.0_f64, f64::max);
            let _ = writeln!(
                w,
                "\n**Figure 8 was disturbed**: a step lost up to {worst:.2} of the machine's \
                 cores (of which the hypervisor took up to {stolen:.2} for other guests; see its \
                 table). The simulated room and the server share the cores, so its latencies are \
                 then unreliable. Re-run on an idle machine."
            );
        }
    }

    details(w, results);

    let _ = writeln!(w, "\n## Why figures miss their budget\n");
    if misses.is_empty() {
        let _ = writeln!(w, "Every measured figure is within its budget.");
    }
    let mut explained: Vec<u8> = Vec::new();
    for (figure, what) in &misses {
        let _ = writeln!(w, "### Figure {figure}: {what}\n");
        if explained.contains(figure) {
            let _ = writeln!(
                w,
                "The cause is given above, under this figure's first miss.\n"
            );
            continue;
        }
        explained.push(*figure);
        match known_cause(*figure) {
            Some(cause) => {
                let _ = writeln!(w, "{cause}\n");
            }
            None => {
                let _ = writeln!(
                    w,
                    "Cause not analysed yet (add it to `bench/src/causes.md`).\n"
                );
            }
        }
    }
    md
}

/// Figure 7's rows of the summary.
fn soak_summary(w: &mut String, results: &Results, misses: &mut Vec<(u8, String)>) {
    const BUDGET: &str = "RSS ≤ +5 % after warm-up; descriptors back to the start value";
    let soak = match &results.soak {
        Ok(soak) => soak,
        Err(e) => {
            if e != SKIPPED {
                misses.push((7, format!("not measured: {e}")));
            }
            let _ = writeln!(
                w,
                "| 7 | soak | failed: {e} | | | {BUDGET} | {} |",
                not_taken(e)
            );
            return;
        }
    };
    let t = &soak.tally;
    let workload = format!(
        "{} s of a workshop room's traffic: {} sessions, {} requests, {} aborts, {} viewers, {} stuck clients",
        soak.duration.as_secs(),
        grouped(t.sessions),
        grouped(t.requests()),
        t.aborted_hangs + t.aborted_drips,
        grouped(t.viewers),
        t.stuck_started()
    );
    let mut missed = Vec::new();
    match (soak.warm_rss(), soak.end_rss(), soak.drift()) {
        (Some(warm), Some(end), Some(drift)) => {
            let ok = drift <= MAX_RSS_DRIFT;
            if !ok {
                missed.push(format!("RSS {:+.1} % after warm-up", drift * 100.0));
            }
            let _ = writeln!(
                w,
                "| 7 | soak: RSS at the end of the run vs after warm-up ({workload}) | {} ({:+.1} %) | {} after warm-up ({}) | {} | ≤ +{:.0} % | {} |",
                mb(end),
                drift * 100.0,
                mb(warm),
                readings_span(&soak.after_warmup()),
                ratio(end as f64, warm as f64),
                MAX_RSS_DRIFT * 100.0,
                verdict(ok)
            );
        }
        _ => {
            missed.push("RSS not read".to_owned());
            let _ = writeln!(
                w,
                "| 7 | soak: RSS drift ({workload}) | not read | | | ≤ +{:.0} % | **NO** |",
                MAX_RSS_DRIFT * 100.0
            );
        }
    }
    match (soak.start(), soak.settled()) {
        (Some(start), Some(end)) => {
            let ok = soak.fds_back() == Some(true);
            if !ok {
                missed.push(format!(
                    "{} open descriptors after the run, {} before",
                    end.fds, start.fds
                ));
            }
            let _ = writeln!(
                w,
                "| 7 | soak: open file descriptors of the server after the run (all clients closed; settled {:.1} s after the load ended) | {} | {} (before the load) | {} | back to the start value | {} |",
                soak.settle.as_secs_f64(),
                end.fds,
                start.fds,
                ratio(end.fds as f64, start.fds as f64),
                verdict(ok)
            );
        }
        _ => {
            missed.push("descriptors not read".to_owned());
            let _ = writeln!(
                w,
                "| 7 | soak: open file descriptors | not read | | | back to the start value | **NO** |"
            );
        }
    }
    if !missed.is_empty() {
        misses.push((7, missed.join("; ")));
    }
}

/// "20 to 35 s": when the readings of a level were taken.
fn readings_span(readings: &[&soak::Sample]) -> String {
    match (readings.first(), readings.last()) {
        (Some(first), Some(last)) => format!("median of {:.0} to {:.0} s", first.at_s, last.at_s),
        _ => "no reading".to_owned(),
    }
}

/// Figure 7's section.
fn soak_details(w: &mut String, results: &Results) {
    let s = &results.settings;
    let _ = writeln!(w, "\n## 7. Soak\n");
    let defaults = keepalive_lab_server::Config::default();
    let _ = writeln!(
        w,
        "A bounded run of {} s (`--soak-secs`) against a fresh lab child with the policy a \
         workshop runs (idle timeout {} s, {} requests per connection), the default per-session \
         caps ({} hangs, {} requests in flight; the per-address caps are lifted as for every \
         bench server: one address stands in for a room) and the default guards \
         (`header_read_timeout` {} s, `write_stall_timeout` {} s). All clients on `127.0.0.1`; \
         every loop is bounded in count and time, every request has a timeout, the workload is \
         the same on every run (a seeded generator), and it stops by itself (`bench/src/soak.rs`):\n",
        s.soak_s,
        protocol::ServerPolicy::default().idle_timeout_ms / 1000,
        protocol::ServerPolicy::default()
            .max_requests
            .map_or("unlimited".to_owned(), |n| n.to_string()),
        defaults.max_hangs_per_session,
        defaults.max_in_flight_per_session,
        defaults.header_read_timeout.as_secs(),
        defaults.write_stall_timeout.as_secs(),
    );
    let _ = writeln!(
        w,
        "- **{} participants**, each a loop of visits (page loads): `POST /api/sessions`, the \
         session's events WebSocket, then 3 to 6 rounds of {} `/api/hang` (held, then released by \
         tag with `{{\"type\":\"release\",\"id\":…}}` over the WebSocket), {} `/api/fast`, {} `/api/slow` \
         (100 to 500 ms), {} `/api/drip` (8 KB in 8 chunks), one abort (a socket closed during a \
         hang, or after the first bytes of a 64 KB drip), and every other round a second viewer \
         that reads for 0.3 to 1.2 s and leaves (one in three without a close frame); then the \
         participant leaves (closes its viewer, every fourth visit without a close frame) and \
         the server should close the session's idle connections (`session_ended`). Requests \
         share a keep-alive pool, at most {} at a time as a browser's (the hangs need one \
         connection each); one that fails on a kept-alive connection closed under it is sent \
         again once, as browsers do.\n\
         - **Every {} s a stuck cohort** with its own session: a viewer that never reads (while \
         the cohort's {} waves of {} `/api/fast` with long tags fill its socket), a client that never \
         reads a 1 MB `/api/drip`, a client that sends half a request head and stops, and an idle \
         keep-alive connection left open. The first two use a {} byte TCP segment and a 4 KB \
         receive buffer, as a laptop in the room would: over loopback's 64 KB segments the kernel \
         would give the server a send buffer of about 4 MB instead of about 70 KB. After {} s \
         each looks (for 5 s) whether the server has closed it; cohorts start only while that \
         fits in the run.\n\
         - **One instructor viewer** (the child's instructor key, `/api/events?key=…`) counts \
         every close reason and request outcome the server reports.\n",
        soak::PARTICIPANTS,
        soak::HANGS,
        soak::FAST,
        soak::SLOW,
        soak::DRIPS,
        soak::CONCURRENCY,
        soak::STUCK_EVERY.as_secs(),
        soak::NOISE_WAVES,
        soak::NOISE,
        soak::STUCK_MSS,
        soak::STUCK_HOLD.as_secs(),
    );
    let every = s.soak_s as f64 / soak::SAMPLES as f64;
    let n = soak::LEVEL_SAMPLES;
    let _ = writeln!(
        w,
        "**Memory** is the child's `VmRSS` (`/proc/<pid>/status`), read before the load, every \
         {every:.1} s under load ({} readings) and after the settle. The first {:.0} % of the run \
         is warm-up. The level after warm-up *W* is the median of {n} readings: the one that ends \
         the warm-up and the {} after it ({:.0} to {:.0} % of the run). The end of the run *E* is \
         the higher of the RSS after the settle (what the server kept once the load was gone) and \
         the median of the last {n} readings under load ({:.0} to 100 % of the run, the same load \
         as for *W*); medians, so that one busy moment does not decide. \
         **Drift = (E − W) / W; budget ≤ +{:.0} %.** \
         **Descriptors** are the entries of `/proc/<pid>/fd`: before the load (once the count is \
         steady) and after the run, once every client has closed (participants finish their \
         step and leave, stuck clients close, connections the server is to close by itself are \
         left to it) and the count has settled: read every 250 ms until it is back at its start \
         value or has not fallen for {} s (longer than the idle timeout), at most {} s in all. \
         **Budget: the count after the run ≤ the count before.**\n",
        soak::SAMPLES,
        soak::WARMUP_FRACTION * 100.0,
        soak::LEVEL_SAMPLES - 1,
        soak::WARMUP_FRACTION * 100.0,
        (soak::warmup_sample() + soak::LEVEL_SAMPLES - 1) as f64 * 100.0 / soak::SAMPLES as f64,
        (soak::SAMPLES - soak::LEVEL_SAMPLES + 1) as f64 * 100.0 / soak::SAMPLES as f64,
        MAX_RSS_DRIFT * 100.0,
        soak::SETTLE_QUIET.as_secs(),
        soak::SETTLE_LIMIT.as_secs(),
    );
    let soak = match &results.soak {
        Ok(soak) => soak,
        Err(e) => {
            let _ = writeln!(w, "Not measured: {e}.");
            return;
        }
    };
    let _ = writeln!(
        w,
        "| reading | at | VmRSS | open descriptors | of which sockets | sessions remembered | other connections open |\n|---|---|---|---|---|---|---|"
    );
    let warm = soak::warmup_sample();
    for sample in &soak.samples {
        let name = match sample.phase {
            When::Start => "before the load".to_owned(),
            When::Load(k) if k == warm => format!("{k}/{}, end of warm-up (*W*)", soak::SAMPLES),
            When::Load(k) if (warm..warm + soak::LEVEL_SAMPLES).contains(&k) => {
                format!("{k}/{} (*W*)", soak::SAMPLES)
            }
            When::Load(k) if k > soak::SAMPLES - soak::LEVEL_SAMPLES => {
                format!("{k}/{}, end of the load (*E*)", soak::SAMPLES)
            }
            When::Load(k) => format!("{k}/{}", soak::SAMPLES),
            When::Settled => format!(
                "after the settle ({:.1} s after the load ended)",
                soak.settle.as_secs_f64()
            ),
        };
        let count = |n: Option<u64>| n.map_or("—".to_owned(), |n| n.to_string());
        let _ = writeln!(
            w,
            "| {name} | {:.0} s | {} | {} | {} | {} | {} |",
            sample.at_s,
            mb(sample.rss),
            sample.fds,
            sample.sockets,
            count(sample.sessions),
            count(sample.connections)
        );
    }
    if let (Some(end), Some(warm)) = (soak.end_rss(), soak.warm_rss()) {
        let list = |readings: &[&soak::Sample]| {
            readings
                .iter()
                .map(|x| mb(x.rss))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let last = soak.end_of_load();
        let _ = writeln!(
            w,
            "\n*W* = median of {} = {}; *E* = max({} after the settle, median of {} = {}) = {}; \
             drift {:+.2} %; peak {}, {} descriptors at most.",
            list(&soak.after_warmup()),
            mb(warm),
            mb(soak.settled().map_or(0, |x| x.rss)),
            list(&last),
            mb(soak::level(&last.iter().map(|x| x.rss).collect::<Vec<_>>()).unwrap_or(0)),
            mb(end),
            soak.drift().unwrap_or(f64::NAN) * 100.0,
            mb(soak.peak_rss()),
            soak.peak_fds()
        );
    }
    if !soak.extra_fds.is_empty() {
        let extra: Vec<String> = soak
            .extra_fds
            .iter()
            .map(|(kind, n)| format!("{n:+} {kind}"))
            .collect();
        let _ = writeln!(
            w,
            "\nDescriptors after the run compared with before, by kind: {}.",
            extra.join(", ")
        );
    }

    let t = &soak.tally;
    let _ = writeln!(
        w,
        "\n| workload (counted by the clients) | count |\n|---|---|"
    );
    for (what, n) in [
        ("visits (page loads)", t.visits),
        ("sessions created (visits and stuck cohorts)", t.sessions),
        ("requests in all (answered or failed)", t.requests()),
        ("`/api/hang` answered", t.hang),
        (
            "hangs released over the WebSocket (server's count)",
            t.released,
        ),
        ("`/api/fast` answered (stuck cohorts' included)", t.fast),
        ("`/api/slow` answered", t.slow),
        ("`/api/drip` answered", t.drip),
        ("aborted during a hang", t.aborted_hangs),
        ("aborted during a drip", t.aborted_drips),
        ("viewers opened", t.viewers),
        ("viewers closed with a close frame", t.viewers_closed),
        ("viewers dropped without one", t.viewers_dropped),
        (
            "idle connections the server closed within 3 s of their session's viewer leaving",
            t.idle_closed_after_leave,
        ),
        (
            "idle connections still open 3 s after",
            t.idle_open_after_leave,
        ),
        (
            "requests re-sent after a kept-alive connection closed under them",
            t.retried,
        ),
        ("failures (errors or unexpected statuses)", t.failures),
        (
            "participants still busy 20 s after the load ended (aborted)",
            t.stragglers,
        ),
    ] {
        let _ = writeln!(w, "| {what} | {} |", grouped(n));
    }
    if !t.failure_samples.is_empty() {
        let _ = writeln!(w, "\nFirst failures: {}.", t.failure_samples.join("; "));
    }

    let _ = writeln!(
        w,
        "\n| stuck client | to be cut by | started | cut by the server | still stuck when the run ended (closed by us) | not cut |\n|---|---|---|---|---|---|"
    );
    for ((name, guard), c) in STUCK_KINDS.iter().zip(&t.stuck) {
        let _ = writeln!(
            w,
            "| {name} | {guard} | {} | {} | {} | {} |",
            c.started, c.cut, c.closed_at_end, c.not_cut
        );
    }

    let watched = &soak.watched;
    let _ = writeln!(
        w,
        "\nAs the server reported it to the instructor viewer: {} requests started; request \
         outcomes {}; {} events skipped for the viewer{}.\n",
        grouped(watched.requests),
        watched
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k} {}", grouped(*v)))
            .collect::<Vec<_>>()
            .join(", "),
        watched.dropped,
        if watched.reconnects > 0 {
            format!(
                ", {} reconnects (the counts miss what happened meanwhile)",
                watched.reconnects
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(w, "| close reason | connections |\n|---|---|");
    for (reason, n) in &watched.reasons {
        let _ = writeln!(w, "| `{reason}` | {} |", grouped(*n));
    }
}

fn details(w: &mut String, results: &Results) {
    let s = &results.settings;
    let _ = writeln!(w, "\n## 1. Tracking overhead\n");
    let _ = writeln!(
        w,
        "`GET /api/fast` over {} keep-alive connections from one hyper 1.x HTTP/1.1 client \
         (`bench/src/client.rs`), each sending its next request as soon as the last answer's \
         body is in. Each round starts a fresh server child, warms up for {:.0} s, then measures \
         {:.0} s: throughput counts answers inside the window; latency is send to last body byte; \
         server CPU is user + system time from `/proc/<pid>/stat` over the window, and the load client's \
         (this process, on the same cores) from `/proc/self/stat`. Two more \
         columns say how much of the machine the round lost, from `/proc/stat`: *others* is \
         the machine's busy time minus the server's and the bench's own (other processes, the \
         kernel's threads), *steal* the time the hypervisor ran other guests while our cores \
         had work (on a shared host the usual cause of a slow round; no process here shows \
         it). A round that lost more than {DISTURBED_CORES:.2} cores is run again, up to {MAX_REPEATS} \
         times; the tries set aside are listed under the table and left out of the medians. \
         Variants take turns, {} rounds each, in an order that rotates each round (lab, axum, \
         lab with its default policy; then axum first; then the default policy first; ...), so \
         none is always the first after a fresh start; the summary shows the median of rounds.\n",
        s.connections, s.warmup_s, s.window_s, s.rounds
    );
    let _ = writeln!(
        w,
        "- **lab**: `keepalive_lab_server::listener::serve` with the `bench` policy (the default \
         `ServerPolicy` but `max_requests` unlimited and idle timeout {} s: plain axum has neither \
         limit, so only tracking differs).\n\
         - **axum**: `axum::serve(listener, routes::app(lab))`: the same router and handlers.\n\
         - **lab, default policy**: as a workshop runs it; every 100th response says \
         `Connection: close` and the client reconnects (information only).\n",
        server::BENCH_IDLE_TIMEOUT_MS / 1000
    );
    match &results.load {
        Ok(load) => {
            let _ = writeln!(
                w,
                "| variant | round | req/s | p50 | p99 | server CPU/request | client CPU/request | failures | reconnects | others | steal |\n|---|---|---|---|---|---|---|---|---|---|---|"
            );
            let name = |series: &Series| match (
                series.variant.kind,
                series.variant == Variant::LAB_DEFAULT_POLICY,
            ) {
                (Kind::Lab, true) => "lab, default policy",
                (Kind::Lab, false) => "lab",
                (Kind::Axum, _) => "axum",
            };
            let row = |w: &mut String, name: &str, round: String, r: &Round| {
                let _ = writeln!(
                    w,
                    "| {name} | {round} | {} | {} | {} | {} | {} | {} | {} | {:.2} cores | {:.2} cores |",
                    grouped(r.throughput as u64),
                    us(r.p50_us),
                    us(r.p99_us),
                    us(r.cpu_us_per_request),
                    us(r.client_cpu_us_per_request),
                    r.failures,
                    r.reconnects,
                    r.other_load,
                    r.stolen_load
                );
            };
            for series in load {
                for (i, r) in series.rounds.iter().enumerate() {
                    row(w, name(series), (i + 1).to_string(), r);
                }
            }
            let set_aside: usize = load.iter().map(|s| s.set_aside.len()).sum();
            if set_aside == 0 {
                let _ = writeln!(w, "\nNo round was disturbed enough to be run again.");
            } else {
                let _ = writeln!(
                    w,
                    "\n{set_aside} disturbed tries were set aside and their rounds run again:\n\n\
                     | variant | try of round | req/s | p50 | p99 | server CPU/request | client CPU/request | failures | reconnects | others | steal |\n|---|---|---|---|---|---|---|---|---|---|---|"
                );
                for series in load {
                    for (round, r) in &series.set_aside {
                        row(w, name(series), round.to_string(), r);
                    }
                }
            }
        }
        Err(e) => {
            let _ = writeln!(w, "Failed: {e}");
        }
    }

    let _ = writeln!(w, "\n## 2. Held connections\n");
    let capped = if s.hold < s.hold_wanted {
        format!(
            " (asked for {}, but the open-file limit is {}: measured with as many as fit)",
            grouped(s.hold_wanted as u64),
            s.fd_limit
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        w,
        "{} connections{capped}, each sending `GET /api/hang?id=hN` (raw bytes, one socket per \
         connection on our side, {} at a time with a {} ms pause: see the note on the listen backlog below), to a fresh server child. \
         Memory is the child's `VmRSS` from `/proc/<pid>/status`: once after start (one request \
         served), once with every connection held (read every 500 ms until two readings agree \
         within 0.5 %). Per connection = difference / requests held, where requests held is the \
         server's own answer to the `POST /api/release` that ends the run. Kernel socket buffers \
         are not in `VmRSS`. Both servers run the same `Config`: `max_hangs` {} (default 1024), \
         `hang_cap` {} s (default 120 s), no session parameter (so no per-session cap), the \
         `bench` policy (idle timeout {} s); both raise their own open-file limit to the hard \
         limit, as does the client (now {}).\n",
        grouped(s.hold as u64),
        client::BATCH,
        client::BATCH_PAUSE.as_millis(),
        grouped(server::MAX_HANGS as u64),
        server::HANG_CAP.as_secs(),
        server::BENCH_IDLE_TIMEOUT_MS / 1000,
        s.fd_limit
    );
    match &results.held {
        Ok((lab, axum)) => {
            let _ = writeln!(
                w,
                "| server | opened | connect failures | held | answered 200 after release | VmRSS after start | VmRSS held | per connection | time to open |\n|---|---|---|---|---|---|---|---|---|"
            );
            for h in [lab, axum] {
                let _ = writeln!(
                    w,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s |",
                    h.kind.name(),
                    grouped((h.wanted - h.connect_failures) as u64),
                    h.connect_failures,
                    grouped(h.held as u64),
                    grouped(h.answered as u64),
                    kb(h.rss_before as f64),
                    kb(h.rss_held as f64),
                    kb(h.bytes_per_connection()),
                    h.open_time.as_secs_f64()
                );
            }
        }
        Err(e) => {
            let _ = writeln!(w, "Failed: {e}");
        }
    }

    let _ = writeln!(
        w,
        "\nNote on the listen backlog: both servers listen with a backlog of 128 (tokio's \
         `TcpListener::bind`, like std's). A connection is complete in the kernel before the \
         server accepts it; while 128 wait to be accepted, further SYNs are dropped and the \
         client's kernel retries only after 1 s. Opening connections 200 at a time without a \
         pause took 3 to 5 s per 1 000 here, with `ListenOverflows` rising in `nstat`, hence \
         the pacing above. A room of laptops opening six connections each at the same moment \
         can meet the same delay; binding with `tokio::net::TcpSocket` and `listen(1024)` (the \
         kernel caps it at `net.core.somaxconn`, {} here) would avoid it.",
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .map_or("unknown".to_owned(), |v| v.trim().to_owned())
    );

    let _ = writeln!(w, "\n## 3. Event pipeline and 4. frame time in Chromium\n");
    let _ = writeln!(
        w,
        "The built page in headless Chromium ({}), served by a lab child (`bench` policy), \
         opened at `/#endpoint=fast`, and in the same run, the same browser and against the \
         same child, **the bare page** (`bench/src/bare.html`, served as `/bare.html`): no wasm \
         and no framework; it gets a session, opens the same events WebSocket, syncs its clock \
         with the same ping/pong, fires the same bursts (one `fetch` per request, body read) \
         and records each stamped event's latency on arrival. The bare pages call `fetch` \
         and hold their socket on their main thread; the lab's page does both in Workers \
         of its own (`index.html`), as it does for a learner. A third page, **the bare page \
         with a live picture** (`/bare.html?draw`, \"bare + picture\" below), is the same plus \
         the cheapest live picture of the run: 60 rows of one bar each, coloured and sized by \
         its request's last event, and a line of counts, applied at the next animation frame \
         as the lab's page applies its events, and timed as the lab's page times them (handed \
         over, then applied). It is not a budget's baseline: it shows what any page that \
         draws the run live gets in this browser on this machine. Each page runs three phases; \
         in each the bench sets the composer's request count and clicks the Fire button \
         (the bare page has the same ids): lesson scale, {BURSTS} bursts of 12 (the composer's \
         default) {} s apart, then {LESSON_BURSTS} single bursts of 200 (its maximum) {} s \
         apart; load, {HEAVY_BURSTS} bursts of 200 {} ms apart: 2 000 requests at about 1 000 \
         requests per second. The load's bursts take 2 s, the single bursts of 200 a few \
         hundred milliseconds of work each, and a phase of bursts of 12 brings about 550 \
         events (its p99 is about the fifth-worst), so one pause of this shared host can \
         decide a single round's p99: after the three pages have run all three phases, each \
         runs the bursts of 12, the single bursts of 200 and then the load {} times more, each \
         phase in a fresh tab, the pages taking turns in an order that rotates every round \
         (each page first, second and third at least once), and every figure is the median of \
         the {ROUNDS} rounds (every round is in the table below, and at lesson scale the \
         summary also shows the slowest round's p99 and the longest frame of any round; a \
         profiled or traced run has one round; `--lesson-only` runs the rounds without the \
         load). Each request brings at least three events. Figure 3 is the \
         page's own instrumentation, `{HOOK}.eventLatencyMs`: per stamped event, the time \
         from the server's stamp to the page applying it (the bare page: receiving it), on \
         the page's ping/pong-synced clock. The lab page also records each event when its socket \
         hands it to the page (`{HOOK}.eventReceiptMs`, \"handed to the page\" below), before it \
         waits for the page's next flush (at the next animation frame, or 8 ms after the last flush if that comes first): what the browser delivered, and when. \
         A page applies an event to its document, and the browser paints it at the next frame: \
         the bench's own frame loop also stamps, for every page, the first animation frame after \
         each event was applied (the bare page: had it; a wrapper on the list's `push`), the \
         earliest frame that can show it (\"the first frame after\" below: an event applied between \
         frames counts at the next frame's callbacks, one applied in a frame callback at that frame). \
         Figure 4 is the interval between \
         `requestAnimationFrame` callbacks, recorded by a loop the bench injects for the \
         whole phase: work that does not fit in a 16.7 ms frame makes an interval longer. \
         *Steal* is the cores the hypervisor gave to other guests over the phase (`/proc/stat`): \
         the browser, the page and the server wait through it, and no process here shows it.\n",
        keepalive_lab_tests::chromium::FLAGS.join(" "),
        BURST_EVERY.as_secs(),
        LESSON_EVERY.as_secs(),
        HEAVY_EVERY.as_millis(),
        ROUNDS - 1
    );
    match &results.browser {
        Browser::Measured { lab, bare, drawing } => {
            let _ = writeln!(
                w,
                "| page | phase | events measured | latency p50 | p99 | max | handed to the page p50 | p99 | clock uncertainty | frames | frame p50 | p95 | p99 | max | over {LONG_FRAME_MS:.0} ms | steal |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
            );
            for (page, phases) in [("lab", lab), ("bare", bare), ("bare + picture", drawing)] {
                fn rounds<'r>(
                    rounds: &'r [PageRound],
                    what: &'static str,
                ) -> impl Iterator<Item = (String, &'r Phase)> {
                    rounds.iter().enumerate().map(move |(i, l)| {
                        (
                            format!(
                                "{what}, round {} ({} of the round's 3 pages)",
                                i + 1,
                                ordinal(l.position)
                            ),
                            &l.phase,
                        )
                    })
                }
                let all = rounds(&phases.light, "lesson: bursts of 12")
                    .chain(rounds(&phases.lesson, "lesson: single bursts of 200"))
                    .chain(rounds(&phases.heavy, "load: 2 000 requests"));
                for (phase, p) in all {
                    let q = |v: &[f64], x| Phase::quantile(v, x);
                    let received = |v: &[f64], x| {
                        if v.is_empty() {
                            "(on arrival)".to_owned()
                        } else {
                            ms(q(v, x))
                        }
                    };
                    let _ = writeln!(
                        w,
                        "| {page} | {phase} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} cores |",
                        grouped(p.latencies_ms.len() as u64),
                        ms(q(&p.latencies_ms, 0.5)),
                        ms(q(&p.latencies_ms, 0.99)),
                        ms(q(&p.latencies_ms, 1.0)),
                        received(&p.received_ms, 0.5),
                        received(&p.received_ms, 0.99),
                        p.clock_uncertainty_ms
                            .map_or("unknown".to_owned(), |u| format!("±{u:.1} ms")),
                        p.frames_ms.len(),
                        ms(q(&p.frames_ms, 0.5)),
                        ms(q(&p.frames_ms, 0.95)),
                        ms(q(&p.frames_ms, 0.99)),
                        ms(q(&p.frames_ms, 1.0)),
                        p.long_frames(),
                        p.stolen_cores
                    );
                }
            }
        }
        Browser::NotMeasured(why) => {
            let _ = writeln!(w, "Not measured: {why}.");
        }
    }

    let _ = writeln!(w, "\n## 5. Size\n");
    let _ = writeln!(
        w,
        "The files `cargo xtask build` writes into `dist/` (the `wasm-release` profile). *Sent* \
         is what the server sends a browser, which always accepts gzip: the `.gz` written beside \
         each file (zopfli, gzip format: `xtask`'s `gzip_beside`), with `Content-Encoding: gzip` \
         (`tests/tests/pages.rs` checks with Chromium's Resource Timing that the landing page \
         arrives at exactly these sizes); gzip level 6 (`gzip`'s default) and brotli quality 11 \
         for comparison. Each page is a bundle of its \
         own: the budget holds for the lesson track (where a room lands) and for the workbench \
         (one link away); the instructor's is reported beside them. A page's size is its \
         bundle's wasm and js and the document every page loads (`index.html`: the style \
         sheet, the loader and the script that issues the page's requests).\n"
    );
    match &results.size {
        Ok(files) => {
            let _ = writeln!(
                w,
                "| file | raw | sent (gzip) | gzip -6 | brotli |\n|---|---|---|---|---|"
            );
            for f in files {
                let _ = writeln!(
                    w,
                    "| `{}` | {} B | {} B | {} B | {} B |",
                    f.name,
                    grouped(f.raw),
                    grouped(f.served),
                    grouped(f.gzip),
                    grouped(f.brotli)
                );
            }
            for (page, names) in [
                ("lesson track", LESSON_FILES),
                ("workbench", WORKBENCH_FILES),
                ("instructor's page", INSTRUCTOR_FILES),
            ] {
                let size = page_size(files, &names);
                let _ = writeln!(
                    w,
                    "| {page} | {} B | {} B | {} B | {} B |",
                    grouped(size.raw),
                    grouped(size.served),
                    grouped(size.gzip),
                    grouped(size.brotli)
                );
            }
        }
        Err(e) => {
            let _ = writeln!(w, "Failed: {e}");
        }
    }

    let _ = writeln!(w, "\n## 6. Timing fidelity\n");
    let _ = writeln!(
        w,
        "{} requests `GET /api/slow?ms={}`, one after another, to a fresh lab child with a viewer \
         on `/api/events`; each duration is the lab's own `response_started.at_us - \
         request_started.at_us`. The baseline, in the same run: with each request the bench \
         starts a bare wait of the same length in its own process, as `/api/slow` waits \
         (tokio's timer to 2 ms before the end, which alone rounds up to the next millisecond, \
         then yielding until the end), and times it with `Instant`: a host that runs a waiter \
         late makes it late too.\n",
        s.slow_samples, s.slow_ms
    );
    match &results.fidelity {
        Ok(f) => {
            let shown = |d: &[u64]| {
                d.iter()
                    .map(|d| us(*d as f64))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(w, "Durations: {}.", shown(&f.lab_us));
            let _ = writeln!(
                w,
                "\nThe bare waits, in the same order: {}.",
                shown(&f.bare_us)
            );
        }
        Err(e) => {
            let _ = writeln!(w, "Failed: {e}");
        }
    }
    soak_details(w, results);
    room_details(w, results);
}

/// Figure 8's rows of the summary: per room size, CPU and fan-out latency.
fn room_summary(w: &mut String, results: &Results, misses: &mut Vec<(u8, String)>) {
    let cpu_budget = format!(
        "≤ {:.0} core for a room of {}",
        room::MAX_ROOM_CORES,
        room::ROOM_BUDGET_N
    );
    let p99_budget = format!("p99 ≤ {:.0} ms", room::MAX_FANOUT_P99_MS);
    let steps = match &results.room {
        Ok(steps) => steps,
        Err(e) => {
            if e != SKIPPED {
                misses.push((8, format!("not measured: {e}")));
            }
            let _ = writeln!(
                w,
                "| 8 | room scale | failed: {e} | | | {cpu_budget}; {p99_budget} | {} |",
                not_taken(e)
            );
            return;
        }
    };
    let mut missed = Vec::new();
    for step in steps {
        let n = step.n;
        let projected = step.projected_cores();
        let cpu_ok = step.cpu_ok();
        if step.ready < n {
            missed.push(format!(
                "room of {n}: only {} participants set up",
                step.ready
            ));
        }
        if projected > room::MAX_ROOM_CORES {
            missed.push(format!(
                "room of {n}: {projected:.2} cores for a room of {}",
                room::ROOM_BUDGET_N
            ));
        }
        let _ = writeln!(
            w,
            "| 8 | room of {n} ({} s): server CPU per participant-second (the whole server: {:.2} cores; RSS {} per participant) | {:.2} ms → {projected:.2} cores for {} | none | | {cpu_budget} | {} |",
            step.window.as_secs(),
            step.cores(),
            kb(step.rss_per_participant()),
            step.cpu_per_participant(),
            room::ROOM_BUDGET_N,
            verdict(cpu_ok)
        );
        let (p50, p99) = (step.latency_ms(0.5), step.latency_ms(0.99));
        let p99_ok = step.p99_ok();
        if !p99_ok {
            missed.push(format!("room of {n}: fan-out p99 {}", ms(p99)));
        }
        let _ = writeln!(
            w,
            "| 8 | room of {n}: event fan-out, hang written to its `request_started` at the participant's viewer, p50 / p99 ({} events) | {} / {} | none | | {p99_budget} | {} |",
            grouped(step.latencies_ms.len() as u64),
            ms(p50),
            ms(p99),
            verdict(p99_ok)
        );
    }
    if !missed.is_empty() {
        misses.push((8, missed.join("; ")));
    }
}

/// Figure 8's section.
fn room_details(w: &mut String, results: &Results) {
    let s = &results.settings;
    let _ = writeln!(w, "\n## 8. Room scale\n");
    let defaults = keepalive_lab_server::Config::default();
    let _ = writeln!(
        w,
        "Per room size N (`--room`, here {}), a fresh lab child with the workshop policy \
         (idle timeout {} s, `max_requests` 100), the per-address caps lifted (the bench is one \
         address standing in for a room) and the per-session caps at their defaults ({} hangs, \
         {} requests in flight). N participants, each: `POST /api/sessions`, the session's \
         events WebSocket, {} keep-alive connections; then bursts of {} `/api/hang` requests, \
         each with its own tag, as a browser sends them ({} on the wire, the others queued on \
         our side and sent on a connection when its previous hang is answered), released with \
         `{{\"type\":\"release\"}}` over the WebSocket once the viewer has seen every hang in \
         flight (again after {} ms if one was not held yet), then a {} ms pause. After every \
         participant is set up and {} s of warm-up, {} s are measured (`--room-secs`):\n",
        s.room
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        defaults.policy.idle_timeout_ms / 1000,
        defaults.max_hangs_per_session,
        defaults.max_in_flight_per_session,
        room::LANES,
        room::BURST,
        room::LANES,
        room::RELEASE_RETRY.as_millis(),
        room::PAUSE.as_millis(),
        room::WARMUP.as_secs(),
        s.room_s
    );
    let _ = writeln!(
        w,
        "- **CPU**: the child's user + system time (`/proc/<pid>/stat`) over the window, per \
         participant per second; the budget projects it to a room of {} (≤ {:.0} core). The \
         bench's own CPU is shown beside it: on this machine the {} simulated laptops share the \
         cores with the server.\n\
         - **RSS**: the highest `VmRSS` read (every second) during the window minus the idle \
         reading before any participant arrived, over N.\n\
         - **Fan-out latency**: per hang written in the window, from just before our \
         `send_request` to the participant's viewer receiving `request_started` with the \
         hang's tag, both on the bench's clock (so it includes the bench's own scheduling).\n",
        room::ROOM_BUDGET_N,
        room::MAX_ROOM_CORES,
        s.room.iter().max().copied().unwrap_or(0)
    );
    match &results.room {
        Ok(steps) => {
            let _ = writeln!(
                w,
                "| N | set up | window | server CPU | per participant-second | for a room of {} | bench CPU | others | steal | VmRSS idle | VmRSS peak | per participant | fan-out p50 | p99 | max | events | unseen | bursts | in the window, per participant-second | server CPU per burst | hangs answered | reconnects | events dropped | viewers closed by the server | failures |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
                room::ROOM_BUDGET_N
            );
            for st in steps {
                let pace = format!("{:.2}", st.pace());
                let _ = writeln!(
                    w,
                    "| {} | {} | {:.1} s | {:.2} cores | {:.2} ms | {:.2} cores | {:.2} cores | {:.2} cores | {:.2} cores | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    st.n,
                    st.ready,
                    st.window.as_secs_f64(),
                    st.cores(),
                    st.cpu_per_participant(),
                    st.projected_cores(),
                    st.bench_cpu.as_secs_f64() / st.window.as_secs_f64().max(1e-9),
                    st.other_load,
                    st.stolen_load,
                    mb(st.rss_idle),
                    mb(st.rss_peak),
                    kb(st.rss_per_participant()),
                    ms(st.latency_ms(0.5)),
                    ms(st.latency_ms(0.99)),
                    ms(st.latency_ms(1.0)),
                    grouped(st.latencies_ms.len() as u64),
                    st.unseen,
                    grouped(st.bursts),
                    pace,
                    ms(st.cpu_per_burst()),
                    grouped(st.answered),
                    st.reconnects,
                    st.events_dropped,
                    st.viewers_closed_by_server,
                    st.failures
                );
            }
            for st in steps.iter().filter(|st| !st.failure_samples.is_empty()) {
                let _ = writeln!(
                    w,
                    "\nFirst failures at N = {}: {}.",
                    st.n,
                    st.failure_samples.join("; ")
                );
            }
        }
        Err(e) => {
            let _ = writeln!(w, "Failed: {e}");
        }
    }
}

/// Date, machine and code, as `(name, value)`: read when the run begins,
/// so the commit named is the one built and measured.
pub fn machine() -> Vec<(&'static str, String)> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_owned(), |(_, m)| m.trim().to_owned());
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let memory_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let output = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let commit = output("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = !output("git", &["status", "--porcelain"]).is_empty();
    vec![
        ("Date", now_utc()),
        (
            "Machine",
            format!(
                "{model}, {cores} cores, {:.1} GiB memory, Linux {kernel}",
                memory_kib as f64 / 1024.0 / 1024.0
            ),
        ),
        (
            "Code",
            format!(
                "commit {commit}{}; {}; server and bench built with `--release` (the workspace's \
                 release profile: fat LTO, one codegen unit; both servers of figure 1 are \
                 this one binary)",
                if dirty {
                    " plus uncommitted changes"
                } else {
                    ""
                },
                output("rustc", &["--version"])
            ),
        ),
    ]
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rest = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A page's sizes in bytes: the files in `names` (its bundle) and the
/// document every page loads, each measure as in [`Shipped`].
#[derive(Debug, Default, PartialEq, Eq)]
struct PageSize {
    raw: u64,
    served: u64,
    gzip: u64,
    brotli: u64,
}

fn page_size(files: &[Shipped], names: &[&str]) -> PageSize {
    files
        .iter()
        .filter(|f| f.name == DOCUMENT || names.contains(&f.name))
        .fold(PageSize::default(), |sum, f| PageSize {
            raw: sum.raw + f.raw,
            served: sum.served + f.served,
            gzip: sum.gzip + f.gzip,
            brotli: sum.brotli + f.brotli,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::browser::PageRound;

    /// The report's line that starts with `start` (a panic naming it, with
    /// the report, when there is none).
    fn row_of(w: &str, start: &str) -> String {
        w.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no row {start}:\n{w}"))
            .to_owned()
    }

    #[test]
    fn causes_are_found_by_figure_number() {
        assert!(known_cause(1).is_some_and(|c| c.contains("callgrind")));
        assert!(known_cause(3).is_some_and(|c| c.contains("bare page")));
        // The profiles and traces of figures 3 and 4 are figure 3's, not
        // the end of the figure before them in the file.
        assert!(known_cause(3).is_some_and(|c| c.contains("--trace PREFIX")));
        assert!(known_cause(5).is_some_and(|c| !c.contains("--trace PREFIX")));
        assert!(known_cause(8).is_some_and(|c| c.contains("broadcast")));
        // Figure 6's is the host's lateness, measured beside a bare wait.
        assert!(known_cause(6).is_some_and(|c| c.contains("bare waits")));
        assert!(known_cause(6).is_some_and(|c| !c.contains("## Figure 7")));
    }

    #[test]
    fn a_budget_the_bare_page_misses_too_is_said_so() {
        assert_eq!(over_too(40.3, 33.0), ", itself over the budget");
        assert_eq!(over_too(33.0, 33.0), "", "at the budget is within it");
        assert_eq!(over_too(6.0, 33.0), "");
        assert_eq!(
            floor_note("the bare page", 40.3, 33.0),
            " (the bare page: 40.3 ms, over 33 ms too)"
        );
        assert!(floor_note("the bare page", 16.8, 50.0).is_empty());
    }

    /// Figures 3 and 4's rows for these pages, and their misses.
    fn rows_of(lab: &Phases, bare: &Phases, drawing: &Phases) -> (String, Vec<(u8, String)>) {
        let mut w = String::new();
        let mut misses = Vec::new();
        browser_rows(&mut w, &Pages { lab, bare, drawing }, &mut misses);
        (w, misses)
    }

    #[test]
    fn the_bare_page_with_a_picture_is_shown_beside_every_phase_and_judges_nothing() {
        // Latencies and frames of `ms` each, 100 of them.
        let phase = |burst, ms: f64, frame: f64| Phase {
            burst,
            latencies_ms: vec![ms; 100],
            received_ms: Vec::new(),
            clock_uncertainty_ms: Some(0.2),
            frames_ms: vec![frame; 100],
            ..Phase::default()
        };
        let phases = |ms: f64, frame: f64| Phases {
            light: vec![PageRound {
                position: 1,
                phase: phase(12, ms, frame),
            }],
            lesson: vec![PageRound {
                position: 1,
                phase: phase(200, ms, frame),
            }],
            heavy: vec![PageRound {
                position: 1,
                phase: phase(200, ms, frame),
            }],
        };
        let (lab, bare, drawing) = (phases(90.0, 33.4), phases(20.0, 16.7), phases(60.0, 16.7));
        let (w, misses) = rows_of(&lab, &bare, &drawing);
        let beside: Vec<&str> = w.lines().filter(|l| l.contains(DRAWING)).collect();
        // Under load (figures 3 and 4) and each lesson phase (figure 3).
        assert_eq!(beside.len(), 4, "{w}");
        assert!(
            beside
                .iter()
                .all(|l| l.ends_with("| none | (information) |")),
            "{w}"
        );
        assert!(
            beside[0].contains("60.0 ms") && beside[0].contains("1.500×"),
            "{w}"
        );
        // The budgets stay against the bare page; the miss says where the
        // bound is.
        let under_load = &misses.iter().find(|(n, _)| *n == 3).expect("a miss").1;
        assert!(
            under_load.contains("4.500× of the bare page's")
                && under_load.contains("3.000× of the bare page's")
                && under_load.contains("the lab page 1.500× of it"),
            "{under_load}"
        );
    }

    #[test]
    fn a_lesson_phase_shows_its_first_burst_apart_from_the_later_ones() {
        // The first burst's events the slowest (the lab page's first run):
        // its worst event and the later bursts' p99 are shown, judging
        // nothing; the budget is still on the whole phase.
        let phase = |burst, first: f64, later: f64| {
            let (first_burst_ms, later_bursts_ms) = (vec![first; 36], vec![later; 504]);
            let mut latencies_ms = [first_burst_ms.clone(), later_bursts_ms.clone()].concat();
            latencies_ms.sort_by(f64::total_cmp);
            Phase {
                burst,
                latencies_ms,
                first_burst_ms,
                later_bursts_ms,
                frames_ms: vec![16.7; 100],
                ..Phase::default()
            }
        };
        let phases = |first, later| Phases {
            light: vec![PageRound {
                position: 1,
                phase: phase(12, first, later),
            }],
            lesson: vec![PageRound {
                position: 1,
                phase: phase(200, first, later),
            }],
            heavy: vec![PageRound {
                position: 1,
                phase: phase(200, later, later),
            }],
        };
        let (lab, bare) = (phases(40.0, 20.0), phases(6.0, 5.0));
        let (w, misses) = rows_of(&lab, &bare, &bare);
        let row = |what: &str| {
            w.lines()
                .find(|l| l.contains("bursts of 12") && l.contains(what))
                .unwrap_or_else(|| panic!("no row with {what}:\n{w}"))
        };
        let first = row("first burst");
        assert!(
            first.contains("| 40.0 ms | 6.0 ms (bare page) |")
                && first.ends_with("| none | (information) |"),
            "{first}"
        );
        let later = row("later bursts");
        assert!(
            later.contains("| 20.0 ms | 5.0 ms (bare page) |"),
            "{later}"
        );
        // The phase's p99 is the first burst's here: judged on all of them.
        assert!(
            misses
                .iter()
                .any(|(n, m)| *n == 3 && m.contains("bursts of 12")),
            "{misses:?}"
        );
    }

    /// A page whose bursts of 12 are within budget and whose single bursts
    /// of 200 ran once per `(latency ms, frame ms)`, every event and frame
    /// of a round at those values; no load.
    fn lesson_rounds(per_round: &[(f64, f64)]) -> Phases {
        let phase = |burst, ms: f64, frame: f64| Phase {
            burst,
            latencies_ms: vec![ms; 600],
            frames_ms: vec![frame; 100],
            ..Phase::default()
        };
        Phases {
            light: vec![PageRound {
                position: 1,
                phase: phase(12, 10.0, 16.7),
            }],
            lesson: per_round
                .iter()
                .enumerate()
                .map(|(i, &(ms, frame))| PageRound {
                    position: i + 1,
                    phase: phase(200, ms, frame),
                })
                .collect(),
            heavy: Vec::new(),
        }
    }

    #[test]
    fn bursts_of_12_are_judged_on_the_median_of_their_rounds_and_the_slowest_is_shown() {
        // One round of three had a pause of the host (40 ms at p99): the
        // median (25 ms) is judged, the slowest shown beside it.
        let with_light = |per_round: &[f64]| {
            let mut phases = lesson_rounds(&[(20.0, 16.7)]);
            phases.light = per_round
                .iter()
                .enumerate()
                .map(|(i, &ms)| PageRound {
                    position: i + 1,
                    phase: Phase {
                        burst: 12,
                        latencies_ms: vec![ms; 550],
                        frames_ms: vec![16.7; 100],
                        ..Phase::default()
                    },
                })
                .collect();
            phases
        };
        let (lab, bare) = (
            with_light(&[40.0, 20.0, 25.0]),
            with_light(&[8.0, 6.0, 7.0]),
        );
        let (w, misses) = rows_of(&lab, &bare, &bare);
        assert!(misses.is_empty(), "{misses:?}\n{w}");
        let events = row_of(
            &w,
            "| 3 | event pipeline at lesson scale, bursts of 12: p99 (median of 3 rounds)",
        );
        assert!(
            events.contains("| 25.0 ms | 7.0 ms (bare page) |") && events.ends_with("| **yes** |"),
            "{events}"
        );
        let slowest = row_of(&w, "| 3 | the same, bursts of 12: the slowest round's p99");
        assert!(
            slowest.contains("| 40.0 ms | 8.0 ms (bare page) |"),
            "{slowest}"
        );
        // Judged on one round only, the pause decides: a miss.
        let (lab, bare) = (with_light(&[40.0]), with_light(&[8.0]));
        let (_, misses) = rows_of(&lab, &bare, &bare);
        assert!(
            misses
                .iter()
                .any(|(n, m)| *n == 3 && m.starts_with("lesson scale, bursts of 12: p99 40.0 ms")),
            "{misses:?}"
        );
    }

    #[test]
    fn single_bursts_of_200_are_judged_on_the_median_of_their_rounds_and_the_slowest_is_shown() {
        // One round of three met the host's slow moment (70 ms, a frame of
        // 66.7 ms): it must not decide the figures, and it is shown.
        let lab = lesson_rounds(&[(70.0, 66.7), (25.0, 16.7), (30.0, 33.4)]);
        let bare = lesson_rounds(&[(40.0, 16.7), (15.0, 16.7), (16.0, 16.7)]);
        let (w, misses) = rows_of(&lab, &bare, &bare);
        assert!(misses.is_empty(), "{misses:?}\n{w}");
        let row = |start: &str| row_of(&w, start);
        let events = row(
            "| 3 | event pipeline at lesson scale, single bursts of 200: p99 (median of 3 rounds)",
        );
        assert!(
            events.contains("| 30.0 ms | 16.0 ms (bare page) |") && events.ends_with("| **yes** |"),
            "{events}"
        );
        let slowest = row("| 3 | the same, single bursts of 200: the slowest round's p99");
        assert!(
            slowest.contains("| 70.0 ms | 40.0 ms (bare page) |")
                && slowest.ends_with("| none | (information) |"),
            "{slowest}"
        );
        let frames = row(
            "| 4 | frame interval at lesson scale, single bursts of 200: longest (median of 3 rounds)",
        );
        assert!(frames.contains("| 33.4 ms |"), "{frames}");
        let longest = row("| 4 | the same, single bursts of 200: the longest frame of any round");
        assert!(longest.contains("| 66.7 ms |"), "{longest}");
        // The bursts of 12 run once: no rounds named, no slowest round.
        assert!(
            !w.lines()
                .any(|l| l.contains("bursts of 12") && l.contains("round")),
            "{w}"
        );
        // Two slow rounds of three do decide it; the miss says whether the
        // cheapest page that draws the run at its frames misses it too.
        let lab = lesson_rounds(&[(70.0, 16.7), (25.0, 16.7), (40.0, 16.7)]);
        let drawing = lesson_rounds(&[(36.0, 16.7), (34.0, 16.7), (30.0, 16.7)]);
        let (w, misses) = rows_of(&lab, &bare, &drawing);
        assert!(
            misses.iter().any(|(n, m)| *n == 3
                && m.ends_with(
                    "single bursts of 200: p99 40.0 ms (the bare page with a live picture: 34.0 ms, over 33 ms too)"
                )),
            "{misses:?}"
        );
        let beside = w
            .lines()
            .find(|l| l.contains("single bursts of 200, beside"))
            .unwrap_or_else(|| panic!("no row beside the bound:\n{w}"));
        assert!(
            beside.contains(
                "| 34.0 ms (the bare page with a live picture, itself over the budget) |"
            ),
            "{beside}"
        );
    }

    #[test]
    fn one_round_of_single_bursts_names_no_median_and_a_frame_miss_names_the_bound_too() {
        let phases = |ms: f64, frames: &[f64]| {
            lesson_rounds(&frames.iter().map(|&f| (ms, f)).collect::<Vec<_>>())
        };
        // A profiled or traced run: one round, its figures as measured.
        let (w, _) = rows_of(
            &phases(20.0, &[16.7]),
            &phases(10.0, &[16.7]),
            &phases(15.0, &[16.7]),
        );
        assert!(!w.contains("median of"), "{w}");
        assert!(
            !w.contains("slowest round") && !w.contains("any round"),
            "{w}"
        );
        // Frames judged on the median of the rounds: two of three over 50 ms
        // miss, and the miss says the bound's median is over it too.
        let lab = phases(20.0, &[66.7, 16.7, 83.4]);
        let bare = phases(10.0, &[16.7, 16.7, 16.7]);
        let drawing = phases(15.0, &[16.7, 66.7, 66.7]);
        let (w, misses) = rows_of(&lab, &bare, &drawing);
        let frames = w
            .lines()
            .find(|l| l.starts_with("| 4 | frame interval at lesson scale, single bursts of 200"))
            .unwrap_or_else(|| panic!("no row:\n{w}"));
        assert!(
            frames.contains("(median of 3 rounds) | 66.7 ms | 16.7 ms (bare page) |")
                && frames.ends_with("| **NO** |"),
            "{frames}"
        );
        assert!(
            misses.iter().any(|(n, m)| *n == 4
                && m.ends_with(
                    "a frame of 66.7 ms (the bare page with a live picture: 66.7 ms, over 50 ms too)"
                )),
            "{misses:?}"
        );
    }

    #[test]
    fn without_the_load_its_rows_show_as_skipped_and_the_lesson_scale_is_still_judged() {
        // `--lesson-only`: no page has a load round.
        let phase = |burst, ms: f64, frame: f64| Phase {
            burst,
            latencies_ms: vec![ms; 100],
            frames_ms: vec![frame; 100],
            ..Phase::default()
        };
        let phases = |ms, frame| Phases {
            light: vec![PageRound {
                position: 1,
                phase: phase(12, ms, frame),
            }],
            lesson: vec![PageRound {
                position: 1,
                phase: phase(200, ms, frame),
            }],
            heavy: Vec::new(),
        };
        let (lab, bare) = (phases(40.0, 60.0), phases(5.0, 16.7));
        let (w, misses) = rows_of(&lab, &bare, &bare);
        let skipped: Vec<&str> = w.lines().filter(|l| l.contains("under load")).collect();
        assert_eq!(skipped.len(), 2, "{w}");
        for (row, n) in skipped.iter().zip(["| 3 |", "| 4 |"]) {
            assert!(
                row.starts_with(n)
                    && row.contains("skipped (--lesson-only)")
                    && row.ends_with("| skipped |")
                    && !row.contains("median of"),
                "{row}"
            );
        }
        // Nothing is judged of the load; both lesson phases are, and miss
        // (an event p99 of 40 ms, a frame of 60 ms).
        assert!(!w.contains("not measured"), "{w}");
        assert!(
            misses.iter().all(|(_, m)| m.starts_with("lesson scale")),
            "{misses:?}"
        );
        assert_eq!(
            misses.iter().filter(|(n, _)| *n == 3).count(),
            2,
            "{misses:?}"
        );
        assert_eq!(
            misses.iter().filter(|(n, _)| *n == 4).count(),
            2,
            "{misses:?}"
        );
    }

    #[test]
    fn the_load_is_judged_on_the_median_of_its_rounds_and_every_round_is_counted() {
        let phase = |ms: f64, frame: f64| Phase {
            burst: 200,
            latencies_ms: vec![ms; 100],
            received_ms: Vec::new(),
            clock_uncertainty_ms: Some(0.2),
            frames_ms: vec![frame; 10],
            ..Phase::default()
        };
        // One round of three paused by the host: it must not decide the
        // figure, and its long frames are still counted.
        let rounds = |per_round: &[(f64, f64)]| Phases {
            light: vec![PageRound {
                position: 1,
                phase: phase(10.0, 16.7),
            }],
            lesson: vec![PageRound {
                position: 1,
                phase: phase(10.0, 16.7),
            }],
            heavy: per_round
                .iter()
                .enumerate()
                .map(|(i, &(ms, frame))| PageRound {
                    position: i + 1,
                    phase: phase(ms, frame),
                })
                .collect(),
        };
        let lab = rounds(&[(200.0, 50.0), (25.0, 16.7), (24.0, 16.7)]);
        let bare = rounds(&[(20.0, 16.7), (20.0, 16.7), (22.0, 16.7)]);
        let drawing = rounds(&[(21.0, 16.7), (23.0, 16.7), (22.0, 16.7)]);
        let mut w = String::new();
        let mut misses = Vec::new();
        let pages = Pages {
            lab: &lab,
            bare: &bare,
            drawing: &drawing,
        };
        browser_rows(&mut w, &pages, &mut misses);
        assert!(misses.is_empty(), "{misses:?}\n{w}");
        let row = |start: &str| row_of(&w, start);
        let events = row("| 3 | event pipeline: server stamp to applied in the page, p50 / p99");
        assert!(
            events.contains("median of 3 rounds")
                && events.contains("25.0 ms / 25.0 ms")
                && events.contains("1.250×"),
            "{events}"
        );
        let frames = row("| 4 | frame interval in Chromium");
        assert!(frames.contains("10 of 30"), "{frames}");
        // Two paused rounds of three do decide it.
        let lab = rounds(&[(200.0, 50.0), (25.0, 50.0), (90.0, 16.7)]);
        let mut misses = Vec::new();
        let pages = Pages {
            lab: &lab,
            bare: &bare,
            drawing: &drawing,
        };
        browser_rows(&mut String::new(), &pages, &mut misses);
        let figures: Vec<u8> = misses.iter().map(|(n, _)| *n).collect();
        assert_eq!(figures, [3, 4], "{misses:?}");
    }

    /// A run with only figure 1 measured, `load` as its series.
    fn only_figure_1(load: Vec<Series>) -> Results {
        Results {
            settings: Settings {
                connections: 32,
                rounds: 3,
                warmup_s: 1.0,
                window_s: 5.0,
                hold_wanted: 0,
                hold: 0,
                fd_limit: 0,
                slow_ms: 0,
                slow_samples: 0,
                soak_s: 0,
                room: Vec::new(),
                room_s: 0,
            },
            load: Ok(load),
            held: Err(SKIPPED.to_owned()),
            browser: Browser::NotMeasured(SKIPPED.to_owned()),
            size: Err(SKIPPED.to_owned()),
            fidelity: Err(SKIPPED.to_owned()),
            soak: Err(SKIPPED.to_owned()),
            room: Err(SKIPPED.to_owned()),
        }
    }

    #[test]
    fn a_disturbed_try_is_listed_apart_and_left_out_of_the_medians() {
        let round = |throughput: f64, stolen_load: f64| Round {
            throughput,
            cpu_us_per_request: 10.0,
            stolen_load,
            ..Round::default()
        };
        let series = |variant, rounds, set_aside| Series {
            variant,
            rounds,
            set_aside,
        };
        // Plain axum's second round was first tried while the hypervisor
        // took 0.6 cores (40k req/s), then again, quiet.
        let results = only_figure_1(vec![
            series(
                Variant::LAB,
                vec![round(95e3, 0.0), round(96e3, 0.01), round(97e3, 0.0)],
                Vec::new(),
            ),
            series(
                Variant::AXUM,
                vec![round(100e3, 0.0), round(101e3, 0.02), round(102e3, 0.0)],
                vec![(2, round(40e3, 0.6))],
            ),
        ]);
        let w = render(&results, &[]);
        // The medians are of the rounds kept: 96k against 101k.
        let summary = row_of(&w, "| 1 | `/api/fast`");
        assert!(
            summary.contains(&format!("{} req/s", grouped(96_000)))
                && summary.contains(&format!("{} req/s (plain axum)", grouped(101_000))),
            "{summary}"
        );
        assert!(
            summary.contains("0.950×") && summary.ends_with("| **yes** |"),
            "{summary}"
        );
        // The try set aside is shown, with its steal, under its own heading.
        assert!(w.contains("1 disturbed tries were set aside"), "{w}");
        assert!(
            w.contains(&format!("| axum | 2 | {} | ", grouped(40_000))),
            "{w}"
        );
        assert!(w.contains("| 0.00 cores | 0.60 cores |"), "{w}");
        // The rounds kept were quiet, so the run is not called disturbed.
        assert!(!w.contains("Figure 1 was disturbed"), "{w}");

        // A round still disturbed after its repeats is kept, and said so,
        // naming the steal apart from other processes.
        let results = only_figure_1(vec![
            series(Variant::LAB, vec![round(95e3, 0.0)], Vec::new()),
            series(
                Variant::AXUM,
                vec![round(60e3, 0.4)],
                vec![(1, round(50e3, 0.5))],
            ),
        ]);
        let w = render(&results, &[]);
        assert!(
            w.contains("**Figure 1 was disturbed**")
                && w.contains("the hypervisor took up to 0.40 for other guests, other processes here up to 0.00"),
            "{w}"
        );
    }

    /// Figure 6 is judged on the lab's durations alone; the bare waits of
    /// the same moments are its baseline, shown beside it and in the
    /// details, and judge nothing.
    #[test]
    fn figure_6_shows_the_bare_waits_beside_the_labs_durations() {
        let mut results = only_figure_1(Vec::new());
        results.settings.slow_ms = 1000;
        results.fidelity = Ok(Fidelity {
            lab_us: vec![1_000_050, 1_001_360, 1_000_110],
            bare_us: vec![1_000_070, 1_001_290, 1_000_090],
        });
        let w = render(&results, &[]);
        let lab = row_of(&w, "| 6 | server-measured");
        assert!(
            lab.contains("1001.36 ms") && lab.ends_with("| **NO** |"),
            "{lab}"
        );
        let bare = row_of(&w, "| 6 | the baseline: a bare wait of 1000 ms");
        assert!(
            bare.contains("(worst of 3) | 1001.29 ms | 1000 ms (asked) |")
                && bare.ends_with("| none | (information) |"),
            "{bare}"
        );
        assert!(
            w.contains("The bare waits, in the same order: 1000.07 ms, 1001.29 ms, 1000.09 ms."),
            "{w}"
        );
    }

    #[test]
    fn a_phase_the_hypervisor_took_cores_from_is_said_so_with_its_steal() {
        let pages = |stolen_cores: f64| {
            let phases = |stolen_cores| {
                Box::new(Phases {
                    light: vec![PageRound {
                        position: 1,
                        phase: Phase {
                            burst: 12,
                            latencies_ms: vec![10.0; 10],
                            frames_ms: vec![16.7; 10],
                            stolen_cores,
                            ..Phase::default()
                        },
                    }],
                    ..Phases::default()
                })
            };
            Browser::Measured {
                lab: phases(stolen_cores),
                bare: phases(0.0),
                drawing: phases(0.0),
            }
        };
        let mut results = only_figure_1(Vec::new());
        results.browser = pages(0.4);
        let w = render(&results, &[]);
        assert!(
            w.contains("**Figures 3 and 4 were disturbed**: the hypervisor took up to 0.40"),
            "{w}"
        );
        let lab_row = row_of(&w, "| lab | lesson: bursts of 12, round 1 ");
        assert!(lab_row.ends_with("| 0.40 cores |"), "{lab_row}");
        results.browser = pages(0.05);
        let w = render(&results, &[]);
        assert!(!w.contains("Figures 3 and 4 were disturbed"), "{w}");
    }

    #[test]
    fn dates_and_digit_groups() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(grouped(1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(grouped(999), "999");
    }
}
