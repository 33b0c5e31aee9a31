//! Seeing TCP keep-alive probes from user space: `getsockopt(TCP_INFO)`.
//!
//! A keep-alive probe carries no new data, so a proxy never reads it. On
//! Linux the socket that *receives* it counts it, though: `tcpi_segs_in`
//! (byte offset 140 of `struct tcp_info`, Linux >= 4.2) rises by one per
//! probe, while `tcpi_bytes_received` (offset 128, Linux >= 4.1) and
//! `tcpi_bytes_acked` (offset 120) stay put (measured, see `docs/facts.md`).
//! A probe may carry "one garbage octet" (RFC 1122 §4.2.3.6; Windows has a
//! setting for it, "TCP Keep-Alive Garbage"): an octet the receiver already
//! has, so `tcpi_data_segs_in` rises with it but `tcpi_bytes_received` does
//! not (measured too). A segment that brings no new byte and acknowledges
//! nothing new, on a socket the middlebox neither read from nor wrote to
//! since its last look, is a probe (or, rarely, a window update or a
//! retransmission: packets a real middlebox would see too). While a window
//! is closed ([`Segments::window_closed`]) such segments are window probes,
//! not keep-alive: the peer's into this socket's full buffer
//! (`tcpi_rcv_wnd` 0), or its answers to this kernel's own when this socket
//! has data on the way out (`tcpi_unacked`, `tcpi_notsent_bytes`:
//! [`Segments::sending`]) into the peer's zero window (`tcpi_snd_wnd`);
//! the second kind a forgotten mapping does not take for the peer's
//! packets.
//!
//! The same call tells the lab's TLS ports whether a client's FIN is in
//! behind bytes not read yet ([`peer_fin_in`]: the connection's state is
//! `CLOSE_WAIT`), which a peek cannot see.
//!
//! This is the only module with `unsafe` code: one `getsockopt` call into a
//! buffer of the size it is told, and one `ioctl(FIONREAD)` into an `int`. Elsewhere (not Linux) [`read`] and
//! [`peer_fin_in`] answer `None` and the middlebox says that probes cannot be
//! seen here.

#![allow(unsafe_code)]

/// The counters the middlebox reads from `struct tcp_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segments {
    /// `tcpi_bytes_acked`: bytes we sent that the peer acknowledged.
    pub bytes_acked: u64,
    /// `tcpi_bytes_received`: new bytes received in sequence (a byte sent
    /// again, as a one-octet probe's, is not counted again), and the peer's
    /// FIN, which takes a number in the sequence too (measured: 100 bytes
    /// and a FIN count 101, also once the socket is closed): so unread data
    /// is told by [`unread`], not by this.
    pub bytes_received: u64,
    /// `tcpi_segs_in`: segments received, with or without data.
    pub segs_in: u32,
    /// `tcpi_unacked` (segments sent, not yet acknowledged) and
    /// `tcpi_notsent_bytes` (bytes written, not yet sent): the socket has
    /// data on its way out.
    pub sending: bool,
    /// `tcpi_notsent_bytes`: bytes written and not yet sent (a zero window
    /// holds them back), which a reset discards. On loopback, where the
    /// middlebox runs, what was sent has reached the peer's kernel, and the
    /// peer can still read it after the reset (measured).
    pub notsent_bytes: u32,
    /// `tcpi_snd_wnd` (Linux >= 5.4): the window the peer last advertised,
    /// how much more it would take now; `None` on older kernels.
    pub snd_wnd: Option<u32>,
    /// `tcpi_rcv_wnd` (newer than Linux 6.1): the window this socket last
    /// advertised, 0 once its receive buffer is full; `None` on older kernels.
    pub rcv_wnd: Option<u32>,
}

impl Segments {
    /// Whether the peer's FIN has come, behind the `taken` bytes that came
    /// before it (read, and still in the socket: [`unread`]): it takes one
    /// number in the sequence, which `tcpi_bytes_received` counts. Not the
    /// socket's state, which a FIN that comes after this end closed leaves
    /// at `CLOSE` (found in review: `FIN_WAIT2` hands the connection to a
    /// time-wait entry and marks the socket closed). Read this before
    /// `taken`'s unread bytes, so that bytes arriving between the two make
    /// no FIN.
    pub fn fin_in(&self, taken: u64) -> bool {
        self.bytes_received > taken
    }

