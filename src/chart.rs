//! The SVG bar chart of a `ferry bench` report (`--chart`), drawn with
//! plotters when ferry is built with the `chart` feature (on by default).

use std::path::Path;

use crate::bench::BenchReport;
use crate::error::{Error, Result};

/// Whether this build can draw charts: an error saying how to get one if not.
pub fn available() -> Result<()> {
    if cfg!(feature = "chart") {
        Ok(())
    } else {
        Err(Error::Invalid(
            "this ferry was built without the 'chart' feature, so --chart is not available: leave it out, or rebuild with default features".into(),
        ))
    }
}

/// Without the `chart` feature: refuses, as [`available`] does.
#[cfg(not(feature = "chart"))]
pub fn write(_report: &BenchReport, _path: &Path) -> Result<()> {
    available()
}

/// Writes the report's rows as an SVG bar chart, whole or not at all
/// (see [`crate::output::AtomicFile`]).
#[cfg(feature = "chart")]
pub fn write(report: &BenchReport, path: &Path) -> Result<()> {
    use crate::error::IoContext;
    use std::io::Write;
    let mut svg = String::new();
    draw(report, path, &mut svg)?;
    let mut f = crate::output::AtomicFile::create(path)?;
    f.write_all(svg.as_bytes())
        .ctx(|| format!("writing {}", path.display()))?;
    f.commit().map(|_| ())
}

/// Bytes in decimal units with three significant digits ("48.2 kB"):
/// the unit is picked so that the number is at least 1, never "0.0 MB".
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 999.5 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        return format!("{bytes} B");
    }
    let digits = if v >= 99.95 {
        0
    } else if v >= 9.995 {
        1
    } else {
        2
    };
    format!("{v:.digits$} {}", UNITS[u])
}

#[cfg(feature = "chart")]
/// The label of the power of ten 10^`exp` bytes ("1 kB", "100 MB").
fn tick_label(exp: i32) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let u = (exp / 3).clamp(0, 4);
    format!("{} {}", 10u64.pow((exp - 3 * u) as u32), UNITS[u as usize])
}

#[cfg(feature = "chart")]
/// How many times fewer bytes `ferry` ships than `gzip`, as the callout says it.
fn times(gzip: u64, ferry: u64) -> String {
    let n = gzip as f64 / ferry.max(1) as f64;
    if n >= 10.0 {
        format!("{n:.0}")
    } else {
        format!("{n:.1}")
    }
}

/// Draws the chart of `report` (to be written to `path`) into `svg`: one
/// horizontal bar per row on a log scale of bytes (the rows span decades),
/// ferry's bar in colour and the others grey, each labelled with its size,
/// and how many times smaller than gzip ferry's pack is.
#[cfg(feature = "chart")]
fn draw(report: &BenchReport, path: &Path, svg: &mut String) -> Result<()> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    const FERRY: RGBColor = RGBColor(0xd9, 0x5f, 0x02);
    const OTHER: RGBColor = RGBColor(0xa6, 0xa6, 0xa6);
    const GRID: RGBColor = RGBColor(0xdd, 0xdd, 0xdd);
    let rows = &report.rows;
    let (top, step) = (84i32, 34i32);
    let axis_y = top + step * rows.len() as i32 + 4;
    let height = (axis_y + 40) as u32;
    let root = SVGBackend::with_string(svg, (960, height)).into_drawing_area();
    let draw = |e: DrawingAreaErrorKind<std::io::Error>| {
        Error::Invalid(format!("drawing {}: {e}", path.display()))
    };
    let font = |size: f64| ("sans-serif", size).into_font();
    root.fill(&WHITE).map_err(draw)?;
    root.draw(&Text::new(
        format!("Shipping {} to a side that has {}", report.new, report.old),
        (20, 14),
        font(24.0).style(FontStyle::Bold),
    ))
    .map_err(draw)?;
    let bytes = |m: &str| rows.iter().find(|r| r.method == m).map(|r| r.bytes);
    if let (Some(g), Some(f)) = (bytes("gzip -6"), bytes("ferry")) {
        root.draw(&Text::new(
            format!("ferry: {}× smaller than gzip", times(g, f)),
            (20, 44),
            font(21.0).style(FontStyle::Bold).color(&FERRY),
        ))
        .map_err(draw)?;
    }
    // The scale: whole decades around the values, at least two of them.
    let exp = |b: u64| (b.max(1) as f64).log10();
    let lo = rows.iter().map(|r| exp(r.bytes)).fold(f64::MAX, f64::min);
    let hi = rows.iter().map(|r| exp(r.bytes)).fold(0.0, f64::max);
    let hi = (hi.ceil() as i32).max(2);
    let lo = (lo.floor() as i32).clamp(0, hi - 2);
    let (left, width) = (300i32, 520f64);
    let x = |b: u64| left + ((exp(b) - lo as f64) / (hi - lo) as f64 * width).round() as i32;
    for e in lo..=hi {
        let gx = x(10u64.pow(e as u32));
        root.draw(&PathElement::new(
            vec![(gx, top - 6), (gx, axis_y)],
            GRID.stroke_width(1),
        ))
        .map_err(draw)?;
        root.draw(&Text::new(
            tick_label(e),
            (gx, axis_y + 6),
            TextStyle::from(font(16.0)).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(draw)?;
    }
    root.draw(&Text::new(
        "bytes shipped (log scale)",
        (left + width as i32 / 2, axis_y + 24),
        TextStyle::from(font(16.0)).pos(Pos::new(HPos::Center, VPos::Top)),
    ))
    .map_err(draw)?;
    for (i, r) in rows.iter().enumerate() {
        let y = top + step * i as i32;
        let ferry = r.method == "ferry";
        let color = if ferry { FERRY } else { OTHER };
        let label = if ferry {
            font(17.0).style(FontStyle::Bold)
        } else {
            font(17.0)
        };
        root.draw(&Text::new(r.method.clone(), (10, y + 5), label.clone()))
            .map_err(draw)?;
        let end = x(r.bytes).max(left + 2);
        root.draw(&Rectangle::new([(left, y), (end, y + 24)], color.filled()))
            .map_err(draw)?;
        root.draw(&Text::new(human(r.bytes), (end + 8, y + 5), label))
            .map_err(draw)?;
    }
    root.present().map_err(draw)?;
    Ok(())
}
