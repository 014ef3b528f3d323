//! The endpoint's charts of the last 24 hours, drawn as SVG on the server from the store's
//! hourly counters (at most 24 rows; nothing counts attempts per page view): attempts per hour
//! split into delivered and failed, and latency p50/p95 per hour.

use std::fmt::Write as _;

use hookline_core::model::HourlyStats;
use hookline_core::time::Timestamp;
use maud::{Markup, PreEscaped, html};

/// Hours the charts cover.
pub(super) const HOURS: u32 = 24;

const W: f64 = 560.0;
const H: f64 = 180.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 10.0;

/// The 24 hours ending with the one holding `now`, each with its counters (zero when absent).
fn hours(stats: &[HourlyStats], now: Timestamp) -> Vec<(Timestamp, Option<&HourlyStats>)> {
    let last = HourlyStats::hour_of(now).as_millis();
    (0..i64::from(HOURS))
        .rev()
        .map(|back| {
            let h = last - back * 3_600_000;
            (
                Timestamp::from_millis(h),
                stats.iter().find(|s| s.hour.as_millis() == h),
            )
        })
        .collect()
}

fn hour_label(t: Timestamp) -> String {
    let rfc = t.to_rfc3339();
    rfc.get(11..13).unwrap_or("").to_owned()
}

fn frame(svg: &mut String, max: f64, unit: &str, slots: &[(Timestamp, Option<&HourlyStats>)]) {
    let plot_h = H - BOTTOM - TOP;
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" y1="{y0}" x2="{W}" y2="{y0}"/><line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{y0}"/>"#,
        y0 = TOP + plot_h
    );
    let _ = write!(
        svg,
        r#"<text class="axis-label" x="{x}" y="{y}" text-anchor="end">{max}{unit}</text><text class="axis-label" x="{x}" y="{y0}" text-anchor="end">0</text>"#,
        x = LEFT - 4.0,
        y = TOP + 8.0,
        y0 = TOP + plot_h,
        max = max as u64,
    );
    let slot = (W - LEFT) / slots.len() as f64;
    for (i, (t, _)) in slots.iter().enumerate().step_by(3) {
        let _ = write!(
            svg,
            r#"<text class="axis-label" x="{x:.1}" y="{y}" text-anchor="middle">{label}h</text>"#,
            x = LEFT + slot * (i as f64 + 0.5),
            y = H - 6.0,
            label = hour_label(*t),
        );
    }
}

/// Attempts per hour: delivered (bottom) and failed (stacked on top) bars.
pub(super) fn attempts_chart(stats: &[HourlyStats], now: Timestamp) -> Markup {
    let slots = hours(stats, now);
    let max = slots
        .iter()
        .map(|(_, s)| s.map_or(0, |s| s.attempts()))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let plot_h = H - BOTTOM - TOP;
    let slot = (W - LEFT) / slots.len() as f64;
    let mut svg = String::new();
    frame(&mut svg, max, "", &slots);
    for (i, (t, s)) in slots.iter().enumerate() {
        let Some(s) = s else { continue };
        let x = LEFT + slot * i as f64 + 2.0;
        let w = slot - 4.0;
        let ok_h = plot_h * s.delivered as f64 / max;
        let bad_h = plot_h * s.failed as f64 / max;
        let base = TOP + plot_h;
        let title = format!(
            "{} UTC: {} delivered, {} failed",
            t.to_rfc3339(),
            s.delivered,
            s.failed
        );
        if s.delivered > 0 {
            let _ = write!(
                svg,
                r#"<rect class="bar-ok" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{ok_h:.1}"><title>{title}</title></rect>"#,
                y = base - ok_h,
            );
        }
        if s.failed > 0 {
            let _ = write!(
                svg,
                r#"<rect class="bar-bad" x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{bad_h:.1}"><title>{title}</title></rect>"#,
                y = base - ok_h - bad_h,
            );
        }
    }
    svg_box(
        "attempts-chart",
        "Attempts per hour: delivered (green) and failed (red)",
        &svg,
    )
}

