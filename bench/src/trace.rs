//! Where the browser spent its time, on every thread: a summary of a
//! Chromium trace (DevTools' `Tracing` domain, Chrome's trace event format).
//!
//! A CPU profile ([`crate::profile`]) sees only the page's main thread, and
//! there the browser's own work is one lump, `(program)`. A trace names it
//! (style, layout, paint, raster, compositing) and sees the threads it runs
//! on: the renderer's main thread, compositor and raster workers, the GPU
//! process's display compositor (in software under `--disable-gpu`), the
//! browser process (the trace is asked of the page's tab, which leaves the
//! network service's process out). Each event is a complete one (`ph` `X`, with `dur`) or a begin
//! and end pair (`B`, `E`) on one thread; `M` events name processes and
//! threads.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;

/// The categories the bench records: the timeline DevTools' Performance
/// panel draws (with its per-frame and paint detail) and the compositor's.
pub const CATEGORIES: &[&str] = &[
    "devtools.timeline",
    "disabled-by-default-devtools.timeline",
    "disabled-by-default-devtools.timeline.frame",
    "toplevel",
    "cc",
    "viz",
    "blink",
    // Font lookups (`FontCache::GetFontPlatformData`): a page's first
    // text in a new size or weight costs one, inside its layout.
    "fonts",
];

/// Time per event name on one thread, in µs, and how often it ran. Nested
/// events each count their own span, so names are not additive.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Thread {
    /// `process name / thread name`.
    pub name: String,
    /// Per event name: total µs and count.
    pub events: HashMap<String, (f64, u64)>,
    /// Time in `toplevel` tasks (`ThreadControllerImpl::RunTask` and its
    /// kind), µs: how busy the thread was.
    pub busy_us: f64,
}

/// Per thread, what its events took.
pub fn threads(events: &[Value]) -> Vec<Thread> {
    let mut processes: HashMap<i64, String> = HashMap::new();
    let mut names: HashMap<(i64, i64), String> = HashMap::new();
    for e in events.iter().filter(|e| e["ph"] == "M") {
        let pid = e["pid"].as_i64().unwrap_or_default();
        let name = e["args"]["name"].as_str().unwrap_or_default().to_owned();
        match e["name"].as_str() {
            Some("process_name") => {
                processes.insert(pid, name);
            }
            Some("thread_name") => {
                names.insert((pid, e["tid"].as_i64().unwrap_or_default()), name);
            }
            _ => {}
        }
    }
    let mut by_thread: HashMap<(i64, i64), Thread> = HashMap::new();
    let mut open: HashMap<(i64, i64), Vec<(String, f64)>> = HashMap::new();
    for e in events {
        let key = (
            e["pid"].as_i64().unwrap_or_default(),
            e["tid"].as_i64().unwrap_or_default(),
        );
        let name = e["name"].as_str().unwrap_or_default();
        let ts = e["ts"].as_f64().unwrap_or_default();
        let span = match e["ph"].as_str() {
            Some("X") => e["dur"].as_f64().map(|d| (name.to_owned(), d)),
            Some("B") => {
                open.entry(key).or_default().push((name.to_owned(), ts));
                None
            }
            Some("E") => open
                .get_mut(&key)
                .and_then(Vec::pop)
                .map(|(begun, at)| (begun, ts - at)),
            _ => None,
        };
        let Some((name, dur)) = span else { continue };
        let thread = by_thread.entry(key).or_insert_with(|| Thread {
            name: format!(
                "{} / {}",
                processes.get(&key.0).map_or("?", String::as_str),
                names.get(&key).map_or("?", String::as_str)
            ),
            ..Thread::default()
        });
        if e["cat"].as_str().is_some_and(|c| c.contains("toplevel"))
            && (name.starts_with("ThreadControllerImpl::RunTask") || name == "RunTask")
        {
            thread.busy_us += dur;
        }
        let slot = thread.events.entry(name).or_default();
        slot.0 += dur;
        slot.1 += 1;
    }
    let mut threads: Vec<Thread> = by_thread.into_values().collect();
    threads.sort_by(|a, b| b.busy_us.total_cmp(&a.busy_us));
    threads
}

