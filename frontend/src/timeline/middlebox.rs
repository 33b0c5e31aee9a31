//! The middlebox lane: what the lab's middlebox did with each mapping this
//! page's run went through, drawn between the browser's rows and the
//! server's lanes (issue #10). Pure, from the middlebox's own events.
//!
//! A mapping is a bar while the middlebox remembers it and a hatched bar
//! once it has expired (forgotten); marks on it say what happened: data or a
//! keep-alive probe refreshed it (above the bar from the browser, below it
//! from the server), packets dropped after expiry, an RST sent (pointing to
//! whom).

use protocol::{
    CloseHow, ConnId, MappingId, Micros, MiddleboxEvent as M, OnExpiry, Party, RefreshCause, Side,
};

use crate::state::MiddleboxRecord;
use crate::tally::count;

/// What a mark on a mapping's bar says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    /// Bytes passed and refreshed the idle timer.
    Data,
    /// A TCP keep-alive probe (no data) refreshed the idle timer.
    Probe,
    /// Segments without data while a window was closed (zero-window probes
    /// or their answers) refreshed the idle timer: not keep-alive.
    WindowProbe,
    /// Something arrived after expiry and was not forwarded.
    Dropped,
    /// The middlebox sent an RST.
    Rst,
}

impl MarkKind {
    /// Every kind, in the legend's order.
    pub const ALL: [MarkKind; 5] = [
        MarkKind::Data,
        MarkKind::Probe,
        MarkKind::WindowProbe,
        MarkKind::Dropped,
        MarkKind::Rst,
    ];

    /// CSS class of its mark.
    pub fn class(self) -> &'static str {
        match self {
            MarkKind::Data => "mb-data",
            MarkKind::Probe => "mb-probe",
            MarkKind::WindowProbe => "mb-wprobe",
            MarkKind::Dropped => "mb-drop",
            MarkKind::Rst => "mb-rst",
        }
    }
}

/// One thing that happened to a mapping, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Server clock.
    pub at_us: Micros,
    /// What.
    pub kind: MarkKind,
    /// From whom (data, probe, dropped) or to whom (RST).
    pub side: Side,
    /// Bytes (data passed or dropped).
    pub bytes: u64,
    /// Reads or probes the event aggregates.
    pub count: u32,
}

/// One mapping as the middlebox reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingLane {
    /// Its id.
    pub mapping: MappingId,
    /// The server's connection for it, when the middlebox knew it.
    pub conn: Option<ConnId>,
    /// When the client's connection was accepted.
    pub opened_us: Micros,
    /// The preset's name ("AWS NAT gateway").
    pub preset: &'static str,
    /// Idle timeout in force (after the time scale), ms.
    pub in_force_ms: u64,
    /// The time scale (1: real time).
    pub scale: u32,
    /// Whether keep-alive probes can be seen here.
    pub probes_visible: bool,
    /// When it expired, and what happened then.
    pub expired: Option<(Micros, OnExpiry)>,
    /// The timer that expired was a closing connection's (a FIN had been
    /// seen: Cloud NAT's transitory timeout).
    pub half_closed: bool,
    /// When both connections were gone, who ended them and how.
    pub closed: Option<(Micros, Party, CloseHow)>,
    /// What happened in between, oldest first.
    pub marks: Vec<Mark>,
}

/// At most this many mappings in the lane (the newest).
pub const MAX_MAPPINGS: usize = 8;

