//! The session's middlebox (issue 10), editable by hand: a provider's preset,
//! the idle timeout, what happens at expiry and the time scale, sent with
//! `set_middlebox` over the WebSocket like the policy panel's changes; as
//! there, a refused change is reported in the page's alert and the form is
//! rebuilt from the settings in force. A plain function, not a component type
//! (`components/mod.rs`: about 2 KB of wasm).

use protocol::{MiddleboxPatch, MiddleboxSettings, OnExpiry, Preset, human_ms, human_us};
use yew::prelude::*;

use super::composer::value;

/// What [`middlebox_panel`] shows.
pub struct MiddleboxProps {
    /// The session's settings as the server last confirmed them.
    pub settings: Option<MiddleboxSettings>,
    /// Whether the lab's host can see keep-alive probes at all (`None`: not
    /// known yet).
    pub probes_visible: Option<bool>,
    /// Changes whenever the server confirms settings or refuses a change:
    /// the form is rebuilt from `settings`, so a refused value does not stay
    /// on screen as if it were in force.
    pub revision: u64,
    /// Editing needs the live socket.
    pub enabled: bool,
    /// Sends one change.
    pub on_change: Callback<MiddleboxPatch>,
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

/// A labelled control: `<select>` with `options`, or a number `<input>`.
fn field(
    label: String,
    id: &'static str,
    value: String,
    options: Html,
    on: Callback<Event>,
) -> Html {
    let control = if value.is_empty() {
        html! { <select {id} onchange={on}>{ options }</select> }
    } else {
        html! { <input {id} type="number" step="any" {value} onchange={on} /> }
    };
    html! { <label>{ label }{ control }</label> }
}

fn option(value: &'static str, label: &'static str, selected: bool) -> Html {
    html! { <option {value} {selected}>{ label }</option> }
}

/// The middlebox panel.
pub fn middlebox_panel(props: &MiddleboxProps) -> Html {
    let body = match &props.settings {
        None => html! { <p>{ "Waiting for the server's middlebox settings…" }</p> },
        Some(s) => {
            let spec = s.preset.spec();
            let patch = |apply: fn(&mut MiddleboxPatch, String)| {
                props.on_change.reform(move |e: Event| {
                    let mut p = MiddleboxPatch::default();
                    apply(&mut p, value(&e));
                    p
                })
            };
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
            html! { <>
                <p id="mb-in-force" role="status">
                    { format!("For connections through the lab's middlebox port opened after a change. \
                        In force (confirmed by the server): {}, idle timeout {real}; keep-alive probes {}; \
                        at expiry: {}. {time}",
                        spec.name,
                        match (props.probes_visible, s.probes_refresh) {
                            (Some(false), _) => "cannot be seen on this host (no Linux TCP_INFO) and never refresh a mapping",
                            (_, true) => "refresh a mapping",
                            (_, false) => "do not refresh a mapping",
                        },
                        s.on_expiry.describe()) }
                </p>
                <fieldset key={props.revision.to_string()} disabled={!props.enabled}>
                    { field("Preset ".into(), "mb-preset", String::new(),
                        Preset::ALL.iter().map(|p| option(p.as_str(), p.spec().name, *p == s.preset)).collect(),
                        patch(|p, v| p.preset = Preset::ALL.into_iter().find(|x| x.as_str() == v))) }
                    <p class="source">
                        { spec.summary }
                        if !link.is_empty() {
                            { ". Source: " }<a href={link} target="_blank">{ link }</a>{ " " }{ words }
                        }
                    </p>
                    { field(format!("Idle timeout (s; {} to {}) ", human_ms(low), human_ms(high)), "mb-idle",
                        crate::decimal::thousandths(s.idle_timeout_ms as i64), Html::default(),
                        patch(|p, v| p.idle_timeout_ms = ms_of(&v))) }
                    { field("At expiry ".into(), "mb-expiry", String::new(),
                        spec.on_expiry_allowed.iter().map(|o| option(o.as_str(), o.describe(), *o == s.on_expiry)).collect(),
                        patch(|p, v| p.on_expiry = OnExpiry::ALL.into_iter().find(|x| x.as_str() == v))) }
                    { field("Time scale (1 = real time, up to 1000) ".into(), "mb-scale", s.scale.to_string(),
                        Html::default(), patch(|p, v| p.scale = v.trim().parse().ok())) }
                </fieldset>
            </> }
        }
    };
    html! {
        <section class="policy middlebox" aria-label="Middlebox">
            <h2>{ "Middlebox" }</h2>
            { body }
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::ms_of;

    #[test]
    fn seconds_as_typed_become_milliseconds() {
        assert_eq!(ms_of("350"), Some(350_000));
        assert_eq!(ms_of(" 2.5 "), Some(2_500));
        assert_eq!(ms_of(".1"), Some(100));
        assert_eq!(ms_of("0.0005"), None);
        assert_eq!(ms_of(""), None);
        assert_eq!(ms_of("-1"), None);
    }
}