/// The busiest `top_threads` threads, each with its `top` longest event
/// names, and the per-frame figures of style and layout (how many elements
/// a style update touched, how many objects a layout had to lay out).
pub fn summary(events: &[Value], top_threads: usize, top: usize) -> String {
    let mut out = String::new();
    let threads = threads(events);
    for thread in threads.iter().take(top_threads) {
        let _ = writeln!(
            out,
            "  {}: busy {:.0} ms",
            thread.name,
            thread.busy_us / 1000.0
        );
        let mut names: Vec<(&String, &(f64, u64))> = thread.events.iter().collect();
        names.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
        for (name, (us, count)) in names.into_iter().take(top) {
            let _ = writeln!(out, "    {:>9.1} ms {count:>6}×  {name}", us / 1000.0);
        }
    }
    let field = |e: &Value, path: &[&str]| {
        path.iter()
            .try_fold(e, |v, k| v.get(*k))
            .and_then(Value::as_f64)
    };
    let mean = |name: &str, path: &[&str]| {
        let values: Vec<f64> = events
            .iter()
            .filter(|e| e["name"] == name)
            .filter_map(|e| field(e, path))
            .collect();
        // `sum` of no floats is −0.0, which would print as "-0".
        let sum = values.iter().fold(0.0, |a, v| a + v);
        (sum / values.len().max(1) as f64, values.len())
    };
    let (elements, styles) = mean("UpdateLayoutTree", &["args", "elementCount"]);
    let (dirty, layouts) = mean("Layout", &["args", "beginData", "dirtyObjects"]);
    let (total, _) = mean("Layout", &["args", "beginData", "totalObjects"]);
    let _ = writeln!(
        out,
        "  style updates: {styles} ({elements:.0} elements each on average); \
         layouts: {layouts} ({dirty:.0} of {total:.0} objects each on average)"
    );
    if let Some(main) = threads
        .iter()
        .find(|t| t.name.ends_with("/ CrRendererMain"))
    {
        let ms = |name: &str| main.events.get(name).map_or(0.0, |(us, _)| us / 1000.0);
        let frames = main
            .events
            .get("ProxyMain::BeginMainFrame")
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(
            out,
            "  the busiest page's {frames} main frames: {:.0} ms; in them animation-frame \
             callbacks {:.0}, style {:.0}, layout {:.0}, pre-paint {:.0}, paint {:.0} (layerize \
             {:.0} of it), commit {:.0} (style or layout a callback forced counts twice)",
            ms("ProxyMain::BeginMainFrame"),
            ms("FireAnimationFrame"),
            ms("Blink.Style.UpdateTime"),
            ms("Blink.Layout.UpdateTime"),
            ms("LocalFrameView::RunPrePaintLifecyclePhase"),
            ms("LocalFrameView::RunPaintLifecyclePhase"),
            ms("Layerize"),
            ms("Commit"),
        );
    }
    out
}

/// The page's work for one burst, medians over a phase's bursts, in ms.
#[derive(Debug, Clone, PartialEq)]
pub struct PerBurst {
    /// Bursts found (each `size` requests to `/api/fast`).
    pub bursts: usize,
    /// The page's main thread busy (its tasks).
    pub busy_ms: f64,
    /// Its main frames (`ProxyMain::BeginMainFrame`).
    pub frames_ms: f64,
    /// In them, the animation-frame callbacks: the page applying the
    /// frame's events and rendering (and the bench's frame counter).
    pub callbacks_ms: f64,
    /// In them, apart from the callbacks: style, layout, pre-paint and
    /// paint (layerize is part of paint).
    pub lifecycle_ms: f64,
}

