//! The lesson list, and one lesson being taken (predict → run → measured
//! answer beside the prediction → explanation), as node descriptions.
//! Everything a lesson does comes from its data and the one runner
//! ([`crate::lessons::runner`]); this only shows it. The page's listener
//! finds the learner's clicks by the ids and data attributes drawn here
//! ([`Click::of`]).

use std::rc::Rc;

use gloo_timers::callback::Interval;
use protocol::LessonReport;

use crate::dom::{Node, el, text};
use crate::lessons::runner::{Runner, Stage};
use crate::lessons::{self, Answer, Lesson, LessonWords, Listed};
use crate::state::{LabState, Run};

/// One lesson open: its runner and what the learner typed.
pub struct LessonPage {
    /// The lesson.
    pub lesson: &'static Lesson,
    /// Where the lesson is (predict, run, answer), and its measures.
    pub runner: Runner,
    /// Its words, from the server when it opens (`GET /api/lessons/{id}`).
    pub words: Option<Result<LessonWords, String>>,
    /// The number typed as the prediction, as typed.
    pub number: String,
    /// The clock that moves a running lesson on (steps that wait for time),
    /// and draws Run again when a wait for settings put back ends.
    pub tick: Option<Interval>,
    /// The run was going on at the last drawing (its end is seen once).
    pub running: bool,
    /// The report last sent to the room, and whether the link was open.
    pub reported: Option<(LessonReport, bool)>,
    /// The lesson's runs joined into one for the timeline
    /// ([`Run::joined`]), kept while they are the same: a new one at every
    /// drawing would make the timeline draw itself again at every frame.
    joined: Option<Rc<Run>>,
}

impl LessonPage {
    /// `lesson`, just opened.
    pub fn new(lesson: &'static Lesson) -> LessonPage {
        LessonPage {
            lesson,
            runner: Runner::new(lesson),
            words: None,
            number: String::new(),
            tick: None,
            running: false,
            reported: None,
            joined: None,
        }
    }

    /// The lesson's runs as the timeline draws them: all of them on one
    /// time axis, not only the last (found in review: after "The server's
    /// idle timeout" the first connection and its close were folded into
    /// "earlier connections"). Only its own runs: before it has fired,
    /// none (not the lesson before's).
    pub fn drawn_run(&mut self, state: &LabState) -> Option<Rc<Run>> {
        let runs: Vec<Rc<Run>> = self
            .runner
            .runs
            .iter()
            .filter_map(|id| state.run(*id).cloned())
            .collect();
        if runs.len() < 2 {
            self.joined = None;
            return runs.into_iter().next();
        }
        if let Some(joined) = self.joined.as_ref().filter(|j| j.joins(&runs)) {
            return Some(joined.clone());
        }
        self.joined = Run::joined(&runs);
        self.joined.clone()
    }

    /// The number typed, if it is one.
    pub fn typed(&self) -> Option<u32> {
        self.number.trim().parse().ok()
    }

    /// Where this learner is, for the room (the instructor's view).
    pub fn report(&self) -> LessonReport {
        let r = &self.runner;
        let short = protocol::report_text;
        LessonReport {
            lesson: self.lesson.id().to_owned(),
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
            stopped_early: r.stopped_early && r.outcome.is_some(),
        }
    }
}

