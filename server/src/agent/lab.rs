//! The agent in the lab: started and stopped by a session's page over the
//! events WebSocket (`agent_start`, `agent_stop`), running in the server
//! process against the lab's own listeners, its events recorded through the
//! [`Tracker`](crate::tracker::Tracker) for that session's viewers only.
//!
//! Every request names the viewer's session (`session=` in its query, so the
//! server attributes its connections to that session like the page's own)
//! and carries the tag `id=a<run>-<n>`, which the server's
//! `request_started` events show: the page joins the agent's view (its
//! `request` events, its sockets' `connect` addresses) with the server's
//! (`request_started` targets, `connection_opened` peers).
//!
//! Capped like every resource: one agent per session at a time,
//! [`MAX_RUNNING_PER_ADDRESS`] for one client address and [`MAX_RUNNING`] in
//! the server, [`MAX_COUNT`] requests, [`MAX_SOCKETS`] sockets,
//! [`MAX_DURATION`]; it stops on `agent_stop`, when the session's last viewer
//! leaves, and at shutdown.
//!
//! Its sockets come from loopback for every participant: each is bound and
//! registered as the agent's for its page's client before it connects
//! ([`crate::peers::Peers::on_behalf`]), so the lab's caps per address
//! charge that participant, not the lab's own machine.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use protocol::{
    AgentEvent, AgentOptions, AgentRequestSpec, AgentTarget, ErrorBody, FinishReason, ServerEvent,
    SessionId,
};
use tokio::sync::watch;

use super::engine::{Agent, AgentConfig, Binder, Destination, EventSink};
use super::run::{Plan, run};
use crate::Lab;
use crate::peers::Via;
use crate::sessions::{Access, Owner};

// The caps a page sees are `protocol`'s, so the page's agent composer
// offers exactly what the server accepts.
/// Requests in one run.
pub const MAX_COUNT: u32 = protocol::LAB_MAX_COUNT;
/// Sockets one agent may open at once (also the most `max_sockets` and
/// `max_total_sockets` may say); with `Infinity`, requests past it wait in
/// the agent's queue.
pub const MAX_SOCKETS: u32 = protocol::LAB_MAX_SOCKETS;
/// Longest run, linger included; the run ends (`duration_cap`) after it.
pub const MAX_DURATION: Duration = Duration::from_millis(protocol::LAB_MAX_DURATION_MS);
/// Longest time between two requests.
pub const MAX_EVERY_MS: u64 = protocol::LAB_MAX_EVERY_MS;
/// Agents running at once, server-wide.
pub const MAX_RUNNING: usize = 64;
/// Agents running at once for one client address (a quarter of the
/// server's): one participant's sessions cannot take every agent.
pub const MAX_RUNNING_PER_ADDRESS: usize = MAX_RUNNING / 4;
/// Longest request path (with the lab's tags), like the lab's stored targets.
pub const MAX_PATH: usize = protocol::MAX_TARGET_LEN;
/// How often a run checks that its session still has a viewer.
const VIEWER_POLL: Duration = Duration::from_millis(200);
/// Longest connect to one of the lab's own listeners.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A running agent: how to stop it.
#[derive(Debug)]
struct Running {
    stop: watch::Sender<bool>,
    /// The client address it is charged to (its page's), if it has one.
    ip: Option<IpAddr>,
}

fn running() -> MutexGuard<'static, BTreeMap<SessionId, Running>> {
    static RUNNING: Mutex<BTreeMap<SessionId, Running>> = Mutex::new(BTreeMap::new());
    RUNNING.lock().unwrap_or_else(|p| p.into_inner())
}

static NEXT_RUN: AtomicU64 = AtomicU64::new(1);

fn refuse(error: impl Into<String>, hint: impl Into<String>) -> Option<ServerEvent> {
    Some(ServerEvent::Error(ErrorBody::new(error, hint)))
}

/// Whether `session` has a running agent.
pub fn is_running(session: &SessionId) -> bool {
    running().contains_key(session)
}

/// `agent_stop`: stops the viewer's agent (its `finished` event follows), or
/// says there is none.
pub fn stop(access: &Access) -> Option<ServerEvent> {
    let Some(Owner::Session(session)) = access.owner() else {
        return refuse(
            "only a session's page runs an agent",
            "open the lab page (it has a session) and start the agent there",
        );
    };
    match running().get(session) {
        Some(run) => {
            run.stop.send_replace(true);
            None
        }
        None => refuse(
            "no agent is running for this session",
            r#"start one with {"type":"agent_start",…}; a finished run needs no stop"#,
        ),
    }
}

