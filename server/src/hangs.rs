//! Requests held open by `/api/hang` until someone releases them.
//!
//! A held request keeps its TCP connection busy, so it occupies one of the
//! browser's six connection slots: the heart of the "six lanes" experiment.
//! Entries remove themselves when the request ends for any reason (released,
//! hang cap, client gone), so a closed tab leaves nothing behind.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use protocol::{ReleaseRequest, RequestId};
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::sessions::{Access, Owner};

/// One held request.
#[derive(Debug)]
struct Held {
    /// The page's tag (`id=` query parameter), for release by tag.
    tag: Option<String>,
    /// Whose it is: only that owner (or the instructor) may release it.
    owner: Owner,
    /// The client address it is charged to (`Conn::charged_ip`), when it
    /// came through the lab's accept loop.
    ip: Option<IpAddr>,
    /// Fired to let the request answer.
    release: oneshot::Sender<()>,
}

/// All held requests, capped.
#[derive(Debug)]
pub struct Hangs {
    /// At most this many held at once.
    cap: usize,
    /// At most this many held at once by one owner (a session, or the
    /// anonymous scope).
    per_session_cap: usize,
    /// At most this many held at once for one client address, whatever its
    /// sessions: one participant's many sessions cannot take the server's
    /// whole allowance.
    per_peer_cap: usize,
    /// Held requests by server request id.
    held: Arc<Mutex<HashMap<RequestId, Held>>>,
}

/// Proof that a request is held. Wait on it; dropping it removes the entry.
#[derive(Debug)]
pub struct HangTicket {
    /// Which request.
    request: RequestId,
    /// The table to remove it from.
    held: Arc<Mutex<HashMap<RequestId, Held>>>,
    /// Resolves when released.
    released: oneshot::Receiver<()>,
}

impl HangTicket {
    /// Resolves once the request is released.
    pub async fn released(&mut self) {
        // An error means the sender was dropped, which only happens when the
        // entry is removed: treat it as a release.
        let _ = (&mut self.released).await;
    }
}

impl Drop for HangTicket {
    fn drop(&mut self) {
        lock(&self.held).remove(&self.request);
    }
}

