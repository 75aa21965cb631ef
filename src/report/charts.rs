//! Charts of the reports, drawn with `plotters`: SVG for the HTML report
//! (text becomes SVG `<text>` the browser renders) and PNG for email (mail
//! clients block SVG), with an embedded font so no system font library is
//! needed.

use crate::kpi::{Figure, KpiPack};
use plotters::coord::Shift;
use plotters::prelude::*;

const BUCKET_COLORS: [RGBColor; 3] = [
    RGBColor(0x4c, 0x9a, 0x6a),
    RGBColor(0xe0, 0xa1, 0x2f),
    RGBColor(0xc0, 0x39, 0x2b),
];
const LINE_COLORS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x5f, 0xa8),
    RGBColor(0xc0, 0x39, 0x2b),
    RGBColor(0x4c, 0x9a, 0x6a),
    RGBColor(0x7d, 0x3c, 0x98),
];
/// Every chart's canvas: the HTML report shows them side by side in equal
/// columns (about 520 px wide at a 1280 px window), email at this size.
const SIZE: (u32, u32) = (720, 420);
const FONT: &str = "sans-serif";
/// Text sizes in canvas pixels, chosen so that at the report's column
/// width (about 0.7 of the canvas) labels read at 13-14 px on screen.
const CAPTION_PX: u32 = 27;
const LABEL_PX: u32 = 21;
const LEGEND_PX: u32 = 19;
/// Room above the highest value for the legend (upper left), so it never
/// covers a bar or a line.
const HEADROOM: f64 = 1.5;

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// The embedded font (DejaVu Sans, see `assets/fonts/DejaVuSans.LICENSE`):
/// PNG charts need glyphs, and no system font library is used.
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The bytes are a valid TrueType font compiled into the binary.
            let _ = plotters::style::register_font(FONT, style, FONT_BYTES);
        }
    });
}

/// Draw on an SVG canvas and return the SVG text.
fn svg(
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<String, String> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        draw(&root)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// Draw on an RGB bitmap and return it encoded as PNG.
fn png(
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<Vec<u8>, String> {
    register_font();
    let (w, h) = SIZE;
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area();
        draw(&root)?;
        root.present().map_err(err)?;
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(err)?;
        writer.write_image_data(&rgb).map_err(err)?;
    }
    Ok(out)
}

/// Draws one chart of a pack as PNG bytes.
type PngChart = fn(&KpiPack) -> Result<Vec<u8>, String>;

/// The charts of an email, as (content id, alt text, PNG bytes); a chart
/// that cannot be drawn (e.g. its KPI is not in the pack) is left out.
pub fn email_pngs(pack: &KpiPack) -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    let charts: [(&str, &str, PngChart); 3] = [
        (
            "aging",
            "Open findings by severity and age",
            aging_by_severity_png,
        ),
        (
            "mttr",
            "Mean time to remediate over time",
            mttr_over_time_png,
        ),
        ("coverage", "Coverage over time", coverage_over_time_png),
    ];
    for (cid, alt, draw) in charts {
        match draw(pack) {
            Ok(png) => out.push((format!("{cid}@secmetrics"), alt.to_string(), png)),
            Err(e) => tracing::debug!(chart = cid, error = %e, "chart left out of the email"),
        }
    }
    out
}

/// Open findings by severity and age bucket, as grouped bars.
pub fn aging_by_severity(pack: &KpiPack) -> Result<String, String> {
    svg(|root| aging_on(root, pack))
}

/// The aging chart as a PNG (for email, where SVG is blocked).
pub fn aging_by_severity_png(pack: &KpiPack) -> Result<Vec<u8>, String> {
    png(|root| aging_on(root, pack))
}

fn aging_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    pack: &KpiPack,
) -> Result<(), String> {
    let aging = pack
        .kpis
        .findings_aging
        .as_ref()
        .ok_or("findings aging is not in this pack")?;
    let groups: Vec<(&str, [u64; 3])> = aging
        .figures
        .by_severity
        .0
        .iter()
        .map(|(k, b)| (k.as_str(), [b.days_0_30, b.days_31_90, b.over_90]))
        .collect();
    let max = groups
        .iter()
        .flat_map(|(_, v)| v.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let n = groups.len() as f64;
    {
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("Open findings by age, {}", pack.period.label()),
                (FONT, CAPTION_PX),
            )
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(78)
            .build_cartesian_2d(-0.5f64..(n - 0.5), 0f64..(max * HEADROOM))
            .map_err(err)?;
        let names: Vec<&str> = groups.iter().map(|(k, _)| *k).collect();
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).copied().unwrap_or("").to_string()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .label_style((FONT, LABEL_PX))
            .axis_desc_style((FONT, LABEL_PX))
            .x_labels(groups.len())
            .x_label_formatter(&label)
            .y_desc("findings")
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(err)?;
        let buckets = ["0-30 days", "31-90 days", "over 90 days"];
        for (b, name) in buckets.iter().enumerate() {
            let color = BUCKET_COLORS[b];
            let bars = groups.iter().enumerate().map(move |(i, (_, v))| {
                let x0 = i as f64 - 0.4 + b as f64 * 0.27;
                Rectangle::new([(x0, 0.0), (x0 + 0.25, v[b] as f64)], color.filled())
            });
            chart
                .draw_series(bars)
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, LEGEND_PX))
            .border_style(BLACK.mix(0.3))
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// One line of a chart over periods; `None` leaves a gap.
struct Series {
    name: &'static str,
    values: Vec<Option<f64>>,
}

