//! One row of the timeline, a request or a connection, and what it is
//! drawn from: a row is drawn again only when its own request or lane
//! changed (compared by pointer), or where it sits, the axis or the clock.

use std::rc::Rc;

use super::Focus;
use super::agent_row::{agent_request_row, agent_socket_row};
use super::lane_row::lane_row;
use super::request_row::request_row;
use crate::agent::{AgentRequest, AgentSocket};
use crate::clock::ClockSync;
use crate::dom::Node;
use crate::state::{BrowserRequest, Lane};
use crate::tally::ConnUse;
use crate::timeline::Scale;

/// What a row shows.
pub(super) enum Item {
    /// Request `index` of the run, how it went on its connection, and
    /// whether it is named by its tag (`b4-2`: a lesson's runs drawn as one)
    /// rather than by its number in the run.
    Request(usize, Rc<BrowserRequest>, Option<ConnUse>, bool),
    /// A connection.
    Lane(Rc<Lane>),
    /// A request of the agent, and the server's connection it went on.
    AgentRequest(Rc<AgentRequest>, Option<protocol::ConnId>),
    /// A socket of the agent, and the server's connection it is.
    AgentSocket(Rc<AgentSocket>, Option<protocol::ConnId>),
}

/// A row and everything it is drawn from. It holds its request or lane, so
/// the pointer it is compared by cannot be reused while it is drawn.
pub(super) struct Row {
    pub item: Item,
    pub y: f64,
    pub scale: Scale,
    pub clock: ClockSync,
    pub highlighted: bool,
}

impl PartialEq for Row {
    fn eq(&self, other: &Self) -> bool {
        let same_item = match (&self.item, &other.item) {
            (Item::Request(i, a, u, t), Item::Request(j, b, v, w)) => {
                i == j && u == v && t == w && crate::components::same(a, b)
            }
            (Item::Lane(a), Item::Lane(b)) => crate::components::same(a, b),
            (Item::AgentRequest(a, c), Item::AgentRequest(b, d)) => c == d && a == b,
            (Item::AgentSocket(a, c), Item::AgentSocket(b, d)) => c == d && a == b,
            _ => false,
        };
        same_item
            && self.y == other.y
            && self.scale == other.scale
            && self.clock == other.clock
            && self.highlighted == other.highlighted
    }
}

impl Row {
    /// What pointing at the row (or tabbing to it) focuses: the agent's
    /// rows highlight the server's lane of their connection, if any.
    pub(super) fn focus(&self) -> Option<Focus> {
        match &self.item {
            Item::Request(i, ..) => Some(Focus::Request(*i)),
            Item::Lane(l) => Some(Focus::Lane(l.conn)),
            Item::AgentRequest(_, conn) | Item::AgentSocket(_, conn) => conn.map(Focus::Lane),
        }
    }

    /// The row's node.
    pub(super) fn draw(&self) -> Node {
        match &self.item {
            Item::Request(i, r, usage, by_tag) => request_row(*i, r, *usage, *by_tag, self),
            Item::Lane(l) => lane_row(l, self),
            Item::AgentRequest(r, _) => agent_request_row(r, self),
            Item::AgentSocket(s, _) => agent_socket_row(s, self),
        }
    }
}
