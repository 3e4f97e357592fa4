//! Charts with `plotters`, as SVG (inline in the HTML page, or files) and PNG files: bytes
//! over time by protocol, packet sizes over time and as a histogram, TCP connections per
//! minute, top talkers. Text uses DejaVu Sans embedded in the binary (no system fonts).

use std::{path::Path, sync::Once};

use anyhow::{Context as _, Result, anyhow};
use plotters::{
    coord::{Shift, ranged1d::SegmentValue},
    prelude::*,
    style::FontStyle,
};

use super::{report::Report, timeline::Bucket};

/// Size of every chart in pixels.
pub const SIZE: (u32, u32) = (960, 420);
const FONT: &str = "sans-serif";

/// The charts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chart {
    /// Bytes per second over time for TCP, UDP, ICMP and other traffic.
    Bytes,
    /// Smallest, mean and largest packet size over time.
    Sizes,
    /// Packet-size histogram.
    SizeHistogram,
    /// TCP connections started per minute.
    Connections,
    /// Top sources by bytes.
    Talkers,
}

impl Chart {
    /// Every chart, in page order.
    pub const ALL: [Chart; 5] = [
        Chart::Bytes,
        Chart::Sizes,
        Chart::SizeHistogram,
        Chart::Connections,
        Chart::Talkers,
    ];

    /// File stem (and HTML id suffix).
    pub fn name(self) -> &'static str {
        match self {
            Chart::Bytes => "bytes-over-time",
            Chart::Sizes => "packet-sizes-over-time",
            Chart::SizeHistogram => "packet-size-histogram",
            Chart::Connections => "tcp-connections-per-minute",
            Chart::Talkers => "top-talkers",
        }
    }

    /// Caption.
    pub fn title(self) -> &'static str {
        match self {
            Chart::Bytes => "Bytes over time by protocol",
            Chart::Sizes => "Packet sizes over time",
            Chart::SizeHistogram => "Packet sizes",
            Chart::Connections => "TCP connections started per minute",
            Chart::Talkers => "Top sources by bytes",
        }
    }
}

fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Both fonts are valid TrueType files shipped inside the `dejavu` crate.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// The chart as an SVG document.
pub fn svg(r: &Report, c: Chart) -> Result<String> {
    fonts();
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, SIZE).into_drawing_area();
        draw(c, &root, r)
            .and_then(|_| root.present())
            .map_err(|e| anyhow!("chart {}: {e}", c.name()))?;
    }
    Ok(s)
}

/// The chart as a PNG image.
pub fn png(r: &Report, c: Chart) -> Result<Vec<u8>> {
    fonts();
    let (w, h) = SIZE;
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        draw(c, &root, r)
            .and_then(|_| root.present())
            .map_err(|e| anyhow!("chart {}: {e}", c.name()))?;
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(&rgb)?;
    writer.finish()?;
    Ok(out)
}

/// Writes every chart as `<name>.svg` and `<name>.png` into `dir`; returns the files written.
pub fn write_all(r: &Report, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for c in Chart::ALL {
        let svg_path = dir.join(format!("{}.svg", c.name()));
        std::fs::write(&svg_path, svg(r, c)?)
            .with_context(|| format!("cannot write {}", svg_path.display()))?;
        let png_path = dir.join(format!("{}.png", c.name()));
        std::fs::write(&png_path, png(r, c)?)
            .with_context(|| format!("cannot write {}", png_path.display()))?;
        written.extend([svg_path, png_path]);
    }
    Ok(written)
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw<DB: DrawingBackend>(c: Chart, root: &DrawingArea<DB, Shift>, r: &Report) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    match c {
        Chart::Bytes => bytes(root, r),
        Chart::Sizes => sizes(root, r),
        Chart::SizeHistogram => {
            let labels: Vec<String> = r.packet_sizes.iter().map(|b| b.range.clone()).collect();
            let values: Vec<f64> = r.packet_sizes.iter().map(|b| b.packets as f64).collect();
            bars(
                root,
                c.title(),
                "packet size (bytes on the wire)",
                "packets",
                &labels,
                &values,
            )
        }
        Chart::Connections => {
            let (labels, values) = minute_bars(&r.tcp.connections_per_minute);
            bars(
                root,
                c.title(),
                "minute (UTC)",
                "connections",
                &labels,
                &values,
            )
        }
        Chart::Talkers => talkers(root, r),
    }
}

