//! The agent's bookkeeping: sockets per host and port (its *name*), free
//! lists, the queue of requests waiting for a socket. No I/O: the agent asks
//! the pool what to do and carries it out, so every decision is here, with
//! the lines of Node's `lib/_http_agent.js` (v24) it follows.
//!
//! Node's fields and ours:
//!
//! | Node (`Agent`)             | here                                  |
//! |----------------------------|---------------------------------------|
//! | `sockets[name]`            | `active[name]` (in use or connecting)  |
//! | `freeSockets[name]`        | `free[name]`, oldest first            |
//! | `requests[name]`           | `queue[name]`, names in first-use order |
//! | `totalSocketCount`         | `total` (every open socket)           |

use std::collections::{HashMap, VecDeque};

use protocol::{Scheduling, SocketCloseReason};

/// A socket's number within a run.
pub type SocketId = u32;

/// The limits the pool enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `keepAlive`.
    pub keep_alive: bool,
    /// `maxSockets` per name; `None` is `Infinity`.
    pub max_sockets: Option<usize>,
    /// `maxTotalSockets`; `None` is `Infinity`.
    pub max_total_sockets: Option<usize>,
    /// `maxFreeSockets` per name.
    pub max_free_sockets: usize,
    /// `scheduling`.
    pub scheduling: Scheduling,
    /// Not Node's: the lab's ceiling on open sockets, whatever the options
    /// say (`maxSockets: Infinity` must not mean unbounded in a shared
    /// room). Requests past it wait in the queue like requests past
    /// `maxSockets`.
    pub ceiling: Option<usize>,
}

/// Where a new request goes (`Agent.prototype.addRequest`).
#[derive(Debug, PartialEq, Eq)]
pub enum Placement<J> {
    /// On a free socket, reused.
    Reuse(SocketId, J),
    /// On a new socket (the caller connects it).
    Create(SocketId, J),
    /// Into the queue; `queue_len` requests now wait for this name.
    Queued {
        /// Requests waiting for this name, this one included.
        queue_len: usize,
    },
}

/// What happens to a socket its request released (the agent's `'free'`
/// handler).
#[derive(Debug, PartialEq, Eq)]
pub enum Release<J> {
    /// Handed to the oldest waiting request of its name.
    Next(J),
    /// Kept in the free list.
    Pooled {
        /// Free sockets for this name now.
        free: usize,
    },
    /// To be destroyed.
    Destroy(SocketCloseReason),
}

/// A socket the pool wants created for a waiting request (after another one
/// closed or went free), as `removeSocket` does.
pub type Spawn<J> = Option<(String, SocketId, J)>;

#[derive(Debug)]
struct Entry {
    /// Its name.
    name: String,
    /// In the free list.
    free: bool,
}

/// The pool. See the module docs.
#[derive(Debug)]
pub struct Pool<J> {
    limits: Limits,
    next_socket: SocketId,
    sockets: HashMap<SocketId, Entry>,
    active: HashMap<String, Vec<SocketId>>,
    free: HashMap<String, VecDeque<SocketId>>,
    /// Names in the order they first queued (JavaScript keeps object keys
    /// in insertion order, which `removeSocket` walks).
    queue: Vec<(String, VecDeque<J>)>,
    total: usize,
}

impl<J> Pool<J> {
    /// An empty pool.
    pub fn new(limits: Limits) -> Pool<J> {
        Pool {
            limits,
            next_socket: 1,
            sockets: HashMap::new(),
            active: HashMap::new(),
            free: HashMap::new(),
            queue: Vec::new(),
            total: 0,
        }
    }

    /// Open sockets (Node's `totalSocketCount`).
    pub fn total(&self) -> usize {
        self.total
    }

    /// Sockets ever created.
    pub fn created(&self) -> u32 {
        self.next_socket - 1
    }

    /// Free sockets of `name`.
    pub fn free_len(&self, name: &str) -> usize {
        self.free.get(name).map_or(0, VecDeque::len)
    }