/// The frame's phases after its callbacks (`Layerize` runs inside the paint
/// phase, so it is not listed again).
const LIFECYCLE: &[&str] = &[
    "Blink.Style.UpdateTime",
    "Blink.Layout.UpdateTime",
    "LocalFrameView::RunPrePaintLifecyclePhase",
    "LocalFrameView::RunPaintLifecyclePhase",
];

/// What the page's main thread did per burst of `size` requests, medians of
/// [`burst_sums`].
pub fn per_burst(events: &[Value], size: usize, window_ms: f64) -> Option<PerBurst> {
    let per = burst_sums(events, size, window_ms);
    let median = |k: usize| {
        let mut v: Vec<f64> = per.iter().map(|p| p[k]).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    (!per.is_empty()).then(|| PerBurst {
        bursts: per.len(),
        busy_ms: median(0),
        frames_ms: median(1),
        callbacks_ms: median(2),
        lifecycle_ms: median(3),
    })
}

/// Per burst, in ms: the main thread's tasks, its main frames, their
/// animation-frame callbacks, and their style to paint outside the
/// callbacks. The bursts are the page's `/api/fast` requests in order of
/// sending, `size` at a time (an incomplete last one is left out); a
/// burst's share runs from 15 ms before its first request for `window_ms`,
/// or until 15 ms before the next burst's first if that is sooner. The
/// page's main thread is the one that sent them.
pub fn burst_sums(events: &[Value], size: usize, window_ms: f64) -> Vec<[f64; 4]> {
    let thread = |e: &Value| (e["pid"].as_i64(), e["tid"].as_i64());
    let at = |e: &Value| e["ts"].as_f64().unwrap_or_default();
    let mut sends: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["name"] == "ResourceSendRequest"
                && e["args"]["data"]["url"]
                    .as_str()
                    .is_some_and(|u| u.contains("/api/fast"))
        })
        .collect();
    sends.sort_by(|a, b| at(a).total_cmp(&at(b)));
    let Some(main) = sends.first().map(|e| thread(e)) else {
        return Vec::new();
    };
    let starts: Vec<f64> = sends
        .chunks(size.max(1))
        .filter(|c| c.len() == size)
        .map(|c| at(c[0]))
        .collect();
    let spans: Vec<(&str, f64, f64)> = events
        .iter()
        .filter(|e| e["ph"] == "X" && thread(e) == main)
        .filter_map(|e| Some((e["name"].as_str()?, e["ts"].as_f64()?, e["dur"].as_f64()?)))
        .collect();
    // Style or layout a callback forces runs inside it: counted with it.
    let callbacks: Vec<(f64, f64)> = spans
        .iter()
        .filter(|(name, ..)| *name == "FireAnimationFrame")
        .map(|(_, ts, dur)| (*ts, ts + dur))
        .collect();
    let in_callback = |ts: f64| {
        callbacks
            .iter()
            .any(|(from, to)| (*from..*to).contains(&ts))
    };
    let lead = 15_000.0;
    starts
        .iter()
        .enumerate()
        .map(|(i, start)| {
            let from = start - lead;
            let mut to = start + window_ms * 1000.0;
            if let Some(next) = starts.get(i + 1) {
                to = to.min(next - lead);
            }
            let mut sums = [0.0; 4];
            for (name, ts, dur) in spans.iter().filter(|(_, ts, _)| (from..to).contains(ts)) {
                let slot = match *name {
                    "ThreadControllerImpl::RunTask" => 0,
                    "ProxyMain::BeginMainFrame" => 1,
                    "FireAnimationFrame" => 2,
                    n if LIFECYCLE.contains(&n) && !in_callback(*ts) => 3,
                    _ => continue,
                };
                sums[slot] += dur / 1000.0;
            }
            sums
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A renderer's main thread: a task, a layout, a paint (begin and end),
    /// a style update, one main frame and its layout phase.
    fn events() -> Vec<Value> {
        vec![
            json!({"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "Renderer"}}),
            json!({"ph": "M", "name": "thread_name", "pid": 1, "tid": 7, "args": {"name": "CrRendererMain"}}),
            json!({"ph": "X", "cat": "toplevel", "name": "ThreadControllerImpl::RunTask", "pid": 1, "tid": 7, "ts": 0, "dur": 5000}),
            json!({"ph": "X", "cat": "devtools.timeline", "name": "Layout", "pid": 1, "tid": 7, "ts": 100, "dur": 2000,
                   "args": {"beginData": {"dirtyObjects": 10, "totalObjects": 100}}}),
            json!({"ph": "X", "cat": "cc", "name": "ProxyMain::BeginMainFrame", "pid": 1, "tid": 7, "ts": 100, "dur": 4500}),
            json!({"ph": "X", "cat": "blink", "name": "Blink.Layout.UpdateTime", "pid": 1, "tid": 7, "ts": 100, "dur": 2100}),
            json!({"ph": "B", "cat": "devtools.timeline", "name": "Paint", "pid": 1, "tid": 7, "ts": 3000}),
            json!({"ph": "E", "cat": "devtools.timeline", "name": "Paint", "pid": 1, "tid": 7, "ts": 4500}),
            json!({"ph": "X", "cat": "devtools.timeline", "name": "UpdateLayoutTree", "pid": 1, "tid": 7, "ts": 10, "dur": 50,
                   "args": {"elementCount": 40}}),
        ]
    }

    /// An `X` event on thread `tid` of process 1.
    fn span(name: &str, tid: i64, ts_ms: f64, dur_ms: f64) -> Value {
        json!({"ph": "X", "name": name, "pid": 1, "tid": tid,
               "ts": ts_ms * 1000.0, "dur": dur_ms * 1000.0})
    }

    /// The page sending a request to `url` at `ts_ms`.
    fn send(tid: i64, ts_ms: f64, url: &str) -> Value {
        json!({"ph": "X", "name": "ResourceSendRequest", "pid": 1, "tid": tid,
               "ts": ts_ms * 1000.0, "dur": 0, "args": {"data": {"url": url}}})
    }

    #[test]
    fn per_burst_counts_the_sending_thread_within_each_bursts_window() {
        let fast = "http://127.0.0.1:1/api/fast?tag=x";
        let mut events = vec![
            // Burst 1 at 100 ms, burst 2 at 300 ms, burst 3 at 1 000 ms;
            // a request to another path is not a burst's.
            send(7, 100.0, fast),
            send(7, 101.0, fast),
            send(7, 150.0, "http://127.0.0.1:1/app.js"),
            send(7, 300.0, fast),
            send(7, 301.0, fast),
            send(7, 1000.0, fast),
            send(7, 1001.0, fast),
        ];
        // Burst 1: a task of 10 ms with a frame of 8 (callbacks 3, with a
        // forced layout of 1 inside them; style 1 and paint 2 after them),
        // and a task at 290 ms that belongs to burst 2 (it starts within
        // 15 ms of burst 2, so burst 1's share ends before it).
        events.push(span("ThreadControllerImpl::RunTask", 7, 110.0, 10.0));
        events.push(span("ProxyMain::BeginMainFrame", 7, 111.0, 8.0));
        events.push(span("FireAnimationFrame", 7, 111.0, 3.0));
        events.push(span("Blink.Layout.UpdateTime", 7, 112.0, 1.0));
        events.push(span("Blink.Style.UpdateTime", 7, 114.0, 1.0));
        events.push(span(
            "LocalFrameView::RunPaintLifecyclePhase",
            7,
            116.0,
            2.0,
        ));
        events.push(span("Layerize", 7, 117.0, 0.5));
        events.push(span("ThreadControllerImpl::RunTask", 7, 290.0, 4.0));
        // Burst 2: that task and one of 6 ms; another thread's work is not
        // the page's.
        events.push(span("ThreadControllerImpl::RunTask", 7, 310.0, 6.0));
        events.push(span("ThreadControllerImpl::RunTask", 9, 310.0, 50.0));
        // Burst 3: 20 ms inside its share of 400 ms, 30 ms after it.
        events.push(span("ThreadControllerImpl::RunTask", 7, 1200.0, 20.0));
        events.push(span("ThreadControllerImpl::RunTask", 7, 1500.0, 30.0));
        assert_eq!(
            burst_sums(&events, 2, 400.0),
            vec![
                [10.0, 8.0, 3.0, 3.0],
                [10.0, 0.0, 0.0, 0.0],
                [20.0, 0.0, 0.0, 0.0]
            ]
        );
        let got = per_burst(&events, 2, 400.0).expect("three bursts");
        assert_eq!(
            got,
            PerBurst {
                bursts: 3,
                busy_ms: 10.0,
                frames_ms: 0.0,
                callbacks_ms: 0.0,
                lifecycle_ms: 0.0
            }
        );
        // Four at a time: one burst of the first four requests (the last
        // two are an incomplete burst, left out), its share cut at 400 ms.
        assert_eq!(burst_sums(&events, 4, 400.0), vec![[20.0, 8.0, 3.0, 3.0]]);
        let four = per_burst(&events, 4, 400.0).expect("one burst of four");
        assert_eq!(
            (four.bursts, four.busy_ms, four.lifecycle_ms),
            (1, 20.0, 3.0)
        );
        // Without the third burst's requests and with shares of up to 1 s:
        // bursts of 10 and 30 ms (4 + 6 + 20), whose median is their mean.
        let without_third: Vec<Value> = events
            .iter()
            .enumerate()
            .filter(|(i, _)| !(5..7).contains(i))
            .map(|(_, e)| e.clone())
            .collect();
        let two = per_burst(&without_third, 2, 1000.0).expect("two bursts");
        assert_eq!((two.bursts, two.busy_ms), (2, 20.0));
        assert!(per_burst(&events[2..3], 2, 400.0).is_none());
    }

    #[test]
    fn complete_events_and_begin_end_pairs_count_on_their_named_thread() {
        let threads = threads(&events());
        assert_eq!(threads.len(), 1);
        let main = &threads[0];
        assert_eq!(main.name, "Renderer / CrRendererMain");
        assert_eq!(main.busy_us, 5000.0);
        assert_eq!(main.events["Layout"], (2000.0, 1));
        assert_eq!(main.events["Paint"], (1500.0, 1));
    }

    #[test]
    fn a_trace_without_style_or_layout_prints_zeros_without_a_sign() {
        let text = summary(&[], 1, 1);
        assert!(
            text.contains("style updates: 0 (0 elements each on average); layouts: 0 (0 of 0"),
            "{text}"
        );
    }

    #[test]
    fn the_summary_ranks_names_and_gives_style_and_layout_sizes() {
        let text = summary(&events(), 3, 3);
        assert!(
            text.contains("Renderer / CrRendererMain: busy 5 ms"),
            "{text}"
        );
        let run_task = text.find("RunTask").expect(&text);
        let frame = text.find("ProxyMain::BeginMainFrame\n").expect(&text);
        let layout = text.find("Blink.Layout.UpdateTime\n").expect(&text);
        assert!(run_task < frame && frame < layout, "longest first: {text}");
        assert!(!text.contains(" Layout\n"), "only the top three: {text}");
        assert!(
            text.contains("the busiest page's 1 main frames: 4 ms; in them animation-frame callbacks 0, style 0, layout 2,"),
            "{text}"
        );
        assert!(
            text.contains(
                "style updates: 1 (40 elements each on average); layouts: 1 (10 of 100 objects"
            ),
            "{text}"
        );
    }
}
