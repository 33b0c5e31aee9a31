//! A connection's copy of its owner's policy, read without a lock.
//!
//! Every request reads its connection's policy twice (its hang timeout when
//! it starts, the `Keep-Alive` answer when it is answered). Behind the
//! connection's mutex that was four locked instructions a request, of the
//! 45 the lab executes more than plain `axum::serve` (bench figure 1,
//! `causes.md`). The copy here is a sequence lock: readers load plain
//! words and check that no write overlapped; the one writer at a time is
//! whoever holds the connection's view (`Conn::policy`'s slow path).
//!
//! A copy is fresh while nothing that could change it has happened since it
//! was written: no scope's view changed ([`views_changed`], bumped by
//! `Scope::publish` after the new view is in its channel) and the
//! connection did not change owner (its view generation). Either moving
//! sends the reader to the channel, exactly where it used to look whenever
//! the channel's version moved.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use protocol::{ServerPolicy, TcpKeepalive};

/// How many times any scope's view changed, process-wide (a new policy,
/// or a page gone). Process-wide rather than per lab: a change elsewhere
/// only sends a connection to its channel once more.
static VIEWS_CHANGED: AtomicU64 = AtomicU64::new(0);

/// Read before a copy is checked or written.
pub fn views_changed() -> u64 {
    VIEWS_CHANGED.load(Ordering::Acquire)
}

/// A scope's view changed: called after the new view is in its channel.
pub(super) fn note_view_changed() {
    VIEWS_CHANGED.fetch_add(1, Ordering::Release);
}

/// Word 0's flags.
const VALID: u64 = 1;
const KEEP_ALIVE: u64 = 1 << 1;
const ADVERTISE: u64 = 1 << 2;
const HAS_MAX_REQUESTS: u64 = 1 << 3;
const HAS_HANG_TIMEOUT: u64 = 1 << 4;
const HAS_TCP_KEEPALIVE: u64 = 1 << 5;

/// The words of one copy: flags and `max_requests` (high half), idle
/// timeout, hang timeout, TCP keep-alive (idle, interval in the high half),
/// the [`views_changed`] count and the connection's view generation it was
/// read at.
type Words = [u64; 6];

/// A policy copied into words, with what it was read at.
#[derive(Debug, Default)]
pub struct PolicyCopy {
    /// Odd while a write is in progress; moves on with every write.
    seq: AtomicU32,
    /// The copy ([`Words`]); all zero (not valid) until the first write.
    words: [AtomicU64; 6],
}

impl PolicyCopy {
    /// The copied policy, if it was read at `changed` and `generation` and
    /// no write overlapped this read.
    pub fn read(&self, changed: u64, generation: u32) -> Option<ServerPolicy> {
        let before = self.seq.load(Ordering::Acquire);
        if before & 1 == 1 {
            return None;
        }
        let words: Words = std::array::from_fn(|i| self.words[i].load(Ordering::Relaxed));
        fence(Ordering::Acquire);
        if self.seq.load(Ordering::Relaxed) != before {
            return None;
        }
        (words[4] == changed && words[5] == u64::from(generation))
            .then(|| decode(&words))
            .flatten()
    }

    /// Copies `policy`, read at `changed` and `generation`. Writers must
    /// not overlap (the connection's view lock orders them).
    pub fn write(&self, policy: &ServerPolicy, changed: u64, generation: u32) {
        let words = encode(policy, changed, generation);
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        for (slot, word) in self.words.iter().zip(words) {
            slot.store(word, Ordering::Relaxed);
        }
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }
}

fn encode(policy: &ServerPolicy, changed: u64, generation: u32) -> Words {
    // Every field named: a field added to the policy fails to compile here
    // until it is copied too.
    let ServerPolicy {
        keep_alive,
        idle_timeout_ms,
        max_requests,
        advertise_keep_alive,
        hang_timeout_ms,
        tcp_keepalive,
    } = *policy;
    let mut flags = VALID;
    if keep_alive {
        flags |= KEEP_ALIVE;
    }
    if advertise_keep_alive {
        flags |= ADVERTISE;
    }
    if max_requests.is_some() {
        flags |= HAS_MAX_REQUESTS;
    }
    if hang_timeout_ms.is_some() {
        flags |= HAS_HANG_TIMEOUT;
    }
    if tcp_keepalive.is_some() {
        flags |= HAS_TCP_KEEPALIVE;
    }
    let tcp = tcp_keepalive.map_or(0, |k| u64::from(k.idle_s) | (u64::from(k.interval_s) << 32));
    [
        flags | (u64::from(max_requests.unwrap_or(0)) << 32),
        idle_timeout_ms,
        hang_timeout_ms.unwrap_or(0),
        tcp,
        changed,
        u64::from(generation),
    ]
}

