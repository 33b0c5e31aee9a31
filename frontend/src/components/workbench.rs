//! The free workbench: the burst composer, the session's server policy,
//! middlebox and Node-style agent, what the run measured, its timeline, the
//! run list and the exports.

use protocol::ClientMessage;
use yew::prelude::*;

use super::AppProps;
use super::agent_composer::AgentComposer;
use super::app::{connected, shell};
use super::composer::Composer;
use super::measured::{MeasuredProps, measured};
use super::middlebox_panel::{MiddleboxProps, middlebox_panel};
use super::policy::PolicyPanel;
use super::runs::{RunsProps, runs, summary};
use super::timeline::{Input, TimelineView};
use crate::agent::AgentSettings;
use crate::har;
use crate::hooks::{use_lab, use_room_move};
use crate::services::{burst, download};
use crate::settings::{BurstSettings, resolve_origin};
use crate::shell::{Page, location_hash, set_hash};
use crate::state::Lane;

/// Settings from the page's URL fragment (a shared link), and what in it was ignored.
fn settings_from_location() -> (BurstSettings, Option<String>) {
    let hash = location_hash();
    let hash = if hash == "#workbench" {
        String::new()
    } else {
        hash
    };
    let (settings, ignored) = BurstSettings::from_fragment(&hash);
    let note =
        (!ignored.is_empty()).then(|| format!("Ignored in the link: {}", ignored.join(", ")));
    (settings, note)
}

