//! Guided lessons: predict → run in your own browser → the measured answer
//! beside the prediction → the explanation.
//!
//! A lesson is *data* ([`Lesson`]): the steps that run it (set this
//! session's policy, fire a burst, wait for something the server or the page
//! measured, release…), the usual answer, and a pure `measure` function that
//! turns what was measured into the answer and the figures the explanation
//! quotes. One [`runner::Runner`] runs every lesson; nothing about a lesson
//! lives in a view. Its words (title, question, choices, the general
//! explanation) are the server's, [`protocol::LESSONS`]: the page fetches a
//! lesson's when it opens it (`GET /api/lessons/{id}`), so they cost the
//! page's download nothing.
//!
//! - [`runner`]: the state machine, pure and host-tested;
//! - [`measure`]: what can be measured from the page's state, pure;
//! - [`catalogue`]: the lessons themselves.

pub mod agent;
pub mod catalogue;
pub mod measure;
pub mod runner;

use std::rc::Rc;

use protocol::PolicyPatch;

use crate::settings::BurstSettings;
use crate::state::{LabState, Run};

/// What a lesson's page says, fetched from the server when the lesson opens
/// (`GET /api/lessons/{id}`, [`protocol::LessonPage`]): the page's download
/// carries no lesson text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LessonWords {
    /// Short title.
    pub title: String,
    /// The one concept it teaches.
    pub concept: String,
    /// The question.
    pub prompt: String,
    /// The answer is a count of this; `None` for a choice.
    pub unit: Option<String>,
    /// The answers to choose from (empty for a count).
    pub choices: Vec<String>,
    /// Why it happens: the general explanation, with its sources.
    pub why: String,
    /// What to look at in the timeline while it runs.
    pub watch: String,
}

/// One lesson of the catalogue, as listed (`GET /api/lessons`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Listed {
    /// Stable id.
    pub id: String,
    /// Short title.
    pub title: String,
    /// The one concept it teaches.
    pub concept: String,
    /// One line: what the learner does and sees.
    pub summary: String,
    /// Its run changes the session's policy or middlebox: it waits while
    /// the room's settings are locked (`protocol::lesson::LessonEntry`).
    pub changes_settings: bool,
}

/// An answer: a number or a choice (by index).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    /// A count.
    Number(u32),
    /// An index into the choices.
    Choice(usize),
    /// The run did not leave the evidence the answer needs (a connection
    /// never closed, a run never ran): no answer is given, the lesson
    /// fails and says what is missing (its first note). Never the usual
    /// answer by default (found in review).
    Unmeasured,
}

impl Answer {
    /// An answer as a lesson report carries it (`6`, `choice-1`,
    /// `unmeasured`: `track::lesson`'s `answer_value`), if it is one.
    pub fn from_report(value: &str) -> Option<Answer> {
        if value == "unmeasured" {
            return Some(Answer::Unmeasured);
        }
        match value.strip_prefix("choice-") {
            Some(i) => i.parse().ok().map(Answer::Choice),
            None => value.parse().ok().map(Answer::Number),
        }
    }

    /// In the words of the lesson's text.
    pub fn words(self, words: &LessonWords) -> String {
        match (self, &words.unit) {
            (Answer::Number(n), Some(unit)) => format!("{n} {}", plural(n, unit)),
            (Answer::Choice(i), _) if i < words.choices.len() => words.choices[i].clone(),
            (Answer::Number(n), None) => n.to_string(),
            (Answer::Choice(i), _) => format!("choice {}", i + 1),
            (Answer::Unmeasured, _) => "not measured".to_owned(),
        }
    }
}

/// `unit` for `n` of it: "1 connection", "2 connections".
pub fn plural(n: u32, unit: &str) -> String {
    if n == 1 {
        unit.strip_suffix('s').unwrap_or(unit).to_owned()
    } else {
        unit.to_owned()
    }
}

/// A condition a step waits for, on the lesson's own runs (by their index
/// among the runs this lesson fired).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Until {
    /// At least `n` requests of run `run` have reached the server (or ended).
    AtServer {
        /// Which of the lesson's runs.
        run: usize,
        /// How many.
        n: usize,
    },
    /// Every request of run `run` has ended (done, failed or aborted).
    Ended {
        /// Which of the lesson's runs.
        run: usize,
    },
    /// `ms` have passed since the step began.
    Elapsed {
        /// Milliseconds.
        ms: u32,
    },
    /// At least `n` connections that carried the lesson's requests closed.
    Closed {
        /// How many.
        n: usize,
    },
    /// At least `n` of the lesson's agent runs have finished.
    AgentsFinished {
        /// How many.
        n: u32,
    },
}

