//! The latency CDF of a phase as a hand-written SVG: x = latency (log scale,
//! µs), y = cumulative share on a "nines" scale (0, 90, 99, 99.9, 99.99 %),
//! one line per session group, so the tail is as readable as the median.
//! String building only; the caller writes the file.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

const W: f64 = 760.0;
const H: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
/// Highest "nines" shown: 99.999 %.
const MAX_NINES: f64 = 5.0;
const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// (latency µs, cumulative share) points of a histogram, at most ~400.
pub fn cdf_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let total = h.len();
    if total == 0 {
        return Vec::new();
    }
    let buckets: Vec<(u64, u64)> = h
        .iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_since_last_iteration()))
        .collect();
    let step = (buckets.len() / 400).max(1);
    let mut points = Vec::new();
    let mut cum = 0;
    for (i, (value, count)) in buckets.iter().enumerate() {
        cum += count;
        if i % step == 0 || i + 1 == buckets.len() {
            points.push((*value as f64 / 1_000.0, cum as f64 / total as f64));
        }
    }
    points
}

fn nines(q: f64) -> f64 {
    if q >= 1.0 {
        MAX_NINES
    } else {
        (-(1.0 - q).log10()).min(MAX_NINES)
    }
}

/// The whole SVG document.
pub fn cdf_svg(title: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let all = series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x));
    let (lo, hi) = all.fold((f64::MAX, 0.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let (lo, hi) = if lo > hi {
        (1.0, 10.0)
    } else {
        (lo.max(0.1), hi.max(lo * 10.0))
    };
    let (lx0, lx1) = (lo.log10().floor(), hi.log10().ceil());
    let px = |x: f64| LEFT + (x.max(0.1).log10() - lx0) / (lx1 - lx0) * (W - LEFT - RIGHT);
    let py = |q: f64| H - BOTTOM - nines(q) / MAX_NINES * (H - TOP - BOTTOM);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="14">{}</text>"#,
        LEFT,
        escape(title)
    );
    for d in (lx0 as i32)..=(lx1 as i32) {
        let x = px(10f64.powi(d));
        let label = latency_label(10f64.powi(d));
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 16.0
        );
    }
    for n in 0..=(MAX_NINES as i32) {
        let q = 1.0 - 10f64.powi(-n);
        let y = py(q);
        let label = if n == 0 {
            "0%".to_string()
        } else {
            format!("{}%", trim(q * 100.0))
        };
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">end-to-end latency (upstream write → client read)</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 18.0
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|&(x, q)| format!("{:.1},{:.1}", px(x), py(q)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{}"/>"#,
            path.join(" ")
        );
        let ly = TOP + 16.0 * i as f64 + 10.0;
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="14" height="3" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT + 10.0,
            ly - 4.0,
            LEFT + 30.0,
            ly,
            escape(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn latency_label(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{}s", trim(us / 1_000_000.0))
    } else if us >= 1_000.0 {
        format!("{}ms", trim(us / 1_000.0))
    } else {
        format!("{}µs", trim(us))
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_ends_at_one_and_svg_is_well_formed() {
        let mut h = crate::tally::histogram();
        for v in 1..=10_000u64 {
            h.record(v * 100).unwrap();
        }
        let points = cdf_points(&h);
        assert!(points.len() <= 500);
        assert_eq!(points.last().unwrap().1, 1.0);
        let svg = cdf_svg("a <b>", &[("all".into(), points)]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt;b&gt;") && svg.contains("99.9%"));
    }
}
