//! The session's server policy and middlebox (issue 10), editable by hand
//! over the WebSocket (`set_config`, `set_middlebox`), one change at a time.
//! Each form is drawn from the settings the server confirmed, and made anew
//! (its key) whenever the server announces settings or refuses a change, so
//! a refused value does not stay on screen as if it were in force; the
//! page's alert says why.
//!
//! A change of a control is turned into the patch to send by
//! [`policy_patch`] or [`middlebox_patch`], pure functions of the control's
//! id and value.

use protocol::{
    MiddleboxPatch, MiddleboxSettings, OnExpiry, PolicyPatch, Preset, ServerPolicy, TcpKeepalive,
    human_ms, human_us,
};

use super::composer::{disabled, label, option, select};
use crate::dom::{Node, el, text};

/// TCP keep-alive when switched on without figures of its own.
const TCP_DEFAULT: TcpKeepalive = TcpKeepalive {
    idle_s: 60,
    interval_s: 10,
};

/// A number as typed; empty or not one is `None` (off, unlimited).
fn number<T: std::str::FromStr>(v: &str) -> Option<T> {
    v.trim().parse().ok()
}

/// The patch a change of the policy's control `id` asks for (`v`: its
/// value, a checkbox's `"true"` or `"false"`), given the policy in force.
pub fn policy_patch(config: &ServerPolicy, id: &str, v: &str) -> Option<PolicyPatch> {
    let on = v == "true";
    let tcp = config.tcp_keepalive;
    let patch = PolicyPatch::default();
    Some(match id {
        "policy-keep-alive" => PolicyPatch {
            keep_alive: Some(on),
            ..patch
        },
        "policy-advertise" => PolicyPatch {
            advertise_keep_alive: Some(on),
            ..patch
        },
        "policy-idle" => PolicyPatch {
            idle_timeout_ms: number(v),
            ..patch
        },
        "policy-max" => PolicyPatch {
            max_requests: Some(number(v)),
            ..patch
        },
        "policy-hang" => PolicyPatch {
            hang_timeout_ms: Some(number(v)),
            ..patch
        },
        "policy-tcp" => PolicyPatch {
            tcp_keepalive: Some(on.then_some(tcp.unwrap_or(TCP_DEFAULT))),
            ..patch
        },
        "policy-tcp-idle" | "policy-tcp-interval" => {
            let value = number(v).unwrap_or(0);
            let current = tcp.unwrap_or(TCP_DEFAULT);
            let next = if id == "policy-tcp-idle" {
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
                ..patch
            }
        }
        _ => return None,
    })
}

/// Seconds as typed (`2.5`) in whole milliseconds; `None` if not a number.
fn ms_of(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let frac = format!("{frac:0<3}");
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac: u64 = if frac.len() == 3 {
        frac.parse().ok()?
    } else {
        return None;
    };
    whole.checked_mul(1000)?.checked_add(frac)
}

/// The patch a change of the middlebox's control `id` asks for.
pub fn middlebox_patch(id: &str, v: &str) -> Option<MiddleboxPatch> {
    let mut p = MiddleboxPatch::default();
    match id {
        "mb-preset" => p.preset = Preset::ALL.into_iter().find(|x| x.as_str() == v),
        "mb-idle" => p.idle_timeout_ms = ms_of(v),
        "mb-expiry" => p.on_expiry = OnExpiry::ALL.into_iter().find(|x| x.as_str() == v),
        "mb-scale" => p.scale = v.trim().parse().ok(),
        _ => return None,
    }
    Some(p)
}

/// A checkbox `id`, then its words.
fn check(id: &'static str, checked: bool, words: &'static str) -> Node {
    el("label")
        .kids(vec![
            el("input")
                .attr("id", id)
                .attr("type", "checkbox")
                .attr_if("checked", checked.then_some(""))
                .done(),
            text(words),
        ])
        .done()
}

/// A number field `id`.
fn field(
    words: &'static str,
    id: &'static str,
    range: (&'static str, &'static str),
    step: Option<&'static str>,
    value: String,
) -> Node {
    label(
        words,
        el("input")
            .attr("id", id)
            .attr("type", "number")
            .attr("min", range.0)
            .attr("max", range.1)
            .attr_if("step", step)
            .attr("value", value),
    )
}

