//! The lesson track, the landing page: the lesson list or one lesson, and the
//! timeline of its runs.

use yew::prelude::*;

use super::AppProps;
use super::app::{Page, location_hash, set_hash, shell};
use super::lesson_view::LessonView;
use super::timeline::{Input, TimelineView};
use crate::hooks::{use_lab, use_room_move};

/// The lesson in the URL (`#lesson=ID`), or `None` for the list.
fn lesson_from_location() -> Option<&'static str> {
    let hash = location_hash();
    let id = hash.trim_start_matches('#').strip_prefix("lesson=")?;
    crate::lessons::find(id).map(|l| l.id())
}

/// A lesson named in the URL that this page does not have (a mistyped or
/// old link), cut to a readable length: the list says so instead of
/// showing itself as if nothing had been asked.
fn unknown_lesson_in_location() -> Option<String> {
    let hash = location_hash();
    let id = hash.trim_start_matches('#').strip_prefix("lesson=")?;
    if crate::lessons::find(id).is_some() {
        return None;
    }
    let mut shown: String = id.chars().take(40).collect();
    if shown.len() < id.len() {
        shown.push('…');
    }
    Some(shown)
}

/// The participant's landing page.
#[component]
pub fn LessonTrack(props: &AppProps) -> Html {
    let lab = use_lab(props.session.clone(), None);
    let lesson = use_state(lesson_from_location);
    // Back and Forward between the list and lessons (the fragment changes
    // within this page; `index.html` reloads only for the other page's).
    {
        let lesson = lesson.clone();
        use_effect_with((), move |()| {
            let listener = wasm_bindgen::closure::Closure::<dyn Fn()>::new(move || {
                lesson.set(lesson_from_location());
            });
            let window = web_sys::window();
            if let Some(w) = &window {
                let _ = w.add_event_listener_with_callback(
                    "hashchange",
                    wasm_bindgen::JsCast::unchecked_ref(listener.as_ref()),
                );
            }
            move || {
                if let Some(w) = &window {
                    let _ = w.remove_event_listener_with_callback(
                        "hashchange",
                        wasm_bindgen::JsCast::unchecked_ref(listener.as_ref()),
                    );
                }
            }
        });
    }
    let open_lesson = {
        let lesson = lesson.clone();
        Callback::from(move |id: Option<&'static str>| {
            set_hash(&id.map_or("lessons".to_owned(), |id| format!("lesson={id}")));
            lesson.set(id);
        })
    };
    // The instructor moved the room: open that lesson (a late joiner too;
    // not a learner who came from the workbench to pick a lesson).
    {
        let open = open_lesson.clone();
        use_room_move(
            &lab.state,
            !props.resumed,
            Callback::from(move |id: String| {
                if let Some(lesson) = crate::lessons::find(&id) {
                    open.emit(Some(lesson.id()));
                }
            }),
        );
    }
    let on_lessons = {
        let open = open_lesson.clone();
        Callback::from(move |e: MouseEvent| {
            e.prevent_default();
            open.emit(None);
        })
    };
    let state = &lab.state;
    let run = lab.run();
    let groups = crate::timeline::LaneGroups::of(state, run.as_deref());
    let agent_links = lab.agent_links();
    let unknown = lesson.is_none().then(unknown_lesson_in_location).flatten();
    let body = html! {
        <>
            if let Some(id) = unknown {
                <p class="error" role="status" id="unknown-lesson">
                    { format!("There is no lesson called “{id}” here: choose one from the list below.") }
                </p>
            }
            <LessonView lesson={*lesson} state={state.clone()} fire={lab.fire.clone()} send={lab.send.clone()}
                open={open_lesson} ready={lab.other_ports.is_some() && state.config.is_some()}
                https_origins={lab.https_origins()} />
            <TimelineView input={Input { run, groups, clock: state.clock, agent: (*lab.agent).clone(),
                agent_links, whole: false }} />
        </>
    };
    shell(&lab, Page::Lessons, Some(on_lessons), body)
}
