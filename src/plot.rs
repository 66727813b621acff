//! Plots (PNG): accuracy over time steps with each class's accuracy as a heat map (`train`,
//! `report`), the training loss over optimizer steps and FLOPs (`train`, `report`), accuracy
//! over compute (`speedup`).
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

/// Each class's accuracy at each time step, for a heat map: `rows[c][t]` for the class named
/// `classes[c]`, `None` before the class was seen.
pub struct ClassGrid {
    pub name: String,
    pub classes: Vec<String>,
    pub rows: Vec<Vec<Option<f64>>>,
}

/// A(t) against the time step, one line per series (with error bars where it has a std), y from
/// 0 to 1; beside it, one heat map per grid of each class's accuracy over the time steps.
pub fn accuracy(path: &Path, title: &str, series: &[Series], grids: &[ClassGrid]) -> Result<()> {
    font()?;
    let steps = series.iter().map(|s| s.mean.len()).max().unwrap_or(1).max(2);
    let width = 800 + 420 * grids.len() as u32;
    let root = BitMapBackend::new(path, (width, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(800);
    for (area, grid) in right.split_evenly((1, grids.len().max(1))).iter().zip(grids) {
        heat_map(area, grid)?;
    }
    let mut chart = ChartBuilder::on(&left)
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

/// `grid` as a heat map: a row per class, a column per time step, white (0) to dark blue (1),
/// blank before the class was seen.
fn heat_map(area: &DrawingArea<BitMapBackend, plotters::coord::Shift>, grid: &ClassGrid) -> Result<()> {
    let steps = grid.rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let classes = grid.classes.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("per-class accuracy (white 0, blue 1): {}", grid.name), ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(-0.5f64..steps as f64 - 0.5, -0.5f64..classes as f64 - 0.5)?;
    let names = grid.classes.clone();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("time step t")
        .y_desc("class")
        .x_labels(steps.min(20))
        .y_labels(classes.min(25))
        .x_label_formatter(&|x| format!("{}", x.round() as usize + 1))
        .y_label_formatter(&move |y| names.get(y.round() as usize).cloned().unwrap_or_default())
        .draw()?;
    let cells = grid.rows.iter().enumerate().flat_map(|(c, row)| row.iter().enumerate().filter_map(move |(t, a)| a.map(|a| (c, t, a))));
    chart.draw_series(cells.map(|(c, t, a)| {
        let shade = |full: f64| (255.0 - (255.0 - full) * a.clamp(0.0, 1.0)) as u8;
        Rectangle::new([(t as f64 - 0.5, c as f64 - 0.5), (t as f64 + 0.5, c as f64 + 0.5)], RGBColor(shade(20.0), shade(60.0), shade(160.0)).filled())
    }))?;
    Ok(())
}

/// One line of a loss plot: at each optimizer step, the FLOPs spent so far and the training
/// loss, its mean and standard deviation across seeds (drawn as a band; zero for one run).
pub struct LossSeries {
    pub name: String,
    pub points: Vec<LossPoint>,
}

pub struct LossPoint {
    pub optimizer_step: f64,
    pub flops: f64,
    pub mean: f64,
    pub std: f64,
}

/// The training loss against optimizer steps (left) and FLOPs (right), one line per series with
/// a band of ± one standard deviation across seeds.
pub fn losses(path: &Path, title: &str, series: &[LossSeries]) -> Result<()> {
    font()?;
    let root = BitMapBackend::new(path, (1300, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let points = || series.iter().flat_map(|s| &s.points);
    let y_max = points().map(|p| p.mean + p.std).filter(|v| v.is_finite()).fold(1e-9, f64::max) * 1.05;
    let axes: [Axis<LossPoint>; 2] = [("optimizer steps", |p| p.optimizer_step), ("FLOPs", |p| p.flops)];
    for (panel, (label, x_of)) in root.split_evenly((1, 2)).iter().zip(axes) {
        let x_max = points().map(x_of).fold(1.0, f64::max);
        let mut chart = ChartBuilder::on(panel).margin(15).x_label_area_size(40).y_label_area_size(55).build_cartesian_2d(0f64..x_max * 1.02, 0f64..y_max)?;
        chart.configure_mesh().x_desc(label).y_desc("training loss").x_label_formatter(&|x| if x_max > 1e6 { format!("{x:.1e}") } else { format!("{x:.0}") }).draw()?;
        for (i, s) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let band: Vec<(f64, f64)> = s.points.iter().map(|p| (x_of(p), p.mean + p.std)).chain(s.points.iter().rev().map(|p| (x_of(p), p.mean - p.std))).collect();
            chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.2).filled())))?;
            chart
                .draw_series(LineSeries::new(s.points.iter().map(|p| (x_of(p), p.mean)), color.stroke_width(1)))?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart.configure_series_labels().position(SeriesLabelPosition::UpperRight).background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    }
    root.present()?;
    Ok(())
}

/// An x axis: its label and what it reads from a point of type `P`.
type Axis<P> = (&'static str, fn(&P) -> f64);

/// Accuracy against compute inside one time step: optimizer steps (left) and FLOPs (right),
/// one line per run, with the target `A*` dashed.
pub fn compute_curves(path: &Path, title: &str, series: &[(String, Vec<CurvePoint>)], target: f64) -> Result<()> {
    font()?;
    let root = BitMapBackend::new(path, (1300, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let panels = root.split_evenly((1, 2));
    let axes: [Axis<CurvePoint>; 2] = [("optimizer steps in the time step", |p| p.iteration as f64), ("FLOPs in the time step", |p| p.round_flops)];
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
