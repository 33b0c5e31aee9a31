//! The burst composer: every option a burst can have, and a shareable link.

use protocol::{CloseMode, RaceClose};
use wasm_bindgen::JsValue;
use yew::prelude::*;

use crate::settings::{BurstSettings, Credentials, Endpoint, MAX_COUNT, Order, Priority, Target};

/// Props of [`Composer`].
#[derive(Properties, PartialEq)]
pub struct ComposerProps {
    /// The settings shown.
    pub settings: BurstSettings,
    /// A setting changed.
    pub on_change: Callback<BurstSettings>,
    /// Fire a burst with the current settings.
    pub on_fire: Callback<()>,
    /// Release every hanging request of this page.
    pub on_release: Callback<()>,
    /// Put the settings in the page's URL.
    pub on_share: Callback<()>,
    /// The link, once made.
    pub share_url: Option<String>,
    /// Firing and releasing need the live socket.
    pub connected: bool,
    /// Why the last action failed, if it did.
    pub problem: Option<String>,
    /// The origin an HTTPS target resolves to, when one is chosen: the page
    /// links it so the learner can accept the lab's certificate once.
    #[prop_or_default]
    pub https_origin: Option<String>,
}

/// The value (or `checked` state) of the element an event came from.
pub(super) fn value(e: &Event) -> String {
    let Some(target) = e.target() else {
        return String::new();
    };
    let checked = js_sys::Reflect::get(&target, &JsValue::from_str("type"))
        .ok()
        .and_then(|t| t.as_string())
        .is_some_and(|t| t == "checkbox");
    let key = if checked { "checked" } else { "value" };
    let v = js_sys::Reflect::get(&target, &JsValue::from_str(key)).unwrap_or(JsValue::NULL);
    v.as_string()
        .or_else(|| v.as_bool().map(|b| b.to_string()))
        .unwrap_or_default()
}

fn num(text: &str, default: u32, max: u32) -> u32 {
    text.trim().parse::<u32>().map_or(default, |v| v.min(max))
}

