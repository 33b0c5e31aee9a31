//! HTTP/2 frames as they cross a connection: `RST_STREAM` and `GOAWAY`,
//! each way, with their error codes, which stream each request is on, and
//! when each response's `END_STREAM` goes out.
//!
//! hyper's HTTP/2 server hides its frames: a stream the client resets only
//! drops the service's future (hyper logs the reason at `debug` level and
//! throws it away), a stream hyper resets for a failed service says nothing
//! to the service, and a `GOAWAY` is not reported at all; hyper never tells
//! the service which stream a request came on. So the lab reads them where
//! they are: [`FrameTap`] sits between rustls and hyper, where the bytes are
//! the HTTP/2 connection in clear, and reads each frame's 9-byte header (and
//! the few payload bytes of `RST_STREAM` and `GOAWAY`) as the bytes pass,
//! without changing them.
//!
//! **Which request is on which stream.** hyper accepts a stream and calls
//! the service for it synchronously, in the connection's task, once h2 has
//! the stream's whole head and the socket has nothing more for it to read.
//! The tap therefore hands hyper the bytes up to the end of a new stream's
//! head (`HEADERS`, and its `CONTINUATION`s), then makes the next read wait
//! one turn: h2 stops reading, hyper accepts that stream and calls the
//! service, whose request is then on that stream ([`Conn::h2_stream_opened`]).
//! A stream h2 refuses (over `SETTINGS_MAX_CONCURRENT_STREAMS`, or after a
//! `GOAWAY`) is never called: the next new head replaces it.
//!
//! **When a response is out.** h2 takes a response body's bytes from hyper
//! and holds back what the client's flow-control window does not take yet,
//! so a body handed over whole may still be minutes from the wire. A
//! response is whole on its way when the frame carrying its `END_STREAM`
//! flag (the last `DATA`, or a head or trailers without a body) passes to
//! TLS ([`Conn::h2_stream_ended`]); its request ends in the record then.
//!
//! **A client that does not read.** Over HTTP/2 a client stops a response by
//! not opening its flow-control window, and h2 then simply sends nothing: no
//! socket write ever blocks, which is what the write-stall guard watches
//! over HTTP/1.1. So the tap keeps the server's send windows as the client
//! sets them (RFC 9113 §6.9: the client's `SETTINGS_INITIAL_WINDOW_SIZE` and
//! `WINDOW_UPDATE`s, less the `DATA` that went out) and tells the connection
//! when a response under way has no window left ([`Conn::h2_flow_blocked`]):
//! the same guard then closes it (`write_stalled`). A response the server
//! has not started (a slow handler) never counts.
//!
//! **When a reset or `GOAWAY` goes out.** rustls takes the clear bytes the
//! tap passes on and encrypts them, and when the socket's send buffer is
//! full it keeps them until the socket drains. So an outbound `RST_STREAM`
//! or `GOAWAY` is recorded once rustls holds none of the bytes it was given
//! ([`HeldOutput`]): when its frame is in the kernel, not when hyper handed it
//! over; what the tap saw after it on the way out waits behind it, so the
//! record keeps the frames' order. Frames still held when the connection
//! ends never left and are not recorded (their cut requests end aborted
//! with the connection).
//!
//! **A head arriving slowly.** hyper's h2 bounds how many `CONTINUATION`s a
//! head may take, not how long: the tap tells the connection while a frame
//! header or a request's head is part-way in ([`Conn::h2_head_arriving`]),
//! so the header-read guard bounds it as it does over HTTP/1.1.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use futures_util::task::AtomicWaker;

use protocol::Initiator;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::conn::Conn;

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
/// `SETTINGS_INITIAL_WINDOW_SIZE` (RFC 9113 §6.5.2).
const INITIAL_WINDOW_SIZE: u16 = 0x4;
/// The initial window of a connection and of each stream until the
/// client's `SETTINGS` say otherwise (RFC 9113 §6.9.2).
const DEFAULT_WINDOW: i64 = 65_535;
/// Streams whose send window is kept at once: beyond, new streams are not
/// followed (h2 allows far fewer open at once).
const STREAMS_KEPT: usize = 1024;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;
/// On `DATA` and `HEADERS`: the sender's last frame on the stream.
const END_STREAM: u8 = 0x1;
/// On `SETTINGS`: an acknowledgement (no entries).
const ACK: u8 = 0x1;

/// `GOAWAY` debug data kept, in bytes.
const DEBUG_KEPT: usize = 128;

