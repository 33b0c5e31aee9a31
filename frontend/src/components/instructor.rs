//! The instructor's view of the room (`#instructor&key=KEY`): the join link
//! and its QR code, every participant (browser, lesson, prediction and
//! measured answer), the room's predictions against its measurements for the
//! lesson in play, and the controls: move the room to a lesson, lock the
//! policy, start a new round. Live over a WebSocket that only the key opens.

use crate::sorted::SortedMap;
use std::cell::RefCell;
use std::rc::Rc;

use protocol::{LessonReport, Participant, RoomPatch, RoomState, ServerEvent, SessionId};
use yew::prelude::*;

use crate::lessons::LessonWords;
use crate::services::events::EventSocket;
use crate::services::session;
use crate::state::SocketStatus;

/// Props of [`InstructorView`].
#[derive(Properties, PartialEq)]
pub struct InstructorProps {
    /// The instructor key from the link.
    pub key_text: String,
}

fn room_url(key: &str) -> String {
    format!(
        "/api/room?key={}",
        String::from(js_sys::encode_uri_component(key))
    )
}

/// What a live event changes in the room as the instructor sees it; each
/// sets what it carries.
#[derive(Debug, Clone)]
enum Change {
    /// A participant, whole.
    Participant(Participant),
    /// One report of a participant (their others stay), whose lesson is
    /// now the one they are on.
    Report(SessionId, LessonReport),
    /// A participant is no longer one (their tab reloaded: its new session
    /// took over their reports, and is told whole once its page connects).
    Left(SessionId),
    /// The lesson the room was moved to, or none once cleared.
    Lesson(Option<String>),
    /// The lock and the room's defaults.
    Policy(bool, protocol::ServerPolicy),
}

impl Change {
    /// The change `event` makes, if any.
    fn of(event: ServerEvent) -> Option<Change> {
        match event {
            ServerEvent::ParticipantChanged { participant } => {
                Some(Change::Participant(participant))
            }
            ServerEvent::ParticipantReported { session, report } => {
                Some(Change::Report(session, report))
            }
            ServerEvent::ParticipantLeft { session } => Some(Change::Left(session)),
            ServerEvent::RoomLesson { lesson } => Some(Change::Lesson(lesson)),
            ServerEvent::ConfigChanged {
                session: None,
                locked,
                config,
                ..
            } => Some(Change::Policy(locked, config)),
            _ => None,
        }
    }

    /// Applies it to `room`.
    fn apply(&self, room: &mut RoomState) {
        match self {
            Change::Participant(participant) => match room
                .participants
                .iter_mut()
                .find(|p| p.session == participant.session)
            {
                Some(p) => *p = participant.clone(),
                None => room.participants.push(participant.clone()),
            },
            // A participant not known yet is told whole soon (their
            // socket's opening, which the server may hold back a second).
            Change::Report(session, report) => {
                if let Some(p) = room.participants.iter_mut().find(|p| p.session == *session) {
                    p.lesson = Some(report.lesson.clone());
                    // In the order of lesson ids, as the server lists them.
                    let at = p.reports.partition_point(|r| r.lesson < report.lesson);
                    match p.reports.get_mut(at) {
                        Some(r) if r.lesson == report.lesson => *r = report.clone(),
                        _ => p.reports.insert(at, report.clone()),
                    }
                }
            }
            Change::Left(session) => room.participants.retain(|p| p.session != *session),
            Change::Lesson(lesson) => room.lesson.clone_from(lesson),
            Change::Policy(locked, config) => {
                room.policy_locked = *locked;
                room.defaults = config.clone();
            }
        }
    }
}

/// The room as this view knows it: the last full read of it (`GET` or the
/// answer to a `PUT`) with the live events applied since.
///
/// A read answers with the room as it was when the server read it, and an
/// event the socket brought meanwhile may be newer: the events that came
/// while a read was in flight are applied again over its answer (each sets
/// what it carries, so one already in the answer changes nothing), so an
/// answer never undoes them. Found in CI: the instructor's list kept the
/// lock's marks after the unlock, its re-read after the socket's snapshot
/// having answered with the room still locked after the unlock's event.
#[derive(Debug, Default)]
struct Known {
    /// The room, once read.
    state: Option<RoomState>,
    /// Reads in flight.
    reading: usize,
    /// The changes since the oldest read in flight began, in order.
    since: Vec<Change>,
    /// Sessions a reload took over: a `participant_changed` of theirs the
    /// server had read before it, and sent after `participant_left`, is
    /// not theirs any more (found in review: the row came back, and
    /// counted twice until the next read). Ids are never issued again.
    left: crate::sorted::SortedSet<SessionId>,
}

