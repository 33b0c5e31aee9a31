//! The server side: one lane per TCP connection.

use std::collections::BTreeMap;

use protocol::{ConnId, RequestOutcome};
use yew::prelude::*;

use crate::state::{Lane, LaneRequest, tag_of};

/// Props of [`ServerPane`].
#[derive(Properties, PartialEq)]
pub struct ServerPaneProps {
    /// Every connection seen.
    pub lanes: BTreeMap<ConnId, Lane>,
}

fn request_chip(r: &LaneRequest) -> Html {
    let (state, label) = match r.finished {
        None if r.status.is_some() => ("sending", "sending".to_owned()),
        None => ("active", "in flight".to_owned()),
        Some((_, RequestOutcome::Completed)) => (
            "completed",
            r.status.map_or("done".into(), |s| format!("{s}")),
        ),
        Some((_, RequestOutcome::Aborted)) => ("aborted", "aborted".to_owned()),
        Some((_, RequestOutcome::Upgraded)) => ("upgraded", "upgraded".to_owned()),
    };
    let what = tag_of(&r.target).map_or_else(|| r.target.clone(), |t| t.to_owned());
    html! {
        <li class={classes!("chip", state)} data-request={r.request.0.to_string()}
            title={format!("{} {}", r.method, r.target)}>
            { format!("{}. {what} · {label}", r.seq) }
        </li>
    }
}

fn lane(l: &Lane) -> Html {
    let status = match &l.closed {
        None if l.in_flight() > 0 => "busy".to_owned(),
        None => "open, idle".to_owned(),
        Some(close) => format!(
            "closed: {} · {} B in, {} B out",
            close.reason.label(),
            close.bytes_in,
            close.bytes_out
        ),
    };
    html! {
        <li class={classes!("lane", l.closed.is_some().then_some("closed"))}
            data-conn={l.conn.0.to_string()}
            data-reason={l.closed.as_ref().map(|c| c.reason.kind())}
            data-in-flight={l.in_flight().to_string()}>
            <div class="lane-head">
                <strong>{ l.conn.to_string() }</strong>
                <span class="peer">{ format!("from {} to {}", l.peer, l.local_addr) }</span>
                <span class="status">{ status }</span>
            </div>
            <ol class="chips">{ for l.requests.iter().map(request_chip) }</ol>
        </li>
    }
}

fn aside(l: &Lane) -> Html {
    let what = if l.upgraded.is_some() {
        "this page's live WebSocket (it does not take one of the six HTTP slots)"
    } else {
        "no request yet: browsers open a spare connection when a page loads"
    };
    let state = l.closed.as_ref().map_or("open".to_owned(), |c| {
        format!("closed: {}", c.reason.label())
    });
    html! {
        <li data-conn={l.conn.0.to_string()}>
            { format!("{} from {}: {what} · {state}", l.conn, l.peer) }
        </li>
    }
}

/// The server pane.
#[component]
pub fn ServerPane(props: &ServerPaneProps) -> Html {
    let (http, other): (Vec<&Lane>, Vec<&Lane>) = props.lanes.values().partition(|l| l.is_http());
    let open = http.iter().filter(|l| l.closed.is_none()).count();
    html! {
        <section class="pane server" aria-label="Server side">
            <h2>{ format!("Server: TCP connections ({open} open)") }</h2>
            <p class="source">{ "Every accepted socket, from the server's own accept loop." }</p>
            <ol class="lanes">{ for http.iter().rev().map(|l| lane(l)) }</ol>
            if !other.is_empty() {
                <h3>{ "Not counted in the experiment" }</h3>
                <ul class="aside">{ for other.iter().map(|l| aside(l)) }</ul>
            }
        </section>
    }
}