/// What a [`Scanner`] saw complete.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// `RST_STREAM`.
    Reset { stream: u32, code: u32 },
    /// `GOAWAY`.
    GoAway {
        last_stream: u32,
        code: u32,
        debug: String,
    },
    /// The whole head of a stream the client opened (inbound only).
    Opened(u32),
    /// The last frame of a stream's response (outbound only).
    Ended(u32),
    /// A response's head (outbound `HEADERS` without `END_STREAM`).
    Head(u32),
    /// A `DATA` frame of `len` payload bytes went out on `stream`.
    Sent { stream: u32, len: u32 },
    /// The client's `SETTINGS_INITIAL_WINDOW_SIZE` (inbound).
    InitialWindow(u32),
    /// A `WINDOW_UPDATE` (inbound; stream 0: the connection's).
    Window { stream: u32, increment: u32 },
}

/// The frame whose payload is passing.
#[derive(Debug, Clone, Copy)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    /// Its payload's length.
    len: u32,
    /// Payload bytes still to pass.
    left: u32,
}

/// Frames in one direction of an HTTP/2 connection, from bytes in any
/// pieces.
#[derive(Debug)]
struct Scanner {
    /// Bytes of the client preface still to pass (inbound: 24).
    preface: usize,
    /// The bytes did not start with the preface: not HTTP/2, nothing read.
    broken: bool,
    /// Report the heads of new streams (inbound).
    opens: bool,
    /// A frame header being assembled.
    head: [u8; 9],
    head_len: usize,
    /// The frame whose payload is passing.
    frame: Option<Frame>,
    /// Payload bytes kept (a `RST_STREAM`'s code, a `GOAWAY`'s last stream,
    /// code and the start of its debug data).
    kept: [u8; 8 + DEBUG_KEPT],
    kept_len: usize,
    /// The highest stream id a `HEADERS` frame opened.
    highest: u32,
    /// A new stream whose head continues in `CONTINUATION` frames.
    block: Option<u32>,
    /// Report each stream's `END_STREAM` (outbound).
    ends: bool,
    /// A stream whose last head (with `END_STREAM`) continues in
    /// `CONTINUATION` frames: it ends with the last of them.
    end_block: Option<u32>,
    /// A `SETTINGS` entry being assembled (6 bytes each).
    setting: [u8; 6],
    setting_len: usize,
}

impl Scanner {
    fn new(inbound: bool) -> Scanner {
        Scanner {
            preface: if inbound { PREFACE.len() } else { 0 },
            broken: false,
            opens: inbound,
            head: [0; 9],
            head_len: 0,
            frame: None,
            kept: [0; 8 + DEBUG_KEPT],
            kept_len: 0,
            highest: 0,
            block: None,
            ends: !inbound,
            end_block: None,
            setting: [0; 6],
            setting_len: 0,
        }
    }

    /// A frame header, a frame other than `DATA`, or a head (`HEADERS` and
    /// its `CONTINUATION`s) is part-way through (inbound: the client began
    /// sending something and has not finished it). A `DATA` frame part-way
    /// is a body arriving, the body guard's while a handler waits for it
    /// (found in review: a `SETTINGS`, `PING` or unknown frame that stopped
    /// part-way was idle, closed at the idle timeout, where api.md says a
    /// frame part-way in is the header-read guard's).
    fn head_pending(&self) -> bool {
        (self.preface > 0 && self.preface < PREFACE.len())
            || self.head_len > 0
            || self.block.is_some()
            || self.frame.is_some_and(|f| f.kind != DATA)
    }

