//! Sessions and the room: who may see and change what on a shared lab.

use serde::{Deserialize, Serialize};

use crate::ServerPolicy;

/// One page load (a lab session): a capability the server issues
/// (`POST /api/sessions`), 128 random bits as `s-` and 32 hex digits. Lab
/// requests carry it as `session=…` in their query (a cookie would change the
/// browser's credentials-mode pools, a header would cost a CORS preflight); a
/// connection belongs to the session of its first request that names one.
///
/// Syntactically 1 to 64 characters from `A-Z a-z 0-9 - _`; the server
/// refuses any well-formed id it did not issue.
///
/// ```json
/// "s-5f0c1b9e2a7d4c3b8e6f0a1d2c3b4a59"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionId(String);

impl SessionId {
    /// Longest accepted session id.
    pub const MAX_LEN: usize = 64;

    /// Checks the characters and length.
    pub fn parse(text: &str) -> Result<SessionId, String> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if text.is_empty() || text.len() > Self::MAX_LEN || !text.chars().all(ok_char) {
            return Err(format!(
                "a session id is 1 to {} characters from A-Z a-z 0-9 - _, got `{text}`",
                Self::MAX_LEN
            ));
        }
        Ok(SessionId(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SessionId {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        SessionId::parse(&text)
    }
}

impl From<SessionId> for String {
    fn from(id: SessionId) -> String {
        id.0
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Answer to `POST /api/sessions`: a new session, for this page load only.
///
/// ```json
/// {"session": "s-5f0c1b9e2a7d4c3b8e6f0a1d2c3b4a59"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionGrant {
    /// Put it on every lab request (`session=`) and on `/api/events`.
    pub session: SessionId,
}

/// What a participant's page reports about a lesson (over its events
/// socket), for the instructor's view of the room. Bounded: ids and values
/// are short text; at most [`MAX_FIGURES`] figures.
///
/// ```json
/// {"lesson": "six-lanes", "stage": "answered", "prediction": "6", "answer": "6", "figures": [["at-once", "6"], ["queued", "6"]]}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LessonReport {
    /// The lesson's id.
    pub lesson: String,
    /// `predict`, `ready`, `running`, `answered` or `failed`.
    pub stage: String,
    /// The learner's prediction, as the lesson's answer value (`6`, `choice-1`).
    #[serde(default)]
    pub prediction: Option<String>,
    /// The measured answer, once answered.
    #[serde(default)]
    pub answer: Option<String>,
    /// The measured figures (id, value).
    #[serde(default)]
    pub figures: Vec<(String, String)>,
    /// The answer is what was measured until a wait passed its limit in the
    /// learner's browser (what the lesson expected did not happen there):
    /// the room's tally shows it apart from complete runs.
    #[serde(default)]
    pub stopped_early: bool,
}

/// Most figures a report may carry.
pub const MAX_FIGURES: usize = 16;
/// Longest text in a report (ids, stages, values), in bytes as JSON writes
/// it ([`json_len`]).
pub const MAX_REPORT_TEXT: usize = 200;

/// How many bytes `text` takes as a JSON string's contents: a quote or a
/// backslash two, a control character up to six. What a report costs the
/// instructor's view is its JSON, so that is what the bounds count (found
/// in review: 200 quotes counted 200 and were sent as 400).
pub fn json_len(text: &str) -> usize {
    text.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if c < ' ' => 6,
            c => c.len_utf8(),
        })
        .sum()
}

/// `text` cut to at most [`MAX_REPORT_TEXT`] bytes as JSON writes it, at a
/// character's boundary.
pub fn report_text(text: &str) -> String {
    let mut len = 0;
    text.chars()
        .take_while(|c| {
            len += json_len(c.encode_utf8(&mut [0; 4]));
            len <= MAX_REPORT_TEXT
        })
        .collect()
}

