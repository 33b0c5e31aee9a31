//! One middlebox mapping: its name (left), its life remembered then
//! forgotten, with what refreshed it, what it dropped and the RSTs it sent
//! (middle), the idle timeout in force and what happened (right).

use protocol::Side;

use super::{LANE, bar, column_text, row_bg};
use crate::clock::ClockSync;
use crate::dom::{Node, el};
use crate::timeline::Scale;
use crate::timeline::middlebox::{MappingLane, MarkKind, stretches};

/// One SVG path of every `kind` mark from `side` (from the browser above
/// the bar, from the server below it; an RST points to whom it went).
pub(super) fn marks_path(
    l: &MappingLane,
    kind: MarkKind,
    side: Side,
    x_of: impl Fn(protocol::Micros) -> Option<f64>,
    y: f64,
) -> String {
    use std::fmt::Write;
    let top = match side {
        Side::Client => y.round() as i64,
        Side::Server => (y + LANE - 6.0).round() as i64,
    };
    let mut d = String::new();
    let mut last = i64::MIN;
    for m in l.marks.iter().filter(|m| m.kind == kind && m.side == side) {
        let Some(x) = x_of(m.at_us) else { continue };
        let x = x.round() as i64;
        if x == last {
            continue; // one mark per pixel is enough
        }
        last = x;
        let _ = match (kind, side) {
            (MarkKind::Data, _) => write!(d, "M{x} {top}v5"),
            (MarkKind::Probe, _) => write!(d, "M{x} {top}l3 2.5l-3 2.5l-3 -2.5z"),
            (MarkKind::WindowProbe, _) => write!(d, "M{} {top}h5v5h-5z", x - 2),
            (MarkKind::Dropped, _) => write!(d, "M{} {top}l5 5m0 -5l-5 5", x - 2),
            (MarkKind::Rst, Side::Client) => write!(d, "M{} {}h6l-3 -5z", x - 3, top + 5),
            (MarkKind::Rst, Side::Server) => write!(d, "M{} {top}h6l-3 5z", x - 3),
        };
    }
    d
}

/// The row of mapping `l` at `y`.
pub(super) fn mapping_row(
    l: &MappingLane,
    y: f64,
    scale: &Scale,
    clock: &ClockSync,
    highlighted: bool,
) -> Node {
    let page = |us| clock.to_page_ms(us);
    let x_of = |us| page(us).map(|ms| scale.x(ms));
    let mut children = vec![
        row_bg(y, LANE),
        column_text("label", &l.label(), y + LANE - 6.0, false),
    ];
    for s in stretches(l, page) {
        children.push(bar(
            s.class(),
            (s.from_ms, s.to_ms, s.open),
            scale,
            y + 6.0,
            5.0,
        ));
    }
    for kind in MarkKind::ALL {
        for side in [Side::Client, Side::Server] {
            children.push(
                el("path")
                    .attr("class", kind.class())
                    .attr("d", marks_path(l, kind, side, x_of, y))
                    .done(),
            );
        }
    }
    children.push(column_text("status", &l.status(), y + LANE - 6.0, true));
    el("g")
        .attr(
            "class",
            crate::components::class(
                &["mb"],
                &[(l.expired.is_some(), "closed"), (highlighted, "hl")],
            ),
        )
        .attr("data-mapping", l.mapping.0.to_string())
        .attr("data-expired", l.expired.is_some().to_string())
        .attr("role", "listitem")
        .attr("aria-label", l.describe())
        .kids(children)
        .done()
}

#[cfg(test)]
mod tests {
    use protocol::{ConnId, MappingId};

    use super::*;
    use crate::timeline::middlebox::Mark;

    #[test]
    fn marks_sit_above_the_bar_from_the_browser_and_below_from_the_server() {
        let mark = |at_us, kind, side| Mark {
            at_us,
            kind,
            side,
            bytes: 1,
            count: 1,
        };
        let l = MappingLane {
            mapping: MappingId(1),
            conn: Some(ConnId(2)),
            opened_us: 0,
            preset: "AWS NAT gateway",
            in_force_ms: 3500,
            scale: 100,
            probes_visible: true,
            expired: None,
            half_closed: false,
            closed: None,
            marks: vec![
                mark(10, MarkKind::Data, Side::Client),
                mark(10, MarkKind::Data, Side::Client),
                mark(20, MarkKind::Probe, Side::Server),
                mark(30, MarkKind::Rst, Side::Client),
                mark(40, MarkKind::Dropped, Side::Server),
            ],
        };
        let x = |us| Some(us as f64);
        assert_eq!(
            marks_path(&l, MarkKind::Data, Side::Client, x, 100.0),
            "M10 100v5",
            "one mark per pixel"
        );
        assert_eq!(
            marks_path(&l, MarkKind::Probe, Side::Server, x, 100.0),
            "M20 111l3 2.5l-3 2.5l-3 -2.5z"
        );
        assert_eq!(
            marks_path(&l, MarkKind::Rst, Side::Client, x, 100.0),
            "M27 105h6l-3 -5z",
            "pointing up, to the browser"
        );
        assert_eq!(
            marks_path(&l, MarkKind::Dropped, Side::Server, x, 100.0),
            "M38 111l5 5m0 -5l-5 5"
        );
        assert_eq!(marks_path(&l, MarkKind::Probe, Side::Client, x, 100.0), "");
        // The NAT lesson's words fit the right column (the full story is the
        // row's aria-label).
        let nat = MappingLane {
            expired: Some((30, protocol::OnExpiry::Rst)),
            marks: vec![
                Mark {
                    bytes: 518,
                    ..mark(40, MarkKind::Dropped, Side::Server)
                },
                mark(50, MarkKind::Rst, Side::Client),
            ],
            ..l
        };
        let status = nat.status();
        assert_eq!(status, "✕ expired · dropped server 518 B · RST → browser");
        assert!(status.chars().count() <= super::super::chars(super::super::NOTES - 8.0));
        assert!(nat.label().chars().count() <= super::super::chars(super::super::LABELS - 10.0));
        // Cloud NAT's shorter timer for a half-closed connection is named.
        let gcp = MappingLane {
            expired: Some((30, protocol::OnExpiry::Silent)),
            half_closed: true,
            marks: vec![Mark {
                bytes: 161,
                ..mark(40, MarkKind::Dropped, Side::Server)
            }],
            ..nat
        };
        let status = gcp.status();
        assert_eq!(status, "✕ expired half-closed · dropped server 161 B");
        assert!(status.chars().count() <= super::super::chars(super::super::NOTES - 8.0));
    }

    #[test]
    fn every_middlebox_state_and_mark_has_its_legend_entry_and_pattern() {
        use super::super::{DEFS, LEGEND_MIDDLEBOX as LEGEND};
        for class in MarkKind::ALL
            .map(MarkKind::class)
            .into_iter()
            .chain(["mb-alive", "mb-expired"])
        {
            assert!(LEGEND.contains(&format!(r#"class="{class}""#)), "{class}");
            assert!(
                crate::palette::CSS.contains(&format!(".{class}{{")),
                "{class} styled"
            );
        }
        assert!(DEFS.contains(r#"<pattern id="mbx""#));
        assert!(crate::palette::CSS.contains("url(#mbx)"));
    }
}
