//! The middlebox in the lab: per-owner settings, the session a mapping
//! follows, `GET/PUT /api/middlebox` and the `set_middlebox` control message.
//!
//! Settings are per owner like the keep-alive policy: each session (and the
//! anonymous scope) runs its own, starting from the defaults
//! ([`MiddleboxConfig::defaults`](super::MiddleboxConfig::defaults)); the
//! instructor changes the defaults; while the room is locked everyone runs the
//! defaults and changes are refused. A mapping reads its owner's settings
//! once, when its client's first request line names its session (like the
//! policy's idle timeout, read when a connection is accepted): a change
//! applies to mappings opened after it. Until that line has arrived the
//! mapping runs the anonymous scope's settings; a mapping whose client says
//! nothing before something else happens stays anonymous. When the line
//! comes after a silence longer than its owner's timeout, the mapping
//! expires as of that timeout and the line is late, as the settings its
//! `opened` names would have it (`Mapping::passed_before_attribution`).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use protocol::{
    ConnId, ErrorBody, MappingId, MiddleboxPatch, MiddleboxSettings, MiddleboxView, ServerEvent,
    SessionId,
};
use tokio::net::TcpListener;

use super::Middlebox;
use crate::Lab;
use crate::error::ApiError;
use crate::params::Params;
use crate::sessions::{Access, Owner, locked_error, unknown_session};

/// Serves the lab's middlebox on `listener`, in front of `upstream` (the
/// lab's own main port), until the lab shuts down. Its address becomes one
/// of the lab's origins (so the lab answers requests whose `Host` or `Origin`
/// names it) and is listed by `GET /api/middlebox`.
pub async fn serve_in_lab(listener: TcpListener, upstream: SocketAddr, lab: Lab) -> io::Result<()> {
    serve_all_in_lab(vec![listener], upstream, lab).await
}

/// Like [`serve_in_lab`], on several listeners at once (127.0.0.1 and
/// `[::1]`), sharing one middlebox: one cap on mappings, one set of ids.
pub async fn serve_all_in_lab(
    listeners: Vec<TcpListener>,
    upstream: SocketAddr,
    lab: Lab,
) -> io::Result<()> {
    let addresses = listeners
        .iter()
        .map(TcpListener::local_addr)
        .collect::<io::Result<Vec<_>>>()?;
    lab.add_listeners(&addresses);
    for address in &addresses {
        lab.middlebox().add_listener(*address);
    }
    let middlebox = Middlebox::in_lab(lab, upstream);
    let mut loops = tokio::task::JoinSet::new();
    for listener in listeners {
        let middlebox = middlebox.clone();
        loops.spawn(async move { middlebox.serve(listener).await });
    }
    while loops.join_next().await.is_some() {}
    Ok(())
}

/// Every owner's middlebox settings, and where the lab's middlebox listens.
#[derive(Debug)]
pub struct Registry {
    inner: Mutex<Table>,
    /// Mapping ids, unique in the lab's event stream whatever the listener.
    next: AtomicU64,
}

#[derive(Debug)]
struct Table {
    /// What owners without settings of their own run (and everyone while
    /// the room is locked).
    defaults: MiddleboxSettings,
    /// Owners that chose their own; only owners the sessions registry still
    /// knows are kept, so this is bounded by the session cap.
    own: HashMap<Owner, MiddleboxSettings>,
    /// Where the lab's middlebox listens.
    listeners: Vec<SocketAddr>,
}

impl Registry {
    /// A registry whose owners start from `defaults`.
    pub fn new(defaults: MiddleboxSettings) -> Registry {
        Registry {
            inner: Mutex::new(Table {
                defaults,
                own: HashMap::new(),
                listeners: Vec::new(),
            }),
            next: AtomicU64::new(1),
        }
    }