/// What a click on the lesson view asks for.
#[derive(Debug, PartialEq)]
pub enum Click {
    /// Open a lesson of the list.
    Open(&'static str),
    /// Back to the list.
    Back,
    /// This choice is the prediction.
    Choice(usize),
    /// The number typed is the prediction.
    LockNumber,
    /// Run the lesson.
    Run,
    /// Take the lesson again.
    Again,
}

impl Click {
    /// What a click on `el` (an element the click was on, or one it is in)
    /// asks for, if anything.
    pub fn of(el: &web_sys::Element) -> Option<Click> {
        if let Some(id) = el.get_attribute("data-lesson-link") {
            return lessons::find(&id).map(|l| Click::Open(l.id()));
        }
        if let Some(i) = el.get_attribute("data-choice") {
            return i.parse().ok().map(Click::Choice);
        }
        match el.id().as_str() {
            "run-lesson" => Some(Click::Run),
            "again" => Some(Click::Again),
            "predict" => Some(Click::LockNumber),
            _ => el
                .parent_element()
                .is_some_and(|p| p.class_name() == "crumbs")
                .then_some(Click::Back),
        }
    }
}

/// The list of lessons: the server's catalogue (`GET /api/lessons`) in its
/// order, each lesson this page can run.
pub fn list(listed: Option<&Result<Vec<Listed>, String>>) -> Node {
    let items = match listed {
        None => el("p")
            .attr("class", "help")
            .attr("role", "status")
            .text("Loading the lessons…"),
        Some(Err(problem)) => el("p")
            .attr("class", "error")
            .attr("role", "alert")
            .text(format!("The lessons could not be loaded: {problem}")),
        Some(Ok(list)) => el("ol").attr("class", "lesson-list").kids(
            list.iter()
                .filter_map(|l| Some((lessons::find(&l.id)?.id(), l)))
                .map(|(id, l)| {
                    el("li")
                        .kids(vec![
                            el("a")
                                .attr("href", format!("#lesson={id}"))
                                .attr("data-lesson-link", id)
                                // Numbered by the list (its number was also
                                // in the words: "1. 1. Six lanes").
                                .kids(vec![el("strong").text(l.title.clone()).done()])
                                .done(),
                            text(format!(": {}", l.concept)),
                            el("div")
                                .attr("class", "help")
                                .text(l.summary.clone())
                                .done(),
                        ])
                        .done()
                })
                .collect(),
        ),
    };
    el("section")
        .attr("class", "lessons")
        .attr("aria-label", "Lessons")
        .kids(vec![
            el("h2").text("Lessons").done(),
            el("p")
                .attr("class", "help")
                .text(
                    "Each lesson asks you to predict, runs an experiment in your own browser \
                     (the agent lessons: in a Node-style agent on the lab's server), and puts \
                     the measured answer beside your prediction. Nothing is typed in: every \
                     figure comes from this run.",
                )
                .done(),
            items.done(),
        ])
        .done()
}

/// What the lesson page is drawn from besides the lesson's own state.
pub struct Context<'a> {
    /// The page's state.
    pub state: &'a LabState,
    /// Everything a lesson may aim at is known (the middlebox's and HTTPS
    /// ports, and the server's listeners from the first snapshot), and
    /// nothing a lesson left is owed to the session any more.
    pub ready: bool,
    /// The lab's HTTPS origins, for a lesson over TLS to link.
    pub https_origins: &'a [String],
    /// Now, on the page's clock.
    pub now_ms: f64,
}

