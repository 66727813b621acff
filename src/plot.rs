//! Accuracy plots (PNG): over time steps for `train` and `report`, over compute for `speedup`.
//!
//! Text needs a TrueType font. rekindle ships none; it uses the first of `$REKINDLE_FONT` and a
//! few common system paths (Debian's `fonts-dejavu-core`, macOS, Windows). Without one, the plot
//! is skipped with a warning rather than failing a finished run.

use anyhow::{anyhow, Result};
use rekindle_coordinator::CurvePoint;
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

/// One line of an accuracy plot: A(t) per time step, and its standard deviation across seeds
/// (drawn as error bars; empty for a single run).
pub struct Series {
    pub name: String,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// A(t) against the time step, one line per series (with error bars where it has a std), y from
/// 0 to 1.
pub fn accuracy(path: &Path, title: &str, series: &[Series]) -> Result<()> {
    font()?;
    let steps = series.iter().map(|s| s.mean.len()).max().unwrap_or(1).max(2);
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
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        // Series side by side around each step, so their error bars do not hide each other.
        let shift = (i as f64 - (series.len() as f64 - 1.0) / 2.0) * 0.03;
        let points: Vec<(f64, f64)> = s.mean.iter().enumerate().map(|(t, &a)| ((t + 1) as f64 + shift, a)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        chart.draw_series(points.iter().zip(&s.std).map(|(&(x, m), &d)| ErrorBar::new_vertical(x, m - d, m, m + d, color.stroke_width(1), 6)))?;
    }
    // Accuracy falls over a stream, so the lower left is where the lines are not.
    chart.configure_series_labels().position(SeriesLabelPosition::LowerLeft).background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// An x axis: its label and what it reads from a curve point.
type Axis = (&'static str, fn(&CurvePoint) -> f64);

/// Accuracy against compute inside one time step: optimizer steps (left) and FLOPs (right),
/// one line per run, with the target `A*` dashed.
pub fn compute_curves(path: &Path, title: &str, series: &[(String, Vec<CurvePoint>)], target: f64) -> Result<()> {
    font()?;
    let root = BitMapBackend::new(path, (1300, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let panels = root.split_evenly((1, 2));
    let axes: [Axis; 2] = [("optimizer steps in the time step", |p| p.iteration as f64), ("FLOPs in the time step", |p| p.round_flops)];
    for (panel, (label, x_of)) in panels.iter().zip(axes) {
        let x_max = series.iter().flat_map(|(_, c)| c.iter().map(x_of)).fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(panel).margin(15).x_label_area_size(40).y_label_area_size(50).build_cartesian_2d(0f64..x_max * 1.02, 0f64..1f64)?;
        chart.configure_mesh().x_desc(label).y_desc("accuracy").x_label_formatter(&|x| if x_max > 1e6 { format!("{x:.1e}") } else { format!("{x:.0}") }).draw()?;
        // A*, dashed: 20 dashes, each half of its slot.
        let slot = x_max / 20.0;
        chart.draw_series((0..20).map(|i| PathElement::new(vec![(i as f64 * slot, target), ((i as f64 + 0.5) * slot, target)], BLACK.stroke_width(1))))?;
        for (i, (name, curve)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let points: Vec<(f64, f64)> = curve.iter().map(|p| (x_of(p), p.accuracy)).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(points.into_iter().map(|p| Circle::new(p, 2, color.filled())))?;
        }
        chart.configure_series_labels().position(SeriesLabelPosition::LowerRight).background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    }
    root.present()?;
    Ok(())
}
