//! The lesson track: the list of lessons, and one lesson being taken
//! (predict → run → measured answer beside the prediction → explanation).
//! Everything a lesson does comes from its data and the one runner
//! ([`crate::lessons::runner`]); this view only shows it and carries out the
//! runner's commands.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::callback::Interval;
use protocol::ClientMessage;
use yew::prelude::*;

use crate::lessons::runner::{Command, Runner, Stage};
use crate::lessons::{self, Answer, Lesson, LessonWords, Listed};
use crate::services::fetch::now_ms;
use crate::services::session::get_into;
use crate::settings::BurstSettings;
use crate::state::LabState;

/// Props of [`LessonView`].
#[derive(Properties)]
pub struct LessonViewProps {
    /// The lesson open, or `None` for the list.
    pub lesson: Option<&'static str>,
    /// The page's state (runs, lanes, policy).
    pub state: Rc<LabState>,
    /// Fires a burst; answers its run id.
    pub fire: Callback<BurstSettings, Result<u32, String>>,
    /// Sends a control message over the events socket.
    pub send: Callback<ClientMessage>,
    /// Opens a lesson (or the list, `None`).
    pub open: Callback<Option<&'static str>>,
    /// Everything a lesson may aim at is known (the middlebox's and HTTPS
    /// ports, and the server's listeners from its first snapshot).
    pub ready: bool,
    /// The lab's HTTPS origins, for a lesson over TLS to link: the learner
    /// accepts the lab's certificate on each once.
    #[prop_or_default]
    pub https_origins: Vec<String>,
}

/// The list, or one lesson.
#[component]
pub fn LessonView(props: &LessonViewProps) -> Html {
    // The catalogue, from the server (`GET /api/lessons`), once.
    let listed = use_state(|| None::<Result<Vec<Listed>, String>>);
    {
        let listed = listed.clone();
        use_effect_with((), move |()| get_into(listed, "/api/lessons".into()));
    }
    match props.lesson.and_then(lessons::find) {
        None => {
            let items = match &*listed {
                None => html! { <p class="help" role="status">{ "Loading the lessons…" }</p> },
                Some(Err(problem)) => html! {
                    <p class="error" role="alert">{ format!("The lessons could not be loaded: {problem}") }</p>
                },
                Some(Ok(list)) => {
                    // The server's order; only lessons this page can run.
                    let known = list
                        .iter()
                        .filter_map(|l| Some((lessons::find(&l.id)?.id(), l)));
                    html! { <ol class="lesson-list">{ for known.map(|(id, l)| {
                        let open = props.open.reform(move |_: MouseEvent| Some(id));
                        html! {
                            <li>
                                <a href={format!("#lesson={id}")} onclick={open} data-lesson-link={id}>
                                    // Numbered by the list (its number was also in the
                                    // words: "1. 1. Six lanes").
                                    <strong>{ l.title.clone() }</strong>
                                </a>
                                { format!(": {}", l.concept) }
                                <div class="help">{ l.summary.clone() }</div>
                            </li>
                        }
                    }) }</ol> }
                }
            };
            html! {
                <section class="lessons" aria-label="Lessons">
                    <h2>{ "Lessons" }</h2>
                    <p class="help">{ "Each lesson asks you to predict, runs an experiment in your own \
                        browser (the agent lessons: in a Node-style agent on the lab's server), and puts \
                        the measured answer beside your prediction. Nothing is typed in: every figure \
                        comes from this run." }</p>
                    { items }
                </section>
            }
        }
        Some(lesson) => html! {
            <LessonPage key={lesson.id()} {lesson} state={props.state.clone()}
                fire={props.fire.clone()} send={props.send.clone()} open={props.open.clone()}
                ready={props.ready} https_origins={props.https_origins.clone()} />
        },
    }
}

impl PartialEq for LessonViewProps {
    fn eq(&self, other: &Self) -> bool {
        self.lesson == other.lesson
            && same_state(&self.state, &other.state)
            && self.fire == other.fire
            && self.send == other.send
            && self.open == other.open
            && self.ready == other.ready
            && self.https_origins == other.https_origins
    }
}

/// The same state, by identity: the store makes a new one for every change
/// (`crate::store`), so comparing the whole page's state by value would
/// only cost time on every render, and the wasm its derived `==`.
fn same_state(a: &Rc<LabState>, b: &Rc<LabState>) -> bool {
    Rc::ptr_eq(a, b)
}

