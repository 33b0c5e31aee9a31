//! The lessons' words: the catalogue `GET /api/lessons` lists, and each
//! lesson's text (question, choices, explanation) that `GET
//! /api/lessons/{id}` serves when the page opens that lesson. The page holds
//! how to run a lesson (setup, steps, what is measured, the figures its
//! explanation quotes); its general text lives here, once, so scripts and the
//! instructor can read every word and the page's download carries none of it.

use serde::Serialize;

/// One lesson as listed.
///
/// ```json
/// {"id": "six-lanes", "title": "Six lanes", "concept": "six connections per pool", "summary": "…",
///  "changes_settings": false}
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
    /// Its run sets the session's keep-alive policy or middlebox, so it
    /// waits while the instructor has locked the room's settings (the
    /// server refuses both changes then). The page's runner decides this
    /// from the lesson's steps; a test there checks the two agree, and the
    /// instructor's page, which carries no runner, reads it here.
    pub changes_settings: bool,
    /// What the lesson's page says (not part of the catalogue's listing).
    #[serde(skip)]
    pub text: LessonText,
}

/// What a lesson's page says around the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LessonText {
    /// The question the learner answers before running.
    pub prompt: &'static str,
    /// The answer is a count of this (`"connections"`); `None` for a choice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'static str>,
    /// The answers to choose from (empty for a count), in the order the
    /// page's measured answer names them (`choice-0`, `choice-1`…).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub choices: &'static [&'static str],
    /// Why it happens: the general explanation, with its sources.
    pub why: &'static str,
    /// Where to look in the timeline while it runs: never what will be
    /// seen there, which is the run's to measure (a browser may do
    /// otherwise; found in review: the hang-timeout lesson's said "the first
    /// six lanes cut at 2 s" before its run).
    pub watch: &'static str,
}

/// `GET /api/lessons/{id}`: a lesson's entry and text in one object.
///
/// ```json
/// {"id": "idle-timeout", "title": "…", "concept": "…", "summary": "…",
///  "prompt": "…", "choices": ["on the same connection", "…"], "why": "…", "watch": "…"}
/// ```
///
/// A count has `"unit": "connections"` instead of `choices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LessonPage {
    /// Id, title, concept and summary.
    #[serde(flatten)]
    pub entry: &'static LessonEntry,
    /// The rest of what the page says.
    #[serde(flatten)]
    pub text: &'static LessonText,
}

impl LessonPage {
    /// The lesson with `id`, if there is one.
    pub fn of(id: &str) -> Option<LessonPage> {
        LESSONS.iter().find(|l| l.id == id).map(|entry| LessonPage {
            entry,
            text: &entry.text,
        })
    }
}