    /// Reads `bytes`, reporting each frame seen complete. Returns how many
    /// bytes it read: all of them, or (inbound) up to the end of a new
    /// stream's head, reported as [`Seen::Opened`].
    fn feed(&mut self, bytes: &[u8], seen: &mut impl FnMut(Seen)) -> usize {
        let mut i = 0;
        while i < bytes.len() && !self.broken {
            if self.preface > 0 {
                let at = PREFACE.len() - self.preface;
                let n = self.preface.min(bytes.len() - i);
                if bytes[i..i + n] != PREFACE[at..at + n] {
                    self.broken = true;
                    return bytes.len();
                }
                self.preface -= n;
                i += n;
                continue;
            }
            if self.frame.is_none() {
                let n = (9 - self.head_len).min(bytes.len() - i);
                self.head[self.head_len..self.head_len + n].copy_from_slice(&bytes[i..i + n]);
                self.head_len += n;
                i += n;
                if self.head_len < 9 {
                    break;
                }
                self.head_len = 0;
                let h = self.head;
                self.frame = Some(Frame {
                    kind: h[3],
                    flags: h[4],
                    stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                    len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
                    left: u32::from_be_bytes([0, h[0], h[1], h[2]]),
                });
                self.kept_len = 0;
                self.setting_len = 0;
            }
            let Some(frame) = self.frame.as_mut() else {
                continue;
            };
            let n = (frame.left as usize).min(bytes.len() - i);
            if matches!(frame.kind, RST_STREAM | GOAWAY | WINDOW_UPDATE) {
                let keep = n.min(self.kept.len() - self.kept_len);
                self.kept[self.kept_len..self.kept_len + keep].copy_from_slice(&bytes[i..i + keep]);
                self.kept_len += keep;
            }
            // The client's settings (not an acknowledgement of ours), one
            // 6-byte entry at a time.
            if frame.kind == SETTINGS && self.opens && frame.flags & ACK == 0 {
                for &byte in &bytes[i..i + n] {
                    self.setting[self.setting_len] = byte;
                    self.setting_len += 1;
                    if self.setting_len == 6 {
                        self.setting_len = 0;
                        let id = u16::from_be_bytes([self.setting[0], self.setting[1]]);
                        if id == INITIAL_WINDOW_SIZE {
                            let [_, _, a, b, c, d] = self.setting;
                            seen(Seen::InitialWindow(u32::from_be_bytes([a, b, c, d])));
                        }
                    }
                }
            }
            frame.left -= n as u32;
            i += n;
            if frame.left == 0 {
                let frame = *frame;
                self.frame = None;
                if self.complete(frame, seen) {
                    return i;
                }
            }
        }
        bytes.len()
    }

    /// A frame passed whole; `true` when it ended a new stream's head.
    fn complete(&mut self, frame: Frame, seen: &mut impl FnMut(Seen)) -> bool {
        let word = |at: usize| {
            u32::from_be_bytes([
                self.kept[at],
                self.kept[at + 1],
                self.kept[at + 2],
                self.kept[at + 3],
            ])
        };
        match frame.kind {
            RST_STREAM if self.kept_len >= 4 => seen(Seen::Reset {
                stream: frame.stream,
                code: word(0),
            }),
            GOAWAY if self.kept_len >= 8 => seen(Seen::GoAway {
                last_stream: word(0) & 0x7fff_ffff,
                code: word(4),
                debug: String::from_utf8_lossy(&self.kept[8..self.kept_len]).into_owned(),
            }),
            WINDOW_UPDATE if self.opens && self.kept_len >= 4 => seen(Seen::Window {
                stream: frame.stream,
                increment: word(0) & 0x7fff_ffff,
            }),
            DATA if self.ends => {
                seen(Seen::Sent {
                    stream: frame.stream,
                    len: frame.len,
                });
                if frame.flags & END_STREAM != 0 {
                    seen(Seen::Ended(frame.stream));
                }
            }
            HEADERS if self.ends && frame.flags & END_STREAM == 0 => seen(Seen::Head(frame.stream)),
            HEADERS if self.ends => {
                if frame.flags & END_HEADERS != 0 {
                    seen(Seen::Ended(frame.stream));
                } else {
                    self.end_block = Some(frame.stream);
                }
            }
            CONTINUATION
                if self.end_block == Some(frame.stream) && frame.flags & END_HEADERS != 0 =>
            {
                self.end_block = None;
                seen(Seen::Ended(frame.stream));
            }
            HEADERS if self.opens && frame.stream > self.highest => {
                self.highest = frame.stream;
                if frame.flags & END_HEADERS != 0 {
                    seen(Seen::Opened(frame.stream));
                    return true;
                }
                self.block = Some(frame.stream);
            }
            CONTINUATION if self.block == Some(frame.stream) && frame.flags & END_HEADERS != 0 => {
                self.block = None;
                seen(Seen::Opened(frame.stream));
                return true;
            }
            _ => {}
        }
        false
    }
}

/// The server's send windows on one HTTP/2 connection, as the client sets
/// them (see the module docs).
#[derive(Debug)]
struct Flow {
    /// The client's `SETTINGS_INITIAL_WINDOW_SIZE`.
    initial: i64,
    /// The connection's window.
    connection: i64,
    /// (stream, its window, a response is under way on it) for each stream
    /// the client opened that has not ended.
    streams: Vec<(u32, i64, bool)>,
}

impl Flow {
    fn new() -> Flow {
        Flow {
            initial: DEFAULT_WINDOW,
            connection: DEFAULT_WINDOW,
            streams: Vec::new(),
        }
    }

    fn stream(&mut self, stream: u32) -> Option<&mut (u32, i64, bool)> {
        self.streams.iter_mut().find(|e| e.0 == stream)
    }

