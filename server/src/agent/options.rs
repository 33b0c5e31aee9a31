//! The agent's options and the pure rules Node derives from them.
//!
//! [`AgentOptions`] (in `protocol`) carries Node's option names and defaults;
//! this module holds the rules that follow from them, each with where Node
//! states or implements it. "Node" means the current LTS line (v24); where a
//! rule changed between versions, that is said next to it.

use protocol::{AgentOptions, TimeoutSource};

/// The `Connection` header a request carries and whether the client means to
/// keep its socket (Node's `req.shouldKeepAlive` before the response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRule {
    /// The header's value, as sent.
    pub header: String,
    /// `req.shouldKeepAlive`: whether the socket may be reused after the
    /// response (the response can still say no).
    pub should_keep_alive: bool,
    /// The request itself said `close` (for the reason a socket closes).
    pub says_close: bool,
    /// The request set `Connection` itself (written before `Host`, as Node
    /// writes the caller's headers first).
    pub own: bool,
}

/// Which `Connection` header a request sends and whether its socket may be
/// kept, version-independent since Node v0.12:
///
/// - Node docs, `new Agent([options])`, `keepAlive`: "The `Connection:
///   keep-alive` header is always sent when using an agent except when the
///   `Connection` header is explicitly specified or when the `keepAlive` and
///   `maxSockets` options are respectively set to `false` and `Infinity`, in
///   which case `Connection: close` will be used."
/// - Source, `lib/_http_client.js`, `ClientRequest` constructor: with an
///   agent, `shouldKeepAlive = !( !agent.keepAlive && !NumberIsFinite(
///   agent.maxSockets))`; `lib/_http_outgoing.js`, `_storeHeader`: with no
///   `Connection` set by the caller, `Connection: keep-alive` when
///   `shouldKeepAlive` (and an agent is used), else `Connection: close`.
/// - A `Connection` the caller sets (`matchHeader` in `_http_outgoing.js`):
///   sent as is; a value matching `/(?:^|\W)close(?:$|\W)/i` only marks the
///   message as the last one (`shouldKeepAlive` stays as the agent decided,
///   the server's `Connection: close` then ends it), any other value sets
///   `shouldKeepAlive = true`.
///
/// So `keepAlive: false` with a finite `maxSockets` sends `keep-alive` and
/// still destroys the socket after the response (see the pool's rules).
pub fn connection_rule(options: &AgentOptions, own: Option<&str>) -> ConnectionRule {
    let agent_keeps = options.keep_alive || options.max_sockets.is_some();
    match own {
        Some(value) => {
            let says_close = is_close(value);
            ConnectionRule {
                header: value.to_owned(),
                should_keep_alive: agent_keeps || !says_close,
                says_close,
                own: true,
            }
        }
        None => ConnectionRule {
            header: if agent_keeps { "keep-alive" } else { "close" }.to_owned(),
            should_keep_alive: agent_keeps,
            says_close: !agent_keeps,
            own: false,
        },
    }
}

/// Node's `RE_CONN_CLOSE` (`/(?:^|\W)close(?:$|\W)/i`, `lib/_http_common.js`).
pub fn is_close(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    lower.match_indices("close").any(|(at, _)| {
        let before_ok = at == 0 || !word(bytes[at - 1]);
        let end = at + "close".len();
        let after_ok = end == bytes.len() || !word(bytes[end]);
        before_ok && after_ok
    })
}

