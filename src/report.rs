//! `spanwatch read --report FILE.html`: one self-contained HTML page for people without Grafana —
//! sessions per protocol over capture time, cleartext FTP logins, the inter-arrival histogram and
//! the timestamp anomalies on a timeline. Plots are SVG drawn by plotters and written inline; the
//! page has no script and fetches nothing.

use analyzer::timeline::Timeline;
use metrics::schema::IAT_BOUNDS;
use metrics::{slot, Counters, LoginOutcome, Proto, Source};
use plotters::prelude::*;
use std::fmt::Write as _;

/// Counters the report follows over time, in this order.
pub fn slots() -> Vec<usize> {
    let mut v = Vec::new();
    for p in Proto::ALL {
        v.push(slot::sessions(p, false));
        v.push(slot::sessions(p, true));
    }
    for o in LoginOutcome::ALL {
        v.push(slot::ftp_login(*o));
    }
    v.push(slot::FTP_BRUTEFORCE);
    v.extend(ANOMALIES.iter().map(|(f, _)| f(Source::Pcap)));
    v
}

type SlotOf = fn(Source) -> usize;
const ANOMALIES: [(SlotOf, &str); 4] = [
    (slot::ts_negative, "negative delta"),
    (slot::ts_impossible, "impossible spacing"),
    (slot::ts_zero, "zero delta"),
    (slot::ts_causality, "causality violation"),
];

fn idx_session(p: Proto) -> (usize, usize) {
    let i = Proto::ALL.iter().position(|x| *x == p).unwrap_or(0);
    (2 * i, 2 * i + 1)
}
fn idx_login(o: LoginOutcome) -> usize {
    2 * Proto::ALL.len() + LoginOutcome::ALL.iter().position(|x| *x == o).unwrap_or(0)
}
fn idx_bruteforce() -> usize {
    2 * Proto::ALL.len() + LoginOutcome::ALL.len()
}
fn idx_anomaly(k: usize) -> usize {
    idx_bruteforce() + 1 + k
}

/// The timeline regrouped into at most `MAX_COLUMNS` columns of equal width.
struct Columns {
    start_ns: i64,
    width_ns: i64,
    values: Vec<Vec<u64>>,
}

const MAX_COLUMNS: i64 = 240;

fn columns(t: &Timeline) -> Option<Columns> {
    let first = t.bins().next()?.0;
    let last = t.bins().last()?.0 + t.width_ns();
    let mut width = t.width_ns();
    while (last - first) / width > MAX_COLUMNS {
        width = width.saturating_mul(2);
    }
    let start = first.div_euclid(width) * width;
    let n = ((last - start) / width + 1) as usize;
    let mut values = vec![vec![0u64; slots().len()]; n];
    for (s, v) in t.bins() {
        let col = ((s - start) / width) as usize;
        for (a, b) in values[col.min(n - 1)].iter_mut().zip(v) {
            *a += b;
        }
    }
    Some(Columns {
        start_ns: start,
        width_ns: width,
        values,
    })
}

fn seconds(ns: i64) -> String {
    let s = ns as f64 * 1e-9;
    if s >= 1.0 {
        format!("{s:.0} s")
    } else if s >= 1e-3 {
        format!("{:.0} ms", s * 1e3)
    } else if s >= 1e-6 {
        format!("{:.0} µs", s * 1e6)
    } else {
        format!("{ns} ns")
    }
}

type Plot = Result<String, Box<dyn std::error::Error>>;

/// Lines of per-column counts; `series`: (name, column value).
fn time_plot(
    title: &str,
    y_desc: &str,
    cols: &Columns,
    series: &[(String, Vec<u64>)],
    colors: &[RGBColor],
) -> Plot {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 340)).into_drawing_area();
        root.fill(&WHITE)?;
        let x_max = cols.values.len() as f64 * cols.width_ns as f64 * 1e-9;
        let y_max = series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max * 1.1)?;
        chart
            .configure_mesh()
            .x_desc(format!(
                "seconds since {} (one point per {})",
                metrics::events::rfc3339(cols.start_ns),
                seconds(cols.width_ns)
            ))
            .y_desc(y_desc)
            .draw()?;
        let w = cols.width_ns as f64 * 1e-9;
        for (i, (name, v)) in series.iter().enumerate() {
            let color = colors
                .get(i)
                .map_or_else(|| Palette99::pick(i).to_rgba(), |c| c.to_rgba());
            let pts: Vec<(f64, f64)> = v
                .iter()
                .enumerate()
                .map(|(k, y)| ((k as f64 + 0.5) * w, *y as f64))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
            chart.draw_series(
                pts.into_iter()
                    .filter(|p| p.1 > 0.0)
                    .map(|p| Circle::new(p, 3, color.filled())),
            )?;
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .border_style(BLACK)
                .background_style(WHITE.mix(0.85))
                .draw()?;
        }
        root.present()?;
    }
    Ok(svg)
}

