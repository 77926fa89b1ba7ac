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

/// Draws the chart of `report` (to be written to `path`) into `svg`.
#[cfg(feature = "chart")]
fn draw(report: &BenchReport, path: &Path, svg: &mut String) -> Result<()> {
    use plotters::prelude::*;
    let rows = &report.rows;
    let height = 70 + 34 * rows.len() as u32;
    let root = SVGBackend::with_string(svg, (900, height)).into_drawing_area();
    let draw = |e: DrawingAreaErrorKind<std::io::Error>| {
        Error::Invalid(format!("drawing {}: {e}", path.display()))
    };
    root.fill(&WHITE).map_err(draw)?;
    root.draw(&Text::new(
        format!("Shipping {} to a side that has {}", report.new, report.old),
        (20, 16),
        ("sans-serif", 18).into_font(),
    ))
    .map_err(draw)?;
    let max = rows.iter().map(|r| r.bytes).max().unwrap_or(1).max(1) as f64;
    let (left, width) = (300i32, 420f64);
    for (i, r) in rows.iter().enumerate() {
        let y = 50 + 34 * i as i32;
        let color = if r.method == "ferry" {
            RGBColor(0x1f, 0x77, 0xb4)
        } else {
            RGBColor(0xaa, 0xaa, 0xaa)
        };
        root.draw(&Text::new(
            r.method.clone(),
            (10, y + 6),
            ("sans-serif", 14).into_font(),
        ))
        .map_err(draw)?;
        let w = ((r.bytes as f64 / max) * width).max(1.0) as i32;
        root.draw(&Rectangle::new(
            [(left, y), (left + w, y + 24)],
            color.filled(),
        ))
        .map_err(draw)?;
        root.draw(&Text::new(
            format!("{:.1} MB ({:.2}%)", r.bytes as f64 / 1e6, r.percent),
            (left + w + 8, y + 6),
            ("sans-serif", 14).into_font(),
        ))
        .map_err(draw)?;
    }
    root.present().map_err(draw)?;
    Ok(())
}