/// The `TCP_KEEPIDLE` Node asks the kernel for, in whole seconds, or `None`
/// when that rounds down to 0.
///
/// - `lib/_http_agent.js`, `Agent.prototype.createSocket`: when `keepAlive`
///   is true the socket is created with `keepAlive: true,
///   keepAliveInitialDelay: keepAliveMsecs` (so probes are armed from the
///   connect, not only once the socket is free; `keepSocketAlive` repeats
///   `setKeepAlive(true, keepAliveMsecs)` when it is freed. Before
///   nodejs/node#43380, 2022, `keepAliveMsecs` did not reach the kernel:
///   sockets were created with keep-alive on but an initial delay of 0, the
///   system's, and `keepSocketAlive` then did nothing (the PR's own
///   description); older versions armed probes only once a socket had been
///   freed, nodejs/node#35842 and #41965). When `keepAlive`
///   is false nothing is set: Node docs, `keepAliveMsecs`: "Ignored when the
///   `keepAlive` option is `false` or `undefined`."
/// - `lib/net.js`, `Socket` constructor and `Socket.prototype.setKeepAlive`:
///   `~~(initialDelay / 1000)`, i.e. **rounded down** to whole seconds (1999
///   ms is 1 s). Node docs, `socket.setKeepAlive()`: "Setting `0` for
///   `initialDelay` will leave the value unchanged from the default (or
///   previous) setting", and enabling sets `SO_KEEPALIVE=1`,
///   `TCP_KEEPIDLE=initialDelay`, `TCP_KEEPCNT=10`, `TCP_KEEPINTVL=1` (libuv
///   `uv__tcp_keepalive`). So a `keepAliveMsecs` under 1000 does **not**
///   become 1 s: `SO_KEEPALIVE` is on and the first probe waits for the
///   system default (`net.ipv4.tcp_keepalive_time`, 7200 s on Linux), and
///   the probes keep the system's interval and count too. The lab does the
///   same and says so (`idle_s: null` in the `keepalive` event, with the
///   interval and count read back).
pub fn keepalive_idle_s(keep_alive_msecs: u64) -> Option<u32> {
    let seconds = keep_alive_msecs / 1000;
    (seconds > 0).then(|| u32::try_from(seconds).unwrap_or(u32::MAX))
}

/// `TCP_KEEPINTVL` libuv sets with keep-alive (seconds).
pub const KEEPALIVE_INTERVAL_S: u32 = 1;
/// `TCP_KEEPCNT` libuv sets with keep-alive.
pub const KEEPALIVE_COUNT: u32 = 10;

/// What a server's `Keep-Alive` response header does to a socket going to
/// the free pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// No usable hint: the header is absent or does not start `timeout=N`.
    None,
    /// `N * 1000 - agentKeepAliveTimeoutBuffer` is 0 or less: Node will not
    /// keep the socket ("the server timeout is too short").
    TooShort,
    /// The hint minus the buffer, in milliseconds.
    Ms(u64),
}

/// Reads the server's hint the way `Agent.prototype.keepSocketAlive`
/// (`lib/_http_agent.js`) does: `/^timeout=(\d+)/` on the `Keep-Alive`
/// header (case-sensitive, at its very start), `N * 1000 - buffer`,
/// clamped at 0. Version-dependent: older lines used the hint as is; the
/// 1000 ms safety buffer came with nodejs/node#54863 (2024), and became the
/// `agentKeepAliveTimeoutBuffer` option in v24.7.0 / v22.20.0
/// (nodejs/node#59315; Node docs, `new Agent([options])`).
pub fn hint(keep_alive_header: Option<&str>, buffer_ms: u64) -> Hint {
    let Some(rest) = keep_alive_header.and_then(|v| v.strip_prefix("timeout=")) else {
        return Hint::None;
    };
    let digits: &str = &rest[..rest.bytes().take_while(u8::is_ascii_digit).count()];
    if digits.is_empty() {
        return Hint::None;
    }
    let seconds: u64 = digits.parse().unwrap_or(u64::MAX);
    match seconds.saturating_mul(1000).checked_sub(buffer_ms) {
        Some(ms) if ms > 0 => Hint::Ms(ms),
        _ => Hint::TooShort,
    }
}