/// Where `target` is among the lab's listeners (an unspecified address,
/// `0.0.0.0` in a workshop, is reached on loopback).
fn destination(lab: &Lab, target: AgentTarget) -> Result<SocketAddr, ErrorBody> {
    let bad = |error: &str, hint: &str| ErrorBody::new(error, hint);
    let listeners = lab.listeners();
    let Some(main) = listeners.first().copied() else {
        return Err(bad("the lab is not listening yet", "try again in a moment"));
    };
    let addr = match target {
        AgentTarget::Same => main,
        AgentTarget::SecondPort => listeners
            .iter()
            .copied()
            .find(|a| a.port() != main.port() && a.is_ipv4() == main.is_ipv4())
            .ok_or_else(|| {
                bad(
                    "this lab has no second port",
                    "send \"target\": \"same\", or start the lab with --second-port",
                )
            })?,
        AgentTarget::Middlebox => middlebox_address(lab).ok_or_else(|| {
            bad(
                "this lab has no middlebox to send the agent through",
                "send \"target\": \"same\" or \"second-port\"",
            )
        })?,
    };
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(SocketAddr::new(ip, addr.port()))
}

/// The lab's middlebox listener (in front of the main port), if it serves one.
fn middlebox_address(lab: &Lab) -> Option<SocketAddr> {
    lab.middlebox().listeners().first().copied()
}

/// `path` with the page's own `session=` and `id=` replaced by the lab's.
fn tagged_path(path: &str, session: &SessionId, tag: &str) -> String {
    let (base, query) = path.split_once('?').unwrap_or((path, ""));
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name != "session" && name != "id" {
            out.append_pair(&name, &value);
        }
    }
    out.append_pair("session", session.as_str());
    out.append_pair("id", tag);
    format!("{base}?{}", out.finish())
}

/// Makes each of the agent's sockets on behalf of `client` (the address
/// the page's events socket is charged to, fixed at its accept): bound to a
/// port of its own (on one of the lab's own loopback addresses,
/// `peers::own_socket`) and registered before it connects.
fn binder(lab: &Lab, client: IpAddr) -> Binder {
    let lab = lab.clone();
    Binder(Arc::new(move |addr: SocketAddr| {
        let socket = crate::peers::own_socket(addr.ip())?;
        let local = socket.local_addr()?;
        let hold = lab.peers().charged_to(local, client, Via::Agent);
        Ok((
            socket,
            Box::new(hold) as Box<dyn std::any::Any + Send + Sync>,
        ))
    }))
}

