//! The browser side: where each request of the burst is.

use yew::prelude::*;

use crate::state::{BrowserRequest, Burst, Phase};

/// Props of [`BrowserPane`].
#[derive(Properties, PartialEq)]
pub struct BrowserPaneProps {
    /// The last burst, if any.
    pub burst: Option<Burst>,
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn row(index: usize, r: &BrowserRequest) -> Html {
    let connection = match (r.conn, r.seq) {
        (Some(conn), Some(1)) => format!("on {conn}, a new connection"),
        (Some(conn), Some(seq)) => format!("on {conn}, reused ({} request on it)", ordinal(seq)),
        (Some(conn), None) => format!("on {conn}"),
        (None, _) => "no connection yet".to_owned(),
    };
    let took = r
        .ended_ms
        .map(|end| format!("{:.2} s", (end - r.issued_ms) / 1000.0));
    html! {
        <li class={classes!("req", r.phase.name())}
            data-tag={r.tag.clone()}
            data-phase={r.phase.name()}
            data-conn={r.conn.map(|c| c.0.to_string())}>
            <span class="idx">{ format!("#{}", index + 1) }</span>
            <span class="phase">{ r.phase.label() }</span>
            <span class="conn">{ connection }</span>
            if let Some(took) = took {
                <span class="took">{ took }</span>
            }
            if let (Phase::Failed, Some(error)) = (r.phase, &r.error) {
                <span class="why">{ error.clone() }</span>
            }
        </li>
    }
}

/// The browser pane.
#[component]
pub fn BrowserPane(props: &BrowserPaneProps) -> Html {
    html! {
        <section class="pane browser" aria-label="Browser side">
            <h2>{ "Browser: your requests" }</h2>
            <p class="source">
                { "Queued or at the server: from the server's events. Connection and new/reused: \
                   from the X-Conn-Id and X-Request-Seq response headers." }
            </p>
            if let Some(burst) = &props.burst {
                <ol class="requests" data-run={burst.run.clone()}>
                    { for burst.requests.iter().enumerate().map(|(i, r)| row(i, r)) }
                </ol>
            } else {
                <p>{ "No burst fired yet." }</p>
            }
        </section>
    }
}
