//! The timeline's colours, in one place: the SVG's style sheet is written
//! from these constants ([`CSS`]), and a host test reads the same constants
//! to check WCAG contrast (text ≥ 4.5:1 against every background it is drawn
//! on, bars and marks ≥ 3:1) in light, dark and projector modes.
//!
//! No state is told by colour alone: each has its own pattern or mark too
//! (see the legend in `components/timeline/`).

/// The timeline's style sheet: each mode's colours as custom properties
/// (`--t-…`), then the rules that use them. The host tests read the colours
/// from this very text.
pub const CSS: &str = concat!(
    "/* light */ .timeline,#timeline{--t-bg:#ffffff;--t-fg:#1d1d1f;--t-mu:#55555f;--t-al:#a1261f;--t-hl:#fff1c2;--t-fo:#e2efff;--t-q:#f6d27a;--t-qi:#7a4f00;--t-w:#0b57a4;--t-d:#9fdcb3;--t-di:#1e6b35;--t-s:#a9c8f0;--t-si:#0b57a4;--t-c:#6b6b76;--t-b:#f7c9c4;--t-n:#c0392b;--t-m:#2a7f62;--t-mp:#7b3fb0;--t-mbg:#eef7f3}",
    "/* dark */ @media (prefers-color-scheme:dark){.timeline,#timeline{--t-bg:#202026;--t-fg:#ececf1;--t-mu:#b4b4be;--t-al:#ff9f97;--t-hl:#3b3017;--t-fo:#17304d;--t-q:#4a3b14;--t-qi:#ffcf70;--t-w:#8cc3ff;--t-d:#1c3d29;--t-di:#8fe0a6;--t-s:#264a74;--t-si:#8cc3ff;--t-c:#9a9aa6;--t-b:#4d2420;--t-n:#ff6b61;--t-m:#5cc9a0;--t-mp:#c9a2ff;--t-mbg:#1b2a25}}",
    "/* projector */ .projector .timeline,.projector #timeline{--t-bg:#ffffff;--t-fg:#000000;--t-mu:#2e2e36;--t-al:#8c1a14;--t-hl:#fff1c2;--t-fo:#e2efff;--t-q:#f6d27a;--t-qi:#7a4f00;--t-w:#0b57a4;--t-d:#9fdcb3;--t-di:#1e6b35;--t-s:#a9c8f0;--t-si:#0b57a4;--t-c:#4a4a55;--t-b:#f7c9c4;--t-n:#c0392b;--t-m:#1f6b52;--t-mp:#6a2fa0;--t-mbg:#eef7f3}",
    "/* projector dark */ @media (prefers-color-scheme:dark){.projector .timeline,.projector #timeline{--t-bg:#000000;--t-fg:#ffffff;--t-mu:#d6d6de;--t-al:#ffb3ac;--t-hl:#3b3017;--t-fo:#17304d;--t-q:#4a3b14;--t-qi:#ffcf70;--t-w:#8cc3ff;--t-d:#1c3d29;--t-di:#8fe0a6;--t-s:#264a74;--t-si:#8cc3ff;--t-c:#b4b4c0;--t-b:#4d2420;--t-n:#ff6b61;--t-m:#6fd8b0;--t-mp:#d4b3ff;--t-mbg:#0f1a16}}",
    ".timeline,#timeline{background:var(--t-bg);color:var(--t-fg)}",
    "#timeline text{font:11px system-ui,sans-serif;fill:var(--t-fg)}",
    ".projector #timeline text{font-size:13px}",
    "#timeline .note,#timeline .status,#timeline .tick text{fill:var(--t-mu)}",
    ".timeline .legend,.timeline .source,.timeline .aside li{color:var(--t-mu)}",
    "#timeline .section{font-weight:700;letter-spacing:.04em}",
    "#timeline .alert,#timeline .closed .status{fill:var(--t-al);font-weight:600}",
    "#timeline .tick line{stroke:var(--t-mu);stroke-opacity:.25}",
    "#timeline .run-start{stroke:var(--t-mu);stroke-opacity:.6}",
    "#timeline .row-bg{fill:transparent}",
    "#timeline .hl .row-bg{fill:var(--t-hl)}",
    "#timeline g:focus{outline:none}",
    "#timeline g:focus .row-bg{fill:var(--t-fo);stroke:var(--t-w)}",
    ".seg-queued{fill:url(#hatch)}",
    ".p-q{fill:var(--t-q)}.p-qi{stroke:var(--t-qi)}",
    ".seg-waiting{fill:var(--t-w)}",
    ".seg-downloading{fill:url(#dots)}",
    ".p-d{fill:var(--t-d)}.p-di{fill:var(--t-di)}",
    ".seg-dropped,.seg-server-dropped{fill:var(--t-bg);stroke:var(--t-al);stroke-width:1.5;stroke-dasharray:3 2}",
    ".aborted .seg-waiting,.aborted .seg-downloading,.seg-aborted{fill:url(#xhatch)}",
    ".failed .seg-waiting,.failed .seg-downloading,.seg-failed{fill:url(#stripes)}",
    ".p-b{fill:var(--t-b)}.p-bi{stroke:var(--t-al)}",
    ".seg-server{fill:var(--t-s);stroke:var(--t-si);stroke-width:.8}",
    ".seg-conn{fill:var(--t-c)}",
    ".cap{stroke:var(--t-fg);stroke-width:2;fill:none}",
    ".cap.fill{fill:var(--t-fg);stroke:none}",
    ".cap.bad{stroke:var(--t-al)}.cap.bad.fill{fill:var(--t-al)}",
    ".now{stroke:var(--t-n);stroke-width:1.5;stroke-dasharray:4 3}",
    // The middlebox lane: its band, a mapping remembered (solid) and
    // forgotten (hatched), and its marks.
    "#timeline .mb .row-bg{fill:var(--t-mbg)}#timeline .mb.hl .row-bg{fill:var(--t-hl)}",
    ".mb-alive{fill:var(--t-m)}.mb-expired{fill:url(#mbx);stroke:var(--t-al);stroke-width:1}",
    ".p-m{fill:var(--t-mbg)}.mb-data{stroke:var(--t-fg);stroke-width:1.5;fill:none}",
    ".mb-probe{stroke:var(--t-mp);stroke-width:1.5;fill:none}.mb-wprobe{stroke:var(--t-mp);stroke-width:1;fill:none}.mb-drop{stroke:var(--t-al);stroke-width:1.5;fill:none}.mb-rst{fill:var(--t-al)}",
);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::CSS;

    /// WCAG 2.x relative luminance of `#rrggbb`.
    fn luminance(hex: &str) -> f64 {
        let hex = hex.strip_prefix('#').expect("#rrggbb");
        assert_eq!(hex.len(), 6, "{hex}");
        let channel = |i: usize| {
            let c = f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap()) / 255.0;
            if c <= 0.039_28 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(0) + 0.7152 * channel(2) + 0.0722 * channel(4)
    }

    /// WCAG contrast ratio of two colours.
    fn contrast(a: &str, b: &str) -> f64 {
        let (a, b) = (luminance(a), luminance(b));
        (a.max(b) + 0.05) / (a.min(b) + 0.05)
    }

    /// Each mode's colours, read from the style sheet the page uses.
    fn modes() -> Vec<(String, BTreeMap<String, String>)> {
        CSS.split("/* ")
            .skip(1)
            .filter_map(|part| {
                let (mode, rest) = part.split_once(" */")?;
                // The declarations: after the last `{` before the first `}`.
                let body = rest.split('}').next()?.rsplit('{').next()?;
                let vars = body
                    .split(';')
                    .filter_map(|d| d.trim().strip_prefix("--t-")?.split_once(':'))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                Some((mode.to_owned(), vars))
            })
            .collect()
    }

    #[test]
    fn the_style_sheet_has_every_colour_of_every_mode() {
        let modes = modes();
        let names: Vec<&str> = modes.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(names, ["light", "dark", "projector", "projector dark"]);
        for (mode, vars) in &modes {
            assert_eq!(vars.len(), 19, "{mode}: {vars:?}");
            assert!(
                vars.values().all(|v| v.len() == 7 && v.starts_with('#')),
                "{mode}"
            );
        }
        assert!(CSS.contains("@media (prefers-color-scheme:dark){.timeline,#timeline{"));
        assert!(CSS.contains(".projector .timeline,.projector #timeline{"));
    }

    #[test]
    fn contrast_is_computed_as_wcag_defines_it() {
        assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 1e-9);
        assert!((contrast("#777777", "#ffffff") - 4.48).abs() < 0.01);
        assert!((contrast("#ffffff", "#ffffff") - 1.0).abs() < 1e-9);
    }

    #[test]
    fn timeline_text_has_at_least_4_5_to_1_contrast_in_every_mode() {
        for (mode, c) in modes() {
            // Every background text is drawn on: the timeline, a highlighted
            // connection's rows, the row in keyboard focus, the middlebox
            // lane's band.
            for bg in ["bg", "hl", "fo", "mbg"] {
                // Main text, notes and ticks, alerts (close reasons).
                for text in ["fg", "mu", "al"] {
                    let ratio = contrast(&c[text], &c[bg]);
                    assert!(
                        ratio >= 4.5,
                        "{mode}: --t-{text} {} on --t-{bg} {} is {ratio:.2}:1, under 4.5:1",
                        c[text],
                        c[bg]
                    );
                }
            }
        }
    }

    #[test]
    fn bars_and_marks_stand_out_from_the_background_in_every_mode() {
        for (mode, c) in modes() {
            // Stripes, solid wait, dots, server outline, connection line,
            // alert marks, the now line (WCAG 1.4.11: 3:1).
            for mark in ["qi", "w", "di", "si", "c", "al", "n"] {
                let ratio = contrast(&c[mark], &c["bg"]);
                assert!(
                    ratio >= 3.0,
                    "{mode}: --t-{mark} {} on {} is {ratio:.2}:1, under 3:1",
                    c[mark],
                    c["bg"]
                );
            }
            // The middlebox lane's bar and marks (data, probe, drop and RST
            // marks), on its band and on a highlighted row.
            for mark in ["m", "mp", "al", "fg"] {
                for bg in ["mbg", "hl"] {
                    let ratio = contrast(&c[mark], &c[bg]);
                    assert!(
                        ratio >= 3.0,
                        "{mode}: --t-{mark} {} on --t-{bg} {} is {ratio:.2}:1, under 3:1",
                        c[mark],
                        c[bg]
                    );
                }
            }
        }
    }
}
