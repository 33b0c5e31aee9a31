//! What the instructor sees of each participant: their browser (from the
//! user agent of their events socket), the lesson they are on, and their
//! reports (prediction, measured answer, figures), bounded.

use std::collections::BTreeMap;

use protocol::{LESSONS, LessonReport, Participant, SessionId, json_len};

/// The stages a lesson's page reports (`lessons::runner::Stage::name`).
const STAGES: [&str; 5] = ["predict", "ready", "running", "answered", "failed"];

/// Most bytes of figures (their ids and values as JSON writes them) a
/// participant's reports keep together. Past it, the figures of the
/// lessons they reported longest ago are forgotten (their predictions and
/// answers stay, for the tally): found in review, a session kept every
/// lesson's figures, 24 lessons of 16 figures of 400 bytes, and
/// `GET /api/room` carried them all, tens of megabytes from one address's
/// 256 sessions. One report's figures are at most 16 × 400 bytes, so the
/// latest always keeps its own; a real lesson's take a few hundred.
pub const KEPT_FIGURE_BYTES: usize = 8 * 1024;

/// A participant's part of the room, kept in their session.
#[derive(Debug, Clone, Default)]
pub struct Presence {
    /// "Chrome 156", from the user agent.
    pub browser: Option<String>,
    /// The lesson they are on.
    pub lesson: Option<String>,
    /// Their latest report per lesson (only the catalogue's lessons).
    pub reports: BTreeMap<String, LessonReport>,
    /// The lessons of `reports`, the one reported longest ago first: whose
    /// figures go first past [`KEPT_FIGURE_BYTES`].
    order: Vec<String>,
}

impl Presence {
    /// Keeps `report` if it is bounded, names a lesson of the catalogue and
    /// says only what that lesson's page can say (a stage, and a prediction
    /// and an answer in the lesson's terms: a count for a lesson with a
    /// unit, one of its choices otherwise; found in review: free text went
    /// onto the projected chart as answers no run gave); whether that
    /// changed anything.
    pub fn report(&mut self, report: LessonReport) -> Result<bool, String> {
        if !report.is_bounded() {
            return Err("the report is too large".into());
        }
        let Some(lesson) = LESSONS.iter().find(|l| l.id == report.lesson) else {
            return Err(format!("there is no lesson `{}`", report.lesson));
        };
        if !STAGES.contains(&report.stage.as_str()) {
            return Err(format!(
                "`{}` is not a stage: one of {}",
                report.stage,
                STAGES.join(", ")
            ));
        }
        let counts = lesson.text.unit.is_some();
        let fits = |value: &str, measured: bool| match value.strip_prefix("choice-") {
            _ if measured && value == "unmeasured" => true,
            Some(i) => {
                !counts
                    && i.parse::<usize>()
                        .is_ok_and(|i| i < lesson.text.choices.len())
            }
            None => counts && value.parse::<u32>().is_ok(),
        };
        for (what, value, measured) in [
            ("a prediction", &report.prediction, false),
            ("an answer", &report.answer, true),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !fits(v, measured)) {
                return Err(format!(
                    "`{value}` is not {what} of the lesson `{}`: {}",
                    lesson.id,
                    if counts {
                        "a count (`6`)".to_owned()
                    } else {
                        format!(
                            "`choice-0` to `choice-{}`",
                            lesson.text.choices.len().saturating_sub(1)
                        )
                    } + if measured { ", or `unmeasured`" } else { "" }
                ));
            }
        }
        let unchanged = self.lesson.as_ref() == Some(&report.lesson)
            && self.reports.get(&report.lesson) == Some(&report);
        if unchanged {
            return Ok(false);
        }
        self.lesson = Some(report.lesson.clone());
        self.order.retain(|l| *l != report.lesson);
        self.order.push(report.lesson.clone());
        self.reports.insert(report.lesson.clone(), report);
        self.keep_figures_bounded();
        Ok(true)
    }

    /// Forgets the figures of the lessons reported longest ago until all
    /// the reports' figures together fit in [`KEPT_FIGURE_BYTES`].
    fn keep_figures_bounded(&mut self) {
        let bytes = |r: &LessonReport| -> usize {
            r.figures
                .iter()
                .map(|(k, v)| json_len(k) + json_len(v))
                .sum()
        };
        let mut total: usize = self.reports.values().map(bytes).sum();
        for lesson in &self.order {
            if total <= KEPT_FIGURE_BYTES {
                break;
            }
            if let Some(report) = self.reports.get_mut(lesson) {
                total -= bytes(report);
                report.figures.clear();
            }
        }
    }

    /// Forgets every report (a new round).
    pub fn forget_reports(&mut self) {
        self.reports.clear();
        self.order.clear();
        self.lesson = None;
    }

    /// As the instructor's view shows it.
    pub fn view(&self, session: &SessionId, online: bool) -> Participant {
        Participant {
            session: session.clone(),
            browser: self.browser.clone().unwrap_or_else(|| "unknown".into()),
            online,
            lesson: self.lesson.clone(),
            reports: self.reports.values().cloned().collect(),
        }
    }
}