    /// The name `socket` belongs to.
    pub fn name_of(&self, socket: SocketId) -> Option<&str> {
        self.sockets.get(&socket).map(|e| e.name.as_str())
    }

    /// Whether `socket` is in a free list.
    pub fn is_free(&self, socket: SocketId) -> bool {
        self.sockets.get(&socket).is_some_and(|e| e.free)
    }

    /// Requests waiting, all names together.
    pub fn waiting(&self) -> usize {
        self.queue.iter().map(|(_, q)| q.len()).sum()
    }

    /// Every waiting request, removed (the agent is being destroyed).
    pub fn drain_waiting(&mut self) -> Vec<J> {
        self.queue.drain(..).flat_map(|(_, q)| q).collect()
    }

    fn active_len(&self, name: &str) -> usize {
        self.active.get(name).map_or(0, Vec::len)
    }

    fn new_socket(&mut self, name: &str) -> SocketId {
        let id = self.next_socket;
        self.next_socket += 1;
        self.sockets.insert(
            id,
            Entry {
                name: name.to_owned(),
                free: false,
            },
        );
        self.active.entry(name.to_owned()).or_default().push(id);
        // `createSocket`'s `oncreate` counts it at once: `net.createConnection`
        // returns the socket synchronously, before it connects.
        self.total += 1;
        id
    }

    fn under_ceiling(&self) -> bool {
        self.limits.ceiling.is_none_or(|c| self.total < c)
    }

    /// `addRequest`: a free socket if there is one (`lifo` pops the most
    /// recently freed, `fifo` shifts the oldest); otherwise a new socket when
    /// `sockLen < maxSockets && totalSocketCount < maxTotalSockets` (`sockLen`
    /// counting this name's free and active sockets); otherwise the queue.
    pub fn add(&mut self, name: &str, job: J) -> Placement<J> {
        let reused = self
            .free
            .get_mut(name)
            .and_then(|list| match self.limits.scheduling {
                Scheduling::Fifo => list.pop_front(),
                Scheduling::Lifo => list.pop_back(),
            });
        if self.free.get(name).is_some_and(VecDeque::is_empty) {
            self.free.remove(name);
        }
        if let Some(id) = reused {
            if let Some(entry) = self.sockets.get_mut(&id) {
                entry.free = false;
            }
            self.active.entry(name.to_owned()).or_default().push(id);
            return Placement::Reuse(id, job);
        }
        let sock_len = self.free_len(name) + self.active_len(name);
        let under_max = self.limits.max_sockets.is_none_or(|m| sock_len < m);
        let under_total = self.limits.max_total_sockets.is_none_or(|m| self.total < m);
        if under_max && under_total && self.under_ceiling() {
            let id = self.new_socket(name);
            return Placement::Create(id, job);
        }
        let queue = match self.queue.iter().position(|(n, _)| n == name) {
            Some(at) => &mut self.queue[at].1,
            None => {
                self.queue.push((name.to_owned(), VecDeque::new()));
                &mut self.queue.last_mut().expect("just pushed").1
            }
        };
        queue.push_back(job);
        Placement::Queued {
            queue_len: queue.len(),
        }
    }

    fn shift_waiting(&mut self, name: &str) -> Option<J> {
        let at = self.queue.iter().position(|(n, _)| n == name)?;
        let job = self.queue[at].1.pop_front();
        if self.queue[at].1.is_empty() {
            self.queue.remove(at);
        }
        job
    }

