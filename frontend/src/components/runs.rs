//! The last runs, and their exports (JSON, HAR 1.2, SVG).

use yew::prelude::*;

use crate::state::Run;

/// What [`runs`] shows. A plain function, not a component: each component
/// type costs about 2 KB of compressed WebAssembly, and this panel is a few
/// buttons.
pub struct RunsProps {
    /// Runs kept, oldest first: (id, name, summary).
    pub runs: Vec<(u32, String)>,
    /// The run shown.
    pub selected: Option<u32>,
    /// Show another run.
    pub on_select: Callback<u32>,
    /// Export the shown run: "json", "har" or "svg".
    pub on_export: Callback<&'static str>,
    /// Why the last export failed.
    pub problem: Option<String>,
}

/// A one-line summary of a run.
pub fn summary(run: &Run) -> String {
    let s = &run.settings;
    format!(
        "{}: {} × /api/{}{}",
        run.name(),
        s.count,
        s.endpoint.name(),
        if s.identical_url {
            " (identical URLs)"
        } else {
            ""
        }
    )
}

/// The runs panel.
pub fn runs(props: &RunsProps) -> Html {
    if props.runs.is_empty() {
        return html! {};
    }
    let export = |kind: &'static str| props.on_export.reform(move |_: MouseEvent| kind);
    html! {
        <section class="runs" aria-label="Runs">
            <h2>{ "Runs" }</h2>
            <div role="radiogroup" aria-label="Run shown">
                { for props.runs.iter().map(|(id, label)| {
                    let id = *id;
                    let onclick = props.on_select.reform(move |_: MouseEvent| id);
                    let checked = props.selected == Some(id);
                    html! {
                        <button class={crate::components::class(&["run"], &[(checked, "selected")])} role="radio"
                            aria-checked={checked.to_string()} {onclick} data-run={id.to_string()}>
                            { label.clone() }
                        </button>
                    }
                }) }
            </div>
            <div class="actions">
                <button class="secondary" id="export-json" onclick={export("json")}>{ "Export JSON" }</button>
                <button class="secondary" id="export-har" onclick={export("har")}>{ "Export HAR (DevTools)" }</button>
                <button class="secondary" id="export-svg" onclick={export("svg")}>{ "Export timeline SVG" }</button>
            </div>
            if let Some(problem) = &props.problem {
                <p class="error" role="alert">{ problem.clone() }</p>
            }
        </section>
    }
}
