//! What the last burst measured, in figures and words.

use yew::prelude::*;

use crate::state::{Burst, Phase};

/// Props of [`Measured`].
#[derive(Properties, PartialEq)]
pub struct MeasuredProps {
    /// The last burst, if any.
    pub burst: Option<Burst>,
    /// Events the server skipped for this page.
    pub events_dropped: u64,
}

/// The measured panel.
#[component]
pub fn Measured(props: &MeasuredProps) -> Html {
    let dropped = (props.events_dropped > 0).then(|| {
        html! {
            <p class="error" role="alert">
                { format!("This page fell behind and missed {} server events: the figures may be \
                           incomplete. Reload to start from a fresh snapshot.", props.events_dropped) }
            </p>
        }
    });
    let Some(burst) = &props.burst else {
        return html! {
            <section class="measured" aria-label="Measured">
                <p>{ "Nothing measured yet: fire a burst." }</p>
                { for dropped }
            </section>
        };
    };
    let max = burst.max_concurrent_conns;
    let at_server = burst.count(Phase::AtServer);
    let queued = burst.count(Phase::Queued);
    let explanation = if max == 0 {
        "No request has reached the server yet.".to_owned()
    } else if queued > 0 && at_server > 0 {
        format!(
            "Your browser opened {max} connections to this origin and is holding the other {queued} \
             requests in its own queue until one of those connections is free. The server has not \
             seen them at all."
        )
    } else {
        format!(
            "At most {max} connections carried this burst at once; {} of its requests reused a \
             connection that an earlier request had used (keep-alive).",
            burst.reused()
        )
    };
    html! {
        <section class="measured" aria-label="Measured">
            <dl>
                <div>
                    <dt>{ "Max concurrent connections your browser opened to this origin" }</dt>
                    <dd><output id="max-conns" data-value={max.to_string()}>{ max }</output></dd>
                </div>
                <div>
                    <dt>{ "Requests at the server now" }</dt>
                    <dd id="at-server">{ at_server }</dd>
                </div>
                <div>
                    <dt>{ "Requests waiting in the browser now" }</dt>
                    <dd id="queued">{ queued }</dd>
                </div>
                <div>
                    <dt>{ "Connections used / requests on a reused connection" }</dt>
                    <dd>{ format!("{} / {}", burst.conns_used.len(), burst.reused()) }</dd>
                </div>
            </dl>
            <p class="explain">{ explanation }</p>
            <p class="source">
                { "Measured from the server's events for this burst's requests (each URL carries \
                   its tag), never assumed." }
            </p>
            { for dropped }
        </section>
    }
}
