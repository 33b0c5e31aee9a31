//! A minimal DevTools-protocol client for headless Chromium.
//!
//! Chromium is started with `--remote-debugging-port=0`; it writes the port
//! it chose into `DevToolsActivePort` in its profile directory. We connect a
//! WebSocket to the browser endpoint, open a tab with `Target.createTarget`,
//! attach to it (flat sessions) and run `Runtime.evaluate` in it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Flags from `docs/facts.md`: without the background-networking ones
/// Chromium tries to reach outside hosts, which this network refuses.
pub const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    // A laptop-sized window, so the page lays out as a person would see it.
    "--window-size=1366,900",
];

/// Where Chromium is: `$CHROME`, else Debian's `/usr/bin/chromium`.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("CHROME").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// A running headless Chromium with one DevTools connection.
#[derive(Debug)]
pub struct Chromium {
    /// The browser process; killed on drop.
    child: Child,
    /// A fresh, empty profile: no cache, no cookies, no pooled sockets.
    profile: PathBuf,
    /// The browser-level DevTools socket.
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Next command id.
    next_id: u64,
    /// A trace's events as they come, while one runs ([`Chromium::start_trace`]):
    /// DevTools sends them between the answers that `call` waits for.
    trace: Option<Vec<Value>>,
}

/// A tab, addressed by its DevTools session.
#[derive(Debug, Clone)]
pub struct Page {
    /// Flat-session id for commands to this tab.
    session: String,
    /// The tab's target id, to close it.
    target: String,
}

static PROFILES: AtomicU32 = AtomicU32::new(0);

impl Chromium {
    /// Starts Chromium.
    ///
    /// # Panics
    ///
    /// When Chromium is not installed: browser tests never skip silently.
    pub async fn launch() -> Chromium {
        Chromium::launch_with_flags(&[]).await
    }