    /// A fresh mapping id.
    pub fn next_mapping(&self) -> MappingId {
        MappingId(self.next.fetch_add(1, Ordering::Relaxed))
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What `owner`'s new mappings run.
    pub fn effective(&self, locked: bool, owner: &Owner) -> MiddleboxSettings {
        let state = self.lock();
        match state.own.get(owner) {
            Some(own) if !locked => own.clone(),
            _ => state.defaults.clone(),
        }
    }

    /// The scopes with settings of their own.
    pub fn owners(&self) -> Vec<Owner> {
        self.lock().own.keys().cloned().collect()
    }

    /// The defaults.
    pub fn defaults(&self) -> MiddleboxSettings {
        self.lock().defaults.clone()
    }

    /// Records that the middlebox listens on `address`.
    pub fn add_listener(&self, address: SocketAddr) {
        let mut state = self.lock();
        if !state.listeners.contains(&address) {
            state.listeners.push(address);
        }
    }

    /// Where the middlebox listens.
    pub fn listeners(&self) -> Vec<SocketAddr> {
        self.lock().listeners.clone()
    }
}

/// What `owner`'s new mappings run now.
pub fn effective(lab: &Lab, owner: &Owner) -> MiddleboxSettings {
    lab.middlebox().effective(lab.sessions().locked(), owner)
}

/// Tells the viewers of `session` (the anonymous scope's, for `None`) which
/// settings its new mappings run ([`ServerEvent::MiddleboxChanged`]).
pub fn announce(lab: &Lab, settings: MiddleboxSettings, session: Option<SessionId>) {
    lab.tracker().emit(|at_us| ServerEvent::MiddleboxChanged {
        in_force_ms: settings.in_force_ms(),
        settings,
        session,
        at_us,
    });
}

/// Whose mapping a client's first bytes make it: the session its request
/// line's `session=` names, if the lab issued it; the anonymous scope
/// otherwise (no request line, no session, or one the lab refuses anyway).
pub fn owner_in(lab: &Lab, first_bytes: &[u8]) -> Owner {
    let Some(session) = session_in_request_line(first_bytes) else {
        return Owner::Anonymous;
    };
    let owner = Owner::Session(session);
    if lab.sessions().knows(&owner) {
        owner
    } else {
        Owner::Anonymous
    }
}

/// The `session=` of an HTTP request line (`GET /api/slow?session=s-1 HTTP/1.1`).
pub fn session_in_request_line(bytes: &[u8]) -> Option<SessionId> {
    let line = bytes.split(|b| *b == b'\n').next()?;
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_ascii_whitespace();
    let _method = words.next()?;
    let target = words.next()?;
    let query = target.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "session")
        .and_then(|(_, value)| SessionId::parse(&value).ok())
}

/// The lab's connection whose client address is `peer`, if it is open.
pub fn conn_of(lab: &Lab, peer: SocketAddr) -> Option<ConnId> {
    lab.tracker().conn_with_peer(peer)
}

/// The middlebox as `access` sees it: its owner's settings (the defaults for
/// the instructor).
pub fn view(lab: &Lab, access: &Access) -> MiddleboxView {
    let locked = lab.sessions().locked();
    let settings = match access {
        Access::All => lab.middlebox().defaults(),
        Access::Of(owner) => effective(lab, owner),
    };
    MiddleboxView {
        in_force_ms: settings.in_force_ms(),
        scale_words: settings.scale_words(),
        settings,
        probes_visible: Middlebox::probes_visible(),
        listeners: lab
            .middlebox()
            .listeners()
            .iter()
            .map(|a| a.to_string())
            .collect(),
        locked,
    }
}

/// Applies `patch` to `access`'s settings (the defaults for the instructor)
/// and tells its viewers ([`ServerEvent::MiddleboxChanged`]), or explains
/// what is wrong: a setting out of the preset's range (400), an unknown
/// session (403), the room locked (423).
pub fn change(
    lab: &Lab,
    access: &Access,
    patch: &MiddleboxPatch,
) -> Result<MiddleboxView, ApiError> {
    let bad = |body: ErrorBody| ApiError::bad_request(body.error, body.hint);
    // Announced in the order the changes take effect (`Lab::ordered_change`).
    let _order = lab.ordered_change();
    let (settings, session) = match access {
        Access::All => {
            let registry = lab.middlebox();
            let mut state = registry.lock();
            state.defaults = state.defaults.patched(patch).map_err(bad)?;
            (state.defaults.clone(), None)
        }
        Access::Of(owner) => {
            if lab.sessions().locked() {
                return Err(locked_error());
            }
            if let Owner::Session(id) = owner
                && !lab.sessions().knows(owner)
            {
                return Err(unknown_session(id));
            }
            let next = effective(lab, owner).patched(patch).map_err(bad)?;
            let registry = lab.middlebox();
            let mut state = registry.lock();
            // Forget the settings of sessions the lab has forgotten.
            state
                .own
                .retain(|o, _| *o == Owner::Anonymous || lab.sessions().knows(o));
            state.own.insert(owner.clone(), next.clone());
            (next, owner.session().cloned())
        }
    };
    announce(lab, settings, session);
    Ok(view(lab, access))
}

