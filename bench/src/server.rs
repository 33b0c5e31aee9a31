//! The servers under test, each in a child process of its own so that its
//! memory (`VmRSS`) and CPU time can be read from `/proc/<pid>` cleanly.
//!
//! The bench binary re-executes itself as
//! `keepalive-lab-bench --serve lab|axum --port-file F [--policy bench|default] [--dist D]
//! [--instructor-key K] [--session-caps default]`:
//!
//! - `lab`: the lab's own accept loop, [`listener::serve`];
//! - `axum`: the same router ([`routes::app`], same handlers, same [`Lab`]
//!   state) under plain `axum::serve`, which tracks no connection.
//!
//! The child binds `127.0.0.1:0`, writes the port it got into the port file,
//! and serves until its standard input closes: the parent holds the other end,
//! so a child never outlives the bench, even if the bench is killed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use keepalive_lab_server::sessions::key::InstructorKey;
use keepalive_lab_server::{Config, Lab, listener, routes};
use protocol::ServerPolicy;
use tokio::net::TcpListener;

use crate::client;

/// Which server a child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The lab's accept loop, tracking every connection.
    Lab,
    /// The same router under plain `axum::serve` (the baseline).
    Axum,
}

impl Kind {
    /// The name used on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lab => "lab",
            Kind::Axum => "axum",
        }
    }
}

/// Which keep-alive policy a child starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// [`ServerPolicy::default`] but no `max_requests` limit and a 10-minute
    /// idle timeout: nothing but tracking differs from plain axum, which has
    /// neither limit.
    Bench,
    /// [`ServerPolicy::default`] as a workshop runs it (`max_requests` 100:
    /// every 100th response says `Connection: close`).
    Default,
}

impl Policy {
    fn name(self) -> &'static str {
        match self {
            Policy::Bench => "bench",
            Policy::Default => "default",
        }
    }
}

/// Most concurrent hangs the bench servers allow (the default is 1024).
pub const MAX_HANGS: usize = 20_000;
/// How long a hang is held when nobody releases it (the default is 120 s):
/// longer than the held-connections figure takes, so releases end them all.
pub const HANG_CAP: Duration = Duration::from_secs(300);
/// Idle timeout of the `bench` policy: the longest the lab accepts.
pub const BENCH_IDLE_TIMEOUT_MS: u64 = 600_000;

/// The settings every bench server (lab or axum) starts with.
pub fn config(policy: Policy, dist: Option<PathBuf>) -> Config {
    let policy = match policy {
        Policy::Default => ServerPolicy::default(),
        Policy::Bench => ServerPolicy {
            idle_timeout_ms: BENCH_IDLE_TIMEOUT_MS,
            max_requests: None,
            ..ServerPolicy::default()
        },
    };
    let defaults = Config::default();
    Config {
        policy,
        max_hangs: MAX_HANGS,
        hang_cap: HANG_CAP,
        // The bench is one client on loopback standing in for a whole room:
        // the per-address and per-session caps a room needs would refuse it.
        max_hangs_per_session: MAX_HANGS,
        max_hangs_per_peer: MAX_HANGS,
        max_in_flight_per_session: usize::MAX,
        max_connections_per_peer: usize::MAX,
        max_connections: usize::MAX,
        max_in_flight_per_peer: usize::MAX,
        dist_dir: dist.unwrap_or(defaults.dist_dir.clone()),
        ..defaults
    }
}

/// What a child may change in [`config`] besides its policy (figure 7 uses both).
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// The instructor key (`Config::instructor_key`), so the bench can watch
    /// the whole server; random when `None`.
    pub instructor_key: Option<String>,
    /// Keep the default per-session caps (64 hangs, 256 requests in flight)
    /// instead of lifting them; the per-address caps stay lifted.
    pub default_session_caps: bool,
    /// Another build of this bench to run the child from (`--compare`);
    /// this binary when `None`.
    pub exe: Option<std::path::PathBuf>,
}