fn iat_plot(c: &Counters) -> Plot {
    let base = slot::iat_hist(Source::Pcap);
    let count = c.get(base);
    let mut buckets: Vec<u64> = (0..IAT_BOUNDS.len()).map(|i| c.get(base + 2 + i)).collect();
    buckets.push(count.saturating_sub(buckets.iter().sum()));
    let labels: Vec<String> = IAT_BOUNDS
        .iter()
        .map(|b| format!("≤{}", seconds((b * 1e9).round() as i64)))
        .chain(std::iter::once(">10 s".to_string()))
        .collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 340)).into_drawing_area();
        root.fill(&WHITE)?;
        let y_max = buckets.iter().copied().max().unwrap_or(0).max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Packet inter-arrival time ({count} deltas)"),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (0u32..buckets.len() as u32).into_segmented(),
                0u64..y_max + y_max / 10 + 1,
            )?;
        chart
            .configure_mesh()
            .x_labels(buckets.len())
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_style(("sans-serif", 10))
            .x_desc("time since the previous packet of the same source")
            .y_desc("packets")
            .draw()?;
        // One bar a series: a histogram series draws its bars in a HashMap's order, which
        // changes from run to run, and the page should not.
        for (i, n) in buckets.iter().enumerate() {
            chart.draw_series(
                Histogram::vertical(&chart)
                    .style(RGBColor(230, 120, 30).filled())
                    .margin(2)
                    .data([(i as u32, *n)]),
            )?;
        }
        root.present()?;
    }
    Ok(svg)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What the page says at the top.
pub struct Header<'a> {
    pub files: &'a [String],
    pub span: Option<(i64, i64)>,
}

/// Writes the page.
pub fn write(path: &str, h: &Header<'_>, c: &Counters, t: &Timeline) -> anyhow::Result<()> {
    let html = render(h, c, t).map_err(|e| anyhow::anyhow!("drawing the report: {e}"))?;
    std::fs::write(path, html).map_err(|e| anyhow::anyhow!("{path}: {e}"))
}