/// Most bars of the per-minute chart; longer captures get bars of several minutes.
const MAX_MINUTE_BARS: u64 = 1440;

/// One bar per minute from the first to the last, minutes without connections included (as
/// empty bars: the axis keeps the gaps), or per group of minutes past [`MAX_MINUTE_BARS`].
fn minute_bars(m: &[crate::report::MinuteCount]) -> (Vec<String>, Vec<f64>) {
    const MINUTE: u64 = 60_000_000_000;
    let (Some(first), Some(last)) = (m.first(), m.last()) else {
        return (Vec::new(), Vec::new());
    };
    let minutes = (last.minute_ns - first.minute_ns) / MINUTE + 1;
    let per_bar = minutes.div_ceil(MAX_MINUTE_BARS);
    let bars = minutes.div_ceil(per_bar) as usize;
    let mut values = vec![0.0; bars];
    for c in m {
        values[((c.minute_ns - first.minute_ns) / MINUTE / per_bar) as usize] +=
            c.connections as f64;
    }
    let labels = (0..bars as u64)
        .map(|i| {
            // "2024-01-02T03:04:00.000Z" → "03:04".
            let t = picket_detect::document::rfc3339(first.minute_ns + i * per_bar * MINUTE);
            t.get(11..16).unwrap_or(&t).to_string()
        })
        .collect();
    (labels, values)
}

/// Short number for axis labels: 950, 1.2k, 3.4M.
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
    RGBColor(127, 127, 127),
];

fn bytes<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> DrawResult<DB> {
    let w = r.timeline.bucket_s.max(1e-9);
    let lines: Vec<Line<'_>> = ["TCP", "UDP", "ICMP", "other"]
        .into_iter()
        .enumerate()
        .map(|(i, name)| -> Line<'_> {
            (name, COLORS[i], 2, Box::new(move |b| b.bytes[i] as f64 / w))
        })
        .collect();
    time_chart(root, r, Chart::Bytes, "bytes/s", |_| true, &lines)
}

fn sizes<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> DrawResult<DB> {
    let lines: [Line<'_>; 3] = [
        ("largest", COLORS[2], 1, Box::new(|b| b.size_max as f64)),
        (
            "mean",
            COLORS[0],
            2,
            Box::new(|b| b.total_bytes() as f64 / b.packets as f64),
        ),
        ("smallest", COLORS[1], 1, Box::new(|b| b.size_min as f64)),
    ];
    // Buckets without packets have no sizes: they are left out.
    time_chart(
        root,
        r,
        Chart::Sizes,
        "bytes on the wire",
        |b| b.packets > 0,
        &lines,
    )
}

/// One line of a time chart: legend name, colour, width and its value in a bucket.
type Line<'a> = (
    &'static str,
    RGBColor,
    u32,
    Box<dyn Fn(&Bucket) -> f64 + 'a>,
);

/// A chart over capture time: one step line per entry of `lines`, drawn over the buckets
/// that `keep` accepts, with the y axis up to the largest value drawn.
fn time_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    r: &Report,
    which: Chart,
    y_desc: &str,
    keep: fn(&Bucket) -> bool,
    lines: &[Line<'_>],
) -> DrawResult<DB> {
    let tl = &r.timeline;
    let w = tl.bucket_s.max(1e-9);
    let xmax = (tl.buckets.len() as f64 * w).max(w);
    let kept = || tl.buckets.iter().filter(|b| keep(b));
    let ymax = lines
        .iter()
        .flat_map(|(_, _, _, f)| kept().map(f))
        .fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(root)
        .caption(which.title(), (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..xmax, 0f64..(ymax * 1.05).max(1.0))?;
    chart
        .configure_mesh()
        .x_desc(format!(
            "seconds since the first packet (buckets of {})",
            duration(w)
        ))
        .y_desc(y_desc)
        .x_label_formatter(&|v| seconds(*v, xmax))
        .y_label_formatter(&|v| short(*v))
        .draw()?;
    for (name, color, width, f) in lines {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                steps(kept(), w, f),
                color.stroke_width(*width),
            ))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart)
}

fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
) -> DrawResult<DB> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
}