    /// Whether a window is closed: the peer's, with this socket's data on
    /// its way out into it (the segments the peer sends are then answers to
    /// this kernel's window probes), or this socket's own, full (the peer's
    /// segments without data are its window probes). Taken for window
    /// probes or their answers: a kernel sends TCP keep-alive only with
    /// nothing to send and nothing in flight, so the side with data held
    /// sends none, though the other side still may between window probes
    /// (backed off up to 2 minutes apart): such a probe is told as a window
    /// probe too.
    pub fn window_closed(&self) -> bool {
        (self.sending && self.snd_wnd == Some(0)) || self.rcv_wnd == Some(0)
    }

    /// How many keep-alive probes arrived between `earlier` and `self` (see
    /// the module docs). `touched`: the middlebox read from or wrote to the
    /// socket in between, so segments without data are ACKs or a FIN of that
    /// traffic, not probes; segments while new bytes or ACKs moved are that
    /// traffic too.
    pub fn probes_since(&self, earlier: &Segments, touched: bool) -> u32 {
        let segments = self.segs_in.wrapping_sub(earlier.segs_in);
        let received = self.bytes_received.wrapping_sub(earlier.bytes_received);
        let acked = self.bytes_acked.wrapping_sub(earlier.bytes_acked);
        if !touched && received == 0 && acked == 0 {
            segments
        } else {
            0
        }
    }
}

/// Whether this platform can read the counters at all.
pub const AVAILABLE: bool = cfg!(target_os = "linux");

/// Byte offsets in `struct tcp_info` (include/uapi/linux/tcp.h).
#[cfg(target_os = "linux")]
mod offsets {
    pub const BYTES_ACKED: usize = 120;
    pub const BYTES_RECEIVED: usize = 128;
    pub const SEGS_IN: usize = 140;
    pub const UNACKED: usize = 24;
    pub const NOTSENT_BYTES: usize = 144;
    pub const SND_WND: usize = 228;
    pub const RCV_WND: usize = 232;
    /// The struct must reach past `tcpi_notsent_bytes` (Linux >= 4.6).
    pub const NEEDED: usize = NOTSENT_BYTES + 4;
}

/// Room for the whole struct of any recent kernel (about 250 bytes in
/// Linux 6.x); the kernel copies at most this many bytes and says how many
/// it wrote.
#[cfg(target_os = "linux")]
#[repr(C, align(8))]
struct Buffer([u8; 512]);

/// `tcpi_state` (offset 0) of a connection whose peer's FIN has arrived and
/// which this end has not closed (`TCP_CLOSE_WAIT`, include/net/tcp_states.h).
const TCP_CLOSE_WAIT: u8 = 8;

/// `TCP_CLOSE` (include/net/tcp_states.h).
const TCP_CLOSE: u8 = 7;

/// Whether the peer's FIN has arrived on `socket` (its state is
/// `CLOSE_WAIT`), also behind bytes not read yet; `None` when it cannot be
/// told (not Linux, or the call failed).
pub fn peer_fin_in(socket: &impl Socket) -> Option<bool> {
    state(socket).map(|state| state == TCP_CLOSE_WAIT)
}

/// Whether the connection is gone on this end (`TCP_CLOSE`): reset, given
/// up on, or (after this end's FIN was acknowledged) handed to a time-wait
/// entry by the peer's FIN. `None` when it cannot be told.
pub fn closed(socket: &impl Socket) -> Option<bool> {
    state(socket).map(|state| state == TCP_CLOSE)
}

/// What [`peer_fin_in`] and [`closed`] take: a socket's descriptor on Unix,
/// anything elsewhere (where they know nothing).
#[cfg(unix)]
pub trait Socket: std::os::fd::AsRawFd {}
#[cfg(unix)]
impl<T: std::os::fd::AsRawFd> Socket for T {}
/// What [`peer_fin_in`] and [`closed`] take: anything here.
#[cfg(not(unix))]
pub trait Socket {}
#[cfg(not(unix))]
impl<T> Socket for T {}

/// `tcpi_state`; `None` when it cannot be read (not Linux, or the call
/// failed).
#[cfg(target_os = "linux")]
fn state(socket: &impl Socket) -> Option<u8> {
    let (buffer, len) = tcp_info(socket)?;
    (len >= 1).then(|| buffer.0[0])
}