/// Checks an `agent_start` against the lab's caps.
fn check(
    options: &AgentOptions,
    request: &AgentRequestSpec,
    every_ms: u64,
    count: u32,
    linger_ms: u64,
) -> Result<(), ErrorBody> {
    let bad = |error: String, hint: String| ErrorBody::new(error, hint);
    options.validate()?;
    for (name, value) in [
        ("max_sockets", options.max_sockets),
        ("max_total_sockets", options.max_total_sockets),
    ] {
        if value.is_some_and(|n| n > MAX_SOCKETS) {
            return Err(bad(
                format!("`{name}` over {MAX_SOCKETS}, the lab's cap on an agent's sockets"),
                format!(
                    "send {name} between 1 and {MAX_SOCKETS}, or null for Infinity (then at most {MAX_SOCKETS} sockets open, the rest wait)"
                ),
            ));
        }
    }
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(bad(
            format!("`count` = {count} is out of range"),
            format!("send count between 1 and {MAX_COUNT}"),
        ));
    }
    if every_ms > MAX_EVERY_MS {
        return Err(bad(
            format!("`every_ms` = {every_ms} is out of range"),
            format!("send every_ms between 0 and {MAX_EVERY_MS}"),
        ));
    }
    let cap_ms = u64::try_from(MAX_DURATION.as_millis()).unwrap_or(u64::MAX);
    let planned = every_ms
        .saturating_mul(u64::from(count - 1))
        .saturating_add(linger_ms);
    if planned > cap_ms {
        return Err(bad(
            format!("the run would take {planned} ms (every_ms × (count − 1) + linger_ms)"),
            format!("keep it within {cap_ms} ms: fewer requests, or less time between them"),
        ));
    }
    if !request.method.eq_ignore_ascii_case("GET") && !request.method.eq_ignore_ascii_case("HEAD") {
        return Err(bad(
            format!("method `{}` is not supported", request.method),
            "the agent sends requests without a body: GET or HEAD".into(),
        ));
    }
    let path = &request.path;
    // No `#`: a fragment is never sent, and the session the lab appends
    // would go with it (the request would reach the server naming none).
    if !path.starts_with('/')
        || path.len() > MAX_PATH - 100
        || path.bytes().any(|b| !b.is_ascii_graphic() || b == b'#')
    {
        return Err(bad(
            format!("`{}` is not a lab path", protocol::truncate_target(path)),
            "send a path with its query, e.g. /api/hang?max_ms=5000 (no spaces or `#`, \
             percent-encoded)"
                .into(),
        ));
    }
    // The agent sends the query as it decodes it (`tagged_path`): one that
    // is not UTF-8 once decoded would go out as U+FFFD, not as asked.
    if let Some((_, query)) = path.split_once('?')
        && query
            .split('&')
            .flat_map(|pair| pair.splitn(2, '='))
            .any(|part| crate::params::decoded(part).is_none())
    {
        return Err(bad(
            format!(
                "`{}`: its query is not UTF-8 once percent-decoded",
                protocol::truncate_target(path)
            ),
            "percent-encode UTF-8 text, e.g. id=caf%C3%A9".into(),
        ));
    }
    if let Some(value) = &request.connection
        && (value.is_empty()
            || value.len() > 64
            || !value.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
    {
        return Err(bad(
            "`connection` is not a header value".into(),
            "send e.g. \"close\" or \"keep-alive\", or leave it out".into(),
        ));
    }
    Ok(())
}