    /// The agent's `'free'` handler, for a socket whose request ended with
    /// both sides allowing reuse (`req.shouldKeepAlive`; otherwise the
    /// socket is destroyed without `'free'` and [`Pool::closed`] follows):
    ///
    /// 1. a request waiting for this name takes the socket at once, **even
    ///    with `keepAlive: false`** (that check comes after);
    /// 2. without `keepAlive`, the socket is destroyed;
    /// 3. it is destroyed when `totalSocketCount > maxTotalSockets`, `count >
    ///    maxSockets` (this name's free and active sockets), `freeLen >=
    ///    maxFreeSockets`, or `keepSocketAlive` refuses it (`keep_socket_alive`,
    ///    called last as Node's `||` chain does);
    /// 4. otherwise it joins the end of the free list, and `removeSocket`
    ///    runs for it (which may start a socket for another name's waiting
    ///    request).
    pub fn released(
        &mut self,
        socket: SocketId,
        keep_socket_alive: impl FnOnce() -> bool,
    ) -> (Release<J>, Spawn<J>) {
        let Some(name) = self.sockets.get(&socket).map(|e| e.name.clone()) else {
            return (Release::Destroy(SocketCloseReason::AgentStopped), None);
        };
        if let Some(job) = self.shift_waiting(&name) {
            return (Release::Next(job), None);
        }
        if !self.limits.keep_alive {
            return (Release::Destroy(SocketCloseReason::AgentKeepAliveOff), None);
        }
        let free_len = self.free_len(&name);
        let count = free_len + self.active_len(&name);
        let reason = if self
            .limits
            .max_total_sockets
            .is_some_and(|m| self.total > m)
        {
            Some(SocketCloseReason::MaxTotalSockets)
        } else if self.limits.max_sockets.is_some_and(|m| count > m) {
            Some(SocketCloseReason::MaxSockets)
        } else if free_len >= self.limits.max_free_sockets {
            Some(SocketCloseReason::MaxFreeSockets)
        } else if !keep_socket_alive() {
            Some(SocketCloseReason::KeepAliveHint)
        } else {
            None
        };
        if let Some(reason) = reason {
            return (Release::Destroy(reason), None);
        }
        if let Some(list) = self.active.get_mut(&name) {
            list.retain(|s| *s != socket);
        }
        if let Some(entry) = self.sockets.get_mut(&socket) {
            entry.free = true;
        }
        let list = self.free.entry(name.clone()).or_default();
        list.push_back(socket);
        let free = list.len();
        (Release::Pooled { free }, self.after_remove(&name))
    }

    /// Takes a socket out of its free list because it is going away (its
    /// idle timeout, the server's FIN, an error). `false`: it is not free
    /// any more (a request has just been given it and is on its way), so the
    /// caller must serve that request instead.
    pub fn take_free(&mut self, socket: SocketId) -> bool {
        let Some(entry) = self.sockets.get_mut(&socket) else {
            return false;
        };
        if !entry.free {
            return false;
        }
        entry.free = false;
        if let Some(list) = self.free.get_mut(&entry.name) {
            list.retain(|s| *s != socket);
            if list.is_empty() {
                self.free.remove(&entry.name);
            }
        }
        true
    }

    /// A socket closed (Node's socket `'close'` → `totalSocketCount--` and
    /// `removeSocket`, "the only place where sockets get removed"). A request
    /// waiting for the same name gets a new socket; failing that, the first
    /// waiting name **with no active socket** does (Node's loop stops at the
    /// first name that has one; its TODO says this is not FIFO across names).
    pub fn closed(&mut self, socket: SocketId) -> Spawn<J> {
        let entry = self.sockets.remove(&socket)?;
        self.total -= 1;
        if let Some(list) = self.active.get_mut(&entry.name) {
            list.retain(|s| *s != socket);
            if list.is_empty() {
                self.active.remove(&entry.name);
            }
        }
        if let Some(list) = self.free.get_mut(&entry.name) {
            list.retain(|s| *s != socket);
            if list.is_empty() {
                self.free.remove(&entry.name);
            }
        }
        self.after_remove(&entry.name)
    }