/// Not Linux: not known.
#[cfg(not(target_os = "linux"))]
fn state(_socket: &impl Socket) -> Option<u8> {
    None
}

/// The socket's counters, or `None` when they cannot be read (not Linux, a
/// kernel older than 4.6, or a socket that is gone).
#[cfg(target_os = "linux")]
pub fn read(socket: &impl std::os::fd::AsRawFd) -> Option<Segments> {
    let (buffer, len) = tcp_info(socket)?;
    if len < offsets::NEEDED {
        return None;
    }
    let bytes = &buffer.0[..len];
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    Some(Segments {
        bytes_acked: u64_at(offsets::BYTES_ACKED)?,
        bytes_received: u64_at(offsets::BYTES_RECEIVED)?,
        segs_in: u32_at(offsets::SEGS_IN)?,
        sending: u32_at(offsets::UNACKED)? > 0 || u32_at(offsets::NOTSENT_BYTES)? > 0,
        notsent_bytes: u32_at(offsets::NOTSENT_BYTES)?,
        snd_wnd: u32_at(offsets::SND_WND),
        rcv_wnd: u32_at(offsets::RCV_WND),
    })
}

/// Bytes of data in `socket`'s receive queue not read yet (`FIONREAD`, as
/// `SIOCINQ`): Linux leaves the peer's FIN out, in every state (found in
/// review: `tcpi_bytes_received` counts it, also once the socket is closed,
/// so a side's FIN read as one byte of data). `None` when it cannot be told.
#[cfg(target_os = "linux")]
pub fn unread(socket: &impl std::os::fd::AsRawFd) -> Option<u64> {
    let mut queued: libc::c_int = 0;
    // SAFETY: `FIONREAD` writes one `int` through the pointer, which points
    // to a live, writable `c_int`. The file descriptor is borrowed from a
    // socket that outlives the call; a stale or non-TCP descriptor only makes
    // the call fail with an error code.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::FIONREAD, &mut queued) };
    if rc != 0 {
        return None;
    }
    u64::try_from(queued).ok()
}

/// Not Linux: not known.
#[cfg(not(target_os = "linux"))]
pub fn unread<S>(_socket: &S) -> Option<u64> {
    None
}

/// `getsockopt(TCP_INFO)` into a buffer: it and the bytes the kernel wrote.
#[cfg(target_os = "linux")]
fn tcp_info(socket: &impl std::os::fd::AsRawFd) -> Option<(Buffer, usize)> {
    let mut buffer = Buffer([0; 512]);
    let mut len = libc::socklen_t::try_from(buffer.0.len()).ok()?;
    // SAFETY: `buffer` is a live, writable allocation of `len` bytes, and
    // `len` is a valid `socklen_t` the kernel reads and then overwrites with
    // the number of bytes it copied (never more than it was given). The file
    // descriptor is borrowed from a socket that outlives the call; a stale or
    // non-TCP descriptor only makes the call fail with an error code.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buffer.0.as_mut_ptr().cast::<libc::c_void>(),
            &mut len,
        )
    };
    let len = usize::try_from(len).ok()?;
    if rc != 0 || len > buffer.0.len() {
        return None;
    }
    Some((buffer, len))
}

