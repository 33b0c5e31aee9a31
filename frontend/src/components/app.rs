//! The workbench's frame: its `main` with the header and the links between
//! the pages, drawn by [`crate::shell`] (which the lesson track, drawn
//! without yew, shares), then the workbench's own body.

use std::rc::Rc;

use yew::prelude::*;

use crate::dom::{self, Live, Web, outwards, target};
use crate::hooks::Lab;
use crate::shell::{self, Page};
use crate::state::{LabState, SocketStatus};

/// The page: header, the links between the views, then `body`.
pub fn shell(lab: &Lab, page: Page, body: Html) -> Html {
    let projector = lab.projector.clone();
    let large = *projector;
    let toggle_projector = Callback::from(move |()| {
        crate::live::remember_projector(!*projector);
        projector.set(!*projector);
    });
    html! {
        <main data-socket={lab.state.socket.name()} data-session={lab.state.session.to_string()}
            data-page={page.name()} class={if large { "projector" } else { "" }}>
            <Top state={lab.state.clone()} {page} projector={large}
                reconnect={lab.reconnect.clone()} {toggle_projector} />
            { body }
        </main>
    }
}

#[derive(Properties)]
struct TopProps {
    state: Rc<LabState>,
    page: Page,
    projector: bool,
    reconnect: Callback<MouseEvent>,
    toggle_projector: Callback<()>,
}

impl PartialEq for TopProps {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.state, &other.state)
            && self.page == other.page
            && self.projector == other.projector
    }
}

/// The header and the links, drawn by [`crate::shell`] into the two
/// elements this component renders empty (yew leaves their children
/// alone); one click listener on the header finds its buttons by id.
#[component]
fn Top(props: &TopProps) -> Html {
    let (header, nav) = (use_node_ref(), use_node_ref());
    let drawn = use_mut_ref(|| (Vec::<Vec<Live<web_sys::Element>>>::new(), Vec::new()));
    {
        let (header, nav) = (header.clone(), nav.clone());
        let (state, page, projector) = (props.state.clone(), props.page, props.projector);
        use_effect(move || {
            let (top, links) = &mut *drawn.borrow_mut();
            if let Some(header) = header.cast::<web_sys::Element>() {
                dom::patch(&mut Web, &header, top, &shell::header(&state, projector));
            }
            if let Some(nav) = nav.cast::<web_sys::Element>()
                && links.is_empty()
            {
                dom::patch(&mut Web, &nav, links, &[shell::nav_links(page)]);
            }
        });
    }
    let onclick = {
        let (reconnect, toggle) = (props.reconnect.clone(), props.toggle_projector.clone());
        Callback::from(move |e: MouseEvent| {
            let Some(button) = outwards(target(&e)).find(|el| !el.id().is_empty()) else {
                return;
            };
            match button.id().as_str() {
                shell::RECONNECT => reconnect.emit(e),
                shell::PROJECTOR => toggle.emit(()),
                _ => {}
            }
        })
    };
    html! {
        <>
            <header class="top" ref={header} {onclick} />
            <nav class="views" aria-label="Views" ref={nav} />
        </>
    }
}

/// The live link is open.
pub fn connected(lab: &Lab) -> bool {
    lab.state.socket == SocketStatus::Open
}
