//! A Node.js-style HTTP agent: the lab's second client (issue #11).
//!
//! A browser decides its own keep-alive; a Node.js `http.Agent` is told:
//! `keepAlive`, `keepAliveMsecs`, `maxSockets`, `maxTotalSockets`,
//! `maxFreeSockets`, `scheduling`, `timeout`. This agent follows the current
//! Node.js LTS (v24) rule by rule, on tokio sockets and a small HTTP/1.1
//! client of its own, and reports every step under Node's event names
//! ([`protocol::AgentEvent`]). It runs two ways:
//!
//! - **standalone**: [`cli::run_cli`] (`keepalive-lab agent URL …`), one JSON
//!   line per event, against an HTTP/1.1 server on this machine (its URL's
//!   host must resolve to a loopback address);
//! - **in the lab**: [`lab::start`] / [`lab::stop`] (`agent_start` /
//!   `agent_stop` on `/api/events`), against the lab's own listeners, its
//!   events recorded for the session's viewers beside the server's view of
//!   the same connections.
//!
//! # Layout
//!
//! - [`options`]: the rules that follow from the options alone (the
//!   `Connection` header, TCP keep-alive seconds, the server's `Keep-Alive`
//!   hint), pure functions;
//! - [`pool`]: the bookkeeping (`sockets`, `freeSockets`, `requests`,
//!   `totalSocketCount`): when a socket is reused, created, kept free or
//!   destroyed; no I/O;
//! - [`http1`]: the request head and a bounded response reader;
//! - [`engine`]: [`Agent`]: the pool's decisions carried out, events in order;
//! - `socket`: one task per socket: connect, serve, wait free, timers;
//! - [`run`]: `count` requests `every` ms, linger, destroy;
//! - [`cli`], [`lab`]: the two ways to run it.
//!
//! # The rules, and where Node says so
//!
//! "Docs" is the Node.js `http` / `net` documentation; files are in
//! `nodejs/node` (`lib/`), as of v24.
//!
//! | rule | source | version-dependent? |
//! |---|---|---|
//! | `Connection: keep-alive` whenever an agent is used, except when the request sets `Connection` itself, or `keepAlive` is false **and** `maxSockets` is `Infinity` (then `close`) | docs `new Agent()` `keepAlive`; `_http_client.js` `ClientRequest`; `_http_outgoing.js` `_storeHeader`, `matchHeader` | no (since v0.12) |
//! | `keepAlive: false` + finite `maxSockets`: header says keep-alive, the socket is destroyed after the response unless a request is waiting for it | `_http_agent.js` `Agent` `'free'` handler (`!this.keepAlive` → `destroy()`, after handing it to `requests[name]`) | no |
//! | after a response both sides allow reuse: a waiting request takes the socket, else it joins the free list (≤ `maxFreeSockets`, and `count ≤ maxSockets`, `total ≤ maxTotalSockets`, `keepSocketAlive`), else destroyed | `'free'` handler; `responseOnEnd` / `responseKeepAlive` in `_http_client.js`; the server must agree (`parserOnIncomingClient`) | no |
//! | reuse order: `lifo` pops the most recently freed socket, `fifo` shifts the oldest | `addRequest`; docs `scheduling` | default `lifo` since v15.6.0 / v14.17.0 |
//! | a new socket only while `sockLen < maxSockets && totalSocketCount < maxTotalSockets`; otherwise the request waits in `requests[name]` (FIFO); a closing socket starts one for the first waiting request (its name first, else the first name with no active socket) | `addRequest`, `removeSocket` | `maxTotalSockets` since v14.5.0 |
//! | `keepAliveMsecs` = initial delay of TCP keep-alive (`SO_KEEPALIVE`, `TCP_KEEPIDLE` = ms / 1000 **rounded down**, `TCP_KEEPINTVL` 1, `TCP_KEEPCNT` 10), from the connect, only with `keepAlive`; under 1000 ms → 0 s → "leave unchanged": only `SO_KEEPALIVE`, and the system's delay, interval and count (libuv's `uv__tcp_keepalive` returns before setting them) | `createSocket` (`keepAliveInitialDelay`), `keepSocketAlive`; `net.js` `Socket`, `setKeepAlive` (`~~(ms / 1000)`); docs `keepAliveMsecs`, `socket.setKeepAlive()` | `keepAliveMsecs` reaches the kernel from the connect since nodejs/node#43380 (2022; before it, the system's delay from the connect, and earlier still probes only once freed: #35842, #41965) |
//! | `timeout`: the socket's idle timeout from creation; a **free** socket that times out is destroyed; an **active** one only emits `timeout` (socket, then request); Node never aborts by itself | `installListeners` `onTimeout` (free only); `listenSocketTimeout`; docs `'timeout'` ("The request must be destroyed manually") | no |
//! | server `Keep-Alive: timeout=N`: `N·1000 − agentKeepAliveTimeoutBuffer` ≤ 0 → the socket is not kept; otherwise it only **shortens a non-zero agent `timeout`** for the free socket (no agent `timeout`: the hint is ignored), and a reused socket keeps that shortened timeout | `keepSocketAlive`; `setRequestSocket` (nodejs/node#53458, open) | buffer 1000 ms since nodejs/node#54863; configurable since v24.7.0 / v22.20.0 |
//! | per-request timeout (axios `timeout`): `req.setTimeout(ms)` from the moment the request has a connected socket (queue time not counted), idle-based; on expiry the request is aborted and its socket destroyed. **Only axios' timer**: axios also calls `socket.setKeepAlive(true, 60000)` on every request's socket (its `'socket'` handler, "set tcp keep alive to prevent drop connection by peer"), so its requests probe after 60 s of silence whatever the agent's `keepAlive` and `keepAliveMsecs`; the lab's agent does not copy that, it is Node's `http.request` with an agent | axios `lib/adapters/http.js`; `ClientRequest.prototype.setTimeout` | axios ≥ 0.19 (older ones used a wall-clock timer) |
//! | a free socket the server closes (`end`/`close`) or that errors leaves the pool | `installListeners` (`onClose` → `removeSocket`), `freeSocketErrorListener` | no |
//! | `request.reusedSocket` (`sent`'s `reused`, `error`'s `reused_socket`) is true only for a request that found a free socket when it was added; a request that waited in the queue and is handed a socket as it frees keeps `false` (the socket's count of requests is `socket_requests`, the lab's own) | `addRequest` → `reuseSocket` (sets it); `'free'` handler → `setRequestSocket` (does not) | no |
//! | a request on a reused socket that meets the server's close before any response byte fails `ECONNRESET` "socket hang up" (or "aborted" mid-body); **no automatic retry** | `socketOnEnd`, `socketCloseListener`; docs `request.reusedSocket` ("…may retry") | no |
//! | the response head: bounded by its text alone, the status text and the headers' names and values (16 KiB: 16 383 bytes read, 16 384 refused), not by a count of headers, its line ends or the spaces before values (those after a value count); trailers the same, from zero; a chunk's extensions by their names and values (16 KiB per chunk line: 16 384 read, 16 385 refused); CRLF line ends; at most one `Content-Length` line, digits only, and never with `Transfer-Encoding`; a chunk's size hex digits only (no sign, no prefix, no space or tab after it), its extensions tokens or quoted values, every chunk line, a chunk's data and each trailer ending in CRLF (`agent/chunked_cases.txt`: 40 cases, each run against real Node); each byte judged once, in the read it arrives in, so a fault is told as it arrives, past 16 KiB of raw head too, and a head or line trickled a byte a read costs what it costs whole; otherwise the request fails with llhttp's code (`HPE_HEADER_OVERFLOW`, `HPE_CHUNK_EXTENSIONS_OVERFLOW`, `HPE_CR_EXPECTED`, `HPE_LF_EXPECTED`, `HPE_UNEXPECTED_CONTENT_LENGTH`, `HPE_INVALID_CONTENT_LENGTH`, `HPE_INVALID_TRANSFER_ENCODING`, `HPE_INVALID_CHUNK_SIZE`, `HPE_STRICT`, `HPE_INVALID_HEADER_TOKEN`) and the socket is destroyed | llhttp (`deps/llhttp`, strict as Node runs it); `src/node_http_parser.cc` (`TrackHeader` adds each span of text against `max_http_header_size`; `kMaxChunkExtensionsSize`); docs `--max-http-header-size`; `maxHeadersCount` only trims `res.headers` | checked against Node v20.20.2 (llhttp 9, the major v24 ships) |
//! | bytes right after a response, in the same read: parsed as the next response's start, which fails: the request gets `error` `HPE_INVALID_CONSTANT` after its `response`, and the socket is destroyed | `socketOnData` in `_http_client.js` (`parser.execute` returns an error) | checked against Node v20.20.2 |
//! | bytes arriving on a **free** socket: read by no parser and dropped; the socket stays free and is reused; each read restarts its idle timer | `responseKeepAlive` takes off `socketOnData`; `onStreamRead` → `stream[kUpdateTimer]()` (`lib/internal/stream_base_commons.js`) | checked against Node v20.20.2; a later guard that destroys such a socket is said to exist but was not found in Node's source here |
//! | a socket emits `end` once: the server's FIN met as the socket is handed to a request ends it and fails that request, no second `end` | `net.js` (`'end'` is emitted once per readable stream); `socketOnEnd` | no |
//!
//! Where the lab bounds what Node does not (connect time, socket ceiling,
//! response sizes, the raw bytes of a head or line it keeps, run length),
//! the bound is named where it is set.

pub mod cli;
pub mod engine;
pub mod http1;
pub mod lab;
pub mod options;
pub mod pool;
pub mod run;
mod socket;

pub use engine::{Agent, AgentConfig, Destination, EventSink, Progress};