impl Known {
    /// A read begins.
    fn reading(&mut self) {
        self.reading += 1;
    }

    /// A live event: the room as it is now, if the event changed it.
    fn event(&mut self, event: ServerEvent) -> Option<RoomState> {
        let change = Change::of(event)?;
        match &change {
            Change::Left(session) => {
                self.left.insert(session.clone());
            }
            Change::Participant(p) if self.left.contains(&p.session) => return None,
            _ => {}
        }
        let state = self.state.as_mut();
        if let Some(state) = state {
            change.apply(state);
        }
        if self.reading > 0 {
            self.since.push(change);
        }
        self.state.clone()
    }

    /// A read ended with `answer` (`None`: it failed): the room as it is now.
    fn read(&mut self, answer: Option<RoomState>) -> Option<RoomState> {
        self.reading = self.reading.saturating_sub(1);
        if let Some(mut state) = answer {
            for change in &self.since {
                change.apply(&mut state);
            }
            self.state = Some(state);
        }
        if self.reading == 0 {
            self.since.clear();
        }
        self.state.clone()
    }
}

/// How many predicted a value, measured it, and measured it in a run that
/// stopped early (a wait past its limit in that browser; among the measured).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Count {
    predicted: u32,
    measured: u32,
    stopped_early: u32,
}

/// Counts of each answer value among predictions and measurements.
fn tally(participants: &[Participant], lesson: &str) -> SortedMap<String, Count> {
    let mut counts: SortedMap<String, Count> = SortedMap::new();
    for p in participants {
        if let Some(report) = p.reports.iter().find(|r| r.lesson == lesson) {
            if let Some(v) = &report.prediction {
                counts.get_or_default(v.clone()).predicted += 1;
            }
            if let Some(v) = &report.answer {
                let count = counts.get_or_default(v.clone());
                count.measured += 1;
                count.stopped_early += u32::from(report.stopped_early);
            }
        }
    }
    counts
}

/// What the measured bar says: the count, and how many of those runs
/// stopped early.
fn measured_label(count: &Count) -> String {
    match count.stopped_early {
        0 => "measured".to_owned(),
        n => format!("measured ({n} stopped early)"),
    }
}

/// A reported answer (`6`, `choice-1`) in the lesson's words ("6
/// connections", the choice's text), as the participants saw it (found in
/// review: the view showed `choice-0`); as reported until the lesson's
/// words have come.
fn answer_words(value: &str, words: Option<&LessonWords>) -> String {
    match (crate::lessons::Answer::from_report(value), words) {
        (Some(answer), Some(words)) => answer.words(words),
        _ => value.to_owned(),
    }
}

/// A bar's width for `n` of `max`: none for 0 (found in review: a count of
/// 0 was drawn 40 wide).
fn bar_width(n: u32, max: u32) -> u32 {
    if n == 0 { 0 } else { 20 + n * 320 / max.max(1) }
}

/// The room's predictions against its measurements, as bars: each answer's
/// words on a line, its two bars below.
fn chart(counts: &SortedMap<String, Count>, words: Option<&LessonWords>) -> Html {
    let max = counts
        .values()
        .map(|c| c.predicted.max(c.measured))
        .max()
        .unwrap_or(1)
        .max(1);
    let row = 62;
    let height = (counts.len().max(1) * row) as u32 + 10;
    let bar = |y: usize, n: u32, class: &'static str, label: &str| {
        let w = bar_width(n, max);
        html! { <>
            <rect class={class} x="0" y={y.to_string()} width={w.to_string()} height="16" />
            <text x={(5 + w).to_string()} y={(y + 13).to_string()}>{ format!("{n} {label}") }</text>
        </> }
    };
    html! {
        <svg class="room-chart" role="img" aria-label="Predictions and measurements" width="680" height={height.to_string()}>
            { for counts.iter().enumerate().map(|(i, (value, count))| {
                let y = i * row + 4;
                html! { <g data-value={value.clone()}>
                    <text x="0" y={(y + 13).to_string()}>{ answer_words(value, words) }</text>
                    { bar(y + 18, count.predicted, "predicted", "predicted") }
                    { bar(y + 38, count.measured, "measured", &measured_label(count)) }
                </g> }
            }) }
        </svg>
    }
}