impl LessonPage {
    /// The lesson's section.
    pub fn draw(&self, cx: &Context<'_>) -> Node {
        let lesson = self.lesson;
        let r = &self.runner;
        let words = match &self.words {
            Some(Ok(words)) => words,
            waiting => {
                let note = match waiting {
                    Some(Err(problem)) => el("p")
                        .attr("class", "error")
                        .attr("role", "alert")
                        .attr("id", "lesson-problem")
                        .text(format!("This lesson's text could not be loaded: {problem}")),
                    _ => el("p")
                        .attr("class", "help")
                        .attr("role", "status")
                        .text("Loading the lesson…"),
                };
                // No `data-lesson` until the lesson can be taken.
                return el("section")
                    .attr("class", "lesson")
                    .attr("data-loading", lesson.id())
                    .kids(vec![note.done()])
                    .done();
            }
        };
        let open = matches!(r.stage, Stage::Predict | Stage::Ready);
        let ask = match &words.unit {
            None => el("div")
                .attr("class", "choices")
                .attr("role", "group")
                .attr("aria-label", "Your prediction")
                .kids(
                    words
                        .choices
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            let chosen = r.prediction == Some(Answer::Choice(i));
                            el("button")
                                .attr("class", if chosen { "choice" } else { "choice secondary" })
                                .attr("data-choice", i.to_string())
                                .attr("aria-pressed", if chosen { "true" } else { "false" })
                                .attr_if("disabled", (!open).then_some(""))
                                .text(c.clone())
                                .done()
                        })
                        .collect(),
                ),
            Some(unit) => el("div").attr("class", "choices").kids(vec![
                el("label")
                    .kids(vec![
                        text("Your prediction: "),
                        // Its value is the learner's, never set from here.
                        el("input")
                            .attr("id", "prediction")
                            .attr("type", "number")
                            .attr("min", "0")
                            .attr("max", "1000")
                            .attr_if("disabled", (!open).then_some(""))
                            .done(),
                        text(format!(" {unit}")),
                    ])
                    .done(),
                el("button")
                    .attr("id", "predict")
                    .attr("class", "secondary")
                    .attr_if("disabled", (self.typed().is_none() || !open).then_some(""))
                    .text("Lock it in")
                    .done(),
            ]),
        };
        let (done, total) = r.progress();
        let settled = r.settled(cx.state, cx.now_ms);
        let connected = cx.state.socket == crate::state::SocketStatus::Open;
        // Said before Run, not found out 10 s into the run.
        let locked_out = cx.state.room_locked && lesson.changes_settings();
        // Not before the settings a run before put back are in force: the
        // new run would save that run's own as yours.
        let run_disabled =
            r.stage != Stage::Ready || !connected || !cx.ready || locked_out || !settled;
        let finished = matches!(r.stage, Stage::Answered | Stage::Failed(_));
        let actions = el("div")
            .attr("class", "actions")
            .kids(vec![
                el("button")
                    .attr("id", "run-lesson")
                    .attr_if("disabled", run_disabled.then_some(""))
                    .text(if lesson.by_agent() {
                        "Run the agent"
                    } else {
                        "Run it in this browser"
                    })
                    .done(),
            ])
            // Not before the settings this run put back are in force: a
            // new run would save the lesson's own as yours.
            .kids(if finished {
                vec![
                    el("button")
                        .attr("class", "secondary")
                        .attr("id", "again")
                        .attr_if("disabled", (!settled).then_some(""))
                        .text("Again")
                        .done(),
                ]
            } else {
                vec![]
            })
            .kids(
                (!settled)
                    .then(|| {
                        el("span")
                            .attr("class", "help")
                            .attr("role", "status")
                            .text("Putting this session's settings back…")
                            .done()
                    })
                    .into_iter()
                    .collect(),
            )
            .kids(
                (r.stage == Stage::Running)
                    .then(|| {
                        el("span")
                            .attr("class", "progress")
                            .attr("role", "status")
                            .text(format!(
                                "Running: step {} of {total}. Watch {}.",
                                done + 1,
                                words.watch
                            ))
                            .done()
                    })
                    .into_iter()
                    .collect(),
            )
            .kids(
                (r.stage == Stage::Predict)
                    .then(|| {
                        el("span")
                            .attr("class", "help")
                            .text("Predict first, then run.")
                            .done()
                    })
                    .into_iter()
                    .collect(),
            );
        let locked = (locked_out && open).then(|| {
            el("p")
                .attr("class", "help")
                .attr("role", "status")
                .attr("id", "lesson-locked")
                .text(
                    "The instructor has locked the room's settings, and this lesson changes the \
                     keep-alive policy or the middlebox for its run: you can predict now and run \
                     it once the lock is lifted.",
                )
                .done()
        });
        el("section")
            .attr("class", "lesson")
            .attr("aria-label", words.title.clone())
            .attr("data-lesson", lesson.id())
            .attr("data-stage", r.stage.name())
            .kids(vec![
                el("p")
                    .attr("class", "crumbs")
                    .kids(vec![
                        el("a").attr("href", "#lessons").text("All lessons").done(),
                    ])
                    .done(),
                el("h2").text(words.title.clone()).done(),
                el("p")
                    .attr("class", "concept")
                    .text(words.concept.clone())
                    .done(),
                el("p")
                    .attr("class", "question")
                    .kids(vec![
                        el("strong").text("Predict: ").done(),
                        text(words.prompt.clone()),
                    ])
                    .done(),
            ])
            .kids(
                lesson
                    .over_tls()
                    .then(|| tls_note(cx.https_origins))
                    .into_iter()
                    .collect(),
            )
            .kids(vec![ask.done(), actions.done()])
            .kids(locked.into_iter().collect())
            .kids(self.result(words).into_iter().collect())
            .done()
    }

    /// The measured answer beside the prediction, or why the lesson stopped.
    fn result(&self, words: &LessonWords) -> Option<Node> {
        let (lesson, r) = (self.lesson, &self.runner);
        let outcome = match (&r.stage, &r.outcome) {
            (Stage::Answered, Some(outcome)) => outcome,
            (Stage::Failed(why), _) => {
                let stopped = el("p")
                    .attr("class", "error")
                    .attr("role", "alert")
                    .attr("id", "lesson-problem")
                    .text(format!("The lesson stopped: {why}."))
                    .done();
                // What the run did instead, when its measure said.
                return Some(
                    el("div")
                        .kids(vec![stopped])
                        .kids(explained(&r.unanswered))
                        .done(),
                );
            }
            _ => return None,
        };
        let predicted = r.prediction.map(|p| p.words(words));
        let measured = outcome.answer.words(words);
        let matched = r.prediction == Some(outcome.answer);
        let side = |label: &'static str, class: &'static str, value: String| {
            el("div")
                .kids(vec![
                    el("div").attr("class", "help").text(label).done(),
                    el("strong").attr("class", class).text(value).done(),
                ])
                .done()
        };
        let differs = r.differs_from_usual().then(|| {
            let (usual, measured) = (lesson.usual.words(words), outcome.answer.words(words));
            el("p")
                .attr("class", "differs")
                .attr("role", "note")
                .text(if lesson.by_agent() {
                    format!(
                        "Most write-ups give {usual} here; the lab's agent measured {measured}. \
                         The agent follows Node's documented rules against this lab's server and \
                         middlebox as they are set now; what you see above is what it did."
                    )
                } else {
                    format!(
                        "Most write-ups give {usual} here; your browser measured {measured}. The \
                         lab ran the lesson with its default settings and the lesson's own; the \
                         figures and notes above are what your browser and the server did, and \
                         say where it went another way."
                    )
                })
                .done()
        });
        Some(
            el("div")
                .attr("class", "answer")
                .attr("id", "answer")
                .attr("data-answer", answer_value(outcome.answer))
                .kids(vec![
                    el("div")
                        .attr("class", "side-by-side")
                        .kids(vec![
                            side(
                                "You predicted",
                                "predicted",
                                predicted.unwrap_or_else(|| "nothing".into()),
                            ),
                            side(
                                if lesson.by_agent() {
                                    "The agent, measured"
                                } else {
                                    "Your browser, measured"
                                },
                                "measured-answer",
                                measured,
                            ),
                            el("div")
                                .attr(
                                    "class",
                                    if matched {
                                        "verdict right"
                                    } else {
                                        "verdict wrong"
                                    },
                                )
                                .text(if matched {
                                    "✓ as predicted"
                                } else {
                                    "✗ not what you predicted"
                                })
                                .done(),
                        ])
                        .done(),
                    el("dl")
                        .attr("class", "figures")
                        .kids(
                            outcome
                                .figures
                                .iter()
                                .flat_map(|f| {
                                    [
                                        el("dt").text(f.label).done(),
                                        el("dd")
                                            .attr("data-figure", f.id)
                                            .text(f.value.clone())
                                            .done(),
                                    ]
                                })
                                .collect(),
                        )
                        .done(),
                ])
                .kids(explained(&outcome.notes))
                .kids(differs.into_iter().collect())
                .kids(vec![
                    // Background, not this run's measurement: said so, since
                    // it follows figures it may not match (found in review).
                    el("h3")
                        .text("Why, in general (background from Chromium and the specs, not from this run)")
                        .done(),
                    el("p")
                        .attr("class", "explain")
                        .text(words.why.clone())
                        .done(),
                ])
                .done(),
        )
    }
}

