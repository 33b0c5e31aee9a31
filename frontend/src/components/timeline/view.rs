//! The timeline as a yew component: a thin wrapper that renders its section
//! and hands the props to [`Timeline`], which draws in it (and listens to
//! the learner) without yew.

use std::rc::Rc;

use protocol::ConnId;
use yew::prelude::*;

use super::Input;
use super::island::{Cell, Timeline};
use crate::agent::AgentView;
use crate::clock::ClockSync;
use crate::state::Run;
use crate::timeline::LaneGroups;

/// Props of [`TimelineView`].
#[derive(Properties)]
pub struct TimelineProps {
    /// The run shown.
    pub run: Option<Rc<Run>>,
    /// The page's connections, sorted for this run.
    pub groups: LaneGroups,
    /// Server clock ⇄ page clock.
    pub clock: ClockSync,
    /// The session's newest Node-style agent run.
    pub agent: Option<Rc<AgentView>>,
    /// Its sockets' server connections (socket, connection).
    pub agent_links: Vec<(u32, ConnId)>,
    /// Draw every row, also those out of view (for an SVG export).
    pub whole: bool,
}

impl PartialEq for TimelineProps {
    fn eq(&self, other: &Self) -> bool {
        super::super::same_option(&self.run, &other.run)
            && super::super::same_option(&self.agent, &other.agent)
            && self.agent_links == other.agent_links
            && self.groups == other.groups
            && self.clock == other.clock
            && self.whole == other.whole
    }
}

/// The timeline: drawn in an effect after each render, so that it is
/// whole when the page's own effects run (yew runs a child's effects before
/// its parent's: the workbench's SVG export reads the drawing in one).
///
/// Unmounted, yew drops the cell, the only strong reference to the
/// [`Timeline`] (its listeners and clock hold weak ones): its listeners are
/// taken off and its clock stopped as it drops, no effect needed.
#[component]
pub fn TimelineView(props: &TimelineProps) -> Html {
    let section = use_node_ref();
    let timeline: Rc<Cell> = use_mut_ref(|| None);
    let input = Input {
        run: props.run.clone(),
        groups: props.groups.clone(),
        clock: props.clock,
        agent: props.agent.clone(),
        agent_links: props.agent_links.clone(),
        whole: props.whole,
    };
    {
        let section = section.clone();
        use_effect(move || Timeline::show(&timeline, section.cast(), input));
    }
    html! { <section class="timeline" aria-label="Timeline" ref={section} /> }
}