/// The policy panel: `config` in force once the server told it; `enabled`
/// with the live socket; `revision` changes whenever the server announces a
/// policy or refuses a change.
pub fn policy(config: Option<&ServerPolicy>, enabled: bool, revision: u64) -> Node {
    let section = el("section")
        .attr("class", "policy")
        .attr("aria-label", "Server policy");
    let title = el("h2").text("Server keep-alive policy").done();
    let Some(config) = config else {
        return section
            .kids(vec![
                title,
                el("p")
                    .text(
                        "Waiting for this session's policy from the server (it comes over the \
                         live link)…",
                    )
                    .done(),
            ])
            .done();
    };
    let text_of = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let tcp = config.tcp_keepalive;
    let form = disabled(el("fieldset").key(revision), !enabled)
        .kids(vec![
            check(
                "policy-keep-alive",
                config.keep_alive,
                " Keep-alive (off: every response says Connection: close)",
            ),
            field(
                "Idle timeout (ms) ",
                "policy-idle",
                ("100", "600000"),
                Some("100"),
                config.idle_timeout_ms.to_string(),
            ),
            field(
                "Max requests per connection (empty: unlimited) ",
                "policy-max",
                ("1", "100000"),
                None,
                text_of(config.max_requests.map(u64::from)),
            ),
            check(
                "policy-advertise",
                config.advertise_keep_alive,
                " Send Keep-Alive: timeout=…, max=… (Chromium ignores it)",
            ),
            field(
                "Hang timeout (ms; empty: never) ",
                "policy-hang",
                ("100", "600000"),
                Some("100"),
                text_of(config.hang_timeout_ms),
            ),
            check(
                "policy-tcp",
                tcp.is_some(),
                " TCP keep-alive probes (through the middlebox: divided by its time scale, in \
                 whole seconds)",
            ),
        ])
        .kids(
            tcp.map(|t| {
                vec![
                    field(
                        "first probe after idle (s) ",
                        "policy-tcp-idle",
                        ("1", "7200"),
                        None,
                        t.idle_s.to_string(),
                    ),
                    field(
                        "then every (s) ",
                        "policy-tcp-interval",
                        ("1", "600"),
                        None,
                        t.interval_s.to_string(),
                    ),
                ]
            })
            .unwrap_or_default(),
        );
    section
        .kids(vec![
            title,
            el("p")
                .attr("class", "source")
                .text(
                    "Live: changes go to the server over the WebSocket and apply to this page's \
                     session only (other tabs and participants keep their own policy; the \
                     instructor sees the change). Defaults mirror Apache httpd 2.4 \
                     (KeepAliveTimeout 5, MaxKeepAliveRequests 100). Keep-alive, max requests \
                     and the Keep-Alive header apply to the next response, the hang timeout to \
                     requests that start after the change, the idle timeout to your open \
                     connections at once, TCP keep-alive to them from their next read or write. \
                     Over HTTP/2 there are no Connection or Keep-Alive headers: max requests \
                     ends a connection with GOAWAY, the hang timeout resets only that stream, \
                     and keep-alive off does not apply.",
                )
                .done(),
            form.done(),
        ])
        .done()
}