    /// Follows one frame.
    fn see(&mut self, seen: &Seen) {
        match *seen {
            Seen::Opened(stream) => {
                if self.streams.len() < STREAMS_KEPT && self.stream(stream).is_none() {
                    self.streams.push((stream, self.initial, false));
                }
            }
            // A new initial size moves every stream's window by the
            // difference (RFC 9113 §6.9.2), possibly below zero.
            Seen::InitialWindow(size) => {
                let delta = i64::from(size) - self.initial;
                self.initial = i64::from(size);
                for entry in &mut self.streams {
                    entry.1 += delta;
                }
            }
            Seen::Window {
                stream: 0,
                increment,
            } => self.connection += i64::from(increment),
            Seen::Window { stream, increment } => {
                if let Some(entry) = self.stream(stream) {
                    entry.1 += i64::from(increment);
                }
            }
            Seen::Sent { stream, len } => {
                self.connection -= i64::from(len);
                if let Some(entry) = self.stream(stream) {
                    entry.1 -= i64::from(len);
                }
            }
            Seen::Head(stream) => {
                if let Some(entry) = self.stream(stream) {
                    entry.2 = true;
                }
            }
            Seen::Ended(stream) | Seen::Reset { stream, .. } => {
                self.streams.retain(|e| e.0 != stream);
            }
            Seen::GoAway { .. } => {}
        }
    }

    /// A response under way can send nothing more: its stream's window or
    /// the connection's is spent.
    fn blocked(&self) -> bool {
        self.streams
            .iter()
            .any(|e| e.2 && (e.1 <= 0 || self.connection <= 0))
    }
}

/// A stream that may hold bytes it took from a write without handing them
/// to the kernel yet: rustls does while the socket's send buffer is full.
pub(crate) trait HeldOutput {
    /// Bytes taken are still held.
    fn output_held(&self) -> bool;
}

impl<IO> HeldOutput for tokio_rustls::server::TlsStream<IO> {
    fn output_held(&self) -> bool {
        self.get_ref().1.wants_write()
    }
}

/// An HTTP/2 connection's client preface, seen or not, and a way for the
/// connection's task to end a connection whose client never sent it: hyper,
/// still waiting for the preface, sends nothing when told to close (its
/// `GOAWAY` waits for the handshake), so the closes the lab makes (idle,
/// shutdown) would wait out their grace and end with no word to the client
/// (found in review: an idle timeout a second late, a shutdown held 5 s).
/// Told to close, [`FrameTap`] ends the stream itself: TLS's `close_notify`,
/// then the end of what it hands hyper. Also after the preface, for a
/// guard's close, which hyper cannot end in order (its `GOAWAY` waits for
/// the client's answer to a `PING`, and a guard's client is not answering).
#[derive(Debug, Default)]
pub(crate) struct PrefaceGate {
    /// The whole preface has passed.
    arrived: AtomicBool,
    /// Close now.
    close: AtomicBool,
    /// The tap's read, woken to close.
    waker: AtomicWaker,
}

impl PrefaceGate {
    /// Whether the client's preface has arrived whole.
    pub(crate) fn arrived(&self) -> bool {
        self.arrived.load(Ordering::Acquire)
    }