/// The page's state as an effect's dependency, compared by identity. It
/// holds the state, so a newer one can never be given the older one's
/// address while they are compared.
#[derive(Clone)]
struct StateRef(Rc<LabState>);

impl PartialEq for StateRef {
    fn eq(&self, other: &Self) -> bool {
        same_state(&self.0, &other.0)
    }
}

#[derive(Properties)]
struct LessonPageProps {
    lesson: &'static Lesson,
    state: Rc<LabState>,
    fire: Callback<BurstSettings, Result<u32, String>>,
    send: Callback<ClientMessage>,
    open: Callback<Option<&'static str>>,
    ready: bool,
    https_origins: Vec<String>,
}

impl PartialEq for LessonPageProps {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.lesson, other.lesson)
            && same_state(&self.state, &other.state)
            && self.fire == other.fire
            && self.ready == other.ready
            && self.https_origins == other.https_origins
    }
}

/// Carries out the runner's commands (a failed burst start feeds back in).
fn execute(
    runner: &RefCell<Runner>,
    commands: Vec<Command>,
    fire: &Callback<BurstSettings, Result<u32, String>>,
    send: &Callback<ClientMessage>,
) {
    let mut queue = commands;
    while !queue.is_empty() {
        let mut next = Vec::new();
        for command in queue {
            match command {
                Command::SetPolicy(config) => send.emit(ClientMessage::SetConfig { config }),
                Command::Release(id) => send.emit(ClientMessage::Release { request: None, id }),
                Command::Send(message) => send.emit(message),
                Command::Fire(settings) => match fire.emit(settings) {
                    Ok(run) => runner.borrow_mut().fired(run),
                    Err(why) => next.extend(runner.borrow_mut().fire_failed(why)),
                },
            }
        }
        queue = next;
    }
}

