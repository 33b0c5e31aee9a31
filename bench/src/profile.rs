//! Where a page's main thread spent its time: a summary of a Chromium CPU
//! profile (DevTools' `Profiler.stop` result, the `.cpuprofile` format).
//!
//! The profile is a call tree (`nodes`, each with a `callFrame` and its
//! `children`) and a list of samples (`samples`: the node on top of the
//! stack; `timeDeltas`: microseconds since the previous sample). A sample's
//! time counts as *self* time for the function on top and as *total* time
//! for every distinct function on its stack, so a recursive function is not
//! counted twice.

use std::collections::HashMap;

use serde_json::Value;

/// The time of each function, in microseconds.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Times {
    /// The function on top of the stack.
    pub self_us: f64,
    /// The function anywhere on the stack.
    pub total_us: f64,
}

/// A function's name as the summary shows it: its name (or `(anonymous)`)
/// and, for script code, the file it is in.
fn name(frame: &Value) -> String {
    let function = frame["functionName"].as_str().unwrap_or_default();
    let function = if function.is_empty() {
        "(anonymous)"
    } else {
        function
    };
    let url = frame["url"].as_str().unwrap_or_default();
    match url.rsplit('/').next() {
        Some(file) if !file.is_empty() => format!("{function} [{file}]"),
        _ => function.to_owned(),
    }
}

/// Self and total time per function, and the whole profile's length.
pub fn times(profile: &Value) -> (HashMap<String, Times>, f64) {
    let nodes = profile["nodes"].as_array().cloned().unwrap_or_default();
    let mut names: HashMap<u64, String> = HashMap::new();
    let mut parent: HashMap<u64, u64> = HashMap::new();
    for node in &nodes {
        let Some(id) = node["id"].as_u64() else {
            continue;
        };
        names.insert(id, name(&node["callFrame"]));
        for child in node["children"].as_array().into_iter().flatten() {
            if let Some(child) = child.as_u64() {
                parent.insert(child, id);
            }
        }
    }
    let samples = profile["samples"].as_array().cloned().unwrap_or_default();
    let deltas = profile["timeDeltas"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut times: HashMap<String, Times> = HashMap::new();
    let mut whole = 0.0;
    for (i, sample) in samples.iter().enumerate() {
        let Some(mut id) = sample.as_u64() else {
            continue;
        };
        // A sample's time is the interval up to the next one.
        let us = deltas
            .get(i + 1)
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
            .max(0.0);
        whole += us;
        let mut seen: Vec<&str> = Vec::new();
        let mut top = true;
        loop {
            if let Some(name) = names.get(&id)
                && name != "(root)"
            {
                let entry = times.entry(name.clone()).or_default();
                if top {
                    entry.self_us += us;
                }
                if !seen.contains(&name.as_str()) {
                    entry.total_us += us;
                    seen.push(name);
                }
            }
            top = false;
            match parent.get(&id) {
                Some(p) => id = *p,
                None => break,
            }
        }
    }
    (times, whole)
}

/// The `top` functions by self time and by total time, as text: the busy
/// share of the profile first (everything but `(idle)`).
pub fn summary(profile: &Value, top: usize) -> String {
    let (times, whole) = times(profile);
    let idle = times.get("(idle)").map_or(0.0, |t| t.self_us);
    let busy = (whole - idle).max(0.0);
    let mut out = format!(
        "profile of {:.0} ms: busy {:.0} ms ({:.0} %), idle {:.0} ms\n",
        whole / 1e3,
        busy / 1e3,
        if whole > 0.0 {
            busy / whole * 100.0
        } else {
            0.0
        },
        idle / 1e3
    );
    let share = |us: f64| if busy > 0.0 { us / busy * 100.0 } else { 0.0 };
    let rows: Vec<(&String, &Times)> = times.iter().filter(|(n, _)| *n != "(idle)").collect();
    let by = |title: &str, time: fn(&Times) -> f64| {
        let mut rows = rows.clone();
        rows.sort_by(|a, b| time(b.1).total_cmp(&time(a.1)));
        let mut text = format!("  by {title}:\n");
        for (name, t) in rows.iter().take(top) {
            let us = time(t);
            text += &format!("    {:7.1} ms {:5.1} %  {name}\n", us / 1e3, share(us));
        }
        text
    };
    out += &by("self time (share of busy time)", |t| t.self_us);
    out += &by("total time (the function and what it called)", |t| {
        t.total_us
    });
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// root → a → b → a (recursion), and root → (idle).
    fn profile() -> Value {
        let frame = |name: &str, url: &str| json!({ "functionName": name, "url": url });
        json!({
            "nodes": [
                { "id": 1, "callFrame": frame("(root)", ""), "children": [2, 5] },
                { "id": 2, "callFrame": frame("a", "http://h/app.js"), "children": [3] },
                { "id": 3, "callFrame": frame("b", "wasm://wasm/abc"), "children": [4] },
                { "id": 4, "callFrame": frame("a", "http://h/app.js"), "children": [] },
                { "id": 5, "callFrame": frame("(idle)", ""), "children": [] },
            ],
            "samples": [2, 3, 4, 5, 5],
            "timeDeltas": [0, 100, 200, 300, 400],
        })
    }

    #[test]
    fn self_time_goes_to_the_top_and_total_time_once_per_stack() {
        let (times, whole) = times(&profile());
        assert_eq!(whole, 1000.0, "the deltas after the first sample");
        let a = &times["a [app.js]"];
        // Samples on a: 100 (on node 2) and 300 (on node 4, under b).
        assert_eq!(a.self_us, 400.0);
        // Every busy sample has a on its stack; the recursion counts once.
        assert_eq!(a.total_us, 600.0);
        let b = &times["b [abc]"];
        assert_eq!((b.self_us, b.total_us), (200.0, 500.0));
        assert_eq!(times["(idle)"].self_us, 400.0);
        assert!(!times.contains_key("(root)"));
    }

    #[test]
    fn the_summary_gives_the_busy_share_and_ranks_functions() {
        let text = summary(&profile(), 5);
        assert!(
            text.starts_with("profile of 1 ms: busy 1 ms (60 %), idle 0 ms"),
            "{text}"
        );
        let by_self = text.split("by total").next().unwrap();
        let a = by_self.find("a [app.js]").unwrap();
        let b = by_self.find("b [abc]").unwrap();
        assert!(a < b, "a has more self time than b: {text}");
        assert!(!text.contains("(idle)\n"), "idle is not a row: {text}");
    }
}
