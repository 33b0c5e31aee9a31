//! The burst composer (every option a burst can have, and a shareable link)
//! and the agent composer (a Node.js `http.Agent`'s options,
//! <https://nodejs.org/api/http.html#class-httpagent>, axios' request
//! `timeout`, the request and its pace; Start and Stop go over the
//! WebSocket, `agent_start` and `agent_stop`: the agent runs in the lab's
//! server, a client beside the browser, and the server caps it).
//!
//! Each control has an id; a change is applied by [`edit_burst`] or
//! [`edit_agent`], pure functions of the control's id and value.

use protocol::{AgentTarget, CloseMode, RaceClose, Scheduling};

use crate::agent::{AgentSettings, limit_words, parse_limit, parse_ms};
use crate::dom::{El, Node, el, text};
use crate::settings::{BurstSettings, Credentials, Endpoint, MAX_COUNT, Order, Priority, Target};

/// A whole number as typed, at most `max`; `default` if it is not one.
fn num(text: &str, default: u32, max: u32) -> u32 {
    text.trim().parse::<u32>().map_or(default, |v| v.min(max))
}

/// Applies a change of control `id` to `value` (a checkbox's: `"true"` or
/// `"false"`); `false` if `id` is none of the composer's.
pub fn edit_burst(s: &mut BurstSettings, id: &str, v: &str) -> bool {
    match (id, &mut s.endpoint) {
        ("c-count", _) => s.count = num(v, 12, MAX_COUNT).max(1),
        ("c-endpoint", _) => {
            if let Some(kind) = Endpoint::KINDS.into_iter().find(|k| k.name() == v) {
                s.endpoint = kind
            }
        }
        ("p-ms", Endpoint::Slow { ms, .. }) => *ms = num(v, 1000, 120_000),
        ("p-phase", Endpoint::Slow { body, .. }) => *body = v == "body",
        ("p-bytes", Endpoint::Drip { bytes, .. }) => *bytes = num(v, 2000, 1_048_576).max(1),
        ("p-chunks", Endpoint::Drip { chunks, .. }) => *chunks = num(v, 10, 1000).max(1),
        ("p-every", Endpoint::Drip { interval_ms, .. }) => *interval_ms = num(v, 200, 120_000),
        ("p-beat", Endpoint::Heartbeat { interval_ms, .. }) => {
            *interval_ms = num(v, 1000, 120_000).max(1)
        }
        ("p-duration", Endpoint::Heartbeat { duration_ms, .. }) => {
            *duration_ms = num(v, 6000, 120_000).max(1)
        }
        ("p-mode", Endpoint::Close(mode)) => {
            if let Some(m) = CloseMode::ALL.into_iter().find(|m| m.as_str() == v) {
                *mode = m
            }
        }
        ("p-drop", Endpoint::Race(close)) => {
            *close = if v == "rst" {
                RaceClose::Rst
            } else {
                RaceClose::Fin
            }
        }
        ("p-sse-every", Endpoint::Sse { interval_ms, .. }) => {
            *interval_ms = num(v, 500, 60_000).max(100)
        }
        ("p-sse-count", Endpoint::Sse { count, .. }) => *count = num(v, 10, 10_000).max(1),
        ("c-order", _) => {
            s.order = if v == "sequential" {
                Order::Sequential
            } else {
                Order::Concurrent
            }
        }
        ("c-spacing", _) => s.spacing_ms = num(v, 0, 60_000),
        ("c-target", _) => {
            s.target = match v {
                "second-port" => Target::SecondPort,
                "other-host" => Target::OtherHost,
                "middlebox" => Target::Middlebox,
                "https-h2" => Target::TlsH2,
                "https-h1" => Target::TlsH1,
                "https-h2-limited" => Target::TlsH2Limited,
                _ => Target::Same,
            }
        }
        ("c-credentials", _) => {
            s.credentials = match v {
                "omit" => Credentials::Omit,
                "include" => Credentials::Include,
                _ => Credentials::Default,
            }
        }
        ("c-priority", _) => {
            s.priority = match v {
                "high" => Priority::High,
                "low" => Priority::Low,
                _ => Priority::Auto,
            }
        }
        ("c-timeout", _) => s.timeout_ms = v.trim().parse::<u32>().ok().filter(|t| *t > 0),
        ("c-method", _) => s.post = v == "post",
        ("c-identical", _) => s.identical_url = v == "true",
        _ => return false,
    }
    true
}

