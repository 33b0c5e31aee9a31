//! The agent composer: a Node.js `http.Agent`'s options
//! (<https://nodejs.org/api/http.html#class-httpagent>), axios' request
//! `timeout`, the request and its pace; Start and Stop go over the
//! WebSocket (`agent_start`, `agent_stop`). The agent runs in the lab's
//! server, a client beside the browser; the server caps it.

use protocol::{AgentTarget, Scheduling};
use yew::prelude::*;

use super::composer::value;
use crate::agent::{AgentSettings, limit_words, parse_limit, parse_ms};

/// Props of [`AgentComposer`].
#[derive(Properties, PartialEq)]
pub struct AgentComposerProps {
    /// The settings shown.
    pub settings: AgentSettings,
    /// A setting changed.
    pub on_change: Callback<AgentSettings>,
    /// Send `agent_start`.
    pub on_start: Callback<()>,
    /// Send `agent_stop`.
    pub on_stop: Callback<()>,
    /// The session's agent is running.
    pub running: bool,
    /// Starting and stopping need the live socket.
    pub connected: bool,
    /// The last run in a few words.
    pub status: Option<String>,
}

fn num<T: std::str::FromStr>(text: &str, default: T) -> T {
    text.trim().parse().unwrap_or(default)
}

/// The agent composer.
#[component]
pub fn AgentComposer(props: &AgentComposerProps) -> Html {
    let s = &props.settings;
    let edit = |apply: fn(&mut AgentSettings, String)| {
        let (on_change, s) = (props.on_change.clone(), s.clone());
        Callback::from(move |e: Event| {
            let mut next = s.clone();
            apply(&mut next, value(&e));
            on_change.emit(next);
        })
    };
    let o = &s.options;
    let option = |value: &str, label: &str, selected: bool| {
        html! { <option value={value.to_owned()} {selected}>{ label.to_owned() }</option> }
    };
    let ms = |v: Option<u64>| v.map(|t| t.to_string()).unwrap_or_default();
    let problem = s.message().err();
    let start = props.on_start.reform(|_: MouseEvent| ());
    let stop = props.on_stop.reform(|_: MouseEvent| ());
    html! {
        <section class="composer agent" aria-label="Agent composer">
            <h2>{ "Node.js http.Agent" }</h2>
            <div class="fields">
                <label class="check"><input id="a-keep-alive" type="checkbox" checked={o.keep_alive}
                    onchange={edit(|s, v| s.options.keep_alive = v == "true")} />{ " keepAlive" }</label>
                <label>{ "keepAliveMsecs " }<input id="a-keep-alive-msecs" type="number" min="1" max={protocol::MAX_KEEP_ALIVE_MSECS.to_string()}
                    value={o.keep_alive_msecs.to_string()}
                    onchange={edit(|s, v| s.options.keep_alive_msecs = num(&v, 1000))} /></label>
                <label>{ "maxSockets " }<input id="a-max-sockets" size="8" value={limit_words(o.max_sockets)}
                    onchange={edit(|s, v| s.options.max_sockets = parse_limit(&v))} /></label>
                <label>{ "maxTotalSockets " }<input id="a-max-total-sockets" size="8" value={limit_words(o.max_total_sockets)}
                    onchange={edit(|s, v| s.options.max_total_sockets = parse_limit(&v))} /></label>
                <label>{ "maxFreeSockets " }<input id="a-max-free-sockets" type="number" min="1"
                    value={o.max_free_sockets.to_string()}
                    onchange={edit(|s, v| s.options.max_free_sockets = num(&v, 256))} /></label>
                <label>{ "scheduling " }<select id="a-scheduling" onchange={edit(|s, v| {
                    s.options.scheduling = if v == "fifo" { Scheduling::Fifo } else { Scheduling::Lifo }
                })}>
                    { option("lifo", "lifo", o.scheduling == Scheduling::Lifo) }
                    { option("fifo", "fifo", o.scheduling == Scheduling::Fifo) }
                </select></label>
                <label>{ "timeout (socket idle, ms) " }<input id="a-timeout" type="number" min="1" max={protocol::MAX_TIMEOUT_MS.to_string()}
                    value={ms(o.timeout)} onchange={edit(|s, v| s.options.timeout = parse_ms(&v))} /></label>
                <label>{ "request timeout (axios, ms) " }<input id="a-request-timeout" type="number" min="1" max={protocol::MAX_TIMEOUT_MS.to_string()}
                    value={ms(o.request_timeout)} onchange={edit(|s, v| s.options.request_timeout = parse_ms(&v))} /></label>
                <label>{ "GET " }<input id="a-path" size="24" value={s.request.path.clone()}
                    onchange={edit(|s, v| s.request.path = v.trim().to_owned())} /></label>
                <label>{ "to " }<select id="a-target" onchange={edit(|s, v| s.request.target = match v.as_str() {
                    "second-port" => AgentTarget::SecondPort, "middlebox" => AgentTarget::Middlebox, _ => AgentTarget::Same })}>
                    { option("same", "the lab directly", s.request.target == AgentTarget::Same) }
                    { option("second-port", "the second port", s.request.target == AgentTarget::SecondPort) }
                    { option("middlebox", "through the middlebox", s.request.target == AgentTarget::Middlebox) }
                </select></label>
                <label>{ "one request every (ms) " }<input id="a-every" type="number" min="0" max={protocol::LAB_MAX_EVERY_MS.to_string()}
                    value={s.every_ms.to_string()} onchange={edit(|s, v| s.every_ms = num(&v, 0))} /></label>
                <label>{ "requests " }<input id="a-count" type="number" min="1" max={protocol::LAB_MAX_COUNT.to_string()}
                    value={s.count.to_string()} onchange={edit(|s, v| s.count = num(&v, 1))} /></label>
                <label>{ "then linger (ms) " }<input id="a-linger" type="number" min="0" max={protocol::LAB_MAX_DURATION_MS.to_string()}
                    value={s.linger_ms.to_string()} onchange={edit(|s, v| s.linger_ms = num(&v, 0))} /></label>
            </div>
            <div class="actions">
                <button id="agent-start" onclick={start} disabled={!props.connected || props.running || problem.is_some()}>
                    { "Start the agent" }
                </button>
                <button id="agent-stop" class="secondary" onclick={stop} disabled={!props.connected || !props.running}>
                    { "Stop" }
                </button>
            </div>
            <p class="help">{ format!("Sends Connection: {}. Runs in the lab's server (at most {} requests, {} sockets, {} s).",
                o.connection_header(), protocol::LAB_MAX_COUNT, protocol::LAB_MAX_SOCKETS,
                protocol::LAB_MAX_DURATION_MS / 1000) }</p>
            if let Some(status) = &props.status {
                <p class="status" id="agent-status" data-running={props.running.to_string()}>{ status.clone() }</p>
            }
            if let Some(problem) = problem {
                <p class="error" role="alert">{ problem }</p>
            }
        </section>
    }
}