/// The workbench page.
#[component]
pub fn Workbench(props: &AppProps) -> Html {
    let initial = use_memo((), |()| settings_from_location());
    let lab = use_lab(props.session.clone(), initial.1.clone());
    let settings = use_state(|| initial.0);
    let share_url = use_state(|| None::<String>);
    let export_problem = use_state(|| None::<String>);
    // An SVG export asked for: the timeline draws every row of the run (a
    // long run draws only those in view), and the file is taken after that
    // render, so it holds the whole run.
    let svg_export = use_state(|| false);
    let agent_settings = use_state(AgentSettings::default);
    let state = lab.state.clone();
    let send = lab.send.clone();
    let problem = lab.problem.clone();

    // The instructor moves the room to a lesson: that is on the lesson track
    // (`index.html` loads it, with this page's session). A late joiner is
    // taken to the room's lesson; a learner who came here from it stays.
    use_room_move(
        &state,
        !props.resumed,
        Callback::from(|id: String| set_hash(&format!("lesson={id}"))),
    );

    // Where an HTTPS target goes, for the composer's certificate note.
    let https_origin = settings
        .target
        .is_tls()
        .then(|| {
            let page = burst::page_origin().ok()?;
            resolve_origin(
                settings.target,
                &page,
                &state.listeners,
                lab.other_ports.unwrap_or_default(),
            )
            .ok()
        })
        .flatten();
    let on_fire = {
        let (settings, problem, fire) = (settings.clone(), problem.clone(), lab.fire.clone());
        Callback::from(move |()| problem.set(fire.emit(*settings).err()))
    };
    let on_release = send.reform(|()| ClientMessage::Release {
        request: None,
        id: None,
    });
    let on_policy = send.reform(|config| ClientMessage::SetConfig { config });
    let heard = state.middlebox_settings.as_ref().map_or(0, |m| m.1);
    let on_middlebox = send.reform(|middlebox| ClientMessage::SetMiddlebox { middlebox });
    let on_settings = {
        let settings = settings.clone();
        Callback::from(move |s| settings.set(s))
    };
    let on_share = {
        let (settings, share_url) = (settings.clone(), share_url.clone());
        Callback::from(move |()| {
            let Some(location) = web_sys::window().map(|w| w.location()) else {
                return;
            };
            let fragment = settings.to_fragment();
            let _ = location.set_hash(&fragment);
            share_url.set(location.href().ok());
        })
    };

    let run = lab.run();
    let groups = crate::timeline::LaneGroups::of(&state, run.as_deref());
    {
        let (svg_export, export_problem, run) =
            (svg_export.clone(), export_problem.clone(), run.clone());
        use_effect_with(*svg_export, move |asked| {
            if let (true, Some(run)) = (*asked, &run) {
                let saved = download::outer_html("timeline")
                    .ok_or_else(|| "no timeline to export yet".to_owned())
                    .and_then(|svg| {
                        let name = format!("keepalive-lab-{}.svg", run.name());
                        download::save(&name, "image/svg+xml", &svg)
                    });
                export_problem.set(saved.err());
                svg_export.set(false);
            }
        });
    }
    let on_export = {
        let (state, run, export_problem) = (state.clone(), run.clone(), export_problem.clone());
        let svg_export = svg_export.clone();
        Callback::from(move |kind: &'static str| {
            let Some(run) = &run else { return };
            let lanes: Vec<&Lane> = state.lanes.values().map(|l| &**l).collect();
            let name = format!("keepalive-lab-{}", run.name());
            let saved = match kind {
                "json" => download::save(
                    &format!("{name}.json"),
                    "application/json",
                    &har::run_json(run, &lanes, &state.clock),
                ),
                "har" => download::save(
                    &format!("{name}.har"),
                    "application/json",
                    &har::export(run, &state.clock),
                ),
                _ => {
                    svg_export.set(true);
                    return;
                }
            };
            export_problem.set(saved.err());
        })
    };
    let on_select = {
        let selected = lab.selected.clone();
        Callback::from(move |id| selected.set(Some(id)))
    };
    let connected = connected(&lab);
    let agent = lab.agent.clone();
    let agent_links = lab.agent_links();
    let agent_running = agent.as_ref().as_ref().is_some_and(|a| a.is_live());
    let on_agent_change = {
        let agent_settings = agent_settings.clone();
        Callback::from(move |s| agent_settings.set(s))
    };
    let on_agent_start = {
        let (send, agent_settings, problem) =
            (send.clone(), agent_settings.clone(), problem.clone());
        Callback::from(move |()| match agent_settings.message() {
            Ok(message) => send.emit(message),
            Err(e) => problem.set(Some(e)),
        })
    };
    let on_agent_stop = send.reform(|()| ClientMessage::AgentStop {});

    let body = html! {
        <>
            <div class="bench">
                <Composer settings={*settings} on_change={on_settings} on_fire={on_fire} on_release={on_release}
                    on_share={on_share} share_url={(*share_url).clone()} connected={connected}
                    problem={(*problem).clone().or_else(|| state.server_error.clone())}
                    https_origin={https_origin} />
                <PolicyPanel config={state.config.clone()} enabled={connected} on_change={on_policy}
                    revision={state.config_revision} />
                { middlebox_panel(&MiddleboxProps {
                    settings: state.middlebox_settings.as_ref().map(|m| m.0.clone()),
                    probes_visible: lab.probes_visible,
                    revision: state.config_revision + heard,
                    enabled: connected, on_change: on_middlebox }) }
                <AgentComposer settings={(*agent_settings).clone()} on_change={on_agent_change}
                    on_start={on_agent_start} on_stop={on_agent_stop} running={agent_running} {connected}
                    status={agent.as_ref().as_ref().map(|a| a.summary())} />
            </div>
            { measured(&MeasuredProps { run: run.clone(), events_dropped: state.events_dropped,
                tally: run.as_deref().map(|r| crate::tally::Tally::of(r, &state)) }) }
            <TimelineView input={Input { run: run.clone(), groups, clock: state.clock, agent: (*agent).clone(),
                agent_links, whole: *svg_export }} />
            { runs(&RunsProps { runs: state.runs.iter().map(|r| (r.id, summary(r))).collect(),
                selected: run.as_ref().map(|r| r.id), on_select, on_export,
                problem: (*export_problem).clone() }) }
        </>
    };
    shell(&lab, Page::Workbench, body)
}