/// Applies a change of the agent composer's control `id`; `false` if `id`
/// is none of its.
pub fn edit_agent(s: &mut AgentSettings, id: &str, v: &str) -> bool {
    let o = &mut s.options;
    let n = |default: u64| v.trim().parse().unwrap_or(default);
    match id {
        "a-keep-alive" => o.keep_alive = v == "true",
        "a-keep-alive-msecs" => o.keep_alive_msecs = n(1000),
        "a-max-sockets" => o.max_sockets = parse_limit(v),
        "a-max-total-sockets" => o.max_total_sockets = parse_limit(v),
        "a-max-free-sockets" => o.max_free_sockets = v.trim().parse().unwrap_or(256),
        "a-scheduling" => {
            o.scheduling = if v == "fifo" {
                Scheduling::Fifo
            } else {
                Scheduling::Lifo
            }
        }
        "a-timeout" => o.timeout = parse_ms(v),
        "a-request-timeout" => o.request_timeout = parse_ms(v),
        "a-path" => s.request.path = v.trim().to_owned(),
        "a-target" => {
            s.request.target = match v {
                "second-port" => AgentTarget::SecondPort,
                "middlebox" => AgentTarget::Middlebox,
                _ => AgentTarget::Same,
            }
        }
        "a-every" => s.every_ms = v.trim().parse().unwrap_or(0),
        "a-count" => s.count = v.trim().parse().unwrap_or(1),
        "a-linger" => s.linger_ms = v.trim().parse().unwrap_or(0),
        _ => return false,
    }
    true
}

/// `<option>`.
pub(super) fn option(value: &'static str, label: impl Into<String>, selected: bool) -> Node {
    el("option")
        .attr("value", value)
        .attr_if("selected", selected.then_some(""))
        .text(label.into())
        .done()
}

/// `<label>` with its words, then `control`.
pub(super) fn label(words: impl Into<String>, control: El) -> Node {
    el("label")
        .kids(vec![text(words.into()), control.done()])
        .done()
}

/// A number `<input>`, `id`, between `min` and `max`, showing `value`.
fn number(id: &'static str, min: &'static str, max: String, value: String) -> El {
    el("input")
        .attr("id", id)
        .attr("type", "number")
        .attr("min", min)
        .attr("max", max)
        .attr("value", value)
}

/// A `<select>`, `id`, with `options`.
pub(super) fn select(id: &'static str, options: Vec<Node>) -> El {
    el("select").attr("id", id).kids(options)
}

/// A `<select>`, `id`, of `choices` (value, words, what it stands for),
/// the one standing for `current` selected.
fn choose<T: PartialEq + Copy>(
    id: &'static str,
    current: T,
    choices: &[(&'static str, &'static str, T)],
) -> El {
    select(
        id,
        choices
            .iter()
            .map(|&(value, words, t)| option(value, words, t == current))
            .collect(),
    )
}

/// `disabled` when `off`.
pub(super) fn disabled(control: El, off: bool) -> El {
    control.attr_if("disabled", off.then_some(""))
}

/// The endpoint's own parameters.
fn params(endpoint: Endpoint) -> Vec<Node> {
    let n = |v: u32| v.to_string();
    match endpoint {
        Endpoint::Hang | Endpoint::Fast => vec![],
        Endpoint::Slow { ms, body } => vec![
            label("delay (ms) ", number("p-ms", "0", n(120_000), n(ms))),
            label(
                "before ",
                choose(
                    "p-phase",
                    body,
                    &[
                        ("headers", "the head (time to first byte)", false),
                        ("body", "the body (slow download)", true),
                    ],
                ),
            ),
        ],
        Endpoint::Drip {
            bytes,
            chunks,
            interval_ms,
        } => vec![
            label("bytes ", number("p-bytes", "1", n(1_048_576), n(bytes))),
            label("chunks ", number("p-chunks", "1", n(1000), n(chunks))),
            label(
                "every (ms) ",
                number("p-every", "0", n(120_000), n(interval_ms)),
            ),
        ],
        Endpoint::Heartbeat {
            interval_ms,
            duration_ms,
        } => vec![
            label(
                "a byte every (ms) ",
                number("p-beat", "1", n(120_000), n(interval_ms)),
            ),
            label(
                "answer after (ms) ",
                number("p-duration", "1", n(120_000), n(duration_ms)),
            ),
        ],
        Endpoint::Close(mode) => vec![label(
            "how ",
            choose(
                "p-mode",
                mode,
                &[
                    ("header", "Connection: close (polite)", CloseMode::Header),
                    ("fin", "FIN, no response", CloseMode::Fin),
                    ("rst", "RST (reset)", CloseMode::Rst),
                    ("mid_body", "mid-body", CloseMode::MidBody),
                ],
            ),
        )],
        Endpoint::Race(close) => vec![label(
            "the next request on each HTTP/1.1 connection is dropped with ",
            choose(
                "p-drop",
                close,
                &[
                    (
                        "fin",
                        "FIN (the server closed as it arrived)",
                        RaceClose::Fin,
                    ),
                    ("rst", "RST (as when it is left unread)", RaceClose::Rst),
                ],
            ),
        )],
        Endpoint::Sse { interval_ms, count } => vec![
            label(
                "event every (ms) ",
                number("p-sse-every", "100", n(60_000), n(interval_ms)),
            ),
            label("events ", number("p-sse-count", "1", n(10_000), n(count))),
        ],
    }
}

