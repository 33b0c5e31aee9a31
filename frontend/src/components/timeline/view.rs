//! The timeline as a yew component: a thin wrapper that renders its section
//! and hands the props to [`Timeline`], which draws in it (and listens to
//! the learner) without yew.

use std::rc::Rc;

use yew::prelude::*;

use super::Input;
use super::island::{Cell, Timeline};

/// Props of [`TimelineView`]: what it draws.
#[derive(Properties, PartialEq)]
pub struct TimelineProps {
    /// The run, connections, clock and agent run to draw.
    pub input: Input,
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
    let input = props.input.clone();
    {
        let section = section.clone();
        use_effect(move || Timeline::show(&timeline, section.cast(), input));
    }
    html! { <section class="timeline" aria-label="Timeline" ref={section} /> }
}