    /// Ends the connection from the tap.
    pub(crate) fn close_now(&self) {
        self.close.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// The decrypted HTTP/2 connection as hyper reads and writes it, its
/// `RST_STREAM` and `GOAWAY` frames reported to the connection's record as
/// they pass (inbound: as hyper is handed them), and its new streams' heads
/// handed over one at a time (see the module docs).
#[derive(Debug)]
pub(crate) struct FrameTap<S> {
    /// The TLS stream.
    inner: S,
    /// The preface, and a close before it ([`PrefaceGate`]).
    gate: Arc<PrefaceGate>,
    /// The connection's record.
    conn: Arc<Conn>,
    /// Client to server.
    inbound: Scanner,
    /// Server to client.
    outbound: Scanner,
    /// Bytes read from `inner` after a new stream's head, not handed to
    /// hyper yet.
    held: Vec<u8>,
    /// The next read waits one turn (hyper is to accept the stream just
    /// opened first).
    pause: bool,
    /// The send windows.
    flow: Flow,
    /// What the connection was last told of them ([`Flow::blocked`]).
    blocked: bool,
    /// What the connection was last told of a head arriving
    /// ([`Scanner::head_pending`]).
    arriving: bool,
    /// Outbound frames seen (an `RST_STREAM` or `GOAWAY`, and what came
    /// after it) whose bytes the TLS stream may still hold: recorded, in
    /// order, once it holds none ([`FrameTap::record_sent`]).
    unsent: Vec<Seen>,
}

impl<S> FrameTap<S> {
    /// Taps `inner`, an HTTP/2 connection seen from the server, for `conn`.
    pub(crate) fn new(inner: S, conn: Arc<Conn>) -> FrameTap<S> {
        FrameTap {
            inner,
            gate: Arc::default(),
            conn,
            inbound: Scanner::new(true),
            outbound: Scanner::new(false),
            held: Vec::new(),
            pause: false,
            flow: Flow::new(),
            blocked: false,
            arriving: false,
            unsent: Vec::new(),
        }
    }

    /// Its [`PrefaceGate`], for the connection's task.
    pub(crate) fn gate(&self) -> Arc<PrefaceGate> {
        self.gate.clone()
    }

    /// Reads inbound `bytes` about to be handed to hyper; how many to hand.
    fn pass_in(&mut self, bytes: &[u8]) -> usize {
        let (conn, flow) = (&self.conn, &mut self.flow);
        let mut opened = false;
        let n = self.inbound.feed(bytes, &mut |seen| {
            flow.see(&seen);
            if let Some(stream) = record(conn, Initiator::Client, seen) {
                conn.h2_stream_opened(stream);
                opened = true;
            }
        });
        self.pause = opened;
        self.tell_flow();
        let arriving = self.inbound.head_pending();
        if arriving != self.arriving {
            self.arriving = arriving;
            self.conn.h2_head_arriving(arriving);
        }
        n
    }

    /// Reads outbound `bytes` the TLS stream took. A reset or `GOAWAY`,
    /// and whatever follows one not recorded yet, waits in `unsent`.
    fn pass_out(&mut self, bytes: &[u8]) {
        let (conn, flow, unsent) = (&self.conn, &mut self.flow, &mut self.unsent);
        self.outbound.feed(bytes, &mut |seen| {
            flow.see(&seen);
            match seen {
                // A response's last frame too: its request ends once that
                // frame has left TLS, not as TLS takes it (found in review:
                // rustls may hold up to 64 KiB while the idle timer ran).
                Seen::Reset { .. } | Seen::GoAway { .. } | Seen::Ended(_) => unsent.push(seen),
                // Only the three above are recorded on the way out.
                seen => {
                    record(conn, Initiator::Server, seen);
                }
            }
        });
        self.tell_flow();
    }

    /// Tells the connection when a response under way runs out of window,
    /// or gets some again.
    fn tell_flow(&mut self) {
        let blocked = self.flow.blocked();
        if blocked != self.blocked {
            self.blocked = blocked;
            self.conn.h2_flow_blocked(blocked);
        }
    }
}

impl<S: HeldOutput> FrameTap<S> {
    /// Records the outbound frames waiting in `unsent` once the TLS stream
    /// holds none of their bytes (after each write and flush).
    fn record_sent(&mut self) {
        if self.unsent.is_empty() || self.inner.output_held() {
            return;
        }
        for seen in std::mem::take(&mut self.unsent) {
            record(&self.conn, Initiator::Server, seen);
        }
    }
}

/// Records a reset or GOAWAY that `by` sent on `conn`; a stream just opened
/// is handed back instead (only the client opens streams).
fn record(conn: &Conn, by: Initiator, seen: Seen) -> Option<u32> {
    match seen {
        Seen::Reset { stream, code } => conn.h2_reset(stream, by, code),
        Seen::GoAway {
            last_stream,
            code,
            debug,
        } => conn.h2_goaway(by, last_stream, code, debug),
        Seen::Opened(stream) => return Some(stream),
        Seen::Ended(stream) => conn.h2_stream_ended(stream),
        Seen::Head(_) | Seen::Sent { .. } | Seen::InitialWindow(_) | Seen::Window { .. } => {}
    }
    None
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for FrameTap<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.gate.waker.register(cx.waker());
        if this.gate.close.load(Ordering::Acquire) {
            // `close_notify`, then the end: hyper's connection ends.
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            return Poll::Ready(Ok(()));
        }
        if std::mem::take(&mut this.pause) {
            // h2 stops reading here and hyper accepts the stream just opened.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if !this.held.is_empty() {
            let held = std::mem::take(&mut this.held);
            let n = held.len().min(buf.remaining());
            let n = this.pass_in(&held[..n]);
            buf.put_slice(&held[..n]);
            this.held = held;
            this.held.drain(..n);
            return Poll::Ready(Ok(()));
        }
        let (before, room) = (buf.filled().len(), buf.remaining());
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let read = &buf.filled()[before..];
        if read.is_empty() && room > 0 {
            // The client's `close_notify` (`serve::PeerEof`'s reason).
            this.conn.peer_eof();
        }
        let n = this.pass_in(read);
        if n < read.len() {
            this.held.extend_from_slice(&read[n..]);
            buf.set_filled(before + n);
        }
        if this.inbound.preface == 0 && !this.gate.arrived() {
            this.gate.arrived.store(true, Ordering::Release);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + HeldOutput + Unpin> AsyncWrite for FrameTap<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.pass_out(&buf[..n]);
        this.record_sent();
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for slice in bufs {
            let take = left.min(slice.len());
            this.pass_out(&slice[..take]);
            left -= take;
            if left == 0 {
                break;
            }
        }
        this.record_sent();
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        // A flush that could not finish may still have written some.
        this.record_sent();
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let shut = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.record_sent();
        shut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut bytes = vec![len[1], len[2], len[3], kind, flags];
        bytes.extend_from_slice(&stream.to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    /// Feeds `bytes` `chunk` at a time, as hyper would be handed them.
    fn scan(inbound: bool, bytes: &[u8], chunk: usize) -> (Vec<Seen>, Vec<usize>) {
        let mut scanner = Scanner::new(inbound);
        let mut seen = Vec::new();
        let mut cuts = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let end = (at + chunk).min(bytes.len());
            let n = scanner.feed(&bytes[at..end], &mut |s| seen.push(s));
            assert!(n > 0);
            at += n;
            if at < end {
                cuts.push(at);
            }
        }
        (seen, cuts)
    }

    #[test]
    fn resets_goaways_and_new_heads_in_any_pieces() {
        let mut wire = PREFACE.to_vec();
        wire.extend(frame(0x4, 0, 0, &[0; 6])); // SETTINGS
        wire.extend(frame(HEADERS, END_HEADERS | 0x1, 1, b"hpack"));
        let head_1 = wire.len();
        wire.extend(frame(HEADERS, 0, 3, b"hp"));
        wire.extend(frame(CONTINUATION, END_HEADERS, 3, b"ack"));
        let head_3 = wire.len();
        wire.extend(frame(0x0, 0x1, 3, b"body")); // DATA
        wire.extend(frame(HEADERS, END_HEADERS | 0x1, 3, b"trailers"));
        wire.extend(frame(RST_STREAM, 0, 1, &8_u32.to_be_bytes()));
        let mut goaway = 5_u32.to_be_bytes().to_vec();
        goaway.extend(0_u32.to_be_bytes());
        goaway.extend(b"bye");
        wire.extend(frame(GOAWAY, 0, 0, &goaway));
        let expected = vec![
            Seen::Opened(1),
            Seen::Opened(3),
            Seen::Reset { stream: 1, code: 8 },
            Seen::GoAway {
                last_stream: 5,
                code: 0,
                debug: "bye".into(),
            },
        ];
        for chunk in [1, 2, 7, 9, 10, 64, wire.len()] {
            let (seen, cuts) = scan(true, &wire, chunk);
            assert_eq!(seen, expected, "in pieces of {chunk}");
            // Cut right after each new stream's head (unless a piece ends there).
            for cut in cuts {
                assert!(cut == head_1 || cut == head_3, "{cut} in pieces of {chunk}");
            }
        }
        // Outbound: no preface, no heads reported.
        let out = frame(RST_STREAM, 0, 5, &2_u32.to_be_bytes());
        assert_eq!(
            scan(false, &out, 3).0,
            vec![Seen::Reset { stream: 5, code: 2 }]
        );
    }

    #[test]
    fn outbound_a_responses_end_is_its_frame_with_end_stream_in_any_pieces() {
        let mut wire = frame(0x4, 0, 0, &[]); // SETTINGS
        wire.extend(frame(HEADERS, END_HEADERS, 1, b"200")); // head, a body follows
        wire.extend(frame(DATA, 0, 1, b"part"));
        wire.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, b"204")); // no body
        wire.extend(frame(DATA, END_STREAM, 1, b"last"));
        wire.extend(frame(HEADERS, END_STREAM, 5, b"trai")); // trailers, continued
        wire.extend(frame(CONTINUATION, 0, 5, b"le"));
        wire.extend(frame(CONTINUATION, END_HEADERS, 5, b"rs"));
        wire.extend(frame(DATA, END_STREAM, 7, b"")); // an empty last frame
        let expected = vec![
            Seen::Head(1),
            Seen::Sent { stream: 1, len: 4 },
            Seen::Ended(3),
            Seen::Sent { stream: 1, len: 4 },
            Seen::Ended(1),
            Seen::Ended(5),
            Seen::Sent { stream: 7, len: 0 },
            Seen::Ended(7),
        ];
        for chunk in [1, 2, 9, 10, 64, wire.len()] {
            assert_eq!(
                scan(false, &wire, chunk).0,
                expected,
                "in pieces of {chunk}"
            );
        }
        // Inbound, the client's END_STREAM (its request's end) is not a
        // response's.
        let mut inbound = PREFACE.to_vec();
        inbound.extend(frame(HEADERS, END_HEADERS, 1, b"h"));
        inbound.extend(frame(DATA, END_STREAM, 1, b"body"));
        assert_eq!(scan(true, &inbound, 64).0, vec![Seen::Opened(1)]);
    }

    #[test]
    fn the_send_windows_follow_the_clients_settings_updates_and_the_data_sent() {
        let mut inbound = PREFACE.to_vec();
        // SETTINGS: max frame size, then an initial window of 100.
        let mut settings = vec![0x0, 0x5, 0, 0, 0x40, 0];
        settings.extend([0x0, 0x4, 0, 0, 0, 100]);
        inbound.extend(frame(SETTINGS, 0, 0, &settings));
        inbound.extend(frame(SETTINGS, ACK, 0, &[]));
        inbound.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"get"));
        inbound.extend(frame(WINDOW_UPDATE, 0, 1, &50_u32.to_be_bytes()));
        inbound.extend(frame(WINDOW_UPDATE, 0, 0, &1_000_u32.to_be_bytes()));
        let (seen, _) = scan(true, &inbound, 5);
        assert_eq!(
            seen,
            vec![
                Seen::InitialWindow(100),
                Seen::Opened(1),
                Seen::Window {
                    stream: 1,
                    increment: 50
                },
                Seen::Window {
                    stream: 0,
                    increment: 1_000
                },
            ]
        );
        let mut flow = Flow::new();
        for s in &seen {
            flow.see(s);
        }
        assert_eq!(flow.streams, vec![(1, 150, false)]);
        assert_eq!(flow.connection, 66_535);
        assert!(!flow.blocked(), "no response under way");