/// What the burst composer shows besides its settings.
pub struct BurstView<'a> {
    /// The settings shown.
    pub settings: BurstSettings,
    /// The link to these settings, once made.
    pub share_url: Option<&'a str>,
    /// Firing and releasing need the live socket.
    pub connected: bool,
    /// Why the last action failed, if it did.
    pub problem: Option<String>,
    /// The origin an HTTPS target resolves to, when one is chosen: the page
    /// links it so the learner can accept the lab's certificate once.
    pub https_origin: Option<String>,
    /// The run shown, in a line beside Fire ([`run_status`]): the Measured
    /// panel and the timeline are below the other panels, out of view.
    pub run_status: Option<String>,
}

/// A run in one line: that it went out, whether it has ended, and where
/// its figures are (found in review: firing showed nothing in view, the
/// figures being 1 500 px below the button). It changes twice a run, not at
/// every event: the live counts are in the Measured panel, and a line that
/// changed with each request would be one more patch in each frame of a run
/// (bench figures 3 and 4 measure this page).
pub fn run_status(run: &crate::state::Run) -> String {
    format!(
        "Run {}: {} fired, {}. Measured and the timeline are below the panels.",
        run.name(),
        crate::lessons::measure::count(run.requests.len(), "requests"),
        if run.is_live() { "running" } else { "ended" },
    )
}