/// A measure's notes, a paragraph each.
fn explained(notes: &[String]) -> Vec<Node> {
    notes
        .iter()
        .map(|n| el("p").attr("class", "explain").text(n.clone()).done())
        .collect()
}

/// A lesson over TLS: the lab's HTTPS origins to open once each, to accept
/// its certificate.
fn tls_note(origins: &[String]) -> Node {
    const OPEN: &str = "This lesson uses the lab's HTTPS ports. Their certificate is the lab's \
                        own, which your browser does not trust yet: open ";
    const THEN: &str =
        " once each, choose Advanced → Proceed, then come back. Otherwise its requests fail.";
    // Not known yet (the server has not answered). One text: two side by
    // side would be one node to the browser.
    if origins.is_empty() {
        return el("p")
            .attr("class", "help")
            .attr("id", "lesson-tls-note")
            .kids(vec![text(format!("{OPEN}the lab's HTTPS addresses{THEN}"))])
            .done();
    }
    let mut kids = vec![text(OPEN)];
    for (i, o) in origins.iter().enumerate() {
        if i > 0 {
            kids.push(text(", "));
        }
        kids.push(
            el("a")
                .attr("href", o.clone())
                .attr("target", "_blank")
                .attr("rel", "noopener")
                .text(o.clone())
                .done(),
        );
    }
    kids.push(text(THEN));
    el("p")
        .attr("class", "help")
        .attr("id", "lesson-tls-note")
        .kids(kids)
        .done()
}