fn decode(words: &Words) -> Option<ServerPolicy> {
    let flags = words[0];
    if flags & VALID == 0 {
        return None;
    }
    let high = |word: u64| u32::try_from(word >> 32).unwrap_or(u32::MAX);
    let low = |word: u64| u32::try_from(word & u64::from(u32::MAX)).unwrap_or(u32::MAX);
    Some(ServerPolicy {
        keep_alive: flags & KEEP_ALIVE != 0,
        idle_timeout_ms: words[1],
        max_requests: (flags & HAS_MAX_REQUESTS != 0).then(|| high(flags)),
        advertise_keep_alive: flags & ADVERTISE != 0,
        hang_timeout_ms: (flags & HAS_HANG_TIMEOUT != 0).then_some(words[2]),
        tcp_keepalive: (flags & HAS_TCP_KEEPALIVE != 0).then(|| TcpKeepalive {
            idle_s: low(words[3]),
            interval_s: high(words[3]),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn policies() -> Vec<ServerPolicy> {
        let mut all = vec![ServerPolicy::default()];
        all.push(ServerPolicy {
            keep_alive: false,
            idle_timeout_ms: u64::MAX,
            max_requests: Some(u32::MAX),
            advertise_keep_alive: false,
            hang_timeout_ms: Some(u64::MAX),
            tcp_keepalive: Some(TcpKeepalive {
                idle_s: u32::MAX,
                interval_s: 1,
            }),
        });
        all.push(ServerPolicy {
            keep_alive: true,
            idle_timeout_ms: 0,
            max_requests: Some(0),
            advertise_keep_alive: true,
            hang_timeout_ms: Some(0),
            tcp_keepalive: Some(TcpKeepalive {
                idle_s: 0,
                interval_s: u32::MAX,
            }),
        });
        all.push(ServerPolicy {
            max_requests: None,
            hang_timeout_ms: None,
            tcp_keepalive: None,
            ..ServerPolicy::default()
        });
        all
    }

    #[test]
    fn a_copy_reads_back_as_written() {
        let copy = PolicyCopy::default();
        assert_eq!(copy.read(0, 0), None, "nothing written yet");
        for (i, policy) in policies().into_iter().enumerate() {
            let generation = u32::try_from(i).expect("few");
            copy.write(&policy, 7, generation);
            assert_eq!(copy.read(7, generation), Some(policy));
        }
    }

    #[test]
    fn a_copy_is_stale_once_a_view_or_the_owner_changed() {
        let copy = PolicyCopy::default();
        copy.write(&ServerPolicy::default(), 3, 1);
        assert_eq!(copy.read(4, 1), None, "a scope's view changed since");
        assert_eq!(copy.read(3, 2), None, "the connection changed owner since");
        assert!(copy.read(3, 1).is_some());
    }

    #[test]
    fn the_views_changed_count_moves_when_noted() {
        let before = views_changed();
        note_view_changed();
        assert!(views_changed() > before);
    }

    /// Readers racing a writer see one whole policy or none, never a mix.
    #[test]
    fn readers_never_see_half_a_write() {
        let a = ServerPolicy::default();
        let b = policies()[1].clone();
        let copy = Arc::new(PolicyCopy::default());
        copy.write(&a, 1, 1);
        let (a, b) = (Arc::new(a), Arc::new(b));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (copy, stop, a, b) = (copy.clone(), stop.clone(), a.clone(), b.clone());
                std::thread::spawn(move || {
                    // Until the writer has stopped, and then until one
                    // read has come through whole (none can overlap a
                    // write then).
                    let mut seen = 0u32;
                    while !stop.load(Ordering::Acquire) || seen == 0 {
                        if let Some(read) = copy.read(1, 1) {
                            assert!(read == *a || read == *b, "a torn read: {read:?}");
                            seen += 1;
                        }
                    }
                    seen
                })
            })
            .collect();
        for i in 0..100_000 {
            copy.write(if i % 2 == 0 { &b } else { &a }, 1, 1);
        }
        stop.store(true, Ordering::Release);
        for reader in readers {
            assert!(reader.join().expect("no reader panicked") > 0);
        }
    }
}
