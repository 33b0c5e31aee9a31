//! The page's state, held outside any framework: the one [`LabState`], the
//! reducer applied to it, and who to tell when it changes.
//!
//! yew's `use_reducer` did this inside a component once. Kept here, the
//! frame dispatcher, the events socket and the burst script change the
//! state, and each participant page (`crate::page`) watches it and draws
//! itself again.
//!
//! Every change makes a new `Rc`, never an update in place: views compare
//! the state they drew with the current one by pointer (`Rc::ptr_eq`), and
//! each holds the one it drew, so its address cannot be reused while they
//! compare.

use std::cell::RefCell;
use std::rc::Rc;

use crate::state::{Action, LabState};

/// What a watcher is told: nothing but "changed" (it reads [`Store::state`]).
type Watcher = Rc<dyn Fn()>;

/// The page's state and its watchers. One per page; shared as `Rc<Store>`.
pub struct Store {
    /// The state now; replaced, never changed in place (see the module's doc).
    state: RefCell<Rc<LabState>>,
    /// Told after each change, in the order they came (a page watches its
    /// store for the document's life).
    watchers: RefCell<Vec<Watcher>>,
}

impl Store {
    /// A store holding `state`.
    pub fn new(state: LabState) -> Rc<Store> {
        Rc::new(Store {
            state: RefCell::new(Rc::new(state)),
            watchers: RefCell::new(Vec::new()),
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
        self.told_again();
    }

    /// Tells every watcher again without a change: something a page draws
    /// from besides the state moved (the flood of changes ended:
    /// `crate::flood`).
    pub fn told_again(&self) {
        let watchers: Vec<Watcher> = self.watchers.borrow().iter().cloned().collect();
        for watcher in watchers {
            watcher();
        }
    }

    /// Calls `watcher` after every change from now on.
    pub fn watch(&self, watcher: Watcher) {
        self.watchers.borrow_mut().push(watcher);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::state::SocketStatus;

    #[test]
    fn each_change_is_a_new_state_and_every_watcher_hears_it() {
        let store = Store::new(LabState::new(
            protocol::SessionId::parse("s-test").expect("an id"),
        ));
        let heard = Rc::new(Cell::new(0));
        {
            let heard = heard.clone();
            store.watch(Rc::new(move || heard.set(heard.get() + 1)));
        }
        // A watcher that reads the state and changes it again, as a view
        // carrying out a lesson's command does.
        {
            let store_ref = Rc::downgrade(&store);
            let done = Rc::new(Cell::new(false));
            store.watch(Rc::new(move || {
                if let Some(store) = store_ref.upgrade()
                    && !done.replace(true)
                {
                    let _ = store.state();
                    store.dispatch(Action::Socket(SocketStatus::Closed));
                }
            }));
        }
        let before = store.state();
        store.dispatch(Action::Socket(SocketStatus::Open));
        let after = store.state();
        assert!(!Rc::ptr_eq(&before, &after), "a new state for each change");
        assert_eq!(
            heard.get(),
            2,
            "both changes heard, the second from a watcher"
        );
        assert_eq!(
            store.state().socket,
            SocketStatus::Closed,
            "the watcher's change"
        );
    }
}
