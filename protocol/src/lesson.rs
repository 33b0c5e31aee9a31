//! The lesson catalogue: what `GET /api/lessons` lists and the page's lesson
//! track shows. Each lesson teaches one concept; the page holds how to run
//! it (setup, steps, what is measured, the explanation), the server only lists
//! them, so scripts and the instructor's view can name them.

use serde::Serialize;

/// One lesson as listed.
///
/// ```json
/// {"id": "six-lanes", "title": "Six lanes", "concept": "six connections per pool", "summary": "…"}
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LessonEntry {
    /// Stable id, used in URLs (`#lesson=six-lanes`).
    pub id: &'static str,
    /// Short title.
    pub title: &'static str,
    /// The one concept it teaches.
    pub concept: &'static str,
    /// One line: what the learner does and sees.
    pub summary: &'static str,
}

/// Every lesson, in teaching order.
pub const LESSONS: &[LessonEntry] = &[
    LessonEntry {
        id: "six-lanes",
        title: "Six lanes",
        concept: "six connections per pool, and a queue the server never sees",
        summary: "12 requests the server holds: count how many reach it, and where the rest wait",
    },
    LessonEntry {
        id: "pools",
        title: "Many pools",
        concept: "a pool per origin, port, host name and credentials mode",
        summary: "the same burst to four pools at once: count the connections",
    },
    LessonEntry {
        id: "keep-alive-off",
        title: "Keep-alive on and off",
        concept: "keep-alive reuse against Connection: close",
        summary: "6 requests one after another, with keep-alive and without",
    },
    LessonEntry {
        id: "idle-timeout",
        title: "The server's idle timeout",
        concept: "the server closes an idle connection; the browser quietly opens another",
        summary: "a request, a pause longer than the idle timeout, another request",
    },
    LessonEntry {
        id: "keep-alive-header",
        title: "Keep-Alive: timeout=5, max=100",
        concept: "the Keep-Alive header counts max down to Connection: close",
        summary: "4 requests against a server that allows 3 per connection",
    },
    LessonEntry {
        id: "client-vs-idle-timeout",
        title: "Client timeout or idle timeout?",
        concept: "a client timeout (axios' timeout) is not the server's idle timeout",
        summary: "one request the page gives up on, one connection the server closes: who closes what",
    },
    LessonEntry {
        id: "hang-timeout",
        title: "The server that hangs",
        concept: "a server's socket timeout frees the browser's queue (Node's old 2-minute timeout, scaled)",
        summary: "12 requests to a server that never answers but gives up after a while",
    },
    LessonEntry {
        id: "node-events",
        title: "Socket events, as Node names them",
        concept: "connection, end, timeout, error and close, mapped onto what the lab records",
        summary: "a client that gives up, a server that resets, a server that times out",
    },
    LessonEntry {
        id: "cache-lock",
        title: "The cache lock",
        concept: "identical URLs go out one at a time",
        summary: "6 requests to the very same URL with the default cache mode",
    },
    LessonEntry {
        id: "eventsource",
        title: "EventSource takes a lane",
        concept: "a server-sent event stream holds one of the six; a WebSocket does not",
        summary: "an event stream open, then 6 requests the server holds",
    },
    LessonEntry {
        id: "priority",
        title: "Jumping the queue",
        concept: "fetch(url, {priority: 'high'}): the browser's queue is not first come, first served",
        summary: "a full pool, a queue, one high-priority request, one lane freed",
    },
    LessonEntry {
        id: "spare-socket",
        title: "The spare socket",
        concept: "loading a page opens a spare connection nobody asked for",
        summary: "count the connections this page's load opened, and what each carried",
    },
    LessonEntry {
        id: "keep-alive-race",
        title: "The keep-alive race",
        concept: "a request that arrives as the server closes is re-sent silently",
        summary: "requests on connections the server closes just as they arrive",
    },
    LessonEntry {
        id: "nat-gateway",
        title: "The NAT gateway that ate my response",
        concept: "a middlebox forgets an idle connection: the server's late answer never arrives",
        summary: "a slow request through an AWS NAT gateway's 350 s idle timeout, scaled to seconds",
    },
    LessonEntry {
        id: "nat-heartbeat",
        title: "Heartbeats keep the mapping alive",
        concept: "bytes while the answer is prepared refresh the middlebox's idle timer",
        summary: "the same slow answer, trickled a byte at a time through the same NAT gateway",
    },
    LessonEntry {
        id: "node-agent",
        title: "Node's http.Agent: keepAlive is not Connection",
        concept: "keepAlive: false with a finite maxSockets still says Connection: keep-alive",
        summary: "Node's experiment: 3 requests (every 3 s, scaled ÷10) with keepAlive false and maxSockets 20, then Infinity, then keepAlive true",
    },
    LessonEntry {
        id: "agent-max-sockets",
        title: "maxSockets: 2 and a server that hangs",
        concept: "requests past maxSockets wait in the agent until the server's timeout frees a socket",
        summary: "4 requests to a hanging server through an agent with maxSockets: 2",
    },
    LessonEntry {
        id: "agent-timeouts",
        title: "Three timeouts that are not the same",
        concept: "the agent's timeout only reports, axios' timeout aborts, keepAliveMsecs sends probes",
        summary: "one slow answer with each of timeout, axios' timeout and keepAliveMsecs",
    },
    LessonEntry {
        id: "agent-nat-keepalive",
        title: "keepAliveMsecs under the NAT's timeout",
        concept: "TCP keep-alive probes keep a NAT mapping alive through a long request",
        summary: "a slow answer through the NAT gateway, with and without the agent's keep-alive",
    },
    LessonEntry {
        id: "nat-tcp-keepalive",
        title: "The server's TCP keep-alive",
        concept: "the server's keep-alive probes refresh the NAT mapping while it prepares the answer",
        summary: "the NAT lesson's slow answer again, with the server's SO_KEEPALIVE on (scaled)",
    },
    LessonEntry {
        id: "nat-real-time",
        title: "Chromium's own probes, in real time",
        concept: "the browser's TCP keep-alive every 45 s keeps a 60 s mapping, not a 40 s one",
        summary: "two silent 2-minute requests through a 60 s and a 40 s middlebox (runs 2 minutes)",
    },
    LessonEntry {
        id: "http2",
        title: "HTTP/2: one connection, many streams",
        concept: "the six-connection limit is HTTP/1.1's: over HTTP/2 a burst shares one connection",
        summary: "12 held requests over HTTPS, first with HTTP/1.1 only, then with HTTP/2: count the connections",
    },
    LessonEntry {
        id: "http2-eventsource",
        title: "EventSource over HTTP/2",
        concept: "over HTTP/2 an open event stream is one stream, not one of six connections",
        summary: "6 event streams stay open over HTTP/2, then 6 held requests: how many get through",
    },
    LessonEntry {
        id: "http2-stream-limit",
        title: "HTTP/2's own queue",
        concept: "over HTTP/2 the browser queues at the server's SETTINGS_MAX_CONCURRENT_STREAMS, on one connection",
        summary: "12 held requests to an HTTP/2 port that allows 4 streams at once",
    },
];

/// The catalogue entry with `id`, at compile time (so a lesson's data can
/// name its entry by id rather than by position).
///
/// # Panics
///
/// At compile time, when no lesson has `id`.
pub const fn entry(id: &str) -> &'static LessonEntry {
    let mut i = 0;
    while i < LESSONS.len() {
        if eq(LESSONS[i].id.as_bytes(), id.as_bytes()) {
            return &LESSONS[i];
        }
        i += 1;
    }
    panic!("no lesson has this id")
}

const fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