/// Every lesson, in teaching order.
pub const LESSONS: &[LessonEntry] = &[
    LessonEntry {
        id: "six-lanes",
        title: "Six lanes",
        concept: "six connections per pool, and a queue the server never sees",
        summary: "12 requests the server holds: count how many reach it, and where the rest wait",
        changes_settings: false,
        text: LessonText {
            prompt: "12 requests that the server holds open leave your page at once. How many are at the server at the same time?",
            unit: Some("requests"),
            choices: &[],
            why: "Browsers keep a pool of connections per origin and open at most six HTTP/1.1 \
              connections in each: Chromium's limit per group, Firefox's \
              network.http.max-persistent-connections-per-server and Safari's \
              httpMaximumConnectionsPerHost are all 6. A seventh request waits inside the browser \
              until one of the six is free; DevTools calls it Queueing or Stalled, and the server \
              cannot see it at all. When a lane frees, the waiting request goes out on that same \
              kept-alive connection.",
            watch: "whether any browser rows stay hatched (queued), and how many server lanes are busy at once",
        },
    },
    LessonEntry {
        id: "pools",
        title: "Many pools",
        concept: "a pool per origin, port, host name and credentials mode",
        summary: "the same burst to four pools at once: count the connections",
        changes_settings: false,
        text: LessonText {
            prompt: "8 held requests to each of four pools at once: this origin, the lab's second port, the same port under the other host name (localhost or 127.0.0.1), and this origin with credentials: 'omit'. How many are at the server at once?",
            unit: Some("requests"),
            choices: &[],
            why: "The six-connection limit is per pool, and a pool is keyed by more than the host: \
              the scheme, host name and port (so localhost and 127.0.0.1 are two pools even on \
              the same port), and the request's credentials mode (Chromium keeps requests with \
              and without credentials apart). Four pools, six lanes each.",
            watch: "the server's lanes, and which pool opened each",
        },
    },
    LessonEntry {
        id: "keep-alive-off",
        title: "Keep-alive on and off",
        concept: "keep-alive reuse against Connection: close",
        summary: "6 requests one after another, with keep-alive and without",
        changes_settings: true,
        text: LessonText {
            prompt: "6 requests one after another, with keep-alive off (every response says Connection: close). How many TCP connections do they use?",
            unit: Some("connections"),
            choices: &[],
            why: "With keep-alive (HTTP/1.1's default) a connection carries request after request. \
              When the server answers Connection: close, it closes the connection after the \
              response, and the next request needs a new one: a new TCP handshake each time.",
            watch: "how many lanes each run's six requests use",
        },
    },
    LessonEntry {
        id: "idle-timeout",
        title: "The server's idle timeout",
        concept: "the server closes an idle connection; the browser quietly opens another",
        summary: "a request, a pause longer than the idle timeout, another request",
        changes_settings: true,
        text: LessonText {
            prompt: "The server's idle timeout is 1 s. A request, 1.6 s of silence, another request. Where does the second one go?",
            unit: None,
            choices: &[
                "on the same connection",
                "on another connection",
                "it fails",
            ],
            why: "A server closes a connection that waited too long for its next request (Apache's \
              KeepAliveTimeout is 5 s, nginx's keepalive_timeout 75 s, Node's keepAliveTimeout 5 s, 65 s from v26). \
              The browser notices the closed socket and sends the next request on another \
              connection, silently: the page never sees an error.",
            watch: "how the first lane ends, and which lane the second request takes",
        },
    },
    LessonEntry {
        id: "keep-alive-header",
        title: "Keep-Alive: timeout=5, max=100",
        concept: "the Keep-Alive header counts max down to Connection: close",
        summary: "4 requests against a server that allows 3 per connection",
        changes_settings: true,
        text: LessonText {
            prompt: "The server allows 3 requests per connection and says so in Keep-Alive: timeout=5, max=… . 4 requests one after another: which one opens a new connection?",
            unit: None,
            choices: &["the 2nd", "the 3rd", "the 4th", "none"],
            why: "Apache's defaults (KeepAliveTimeout 5, MaxKeepAliveRequests 100) are announced as \
              Keep-Alive: timeout=5, max=100: max is the requests still allowed after this one, \
              counting down with each response, and the last allowed response says Connection: \
              close instead. (Apache allows 100 after the first, 101 in all; this lab, like \
              nginx's keepalive_requests, counts all of them, so under 100 its first says \
              max=99.) Chromium ignores the header's \
              numbers: it learns that a connection is gone only when it closes.",
            watch: "the Keep-Alive and Connection headers on each response",
        },
    },
    LessonEntry {
        id: "client-vs-idle-timeout",
        title: "Client timeout or idle timeout?",
        concept: "a client timeout (axios' timeout) is not the server's idle timeout",
        summary: "one request the page gives up on, one connection the server closes: who closes what",
        changes_settings: true,
        text: LessonText {
            prompt: "On one connection the page gives up on a request after 1 s (a client timeout, like axios' timeout); another connection sits idle past the server's 1.5 s idle timeout. Who closes each?",
            unit: None,
            choices: &[
                "the browser closes both",
                "the server closes both",
                "the browser closes the first, the server the second",
            ],
            why: "A client timeout (axios' timeout, an AbortController) belongs to one request: when \
              it fires, the browser abandons the request and closes its connection, and the server \
              sees the peer's FIN. The server's idle timeout belongs to a connection between \
              requests: the server closes it. Same word, two different clocks on two sides.",
            watch: "which side each lane's close reason names",
        },
    },
    LessonEntry {
        id: "hang-timeout",
        title: "The server that hangs",
        concept: "a server's socket timeout frees the browser's queue (Node's old 2-minute timeout, scaled)",
        summary: "12 requests to a server that never answers but gives up after a while",
        changes_settings: true,
        text: LessonText {
            prompt: "12 requests to a server that never answers, but closes a socket after 2 s without a response (Node's server.timeout was 2 minutes before v13; scaled here to 2 s). When do the requests past the browser's limit per host reach the server?",
            unit: None,
            choices: &[
                "never",
                "about 2 s later, when the first ones are cut",
                "at once",
            ],
            why: "Six hung requests hold all six lanes, so the rest of the page's requests to that \
              origin wait in the browser. Only the server's socket timeout frees the lanes: it \
              closes the connections without an answer. Chromium re-sends, without a word to the \
              page, a request whose reused connection closed without a response; if the server \
              cuts the re-sent attempts too, it gives up after a few and the page sees the \
              failure. One on a fresh connection fails with an empty response. Time here is \
              scaled: 2 s stands for 2 minutes.",
            watch: "whether and when rows 7 to 12 reach the server, and what the server's 2 s timeout does to the lanes",
        },
    },
    LessonEntry {
        id: "node-events",
        title: "Socket events, as Node names them",
        concept: "connection, end, timeout, error and close, mapped onto what the lab records",
        summary: "a client that gives up, a server that resets, a server that times out",
        changes_settings: true,
        text: LessonText {
            prompt: "A client gives up on a request and closes its connection. Which event does a Node.js server's socket emit first?",
            unit: None,
            choices: &[
                "'end' (the peer's FIN)",
                "'timeout'",
                "'error' (ECONNRESET)",
                "'close' with had_error true",
            ],
            why: "Node's net.Socket emits 'end' when the peer's FIN arrives, 'timeout' when \
              socket.setTimeout's idle time passes (the server must then end or destroy it), \
              'error' for a failure such as a reset (ECONNRESET), and always 'close' last, with \
              had_error true only after an error. The lab records the same facts as close \
              reasons: peer_closed is 'end' then 'close'; peer_reset is 'error' then \
              'close(true)'; idle_timeout is 'timeout' then the server's end and 'close'.",
            watch: "the three lanes' close reasons",
        },
    },
    LessonEntry {
        id: "cache-lock",
        title: "The cache lock",
        concept: "identical URLs go out one at a time",
        summary: "6 requests to the very same URL with the default cache mode",
        changes_settings: false,
        text: LessonText {
            prompt: "6 requests to the very same URL (each takes 300 ms) with the default cache mode. How many are at the server at once?",
            unit: Some("requests"),
            choices: &[],
            why: "Chromium's HTTP cache lets one request at a time write an entry for a URL; \
              identical requests wait for that 'cache lock' (and give up on it after about 20 s). \
              So identical URLs go out one by one, while six lanes stand free. A unique URL per \
              request, or cache: 'no-store' on the request, avoids it.",
            watch: "how many lanes carry the six requests at once",
        },
    },
    LessonEntry {
        id: "eventsource",
        title: "EventSource takes a lane",
        concept: "a server-sent event stream holds one of the six; a WebSocket does not",
        summary: "an event stream open, then 6 requests the server holds",
        changes_settings: false,
        text: LessonText {
            prompt: "An event stream (what an EventSource opens) is running to this origin. Then 6 held requests. How many are at the server at once?",
            unit: Some("requests"),
            choices: &[],
            why: "A server-sent event stream is an HTTP/1.1 response that never ends, so it holds one \
              of the six lanes for as long as it is open (MDN warns about it; the limit is per \
              browser and origin, across tabs). A WebSocket is upgraded out of the pool and does \
              not take a lane: this page's own events socket is one. The lab fetches the stream, \
              which holds a lane exactly as an EventSource does.",
            watch: "the stream's lane and the held requests' lanes",
        },
    },
    LessonEntry {
        id: "priority",
        title: "Jumping the queue",
        concept: "fetch(url, {priority: 'high'}): the browser's queue is not first come, first served",
        summary: "a full pool, a queue, one high-priority request, one lane freed",
        changes_settings: false,
        text: LessonText {
            prompt: "6 held requests fill the pool; 5 low-priority ones wait, then one with priority 'high'. One lane is freed: which waiting request goes first?",
            unit: None,
            choices: &[
                "the one that waited longest",
                "the high-priority one",
                "a random one",
            ],
            why: "The browser's queue is ordered by priority, then by age: fetch(url, {priority: \
              'high'}) goes ahead of older low-priority requests for the next free connection. \
              First come, first served holds only among equals.",
            watch: "which browser row turns solid first after the release",
        },
    },
    LessonEntry {
        id: "spare-socket",
        title: "The spare socket",
        concept: "loading a page opens a spare connection nobody asked for",
        summary: "count the connections this page's load opened that carried nothing",
        changes_settings: false,
        text: LessonText {
            prompt: "This page fetches its files and asks the server for its session and lessons in parallel, so loading it can take several connections to this origin (besides the page's events WebSocket). How many of the connections opened for the page's load carried no request at all until this lesson ran?",
            unit: Some("connections"),
            choices: &[],
            why: "When Chromium navigates, it opens a spare connection a few milliseconds after the \
              first, one it expects to need: a preconnect. If nothing uses it, it sits idle until \
              the server or the browser closes it (Chromium drops an unused one after about 110 \
              s). The page's own requests go out on connections opened for them: this page loads \
              its files and calls the server in parallel, so it needs several (it asks for no \
              favicon: its icon is inline). A spare a later request uses looks 'reused' in \
              Resource Timing, and after that like any other connection.",
            watch: "the PAGE LOAD lanes below the server's: those that carried the page's files and \
              calls, and any that carried nothing",
        },
    },
    LessonEntry {
        id: "keep-alive-race",
        title: "The keep-alive race",
        concept: "a request that arrives as the server closes is re-sent silently",
        summary: "requests on connections the server closes just as they arrive",
        changes_settings: false,
        text: LessonText {
            prompt: "4 requests one after another; each time, the server closes the connection just as the next request arrives on it (the keep-alive race, produced on purpose). How many of the 4 fail in the page?",
            unit: Some("requests"),
            choices: &[],
            why: "When a server closes a kept-alive connection just as the client's next request is on \
              its way, the request reaches a socket that is closing (on Linux the server's kernel \
              answers with a reset when the request was left unread). Chromium re-sends such a \
              request on another connection, a POST too, and the page gets its answer. The server \
              sees the request twice; neither the page nor Resource Timing can tell.",
            watch: "how each lane ends, and where each request goes then",
        },
    },
    LessonEntry {
        id: "nat-gateway",
        title: "The NAT gateway that ate my response",
        concept: "a middlebox forgets an idle connection: the server's late answer never arrives",
        summary: "a slow request through an AWS NAT gateway's 350 s idle timeout, scaled to seconds",
        changes_settings: true,
        text: LessonText {
            prompt: "Through an AWS NAT gateway (350 s idle timeout, scaled here to seconds: the gateway's clock only), a request whose answer takes longer than the timeout, with nothing sent meanwhile. The page gives up after a while. What does the page get?",
            unit: None,
            choices: &[
                "the response",
                "an error at once",
                "nothing: it waits until its own timeout",
            ],
            why: "A NAT gateway keeps a mapping per connection and forgets it after its idle timeout \
              (AWS: 350 s, fixed; the next packet from the inside then gets a reset: \
              https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-troubleshooting.html#nat-gateway-troubleshooting-timeout). The server \
              does not know: it writes its answer, its write succeeds, and the gateway drops it. \
              The client hears nothing and waits until its own timeout. The fixes keep packets \
              flowing within the timeout: application heartbeats, or TCP keep-alive probes (Node's \
              keepAliveMsecs on an agent with keepAlive: true, or the server's SO_KEEPALIVE). \
              Only the gateway's clock is scaled here: Chromium's own probes keep real time, and \
              at the real 350 s they would have saved this request (the lesson on Chromium's own \
              probes measures them); the cut is what a client that sends nothing suffers.",
            watch: "the server's lane and the middlebox's bar while the page's request waits",
        },
    },
    LessonEntry {
        id: "nat-heartbeat",
        title: "Heartbeats keep the mapping alive",
        concept: "bytes while the answer is prepared refresh the middlebox's idle timer",
        summary: "a slow answer, trickled a byte at a time through the same NAT gateway",
        changes_settings: true,
        text: LessonText {
            prompt: "The same NAT gateway (350 s scaled to 3.5 s) and a slow answer (6 s here, 600 s at the gateway's scale), but the server sends a byte every second while it prepares it (every 100 s at the gateway's scale, under its 350 s). What does the page get?",
            unit: None,
            choices: &[
                "the response",
                "an error at once",
                "nothing: it waits until its own timeout",
            ],
            why: "Every packet through the gateway, in either direction, refreshes its idle timer. \
              Bytes sent while the answer is prepared (a heartbeat: whitespace in JSON, a comment \
              line in an event stream) keep the mapping alive however long the work takes, as long \
              as the gap between them stays under the timeout.",
            watch: "the request's download and the middlebox's bar",
        },
    },
    LessonEntry {
        id: "node-agent",
        title: "Node's http.Agent: keepAlive is not Connection",
        concept: "keepAlive: false with a finite maxSockets still says Connection: keep-alive",
        summary: "Node's experiment: 3 requests (every 3 s, scaled ÷10) with keepAlive false and maxSockets 20, then Infinity, then keepAlive true",
        changes_settings: false,
        text: LessonText {
            prompt: "Node's experiment, step by step: an http.Agent (run in the lab's server, a client beside your browser) sends 3 requests, one every 3 s (scaled ÷10: 300 ms), three times: keepAlive: false with maxSockets: 20, then maxSockets: Infinity, then keepAlive: true. What does the first do?",
            unit: None,
            choices: &[
                "Connection: close, 3 connections",
                "Connection: keep-alive, 3 connections",
                "Connection: keep-alive, 1 connection",
            ],
            why: "An agent sends Connection: keep-alive unless keepAlive is false and maxSockets is \
              Infinity; only then Connection: close (Node's http.Agent documentation; ClientRequest \
              in lib/_http_client.js). keepAlive is something else: whether a socket is kept for \
              the next request. With keepAlive: false the agent destroys the socket once the \
              response has ended, whatever the header said, unless a request is already \
              waiting for it (that request takes it: the 'free' handler of lib/_http_agent.js); \
              here each request goes out 300 ms after the last (3 s, scaled ÷10), after its \
              answer, so each opens a new connection. keepAlive: true keeps it in the agent's free list and reuses it.",
            watch: "the lanes each of the three runs uses",
        },
    },
    LessonEntry {
        id: "agent-max-sockets",
        title: "maxSockets: 2 and a server that hangs",
        concept: "requests past maxSockets wait in the agent until the server's timeout frees a socket",
        summary: "4 requests to a hanging server through an agent with maxSockets: 2",
        changes_settings: true,
        text: LessonText {
            prompt: "An agent with maxSockets: 2 sends 4 requests to a server that never answers; the server's socket timeout (Node's old 2-minute server.timeout, scaled to 1.2 s) closes hung sockets. When do requests 3 and 4 reach the server?",
            unit: None,
            choices: &[
                "at once, with the first two",
                "when the server's timeout frees the first two sockets",
                "never: they fail in the agent's queue",
            ],
            why: "An agent opens at most maxSockets sockets per host and port; the rest wait in its \
              queue (requests[name]) until a socket is freed or closed (Node's _http_agent.js \
              addRequest, removeSocket). A server that never answers frees nothing, until its \
              socket timeout destroys the socket: each request on it fails with ECONNRESET \
              'socket hang up', and the next two go out.",
            watch: "whether A3 and A4 wait in the agent's queue, and how the first two lanes end",
        },
    },
    LessonEntry {
        id: "agent-timeouts",
        title: "Three timeouts that are not the same",
        concept: "the agent's timeout only reports, axios' timeout aborts, keepAliveMsecs sends probes",
        summary: "one slow answer with each of timeout, axios' timeout and keepAliveMsecs",
        changes_settings: false,
        text: LessonText {
            prompt: "An agent with timeout: 500 asks for an answer that takes 1.5 s. What happens at 500 ms? (Then the same with axios' timeout: 500, and with keepAliveMsecs: 1000.)",
            unit: None,
            choices: &[
                "it gets the answer: the socket only emits 'timeout'",
                "the request is aborted at 500 ms",
                "a TCP keep-alive probe is sent",
            ],
            why: "The agent's timeout is the socket's idle timeout: an active socket only emits \
              'timeout' and Node leaves the abort to you (docs: request 'timeout'); a free socket \
              that times out is destroyed. axios' timeout calls req.setTimeout and aborts the \
              request when it fires. keepAliveMsecs is neither: with keepAlive it is the delay \
              before the first TCP keep-alive probe (setKeepAlive), in whole seconds.",
            watch: "each request's bar around 500 ms",
        },
    },
    LessonEntry {
        id: "agent-nat-keepalive",
        title: "keepAliveMsecs under the NAT's timeout",
        concept: "TCP keep-alive probes keep a NAT mapping alive through a long request",
        summary: "a slow answer through the NAT gateway, with and without the agent's keep-alive",
        changes_settings: true,
        text: LessonText {
            prompt: "Through the NAT gateway (350 s idle timeout, scaled to 3.5 s) an agent asks for an answer that takes 5 s, first with keepAlive: true and keepAliveMsecs: 1000, then without keepAlive. What does the second get?",
            unit: None,
            choices: &[
                "the response",
                "an error at once",
                "nothing: it waits until its own timeout",
            ],
            why: "With keepAlive the agent switches on TCP keep-alive after keepAliveMsecs of silence; \
              the probes carry no data but are packets, and each refreshes the gateway's idle \
              timer (AWS's advice: keep-alive under 350 s, \
              https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-troubleshooting.html#nat-gateway-troubleshooting-timeout). Without keepAlive nothing crosses the \
              gateway while the server works; it forgets the connection and drops the answer, and \
              the client waits for its own timeout. This is http.request with an agent; axios \
              (whose timeout the lesson borrows) also calls socket.setKeepAlive(true, 60000) on \
              every request's socket (its Node adapter, lib/adapters/http.js), so its requests probe after 60 s of silence with or without \
              the agent's keepAlive: under 350 s, and in real time, not scaled like the gateway.",
            watch: "each agent socket's mapping: its probe marks, and whether it expires",
        },
    },
    LessonEntry {
        id: "nat-tcp-keepalive",
        title: "The server's TCP keep-alive",
        concept: "the server's keep-alive probes refresh the NAT mapping while it prepares the answer",
        summary: "the NAT lesson's slow answer again, with the server's SO_KEEPALIVE on (scaled)",
        changes_settings: true,
        text: LessonText {
            prompt: "The NAT lesson again (350 s scaled to 3.5 s, an answer after 5 s of silence), but the server's TCP keep-alive is on: first probe after 100 s idle, then every 100 s, scaled like the gateway. What does the page get?",
            unit: None,
            choices: &[
                "the response",
                "an error at once",
                "nothing: it waits until its own timeout",
            ],
            why: "SO_KEEPALIVE makes the server's kernel send a probe (a segment without data) after \
              TCP_KEEPIDLE of silence, then every TCP_KEEPINTVL. The gateway sees a packet and \
              refreshes its idle timer, so the mapping outlives the silence: AWS's advice is \
              keep-alive under 350 s (https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-troubleshooting.html#nat-gateway-troubleshooting-timeout). Linux's default \
              first probe comes after 7200 s (tcp_keepalive_time), too late.",
            watch: "the probe marks under the middlebox's bar, and whether it expires",
        },
    },
    LessonEntry {
        id: "nat-real-time",
        title: "Chromium's own probes, in real time",
        concept: "the browser's TCP keep-alive every 45 s keeps a 60 s mapping, not a 40 s one",
        summary: "two silent 2-minute requests through a 60 s and a 40 s middlebox (runs 2 minutes)",
        changes_settings: true,
        text: LessonText {
            prompt: "Real time, about 2 minutes: two requests the server answers after 120 s of silence, \
                     one through a middlebox that forgets idle connections after 60 s, one through one \
                     that forgets them after 40 s. Chromium sends TCP keep-alive probes. What does the page get?",
            unit: None,
            choices: &[
                "both answers",
                "the answer through 60 s; a network error through 40 s",
                "neither: both wait until the page's timeout",
            ],
            why: "Chromium turns on TCP keep-alive on its sockets with a probe after 45 s of silence, \
              then every 45 s. Each probe is a packet through the middlebox: under a 60 s timeout \
              the mapping lives on; a 40 s one has already forgotten it, and the probe is answered \
              with a reset, so the request fails at about 45 s. The usual middleboxes' idle \
              timeouts are longer than 45 s (AWS's NAT gateway 350 s, \
              https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-troubleshooting.html#nat-gateway-troubleshooting-timeout; \
              Azure's load balancer 4 min by default, \
              https://learn.microsoft.com/en-us/azure/load-balancer/load-balancer-tcp-reset; \
              Google's Cloud NAT 1200 s, \
              https://cloud.google.com/nat/docs/tune-nat-configuration#nat-timeouts), so \
              Chromium's idle connections survive them; that is Chromium's \
              45 s, measured here, and another browser may probe later or not at all.",
            watch: "each mapping's probe marks above its bar, and whether it expires",
        },
    },
    LessonEntry {
        id: "http2",
        title: "HTTP/2: one connection, many streams",
        concept: "the six-connection limit is HTTP/1.1's: over HTTP/2 a burst shares one connection",
        summary: "12 held requests over HTTPS, first with HTTP/1.1 only, then with HTTP/2: count the connections",
        changes_settings: false,
        text: LessonText {
            prompt: "12 requests the server holds open go to the lab's HTTPS port that speaks HTTP/2 \
                     (after the same burst to its HTTPS port that speaks only HTTP/1.1). \
                     How many connections carry the HTTP/2 burst?",
            unit: Some("connections"),
            choices: &[],
            why: "Browsers speak HTTP/2 only over TLS, chosen by ALPN in the handshake. HTTP/2 \
              multiplexes: every request is a stream of one connection per origin (RFC 9113 \
              §9.1), so the six-connection pool of HTTP/1.1 never fills. Requests queue again \
              only at the server's SETTINGS_MAX_CONCURRENT_STREAMS (the lab says 100). HTTP/2 has \
              no Connection or Keep-Alive headers (RFC 9113 §8.2.2): a server ends a connection \
              with GOAWAY. The lab's certificate is its own: your browser must accept it once on \
              each HTTPS port the lesson uses (open each address, Advanced → Proceed), or the \
              requests fail.",
            watch: "the lanes of each burst, and which are marked HTTP/2",
        },
    },
    LessonEntry {
        id: "http2-eventsource",
        title: "EventSource over HTTP/2",
        concept: "over HTTP/2 an open event stream is one stream, not one of six connections",
        summary: "6 event streams stay open over HTTP/2, then 6 held requests: how many get through",
        changes_settings: false,
        text: LessonText {
            prompt: "6 event streams stay open to the lab's HTTPS port that speaks HTTP/2 (the \
                     lab fetches each stream, which holds its place exactly as an EventSource \
                     does). Then 6 requests the server holds go to the same origin. How many of them are \
                     at the server at once?",
            unit: Some("requests"),
            choices: &[],
            why: "Over HTTP/1.1 an open EventSource holds one of the pool's six connections for as \
              long as it lasts, so six streams leave nothing for anything else to the same origin \
              (MDN warns of exactly this limit). Over HTTP/2 each event stream is one stream of \
              the shared connection, and the browser's limit is the server's \
              SETTINGS_MAX_CONCURRENT_STREAMS (100 here), not six.",
            watch: "the HTTP/2 lanes, and what each carries",
        },
    },
    LessonEntry {
        id: "http2-stream-limit",
        title: "HTTP/2's own queue",
        concept: "over HTTP/2 the browser queues at the server's SETTINGS_MAX_CONCURRENT_STREAMS, on one connection",
        summary: "12 held requests to an HTTP/2 port that allows 4 streams at once",
        changes_settings: false,
        text: LessonText {
            prompt: "The lab's third HTTPS port speaks HTTP/2 but tells the browser it takes at most 4 \
                     streams at once per connection. 12 requests the server holds go there. How many \
                     are at the server at the same time?",
            unit: Some("requests"),
            choices: &[],
            why: "An HTTP/2 server announces SETTINGS_MAX_CONCURRENT_STREAMS in its first frame (RFC \
              9113 §6.5.2); a client must not open more streams than that at once. Browsers \
              keep one connection per origin and queue the rest inside the browser, as HTTP/1.1 \
              queued at six connections: the queue moved, it did not go away. Servers usually \
              say 100 or more (nginx's http2_max_concurrent_streams is 128); the lab says 4 on \
              this port to make the queue visible.",
            watch: "the HTTP/2 lanes' streams, and any rows waiting in the browser",
        },
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
