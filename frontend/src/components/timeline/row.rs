//! One row of the timeline, a request or a connection, as one component:
//! a row re-renders only when its own request or lane changed (props compare
//! by pointer). One component type for both kinds of row, because each yew
//! component type costs about 2 KB of compressed WebAssembly.

use std::rc::Rc;

use yew::prelude::*;

use super::Focus;
use super::agent_row::{agent_request_row, agent_socket_row};
use super::lane_row::lane_row;
use super::request_row::request_row;
use crate::agent::{AgentRequest, AgentSocket};
use crate::clock::ClockSync;
use crate::state::{BrowserRequest, Lane};
use crate::tally::ConnUse;
use crate::timeline::Scale;

/// What a row shows.
pub(super) enum Item {
    /// Request `index` of the run, and how it went on its connection.
    Request(usize, Rc<BrowserRequest>, Option<ConnUse>),
    /// A connection.
    Lane(Rc<Lane>),
    /// A request of the agent, and the server's connection it went on.
    AgentRequest(Rc<AgentRequest>, Option<protocol::ConnId>),
    /// A socket of the agent, and the server's connection it is.
    AgentSocket(Rc<AgentSocket>, Option<protocol::ConnId>),
}

#[derive(Properties)]
pub(super) struct RowProps {
    pub item: Item,
    pub y: f64,
    pub scale: Scale,
    pub clock: ClockSync,
    pub highlighted: bool,
    pub on_focus: Callback<Option<Focus>>,
}

impl PartialEq for RowProps {
    fn eq(&self, other: &Self) -> bool {
        let same_item = match (&self.item, &other.item) {
            (Item::Request(i, a, u), Item::Request(j, b, v)) => {
                i == j && u == v && super::super::same(a, b)
            }
            (Item::Lane(a), Item::Lane(b)) => super::super::same(a, b),
            (Item::AgentRequest(a, c), Item::AgentRequest(b, d)) => c == d && a == b,
            (Item::AgentSocket(a, c), Item::AgentSocket(b, d)) => c == d && a == b,
            _ => false,
        };
        same_item
            && self.y == other.y
            && self.scale == other.scale
            && self.clock == other.clock
            && self.highlighted == other.highlighted
            && self.on_focus == other.on_focus
    }
}

#[component]
pub(super) fn Row(props: &RowProps) -> Html {
    let focus = match &props.item {
        Item::Request(i, ..) => Some(Focus::Request(*i)),
        Item::Lane(l) => Some(Focus::Lane(l.conn)),
        // The agent's rows highlight the server's lane of their connection.
        Item::AgentRequest(_, conn) | Item::AgentSocket(_, conn) => conn.map(Focus::Lane),
    };
    let enter = props.on_focus.reform({
        let focus = focus.clone();
        move |_: MouseEvent| focus.clone()
    });
    let onfocus = props.on_focus.reform(move |_: FocusEvent| focus.clone());
    match &props.item {
        Item::Request(i, r, usage) => request_row(*i, r, *usage, props, enter, onfocus),
        Item::Lane(l) => lane_row(l, props, enter, onfocus),
        Item::AgentRequest(r, _) => agent_request_row(r, props, enter, onfocus),
        Item::AgentSocket(s, _) => agent_socket_row(s, props, enter, onfocus),
    }
}