impl MappingLane {
    /// Every mapping in `records` whose life overlaps `window` (server
    /// clock; `None`: the open ones) or whose connection is in `conns`,
    /// oldest first, at most [`MAX_MAPPINGS`].
    pub fn of<'a>(
        records: impl IntoIterator<Item = &'a MiddleboxRecord>,
        window: Option<(Micros, Micros)>,
        conns: &dyn Fn(ConnId) -> bool,
    ) -> Vec<MappingLane> {
        let mut lanes: Vec<MappingLane> = Vec::new();
        for r in records {
            if let M::Opened {
                conn,
                accepted_us,
                settings,
                in_force_ms,
                probes_visible,
                ..
            } = &r.event
            {
                lanes.retain(|l| l.mapping != r.mapping);
                lanes.push(MappingLane {
                    mapping: r.mapping,
                    conn: *conn,
                    opened_us: *accepted_us,
                    preset: settings.preset.spec().name,
                    in_force_ms: *in_force_ms,
                    scale: settings.scale,
                    probes_visible: *probes_visible,
                    expired: None,
                    half_closed: false,
                    closed: None,
                    marks: Vec::new(),
                });
                continue;
            }
            let Some(lane) = lanes.iter_mut().rfind(|l| l.mapping == r.mapping) else {
                continue;
            };
            let mut mark = |kind, side, bytes, count| {
                lane.marks.push(Mark {
                    at_us: r.at_us,
                    kind,
                    side,
                    bytes,
                    count,
                })
            };
            match &r.event {
                M::Refreshed {
                    side,
                    by,
                    bytes,
                    count,
                } => {
                    let kind = match by {
                        RefreshCause::Data => MarkKind::Data,
                        RefreshCause::Probe => MarkKind::Probe,
                        RefreshCause::WindowProbe => MarkKind::WindowProbe,
                    };
                    mark(kind, *side, *bytes, *count);
                }
                M::Dropped {
                    side,
                    bytes,
                    count,
                    probes,
                } => mark(MarkKind::Dropped, *side, *bytes, count + probes),
                M::RstSent { side } => mark(MarkKind::Rst, *side, 0, 1),
                M::Expired {
                    on_expiry,
                    transitory,
                    ..
                } => {
                    lane.expired = Some((r.at_us, *on_expiry));
                    lane.half_closed = *transitory;
                }
                M::Closed { by, how, .. } => lane.closed = Some((r.at_us, *by, *how)),
                M::Opened { .. } | M::Refused { .. } => {}
            }
        }
        lanes.retain(|l| {
            let end = l.closed.map_or(Micros::MAX, |c| c.0);
            l.conn.is_some_and(conns)
                || match window {
                    Some((start, stop)) => l.opened_us <= stop && end >= start,
                    None => l.closed.is_none(),
                }
        });
        let extra = lanes.len().saturating_sub(MAX_MAPPINGS);
        lanes.drain(..extra);
        lanes
    }

    /// Refreshes of `kind` (reads or probes) from `side`.
    pub fn refreshes(&self, kind: MarkKind, side: Side) -> u32 {
        self.marks
            .iter()
            .filter(|m| m.kind == kind && m.side == side)
            .map(|m| m.count)
            .sum()
    }

    /// Bytes dropped from `side` after expiry.
    pub fn dropped_bytes(&self, side: Side) -> u64 {
        self.marks
            .iter()
            .filter(|m| m.kind == MarkKind::Dropped && m.side == side)
            .map(|m| m.bytes)
            .sum()
    }

    /// The idle timeout in force and the time scale: `3.5 s ×100`, `60 s
    /// real time`.
    pub fn timeout(&self) -> String {
        let timeout = protocol::human_ms(self.in_force_ms);
        if self.scale > 1 {
            format!("{timeout} ×{}", self.scale)
        } else {
            format!("{timeout} real time")
        }
    }

    /// Its name in the left column: `m4 3.5 s ×100`.
    pub fn label(&self) -> String {
        format!("{} {}", self.mapping, self.timeout())
    }

    /// What it did, short enough for the right column: expiry, drops
    /// (whose bytes), RSTs (to whom), probes.
    pub fn status(&self) -> String {
        let mut words: Vec<String> = vec![
            match (self.expired, self.closed) {
                (Some(_), _) if self.half_closed => "✕ expired half-closed",
                (Some(_), _) => "✕ expired",
                (None, None) => "open",
                (None, Some(_)) => "closed",
            }
            .into(),
        ];
        for side in [Side::Server, Side::Client] {
            let bytes = self.dropped_bytes(side);
            if bytes > 0 {
                words.push(format!("dropped {} {bytes} B", side_name(side)));
            }
        }
        for side in [Side::Client, Side::Server] {
            if self
                .marks
                .iter()
                .any(|m| m.kind == MarkKind::Rst && m.side == side)
            {
                words.push(format!("RST → {}", side_name(side)));
            }
        }
        for (kind, what) in [
            (MarkKind::Probe, "probe"),
            (MarkKind::WindowProbe, "window probe"),
        ] {
            for side in [Side::Client, Side::Server] {
                let probes = self.refreshes(kind, side);
                if probes > 0 {
                    words.push(format!(
                        "{} from {}",
                        count(probes as usize, what),
                        side_name(side)
                    ));
                }
            }
        }
        if !self.probes_visible {
            words.push("probes not visible".into());
        }
        words.join(" · ")
    }

    /// The whole story, for the screen reader.
    pub fn describe(&self) -> String {
        let mut words = format!(
            "middlebox mapping {} ({}, idle timeout {}): {}",
            self.mapping,
            self.preset,
            self.timeout(),
            self.status()
        );
        for (kind, what) in [
            (MarkKind::Data, "data"),
            (MarkKind::Probe, "keep-alive probes"),
            (MarkKind::WindowProbe, "window probes"),
        ] {
            for side in [Side::Client, Side::Server] {
                let n = self.refreshes(kind, side);
                if n > 0 {
                    words.push_str(&format!(
                        "; refreshed by {what} from the {} {n}×",
                        side_name(side)
                    ));
                }
            }
        }
        words
    }
}