/// One step of a lesson's run.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Change this session's keep-alive policy (put back afterwards).
    Policy(PolicyPatch),
    /// Fire a burst; it becomes the lesson's next run.
    Fire(BurstSettings),
    /// Release every hanging request of this session.
    ReleaseAll,
    /// Release one request of a run (by its tag): run index, request index.
    ReleaseOne(usize, usize),
    /// Start this session's Node-style agent (it runs in the lab's server).
    Agent {
        /// Its options, by Node's names.
        options: protocol::AgentOptions,
        /// The request path (a lab endpoint).
        path: &'static str,
        /// One request every this many ms.
        every_ms: u64,
        /// How many.
        count: u32,
        /// Direct, or through the lab's middlebox.
        target: protocol::AgentTarget,
    },
    /// Change this session's middlebox (put back afterwards); the next step
    /// waits until the server confirms it.
    Middlebox(protocol::MiddleboxPatch),
    /// Wait until the condition holds (at most `limit_ms`, then the lesson
    /// says what did not happen).
    Wait(Until, u32),
}

/// One figure the lesson measured, quoted by the explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Stable id (`data-figure` in the page, read by the tests).
    pub id: &'static str,
    /// What it is.
    pub label: &'static str,
    /// Its value, in words or digits.
    pub value: String,
}

/// What a lesson measured: the answer, the figures, and sentences that
/// explain this run (quoting the figures).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The measured answer to the question.
    pub answer: Answer,
    /// The figures.
    pub figures: Vec<Figure>,
    /// This run, explained with its own numbers.
    pub notes: Vec<String>,
}

/// What a lesson's `measure` may look at.
#[derive(Debug)]
pub struct Evidence<'a> {
    /// The page's whole state (lanes, clock, policy).
    pub state: &'a LabState,
    /// The lesson's runs, in the order fired.
    pub runs: Vec<Rc<Run>>,
}

impl Evidence<'_> {
    /// The lesson's `i`-th run.
    pub fn run(&self, i: usize) -> Option<&Run> {
        self.runs.get(i).map(|r| r.as_ref())
    }
}

/// A lesson: data for the one runner. Its words are the server's
/// ([`protocol::LESSONS`]), fetched when it opens ([`LessonWords`]).
#[derive(Debug)]
pub struct Lesson {
    /// Its id in the catalogue.
    pub id: &'static str,
    /// The answer most write-ups give (Chromium, Firefox and Safari over
    /// HTTP/1.1 on loopback), to tell the learner when theirs differs.
    pub usual: Answer,
    /// How it runs.
    pub steps: fn() -> Vec<Step>,
    /// From what was measured to the answer and figures.
    pub measure: fn(&Evidence<'_>) -> Outcome,
}

impl Lesson {
    /// Its id.
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// Fires at the lab's HTTPS ports (the browser must accept the lab's
    /// certificate first).
    pub fn over_tls(&self) -> bool {
        (self.steps)()
            .iter()
            .any(|s| matches!(s, Step::Fire(b) if b.target.is_tls()))
    }

    /// Run by the lab's Node-style agent alone (no burst from the page): the
    /// page then says "the agent measured", not "your browser".
    pub fn by_agent(&self) -> bool {
        let steps = (self.steps)();
        steps.iter().any(|s| matches!(s, Step::Agent { .. }))
            && !steps.iter().any(|s| matches!(s, Step::Fire(_)))
    }

    /// Sets the session's keep-alive policy or middlebox for its run: it
    /// cannot run while the instructor has locked the room's settings (the
    /// server refuses both changes then).
    pub fn changes_settings(&self) -> bool {
        (self.steps)()
            .iter()
            .any(|s| matches!(s, Step::Policy(_) | Step::Middlebox(_)))
    }
}

/// The lesson with `id`.
pub fn find(id: &str) -> Option<&'static Lesson> {
    catalogue::ALL.iter().find(|l| l.id() == id)
}

#[cfg(test)]
mod honesty;
