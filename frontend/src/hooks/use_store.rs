//! A yew component's view of the page's [`Store`]: the state now, and a
//! render after each change.

use std::rc::Rc;

use yew::prelude::*;

use crate::state::LabState;
use crate::store::Store;

/// The state of `store` now; the component renders again after each change.
#[hook]
pub fn use_store(store: &Rc<Store>) -> Rc<LabState> {
    let update = use_force_update();
    let drawn = store.state();
    {
        let (store, drawn) = (store.clone(), drawn.clone());
        use_effect_with((), move |()| {
            let id = {
                let update = update.clone();
                store.watch(Rc::new(move || update.force_update()))
            };
            // A change between the first render and this effect was not
            // heard: render again for it.
            if !Rc::ptr_eq(&drawn, &store.state()) {
                update.force_update();
            }
            move || store.unwatch(id)
        });
    }
    drawn
}