#[component]
fn LessonPage(props: &LessonPageProps) -> Html {
    let lesson = props.lesson;
    let runner = use_mut_ref(|| Runner::new(lesson));
    // The lesson's words, from the server when it opens.
    let fetched = use_state(|| None::<Result<LessonWords, String>>);
    {
        let fetched = fetched.clone();
        use_effect_with(lesson.id(), move |id| {
            get_into(fetched, format!("/api/lessons/{id}"));
        });
    }
    let update = use_force_update();
    let number = use_state(String::new);
    // The newest state and callbacks, for the clock-driven polls below (a
    // closure made earlier would hold an old state and an old `fire`).
    let latest = use_mut_ref(|| (props.state.clone(), props.fire.clone(), props.send.clone()));
    *latest.borrow_mut() = (props.state.clone(), props.fire.clone(), props.send.clone());
    // Move the lesson on whenever the page's state changes...
    {
        let (runner, update, latest) = (runner.clone(), update.clone(), latest.clone());
        use_effect_with(StateRef(props.state.clone()), move |_| {
            let (state, fire, send) = latest.borrow().clone();
            let before = runner.borrow().stage.clone();
            let commands = runner.borrow_mut().poll(&state, now_ms());
            execute(&runner, commands, &fire, &send);
            if runner.borrow().stage != before {
                update.force_update();
            }
        });
    }
    // ...and on a clock, for the steps that wait for time to pass.
    {
        let (runner, update, latest) = (runner.clone(), update.clone(), latest.clone());
        let running = runner.borrow().stage == Stage::Running;
        use_effect_with(running, move |running| {
            let tick = running.then(|| {
                Interval::new(100, move || {
                    let (state, fire, send) = latest.borrow().clone();
                    let before = (runner.borrow().stage.clone(), runner.borrow().progress());
                    let commands = runner.borrow_mut().poll(&state, now_ms());
                    execute(&runner, commands, &fire, &send);
                    let after = (runner.borrow().stage.clone(), runner.borrow().progress());
                    if after != before {
                        update.force_update();
                    }
                })
            });
            move || drop(tick)
        });
    }

    // Tell the room (the instructor's view) where this learner is.
    {
        let r = runner.borrow();
        let short = |t: &str| {
            t.chars()
                .take(protocol::MAX_REPORT_TEXT)
                .collect::<String>()
        };
        let report = protocol::LessonReport {
            lesson: lesson.id().to_owned(),
            stage: r.stage.name().to_owned(),
            prediction: r.prediction.map(answer_value),
            answer: r.outcome.as_ref().map(|o| answer_value(o.answer)),
            figures: r
                .outcome
                .as_ref()
                .map(|o| {
                    o.figures
                        .iter()
                        .take(protocol::MAX_FIGURES)
                        .map(|f| (f.id.to_owned(), short(&f.value)))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let connected = props.state.socket == crate::state::SocketStatus::Open;
        let send = props.send.clone();
        use_effect_with((report, connected), move |(report, connected)| {
            if *connected {
                send.emit(ClientMessage::LessonReport {
                    report: report.clone(),
                });
            }
        });
    }
    let r = runner.borrow();
    let words = match &*fetched {
        Some(Ok(words)) => words,
        waiting => {
            let note = match waiting {
                Some(Err(problem)) => html! {
                    <p class="error" role="alert" id="lesson-problem">{ format!("This lesson's text could not be loaded: {problem}") }</p>
                },
                _ => html! { <p class="help" role="status">{ "Loading the lesson…" }</p> },
            };
            return html! {
                // No `data-lesson` until the lesson can be taken.
                <section class="lesson" data-loading={lesson.id()}>{ note }</section>
            };
        }
    };
    let predict = |answer: Answer| {
        let (runner, update) = (runner.clone(), update.clone());
        Callback::from(move |_: MouseEvent| {
            runner.borrow_mut().predict(answer);
            update.force_update();
        })
    };
    let ask = match &words.unit {
        None => html! {
            <div class="choices" role="group" aria-label="Your prediction">
                { for words.choices.iter().enumerate().map(|(i, c)| {
                    let chosen = r.prediction == Some(Answer::Choice(i));
                    html! {
                        <button class={crate::components::class(&["choice"], &[(!chosen, "secondary")])} data-choice={i.to_string()}
                            aria-pressed={chosen.to_string()} disabled={!matches!(r.stage, Stage::Predict | Stage::Ready)}
                            onclick={predict(Answer::Choice(i))}>{ c.clone() }</button>
                    }
                }) }
            </div>
        },
        Some(unit) => {
            let on_input = {
                let number = number.clone();
                Callback::from(move |e: InputEvent| {
                    let value = e
                        .target_dyn_into::<web_sys::HtmlInputElement>()
                        .map(|i| i.value())
                        .unwrap_or_default();
                    number.set(value);
                })
            };
            let parsed = number.trim().parse::<u32>().ok();
            let lock = {
                let (runner, update) = (runner.clone(), update.clone());
                Callback::from(move |_: MouseEvent| {
                    if let Some(n) = parsed {
                        runner.borrow_mut().predict(Answer::Number(n));
                        update.force_update();
                    }
                })
            };
            html! {
                <div class="choices">
                    <label>{ "Your prediction: " }
                        <input id="prediction" type="number" min="0" max="1000" value={(*number).clone()}
                            oninput={on_input} disabled={!matches!(r.stage, Stage::Predict | Stage::Ready)} />
                        { format!(" {unit}") }
                    </label>
                    <button id="predict" class="secondary" disabled={parsed.is_none() || !matches!(r.stage, Stage::Predict | Stage::Ready)}
                        onclick={lock}>{ "Lock it in" }</button>
                </div>
            }
        }
    };
    let on_run = {
        let (runner, update, state) = (runner.clone(), update.clone(), props.state.clone());
        let (fire, send) = (props.fire.clone(), props.send.clone());
        Callback::from(move |_: MouseEvent| {
            let commands = runner.borrow_mut().start(&state, now_ms());
            execute(&runner, commands, &fire, &send);
            update.force_update();
        })
    };
    let on_again = {
        let (runner, update) = (runner.clone(), update.clone());
        Callback::from(move |_: MouseEvent| {
            *runner.borrow_mut() = Runner::new(lesson);
            update.force_update();
        })
    };
    let back = props.open.reform(|_: MouseEvent| None);
    let (done, total) = r.progress();
    let settled = r.settled(&props.state, now_ms());
    let connected = props.state.socket == crate::state::SocketStatus::Open;
    // Said before Run, not found out 10 s into the run.
    let locked_out = props.state.room_locked && lesson.changes_settings();
    let result = match (&r.stage, &r.outcome) {
        (Stage::Answered, Some(outcome)) => {
            let predicted = r.prediction.map(|p| p.words(words));
            let measured = outcome.answer.words(words);
            let matched = r.prediction == Some(outcome.answer);
            html! {
                <div class="answer" id="answer" data-answer={answer_value(outcome.answer)}>
                    <div class="side-by-side">
                        <div><div class="help">{ "You predicted" }</div>
                            <strong class="predicted">{ predicted.unwrap_or_else(|| "nothing".into()) }</strong></div>
                        <div><div class="help">{ if lesson.by_agent() { "The agent, measured" } else { "Your browser, measured" } }</div>
                            <strong class="measured-answer">{ measured }</strong></div>
                        <div class={crate::components::class(&["verdict", if matched { "right" } else { "wrong" }], &[])}>
                            { if matched { "✓ as predicted" } else { "✗ not what you predicted" } }</div>
                    </div>
                    <dl class="figures">
                        { for outcome.figures.iter().map(|f| html! { <>
                            <dt>{ f.label }</dt><dd data-figure={f.id}>{ &f.value }</dd>
                        </> }) }
                    </dl>
                    { for outcome.notes.iter().map(|n| html! { <p class="explain">{ n }</p> }) }
                    if r.differs_from_usual() {
                        <p class="differs" role="note">{ if lesson.by_agent() { format!(
                            "Most write-ups give {} here; the lab's agent measured {}. The agent follows \
                             Node's documented rules against this lab's server and middlebox as they are \
                             set now; what you see above is what it did.",
                            lesson.usual.words(words), outcome.answer.words(words)) } else { format!(
                            "Most write-ups give {} here; your browser measured {}. The lab ran the lesson \
                             with its default settings; the figures and notes above are what your browser \
                             and the server did, and say where it went another way.",
                            lesson.usual.words(words), outcome.answer.words(words)) } }</p>
                    }
                    <h3>{ "Why" }</h3>
                    <p class="explain">{ words.why.clone() }</p>
                </div>
            }
        }
        (Stage::Failed(why), _) => html! {
            <p class="error" role="alert" id="lesson-problem">{ format!("The lesson stopped: {why}.") }</p>
        },
        _ => html! {},
    };
    html! {
        <section class="lesson" aria-label={words.title.clone()} data-lesson={lesson.id()} data-stage={r.stage.name()}>
            <p class="crumbs"><a href="#lessons" onclick={back}>{ "All lessons" }</a></p>
            <h2>{ words.title.clone() }</h2>
            <p class="concept">{ words.concept.clone() }</p>
            <p class="question"><strong>{ "Predict: " }</strong>{ words.prompt.clone() }</p>
            if lesson.over_tls() {
                <p class="help" id="lesson-tls-note">
                    { "This lesson uses the lab's HTTPS ports. Their certificate is the lab's own, which \
                       your browser does not trust yet: open " }
                    { for props.https_origins.iter().enumerate().map(|(i, o)| html! { <>
                        { if i == 0 { "" } else { ", " } }
                        <a href={o.clone()} target="_blank" rel="noopener">{ o.clone() }</a>
                    </> }) }
                    { " once each, choose Advanced → Proceed, then come back. Otherwise its requests fail." }
                </p>
            }
            { ask }
            <div class="actions">
                <button id="run-lesson" onclick={on_run}
                    disabled={r.stage != Stage::Ready || !connected || !props.ready || locked_out}>{ if lesson.by_agent() { "Run the agent" } else { "Run it in this browser" } }</button>
                if matches!(r.stage, Stage::Answered | Stage::Failed(_)) {
                    // Not before the settings this run put back are in
                    // force: a new run would save the lesson's own as yours.
                    <button class="secondary" id="again" onclick={on_again} disabled={!settled}>{ "Again" }</button>
                    if !settled {
                        <span class="help" role="status">{ "Putting this session's settings back…" }</span>
                    }
                }
                if r.stage == Stage::Running {
                    <span class="progress" role="status">{ format!("Running: step {} of {total}. Watch {}.", done + 1, words.watch) }</span>
                }
                if r.stage == Stage::Predict {
                    <span class="help">{ "Predict first, then run." }</span>
                }
            </div>
            if locked_out && matches!(r.stage, Stage::Predict | Stage::Ready) {
                <p class="help" role="status" id="lesson-locked">
                    { "The instructor has locked the room's settings, and this lesson changes the \
                       keep-alive policy or the middlebox for its run: you can predict now and run \
                       it once the lock is lifted." }
                </p>
            }
            { result }
        </section>
    }
}

/// `data-answer`: the measured answer as the tests read it.
fn answer_value(answer: Answer) -> String {
    match answer {
        Answer::Number(n) => n.to_string(),
        Answer::Choice(i) => format!("choice-{i}"),
        Answer::Unmeasured => "unmeasured".to_owned(),
    }
}
