//! Rate limits on what a page may send over its events socket, kept per
//! session (a session's sockets share them) in the registry, and per socket
//! for the instructor's. Token buckets.

use std::time::Instant;

use crate::events::{
    CONFIG_BURST, CONFIG_PER_SECOND, PRESENCE_BURST, PRESENCE_PER_SECOND, RELEASE_BURST,
    RELEASES_PER_SECOND, REPORT_BURST, REPORTS_PER_SECOND,
};

/// Which limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `set_config` and `set_middlebox`.
    Changes,
    /// `lesson_report`.
    Reports,
    /// A viewer of the session opening or closing, told to the instructor.
    Presence,
    /// `release` over the events socket.
    Releases,
}

/// A token bucket: how many messages of one kind may be sent.
#[derive(Debug)]
struct Bucket {
    /// Tokens left.
    tokens: f64,
    /// When they were counted.
    at: Instant,
    /// Most tokens (the burst).
    burst: f64,
    /// Tokens earned per second.
    per_second: f64,
}

/// One sender's buckets.
#[derive(Debug)]
pub struct Buckets {
    /// `set_config` and `set_middlebox`.
    changes: Bucket,
    /// `lesson_report`.
    reports: Bucket,
    /// Viewers opening and closing.
    presence: Bucket,
    /// `release` messages.
    releases: Bucket,
}

/// Which limit a message was over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// Its session's own.
    Session,
    /// Its address's, which every session of that address shares.
    Address,
    /// The instructor's socket's own (the instructor holds no session).
    Socket,
}

/// How many sessions' worth of reports, settings changes and releases one
/// address may send, all its sessions together: a participant's tabs and browsers,
/// the lab's own machine running several pages, or a room behind one NAT
/// (320 reports at once, then 160 a second; as many changes, each lesson
/// making two or three at its start). Reports past it are dropped, changes
/// refused.
pub const PER_ADDRESS: f64 = 32.0;

/// The same for presence, which past its limit is told a moment later, not
/// lost: eight sessions' worth.
pub const PRESENCE_PER_ADDRESS: f64 = 8.0;

impl Buckets {
    /// Full buckets.
    pub fn new() -> Buckets {
        Buckets::scaled(1.0)
    }

    /// Full buckets `factor` times a session's, in burst and in rate.
    pub fn scaled(factor: f64) -> Buckets {
        Buckets::scaled_each(factor, factor)
    }

    /// One address's: [`PER_ADDRESS`] for reports, changes and releases,
    /// [`PRESENCE_PER_ADDRESS`] for presence.
    pub fn per_address() -> Buckets {
        Buckets::scaled_each(PER_ADDRESS, PRESENCE_PER_ADDRESS)
    }

    fn scaled_each(factor: f64, presence: f64) -> Buckets {
        Buckets {
            changes: Bucket::new(CONFIG_BURST * factor, CONFIG_PER_SECOND * factor),
            reports: Bucket::new(REPORT_BURST * factor, REPORTS_PER_SECOND * factor),
            presence: Bucket::new(PRESENCE_BURST * presence, PRESENCE_PER_SECOND * presence),
            releases: Bucket::new(RELEASE_BURST * factor, RELEASES_PER_SECOND * factor),
        }
    }
}

impl Bucket {
    fn new(burst: f64, per_second: f64) -> Bucket {
        Bucket {
            tokens: burst,
            at: Instant::now(),
            burst,
            per_second,
        }
    }

    /// Gives back a token just taken for a message that was then refused
    /// by another limit: it changed nothing, so it spends nothing here.
    fn refund(&mut self) {
        self.tokens = (self.tokens + 1.0).min(self.burst);
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let earned = now.duration_since(self.at).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + earned).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Buckets {
    /// Takes one token of `kind`, or says it is over its rate.
    pub fn take(&mut self, kind: Kind) -> bool {
        self.bucket(kind).take()
    }

    /// Gives back a token of `kind` just taken (see [`Bucket::refund`]).
    pub fn refund(&mut self, kind: Kind) {
        self.bucket(kind).refund();
    }

    fn bucket(&mut self, kind: Kind) -> &mut Bucket {
        match kind {
            Kind::Changes => &mut self.changes,
            Kind::Reports => &mut self.reports,
            Kind::Presence => &mut self.presence,
            Kind::Releases => &mut self.releases,
        }
    }
}

impl Default for Buckets {
    fn default() -> Buckets {
        Buckets::new()
    }
}