impl LessonReport {
    /// Whether every part is within the bounds.
    pub fn is_bounded(&self) -> bool {
        let short = |t: &str| json_len(t) <= MAX_REPORT_TEXT;
        short(&self.lesson)
            && short(&self.stage)
            && self.prediction.as_deref().is_none_or(short)
            && self.answer.as_deref().is_none_or(short)
            && self.figures.len() <= MAX_FIGURES
            && self.figures.iter().all(|(k, v)| short(k) && short(v))
    }
}

/// One participant as the instructor sees them.
///
/// ```json
/// {"session": "s-5f0c1b9e2a7d4c3b8e6f0a1d2c3b4a59", "browser": "Chrome 156", "online": true, "lesson": "six-lanes", "reports": []}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Their session.
    pub session: SessionId,
    /// Browser and version, from the user agent of their events socket.
    pub browser: String,
    /// Their page is connected now.
    pub online: bool,
    /// The lesson they are on, if any.
    pub lesson: Option<String>,
    /// Their latest report per lesson.
    pub reports: Vec<LessonReport>,
}

/// The room as the instructor sees it (`GET /api/room?key=…`).
///
/// ```json
/// {"policy_locked": false, "defaults": {"keep_alive": true, "idle_timeout_ms": 5000, "max_requests": 100, "advertise_keep_alive": true, "hang_timeout_ms": null, "tcp_keepalive": null}, "sessions": 3, "connections": 14, "lesson": null, "participants": []}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomState {
    /// While locked, every session runs `defaults` and `set_config` is refused.
    pub policy_locked: bool,
    /// The policy new sessions start from (and every session runs while locked).
    pub defaults: ServerPolicy,
    /// Sessions issued and not yet expired.
    pub sessions: usize,
    /// Open TCP connections, all sessions together.
    pub connections: usize,
    /// The lesson the instructor moved the room to, if any.
    #[serde(default)]
    pub lesson: Option<String>,
    /// Every participant with a page (a session that had an events viewer).
    #[serde(default)]
    pub participants: Vec<Participant>,
}

/// A change to the room (`PUT /api/room?key=…`); absent fields stay.
///
/// ```json
/// {"policy_locked": true}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomPatch {
    /// Lock (or unlock) the policy for every session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_locked: Option<bool>,
    /// Move every participant's page to this lesson.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lesson: Option<String>,
    /// Forget every participant's reports (a new round).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<bool>,
}

/// What to send to `PUT /api/room`, for error hints.
pub const ROOM_HINT: &str = r#"send some of {"policy_locked": true, "lesson": "six-lanes", "reset": true} with the instructor key (key=… or Authorization: Bearer …)"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_text_is_counted_and_cut_as_json_writes_it() {
        assert_eq!(json_len("6 ms"), 4);
        assert_eq!(json_len("\"\\\n\u{1}"), 2 + 2 + 2 + 6);
        assert_eq!(json_len("÷"), 2);
        // As many bytes as serde_json writes between the quotes.
        let tricky = "a\"b\\c\u{7}d→e\tf";
        let written = serde_json::to_string(tricky).expect("a string");
        assert_eq!(json_len(tricky), written.len() - 2);
        // 200 quotes are 400 bytes: out of bounds; cut, they fit.
        let quotes = "\"".repeat(MAX_REPORT_TEXT);
        let report = |value: String| LessonReport {
            lesson: "six-lanes".into(),
            stage: "answered".into(),
            prediction: None,
            answer: None,
            figures: vec![("at-once".into(), value)],
            stopped_early: false,
        };
        assert!(!report(quotes.clone()).is_bounded());
        let cut = report_text(&quotes);
        assert_eq!(cut.len(), MAX_REPORT_TEXT / 2);
        assert!(report(cut).is_bounded());
        let arrows = "→".repeat(MAX_REPORT_TEXT);
        let cut = report_text(&arrows);
        assert!(json_len(&cut) <= MAX_REPORT_TEXT && json_len(&cut) > MAX_REPORT_TEXT - 3);
        assert!(report(cut).is_bounded());
    }
}