/// Latency p50 and p95 per hour, as lines over the hours that had attempts.
pub(super) fn latency_chart(stats: &[HourlyStats], now: Timestamp) -> Markup {
    let slots = hours(stats, now);
    let points: Vec<(usize, u64, u64)> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, (_, s))| {
            let s = (*s)?;
            Some((i, s.percentile(0.5)?, s.percentile(0.95)?))
        })
        .collect();
    let max = points.iter().map(|p| p.2).max().unwrap_or(0).max(10) as f64;
    let plot_h = H - BOTTOM - TOP;
    let slot = (W - LEFT) / slots.len() as f64;
    let mut svg = String::new();
    frame(&mut svg, max, " ms", &slots);
    let at = |i: usize, v: u64| {
        (
            LEFT + slot * (i as f64 + 0.5),
            TOP + plot_h - plot_h * v as f64 / max,
        )
    };
    for (class, pick) in [("line-p50", 0usize), ("line-p95", 1)] {
        let coords: Vec<String> = points
            .iter()
            .map(|(i, p50, p95)| {
                let (x, y) = at(*i, if pick == 0 { *p50 } else { *p95 });
                format!("{x:.1},{y:.1}")
            })
            .collect();
        if !coords.is_empty() {
            let _ = write!(
                svg,
                r#"<polyline class="{class}" points="{}"/>"#,
                coords.join(" ")
            );
            for (i, p50, p95) in &points {
                let v = if pick == 0 { *p50 } else { *p95 };
                let (x, y) = at(*i, v);
                let _ = write!(
                    svg,
                    r#"<circle class="{class}" cx="{x:.1}" cy="{y:.1}" r="2.5"><title>{} ≤ {v} ms</title></circle>"#,
                    if pick == 0 { "p50" } else { "p95" }
                );
            }
        }
    }
    svg_box(
        "latency-chart",
        "Latency per hour: p50 (blue) and p95 (amber), bucket upper bounds",
        &svg,
    )
}

fn svg_box(id: &str, caption: &str, inner: &str) -> Markup {
    html! {
        figure.chart #(id) {
            figcaption { (caption) }
            (PreEscaped(format!(
                r#"<svg viewBox="0 0 {W} {H}" role="img" aria-label="{caption}" xmlns="http://www.w3.org/2000/svg">{inner}</svg>"#
            )))
        }
    }
}

/// Success rate over the hours given: delivered attempts over all attempts.
pub(super) fn success_rate(stats: &[HourlyStats]) -> Option<f64> {
    let (ok, all) = stats.iter().fold((0u64, 0u64), |(ok, all), s| {
        (ok + s.delivered, all + s.attempts())
    });
    (all > 0).then(|| ok as f64 * 100.0 / all as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookline_core::EndpointId;

    #[test]
    fn bars_and_lines_are_drawn_for_hours_with_attempts() {
        let ep = EndpointId::generate();
        let now = Timestamp::from_millis(100 * 3_600_000 + 5);
        let mut s = HourlyStats::new(ep.clone(), now);
        s.record(true, 30);
        s.record(false, 300);
        let earlier = HourlyStats::new(ep, Timestamp::from_millis(90 * 3_600_000));
        let bars = attempts_chart(&[s.clone(), earlier], now).into_string();
        assert_eq!(bars.matches("class=\"bar-ok\"").count(), 1);
        assert_eq!(bars.matches("class=\"bar-bad\"").count(), 1);
        let lines = latency_chart(&[s.clone()], now).into_string();
        assert!(lines.contains("polyline class=\"line-p95\""));
        assert!(lines.contains("≤ 500 ms"), "{lines}");
        assert_eq!(success_rate(&[s]), Some(50.0));
        assert_eq!(success_rate(&[]), None);
    }
}