impl Extras {
    /// The child's command-line flags for these settings.
    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(key) = &self.instructor_key {
            args.extend(["--instructor-key".to_owned(), key.clone()]);
        }
        if self.default_session_caps {
            args.extend(["--session-caps".to_owned(), "default".to_owned()]);
        }
        args
    }

    /// Applies them to `config`.
    fn apply(&self, config: &mut Config) -> Result<(), String> {
        if let Some(key) = &self.instructor_key {
            config.instructor_key = InstructorKey::parse(key)?;
        }
        if self.default_session_caps {
            let defaults = Config::default();
            config.max_hangs_per_session = defaults.max_hangs_per_session;
            config.max_in_flight_per_session = defaults.max_in_flight_per_session;
        }
        Ok(())
    }
}

/// Raises this process's open-file limit to its hard limit; returns the new
/// soft limit.
pub fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

/// The child side: `--serve KIND --port-file F [--policy P] [--dist D]
/// [--instructor-key K] [--session-caps default]`.
pub fn run_child(args: &[String]) -> Result<(), String> {
    let mut kind = None;
    let mut port_file = None;
    let mut policy = Policy::Bench;
    let mut dist = None;
    let mut extras = Extras::default();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--serve" => {
                kind = Some(match value()?.as_str() {
                    "lab" => Kind::Lab,
                    "axum" => Kind::Axum,
                    other => return Err(format!("--serve takes lab or axum, not {other}")),
                })
            }
            "--port-file" => port_file = Some(PathBuf::from(value()?)),
            "--policy" => {
                policy = match value()?.as_str() {
                    "bench" => Policy::Bench,
                    "default" => Policy::Default,
                    other => return Err(format!("--policy takes bench or default, not {other}")),
                }
            }
            "--dist" => dist = Some(PathBuf::from(value()?)),
            "--instructor-key" => extras.instructor_key = Some(value()?.clone()),
            "--session-caps" => match value()?.as_str() {
                "default" => extras.default_session_caps = true,
                other => return Err(format!("--session-caps takes default, not {other}")),
            },
            other => return Err(format!("unknown child option {other}")),
        }
    }
    let kind = kind.ok_or("--serve is required")?;
    let port_file = port_file.ok_or("--port-file is required")?;
    raise_fd_limit();

    // Serve until the parent closes our standard input (or dies).
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        std::process::exit(0);
    });

    // The same runtime as the real server's `#[tokio::main]`.
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let mut config = config(policy, dist);
        extras.apply(&mut config)?;
        config.listeners = vec![addr];
        let lab = Lab::new(config);
        // Written then renamed, so the parent never reads half a number.
        let partial = port_file.with_extension("partial");
        std::fs::write(&partial, addr.port().to_string()).map_err(|e| e.to_string())?;
        std::fs::rename(&partial, &port_file).map_err(|e| e.to_string())?;
        match kind {
            Kind::Lab => listener::serve(listener, lab).await,
            Kind::Axum => axum::serve(listener, routes::app(lab)).await,
        }
        .map_err(|e| format!("serve: {e}"))
    })
}

/// A server child process; killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    port_file: PathBuf,
}

static CHILDREN: AtomicU32 = AtomicU32::new(0);

impl Server {
    /// Starts a child running `kind` with `policy` (and `dist` as its
    /// frontend), waits until it answers `GET /api/fast`.
    pub async fn start(kind: Kind, policy: Policy, dist: Option<&Path>) -> Result<Server, String> {
        Server::start_with(kind, policy, dist, &Extras::default()).await
    }