    /// Starts Chromium with `extra` flags after the usual ones (for a test
    /// only, e.g. `--ignore-certificate-errors` for the lab's self-signed
    /// TLS ports).
    ///
    /// # Panics
    ///
    /// When Chromium is not installed: browser tests never skip silently.
    pub async fn launch_with_flags(extra: &[&str]) -> Chromium {
        let binary = chromium_path();
        assert!(
            binary.is_file(),
            "Chromium is needed for the browser tests but {} does not exist.\n\
             Install it with `sudo apt-get install -y chromium` (Debian/Ubuntu), \
             or point $CHROME at a Chromium or Chrome binary.",
            binary.display()
        );
        let temp = std::env::temp_dir();
        if PROFILES.load(Ordering::Relaxed) == 0 {
            remove_stale_profiles(&temp);
        }
        let profile = temp.join(format!(
            "{PROFILE_PREFIX}{}-{}",
            std::process::id(),
            PROFILES.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        // Chromium's own temporary directory inside the profile: its
        // singleton socket's directory (`org.chromium.Chromium.*`) is made
        // there and goes with the profile, where the system's would keep one
        // per killed browser.
        let scratch = profile.join("tmp");
        std::fs::create_dir_all(&scratch).expect("create a Chromium profile directory");
        let child = Command::new(&binary)
            .env("TMPDIR", &scratch)
            .args(FLAGS)
            .args(extra)
            .arg("--remote-debugging-port=0")
            .arg("--remote-allow-origins=*")
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", binary.display()));
        let endpoint = wait_for_endpoint(&profile).await;
        let (socket, _) = tokio_tungstenite::connect_async(endpoint.as_str())
            .await
            .unwrap_or_else(|e| panic!("could not connect to Chromium at {endpoint}: {e}"));
        Chromium {
            child,
            profile,
            socket,
            next_id: 1,
            trace: None,
        }
    }

    /// Sends one command and waits for its answer (events are skipped).
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.try_call(session, method, params)
            .await
            .unwrap_or_else(|error| panic!("DevTools {method} failed: {error}"))
    }

    /// [`Chromium::call`], with DevTools' own error (e.g. the page
    /// navigated while it was being evaluated) as an `Err`.
    async fn try_call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::Text(command.to_string().into()))
            .await
            .unwrap_or_else(|e| panic!("DevTools {method}: send failed: {e}"));
        let answer = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(message) = self.socket.next().await {
                let Ok(Message::Text(text)) = message else {
                    continue;
                };
                let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if value["id"] == json!(id) {
                    return value;
                }
                self.keep_trace(value);
            }
            panic!("DevTools connection closed while waiting for {method}");
        })
        .await
        .unwrap_or_else(|_| panic!("DevTools {method}: no answer within 30 s"));
        match answer.get("error") {
            Some(error) => Err(error.clone()),
            None => Ok(answer["result"].clone()),
        }
    }

    /// Opens `url` in a new tab.
    pub async fn open(&mut self, url: &str) -> Page {
        let target = self
            .call(None, "Target.createTarget", json!({ "url": url }))
            .await;
        let target_id = target["targetId"].clone();
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await;
        Page {
            session: attached["sessionId"]
                .as_str()
                .expect("a DevTools session id")
                .to_owned(),
            target: target_id.as_str().unwrap_or_default().to_owned(),
        }
    }

    /// Sends DevTools command `method` to `page` and returns its result (for
    /// what the helpers here do not cover, e.g. the bench's CPU profile).
    pub async fn command(&mut self, page: &Page, method: &str, params: Value) -> Value {
        let session = page.session.clone();
        self.call(Some(&session), method, params).await
    }

    /// Starts a trace (DevTools' `Tracing` domain, for the bench's
    /// `--trace`) asked of `page`'s tab: every thread of the browser's,
    /// the GPU's and the tab's renderer processes, in `categories`, kept
    /// until [`Chromium::stop_trace`]. Not the network service's process:
    /// tracing it too (asked of the browser) took more of the machine's two
    /// cores and made the page's own figures 10 to 40 % higher.
    pub async fn start_trace(&mut self, page: &Page, categories: &[&str]) {
        self.trace = Some(Vec::new());
        let config = json!({
            "transferMode": "ReportEvents",
            "traceConfig": {
                "recordMode": "recordContinuously",
                // Room for a loaded phase (about 350 000 events): a full
                // buffer drops the oldest, which `stop_trace` reports.
                "traceBufferSizeInKb": 400_000,
                "includedCategories": categories,
            },
        });
        self.call(Some(&page.session), "Tracing.start", config)
            .await;
    }

    /// Ends the trace and returns its events (Chrome's trace event format:
    /// `name`, `ph`, `ts` and `dur` in µs, `pid`, `tid`, `args`), at most
    /// 60 s after asking, and whether Chromium dropped some because its
    /// buffer filled (`dataLossOccurred`).
    pub async fn stop_trace(&mut self, page: &Page) -> (Vec<Value>, bool) {
        self.call(Some(&page.session), "Tracing.end", json!({}))
            .await;
        let done = tokio::time::timeout(Duration::from_secs(60), async {
            while !self.trace_complete() {
                let Some(message) = self.socket.next().await else {
                    panic!("DevTools connection closed while a trace was collected");
                };
                if let Ok(Message::Text(text)) = message {
                    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    self.keep_trace(value);
                }
            }
        })
        .await;
        done.unwrap_or_else(|_| panic!("DevTools sent no end of trace within 60 s"));
        let kept = self.trace.take().unwrap_or_default();
        let lost = kept
            .last()
            .is_some_and(|end| end["params"]["dataLossOccurred"] == true);
        let events = kept
            .into_iter()
            .filter(|v| v["method"] == "Tracing.dataCollected")
            .flat_map(|mut v| match v["params"]["value"].take() {
                Value::Array(events) => events,
                _ => Vec::new(),
            })
            .collect();
        (events, lost)
    }

    /// Keeps `message` if a trace is being collected and it is one of the
    /// trace's events.
    fn keep_trace(&mut self, message: Value) {
        if let Some(kept) = &mut self.trace
            && message["method"]
                .as_str()
                .is_some_and(|m| m.starts_with("Tracing."))
        {
            kept.push(message);
        }
    }

    /// Whether the trace's end has come.
    fn trace_complete(&self) -> bool {
        self.trace.as_ref().is_some_and(|kept| {
            kept.last()
                .is_some_and(|v| v["method"] == "Tracing.tracingComplete")
        })
    }

    /// Brings the tab to the front, as a person clicking on it would (a tab
    /// in the background gets no animation frames, so the page does not
    /// redraw).
    pub async fn bring_to_front(&mut self, page: &Page) {
        self.call(Some(&page.session), "Page.bringToFront", json!({}))
            .await;
    }

    /// Closes the tab, as a person closing it would (the browser stays open).
    pub async fn close(&mut self, page: Page) {
        self.call(
            None,
            "Target.closeTarget",
            json!({ "targetId": page.target }),
        )
        .await;
    }

    /// Opens the lab page at `url` and waits (at most 30 s) until it is live:
    /// its events socket is open, Fire is enabled and the server's policy is
    /// on screen. A page that never gets there fails the test, saying so.
    pub async fn open_live(&mut self, url: &str) -> Page {
        // The landing view is the lesson track; the workbench has its own URL.
        let url = if url.contains('#') {
            url.to_owned()
        } else {
            format!("{url}#workbench")
        };
        let page = self.open(&url).await;
        let live = "document.querySelector('main')?.dataset.socket === 'open' \
                    && !document.getElementById('fire').disabled \
                    && !!document.getElementById('policy-idle')";
        self.eval_until_true(
            &page,
            "the lab page to load and open its live link",
            Duration::from_secs(30),
            live,
        )
        .await;
        page
    }

    /// Clicks the workbench's Fire button and waits (at most 30 s) until `n`
    /// of the run's requests are drawn as done.
    pub async fn fire_and_wait(&mut self, page: &Page, n: u64) {
        self.eval(page, "document.getElementById('fire').click()")
            .await;
        self.until_done(page, n).await;
    }

    /// Waits until the page's timeline draws `n` requests done.
    pub async fn until_done(&mut self, page: &Page, n: u64) {
        self.eval_until(
            page,
            "the run's requests to be done",
            Duration::from_secs(30),
            "document.querySelectorAll('g.req[data-phase=done]').length",
            |done| (done == n).then_some(()),
        )
        .await;
    }

    /// Opens lesson `id` of the lab at `base` (`http://127.0.0.1:PORT/`) and
    /// waits until its live link is open and it asks for a prediction.
    pub async fn open_lesson(&mut self, base: &str, id: &str) -> Page {
        let page = self.open(&format!("{base}#lesson={id}")).await;
        let live = format!(
            "document.querySelector('main')?.dataset.socket === 'open' \
             && document.querySelector('section.lesson')?.dataset.lesson === '{id}'"
        );
        self.eval_until_true(
            &page,
            "the lesson to load and the live link to open",
            Duration::from_secs(30),
            &live,
        )
        .await;
        page
    }

    /// Predicts `prediction` in the open lesson in `page` (a choice's index,
    /// or a number for a number question, then Lock it in).
    pub async fn predict(&mut self, page: &Page, prediction: u32) {
        let predict = format!(
            "(() => {{ const c = document.querySelector('button.choice[data-choice=\"{prediction}\"]'); \
               if (c) {{ c.click(); return 'choice'; }} \
               const i = document.getElementById('prediction'); \
               const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set; \
               set.call(i, '{prediction}'); i.dispatchEvent(new Event('input', {{ bubbles: true }})); \
               return 'number'; }})()"
        );
        let kind = self.eval(page, &predict).await;
        if kind == "number" {
            self.click_when_enabled(page, "predict", Duration::from_secs(10))
                .await;
        }
    }

    /// Clicks the button with id `id` in `page` as soon as it is there and
    /// enabled (at most `limit`: it only stops a broken test).
    pub async fn click_when_enabled(&mut self, page: &Page, id: &str, limit: Duration) {
        let click = format!(
            "(() => {{ const b = document.getElementById('{id}'); \
               if (b && !b.disabled) {{ b.click(); return true; }} return false; }})()"
        );
        self.eval_until_true(page, &format!("the #{id} button"), limit, &click)
            .await;
    }

    /// Takes the open lesson in `page`: predicts `choice` (a choice's index,
    /// or a number for a number question), runs it, and waits (at most
    /// `limit`) until it has measured its answer. Returns the measured
    /// answer (`data-answer`) and every figure (`data-figure` → text).
    pub async fn take_lesson(
        &mut self,
        page: &Page,
        prediction: u32,
        limit: Duration,
    ) -> (String, std::collections::BTreeMap<String, String>) {
        self.predict(page, prediction).await;
        self.click_when_enabled(page, "run-lesson", Duration::from_secs(10))
            .await;
        let stage = self
            .eval_until(
                page,
                "the lesson to measure its answer",
                limit,
                "document.querySelector('section.lesson').dataset.stage",
                |stage| {
                    let stage = stage.as_str().unwrap_or_default().to_owned();
                    matches!(stage.as_str(), "answered" | "failed").then_some(stage)
                },
            )
            .await;
        if stage == "failed" {
            let why = self
                .eval(
                    page,
                    "document.getElementById('lesson-problem')?.textContent",
                )
                .await;
            panic!("the lesson failed: {why}");
        }
        let answer = self
            .eval(page, "document.getElementById('answer').dataset.answer")
            .await;
        let figures = self
            .eval(
                page,
                "Object.fromEntries(Array.from(document.querySelectorAll('[data-figure]')) \
                   .map(d => [d.dataset.figure, d.textContent]))",
            )
            .await;
        let figures = figures
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        (answer.as_str().unwrap_or_default().to_owned(), figures)
    }

    /// The session the server issued to `page` (the lab page shows it as
    /// `data-session` on its `main`), as the lab's owner of its connections.
    pub async fn session_of(&mut self, page: &Page) -> keepalive_lab_server::sessions::Owner {
        let id = self
            .eval(page, "document.querySelector('main').dataset.session")
            .await;
        let id = id.as_str().expect("the page shows its session");
        keepalive_lab_server::sessions::Owner::Session(
            protocol::SessionId::parse(id).expect("a valid session id"),
        )
    }

    /// `Runtime.evaluate` of `expression` in `page`, awaiting a promise.
    async fn evaluate(&mut self, page: &Page, expression: &str) -> Result<Value, Value> {
        let params = json!({
            "expression": expression,
            "returnByValue": true,
            "awaitPromise": true,
        });
        self.try_call(Some(&page.session), "Runtime.evaluate", params)
            .await
    }

    /// [`Chromium::eval`] while `page` may be loading another document (a
    /// link that reloads it): `None` when the evaluation was cut off by the
    /// navigation (or ran in a page not ready for it), to be tried again.
    pub async fn eval_across_loads(&mut self, page: &Page, expression: &str) -> Option<Value> {
        let result = self.evaluate(page, expression).await.ok()?;
        if result.get("exceptionDetails").is_some() {
            return None;
        }
        Some(result["result"]["value"].clone())
    }

    /// Evaluates `expression` in `page` (awaiting a promise) and returns its
    /// value as JSON.
    pub async fn eval(&mut self, page: &Page, expression: &str) -> Value {
        let result = self
            .evaluate(page, expression)
            .await
            .unwrap_or_else(|error| panic!("DevTools Runtime.evaluate failed: {error}"));
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("JavaScript `{expression}` threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` in `page` every 25 ms ([`crate::eventually`])
    /// until `accept` makes something of its value (`Some`), and returns
    /// that; panics with `what` after `limit`. The limit only stops a broken
    /// test; it asserts no speed.
    pub async fn eval_until<T>(
        &mut self,
        page: &Page,
        what: &str,
        limit: Duration,
        expression: &str,
        mut accept: impl FnMut(Value) -> Option<T>,
    ) -> T {
        crate::eventually(what, limit, async || {
            accept(self.eval(page, expression).await)
        })
        .await
    }

    /// Waits, as [`Chromium::eval_until`] does, until `expression` in `page`
    /// is `true` (the boolean; a truthy value is not enough).
    pub async fn eval_until_true(
        &mut self,
        page: &Page,
        what: &str,
        limit: Duration,
        expression: &str,
    ) {
        self.eval_until(page, what, limit, expression, |v| (v == true).then_some(()))
            .await;
    }
}

impl Chromium {
    /// Saves a PNG of `page` to `path` (1280 px wide, the whole page).
    pub async fn screenshot(&mut self, page: &Page, path: &Path) {
        use base64_png::decode;
        let shot = self
            .call(
                Some(&page.session),
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        let data = shot["data"].as_str().expect("screenshot data");
        std::fs::write(path, decode(data)).expect("write the screenshot");
    }

    /// Emulates `prefers-color-scheme: dark` (or light) in `page`.
    pub async fn prefer_dark(&mut self, page: &Page, dark: bool) {
        let value = if dark { "dark" } else { "light" };
        self.call(
            Some(&page.session),
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": value }] }),
        )
        .await;
    }

    /// Emulates a screen of `width` × `height` CSS pixels in `page` (the
    /// window of a laptop or a projector), as `Emulation.setDeviceMetricsOverride`.
    pub async fn set_viewport(&mut self, page: &Page, width: u32, height: u32) {
        self.call(
            Some(&page.session),
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
    }

    /// When `$KEEPALIVE_LAB_SCREENSHOT` names a directory, saves `page` there
    /// as `<name>.png`: a way to look at what a test saw.
    pub async fn screenshot_if_asked(&mut self, page: &Page, name: &str) {
        if let Some(dir) = std::env::var_os("KEEPALIVE_LAB_SCREENSHOT") {
            let path = PathBuf::from(dir).join(format!("{name}.png"));
            self.screenshot(page, &path).await;
            eprintln!("screenshot: {}", path.display());
        }
    }
}

/// Just enough base64 to decode a DevTools screenshot.
mod base64_png {
    /// Decodes standard base64 (padding allowed, no line breaks).
    pub fn decode(text: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let bytes: Vec<u8> = text.bytes().filter(|c| *c != b'=').map(value).collect();
        bytes
            .chunks(4)
            .flat_map(|chunk| {
                let n = chunk
                    .iter()
                    .enumerate()
                    .fold(0_u32, |acc, (i, v)| acc | (u32::from(*v) << (18 - 6 * i)));
                let out = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
                out.into_iter().take(chunk.len().saturating_sub(1))
            })
            .collect()
    }
}

impl Drop for Chromium {
    /// Kills the browser and removes its profile. Chromium's helper
    /// processes (network service, disk cache) outlive the browser process
    /// by a few milliseconds and still write into the profile as they go,
    /// so one removal right after the kill used to leave a directory behind
    /// for most tests: the browser is reaped first, and the removal is
    /// repeated until the directory stays gone (at most about a second).
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        for _ in 0..200 {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for _ in 0..20 {
            let _ = std::fs::remove_dir_all(&self.profile);
            std::thread::sleep(Duration::from_millis(50));
            if !self.profile.exists() {
                break;
            }
        }
    }
}

/// Prefix of the profile directories in the temporary directory, followed
/// by the test process's id and a counter.
const PROFILE_PREFIX: &str = "keepalive-lab-chromium-";

/// Removes the profiles left by test processes that are gone (a run that
/// was killed, or one from before [`Chromium`]'s drop waited for its
/// browser). Only where `/proc` says which processes exist.
fn remove_stale_profiles(temp: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PROFILE_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Reads `ws://127.0.0.1:PORT/devtools/browser/…` from `DevToolsActivePort`.
async fn wait_for_endpoint(profile: &Path) -> String {
    let file = profile.join("DevToolsActivePort");
    for _ in 0..400 {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                return format!("ws://127.0.0.1:{port}{path}");
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "Chromium did not open its DevTools port within 20 s (no {}); \
         try running it by hand with the flags in tests/src/chromium.rs",
        file.display()
    );
}