/// `data-answer`: the measured answer as the tests read it.
fn answer_value(answer: Answer) -> String {
    match answer {
        Answer::Number(n) => n.to_string(),
        Answer::Choice(i) => format!("choice-{i}"),
        Answer::Unmeasured => "unmeasured".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lessons::catalogue::ALL;

    fn markup(node: &Node) -> String {
        let mut out = String::new();
        node.write(&mut out);
        out
    }

    fn listed(id: &str) -> Listed {
        Listed {
            id: id.into(),
            title: format!("Title of {id}"),
            concept: "a <concept>".into(),
            summary: "what you do".into(),
            changes_settings: false,
        }
    }

    #[test]
    fn the_list_links_the_lessons_this_page_has_in_the_servers_order() {
        let (a, b) = (ALL[1].id(), ALL[0].id());
        let catalogue = Ok(vec![listed(a), listed("not-a-lesson"), listed(b)]);
        let html = markup(&list(Some(&catalogue)));
        let (at_a, at_b) = (
            html.find(&format!(r#"data-lesson-link="{a}""#)),
            html.find(&format!(r#"data-lesson-link="{b}""#)),
        );
        assert!(
            at_a.is_some() && at_a < at_b,
            "in the server's order: {html}"
        );
        assert!(
            !html.contains("not-a-lesson"),
            "only lessons this page can run"
        );
        assert!(
            html.contains(&format!(
                r#"<strong>Title of {a}</strong></a>: a &lt;concept&gt;<div class="help">"#
            )),
            "the concept is a text after the link, escaped: {html}"
        );
        let failed = Err("the server answered 500".to_owned());
        assert!(markup(&list(Some(&failed))).contains(r#"role="alert">The lessons could not"#));
        assert!(markup(&list(None)).contains("Loading the lessons"));
    }

    #[test]
    fn a_lesson_is_not_offered_to_take_before_its_words_arrive() {
        let page = LessonPage::new(&ALL[0]);
        let state = LabState::new(protocol::SessionId::parse("s-test").expect("an id"));
        let cx = Context {
            state: &state,
            ready: true,
            https_origins: &[],
            now_ms: 0.0,
        };
        let html = markup(&page.draw(&cx));
        assert!(html.contains(&format!(r#"data-loading="{}""#, ALL[0].id())));
        assert!(!html.contains("data-lesson=") && !html.contains("run-lesson"));
    }

    /// A lesson that stopped shows, under why, what its run did instead
    /// (`Runner::unanswered`), each a paragraph, escaped.
    #[test]
    fn a_stopped_lesson_shows_what_its_run_did_instead() {
        let mut page = LessonPage::new(&ALL[0]);
        page.runner.stage = Stage::Failed("the run did not show the answer".into());
        page.runner.unanswered = vec!["Your browser sent <none>.".into()];
        let words = LessonWords::default();
        let html = markup(&page.result(&words).expect("drawn"));
        assert!(
            html.contains("The lesson stopped: the run did not show the answer.</p>")
                && html.contains(r#"<p class="explain">Your browser sent &lt;none&gt;.</p>"#),
            "{html}"
        );
    }

    #[test]
    fn the_tls_note_links_each_origin_and_is_one_text_without_any() {
        let none = markup(&tls_note(&[]));
        assert!(!none.contains("<a "), "{none}");
        assert!(
            none.contains("open the lab's HTTPS addresses once each"),
            "{none}"
        );
        let two = markup(&tls_note(&["https://h:1".into(), "https://h:2".into()]));
        assert!(
            two.contains(r#"https://h:1</a>, <a href="https://h:2""#),
            "{two}"
        );
    }
}