fn lock(held: &Mutex<HashMap<RequestId, Held>>) -> MutexGuard<'_, HashMap<RequestId, Held>> {
    held.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hangs {
    /// An empty table that holds at most `cap` requests, `per_session_cap`
    /// of them for any one session and `per_peer_cap` for any one client
    /// address.
    pub fn new(cap: usize, per_session_cap: usize, per_peer_cap: usize) -> Hangs {
        Hangs {
            cap,
            per_session_cap,
            per_peer_cap,
            held: Arc::default(),
        }
    }

    /// Holds `request`, charged to `owner` and the client address `ip`,
    /// until released; refuses past any cap.
    pub fn hold(
        &self,
        request: RequestId,
        tag: Option<String>,
        owner: Owner,
        ip: Option<IpAddr>,
    ) -> Result<HangTicket, ApiError> {
        let mut held = lock(&self.held);
        if held.len() >= self.cap {
            return Err(ApiError::over_capacity(
                format!(
                    "{} requests are already hanging, the server's cap",
                    self.cap
                ),
                "release some (POST /api/release) or wait for their hang cap",
            ));
        }
        let mine = held.values().filter(|h| h.owner == owner).count();
        if mine >= self.per_session_cap {
            return Err(ApiError::too_many(
                format!("{owner} already holds {mine} hanging requests, the cap per session"),
                "release some first; a burst needs no more than a few dozen",
            ));
        }
        if let Some(ip) = ip {
            let theirs = held.values().filter(|h| h.ip == Some(ip)).count();
            if theirs >= self.per_peer_cap {
                return Err(ApiError::too_many(
                    format!("{ip} already holds {theirs} hanging requests, the cap per address"),
                    "release some first, in any of your pages",
                ));
            }
            if crate::peers::over_busy_share(held.len(), self.cap, theirs, self.per_peer_cap) {
                return Err(ApiError::over_capacity(
                    format!(
                        "{} of the server's {} hanging requests are held; while it is this busy an address holding {} or more gets no more, and {ip} holds {theirs}",
                        held.len(),
                        self.cap,
                        crate::peers::busy_share(self.per_peer_cap)
                    ),
                    "release some first, in any of your pages: the rest is kept for participants who hold few",
                ));
            }
        }
        let (tx, rx) = oneshot::channel();
        held.insert(
            request,
            Held {
                tag,
                owner,
                ip,
                release: tx,
            },
        );
        Ok(HangTicket {
            request,
            held: self.held.clone(),
            released: rx,
        })
    }

    /// Releases the held requests `filter` selects (all of them when it is
    /// empty) among those `access` reaches, and says how many. The
    /// anonymous scope is the lab machine's (other machines need a session,
    /// `sessions::session_needed`), but the instructor's requests with the
    /// key and no session are in it too, from any machine: a caller in it
    /// (from `from`, its client host) reaches only the hangs made from the
    /// same host.
    pub fn release(&self, filter: &ReleaseRequest, access: &Access, from: Option<IpAddr>) -> usize {
        let same_machine = |h: &Held| match access {
            Access::Of(crate::sessions::Owner::Anonymous) => match (from, h.ip) {
                (Some(me), Some(theirs)) => crate::events::same_host(me, theirs),
                _ => true,
            },
            _ => true,
        };
        let mut held = lock(&self.held);
        let chosen: Vec<RequestId> = held
            .iter()
            .filter(|(id, h)| {
                access.reaches(&h.owner)
                    && same_machine(h)
                    && filter.request.is_none_or(|r| r == **id)
                    && filter.id.as_ref().is_none_or(|t| h.tag.as_ref() == Some(t))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &chosen {
            if let Some(h) = held.remove(id) {
                let _ = h.release.send(());
            }
        }
        chosen.len()
    }

    /// How many requests are held right now.
    pub fn len(&self) -> usize {
        lock(&self.held).len()
    }

    /// Whether no request is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn release_by_id_by_tag_and_all() {
        let hangs = Hangs::new(10, 10, 10);
        let mut a = hangs
            .hold(RequestId(1), Some("a".into()), Owner::Anonymous, None)
            .unwrap();
        let mut b = hangs
            .hold(RequestId(2), Some("b".into()), Owner::Anonymous, None)
            .unwrap();
        let _c = hangs
            .hold(RequestId(3), None, Owner::Anonymous, None)
            .unwrap();
        let by_id = ReleaseRequest {
            request: Some(RequestId(1)),
            id: None,
        };
        assert_eq!(hangs.release(&by_id, &Access::All, None), 1);
        a.released().await;
        let by_tag = ReleaseRequest {
            request: None,
            id: Some("b".into()),
        };
        assert_eq!(hangs.release(&by_tag, &Access::All, None), 1);
        b.released().await;
        assert_eq!(
            hangs.release(&ReleaseRequest::default(), &Access::All, None),
            1
        );
        assert!(hangs.is_empty());
    }

    #[test]
    fn cap_refuses_and_dropping_a_ticket_frees_its_place() {
        let hangs = Hangs::new(1, 1, 1);
        let first = hangs
            .hold(RequestId(1), None, Owner::Anonymous, None)
            .unwrap();
        let err = hangs
            .hold(RequestId(2), None, Owner::Anonymous, None)
            .unwrap_err();
        assert_eq!(err.status.as_u16(), 503);
        drop(first);
        assert!(
            hangs
                .hold(RequestId(2), None, Owner::Anonymous, None)
                .is_ok()
        );
    }

    #[test]
    fn one_address_has_a_share_whatever_its_sessions() {
        let hangs = Hangs::new(10, 10, 2);
        let here = Some(IpAddr::from([10, 0, 0, 1]));
        let there = Some(IpAddr::from([10, 0, 0, 2]));
        let session = |n: &str| Owner::Session(protocol::SessionId::parse(n).unwrap());
        let _a = hangs.hold(RequestId(1), None, session("a"), here).unwrap();
        let _b = hangs.hold(RequestId(2), None, session("b"), here).unwrap();
        let refused = hangs
            .hold(RequestId(3), None, session("c"), here)
            .unwrap_err();
        assert_eq!(refused.status.as_u16(), 429);
        assert!(
            refused.body.error.contains("10.0.0.1"),
            "{:?}",
            refused.body
        );
        assert!(refused.body.error.contains("per address"));
        assert!(hangs.hold(RequestId(4), None, session("c"), there).is_ok());
    }

    #[test]
    fn sessions_release_only_their_own_and_have_their_own_cap() {
        let hangs = Hangs::new(10, 2, 10);
        let a = Owner::Session(protocol::SessionId::parse("a").unwrap());
        let b = Owner::Session(protocol::SessionId::parse("b").unwrap());
        let _a1 = hangs.hold(RequestId(1), None, a.clone(), None).unwrap();
        let _a2 = hangs.hold(RequestId(2), None, a.clone(), None).unwrap();
        let refused = hangs.hold(RequestId(3), None, a.clone(), None).unwrap_err();
        assert!(refused.body.error.contains("per session"));
        let _b1 = hangs.hold(RequestId(4), None, b.clone(), None).unwrap();
        let all = ReleaseRequest::default();
        assert_eq!(
            hangs.release(&all, &Access::Of(b.clone()), None),
            1,
            "b releases only its own"
        );
        let a_by_id = ReleaseRequest {
            request: Some(RequestId(1)),
            id: None,
        };
        assert_eq!(
            hangs.release(&a_by_id, &Access::Of(b.clone()), None),
            0,
            "b cannot release a's request"
        );
        assert_eq!(hangs.len(), 2);
        assert_eq!(
            hangs.release(&all, &Access::All, None),
            2,
            "the instructor releases all"
        );
    }

    #[test]
    fn without_a_session_a_caller_releases_only_the_hangs_made_from_its_machine() {
        let hangs = Hangs::new(10, 10, 10);
        let alice: IpAddr = [10, 0, 0, 1].into();
        let bob: IpAddr = [10, 0, 0, 2].into();
        let _a = hangs
            .hold(RequestId(1), None, Owner::Anonymous, Some(alice))
            .unwrap();
        let _b = hangs
            .hold(RequestId(2), None, Owner::Anonymous, Some(bob))
            .unwrap();
        let all = ReleaseRequest::default();
        let anonymous = Access::Of(Owner::Anonymous);
        assert_eq!(hangs.release(&all, &anonymous, Some(bob)), 1, "Bob's own");
        assert_eq!(
            hangs.release(&all, &anonymous, Some(bob)),
            0,
            "never Alice's"
        );
        assert_eq!(hangs.len(), 1);
        assert_eq!(
            hangs.release(&all, &Access::All, Some(bob)),
            1,
            "the instructor's key"
        );
    }
}
