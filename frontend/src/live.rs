//! The live lab's rules for both participant pages, without a framework:
//! where the lab's other ports listen, firing a burst, following the room's
//! lesson, and the projector mode (used by `crate::page` and the pages).

use protocol::SessionId;

use crate::frames::FrameDispatch;
use crate::services::burst;
use crate::settings::{BurstSettings, OtherPorts, port_of, resolve_origin};
use crate::state::LabState;

/// Asks the server where the lab's middlebox and HTTPS ports listen, and
/// whether its host can see TCP keep-alive probes (`GET /api/middlebox`,
/// `GET /api/tls`); the session's middlebox settings go to `frames` (a
/// lesson that changes them puts them back).
pub async fn other_ports(session: SessionId, frames: FrameDispatch) -> (OtherPorts, Option<bool>) {
    let path = format!("/api/middlebox?session={session}");
    let view = crate::services::session::json::<protocol::MiddleboxView>("GET", &path, None).await;
    let probes_visible = view.as_ref().ok().map(|v| v.probes_visible);
    if let Ok(view) = &view {
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
    let tls = crate::services::session::json::<protocol::TlsListeners>("GET", "/api/tls", None)
        .await
        .unwrap_or_default();
    let ports = OtherPorts {
        middlebox,
        tls_h2: tls.h2.iter().find_map(|l| port_of(l)),
        tls_h1: tls.http1_only.iter().find_map(|l| port_of(l)),
        tls_h2_limited: tls.h2_limited.iter().find_map(|l| port_of(l)),
    };
    (ports, probes_visible)
}

/// Fires a burst from this page: its run id, or why not. `allocated` is
/// the last run id given out: ids are allocated at fire time, since a
/// queued `RunStarted` is applied at the next flush, and a second click
/// before it must not reuse the id.
pub fn fire(
    state: &LabState,
    ports: OtherPorts,
    allocated: &mut u32,
    settings: BurstSettings,
    frames: &FrameDispatch,
) -> Result<u32, String> {
    // The server's listeners arrive with its first snapshot; until then a
    // second-port target would look absent.
    if state.config.is_none() {
        return Err("the page has not heard from the server yet; try again in a moment".into());
    }
    let origin = burst::page_origin()
        .and_then(|page| resolve_origin(settings.target, &page, &state.listeners, ports))?;
    *allocated = (*allocated).max(state.runs_fired) + 1;
    burst::fire(
        settings,
        *allocated,
        origin,
        state.session.as_str(),
        frames.clone(),
    );
    Ok(*allocated)
}

/// The lab's HTTPS origins on this page's host, for a lesson over TLS to
/// link.
pub fn https_origins(ports: Option<OtherPorts>) -> Vec<String> {
    burst::page_origin()
        .ok()
        .map(|page| {
            let ports = ports.unwrap_or_default();
            [ports.tls_h2, ports.tls_h1, ports.tls_h2_limited]
                .into_iter()
                .flatten()
                .map(|port| format!("https://{}:{port}", page.host))
                .collect()
        })
        .unwrap_or_default()
}

/// The room's lesson as last seen: `None` until the page is live.
pub type RoomSeen = Option<Option<(String, u64)>>;

/// The lesson the instructor moved the room to, if `state` says it moved
/// since `seen`. The room's lesson at the page's first snapshot counts as a
/// move only when `follow_at_start` (a late joiner is taken to it; a
/// learner who came from the other participant page, with their session,
/// stays where they went). A later move counts every time, to the same
/// lesson too: it gathers the room.
/// `room` is the room's lesson with its move count; `live`, whether the
/// page has had the server's first snapshot.
pub fn room_moved(
    seen: &mut RoomSeen,
    room: &Option<(String, u64)>,
    live: bool,
    follow_at_start: bool,
) -> Option<String> {
    if !live {
        return None;
    }
    let moved = match &*seen {
        None => follow_at_start,
        Some(was) if was == room => return None,
        Some(_) => true,
    };
    *seen = Some(room.clone());
    moved
        .then(|| room.as_ref().map(|(id, _)| id.clone()))
        .flatten()
}

/// Whether this page is drawn large, for the back of the room: kept for
/// the tab (`sessionStorage`), so the other participant page opens the same.
pub fn projector_at_start() -> bool {
    crate::services::session::tab_storage().and_then(|s| s.get_item(PROJECTOR).ok().flatten())
        == Some("1".into())
}

/// Remembers the projector mode for the tab.
pub fn remember_projector(on: bool) {
    if let Some(s) = crate::services::session::tab_storage() {
        let _ = if on {
            s.set_item(PROJECTOR, "1")
        } else {
            s.remove_item(PROJECTOR)
        };
    }
}

const PROJECTOR: &str = "keepalive-lab.projector";