/// "Chrome 156", "Firefox 133", "Safari 17", "Edge 131", from a user agent.
/// A version is at most 8 digits: the name goes into every event about the
/// participant (found in review: a user agent of 16 000 digits made each
/// one 16 KB larger).
pub fn browser_of(user_agent: &str) -> String {
    let version = |token: &str| {
        user_agent
            .split(token)
            .nth(1)
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_digit())
                    .take(8)
                    .collect::<String>()
            })
            .filter(|v| !v.is_empty())
    };
    let headless = if user_agent.contains("HeadlessChrome/") {
        " (headless)"
    } else {
        ""
    };
    if let Some(v) = version("Edg/") {
        format!("Edge {v}")
    } else if let Some(v) = version("Firefox/") {
        format!("Firefox {v}")
    } else if let Some(v) = version("Chrome/").or_else(|| version("HeadlessChrome/")) {
        format!("Chrome {v}{headless}")
    } else if user_agent.contains("Safari/")
        && let Some(v) = version("Version/")
    {
        format!("Safari {v}")
    } else {
        let short: String = user_agent.chars().take(40).collect();
        if short.is_empty() {
            "unknown".into()
        } else {
            short
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_are_named_with_their_major_version() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.7000.1 Safari/537.36";
        assert_eq!(browser_of(chrome), "Chrome 156");
        let headless = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.1 Safari/537.36";
        assert_eq!(browser_of(headless), "Chrome 156 (headless)");
        assert_eq!(
            browser_of("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"),
            "Firefox 133"
        );
        assert_eq!(
            browser_of(
                "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"
            ),
            "Safari 17"
        );
        assert_eq!(browser_of(""), "unknown");
        let long = format!("Mozilla/5.0 Chrome/{}.0 Safari/537.36", "9".repeat(16_000));
        assert_eq!(browser_of(&long), "Chrome 99999999");
    }

    #[test]
    fn reports_are_bounded_and_name_real_lessons() {
        let mut p = Presence::default();
        let report = |lesson: &str| LessonReport {
            lesson: lesson.into(),
            stage: "answered".into(),
            prediction: Some("6".into()),
            answer: Some("6".into()),
            figures: vec![("at-once".into(), "6".into())],
            stopped_early: false,
        };
        assert_eq!(p.report(report("six-lanes")), Ok(true));
        assert_eq!(p.report(report("six-lanes")), Ok(false), "the same again");
        assert!(p.report(report("no-such-lesson")).is_err());
        let mut big = report("six-lanes");
        big.figures = (0..100).map(|i| (i.to_string(), "x".into())).collect();
        assert!(p.report(big).is_err());
        assert_eq!(p.lesson.as_deref(), Some("six-lanes"));
        assert_eq!(p.reports.len(), 1);
    }

    #[test]
    fn the_figures_a_participant_keeps_are_bounded_the_oldest_lessons_first() {
        let mut p = Presence::default();
        // Each of the catalogue's lessons reported with figures as large
        // as a report may carry: 16 of 200 + 200 bytes.
        let fat = |lesson: &str, n: usize| LessonReport {
            lesson: lesson.into(),
            stage: "answered".into(),
            prediction: None,
            answer: Some("unmeasured".into()),
            figures: (0..16)
                .map(|i| (format!("{n:03}-{i:02}{}", "k".repeat(194)), "v".repeat(200)))
                .collect(),
            stopped_early: false,
        };
        for (n, lesson) in LESSONS.iter().enumerate() {
            assert_eq!(p.report(fat(lesson.id, n)), Ok(true));
        }
        let kept = |p: &Presence| -> usize {
            p.reports
                .values()
                .flat_map(|r| &r.figures)
                .map(|(k, v)| json_len(k) + json_len(v))
                .sum()
        };
        assert!(kept(&p) <= KEPT_FIGURE_BYTES, "{} bytes kept", kept(&p));
        // Every lesson's report stays (its answer counts in the tally);
        // the latest keeps its figures whole, the first lost them.
        assert_eq!(p.reports.len(), LESSONS.len());
        let last = LESSONS[LESSONS.len() - 1].id;
        assert_eq!(p.reports[last].figures.len(), 16);
        assert!(p.reports[LESSONS[0].id].figures.is_empty());
        assert_eq!(
            p.reports[LESSONS[0].id].answer.as_deref(),
            Some("unmeasured")
        );
        // Reported again, the first lesson is the latest: its figures are
        // back, and the bound holds.
        assert_eq!(p.report(fat(LESSONS[0].id, 0)), Ok(true));
        assert_eq!(p.reports[LESSONS[0].id].figures.len(), 16);
        assert!(kept(&p) <= KEPT_FIGURE_BYTES);
        // Three of 3 000 bytes: only the first, the oldest, loses its
        // figures (9 000 past the bound by less than one report).
        let mut r = Presence::default();
        for lesson in &LESSONS[..3] {
            let mut report = fat(lesson.id, 0);
            report.figures.truncate(10);
            for (k, _) in &mut report.figures {
                k.truncate(100);
            }
            r.report(report).expect("a report");
        }
        assert!(kept(&r) <= KEPT_FIGURE_BYTES, "{}", kept(&r));
        let sizes: Vec<usize> = LESSONS[..3]
            .iter()
            .map(|l| r.reports[l.id].figures.len())
            .collect();
        assert_eq!(sizes, [0, 10, 10]);
        // Small figures, as real lessons send, are all kept.
        let mut q = Presence::default();
        for lesson in LESSONS {
            let mut r = fat(lesson.id, 0);
            r.figures = vec![
                ("at-once".into(), "6".into()),
                ("queued".into(), "6".into()),
            ];
            q.report(r).expect("a report");
        }
        assert!(q.reports.values().all(|r| r.figures.len() == 2));
        q.forget_reports();
        assert!(q.reports.is_empty() && q.order.is_empty() && q.lesson.is_none());
    }
}