        let mut outbound = frame(HEADERS, END_HEADERS, 1, b"200");
        outbound.extend(frame(DATA, 0, 1, &[7; 150]));
        let (seen, _) = scan(false, &outbound, 7);
        assert_eq!(
            seen,
            vec![
                Seen::Head(1),
                Seen::Sent {
                    stream: 1,
                    len: 150
                }
            ]
        );
        for s in &seen {
            flow.see(s);
        }
        assert!(flow.blocked(), "the stream's window is spent: {flow:?}");
        flow.see(&Seen::Window {
            stream: 1,
            increment: 10,
        });
        assert!(!flow.blocked());
        // A smaller initial size takes from every open stream (below zero).
        flow.see(&Seen::InitialWindow(0));
        assert_eq!(flow.streams, vec![(1, -90, true)]);
        assert!(flow.blocked());
        flow.see(&Seen::Ended(1));
        assert!(flow.streams.is_empty() && !flow.blocked());
    }

    /// A TLS stream's stand-in: takes every write, and holds its bytes (a
    /// flush does not finish) until `held` is cleared, as rustls does while
    /// the socket's send buffer is full.
    #[derive(Debug)]
    struct Holding {
        held: bool,
    }

    impl AsyncWrite for Holding {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            if self.held {
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.poll_flush(cx)
        }
    }

    impl HeldOutput for Holding {
        fn output_held(&self) -> bool {
            self.held
        }
    }

    /// The record's resets and `GOAWAY`s so far, in order: (stream or last
    /// stream, code, sent by the server).
    fn resets_and_goaways(
        events: &mut tokio::sync::broadcast::Receiver<protocol::ServerEvent>,
    ) -> Vec<(&'static str, u32, u32, bool)> {
        use protocol::ServerEvent;
        let mut out = Vec::new();
        while let Ok(event) = events.try_recv() {
            match event {
                ServerEvent::StreamReset {
                    stream, code, by, ..
                } => out.push(("reset", stream, code, by == Initiator::Server)),
                ServerEvent::GoAway {
                    last_stream,
                    code,
                    by,
                    ..
                } => out.push(("goaway", last_stream, code, by == Initiator::Server)),
                _ => {}
            }
        }
        out
    }

    #[tokio::test]
    async fn an_outbound_reset_and_goaway_are_recorded_once_tls_holds_none_of_their_bytes() {
        let lab = crate::Lab::new(crate::Config::default());
        let (_, mut events) = lab.subscribe(None);
        let open = || {
            let conn = Conn::open(
                &lab,
                "127.0.0.1:40000".parse().expect("address"),
                ("127.0.0.1".parse().expect("address"), None),
                "127.0.0.1:8083".parse().expect("address"),
                None,
            );
            conn.secured(true, Some("h2".to_owned()), "TLSv1_3".to_owned(), false);
            FrameTap::new(Holding { held: true }, conn)
        };
        let wire = [
            frame(SETTINGS, 0, 0, &[]),
            frame(RST_STREAM, 0, 3, &8u32.to_be_bytes()),
            frame(GOAWAY, 0, 0, &[0, 0, 0, 3, 0, 0, 0, 0]),
        ]
        .concat();
        let mut cx = Context::from_waker(std::task::Waker::noop());

        // Taken by TLS while the socket is full: not on its way yet.
        let mut tap = open();
        let written = Pin::new(&mut tap).poll_write(&mut cx, &wire);
        assert!(matches!(written, Poll::Ready(Ok(n)) if n == wire.len()));
        assert!(Pin::new(&mut tap).poll_flush(&mut cx).is_pending());
        assert_eq!(resets_and_goaways(&mut events), []);
        // The socket drained: both, in the order they went.
        tap.inner.held = false;
        assert!(Pin::new(&mut tap).poll_flush(&mut cx).is_ready());
        assert_eq!(
            resets_and_goaways(&mut events),
            [("reset", 3, 8, true), ("goaway", 3, 0, true)]
        );

        // Held until the connection ended: they never left, and are not
        // recorded.
        let mut tap = open();
        assert!(Pin::new(&mut tap).poll_write(&mut cx, &wire).is_ready());
        drop(tap);
        assert_eq!(resets_and_goaways(&mut events), []);

        // Nothing held: recorded as the write is taken, as before.
        let mut tap = open();
        tap.inner.held = false;
        assert!(Pin::new(&mut tap).poll_write(&mut cx, &wire).is_ready());
        assert_eq!(
            resets_and_goaways(&mut events),
            [("reset", 3, 8, true), ("goaway", 3, 0, true)]
        );
    }

    /// A response's last frame (`END_STREAM`) ends its request once TLS
    /// holds none of its bytes, not as TLS takes it; never if the
    /// connection ends first.
    #[tokio::test]
    async fn a_responses_end_is_recorded_once_tls_holds_none_of_its_bytes() {
        use axum::http::{Method, Uri};
        use protocol::{RequestOutcome, ServerEvent};
        let lab = crate::Lab::new(crate::Config::default());
        let (_, mut events) = lab.subscribe(None);
        let mut finished = move || {
            let mut out = Vec::new();
            while let Ok(event) = events.try_recv() {
                if let ServerEvent::RequestFinished { outcome, .. } = event {
                    out.push(outcome);
                }
            }
            out
        };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for drains in [true, false] {
            let conn = Conn::open(
                &lab,
                "127.0.0.1:40001".parse().expect("address"),
                ("127.0.0.1".parse().expect("address"), None),
                "127.0.0.1:8083".parse().expect("address"),
                None,
            );
            conn.secured(true, Some("h2".to_owned()), "TLSv1_3".to_owned(), false);
            let mut tap = FrameTap::new(Holding { held: true }, conn.clone());
            conn.h2_stream_opened(1);
            let guard = conn.begin_request(&Method::GET, &Uri::from_static("/"), None, None, false);
            let policy = conn.policy();
            let response = guard.respond(
                axum::http::Response::new(axum::body::Body::empty()),
                &policy,
            );
            // The body is over: hyper drops it.
            drop(response);
            assert_eq!(finished(), [], "the response's end has not gone out");
            let last = frame(DATA, END_STREAM, 1, b"");
            assert!(Pin::new(&mut tap).poll_write(&mut cx, &last).is_ready());
            assert!(Pin::new(&mut tap).poll_flush(&mut cx).is_pending());
            assert_eq!(finished(), [], "TLS holds the last frame");
            if drains {
                tap.inner.held = false;
                assert!(Pin::new(&mut tap).poll_flush(&mut cx).is_ready());
                assert_eq!(finished(), [RequestOutcome::Completed]);
            } else {
                // The connection ended with the frame still in TLS: never
                // recorded as gone (the close aborts the request).
                drop(tap);
                assert_eq!(finished(), []);
            }
        }
    }

    #[test]
    fn bytes_that_are_not_http2_report_nothing() {
        let mut wire = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        wire.extend(frame(RST_STREAM, 0, 1, &8_u32.to_be_bytes()));
        assert_eq!(scan(true, &wire, 5).0, vec![]);
    }
}
