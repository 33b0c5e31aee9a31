//! The page's state, held outside any framework: the one [`LabState`], the
//! reducer applied to it, and who to tell when it changes.
//!
//! yew's `use_reducer` did this inside a component. Kept here, the frame
//! dispatcher, the events socket and the burst script can change the state
//! without a component, and a view drawn without yew (the timeline first,
//! the lesson track next: `bench/src/causes.md`, figure 5) can watch it the
//! same way a yew component does through [`crate::hooks::use_store`].
//!
//! Every change makes a new `Rc`, never an update in place: views compare
//! the state they drew with the current one by pointer (`Rc::ptr_eq`), and
//! each holds the one it drew, so its address cannot be reused while they
//! compare.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::state::{Action, LabState};

/// What a watcher is told: nothing but "changed" (it reads [`Store::state`]).
type Watcher = Rc<dyn Fn()>;

/// The page's state and its watchers. One per page; shared as `Rc<Store>`.
pub struct Store {
    /// The state now; replaced, never changed in place (see the module's doc).
    state: RefCell<Rc<LabState>>,
    /// Told after each change, in the order they came; with the number
    /// [`Store::watch`] gave each, to take it off again.
    watchers: RefCell<Vec<(u32, Watcher)>>,
    /// The next watcher's number.
    next: Cell<u32>,
}

impl Store {
    /// A store holding `state`.
    pub fn new(state: LabState) -> Rc<Store> {
        Rc::new(Store {
            state: RefCell::new(Rc::new(state)),
            watchers: RefCell::new(Vec::new()),
            next: Cell::new(0),
        })
    }

    /// The state now.
    pub fn state(&self) -> Rc<LabState> {
        self.state.borrow().clone()
    }

    /// Applies `action` ([`LabState::apply`]), then tells every watcher.
    /// A watcher may read the state and dispatch again: no borrow is held
    /// while it runs.
    pub fn dispatch(&self, action: Action) {
        let next = {
            let mut next = LabState::clone(&self.state.borrow());
            next.apply(action);
            Rc::new(next)
        };
        *self.state.borrow_mut() = next;
        let watchers: Vec<Watcher> = self
            .watchers
            .borrow()
            .iter()
            .map(|(_, w)| w.clone())
            .collect();
        for watcher in watchers {
            watcher();
        }
    }

    /// Calls `watcher` after every change from now on, until
    /// [`Store::unwatch`] with the number this returns.
    pub fn watch(&self, watcher: Watcher) -> u32 {
        let id = self.next.get();
        self.next.set(id.wrapping_add(1));
        self.watchers.borrow_mut().push((id, watcher));
        id
    }

    /// Stops telling watcher `id`.
    pub fn unwatch(&self, id: u32) {
        self.watchers.borrow_mut().retain(|(n, _)| *n != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SocketStatus;

    #[test]
    fn each_change_is_a_new_state_and_every_watcher_hears_it_until_it_stops() {
        let store = Store::new(LabState::new(
            protocol::SessionId::parse("s-test").expect("an id"),
        ));
        let heard = Rc::new(Cell::new(0));
        let id = {
            let heard = heard.clone();
            store.watch(Rc::new(move || heard.set(heard.get() + 1)))
        };
        // A watcher that reads the state and changes it again, as a view
        // carrying out a lesson's command does.
        let again = {
            let store_ref = Rc::downgrade(&store);
            let done = Rc::new(Cell::new(false));
            store.watch(Rc::new(move || {
                if let Some(store) = store_ref.upgrade()
                    && !done.replace(true)
                {
                    let _ = store.state();
                    store.dispatch(Action::Socket(SocketStatus::Closed));
                }
            }))
        };
        let before = store.state();
        store.dispatch(Action::Socket(SocketStatus::Open));
        let after = store.state();
        assert!(!Rc::ptr_eq(&before, &after), "a new state for each change");
        assert_eq!(
            heard.get(),
            2,
            "both changes heard, the second from a watcher"
        );
        store.unwatch(id);
        store.unwatch(again);
        store.dispatch(Action::Socket(SocketStatus::Open));
        assert_eq!(heard.get(), 2, "not after unwatch");
        assert_eq!(store.state().socket, SocketStatus::Open);
    }
}