/// `keepSocketAlive`'s verdict for a socket going to the free pool: whether
/// it may be kept, and the idle timeout it gets (with where it comes from).
///
/// Source: `Agent.prototype.keepSocketAlive` (`lib/_http_agent.js`):
/// `agentTimeout = options.timeout || 0`; a hint of 0 ms refuses the socket;
/// otherwise the hint replaces the agent's timeout **only when it is
/// shorter than a non-zero agent timeout** (`serverHintTimeout <
/// agentTimeout`). So with no agent `timeout`, current Node ignores the
/// server's `Keep-Alive: timeout=5` (beyond refusing hints ≤ the buffer) and
/// keeps the free socket until the server closes it; this is still so in
/// v26 (see microsoft/playwright#42698).
pub fn free_timeout(
    agent_timeout: Option<u64>,
    hint: Hint,
) -> (bool, Option<(u64, TimeoutSource)>) {
    let agent = agent_timeout.map(|ms| (ms, TimeoutSource::Agent));
    match hint {
        Hint::None => (true, agent),
        Hint::TooShort => (false, agent),
        Hint::Ms(ms) => match agent_timeout {
            Some(agent_ms) if ms < agent_ms => (true, Some((ms, TimeoutSource::KeepAliveHint))),
            _ => (true, agent),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(keep_alive: bool, max_sockets: Option<u32>) -> AgentOptions {
        AgentOptions {
            keep_alive,
            max_sockets,
            ..AgentOptions::default()
        }
    }

    #[test]
    fn connection_header_follows_keep_alive_and_max_sockets() {
        let cases = [
            (false, None, "close", false),
            (false, Some(20), "keep-alive", true),
            (true, None, "keep-alive", true),
            (true, Some(2), "keep-alive", true),
        ];
        for (keep_alive, max, header, keep) in cases {
            let rule = connection_rule(&options(keep_alive, max), None);
            assert_eq!(rule.header, header, "{keep_alive} {max:?}");
            assert_eq!(rule.should_keep_alive, keep, "{keep_alive} {max:?}");
            assert_eq!(header, options(keep_alive, max).connection_header());
        }
    }

    #[test]
    fn a_connection_header_of_the_request_wins() {
        let rule = connection_rule(&options(true, None), Some("close"));
        assert_eq!(rule.header, "close");
        assert!(rule.says_close && rule.should_keep_alive && rule.own);
        let rule = connection_rule(&options(false, None), Some("keep-alive"));
        assert!(rule.should_keep_alive, "any value but close keeps");
        let rule = connection_rule(&options(false, None), Some("Upgrade, Close"));
        assert!(rule.says_close && !rule.should_keep_alive);
        assert!(!is_close("closed") && !is_close("enclose") && is_close("x,close"));
    }

    #[test]
    fn keepalive_msecs_round_down_to_whole_seconds() {
        assert_eq!(keepalive_idle_s(1000), Some(1));
        assert_eq!(keepalive_idle_s(1999), Some(1));
        assert_eq!(keepalive_idle_s(45_000), Some(45));
        assert_eq!(keepalive_idle_s(999), None, "0 s leaves the system default");
    }

    #[test]
    fn the_keep_alive_hint_only_shortens_an_agent_timeout() {
        assert_eq!(hint(Some("timeout=5, max=100"), 1000), Hint::Ms(4000));
        assert_eq!(hint(Some("timeout=1"), 1000), Hint::TooShort);
        assert_eq!(hint(Some("max=100, timeout=5"), 1000), Hint::None);
        assert_eq!(hint(Some("Timeout=5"), 1000), Hint::None);
        assert_eq!(hint(None, 1000), Hint::None);
        assert_eq!(hint(Some("timeout=2"), 0), Hint::Ms(2000));
        assert_eq!(free_timeout(None, Hint::Ms(4000)), (true, None));
        assert_eq!(
            free_timeout(Some(10_000), Hint::Ms(4000)),
            (true, Some((4000, TimeoutSource::KeepAliveHint)))
        );
        assert_eq!(
            free_timeout(Some(3000), Hint::Ms(4000)),
            (true, Some((3000, TimeoutSource::Agent)))
        );
        assert!(!free_timeout(None, Hint::TooShort).0);
    }
}