/// Not Linux: probes cannot be seen here.
#[cfg(not(target_os = "linux"))]
pub fn read<S>(_socket: &S) -> Option<Segments> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_without_data_on_an_untouched_socket_are_probes() {
        let before = Segments {
            bytes_acked: 10,
            bytes_received: 2,
            segs_in: 5,
            sending: false,
            notsent_bytes: 0,
            snd_wnd: None,
            rcv_wnd: None,
        };
        let probe = Segments {
            segs_in: 6,
            ..before
        };
        assert_eq!(probe.probes_since(&before, false), 1);
        assert_eq!(probe.probes_since(&before, true), 0, "touched: an ACK");
        let ack = Segments {
            bytes_acked: 20,
            segs_in: 6,
            ..before
        };
        assert_eq!(ack.probes_since(&before, false), 0, "an ACK of ours");
        let data = Segments {
            segs_in: 6,
            bytes_received: 3,
            ..before
        };
        assert_eq!(data.probes_since(&before, false), 0, "a data segment");
        let two = Segments {
            segs_in: 7,
            ..before
        };
        assert_eq!(two.probes_since(&before, false), 2, "two probes");
    }

    /// A window is closed when this socket's own is full, or when the
    /// peer's is and this socket has data for it; a peer's zero window with
    /// nothing to send is no window probing, nor an unknown window.
    #[test]
    fn a_window_is_closed_by_a_full_receive_buffer_or_sending_into_zero() {
        let open = Segments {
            sending: true,
            snd_wnd: Some(4096),
            rcv_wnd: Some(65_483),
            ..Segments::default()
        };
        assert!(!open.window_closed());
        let full = Segments {
            rcv_wnd: Some(0),
            ..open
        };
        assert!(full.window_closed(), "its own window full");
        let stalled = Segments {
            snd_wnd: Some(0),
            ..open
        };
        assert!(stalled.window_closed(), "sending into the peer's zero");
        let idle = Segments {
            sending: false,
            ..stalled
        };
        assert!(!idle.window_closed(), "nothing to send");
        assert!(!Segments::default().window_closed(), "not known");
    }

    /// The counters of a socket as measured on Linux 6.x when a raw socket
    /// sent it a probe with one garbage octet (RFC 1122 §4.2.3.6: the last
    /// octet it had already received, again), then one with none: both are
    /// probes (`tcpi_data_segs_in` rose by one with the first, which is why
    /// it is not what tells data from probes).
    #[test]
    fn a_probe_with_one_garbage_octet_is_a_probe() {
        let before = Segments {
            bytes_acked: 0,
            bytes_received: 1,
            segs_in: 3,
            sending: false,
            notsent_bytes: 0,
            snd_wnd: None,
            rcv_wnd: None,
        };
        let one_octet = Segments {
            segs_in: 4,
            ..before
        };
        let no_octet = Segments {
            segs_in: 5,
            ..before
        };
        assert_eq!(one_octet.probes_since(&before, false), 1);
        assert_eq!(no_octet.probes_since(&one_octet, false), 1);
    }

    /// A client and the server's end of its connection, on loopback.
    #[cfg(target_os = "linux")]
    async fn connected() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn reads_counters_of_a_real_socket() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, mut server) = connected().await;
        let before = read(&server).expect("TCP_INFO on Linux");
        client.write_all(b"hello").await.unwrap();
        let mut buf = [0; 5];
        server.read_exact(&mut buf).await.unwrap();
        let after = read(&server).unwrap();
        assert!(after.segs_in > before.segs_in);
        assert_eq!(after.bytes_received, before.bytes_received + 5);
    }

    /// A FIN that comes after this end closed its side is told all the same
    /// by the count, though the socket's state then says `CLOSE`, not
    /// `CLOSE_WAIT` (found in review: the state missed it).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_fin_after_this_end_closed_is_told_by_the_count() {
        use tokio::io::AsyncWriteExt;
        let (mut client, mut server) = connected().await;
        server.shutdown().await.unwrap();
        client.write_all(&[b'x'; 100]).await.unwrap();
        client.shutdown().await.unwrap();
        for _ in 0..500 {
            if read(&server).unwrap().bytes_received == 101 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let seen = read(&server).unwrap();
        assert!(seen.fin_in(100), "{seen:?}");
        assert_eq!(peer_fin_in(&server), Some(false), "not CLOSE_WAIT");
        assert_eq!(unread(&server), Some(100));
    }

    /// The peer's FIN takes a number in the sequence, and Linux counts it in
    /// `tcpi_bytes_received`, also once the socket is closed; [`unread`]
    /// leaves it out (found in review: a look at a side whose FIN had come
    /// counted it as a byte of data).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_fin_is_not_data() {
        use tokio::io::AsyncWriteExt;
        let (mut client, mut server) = connected().await;
        client.write_all(&[b'x'; 100]).await.unwrap();
        client.shutdown().await.unwrap();
        for _ in 0..500 {
            if peer_fin_in(&server) == Some(true) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        assert_eq!(peer_fin_in(&server), Some(true), "the FIN arrived");
        let seen = read(&server).unwrap();
        assert!(seen.fin_in(100), "behind 100 bytes not read");
        assert!(!seen.fin_in(101));
        assert_eq!(seen.bytes_received, 101, "Linux counts it");
        assert_eq!(unread(&server), Some(100));
        // Closed both ways (the state is then `TCP_CLOSE`): still 100.
        server.shutdown().await.unwrap();
        drop(client);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(read(&server).unwrap().bytes_received, 101);
        assert_eq!(unread(&server), Some(100));
    }
}
