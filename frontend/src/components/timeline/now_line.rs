//! The clip rectangle for segments still in progress, and the "now" line.

use gloo_timers::callback::Interval;
use yew::prelude::*;

use super::{AXIS, px};
use crate::services::fetch::now_ms;
use crate::timeline::Scale;

#[derive(Properties, PartialEq)]
pub(super) struct NowLineProps {
    pub scale: Scale,
    pub height: f64,
    pub live: bool,
    /// Told when "now" runs past the right edge, so the view can grow.
    pub on_overflow: Callback<f64>,
}

/// Re-renders itself on a timer, alone.
#[component]
pub(super) fn NowLine(props: &NowLineProps) -> Html {
    let now = use_state(now_ms);
    {
        let (now, live) = (now.clone(), props.live);
        use_effect_with(live, move |live| {
            let every = if *live { 40 } else { 500 };
            let timer = Interval::new(every, move || now.set(now_ms()));
            move || drop(timer)
        });
    }
    if *now > props.scale.end_ms && props.live {
        props.on_overflow.emit(*now);
    }
    let x = crate::decimal::fixed(props.scale.x(*now), 1);
    html! { <>
        <clipPath id="until-now">
            <rect x="0" y="0" width={x.clone()} height={px(props.height)} />
        </clipPath>
        <line class="now" x1={x.clone()} x2={x} y1={px(AXIS)} y2={px(props.height)} />
    </> }
}