/// The burst composer.
pub fn burst(view: BurstView<'_>) -> Node {
    let s = view.settings;
    let tls_note = s.target.is_tls().then(|| {
        let mut kids = vec![text(
            "HTTPS uses a certificate the lab made for itself, which your browser does not \
             trust yet: open ",
        )];
        kids.push(match &view.https_origin {
            Some(origin) => el("a")
                .attr("href", origin.clone())
                .attr("target", "_blank")
                .attr("rel", "noopener")
                .text(origin.clone())
                .done(),
            None => el("span").text("the HTTPS address the lab printed").done(),
        });
        let mut then = " once, choose Advanced → Proceed, then come back. Until then these \
                        requests fail."
            .to_owned();
        if matches!(s.target, Target::TlsH2 | Target::TlsH2Limited) {
            then += " Over HTTP/2 the keep-alive race is not staged and /api/close answers \
                     400: an HTTP/2 connection ends with GOAWAY.";
        }
        kids.push(text(then));
        el("p")
            .attr("class", "help")
            .attr("id", "c-tls-note")
            .kids(kids)
            .done()
    });
    let fields = el("div")
        .attr("class", "fields")
        .kids(vec![
            label(
                "requests ",
                number("c-count", "1", MAX_COUNT.to_string(), s.count.to_string()),
            ),
            label(
                "endpoint ",
                select(
                    "c-endpoint",
                    Endpoint::KINDS
                        .iter()
                        .map(|k| option(k.name(), k.menu_label(), k.name() == s.endpoint.name()))
                        .collect(),
                ),
            ),
        ])
        .kids(params(s.endpoint))
        .kids(vec![
            label(
                "fired ",
                choose(
                    "c-order",
                    s.order,
                    &[
                        ("concurrent", "all at once", Order::Concurrent),
                        ("sequential", "one after another", Order::Sequential),
                    ],
                ),
            ),
            label(
                "spacing (ms) ",
                number("c-spacing", "0", "60000".into(), s.spacing_ms.to_string()),
            ),
            label(
                "to ",
                choose(
                    "c-target",
                    s.target,
                    &[
                        ("same", "this origin", Target::Same),
                        (
                            "second-port",
                            "the second port (another pool)",
                            Target::SecondPort,
                        ),
                        (
                            "other-host",
                            "localhost ⇄ 127.0.0.1 (another pool)",
                            Target::OtherHost,
                        ),
                        (
                            "middlebox",
                            "through the middlebox (a NAT gateway's idle timeout)",
                            Target::Middlebox,
                        ),
                        (
                            "https-h2",
                            "HTTPS, HTTP/2 (one connection, many streams)",
                            Target::TlsH2,
                        ),
                        (
                            "https-h1",
                            "HTTPS, HTTP/1.1 only (the same TLS)",
                            Target::TlsH1,
                        ),
                        (
                            "https-h2-limited",
                            "HTTPS, HTTP/2 with 4 streams at once",
                            Target::TlsH2Limited,
                        ),
                    ],
                ),
            ),
        ])
        .kids(tls_note.into_iter().collect())
        .kids(vec![
            label(
                "credentials ",
                choose(
                    "c-credentials",
                    s.credentials,
                    &[
                        ("default", "default", Credentials::Default),
                        ("omit", "omit (another pool)", Credentials::Omit),
                        ("include", "include", Credentials::Include),
                    ],
                ),
            ),
            label(
                "priority ",
                choose(
                    "c-priority",
                    s.priority,
                    &[
                        ("auto", "auto", Priority::Auto),
                        ("high", "high", Priority::High),
                        ("low", "low", Priority::Low),
                    ],
                ),
            ),
            label(
                "client timeout (ms, empty: none) ",
                number(
                    "c-timeout",
                    "1",
                    "600000".into(),
                    s.timeout_ms.map(|t| t.to_string()).unwrap_or_default(),
                ),
            ),
            label(
                "method ",
                choose(
                    "c-method",
                    s.post,
                    &[("get", "GET", false), ("post", "POST", true)],
                ),
            ),
            el("label")
                .attr("class", "check")
                .kids(vec![
                    el("input")
                        .attr("id", "c-identical")
                        .attr("type", "checkbox")
                        .attr_if("checked", s.identical_url.then_some(""))
                        .done(),
                    text(" identical URL for every request (shows Chromium's cache lock)"),
                ])
                .done(),
        ]);
    let blocked = s.problem();
    let actions = el("div").attr("class", "actions").kids(vec![
        disabled(
            el("button").attr("id", "fire"),
            !view.connected || blocked.is_some(),
        )
        .text(format!(
            "Fire {} request{}",
            s.count,
            if s.count == 1 { "" } else { "s" }
        ))
        .done(),
        disabled(
            el("button")
                .attr("id", "release")
                .attr("class", "secondary"),
            !view.connected,
        )
        .text("Release hanging requests")
        .done(),
        el("button")
            .attr("id", "share")
            .attr("class", "secondary")
            .text("Link to these settings")
            .done(),
    ]);
    let share = view.share_url.map(|url| {
        el("p")
            .attr("class", "share")
            .kids(vec![
                text("Link: "),
                el("output")
                    .attr("id", "share-url")
                    .text(url.to_owned())
                    .done(),
            ])
            .done()
    });
    let problem = blocked.or(view.problem).map(|problem| {
        el("p")
            .attr("class", "error")
            .attr("role", "alert")
            .text(problem)
            .done()
    });
    let status = view.run_status.map(|line| {
        el("p")
            .attr("class", "help")
            .attr("id", "run-status")
            .attr("role", "status")
            .text(line)
            .done()
    });
    el("section")
        .attr("class", "composer")
        .attr("aria-label", "Burst composer")
        .kids(vec![
            el("h2").text("Burst").done(),
            fields.done(),
            actions.done(),
        ])
        .kids(status.into_iter().collect())
        .kids(share.into_iter().collect())
        .kids(vec![
            el("p")
                .attr("class", "help")
                .text(
                    "Every URL is unique and fetched with cache: 'no-store' (identical URLs \
                     would wait on Chromium's cache lock) unless you ask for identical ones. \
                     Release goes over the WebSocket: an ordinary request from this page would \
                     queue behind its own hung ones.",
                )
                .done(),
        ])
        .kids(problem.into_iter().collect())
        .done()
}