/// The middlebox panel: the session's `settings` as the server last
/// confirmed them; whether the lab's host can see keep-alive probes at all
/// (`None`: not known yet); `revision` changes whenever the server confirms
/// settings or refuses a change; `enabled` with the live socket.
pub fn middlebox(
    settings: Option<&MiddleboxSettings>,
    probes_visible: Option<bool>,
    revision: u64,
    enabled: bool,
) -> Node {
    let body = match settings {
        None => vec![
            el("p")
                .text("Waiting for the server's middlebox settings…")
                .done(),
        ],
        Some(s) => {
            let spec = s.preset.spec();
            let (link, words) = spec.source.split_once(' ').unwrap_or((spec.source, ""));
            let (low, high) = spec.idle_timeout_range_ms;
            let real = human_ms(s.idle_timeout_ms);
            let time = if s.scale > 1 {
                format!(
                    "Time is scaled: {real} shown as {} at ×{}.",
                    human_us(s.in_force_us()),
                    s.scale
                )
            } else {
                format!("Real time (scale 1): the idle timeout is {real}.")
            };
            let probes = match (probes_visible, s.probes_refresh) {
                (Some(false), _) => {
                    "cannot be seen on this host (no Linux TCP_INFO) and never refresh a mapping"
                }
                (_, true) => "refresh a mapping",
                (_, false) => "do not refresh a mapping",
            };
            let source = if link.is_empty() {
                vec![text(spec.summary)]
            } else {
                vec![
                    text(format!("{}. Source: ", spec.summary)),
                    el("a")
                        .attr("href", link)
                        .attr("target", "_blank")
                        .text(link)
                        .done(),
                    text(format!(" {words}")),
                ]
            };
            let number = |id: &'static str, value: String| {
                el("input")
                    .attr("id", id)
                    .attr("type", "number")
                    .attr("step", "any")
                    .attr("value", value)
            };
            vec![
                el("p")
                    .attr("id", "mb-in-force")
                    .attr("role", "status")
                    .text(format!(
                        "For connections through the lab's middlebox port opened after a \
                         change. In force (confirmed by the server): {}, idle timeout {real}; \
                         keep-alive probes {probes}; at expiry: {}. {time}",
                        spec.name,
                        s.on_expiry.describe()
                    ))
                    .done(),
                disabled(el("fieldset").key(revision), !enabled)
                    .kids(vec![
                        label(
                            "Preset ",
                            select(
                                "mb-preset",
                                Preset::ALL
                                    .iter()
                                    .map(|p| option(p.as_str(), p.spec().name, *p == s.preset))
                                    .collect(),
                            ),
                        ),
                        el("p").attr("class", "source").kids(source).done(),
                        label(
                            format!("Idle timeout (s; {} to {}) ", human_ms(low), human_ms(high)),
                            number(
                                "mb-idle",
                                crate::decimal::thousandths(s.idle_timeout_ms as i64),
                            ),
                        ),
                        label(
                            "At expiry ",
                            select(
                                "mb-expiry",
                                spec.on_expiry_allowed
                                    .iter()
                                    .map(|o| option(o.as_str(), o.describe(), *o == s.on_expiry))
                                    .collect(),
                            ),
                        ),
                        label(
                            "Time scale (1 = real time, up to 1000) ",
                            number("mb-scale", s.scale.to_string()),
                        ),
                    ])
                    .done(),
            ]
        }
    };
    el("section")
        .attr("class", "policy middlebox")
        .attr("aria-label", "Middlebox")
        .kids(vec![el("h2").text("Middlebox").done()])
        .kids(body)
        .done()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_as_typed_become_milliseconds() {
        assert_eq!(ms_of("350"), Some(350_000));
        assert_eq!(ms_of(" 2.5 "), Some(2_500));
        assert_eq!(ms_of(".1"), Some(100));
        assert_eq!(ms_of("0.0005"), None);
        assert_eq!(ms_of(""), None);
        assert_eq!(ms_of("-1"), None);
    }

    #[test]
    fn a_policy_control_asks_for_its_one_change() {
        let config = ServerPolicy::default();
        let p = policy_patch(&config, "policy-max", "").expect("a patch");
        assert_eq!(p.max_requests, Some(None), "empty: unlimited");
        assert_eq!(p.idle_timeout_ms, None, "nothing else");
        let p = policy_patch(&config, "policy-tcp", "true").expect("a patch");
        assert_eq!(p.tcp_keepalive, Some(Some(TCP_DEFAULT)));
        let p = policy_patch(&config, "policy-tcp-idle", "30").expect("a patch");
        assert_eq!(
            p.tcp_keepalive,
            Some(Some(TcpKeepalive {
                idle_s: 30,
                ..TCP_DEFAULT
            }))
        );
        assert!(policy_patch(&config, "mb-scale", "3").is_none());
        assert_eq!(
            middlebox_patch("mb-scale", "100").and_then(|p| p.scale),
            Some(100)
        );
    }
}
