//! Accuracy-over-time plots (PNG) for `train` and `report`.
//!
//! Text needs a TrueType font. rekindle ships none; it uses the first of `$REKINDLE_FONT` and a
//! few common system paths (Debian's `fonts-dejavu-core`, macOS, Windows). Without one, the plot
//! is skipped with a warning rather than failing a finished run.

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

const FONT_PATHS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers a system font as plotters' "sans-serif" (once per process).
fn font() -> Result<()> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates = std::env::var("REKINDLE_FONT").into_iter().chain(FONT_PATHS.iter().map(|s| s.to_string()));
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                // plotters keeps fonts for the life of the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err("no TrueType font found: install fonts-dejavu-core, or set REKINDLE_FONT=/path/to/font.ttf".into())
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// A(t) against the time step, one line per series, y from 0 to 1.
pub fn accuracy(path: &Path, title: &str, series: &[(String, Vec<f64>)]) -> Result<()> {
    font()?;
    let steps = series.iter().map(|(_, v)| v.len()).max().unwrap_or(1).max(2);
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(1f64..steps as f64, 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc("time step t")
        .y_desc("accuracy A(t)")
        .x_labels(steps.min(20))
        .x_label_formatter(&|x| format!("{}", x.round() as usize))
        .draw()?;
    for (i, (name, values)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = values.iter().enumerate().map(|(t, &a)| ((t + 1) as f64, a)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