/// The composer.
#[component]
pub fn Composer(props: &ComposerProps) -> Html {
    let s = props.settings;
    let edit = |apply: fn(&mut BurstSettings, String)| {
        let on_change = props.on_change.clone();
        Callback::from(move |e: Event| {
            let mut next = s;
            apply(&mut next, value(&e));
            on_change.emit(next);
        })
    };
    let option = |value: &str, label: &str, selected: bool| {
        html! { <option value={value.to_owned()} {selected}>{ label.to_owned() }</option> }
    };
    let params = match s.endpoint {
        Endpoint::Hang | Endpoint::Fast => html! {},
        Endpoint::Slow { ms, body } => html! { <>
            <label>{ "delay (ms) " }<input id="p-ms" type="number" min="0" max="120000" value={ms.to_string()}
                onchange={edit(|s, v| if let Endpoint::Slow { ms, .. } = &mut s.endpoint { *ms = num(&v, 1000, 120_000) })} /></label>
            <label>{ "before " }<select id="p-phase" onchange={edit(|s, v| if let Endpoint::Slow { body, .. } = &mut s.endpoint { *body = v == "body" })}>
                { option("headers", "the head (time to first byte)", !body) }
                { option("body", "the body (slow download)", body) }
            </select></label>
        </> },
        Endpoint::Drip {
            bytes,
            chunks,
            interval_ms,
        } => html! { <>
            <label>{ "bytes " }<input type="number" min="1" max="1048576" value={bytes.to_string()}
                onchange={edit(|s, v| if let Endpoint::Drip { bytes, .. } = &mut s.endpoint { *bytes = num(&v, 2000, 1_048_576).max(1) })} /></label>
            <label>{ "chunks " }<input type="number" min="1" max="1000" value={chunks.to_string()}
                onchange={edit(|s, v| if let Endpoint::Drip { chunks, .. } = &mut s.endpoint { *chunks = num(&v, 10, 1000).max(1) })} /></label>
            <label>{ "every (ms) " }<input type="number" min="0" max="120000" value={interval_ms.to_string()}
                onchange={edit(|s, v| if let Endpoint::Drip { interval_ms, .. } = &mut s.endpoint { *interval_ms = num(&v, 200, 120_000) })} /></label>
        </> },
        Endpoint::Heartbeat {
            interval_ms,
            duration_ms,
        } => html! { <>
            <label>{ "a byte every (ms) " }<input id="p-beat" type="number" min="1" max="120000" value={interval_ms.to_string()}
                onchange={edit(|s, v| if let Endpoint::Heartbeat { interval_ms, .. } = &mut s.endpoint { *interval_ms = num(&v, 1000, 120_000).max(1) })} /></label>
            <label>{ "answer after (ms) " }<input id="p-duration" type="number" min="1" max="120000" value={duration_ms.to_string()}
                onchange={edit(|s, v| if let Endpoint::Heartbeat { duration_ms, .. } = &mut s.endpoint { *duration_ms = num(&v, 6000, 120_000).max(1) })} /></label>
        </> },
        Endpoint::Close(mode) => html! {
            <label>{ "how " }<select id="p-mode" onchange={edit(|s, v| {
                if let Some(m) = CloseMode::ALL.into_iter().find(|m| m.as_str() == v) { s.endpoint = Endpoint::Close(m) }
            })}>
                { option("header", "Connection: close (polite)", mode == CloseMode::Header) }
                { option("fin", "FIN, no response", mode == CloseMode::Fin) }
                { option("rst", "RST (reset)", mode == CloseMode::Rst) }
                { option("mid_body", "mid-body", mode == CloseMode::MidBody) }
            </select></label>
        },
        Endpoint::Race(close) => html! {
            <label>{ "the next request on each HTTP/1.1 connection is dropped with " }<select id="p-drop" onchange={edit(|s, v| {
                s.endpoint = Endpoint::Race(if v == "rst" { RaceClose::Rst } else { RaceClose::Fin })
            })}>
                { option("fin", "FIN (the server closed as it arrived)", close == RaceClose::Fin) }
                { option("rst", "RST (as when it is left unread)", close == RaceClose::Rst) }
            </select></label>
        },
        Endpoint::Sse { interval_ms, count } => html! { <>
            <label>{ "event every (ms) " }<input type="number" min="100" max="60000" value={interval_ms.to_string()}
                onchange={edit(|s, v| if let Endpoint::Sse { interval_ms, .. } = &mut s.endpoint { *interval_ms = num(&v, 500, 60_000).max(100) })} /></label>
            <label>{ "events " }<input type="number" min="1" max="10000" value={count.to_string()}
                onchange={edit(|s, v| if let Endpoint::Sse { count, .. } = &mut s.endpoint { *count = num(&v, 10, 10_000).max(1) })} /></label>
        </> },
    };
    let fire = props.on_fire.reform(|_: MouseEvent| ());
    let release = props.on_release.reform(|_: MouseEvent| ());
    let share = props.on_share.reform(|_: MouseEvent| ());
    let blocked = s.problem();
    html! {
        <section class="composer" aria-label="Burst composer">
            <h2>{ "Burst" }</h2>
            <div class="fields">
                <label>{ "requests " }<input id="c-count" type="number" min="1" max={MAX_COUNT.to_string()} value={s.count.to_string()}
                    onchange={edit(|s, v| s.count = num(&v, 12, MAX_COUNT).max(1))} /></label>
                <label>{ "endpoint " }<select id="c-endpoint" onchange={edit(|s, v| {
                    if let Some(kind) = Endpoint::KINDS.into_iter().find(|k| k.name() == v) { s.endpoint = kind }
                })}>
                    { for Endpoint::KINDS.iter().map(|k| option(k.name(), &k.menu_label(), k.name() == s.endpoint.name())) }
                </select></label>
                { params }
                <label>{ "fired " }<select id="c-order" onchange={edit(|s, v| s.order = if v == "sequential" { Order::Sequential } else { Order::Concurrent })}>
                    { option("concurrent", "all at once", s.order == Order::Concurrent) }
                    { option("sequential", "one after another", s.order == Order::Sequential) }
                </select></label>
                <label>{ "spacing (ms) " }<input id="c-spacing" type="number" min="0" max="60000" value={s.spacing_ms.to_string()}
                    onchange={edit(|s, v| s.spacing_ms = num(&v, 0, 60_000))} /></label>
                <label>{ "to " }<select id="c-target" onchange={edit(|s, v| s.target = match v.as_str() {
                    "second-port" => Target::SecondPort, "other-host" => Target::OtherHost, "middlebox" => Target::Middlebox,
                    "https-h2" => Target::TlsH2, "https-h1" => Target::TlsH1, "https-h2-limited" => Target::TlsH2Limited,
                    _ => Target::Same })}>
                    { option("same", "this origin", s.target == Target::Same) }
                    { option("second-port", "the second port (another pool)", s.target == Target::SecondPort) }
                    { option("other-host", "localhost ⇄ 127.0.0.1 (another pool)", s.target == Target::OtherHost) }
                    { option("middlebox", "through the middlebox (a NAT gateway's idle timeout)", s.target == Target::Middlebox) }
                    { option("https-h2", "HTTPS, HTTP/2 (one connection, many streams)", s.target == Target::TlsH2) }
                    { option("https-h1", "HTTPS, HTTP/1.1 only (the same TLS)", s.target == Target::TlsH1) }
                    { option("https-h2-limited", "HTTPS, HTTP/2 with 4 streams at once", s.target == Target::TlsH2Limited) }
                </select></label>
                if s.target.is_tls() {
                    <p class="help" id="c-tls-note">
                        { "HTTPS uses a certificate the lab made for itself, which your browser does not trust yet: open " }
                        if let Some(origin) = props.https_origin.clone() {
                            <a href={origin.clone()} target="_blank" rel="noopener">{ origin }</a>
                        } else {
                            { "the HTTPS address the lab printed" }
                        }
                        { " once, choose Advanced → Proceed, then come back. Until then these requests fail." }
                        if matches!(s.target, Target::TlsH2 | Target::TlsH2Limited) {
                            { " Over HTTP/2 the keep-alive race is not staged and /api/close answers 400: \
                               an HTTP/2 connection ends with GOAWAY." }
                        }
                    </p>
                }
                <label>{ "credentials " }<select id="c-credentials" onchange={edit(|s, v| s.credentials = match v.as_str() {
                    "omit" => Credentials::Omit, "include" => Credentials::Include, _ => Credentials::Default })}>
                    { option("default", "default", s.credentials == Credentials::Default) }
                    { option("omit", "omit (another pool)", s.credentials == Credentials::Omit) }
                    { option("include", "include", s.credentials == Credentials::Include) }
                </select></label>
                <label>{ "priority " }<select id="c-priority" onchange={edit(|s, v| s.priority = match v.as_str() {
                    "high" => Priority::High, "low" => Priority::Low, _ => Priority::Auto })}>
                    { option("auto", "auto", s.priority == Priority::Auto) }
                    { option("high", "high", s.priority == Priority::High) }
                    { option("low", "low", s.priority == Priority::Low) }
                </select></label>
                <label>{ "client timeout (ms, empty: none) " }<input id="c-timeout" type="number" min="1" max="600000"
                    value={s.timeout_ms.map(|t| t.to_string()).unwrap_or_default()}
                    onchange={edit(|s, v| s.timeout_ms = v.trim().parse::<u32>().ok().filter(|t| *t > 0))} /></label>
                <label>{ "method " }<select id="c-method" onchange={edit(|s, v| s.post = v == "post")}>
                    { option("get", "GET", !s.post) }
                    { option("post", "POST", s.post) }
                </select></label>
                <label class="check"><input id="c-identical" type="checkbox" checked={s.identical_url}
                    onchange={edit(|s, v| s.identical_url = v == "true")} />
                    { " identical URL for every request (shows Chromium's cache lock)" }</label>
            </div>
            <div class="actions">
                <button id="fire" onclick={fire} disabled={!props.connected || blocked.is_some()}>
                    { format!("Fire {} request{}", s.count, if s.count == 1 { "" } else { "s" }) }
                </button>
                <button id="release" class="secondary" onclick={release} disabled={!props.connected}>
                    { "Release hanging requests" }
                </button>
                <button id="share" class="secondary" onclick={share}>{ "Link to these settings" }</button>
            </div>
            if let Some(url) = &props.share_url {
                <p class="share">{ "Link: " }<output id="share-url">{ url.clone() }</output></p>
            }
            <p class="help">
                { "Every URL is unique and fetched with cache: 'no-store' (identical URLs would wait \
                   on Chromium's cache lock) unless you ask for identical ones. Release goes over the \
                   WebSocket: an ordinary request from this page would queue behind its own hung ones." }
            </p>
            if let Some(problem) = blocked.or(props.problem.clone()) {
                <p class="error" role="alert">{ problem }</p>
            }
        </section>
    }
}
