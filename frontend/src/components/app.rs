//! The whole page: state, the events socket, and what each control does.

use protocol::ClientMessage;
use yew::prelude::*;

use super::agent_composer::AgentComposer;
use super::composer::Composer;
use super::lesson_view::LessonView;
use super::measured::{MeasuredProps, measured};
use super::middlebox_panel::{MiddleboxProps, middlebox_panel};
use super::policy::PolicyPanel;
use super::runs::{RunsProps, runs, summary};
use super::timeline::TimelineView;
use crate::agent::{AgentSettings, AgentView};
use crate::har;
use crate::hooks::{use_event_socket, use_frame_dispatch};
use crate::services::{burst, download};
use crate::settings::{BurstSettings, OtherPorts, port_of, resolve_origin};
use crate::state::{LabState, Lane, SocketStatus};

/// What the page shows: the lesson track (the landing view) or the free
/// workbench, each with its own URL (`#lessons`, `#lesson=ID`, `#workbench`
/// or a workbench link carrying burst settings).
#[derive(Debug, Clone, PartialEq, Eq)]
enum View {
    /// The lesson list, or one lesson.
    Lessons(Option<&'static str>),
    /// The burst composer and policy panel.
    Workbench,
}

fn location_hash() -> String {
    web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default()
}

fn view_from_location() -> View {
    let hash = location_hash();
    let hash = hash.trim_start_matches('#');
    if let Some(id) = hash.strip_prefix("lesson=") {
        return View::Lessons(crate::lessons::find(id).map(|l| l.id()));
    }

    match hash {
        "" | "lessons" => View::Lessons(None),
        _ => View::Workbench,
    }
}

fn set_hash(hash: &str) {
    if let Some(location) = web_sys::window().map(|w| w.location()) {
        let _ = location.set_hash(hash);
    }
}

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

/// Props of [`App`].
#[derive(Debug, Properties, PartialEq)]
pub struct AppProps {
    /// This page load's session, issued by the server.
    pub session: protocol::SessionId,
}

/// The lab page.
#[component]
pub fn App(props: &AppProps) -> Html {
    let state = use_reducer(|| LabState::new(props.session.clone()));
    // Run ids are allocated at fire time: a queued RunStarted is applied at
    // the next frame, and a second click before it must not reuse the id.
    let runs_allocated = use_mut_ref(|| 0_u32);
    let frames = use_frame_dispatch(state.dispatcher());
    let socket = use_event_socket(state.session.clone(), frames.clone());
    let initial = use_memo((), |()| settings_from_location());
    let settings = use_state(|| initial.0);
    let problem = use_state(|| initial.1.clone());
    let share_url = use_state(|| None::<String>);
    let selected = use_state(|| None::<u32>);
    let projector = use_state(|| false);
    let export_problem = use_state(|| None::<String>);
    // An SVG export asked for: the timeline draws every row of the run (a
    // long run draws only those in view), and the file is taken after that
    // render, so it holds the whole run.
    let svg_export = use_state(|| false);
    let agent_settings = use_state(AgentSettings::default);
    // The newest agent run, rebuilt only when an agent event arrived.
    let agent = {
        let key = (state.agent.len(), state.agent.back().map(|r| r.at_us));
        let state = state.clone();
        use_memo(key, move |_| {
            AgentView::latest(&state).map(std::rc::Rc::new)
        })
    };

    let send = {
        let (socket, problem) = (socket.clone(), problem.clone());
        Callback::from(move |message: ClientMessage| {
            problem.set(
                socket
                    .send(&message)
                    .err()
                    .map(|e| format!("Not sent to the server: {e}")),
            )
        })
    };
    let view = use_state(view_from_location);
    // Where the lab's middlebox and HTTPS ports listen (origins of their
    // own). `None` until asked; then the ports the lab serves.
    let other_ports = use_state(|| None::<OtherPorts>);
    {
        let (other_ports, session) = (other_ports.clone(), state.session.clone());
        let frames = frames.clone();
        use_effect_with((), move |()| {
            wasm_bindgen_futures::spawn_local(async move {
                let path = format!("/api/middlebox?session={session}");
                let view =
                    crate::services::session::json::<protocol::MiddleboxView>("GET", &path, None)
                        .await;
                if let Ok(view) = &view {
                    // The session's settings, which a lesson that changes
                    // them puts back.
                    frames.event(protocol::ServerEvent::MiddleboxChanged {
                        settings: view.settings.clone(),
                        in_force_ms: view.in_force_ms,
                        session: Some(session.clone()),
                        at_us: 0,
                    });
                }
                let middlebox = view
                    .ok()
                    .and_then(|view| view.listeners.iter().find_map(|l| port_of(l)));
                let tls = crate::services::session::json::<protocol::TlsListeners>(
                    "GET", "/api/tls", None,
                )
                .await
                .unwrap_or_default();
                other_ports.set(Some(OtherPorts {
                    middlebox,
                    tls_h2: tls.h2.iter().find_map(|l| port_of(l)),
                    tls_h1: tls.http1_only.iter().find_map(|l| port_of(l)),
                    tls_h2_limited: tls.h2_limited.iter().find_map(|l| port_of(l)),
                }));
            });
        });
    }
    // The lab's HTTPS origins, for a lesson over TLS to link.
    let https_origins: Vec<String> = burst::page_origin()
        .ok()
        .map(|page| {
            let ports = other_ports.unwrap_or_default();
            [ports.tls_h2, ports.tls_h1, ports.tls_h2_limited]
                .into_iter()
                .flatten()
                .map(|port| format!("https://{}:{port}", page.host))
                .collect()
        })
        .unwrap_or_default();
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
                other_ports.unwrap_or_default(),
            )
            .ok()
        })
        .flatten();
    // Fires a burst (from the composer or a lesson); answers its run id.
    let fire = {
        let (state, selected) = (state.clone(), selected.clone());
        let runs_allocated = runs_allocated.clone();
        let ports = other_ports.unwrap_or_default();
        Callback::from(move |settings: BurstSettings| -> Result<u32, String> {
            // The server's listeners arrive with its first snapshot; until
            // then a second-port target would look absent.
            if state.config.is_none() {
                return Err(
                    "the page has not heard from the server yet; try again in a moment".into(),
                );
            }
            let origin = burst::page_origin()
                .and_then(|page| resolve_origin(settings.target, &page, &state.listeners, ports))?;
            selected.set(None);
            let run = {
                let mut last = runs_allocated.borrow_mut();
                *last = (*last).max(state.runs_fired) + 1;
                *last
            };
            burst::fire(
                settings,
                run,
                origin,
                state.session.as_str(),
                frames.clone(),
            );
            Ok(run)
        })
    };
    let on_fire = {
        let (settings, problem, fire) = (settings.clone(), problem.clone(), fire.clone());
        Callback::from(move |()| problem.set(fire.emit(*settings).err()))
    };
    let open_lesson = {
        let view = view.clone();
        Callback::from(move |lesson: Option<&'static str>| {
            set_hash(&lesson.map_or("lessons".to_owned(), |id| format!("lesson={id}")));
            view.set(View::Lessons(lesson));
        })
    };
    // The instructor moved the room: open that lesson (a late joiner too).
    {
        let open = open_lesson.clone();
        use_effect_with(state.room_lesson.clone(), move |moved| {
            if let Some((id, _)) = moved
                && let Some(lesson) = crate::lessons::find(id)
            {
                open.emit(Some(lesson.id()));
            }
        });
    }
    let show = |target: View| {
        let view = view.clone();
        Callback::from(move |e: MouseEvent| {
            e.prevent_default();
            set_hash(match target {
                View::Workbench => "workbench",
                View::Lessons(_) => "lessons",
            });
            view.set(target.clone());
        })
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

    let run = match *selected {
        Some(id) => state.run(id).or(state.current()),
        None => state.current(),
    }
    .cloned();
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
        let selected = selected.clone();
        Callback::from(move |id| selected.set(Some(id)))
    };
    let toggle_projector = {
        let projector = projector.clone();
        Callback::from(move |_: MouseEvent| projector.set(!*projector))
    };
    let connected = state.socket == SocketStatus::Open;
    let agent_links = agent
        .as_ref()
        .as_ref()
        .map(|a| a.links(&state))
        .unwrap_or_default();
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

    html! {
        <main data-socket={state.socket.name()} data-session={state.session.to_string()} class={crate::components::class(&[], &[(*projector, "projector")])}>
            <header class="top">
                <h1>{ "keepalive-lab" }</h1>
                <p class="lede">
                    { "How many connections does your browser open to one server, and what happens to the \
                       requests that do not get one? Fire a burst from this page, then read both sides on \
                       one clock: the browser's queue above, the server's TCP connections below." }
                </p>
                <p class={crate::components::class(&["socket", state.socket.name()], &[])} role="status">
                    { "Live link to the server: " }<strong>{ state.socket.name() }</strong>
                    <button class="secondary small" onclick={toggle_projector} aria-pressed={projector.to_string()}>
                        { if *projector { "Normal size" } else { "Projector mode" } }
                    </button>
                </p>
            </header>
            <nav class="views" aria-label="Views">
                <a href="#lessons" id="nav-lessons" onclick={show(View::Lessons(None))}
                    aria-current={matches!(*view, View::Lessons(_)).then_some("page")}>{ "Lessons" }</a>
                <a href="#workbench" id="nav-workbench" onclick={show(View::Workbench)}
                    aria-current={(*view == View::Workbench).then_some("page")}>{ "Workbench" }</a>
            </nav>
            if let View::Lessons(lesson) = (*view).clone() {
                <LessonView {lesson} state={state.clone()} fire={fire.clone()} send={send.clone()} open={open_lesson}
                    ready={other_ports.is_some() && state.config.is_some()} https_origins={https_origins.clone()} />
                <TimelineView run={run.clone()} groups={groups} clock={state.clock} agent={(*agent).clone()} agent_links={agent_links.clone()} whole={false} />
            } else {
                <div class="bench">
                    <Composer settings={*settings} on_change={on_settings} on_fire={on_fire} on_release={on_release}
                        on_share={on_share} share_url={(*share_url).clone()} connected={connected}
                        problem={(*problem).clone().or_else(|| state.server_error.clone())}
                        https_origin={https_origin} />
                    <PolicyPanel config={state.config.clone()} enabled={connected} on_change={on_policy}
                        revision={state.config_revision} />
                    { middlebox_panel(&MiddleboxProps {
                        settings: state.middlebox_settings.as_ref().map(|m| m.0.clone()),
                        revision: state.config_revision + heard,
                        enabled: connected, on_change: on_middlebox }) }
                    <AgentComposer settings={(*agent_settings).clone()} on_change={on_agent_change}
                        on_start={on_agent_start} on_stop={on_agent_stop} running={agent_running} {connected}
                        status={agent.as_ref().as_ref().map(|a| a.summary())} />
                </div>
                { measured(&MeasuredProps { run: run.clone(), events_dropped: state.events_dropped,
                    tally: run.as_deref().map(|r| crate::tally::Tally::of(r, &state)) }) }
                <TimelineView run={run.clone()} groups={groups} clock={state.clock} agent={(*agent).clone()} agent_links={agent_links.clone()} whole={*svg_export} />
                { runs(&RunsProps { runs: state.runs.iter().map(|r| (r.id, summary(r))).collect(),
                    selected: run.as_ref().map(|r| r.id), on_select, on_export,
                    problem: (*export_problem).clone() }) }
            }
        </main>
    }
}