/// The browser or the server.
pub fn side_name(side: Side) -> &'static str {
    match side {
        Side::Client => "browser",
        Side::Server => "server",
    }
}

/// A stretch of a mapping's life on the page's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stretch {
    /// Start (ms).
    pub from_ms: f64,
    /// End (ms); for an open stretch, where it was last known.
    pub to_ms: f64,
    /// Still going.
    pub open: bool,
    /// Forgotten (after expiry) rather than remembered.
    pub expired: bool,
}

impl Stretch {
    /// CSS class.
    pub fn class(self) -> &'static str {
        if self.expired {
            "mb-expired"
        } else {
            "mb-alive"
        }
    }
}

/// A mapping's life in one or two stretches (remembered, then forgotten),
/// converted with `page` (server µs → page ms).
pub fn stretches(l: &MappingLane, page: impl Fn(Micros) -> Option<f64>) -> Vec<Stretch> {
    let Some(opened) = page(l.opened_us) else {
        return Vec::new();
    };
    let closed = l.closed.and_then(|c| page(c.0));
    let mut out = Vec::new();
    let mut push = |from: f64, to: Option<f64>, expired| {
        out.push(Stretch {
            from_ms: from,
            to_ms: to.unwrap_or(from).max(from),
            open: to.is_none(),
            expired,
        })
    };
    match l.expired.and_then(|e| page(e.0)) {
        Some(expired) => {
            push(opened, Some(expired), false);
            push(expired, closed, true);
        }
        None => push(opened, closed, false),
    }
    out
}

#[cfg(test)]
mod tests {
    use protocol::{MiddleboxSettings, Preset};

    use super::*;

    fn record(mapping: u64, at_us: Micros, event: M) -> MiddleboxRecord {
        MiddleboxRecord {
            mapping: MappingId(mapping),
            at_us,
            event,
        }
    }

    fn opened(mapping: u64, at_us: Micros, conn: Option<u64>) -> MiddleboxRecord {
        let settings: MiddleboxSettings = Preset::AwsNat.settings(100);
        record(
            mapping,
            at_us,
            M::Opened {
                client: "127.0.0.1:1".into(),
                upstream: None,
                conn: conn.map(ConnId),
                accepted_us: at_us,
                in_force_ms: settings.in_force_ms(),
                settings,
                probes_visible: true,
            },
        )
    }

    /// The NAT lesson's story: opened, the request's bytes, expiry, the
    /// server's late answer dropped, the client's next packet reset.
    fn nat_story() -> Vec<MiddleboxRecord> {
        vec![
            opened(4, 1_000_000, Some(7)),
            record(
                4,
                1_050_000,
                M::Refreshed {
                    side: Side::Client,
                    by: RefreshCause::Data,
                    bytes: 120,
                    count: 1,
                },
            ),
            record(
                4,
                4_550_000,
                M::Expired {
                    idle_ms: 3_500,
                    on_expiry: OnExpiry::Rst,
                    transitory: false,
                },
            ),
            record(
                4,
                6_050_000,
                M::Dropped {
                    side: Side::Server,
                    bytes: 161,
                    count: 1,
                    probes: 0,
                },
            ),
            record(4, 9_000_000, M::RstSent { side: Side::Client }),
            record(
                4,
                9_000_100,
                M::Closed {
                    by: Party::Client,
                    how: CloseHow::Fin,
                    after_expiry: true,
                    client_bytes: 120,
                    server_bytes: 0,
                    dropped_bytes: 161,
                },
            ),
        ]
    }