    /// [`Server::start`] with [`Extras`].
    pub async fn start_with(
        kind: Kind,
        policy: Policy,
        dist: Option<&Path>,
        extras: &Extras,
    ) -> Result<Server, String> {
        let exe = match &extras.exe {
            Some(exe) => exe.clone(),
            None => std::env::current_exe().map_err(|e| format!("own executable: {e}"))?,
        };
        let port_file = std::env::temp_dir().join(format!(
            "keepalive-lab-bench-{}-{}.port",
            std::process::id(),
            CHILDREN.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&port_file);
        let mut command = Command::new(&exe);
        command
            .args(["--serve", kind.name(), "--policy", policy.name()])
            .arg("--port-file")
            .arg(&port_file)
            .args(extras.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(dist) = dist {
            command.arg("--dist").arg(dist);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start a server child ({}): {e}", exe.display()))?;
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            port_file,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&server.port_file)
                .ok()
                .and_then(|text| text.trim().parse::<u16>().ok())
            {
                break port;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("the {} server child exited: {status}", kind.name()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the {} server child wrote no port in 10 s",
                    kind.name()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        server.addr.set_port(port);
        let (status, _) = client::request(server.addr, "GET", "/api/fast", "").await?;
        if status != 200 {
            return Err(format!(
                "{} server: GET /api/fast answered {status}",
                kind.name()
            ));
        }
        Ok(server)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory (`VmRSS`), in bytes.
    pub fn rss_bytes(&self) -> Result<u64, String> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        vm_rss(&status).ok_or_else(|| format!("{path} has no VmRSS line"))
    }

    /// What each of its open file descriptors is (`/proc/<pid>/fd/*`, the
    /// link targets: `socket:[123]`, `pipe:[45]`, `anon_inode:[eventpoll]`,
    /// `/dev/null`...), in descriptor order.
    pub fn open_fds(&self) -> Result<Vec<String>, String> {
        let dir = format!("/proc/{}/fd", self.pid());
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?;
        let mut fds: Vec<(u32, String)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let fd = entry.file_name().to_str()?.parse::<u32>().ok()?;
                // A descriptor closed between listing and reading is gone.
                let target = std::fs::read_link(entry.path()).ok()?;
                Some((fd, target.to_string_lossy().into_owned()))
            })
            .collect();
        fds.sort_unstable();
        Ok(fds.into_iter().map(|(_, target)| target).collect())
    }

    /// CPU time it has used so far, user plus system, all threads.
    pub fn cpu_time(&self) -> Result<Duration, String> {
        process_cpu_time(&format!("/proc/{}/stat", self.pid()))
    }
}

/// `VmRSS` in bytes from the text of a `/proc/<pid>/status` file
/// (`VmRSS:\t  6240 kB`).
pub fn vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// What kind of descriptor a `/proc/<pid>/fd` link target names: `socket`,
/// `pipe`, the anonymous inode's kind (`eventpoll`, `eventfd`...), or the
/// file's path.
pub fn fd_kind(target: &str) -> &str {
    if let Some(inner) = target
        .strip_prefix("anon_inode:")
        .map(|k| k.trim_start_matches('[').trim_end_matches(']'))
    {
        return inner;
    }
    match target.split_once(":[") {
        Some((kind, inode)) if inode.ends_with(']') => kind,
        _ => target,
    }
}

/// `/proc` reports CPU time in USER_HZ ticks, which Linux fixes at 100 per second.
const TICKS_PER_SECOND: u64 = 100;

/// CPU time (user + system, all threads) of the process whose `stat` file is `path`.
pub fn process_cpu_time(path: &str) -> Result<Duration, String> {
    let stat = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    // Fields after the command name (which may hold spaces) in parentheses:
    // state is field 3, utime 14 and stime 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(10).copied().unwrap_or(0) + fields.get(11).copied().unwrap_or(0);
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// The whole machine's CPU time (all cores) from `/proc/stat`, split into
/// what this machine ran and what the hypervisor gave to other guests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineTime {
    /// Time the cores spent running anything of this machine: user, nice,
    /// system, irq and softirq (guest time is already inside user).
    pub busy: Duration,
    /// Steal: time a virtual core was ready to run but the hypervisor ran
    /// another guest instead. No process here caused it, and no process's
    /// own CPU time counts it, but every process here waited through it.
    pub stolen: Duration,
}

impl MachineTime {
    /// Reads it now.
    pub fn read() -> Result<MachineTime, String> {
        let stat = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
        Ok(MachineTime::parse(&stat))
    }

    /// From the text of `/proc/stat` (its first line, the sum over cores).
    fn parse(stat: &str) -> MachineTime {
        let line = stat.lines().next().unwrap_or_default();
        // cpu user nice system idle iowait irq softirq steal guest guest_nice
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        let field = |i: usize| ticks.get(i).copied().unwrap_or(0);
        let busy: u64 = [0, 1, 2, 5, 6].into_iter().map(field).sum();
        let time = |t: u64| Duration::from_millis(t * 1000 / TICKS_PER_SECOND);
        MachineTime {
            busy: time(busy),
            stolen: time(field(7)),
        }
    }

    /// Over a window from `self` to `later`, given the CPU time of the
    /// processes measured (server, bench): in cores, the rest of this
    /// machine's busy time (other processes, the kernel's own threads) and
    /// the time stolen.
    pub fn disturbance(self, later: MachineTime, ours: Duration, window: Duration) -> (f64, f64) {
        let window = window.as_secs_f64().max(1e-9);
        let other = later.busy.saturating_sub(self.busy).saturating_sub(ours);
        let stolen = later.stolen.saturating_sub(self.stolen);
        (other.as_secs_f64() / window, stolen.as_secs_f64() / window)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.port_file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_time_splits_steal_from_this_machines_work() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let stat = "cpu  400 0 300 9000 7 20 30 250 0 0\ncpu0 200 0 150 4500 3 10 15 125 0 0\n";
        let t = MachineTime::parse(stat);
        let tick = |n: u64| Duration::from_millis(n * 1000 / TICKS_PER_SECOND);
        assert_eq!(t.busy, tick(400 + 300 + 20 + 30));
        assert_eq!(t.stolen, tick(250));
        // Over a 2 s window: 1.5 s busy of which 1 s was ours, 0.5 s stolen.
        let later = MachineTime {
            busy: t.busy + Duration::from_millis(1500),
            stolen: t.stolen + Duration::from_millis(500),
        };
        let (other, stolen) = t.disturbance(later, Duration::from_secs(1), Duration::from_secs(2));
        assert!((other - 0.25).abs() < 1e-9, "{other}");
        assert!((stolen - 0.25).abs() < 1e-9, "{stolen}");
    }

    #[test]
    fn vm_rss_from_proc_status() {
        let status = "Name:\tkeepalive-lab-b\nVmPeak:\t  812345 kB\nVmRSS:\t    6240 kB\nRssAnon:\t 3000 kB\n";
        assert_eq!(vm_rss(status), Some(6240 * 1024));
        assert_eq!(vm_rss("VmRSS: 12 kB"), Some(12 * 1024));
        assert_eq!(vm_rss("Name:\tx\nVmSize:\t 10 kB\n"), None);
        assert_eq!(vm_rss("VmRSS:\t lots kB\n"), None);
    }

    #[test]
    fn fd_kinds_from_link_targets() {
        assert_eq!(fd_kind("socket:[123456]"), "socket");
        assert_eq!(fd_kind("pipe:[789]"), "pipe");
        assert_eq!(fd_kind("anon_inode:[eventpoll]"), "eventpoll");
        assert_eq!(fd_kind("anon_inode:[eventfd]"), "eventfd");
        assert_eq!(fd_kind("anon_inode:inotify"), "inotify");
        assert_eq!(fd_kind("/dev/null"), "/dev/null");
        assert_eq!(fd_kind("/tmp/odd:[name"), "/tmp/odd:[name");
    }

    #[test]
    fn extras_round_trip_through_the_command_line() {
        let extras = Extras {
            instructor_key: Some("bench-key-123".to_owned()),
            default_session_caps: true,
            ..Extras::default()
        };
        assert_eq!(
            extras.args(),
            [
                "--instructor-key",
                "bench-key-123",
                "--session-caps",
                "default"
            ]
        );
        let mut config = config(Policy::Default, None);
        assert_eq!(config.max_hangs_per_session, MAX_HANGS);
        extras.apply(&mut config).unwrap();
        assert!(config.instructor_key.matches("bench-key-123"));
        assert_eq!(config.max_hangs_per_session, 64);
        assert_eq!(config.max_in_flight_per_session, 256);
        assert_eq!(
            config.max_connections_per_peer,
            usize::MAX,
            "still one address for a room"
        );
        assert!(Extras::default().args().is_empty());
    }
}
