//! A run: `count` requests, one every `every` (the experiment's
//! `setInterval`), through one agent, then an optional linger while free
//! sockets time out or are closed by the server, then [`Agent::stop`]
//! (every socket destroyed, as by Node's `agent.destroy()`).
//! Shared by the command line and the lab.

use std::future::Future;
use std::time::Duration;

use protocol::{AgentEvent, FinishReason};
use tokio::time::Instant;

use super::engine::{Agent, Destination};

/// What a run sends.
pub struct Plan {
    /// Where.
    pub dest: Destination,
    /// `GET` or `HEAD`.
    pub method: String,
    /// The path (with query) of request `n` (from 1).
    pub path: Box<dyn Fn(u32) -> String + Send + Sync>,
    /// A `Connection` header the requests set themselves.
    pub connection: Option<String>,
    /// One request every this long (zero: all at once).
    pub every: Duration,
    /// How many.
    pub count: u32,
    /// How long to keep the agent after the last request ends (its free
    /// sockets may time out or be closed by the server meanwhile); ends
    /// early once no socket is open.
    pub linger: Duration,
    /// The run ends (`duration_cap`) after this long, whatever is left.
    pub max_duration: Duration,
    /// The URL for the `started` event.
    pub url: String,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("dest", &self.dest)
            .field("method", &self.method)
            .field("every", &self.every)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

/// Runs `plan` through `agent` until it is done, `stop` resolves (with the
/// reason to report) or the duration cap. Every socket is closed when it
/// returns, and the `finished` event has been reported.
pub async fn run(
    agent: Agent,
    plan: Plan,
    stop: impl Future<Output = FinishReason>,
) -> FinishReason {
    let connection = plan
        .connection
        .clone()
        .unwrap_or_else(|| agent.options().connection_header().to_owned());
    agent.emit(AgentEvent::Started {
        url: plan.url.clone(),
        options: agent.options().clone(),
        connection,
        every_ms: u64::try_from(plan.every.as_millis()).unwrap_or(u64::MAX),
        count: plan.count,
    });
    let start = Instant::now();
    let deadline = start + plan.max_duration;
    tokio::pin!(stop);
    let reason = 'run: {
        for n in 1..=plan.count {
            let at = start + plan.every * (n - 1);
            tokio::select! {
                biased;
                reason = &mut stop => break 'run reason,
                () = tokio::time::sleep_until(deadline) => break 'run FinishReason::DurationCap,
                () = tokio::time::sleep_until(at) => {}
            }
            agent.request(
                &plan.dest,
                &plan.method,
                &(plan.path)(n),
                plan.connection.as_deref(),
            );
        }
        tokio::select! {
            biased;
            reason = &mut stop => break 'run reason,
            () = tokio::time::sleep_until(deadline) => break 'run FinishReason::DurationCap,
            () = agent.idle() => {}
        }
        if !plan.linger.is_zero() {
            let until = (Instant::now() + plan.linger).min(deadline);
            tokio::select! {
                biased;
                reason = &mut stop => break 'run reason,
                () = tokio::time::sleep_until(until) => {}
                () = agent.closed() => {}
            }
        }
        FinishReason::Done
    };
    agent.stop();
    let _ = tokio::time::timeout(Duration::from_secs(5), agent.closed()).await;
    agent.finish(reason);
    reason
}