fn line_chart<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    caption: &str,
    y_desc: &str,
    labels: &[String],
    series: &[Series],
    y_fixed: Option<f64>,
    y_fmt: &dyn Fn(&f64) -> String,
) -> Result<(), String> {
    let n = labels.len().max(1) as f64;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .copied()
        .fold(0.0f64, f64::max);
    let top = y_fixed.unwrap_or(if max > 0.0 { max * HEADROOM } else { 1.0 });
    {
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(root)
            .caption(caption, (FONT, CAPTION_PX))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(84)
            .build_cartesian_2d(-0.3f64..(n - 0.7), 0f64..top)
            .map_err(err)?;
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .label_style((FONT, LABEL_PX))
            .axis_desc_style((FONT, LABEL_PX))
            .x_labels(labels.len())
            .x_label_formatter(&label)
            .y_desc(y_desc)
            .y_label_formatter(y_fmt)
            .draw()
            .map_err(err)?;
        for (i, s) in series.iter().enumerate() {
            let color = LINE_COLORS[i % LINE_COLORS.len()];
            // Split at missing values so a gap is not drawn as a slope.
            let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for (x, v) in s.values.iter().enumerate() {
                match v {
                    Some(v) => runs
                        .last_mut()
                        .map(|r| r.push((x as f64, *v)))
                        .unwrap_or(()),
                    None => runs.push(Vec::new()),
                }
            }
            let points: Vec<(f64, f64)> = runs.iter().flatten().copied().collect();
            for run in runs.into_iter().filter(|r| r.len() > 1) {
                chart
                    .draw_series(LineSeries::new(run, color.stroke_width(2)))
                    .map_err(err)?;
            }
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(move |p| Circle::new(p, 4, color.filled())),
                )
                .map_err(err)?
                .label(s.name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 2), (x + 14, y + 2)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, LEGEND_PX))
            .border_style(BLACK.mix(0.3))
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

fn history_labels(pack: &KpiPack) -> Vec<String> {
    pack.history.iter().map(|h| h.period.label()).collect()
}

fn history_of(pack: &KpiPack, key: &str) -> Vec<Option<f64>> {
    pack.history
        .iter()
        .map(|h| h.headlines.get(key).copied().flatten().map(Figure::as_f64))
        .collect()
}

/// Mean days to remediate critical and high production findings over the
/// pack's history.
pub fn mttr_over_time(pack: &KpiPack) -> Result<String, String> {
    svg(|root| mttr_on(root, pack))
}

/// The MTTR chart as a PNG.
pub fn mttr_over_time_png(pack: &KpiPack) -> Result<Vec<u8>, String> {
    png(|root| mttr_on(root, pack))
}

fn mttr_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    pack: &KpiPack,
) -> Result<(), String> {
    let series = [
        Series {
            name: "critical (production)",
            values: history_of(pack, "mttr"),
        },
        Series {
            name: "high (production)",
            values: pack.history.iter().map(|h| h.mttr_high_days).collect(),
        },
    ];
    line_chart(
        root,
        "Mean time to remediate",
        "days",
        &history_labels(pack),
        &series,
        None,
        &|y| format!("{y:.0}"),
    )
}

/// Review and threat-model coverage over the pack's history.
pub fn coverage_over_time(pack: &KpiPack) -> Result<String, String> {
    svg(|root| coverage_on(root, pack))
}

/// The coverage chart as a PNG.
pub fn coverage_over_time_png(pack: &KpiPack) -> Result<Vec<u8>, String> {
    png(|root| coverage_on(root, pack))
}

fn coverage_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    pack: &KpiPack,
) -> Result<(), String> {
    let series = [
        Series {
            name: "design review (tier 1-2)",
            values: history_of(pack, "design_review_coverage"),
        },
        Series {
            name: "threat model (critical)",
            values: history_of(pack, "threat_model_coverage"),
        },
        Series {
            name: "security review (all)",
            values: history_of(pack, "security_review_coverage"),
        },
    ];
    line_chart(
        root,
        "Coverage",
        "share of assets",
        &history_labels(pack),
        &series,
        // Shares end at 100%; the room above holds the legend, unlabelled.
        Some(HEADROOM),
        &|y| {
            if *y <= 1.0 + 1e-9 {
                format!("{:.0}%", y * 100.0)
            } else {
                String::new()
            }
        },
    )
}
