//! The instructor's view (yew components, one per file) and the timeline
//! (drawn without yew, in both participant pages).

mod instructor;
mod instructor_page;
pub(crate) mod timeline;

pub use instructor_page::InstructorPage;

use std::rc::Rc;

/// A `class` attribute: the `base` names, then each name whose flag is set.
/// Not yew's `classes!`: its `IndexSet` brings the wasm hash-set code of its
/// own, for what is a few words joined by spaces.
pub(crate) fn class(base: &[&str], when: &[(bool, &str)]) -> String {
    let chosen = base
        .iter()
        .copied()
        .chain(when.iter().filter(|(on, _)| *on).map(|(_, name)| *name));
    let mut out = String::new();
    for name in chosen.filter(|n| !n.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(name);
    }
    out
}

/// Props holding shared state compare by pointer: the reducer copies a
/// request or lane only when it changes (`Rc::make_mut`), so an unchanged
/// one keeps its pointer and its row skips re-rendering.
fn same<T>(a: &Rc<T>, b: &Rc<T>) -> bool {
    Rc::ptr_eq(a, b)
}

fn same_option<T>(a: &Option<Rc<T>>, b: &Option<Rc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Rc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}
