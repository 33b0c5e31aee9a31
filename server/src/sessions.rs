//! Per-session accounting: how many requests each page load has in flight.
//!
//! A session is one page load (`session=` on its requests). The cap keeps one
//! participant of a workshop from starving the others; the entry of a session
//! disappears when its last request ends, so closed tabs leave nothing behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use protocol::SessionId;

use crate::error::ApiError;

/// In-flight request counts, by session.
#[derive(Debug)]
pub struct Sessions {
    /// Most requests one session may have in flight.
    cap: usize,
    /// Sessions with at least one request in flight.
    in_flight: Arc<Mutex<HashMap<SessionId, usize>>>,
}

/// One request counted against its session; dropping it uncounts it.
#[derive(Debug)]
pub struct SessionPermit {
    /// Whose.
    session: SessionId,
    /// The table to decrement.
    in_flight: Arc<Mutex<HashMap<SessionId, usize>>>,
}

impl Drop for SessionPermit {
    fn drop(&mut self) {
        let mut table = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = table.get_mut(&self.session) {
            *count -= 1;
            if *count == 0 {
                table.remove(&self.session);
            }
        }
    }
}

impl Sessions {
    /// An empty table with a per-session cap.
    pub fn new(cap: usize) -> Sessions {
        Sessions {
            cap,
            in_flight: Arc::default(),
        }
    }

    /// Counts one more request for `session`, or refuses past the cap.
    pub fn enter(&self, session: &SessionId) -> Result<SessionPermit, ApiError> {
        let mut table = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let count = table.entry(session.clone()).or_insert(0);
        if *count >= self.cap {
            return Err(ApiError::over_capacity(
                format!(
                    "session `{session}` already has {} requests in flight, the server's cap",
                    self.cap
                ),
                "wait for some to finish or release hanging ones, then send fewer at once",
            ));
        }
        *count += 1;
        Ok(SessionPermit {
            session: session.clone(),
            in_flight: self.in_flight.clone(),
        })
    }

    /// Requests `session` has in flight.
    pub fn in_flight(&self, session: &SessionId) -> usize {
        let table = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        table.get(session).copied().unwrap_or(0)
    }

    /// Sessions with anything in flight (0 once every tab is gone).
    pub fn active(&self) -> usize {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_session_and_forgets_idle_sessions() {
        let sessions = Sessions::new(2);
        let a = SessionId::parse("a").unwrap();
        let b = SessionId::parse("b").unwrap();
        let a1 = sessions.enter(&a).unwrap();
        let _a2 = sessions.enter(&a).unwrap();
        assert_eq!(sessions.enter(&a).unwrap_err().status.as_u16(), 503);
        let b1 = sessions.enter(&b).unwrap();
        drop(a1);
        assert_eq!(sessions.in_flight(&a), 1);
        assert!(
            sessions.enter(&a).is_ok(),
            "a freed place can be taken again"
        );
        drop(b1);
        assert_eq!(sessions.in_flight(&b), 0);
        assert_eq!(sessions.active(), 1, "b's entry is gone");
    }
}
