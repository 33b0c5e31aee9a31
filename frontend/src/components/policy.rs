//! The server's keep-alive policy, editable live over the WebSocket.

use protocol::{PolicyPatch, ServerPolicy, TcpKeepalive};
use web_sys::HtmlInputElement;
use yew::prelude::*;

/// Props of [`PolicyPanel`].
#[derive(Properties, PartialEq)]
pub struct PolicyProps {
    /// The policy in force, once the server has told us.
    pub config: Option<ServerPolicy>,
    /// Editing needs the live socket.
    pub enabled: bool,
    /// Sends one change.
    pub on_change: Callback<PolicyPatch>,
    /// Changes whenever the server announces a policy or refuses a change:
    /// the form is rebuilt from `config`, so a refused value does not stay
    /// on screen as if it had been applied.
    pub revision: u64,
}

/// A number from an input; empty is `None` (off / unlimited).
fn number<T: std::str::FromStr>(input: &HtmlInputElement) -> Option<T> {
    input.value().trim().parse().ok()
}

fn checkbox(on_change: &Callback<PolicyPatch>, patch: fn(bool) -> PolicyPatch) -> Callback<Event> {
    on_change.reform(move |e: Event| patch(e.target_unchecked_into::<HtmlInputElement>().checked()))
}

/// The policy panel.
#[component]
pub fn PolicyPanel(props: &PolicyProps) -> Html {
    let Some(config) = &props.config else {
        return html! {
            <section class="policy" aria-label="Server policy">
                <h2>{ "Server keep-alive policy" }</h2>
                <p>{ "Waiting for this session's policy from the server (it comes over the live link)…" }</p>
            </section>
        };
    };
    let disabled = !props.enabled;
    let on = &props.on_change;
    let keep_alive = checkbox(on, |v| PolicyPatch {
        keep_alive: Some(v),
        ..PolicyPatch::default()
    });
    let advertise = checkbox(on, |v| PolicyPatch {
        advertise_keep_alive: Some(v),
        ..PolicyPatch::default()
    });
    let idle = on.reform(|e: Event| PolicyPatch {
        idle_timeout_ms: number(&e.target_unchecked_into()),
        ..PolicyPatch::default()
    });
    let max = on.reform(|e: Event| PolicyPatch {
        max_requests: Some(number(&e.target_unchecked_into())),
        ..PolicyPatch::default()
    });
    let hang = on.reform(|e: Event| PolicyPatch {
        hang_timeout_ms: Some(number(&e.target_unchecked_into())),
        ..PolicyPatch::default()
    });
    let tcp = config.tcp_keepalive;
    let tcp_toggle = on.reform(move |e: Event| PolicyPatch {
        tcp_keepalive: Some(
            e.target_unchecked_into::<HtmlInputElement>()
                .checked()
                .then_some(tcp.unwrap_or(TcpKeepalive {
                    idle_s: 60,
                    interval_s: 10,
                })),
        ),
        ..PolicyPatch::default()
    });
    let tcp_field = |idle: bool| {
        on.reform(move |e: Event| {
            let value = number::<u32>(&e.target_unchecked_into()).unwrap_or(0);
            let current = tcp.unwrap_or(TcpKeepalive {
                idle_s: 60,
                interval_s: 10,
            });
            let next = if idle {
                TcpKeepalive {
                    idle_s: value,
                    ..current
                }
            } else {
                TcpKeepalive {
                    interval_s: value,
                    ..current
                }
            };
            PolicyPatch {
                tcp_keepalive: Some(Some(next)),
                ..PolicyPatch::default()
            }
        })
    };
    let text = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    html! {
        <section class="policy" aria-label="Server policy">
            <h2>{ "Server keep-alive policy" }</h2>
            <p class="source">
                { "Live: changes go to the server over the WebSocket and apply to this page's session \
                   only (other tabs and participants keep their own policy; the instructor sees the \
                   change). \
                   Defaults mirror Apache httpd 2.4 (KeepAliveTimeout 5, MaxKeepAliveRequests 100). \
                   Keep-alive, max requests and the Keep-Alive header apply to the next response, \
                   the hang timeout to requests that start after the change, the idle timeout to \
                   your open connections at once, TCP keep-alive to them from their next read or \
                   write. Over HTTP/2 there are no Connection or Keep-Alive headers: max requests \
                   ends a connection with GOAWAY, the hang timeout resets only that stream, and \
                   keep-alive off does not apply." }
            </p>
            <fieldset key={props.revision.to_string()} disabled={disabled}>
                <label>
                    <input id="policy-keep-alive" type="checkbox" checked={config.keep_alive} onchange={keep_alive} />
                    { " Keep-alive (off: every response says Connection: close)" }
                </label>
                <label>
                    { "Idle timeout (ms) " }
                    <input id="policy-idle" type="number" min="100" max="600000" step="100"
                        value={config.idle_timeout_ms.to_string()} onchange={idle} />
                </label>
                <label>
                    { "Max requests per connection (empty: unlimited) " }
                    <input id="policy-max" type="number" min="1" max="100000"
                        value={text(config.max_requests.map(u64::from))} onchange={max} />
                </label>
                <label>
                    <input id="policy-advertise" type="checkbox" checked={config.advertise_keep_alive} onchange={advertise} />
                    { " Send Keep-Alive: timeout=…, max=… (Chromium ignores it)" }
                </label>
                <label>
                    { "Hang timeout (ms; empty: never) " }
                    <input id="policy-hang" type="number" min="100" max="600000" step="100"
                        value={text(config.hang_timeout_ms)} onchange={hang} />
                </label>
                <label>
                    <input id="policy-tcp" type="checkbox" checked={tcp.is_some()} onchange={tcp_toggle} />
                    { " TCP keep-alive probes (through the middlebox: divided by its time scale, in whole seconds)" }
                </label>
                if let Some(t) = tcp {
                    <label>
                        { "first probe after idle (s) " }
                        <input id="policy-tcp-idle" type="number" min="1" max="7200"
                            value={t.idle_s.to_string()} onchange={tcp_field(true)} />
                    </label>
                    <label>
                        { "then every (s) " }
                        <input id="policy-tcp-interval" type="number" min="1" max="600"
                            value={t.interval_s.to_string()} onchange={tcp_field(false)} />
                    </label>
                }
            </fieldset>
        </section>
    }
}
