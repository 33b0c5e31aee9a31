//! What part of a drawing is in view in its scrolling box, kept current as
//! the box scrolls.
//!
//! Measured only when the box scrolls (never while rendering, which would
//! force a layout in every frame), and rounded to blocks so that most
//! scrolls change nothing and re-render nothing. Before the first scroll the
//! box shows its top, which is what `None` stands for. The box is at most
//! three quarters of the window high (`index.html`), so what it shows bounds
//! what is drawn whether or not the page itself is scrolled.

use web_sys::Element;
use yew::prelude::*;

use crate::timeline::InView;

/// What of the drawing filling a scrolling box (`width` drawing units wide)
/// is in view, in blocks of `block` units, and the `onscroll` for the box;
/// `None` while the box shows its top. Back to `None` when `present`
/// changes: the drawing and its box come and go with the run shown, and a
/// new box starts at its top.
#[hook]
pub fn use_in_view(present: bool, width: f64, block: f64) -> (Option<InView>, Callback<Event>) {
    // Kept as a pair: the same state type as the timeline's zoom, so yew's
    // state hook is not built for one more type (bytes in the download).
    let in_view = use_state(|| None::<(f64, f64)>);
    {
        let in_view = in_view.clone();
        use_effect_with(present, move |_| in_view.set(None));
    }
    let onscroll = {
        let in_view = in_view.clone();
        Callback::from(move |e: Event| {
            if let Some(b) = e.target_dyn_into::<Element>() {
                let v = InView::measure(
                    f64::from(b.scroll_top()),
                    (f64::from(b.client_height()), f64::from(b.client_width())),
                    width,
                    block,
                );
                if *in_view != Some((v.top, v.bottom)) {
                    in_view.set(Some((v.top, v.bottom)));
                }
            }
        })
    };
    (
        in_view.map(|(top, bottom)| InView { top, bottom }),
        onscroll,
    )
}