/// Vertical bars over categories.
fn bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    labels: &[String],
    values: &[f64],
) -> DrawResult<DB> {
    // Integer ranges are inclusive in plotters: n categories are 0..n-1 (at least two slots).
    let n = labels.len().max(2);
    let ymax = values.iter().copied().fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0f64..(ymax * 1.1).max(1.0))?;
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
            labels.get(*i).cloned().unwrap_or_default()
        }
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        // At least two: plotters never finishes placing a single key point.
        .x_labels(labels.len().clamp(2, 16))
        .x_label_formatter(&label)
        .y_label_formatter(&|v| short(*v))
        .draw()?;
    chart.draw_series(values.iter().enumerate().map(|(i, v)| {
        let mut bar = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), *v),
            ],
            COLORS[0].filled(),
        );
        bar.set_margin(0, 0, 3, 3);
        bar
    }))?;
    Ok(())
}

/// Horizontal bars of the top sources, largest at the top.
fn talkers<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, r: &Report) -> DrawResult<DB> {
    let list = &r.top_talkers.sources;
    let n = list.len().max(2);
    let xmax = list.iter().map(|t| t.bytes).max().unwrap_or(0) as f64;
    let mut chart = ChartBuilder::on(root)
        .caption(Chart::Talkers.title(), (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(260)
        .build_cartesian_2d(0f64..(xmax * 1.05).max(1.0), (0..n - 1).into_segmented())?;
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => list
            .get(n.wrapping_sub(1 + i))
            .map(|t| t.ip.clone())
            .unwrap_or_default(),
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("bytes sent")
        .y_labels(n)
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&label)
        .draw()?;
    chart.draw_series(list.iter().enumerate().map(|(rank, t)| {
        let i = n - 1 - rank;
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (t.bytes as f64, SegmentValue::Exact(i + 1)),
            ],
            COLORS[0].filled(),
        );
        bar.set_margin(3, 3, 0, 0);
        bar
    }))?;
    Ok(())
}

/// A time bucket drawn as a step: its value held over its whole width.
fn steps<'a>(
    buckets: impl Iterator<Item = &'a Bucket>,
    w: f64,
    f: impl Fn(&Bucket) -> f64,
) -> Vec<(f64, f64)> {
    buckets
        .flat_map(|b| [(b.t_s, f(b)), (b.t_s + w, f(b))])
        .collect()
}

/// A time-axis label with as many decimals as the axis length needs.
fn seconds(v: f64, axis: f64) -> String {
    let decimals = match axis {
        a if a >= 10.0 => 0,
        a if a >= 1.0 => 1,
        a if a >= 0.01 => 3,
        _ => 6,
    };
    format!("{v:.decimals$}")
}

fn duration(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else {
        format!("{:.3} ms", s * 1e3)
    }
}

#[cfg(test)]
mod minute_tests {
    use super::*;
    use crate::report::MinuteCount;

    fn at(minute: u64, connections: u64) -> MinuteCount {
        let ns = 1_700_000_040_000_000_000 + minute * 60_000_000_000;
        MinuteCount {
            minute: picket_detect::document::rfc3339(ns),
            minute_ns: ns,
            connections,
        }
    }

    #[test]
    fn minutes_without_connections_stay_on_the_axis() {
        let (labels, values) = minute_bars(&[at(0, 3), at(4, 1)]);
        assert_eq!(values, [3.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(labels.len(), 5);
        assert_ne!(labels[1], labels[0]);
        // Two days: bars of two minutes, every connection still counted.
        let (labels, values) = minute_bars(&[at(0, 1), at(1, 1), at(2879, 5)]);
        assert_eq!(labels.len(), 1440);
        assert_eq!((values[0], values[1439]), (2.0, 5.0));
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use crate::{Options, aggregate::Aggregator, reader::Frame};

    use super::*;

    #[test]
    fn a_chart_with_one_bar_is_drawn() {
        // Every packet the same size: one histogram bucket (plotters once looped forever
        // placing a single x label).
        let mut agg = Aggregator::new(&Options::default());
        let frame = picket_frames::ipv4(
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 2),
            17,
            0,
            &picket_frames::udp(1, 2, b"x"),
        );
        for i in 0..3 {
            agg.frame(&Frame {
                ts_ns: Some(i * 1_000_000),
                linktype: 1,
                data: &frame,
                orig_len: frame.len() as u32,
            });
        }
        let r = agg.finish().unwrap();
        assert_eq!(r.packet_sizes.iter().filter(|b| b.packets > 0).count(), 1);
        for c in Chart::ALL {
            assert!(svg(&r, c).unwrap().contains("<svg"));
        }
    }
}