/// The instructor's page.
#[component]
pub fn InstructorView(props: &InstructorProps) -> Html {
    let room = use_state(|| None::<RoomState>);
    let problem = use_state(|| None::<String>);
    let socket_status = use_state(|| SocketStatus::Connecting);
    let latest = use_mut_ref(Known::default);
    // The lesson picked in the list; empty until one is (the list's first
    // is shown picked).
    let chosen = use_state(String::new);
    // The lessons' titles, from the server's catalogue.
    let listed = use_state(|| None::<Result<Vec<crate::lessons::Listed>, String>>);
    // The words of the lesson in play (its choices, its unit), by id.
    let words = use_state(|| None::<(String, LessonWords)>);
    {
        let listed = listed.clone();
        use_effect_with((), move |()| {
            session::get_into(listed, "/api/lessons".into())
        });
    }
    {
        let (room, problem, status, latest) = (
            room.clone(),
            problem.clone(),
            socket_status.clone(),
            latest.clone(),
        );
        let key = props.key_text.clone();
        use_effect_with(key.clone(), move |_| {
            let socket: Rc<RefCell<Option<EventSocket>>> = Rc::default();
            {
                let (room, problem, latest, socket) = (
                    room.clone(),
                    problem.clone(),
                    latest.clone(),
                    socket.clone(),
                );
                let key = key.clone();
                latest.borrow_mut().reading();
                wasm_bindgen_futures::spawn_local(async move {
                    let read = session::json::<RoomState>("GET", &room_url(&key), None).await;
                    let now = latest.borrow_mut().read(read.as_ref().ok().cloned());
                    match read {
                        Err(e) => problem.set(Some(e)),
                        Ok(_) => {
                            room.set(now);
                            let on_event = {
                                let (room, latest, problem) =
                                    (room.clone(), latest.clone(), problem.clone());
                                let key = key.clone();
                                Box::new(move |event: ServerEvent| {
                                    // Each snapshot (the socket's first message, again
                                    // after a reconnect or after the stream fell behind)
                                    // follows a time whose events may be missing:
                                    // the room is read again.
                                    if matches!(event, ServerEvent::Snapshot { .. }) {
                                        let (room, latest, problem, url) = (
                                            room.clone(),
                                            latest.clone(),
                                            problem.clone(),
                                            room_url(&key),
                                        );
                                        latest.borrow_mut().reading();
                                        wasm_bindgen_futures::spawn_local(async move {
                                            let read =
                                                session::json::<RoomState>("GET", &url, None).await;
                                            let now = latest
                                                .borrow_mut()
                                                .read(read.as_ref().ok().cloned());
                                            match read {
                                                Ok(_) => room.set(now),
                                                Err(e) => problem.set(Some(e)),
                                            }
                                        });
                                        return;
                                    }
                                    let now = latest.borrow_mut().event(event);
                                    if now.is_some() {
                                        room.set(now);
                                    }
                                })
                            };
                            let on_open = {
                                let status = status.clone();
                                Box::new(move || status.set(SocketStatus::Open))
                            };
                            // This view does not reconnect: the reason the
                            // server gave, if any, is shown with the problems.
                            let on_close = {
                                let problem = problem.clone();
                                Box::new(move |code: u16, reason: String| {
                                    // The instructor's view is never ended
                                    // for falling behind: a 1008 is a refusal
                                    // (a wrong key), whose reason says what
                                    // to do; reloading would not help.
                                    status.set(SocketStatus::after_close(code, false));
                                    if !reason.is_empty() {
                                        let then = if code == crate::state::CLOSE_POLICY {
                                            ""
                                        } else {
                                            " Reload the page to open it again."
                                        };
                                        problem.set(Some(format!(
                                            "The server closed the live link ({code}): {reason}.{then}"
                                        )));
                                    }
                                })
                            };
                            match EventSocket::connect_instructor(&key, on_event, on_open, on_close)
                            {
                                Ok(s) => *socket.borrow_mut() = Some(s),
                                Err(e) => problem.set(Some(e)),
                            }
                        }
                    }
                });
            }
            move || drop(socket.borrow_mut().take())
        });
    }
    let change = |patch: RoomPatch| {
        let (room, problem, latest) = (room.clone(), problem.clone(), latest.clone());
        let key = props.key_text.clone();
        let body = crate::wire::to_string(&patch);
        Callback::from(move |_: MouseEvent| {
            let (room, problem, latest, key, body) = (
                room.clone(),
                problem.clone(),
                latest.clone(),
                key.clone(),
                body.clone(),
            );
            latest.borrow_mut().reading();
            wasm_bindgen_futures::spawn_local(async move {
                let read = session::json::<RoomState>("PUT", &room_url(&key), Some(body)).await;
                let now = latest.borrow_mut().read(read.as_ref().ok().cloned());
                match read {
                    Ok(_) => {
                        room.set(now);
                        problem.set(None);
                    }
                    Err(e) => problem.set(Some(e)),
                }
            });
        })
    };
    let Some(state) = (*room).clone() else {
        return html! {
            <section class="instructor" aria-label="Instructor">
                <h2>{ "Instructor" }</h2>
                { match &*problem {
                    Some(p) => html! { <p class="error" role="alert" id="instructor-problem">{ p.clone() }</p> },
                    None => html! { <p>{ "Opening the room…" }</p> },
                } }
            </section>
        };
    };
    let host = web_sys::window()
        .and_then(|w| w.location().host().ok())
        .unwrap_or_default();
    let on_pick = {
        let chosen = chosen.clone();
        Callback::from(move |e: Event| {
            if let Some(select) = e.target_dyn_into::<web_sys::HtmlSelectElement>() {
                chosen.set(select.value());
            }
        })
    };
    let lessons = listed.as_ref().and_then(|l| l.as_ref().ok());
    let chosen: String = match (chosen.as_str(), lessons.and_then(|l| l.first())) {
        ("", Some(first)) => first.id.clone(),
        (picked, _) => picked.to_owned(),
    };
    let in_play = state.lesson.clone().unwrap_or_else(|| chosen.clone());
    // The lesson's title as the room sees it in its list (its id until the
    // list has come).
    let title_of = |id: &str| {
        lessons
            .and_then(|l| l.iter().find(|l| l.id == id))
            .map_or_else(|| id.to_owned(), |l| l.title.clone())
    };
    {
        let words = words.clone();
        use_effect_with(in_play.clone(), move |id: &String| {
            let id = id.clone();
            if !id.is_empty() && words.as_ref().is_none_or(|(had, _)| *had != id) {
                wasm_bindgen_futures::spawn_local(async move {
                    let path = format!("/api/lessons/{id}");
                    // Not understood or not there: the answers as reported.
                    if let Ok(w) = session::json::<LessonWords>("GET", &path, None).await {
                        words.set(Some((id, w)));
                    }
                });
            }
        });
    }
    let in_play_words = words
        .as_ref()
        .filter(|(id, _)| *id == in_play)
        .map(|(_, w)| w);
    let counts = tally(&state.participants, &in_play);
    let qr = format!(
        "/api/room/join.svg?key={}",
        String::from(js_sys::encode_uri_component(&props.key_text))
    );
    html! {
        <section class="instructor" aria-label="Instructor" data-socket={socket_status.name()}>
            <h2>{ "Instructor" }</h2>
            <div class="join">
                <img src={qr} alt={format!("QR code for http://{host}/")} width="180" height="180" />
                <div>
                    <p>{ "Participants join at " }<strong id="join-url">{ format!("http://{host}/") }</strong></p>
                    <p class="help">{ "Each gets a session of their own. Nothing to install." }</p>
                    <p id="room-counts">{ format!("{}, {} online, {} open",
                        crate::tally::count(state.participants.len(), "participant"),
                        state.participants.iter().filter(|p| p.online).count(),
                        crate::tally::count(state.connections, "connection")) }</p>
                </div>
            </div>
            <div class="actions">
                <label>{ "Lesson " }
                    <select id="room-lesson" onchange={on_pick}>
                        { for lessons.into_iter().flatten().map(|l| {
                            // Locked, a lesson that sets the policy or the
                            // middlebox cannot run, nor any lesson when the
                            // room's policy is not the lab's defaults (it
                            // needs them): said where it is picked.
                            let waits = state.policy_locked
                                && (l.changes_settings
                                    || state.defaults != protocol::ServerPolicy::default());
                            html! {
                                <option value={l.id.clone()} selected={chosen == l.id} data-waits={waits.to_string()}>
                                    { if waits { format!("{} (waits for the unlock)", l.title) } else { l.title.clone() } }
                                </option>
                            }
                        }) }
                    </select>
                </label>
                <button id="move-room" data-lesson={chosen.clone()} disabled={chosen.is_empty()}
                    onclick={change(RoomPatch { lesson: Some(chosen.clone()), ..RoomPatch::default() })}>
                    { "Move the room to it" }</button>
                <button id="lock" class="secondary" aria-pressed={state.policy_locked.to_string()}
                    onclick={change(RoomPatch { policy_locked: Some(!state.policy_locked), ..RoomPatch::default() })}>
                    { if state.policy_locked { "Unlock the policy" } else { "Lock the policy" } }</button>
                <button id="reset" class="secondary" onclick={change(RoomPatch { reset: Some(true), ..RoomPatch::default() })}>
                    { "New round" }</button>
            </div>
            <p class="help" id="lock-help">
                { if state.policy_locked {
                    "Locked: every participant runs the lab's default policy and middlebox. About \
                     half of the lessons change them for their run (keep-alive off, the timeouts, the \
                     NAT lessons): those wait for the unlock, marked so in the list above, and their \
                     pages say so."
                } else {
                    "Locking keeps every participant on the lab's default policy and middlebox. The \
                     lessons that change them for their run (about half) cannot run until it is \
                     unlocked."
                } }
            </p>
            if let Some(p) = &*problem {
                <p class="error" role="alert">{ p.clone() }</p>
            }
            <h3 data-lesson={in_play.clone()}>{ format!("Predicted and measured: {}", title_of(&in_play)) }</h3>
            if counts.is_empty() {
                <p class="help">{ "No predictions yet." }</p>
            } else {
                { chart(&counts, in_play_words) }
            }
            <table class="participants">
                <thead><tr><th>{ "participant" }</th><th>{ "browser" }</th><th>{ "online" }</th>
                    <th>{ "lesson" }</th><th>{ "predicted" }</th><th>{ "measured" }</th><th>{ "figures" }</th></tr></thead>
                <tbody>
                    { for state.participants.iter().map(|p| {
                        let report = p.reports.iter().find(|r| r.lesson == in_play);
                        let short: String = p.session.as_str().chars().skip(2).take(6).collect();
                        html! {
                            <tr data-participant={p.session.to_string()}>
                                <td>{ short }</td>
                                <td>{ p.browser.clone() }</td>
                                <td>{ if p.online { "yes" } else { "no" } }</td>
                                <td>{ p.lesson.as_deref().map(title_of).unwrap_or_default() }</td>
                                <td>{ report.and_then(|r| r.prediction.as_deref())
                                    .map(|v| answer_words(v, in_play_words)).unwrap_or_default() }</td>
                                <td data-answer={report.and_then(|r| r.answer.clone()).unwrap_or_default()}
                                    data-stopped-early={report.is_some_and(|r| r.stopped_early).to_string()}>
                                    { report.and_then(|r| r.answer.as_deref())
                                        .map(|v| answer_words(v, in_play_words)).unwrap_or_default() }
                                    if report.is_some_and(|r| r.stopped_early && r.answer.is_some()) {
                                        <span class="stopped-early" title="A wait passed its limit in this browser: the answer is what it measured until then">
                                            { " (stopped early)" }</span>
                                    }</td>
                                <td class="figures">{ report.map(|r| r.figures.iter()
                                    .map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")).unwrap_or_default() }</td>
                            </tr>
                        }
                    }) }
                </tbody>
            </table>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn participant(n: u8, answer: &str, stopped_early: bool) -> Participant {
        Participant {
            session: SessionId::parse(&format!("s-{}", format!("{n:02x}").repeat(16)))
                .expect("an id"),
            browser: "Chrome".into(),
            online: true,
            lesson: Some("http2".into()),
            reports: vec![LessonReport {
                lesson: "http2".into(),
                stage: "answered".into(),
                prediction: Some("1".into()),
                answer: Some(answer.into()),
                figures: Vec::new(),
                stopped_early,
            }],
        }
    }

    fn room(locked: bool, lesson: Option<&str>) -> RoomState {
        RoomState {
            policy_locked: locked,
            defaults: protocol::ServerPolicy::default(),
            sessions: 1,
            connections: 0,
            lesson: lesson.map(str::to_owned),
            participants: Vec::new(),
        }
    }

    fn lock(locked: bool) -> ServerEvent {
        ServerEvent::ConfigChanged {
            config: protocol::ServerPolicy::default(),
            session: None,
            locked,
            at_us: 1,
        }
    }

    /// A report event changes that one report (in lesson order, as the
    /// server lists them) and the lesson the participant is on; their other
    /// reports stay, and a participant not known yet is left to their own
    /// event.
    #[test]
    fn a_report_changes_that_report_only() {
        let mut known = Known::default();
        let mut state = room(false, None);
        state.participants.push(participant(1, "6", false));
        known.reading();
        known.read(Some(state));
        let report = |lesson: &str, answer: &str| LessonReport {
            lesson: lesson.into(),
            stage: "answered".into(),
            prediction: None,
            answer: Some(answer.into()),
            figures: Vec::new(),
            stopped_early: false,
        };
        let who = participant(1, "6", false).session;
        let told = |lesson: &str, answer: &str| ServerEvent::ParticipantReported {
            session: who.clone(),
            report: report(lesson, answer),
        };
        let now = known.event(told("cache-lock", "2")).expect("known");
        let p = &now.participants[0];
        assert_eq!(p.lesson.as_deref(), Some("cache-lock"));
        let lessons: Vec<&str> = p.reports.iter().map(|r| r.lesson.as_str()).collect();
        assert_eq!(lessons, ["cache-lock", "http2"]);
        let now = known.event(told("http2", "7")).expect("known");
        let p = &now.participants[0];
        assert_eq!(p.lesson.as_deref(), Some("http2"));
        assert_eq!(p.reports.len(), 2);
        assert_eq!(p.reports[1].answer.as_deref(), Some("7"));
        assert_eq!(p.reports[0].answer.as_deref(), Some("2"));
        let stranger = ServerEvent::ParticipantReported {
            session: participant(2, "1", false).session,
            report: report("http2", "1"),
        };
        assert_eq!(known.event(stranger).expect("known").participants.len(), 1);
    }

    /// A reload's old session leaves the room's list and its tally; one
    /// it never listed changes nothing.
    #[test]
    fn a_participant_that_left_is_counted_no_more() {
        let mut known = Known::default();
        let mut state = room(false, None);
        state.participants.push(participant(1, "6", false));
        state.participants.push(participant(2, "1", false));
        known.reading();
        known.read(Some(state));
        let left = |n: u8| ServerEvent::ParticipantLeft {
            session: participant(n, "6", false).session,
        };
        let now = known.event(left(1)).expect("known");
        assert_eq!(now.participants.len(), 1);
        assert_eq!(
            now.participants[0].session,
            participant(2, "1", false).session
        );
        assert_eq!(tally(&now.participants, "http2").len(), 1);
        let now = known.event(left(3)).expect("known");
        assert_eq!(now.participants.len(), 1);
        // Its presence read before the reload, told after: not back.
        let late = ServerEvent::ParticipantChanged {
            participant: participant(1, "6", false),
        };
        assert_eq!(known.event(late), None);
        assert_eq!(known.state.as_ref().map(|s| s.participants.len()), Some(1));
    }

    /// The race found in CI: a re-read begins, the unlock's event comes,
    /// then the read answers with the room as the server read it, still
    /// locked. The unlock stays; what the answer alone knew is taken.
    #[test]
    fn a_read_that_answers_after_an_event_does_not_undo_it() {
        let mut known = Known::default();
        known.reading();
        assert_eq!(known.read(Some(room(true, None))), Some(room(true, None)));
        known.reading();
        assert_eq!(known.event(lock(false)), Some(room(false, None)));
        let now = known.read(Some(room(true, Some("http2"))));
        assert_eq!(now, Some(room(false, Some("http2"))));
        // With no read in flight, events are not kept, and the next answer
        // is taken as it is.
        assert!(known.since.is_empty());
        known.reading();
        assert_eq!(known.read(Some(room(true, None))), Some(room(true, None)));
        // A failed read keeps what was known; events before the first read
        // change nothing there is not yet.
        let mut fresh = Known::default();
        assert_eq!(fresh.event(lock(true)), None);
        fresh.reading();
        assert_eq!(fresh.read(None), None);
    }

    /// A cleared lesson is an event too: a view that missed the clear's
    /// answer (another instructor's tab) learns it, and a move replayed
    /// over a read is undone by the clear that followed it.
    #[test]
    fn a_cleared_lesson_clears_the_views_lesson() {
        let moved = |lesson: Option<&str>| ServerEvent::RoomLesson {
            lesson: lesson.map(str::to_owned),
        };
        let mut known = Known::default();
        known.reading();
        known.read(Some(room(false, None)));
        assert_eq!(
            known.event(moved(Some("pools"))),
            Some(room(false, Some("pools")))
        );
        known.reading();
        known.event(moved(Some("http2")));
        assert_eq!(
            known.read(Some(room(false, None))),
            Some(room(false, Some("http2")))
        );
        assert_eq!(known.event(moved(None)), Some(room(false, None)));
    }

    /// Two reads in flight (a re-read and a change's answer): the events
    /// since the first began are applied over both answers, and kept until
    /// both have come.
    #[test]
    fn events_are_kept_until_every_read_in_flight_has_answered() {
        let mut known = Known::default();
        known.reading();
        known.read(Some(room(false, None)));
        known.reading();
        known.event(lock(true));
        known.reading();
        assert_eq!(known.read(Some(room(false, None))), Some(room(true, None)));
        assert_eq!(known.since.len(), 1, "the second read is still out");
        known.event(lock(false));
        assert_eq!(known.read(Some(room(true, None))), Some(room(false, None)));
        assert!(known.since.is_empty());
    }

    /// An answer from a run that stopped early is counted among the
    /// measured, and said to be so (found in review: the room's tally could
    /// not tell it from a complete run).
    /// The room's answers in the lesson's words: a choice's text, a count
    /// with its unit, "not measured"; as reported until the words come; a
    /// count of 0 drawn as no bar (found in review).
    #[test]
    fn answers_are_shown_in_the_lessons_words_and_zero_has_no_bar() {
        let words = LessonWords {
            title: "t".into(),
            concept: "c".into(),
            prompt: "p".into(),
            unit: None,
            choices: vec!["on the same connection".into(), "on another".into()],
            why: String::new(),
            watch: String::new(),
        };
        assert_eq!(
            answer_words("choice-0", Some(&words)),
            "on the same connection"
        );
        assert_eq!(answer_words("unmeasured", Some(&words)), "not measured");
        assert_eq!(answer_words("choice-0", None), "choice-0");
        let counted = LessonWords {
            unit: Some("connections".into()),
            choices: Vec::new(),
            ..words
        };
        assert_eq!(answer_words("6", Some(&counted)), "6 connections");
        assert_eq!(answer_words("1", Some(&counted)), "1 connection");
        assert_eq!(answer_words("junk", Some(&counted)), "junk");
        assert_eq!(bar_width(0, 5), 0);
        assert!(bar_width(1, 5) > 0 && bar_width(5, 5) > bar_width(1, 5));
    }

    #[test]
    fn the_tally_marks_answers_from_runs_that_stopped_early() {
        let room = [
            participant(1, "1", false),
            participant(2, "6", true),
            participant(3, "1", false),
        ];
        let counts = tally(&room, "http2");
        let one = counts.get(&"1".to_owned()).copied().unwrap_or_default();
        let six = counts.get(&"6".to_owned()).copied().unwrap_or_default();
        assert_eq!((one.predicted, one.measured, one.stopped_early), (3, 2, 0));
        assert_eq!((six.predicted, six.measured, six.stopped_early), (0, 1, 1));
        assert_eq!(measured_label(&one), "measured");
        assert_eq!(measured_label(&six), "measured (1 stopped early)");
    }
}