    /// The second half of `removeSocket`: start a socket for a waiting
    /// request, if any may have one.
    fn after_remove(&mut self, name: &str) -> Spawn<J> {
        if !self.under_ceiling() {
            return None;
        }
        let target = if self.queue.iter().any(|(n, _)| n == name) {
            Some(name.to_owned())
        } else {
            let (first, _) = self.queue.first()?;
            (self.active_len(first) == 0).then(|| first.clone())
        }?;
        let job = self.shift_waiting(&target)?;
        let id = self.new_socket(&target);
        Some((target, id, job))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(keep_alive: bool, max_sockets: Option<usize>) -> Limits {
        Limits {
            keep_alive,
            max_sockets,
            max_total_sockets: None,
            max_free_sockets: 256,
            scheduling: Scheduling::Lifo,
            ceiling: None,
        }
    }

    const A: &str = "127.0.0.1:80";

    #[test]
    fn requests_past_max_sockets_wait_and_take_the_released_socket() {
        let mut pool = Pool::new(limits(false, Some(2)));
        assert_eq!(pool.add(A, 1), Placement::Create(1, 1));
        assert_eq!(pool.add(A, 2), Placement::Create(2, 2));
        assert_eq!(pool.add(A, 3), Placement::Queued { queue_len: 1 });
        assert_eq!(pool.add(A, 4), Placement::Queued { queue_len: 2 });
        // keepAlive false, yet a waiting request takes the released socket.
        assert_eq!(pool.released(1, || true), (Release::Next(3), None));
        // A closed socket makes room for a new one.
        assert_eq!(pool.closed(2), Some((A.to_owned(), 3, 4)));
        assert_eq!(pool.waiting(), 0);
        assert_eq!(
            pool.released(1, || true).0,
            Release::Destroy(SocketCloseReason::AgentKeepAliveOff)
        );
    }

    #[test]
    fn lifo_reuses_the_most_recent_free_socket_fifo_the_oldest() {
        for (scheduling, expect) in [(Scheduling::Lifo, 2), (Scheduling::Fifo, 1)] {
            let mut pool = Pool::new(Limits {
                scheduling,
                ..limits(true, None)
            });
            pool.add(A, 1);
            pool.add(A, 2);
            assert!(matches!(
                pool.released(1, || true).0,
                Release::Pooled { free: 1 }
            ));
            assert!(matches!(
                pool.released(2, || true).0,
                Release::Pooled { free: 2 }
            ));
            assert_eq!(
                pool.add(A, 3),
                Placement::Reuse(expect, 3),
                "{scheduling:?}"
            );
        }
    }

    #[test]
    fn free_sockets_are_capped_and_a_refused_hint_destroys() {
        let mut pool = Pool::new(Limits {
            max_free_sockets: 1,
            ..limits(true, None)
        });
        pool.add(A, 1);
        pool.add(A, 2);
        assert!(matches!(
            pool.released(1, || true).0,
            Release::Pooled { .. }
        ));
        assert_eq!(
            pool.released(2, || true).0,
            Release::Destroy(SocketCloseReason::MaxFreeSockets)
        );
        let mut pool = Pool::new(limits(true, None));
        pool.add(A, 1);
        assert_eq!(
            pool.released(1, || false).0,
            Release::Destroy(SocketCloseReason::KeepAliveHint)
        );
    }

    #[test]
    fn a_free_socket_taken_by_a_request_is_not_taken_away() {
        let mut pool = Pool::new(limits(true, None));
        pool.add(A, 1);
        pool.released(1, || true);
        assert_eq!(pool.add(A, 2), Placement::Reuse(1, 2));
        assert!(!pool.take_free(1), "it serves request 2 now");
        pool.released(1, || true);
        assert!(pool.take_free(1));
        assert_eq!(pool.closed(1), None);
        assert_eq!(pool.total(), 0);
    }

    #[test]
    fn max_total_sockets_and_the_ceiling_queue_requests_across_names() {
        let mut pool = Pool::new(Limits {
            max_total_sockets: Some(1),
            ..limits(true, None)
        });
        pool.add(A, 1);
        assert_eq!(pool.add("b:80", 2), Placement::Queued { queue_len: 1 });
        // A's socket closes: b has no active socket, so it gets one.
        assert_eq!(pool.closed(1), Some(("b:80".to_owned(), 2, 2)));
        let mut pool = Pool::new(Limits {
            ceiling: Some(1),
            ..limits(false, None)
        });
        pool.add(A, 1);
        assert_eq!(pool.add(A, 2), Placement::Queued { queue_len: 1 });
    }
}