/// What the agent composer shows besides its settings.
pub struct AgentView<'a> {
    /// The settings shown.
    pub settings: &'a AgentSettings,
    /// An agent run is going on.
    pub running: bool,
    /// Starting and stopping need the live socket.
    pub connected: bool,
    /// The newest agent run, in words.
    pub status: Option<String>,
}

/// The agent composer.
pub fn agent(view: AgentView<'_>) -> Node {
    let s = view.settings;
    let o = &s.options;
    let ms = |v: Option<u64>| v.map(|t| t.to_string()).unwrap_or_default();
    let field = |id: &'static str| el("input").attr("id", id);
    let problem = s.message().err();
    let fields = el("div")
        .attr("class", "fields")
        .kids(vec![
            el("label")
                .attr("class", "check")
                .kids(vec![
                    el("input")
                        .attr("id", "a-keep-alive")
                        .attr("type", "checkbox")
                        .attr_if("checked", o.keep_alive.then_some(""))
                        .done(),
                    text(" keepAlive"),
                ])
                .done(),
            label(
                "keepAliveMsecs ",
                number(
                    "a-keep-alive-msecs",
                    "1",
                    protocol::MAX_KEEP_ALIVE_MSECS.to_string(),
                    o.keep_alive_msecs.to_string(),
                ),
            ),
            label(
                "maxSockets ",
                field("a-max-sockets")
                    .attr("size", "8")
                    .attr("value", limit_words(o.max_sockets)),
            ),
            label(
                "maxTotalSockets ",
                field("a-max-total-sockets")
                    .attr("size", "8")
                    .attr("value", limit_words(o.max_total_sockets)),
            ),
            label(
                "maxFreeSockets ",
                field("a-max-free-sockets")
                    .attr("type", "number")
                    .attr("min", "1")
                    .attr("value", o.max_free_sockets.to_string()),
            ),
            label(
                "scheduling ",
                choose(
                    "a-scheduling",
                    o.scheduling,
                    &[
                        ("lifo", "lifo", Scheduling::Lifo),
                        ("fifo", "fifo", Scheduling::Fifo),
                    ],
                ),
            ),
            label(
                "timeout (socket idle, ms) ",
                number(
                    "a-timeout",
                    "1",
                    protocol::MAX_TIMEOUT_MS.to_string(),
                    ms(o.timeout),
                ),
            ),
            label(
                "request timeout (axios, ms) ",
                number(
                    "a-request-timeout",
                    "1",
                    protocol::MAX_TIMEOUT_MS.to_string(),
                    ms(o.request_timeout),
                ),
            ),
            label(
                "GET ",
                field("a-path")
                    .attr("size", "24")
                    .attr("value", s.request.path.clone()),
            ),
            label(
                "to ",
                choose(
                    "a-target",
                    s.request.target,
                    &[
                        ("same", "the lab directly", AgentTarget::Same),
                        ("second-port", "the second port", AgentTarget::SecondPort),
                        ("middlebox", "through the middlebox", AgentTarget::Middlebox),
                    ],
                ),
            ),
        ])
        .kids(
            // The pace: (words, id, min, max, value).
            [
                (
                    "one request every (ms) ",
                    "a-every",
                    "0",
                    protocol::LAB_MAX_EVERY_MS,
                    s.every_ms,
                ),
                (
                    "requests ",
                    "a-count",
                    "1",
                    protocol::LAB_MAX_COUNT.into(),
                    s.count.into(),
                ),
                (
                    "then linger (ms) ",
                    "a-linger",
                    "0",
                    protocol::LAB_MAX_DURATION_MS,
                    s.linger_ms,
                ),
            ]
            .into_iter()
            .map(|(words, id, min, max, value)| {
                label(words, number(id, min, max.to_string(), value.to_string()))
            })
            .collect(),
        );
    let actions = el("div").attr("class", "actions").kids(vec![
        disabled(
            el("button").attr("id", "agent-start"),
            !view.connected || view.running || problem.is_some(),
        )
        .text("Start the agent")
        .done(),
        disabled(
            el("button")
                .attr("id", "agent-stop")
                .attr("class", "secondary"),
            !view.connected || !view.running,
        )
        .text("Stop")
        .done(),
    ]);
    let status = view.status.map(|status| {
        el("p")
            .attr("class", "status")
            .attr("id", "agent-status")
            .attr("data-running", if view.running { "true" } else { "false" })
            .text(status)
            .done()
    });
    let problem = problem.map(|problem| {
        el("p")
            .attr("class", "error")
            .attr("role", "alert")
            .text(problem)
            .done()
    });
    el("section")
        .attr("class", "composer agent")
        .attr("aria-label", "Agent composer")
        .kids(vec![
            el("h2").text("Node.js http.Agent").done(),
            fields.done(),
            actions.done(),
            el("p")
                .attr("class", "help")
                .text(format!(
                    "Sends Connection: {}. Runs in the lab's server (at most {} requests, {} \
                     sockets, {} s).",
                    o.connection_header(),
                    protocol::LAB_MAX_COUNT,
                    protocol::LAB_MAX_SOCKETS,
                    protocol::LAB_MAX_DURATION_MS / 1000
                ))
                .done(),
        ])
        .kids(status.into_iter().collect())
        .kids(problem.into_iter().collect())
        .done()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_edit_is_clamped_and_applies_only_to_its_endpoint() {
        let mut s = BurstSettings::default();
        assert!(edit_burst(&mut s, "c-count", "5000"));
        assert_eq!(s.count, MAX_COUNT, "at most the composer's maximum");
        assert!(edit_burst(&mut s, "c-count", "0"));
        assert_eq!(s.count, 1);
        assert!(edit_burst(&mut s, "c-endpoint", "slow"));
        assert!(edit_burst(&mut s, "p-ms", "250"));
        assert!(matches!(s.endpoint, Endpoint::Slow { ms: 250, .. }));
        // A field of another endpoint (left on the page a moment) is none
        // of the composer's now, and changes nothing.
        assert!(!edit_burst(&mut s, "p-chunks", "3"));
        assert!(matches!(s.endpoint, Endpoint::Slow { ms: 250, .. }));
        assert!(edit_burst(&mut s, "c-identical", "true"));
        assert!(s.identical_url);
        assert!(edit_burst(&mut s, "c-timeout", ""));
        assert_eq!(s.timeout_ms, None, "empty: no client timeout");
        assert!(
            !edit_burst(&mut s, "policy-idle", "5"),
            "not the composer's"
        );
    }

    #[test]
    fn an_agent_edit_sets_the_option_named_as_nodes() {
        let mut s = AgentSettings::default();
        assert!(edit_agent(&mut s, "a-keep-alive", "true"));
        assert!(s.options.keep_alive);
        assert!(edit_agent(&mut s, "a-max-sockets", "2"));
        assert_eq!(limit_words(s.options.max_sockets), "2");
        assert!(edit_agent(&mut s, "a-scheduling", "fifo"));
        assert_eq!(s.options.scheduling, Scheduling::Fifo);
        assert!(!edit_agent(&mut s, "c-count", "3"));
    }

    /// Beside Fire, where the run's requests are: the figures themselves
    /// are out of view below the panels (found in review).
    #[test]
    fn the_run_is_told_beside_the_fire_button() {
        use crate::state::tests::{fire, fresh, started};
        let mut s = fresh();
        let tags = fire(&mut s, 12, |_| crate::settings::Credentials::Default);
        for c in 1..=6u64 {
            s.apply(started(c, c, 1, &tags[c as usize - 1], 0));
        }
        let run = s.current().unwrap().clone();
        assert_eq!(
            run_status(&run),
            format!(
                "Run {}: 12 requests fired, running. Measured and the timeline are below the \
                 panels.",
                run.name()
            )
        );
        let mut html = String::new();
        burst(BurstView {
            settings: BurstSettings::default(),
            share_url: None,
            connected: true,
            problem: None,
            https_origin: None,
            run_status: Some(run_status(&run)),
        })
        .write(&mut html);
        assert!(
            html.contains(r#"<p class="help" id="run-status" role="status">Run b"#),
            "{html}"
        );
    }

    #[test]
    fn the_composer_draws_its_controls_with_the_settings_values() {
        let mut s = BurstSettings::default();
        edit_burst(&mut s, "c-endpoint", "drip");
        let mut html = String::new();
        burst(BurstView {
            settings: s,
            share_url: None,
            connected: false,
            problem: None,
            https_origin: None,
            run_status: None,
        })
        .write(&mut html);
        for id in [
            "c-count", "p-bytes", "p-chunks", "p-every", "fire", "release",
        ] {
            assert!(html.contains(&format!(r#"id="{id}""#)), "{id} in {html}");
        }
        assert!(
            html.contains(r#"<option value="drip" selected="">"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<button id="fire" disabled="">"#),
            "not connected"
        );
    }
}