/// `agent_start` from a viewer with `access` whose events socket is charged
/// to `ip` (`Conn::charged_ip`, read at its accept): starts the session's
/// agent, or says why not. `None` on success: the run's own events follow.
#[expect(
    clippy::too_many_arguments,
    reason = "the fields of one agent_start message, taken apart by its caller"
)]
pub fn start(
    lab: &Lab,
    access: &Access,
    ip: Option<IpAddr>,
    options: AgentOptions,
    request: AgentRequestSpec,
    every_ms: u64,
    count: u32,
    linger_ms: u64,
) -> Option<ServerEvent> {
    let Some(owner @ Owner::Session(session)) = access.owner() else {
        return refuse(
            "only a session's page runs an agent",
            "open the lab page (it has a session) and start the agent there",
        );
    };
    if let Err(body) = check(&options, &request, every_ms, count, linger_ms) {
        return Some(ServerEvent::Error(body));
    }
    let addr = match destination(lab, request.target) {
        Ok(addr) => addr,
        Err(body) => return Some(ServerEvent::Error(body)),
    };
    let (stop_tx, mut stop_rx) = watch::channel(false);
    {
        let mut running = running();
        if running.contains_key(session) {
            return refuse(
                "this session's agent is already running",
                r#"wait for its "finished" event, or send {"type":"agent_stop"} first"#,
            );
        }
        if running.len() >= MAX_RUNNING {
            return refuse(
                format!("{MAX_RUNNING} agents are running in this lab, its cap"),
                "try again when one has finished",
            );
        }
        if let Some(ip) = ip {
            let theirs = running.values().filter(|r| r.ip == Some(ip)).count();
            if theirs >= MAX_RUNNING_PER_ADDRESS {
                return refuse(
                    format!(
                        "{ip} already runs {MAX_RUNNING_PER_ADDRESS} agents, the cap per address"
                    ),
                    "stop one of your other pages' agents, or wait for one to finish",
                );
            }
            if crate::peers::over_busy_share(
                running.len(),
                MAX_RUNNING,
                theirs,
                MAX_RUNNING_PER_ADDRESS,
            ) {
                return refuse(
                    format!(
                        "{} of the lab's {MAX_RUNNING} agents are running; while it is this busy an address running {} or more starts no more, and {ip} runs {theirs}",
                        running.len(),
                        crate::peers::busy_share(MAX_RUNNING_PER_ADDRESS)
                    ),
                    "stop one of your other pages' agents, or wait for one to finish: the rest is kept for participants who run few",
                );
            }
        }
        running.insert(session.clone(), Running { stop: stop_tx, ip });
    }
    let run_id = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
    let sink: EventSink = {
        let lab = lab.clone();
        let session = session.clone();
        Arc::new(move |event: AgentEvent| {
            lab.tracker().emit(|at_us| ServerEvent::Agent {
                run: run_id,
                session: Some(session.clone()),
                event,
                at_us,
            });
        })
    };
    let agent = Agent::new(
        AgentConfig {
            options,
            ceiling: Some(MAX_SOCKETS as usize),
            connect_timeout: CONNECT_TIMEOUT,
            binder: ip.map(|client| binder(lab, client)),
        },
        sink,
    );
    let host = addr.to_string();
    let path_session = session.clone();
    let base = request.path.clone();
    let plan = Plan {
        dest: Destination {
            addr,
            fallbacks: Vec::new(),
            host: host.clone(),
        },
        method: request.method.to_ascii_uppercase(),
        path: Box::new(move |n| tagged_path(&base, &path_session, &format!("a{run_id}-{n}"))),
        connection: request.connection.clone(),
        every: Duration::from_millis(every_ms),
        count,
        linger: Duration::from_millis(linger_ms),
        max_duration: MAX_DURATION,
        url: format!("http://{host}{}", request.path),
    };
    let lab = lab.clone();
    let owner = owner.clone();
    let session = session.clone();
    tokio::spawn(async move {
        let _token = lab.task_token();
        let stop = async {
            let viewer_gone = async {
                loop {
                    tokio::time::sleep(VIEWER_POLL).await;
                    if !lab.sessions().participant(&owner).is_some_and(|p| p.online) {
                        break;
                    }
                }
            };
            tokio::select! {
                _ = stop_rx.wait_for(|s| *s) => FinishReason::Stopped,
                () = viewer_gone => FinishReason::ViewerLeft,
                () = lab.shutting_down() => FinishReason::Shutdown,
            }
        };
        run(agent, plan, stop).await;
        running().remove(&session);
    });
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_carry_the_labs_session_and_tag_only() {
        let session = SessionId::parse("s-1").unwrap();
        assert_eq!(
            tagged_path(
                "/api/hang?max_ms=500&session=s-other&id=x",
                &session,
                "a1-2"
            ),
            "/api/hang?max_ms=500&session=s-1&id=a1-2"
        );
        assert_eq!(
            tagged_path("/api/fast", &session, "a3-1"),
            "/api/fast?session=s-1&id=a3-1"
        );
    }

    #[test]
    fn caps_are_checked_with_hints() {
        let request = AgentRequestSpec {
            method: "GET".into(),
            path: "/api/fast".into(),
            target: AgentTarget::Same,
            connection: None,
        };
        let options = AgentOptions::default();
        assert!(check(&options, &request, 100, 3, 0).is_ok());
        assert!(check(&options, &request, 100, 201, 0).is_err());
        assert!(check(&options, &request, 100, 0, 0).is_err());
        assert!(check(&options, &request, 60_000, 3, 0).is_ok());
        assert!(
            check(&options, &request, 60_000, 4, 0).is_err(),
            "over 120 s"
        );
        let wide = AgentOptions {
            max_sockets: Some(33),
            ..AgentOptions::default()
        };
        assert!(
            check(&wide, &request, 100, 3, 0)
                .unwrap_err()
                .hint
                .contains("32")
        );
        for path in [
            "api/fast",
            "/api/fast now",
            "/\u{7f}",
            "/api/hang#?max_ms=1000",
            // Not UTF-8 once decoded: it would go out as U+FFFD (found in
            // review).
            "/api/fast?id=%ff",
            "/api/fast?%fe=1",
        ] {
            let request = AgentRequestSpec {
                path: path.into(),
                ..request.clone()
            };
            assert!(check(&options, &request, 100, 3, 0).is_err(), "{path}");
        }
        let utf8 = AgentRequestSpec {
            path: "/api/fast?id=caf%C3%A9&flag".into(),
            ..request.clone()
        };
        assert!(check(&options, &utf8, 100, 3, 0).is_ok());
        let post = AgentRequestSpec {
            method: "POST".into(),
            ..request
        };
        assert!(check(&options, &post, 100, 3, 0).is_err());
    }
}
