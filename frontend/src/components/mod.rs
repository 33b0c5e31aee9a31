//! The page's components, one per file.

mod agent_composer;
mod app;
mod composer;
mod instructor;
mod instructor_page;
mod lesson_view;
mod measured;
mod policy;
mod root;
mod runs;
mod timeline;

pub use instructor_page::InstructorPage;
pub use root::Root;

use std::rc::Rc;

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