    #[test]
    fn a_mapping_says_it_expired_dropped_the_servers_answer_and_reset_the_browser() {
        let lanes = MappingLane::of(&nat_story(), Some((0, Micros::MAX)), &|_| false);
        assert_eq!(lanes.len(), 1);
        let l = &lanes[0];
        assert_eq!(l.conn, Some(ConnId(7)));
        assert_eq!(l.label(), "m4 3.5 s ×100");
        assert_eq!(
            l.status(),
            "✕ expired · dropped server 161 B · RST → browser"
        );
        assert!(
            l.describe()
                .starts_with("middlebox mapping m4 (AWS NAT gateway, idle timeout 3.5 s ×100)")
        );
        assert_eq!(l.refreshes(MarkKind::Data, Side::Client), 1);
        assert_eq!(
            l.marks.iter().map(|m| m.kind).collect::<Vec<_>>(),
            [MarkKind::Data, MarkKind::Dropped, MarkKind::Rst]
        );
        // Remembered for 3.5 s, then forgotten until the close.
        let s = stretches(l, |us| Some(us as f64 / 1000.0));
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].from_ms, s[0].to_ms, s[0].expired),
            (1000.0, 4550.0, false)
        );
        assert_eq!(
            (s[1].from_ms, s[1].to_ms, s[1].expired),
            (4550.0, 9000.1, true)
        );
        assert!(!s[1].open);
        assert_eq!((s[0].class(), s[1].class()), ("mb-alive", "mb-expired"));
    }

    #[test]
    fn probes_are_counted_by_side_and_an_open_mapping_is_drawn_to_now() {
        let mut story = vec![opened(5, 0, None)];
        for t in 1..=3 {
            story.push(record(
                5,
                t * 1_000_000,
                M::Refreshed {
                    side: Side::Server,
                    by: RefreshCause::Probe,
                    bytes: 0,
                    count: 1,
                },
            ));
        }
        story.push(record(
            5,
            4_000_000,
            M::Refreshed {
                side: Side::Client,
                by: RefreshCause::WindowProbe,
                bytes: 0,
                count: 2,
            },
        ));
        let lanes = MappingLane::of(&story, None, &|_| false);
        let l = &lanes[0];
        assert_eq!(l.refreshes(MarkKind::Probe, Side::Server), 3);
        assert_eq!(l.refreshes(MarkKind::Probe, Side::Client), 0);
        assert_eq!(l.refreshes(MarkKind::WindowProbe, Side::Client), 2);
        assert_eq!(
            l.status(),
            "open · 3 probes from server · 2 window probes from browser"
        );
        let words = l.describe();
        assert!(words.contains("refreshed by keep-alive probes from the server 3×"));
        assert!(words.contains("refreshed by window probes from the browser 2×"));
        let s = stretches(l, |us| Some(us as f64 / 1000.0));
        assert_eq!(s.len(), 1);
        assert!(s[0].open && !s[0].expired);
    }

    #[test]
    fn only_the_runs_mappings_are_drawn_and_at_most_eight() {
        let story = nat_story();
        // Closed before the run's window, and not one of its connections.
        assert!(MappingLane::of(&story, Some((10_000_000, 20_000_000)), &|_| false).is_empty());
        // ...unless it carried one of the run's requests.
        assert_eq!(
            MappingLane::of(&story, Some((10_000_000, 20_000_000)), &|c| c == ConnId(7)).len(),
            1
        );
        // Not live: only open mappings are drawn.
        assert!(MappingLane::of(&story, None, &|_| false).is_empty());
        let many: Vec<_> = (1..=12).map(|m| opened(m, m * 10, None)).collect();
        let lanes = MappingLane::of(&many, None, &|_| false);
        assert_eq!(lanes.len(), MAX_MAPPINGS);
        assert_eq!(lanes[0].mapping, MappingId(5), "the newest kept");
        // A mapping whose events outlived the page's record (no `opened`)
        // is not drawn.
        assert!(MappingLane::of(&story[1..], None, &|_| true).is_empty());
    }

    #[test]
    fn real_time_and_unseen_probes_are_said() {
        let mut o = opened(1, 0, None);
        if let M::Opened {
            settings,
            in_force_ms,
            probes_visible,
            ..
        } = &mut o.event
        {
            settings.scale = 1;
            settings.preset = Preset::Custom;
            *in_force_ms = 60_000;
            *probes_visible = false;
        }
        let l = &MappingLane::of(&[o], None, &|_| false)[0];
        assert_eq!(l.status(), "open · probes not visible");
        assert_eq!(l.label(), "m1 60 s real time");
    }
}