/// The `set_middlebox` control message: `None` when applied (the change is
/// announced to the owner's viewers, this one included), else an error
/// event for this viewer.
pub fn set_from_viewer(lab: &Lab, access: &Access, patch: &MiddleboxPatch) -> Option<ServerEvent> {
    match change(lab, access, patch) {
        Ok(_) => None,
        Err(error) => Some(ServerEvent::Error(error.body)),
    }
}

const EXAMPLE: &str = "/api/middlebox?session=s-…";

const HINT: &str = r#"send some of {"preset": "aws_nat", "idle_timeout_ms": 350000, "on_expiry": "rst", "probes_refresh": true, "scale": 100}; presets aws_nat, aws_nlb, azure_lb, gcp_nat, alb, custom; on_expiry rst, rst_either, rst_both, silent, fin"#;

/// `GET /api/middlebox[?session=S][&key=K]`: the caller's middlebox.
pub async fn get_middlebox(
    State(lab): State<Lab>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<MiddleboxView>, ApiError> {
    let params = Params::parse("/api/middlebox", query.as_deref(), &["key"], EXAMPLE)?;
    let access = crate::routes::access(&lab, &params, &headers)?;
    Ok(Json(view(&lab, &access)))
}

/// `PUT /api/middlebox[?session=S][&key=K]` with a [`MiddleboxPatch`]: changes
/// the caller's middlebox (the defaults, for the instructor).
pub async fn put_middlebox(
    State(lab): State<Lab>,
    ctx: Option<axum::Extension<crate::conn::RequestCtx>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<MiddleboxView>, ApiError> {
    let params = Params::parse("/api/middlebox", query.as_deref(), &["key"], EXAMPLE)?;
    let access = crate::routes::access(&lab, &params, &headers)?;
    crate::routes::may_configure(&access, ctx.as_ref().map(|axum::Extension(c)| &*c.conn))?;
    let body = body.map_err(|rejection| {
        ApiError::with_status(
            rejection.status(),
            format!(
                "the request body could not be read: {}",
                rejection.body_text()
            ),
            HINT,
        )
    })?;
    let patch = parse_patch(&body)?;
    crate::routes::within_change_rate(&lab, &access, "the middlebox")?;
    Ok(Json(change(&lab, &access, &patch)?))
}

/// Parses a patch body: a JSON object (empty: no change); unknown fields and
/// `null`s are refused.
pub fn parse_patch(body: &[u8]) -> Result<MiddleboxPatch, ApiError> {
    let text = body.trim_ascii();
    if text.is_empty() {
        return Ok(MiddleboxPatch::default());
    }
    if !text.starts_with(b"{") {
        return Err(ApiError::bad_request(
            "the middlebox body must be a JSON object",
            HINT,
        ));
    }
    serde_json::from_slice(text).map_err(|e| {
        ApiError::bad_request(format!("the middlebox body is not understood: {e}"), HINT)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_in_a_request_line_only() {
        let session = |bytes: &[u8]| session_in_request_line(bytes).map(|s| s.to_string());
        assert_eq!(
            session(b"GET /api/slow?ms=5000&id=b1-1&session=s-abc HTTP/1.1\r\nHost: x\r\n"),
            Some("s-abc".into())
        );
        assert_eq!(
            session(b"GET /api/slow?session=s-%61b HTTP/1.1\r\n"),
            Some("s-ab".into())
        );
        assert_eq!(session(b"GET /api/slow?ms=1 HTTP/1.1\r\n"), None);
        assert_eq!(session(b"GET / HTTP/1.1\r\nX: ?session=s-1\r\n"), None);
        assert_eq!(session(b"GET /x?session=bad%20id HTTP/1.1\r\n"), None);
        assert_eq!(session(b"\x16\x03\x01binary"), None);
        assert_eq!(session(b""), None);
    }

    #[test]
    fn patches_are_strict_json_objects() {
        assert_eq!(parse_patch(b"").unwrap(), MiddleboxPatch::default());
        assert_eq!(parse_patch(br#"{"scale": 10}"#).unwrap().scale, Some(10));
        for bad in [
            &b"[1]"[..],
            br#"{"scale": null}"#,
            br#"{"timeout": 1}"#,
            b"{",
        ] {
            let error = parse_patch(bad).unwrap_err();
            assert_eq!(error.status.as_u16(), 400);
            assert!(error.body.hint.contains("preset"));
        }
    }
}