fn render(
    h: &Header<'_>,
    c: &Counters,
    t: &Timeline,
) -> Result<String, Box<dyn std::error::Error>> {
    let mut out = String::new();
    let title = format!("spanwatch report: {}", h.files.join(", "));
    writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>",
        esc(&title)
    )?;
    out.push_str(
        "<style>body{font-family:sans-serif;max-width:1000px;margin:1em auto;color:#222}\
         table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}\
         th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}figure{margin:1em 0}\
         .note{color:#666;font-size:90%}</style></head><body>\n",
    );
    writeln!(out, "<h1>spanwatch report</h1>")?;
    writeln!(
        out,
        "<p>Files: {}<br>Packets: {} &nbsp; Bytes: {}",
        h.files
            .iter()
            .map(|f| format!("<code>{}</code>", esc(f)))
            .collect::<Vec<_>>()
            .join(", "),
        c.get(slot::packets(Source::Pcap)),
        c.get(slot::bytes(Source::Pcap))
    )?;
    if let Some((s, e)) = h.span {
        writeln!(
            out,
            "<br>Capture: {} → {} ({:.3} s)",
            metrics::events::rfc3339(s),
            metrics::events::rfc3339(e),
            (e - s) as f64 * 1e-9
        )?;
    }
    writeln!(
        out,
        "<br><span class=\"note\">spanwatch {}; times are capture (packet) times, UTC.</span></p>",
        env!("CARGO_PKG_VERSION")
    )?;

    let cols = columns(t);
    // Sessions.
    writeln!(out, "<h2 id=\"sessions\">Sessions per protocol</h2>")?;
    writeln!(
        out,
        "<table><tr><th>protocol</th><th>IPv4</th><th>IPv6</th><th>total</th></tr>"
    )?;
    let mut seen = Vec::new();
    for p in Proto::ALL {
        let (v4, v6) = (
            c.get(slot::sessions(p, false)),
            c.get(slot::sessions(p, true)),
        );
        if v4 + v6 > 0 {
            seen.push(p);
            writeln!(
                out,
                "<tr><td>{}</td><td>{v4}</td><td>{v6}</td><td>{}</td></tr>",
                p.as_str(),
                v4 + v6
            )?;
        }
    }
    writeln!(out, "</table>")?;
    if let Some(cols) = &cols {
        let series: Vec<(String, Vec<u64>)> = seen
            .iter()
            .map(|p| {
                let (a, b) = idx_session(*p);
                (
                    p.as_str().to_string(),
                    cols.values.iter().map(|v| v[a] + v[b]).collect(),
                )
            })
            .collect();
        let svg = time_plot("New sessions per protocol", "sessions", cols, &series, &[])?;
        writeln!(out, "<figure id=\"plot-sessions\">{svg}</figure>")?;
    }

    // Logins.
    writeln!(out, "<h2 id=\"logins\">Cleartext FTP logins</h2>")?;
    let total: u64 = LoginOutcome::ALL
        .iter()
        .map(|o| c.get(slot::ftp_login(*o)))
        .sum();
    writeln!(
        out,
        "<p>{total} USER+PASS pair(s) sent in clear text: {}; {} brute-force window(s) \
         (20 rejected logins from one client to one server within 15 minutes). The passwords are \
         not in this report, nor anywhere else spanwatch writes.</p>",
        LoginOutcome::ALL
            .iter()
            .map(|o| format!("{} {}", c.get(slot::ftp_login(*o)), o.as_str()))
            .collect::<Vec<_>>()
            .join(", "),
        c.get(slot::FTP_BRUTEFORCE)
    )?;
    if let Some(cols) = &cols {
        let series: Vec<(String, Vec<u64>)> = LoginOutcome::ALL
            .iter()
            .map(|o| {
                (
                    o.as_str().to_string(),
                    cols.values.iter().map(|v| v[idx_login(*o)]).collect(),
                )
            })
            .collect();
        let svg = time_plot(
            "Cleartext FTP logins by outcome",
            "logins",
            cols,
            &series,
            &[RED, RGBColor(240, 140, 0), RGBColor(120, 120, 120)],
        )?;
        writeln!(out, "<figure id=\"plot-logins\">{svg}</figure>")?;
        if total > 0 {
            writeln!(
                out,
                "<table><tr><th>from (capture time)</th>{}</tr>",
                LoginOutcome::ALL
                    .iter()
                    .map(|o| format!("<th>{}</th>", o.as_str()))
                    .collect::<String>()
            )?;
            for (k, v) in cols.values.iter().enumerate() {
                if LoginOutcome::ALL.iter().any(|o| v[idx_login(*o)] > 0) {
                    writeln!(
                        out,
                        "<tr><td>{}</td>{}</tr>",
                        metrics::events::rfc3339(cols.start_ns + k as i64 * cols.width_ns),
                        LoginOutcome::ALL
                            .iter()
                            .map(|o| format!("<td>{}</td>", v[idx_login(*o)]))
                            .collect::<String>()
                    )?;
                }
            }
            writeln!(out, "</table>")?;
        }
    }

    // Inter-arrival histogram.
    writeln!(out, "<h2 id=\"interarrival\">Inter-arrival times</h2>")?;
    writeln!(
        out,
        "<figure id=\"plot-interarrival\">{}</figure>",
        iat_plot(c)?
    )?;

    // Anomalies.
    writeln!(out, "<h2 id=\"anomalies\">Timestamp anomalies</h2>")?;
    writeln!(out, "<table><tr><th>anomaly</th><th>packets</th></tr>")?;
    for (f, name) in ANOMALIES {
        writeln!(
            out,
            "<tr><td>{name}</td><td>{}</td></tr>",
            c.get(f(Source::Pcap))
        )?;
    }
    writeln!(out, "</table>")?;
    if let Some(cols) = &cols {
        let series: Vec<(String, Vec<u64>)> = ANOMALIES
            .iter()
            .enumerate()
            .map(|(k, (_, name))| {
                (
                    name.to_string(),
                    cols.values.iter().map(|v| v[idx_anomaly(k)]).collect(),
                )
            })
            .collect();
        let svg = time_plot(
            "Timestamp anomalies over capture time",
            "packets",
            cols,
            &series,
            &[],
        )?;
        writeln!(out, "<figure id=\"plot-anomalies\">{svg}</figure>")?;
    }
    writeln!(out, "</body></html>")?;
    Ok(out)
}
