//! A sweep's points: the `--set` axes (commas split values outside brackets and quotes), their
//! cross product, each point's directory name, and where a point's directory stands.

use anyhow::{bail, Result};
use rekindle_coordinator::RunDir;
use std::path::{Path, PathBuf};

/// One `--set`: a key and its values (one for a fixed key).
pub(super) struct Axis {
    pub(super) key: String,
    pub(super) values: Vec<String>,
}

/// One point of the sweep: its name (`key=value,...` over the swept keys), its directory, and
/// the `--set` overrides that make it, in the order the sweep's were given.
pub(super) struct Point {
    pub(super) name: String,
    pub(super) dir: PathBuf,
    pub(super) sets: Vec<String>,
}

/// Where a point's directory stands.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Found {
    /// No run there (missing or empty directory): train with --out.
    Fresh,
    /// A run that has not finished: resume it.
    Started,
    Finished,
}

/// `text` cut at the commas outside brackets (`[]`, `{}`) and quotes.
pub(super) fn split_values(text: &str) -> Vec<String> {
    let (mut values, mut current, mut depth, mut quote) = (Vec::new(), String::new(), 0i32, None);
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth <= 0 => {
                values.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    values.push(current);
    values
}

pub(super) fn axes(sets: &[String]) -> Result<Vec<Axis>> {
    let mut axes: Vec<Axis> = Vec::new();
    for set in sets {
        let Some((key, value)) = set.split_once('=') else { bail!("--set {set}: expected KEY=VALUE or KEY=A,B,..., e.g. --set seed=0,1,2") };
        if axes.iter().any(|a| a.key == key) {
            bail!("--set {set}: {key} is set twice; give its values once, e.g. --set {key}=A,B");
        }
        let values = split_values(value);
        if values.iter().any(|v| v.trim().is_empty()) {
            bail!("--set {set}: an empty value (two commas, or one at an end)");
        }
        if let Some(v) = values.iter().enumerate().find_map(|(i, v)| values[..i].contains(v).then_some(v)) {
            bail!("--set {set}: {v} is listed twice");
        }
        axes.push(Axis { key: key.to_string(), values });
    }
    Ok(axes)
}

/// `text` for a directory name: letters, digits and `._+-=,` kept, each run of other characters
/// one `_`, none at the ends (`{ratio: 0.5}` → `ratio_0.5`, `a/b.safetensors` → `a_b.safetensors`).
pub(super) fn sanitize(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = if c.is_ascii_alphanumeric() || "._+-=,".contains(c) { c } else { '_' };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    match out.trim_matches('_') {
        "" => "_".to_string(),
        kept => kept.to_string(),
    }
}

/// Every point of the cross product, the last swept key varying fastest.
pub(super) fn points(axes: &[Axis], root: &Path) -> Result<Vec<Point>> {
    let count: usize = axes.iter().map(|a| a.values.len()).product();
    let mut points: Vec<Point> = Vec::with_capacity(count);
    for index in 0..count {
        let (mut rest, mut chosen) = (index, vec![0; axes.len()]);
        for (a, axis) in axes.iter().enumerate().rev() {
            chosen[a] = rest % axis.values.len();
            rest /= axis.values.len();
        }
        let sets: Vec<String> = axes.iter().zip(&chosen).map(|(a, &i)| format!("{}={}", a.key, a.values[i])).collect();
        let swept: Vec<String> = axes.iter().zip(&chosen).filter(|(a, _)| a.values.len() > 1).map(|(a, &i)| format!("{}={}", sanitize(&a.key), sanitize(&a.values[i]))).collect();
        let name = if swept.is_empty() { "point".to_string() } else { swept.join(",") };
        if name.len() > 200 {
            bail!("point {name}: the name is too long for a directory; sweep fewer keys or shorter values");
        }
        if let Some(other) = points.iter().find(|p| p.name == name) {
            bail!("points {} and {} both get the directory name {name} (after replacing characters); make the values differ in letters or digits", other.sets.join(","), sets.join(","));
        }
        points.push(Point { dir: root.join(&name), name, sets });
    }
    Ok(points)
}

/// Where `dir` stands: finished (summary.json, with a run.json that says finished or none),
/// started (config.yaml), or fresh.
pub(super) fn found(dir: &Path) -> Found {
    let run = RunDir::open(dir);
    let finished = match run.read_record() {
        Ok(Some(record)) => record.status == rekindle_coordinator::Status::Finished,
        Ok(None) => true,
        Err(_) => false,
    };
    if finished && dir.join("summary.json").exists() {
        Found::Finished
    } else if run.config_path().exists() {
        Found::Started
    } else {
        Found::Fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_inside_brackets_and_quotes_do_not_split() {
        assert_eq!(split_values("0,1,2"), ["0", "1", "2"]);
        assert_eq!(split_values("[1,2]"), ["[1,2]"]);
        assert_eq!(split_values("[1,2],[3,4]"), ["[1,2]", "[3,4]"]);
        assert_eq!(split_values("{a: 1, b: 2},x"), ["{a: 1, b: 2}", "x"]);
        assert_eq!(split_values("'a,b',\"c,d\""), ["'a,b'", "\"c,d\""]);
    }

    #[test]
    fn points_are_the_cross_product_named_by_their_swept_values() {
        let sets = ["seed=0,1", "budget.steps=2", "strategy.name=dietcl,er", "model.init=a/b.safetensors"].map(String::from);
        let p = points(&axes(&sets).unwrap(), Path::new("s")).unwrap();
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["seed=0,strategy.name=dietcl", "seed=0,strategy.name=er", "seed=1,strategy.name=dietcl", "seed=1,strategy.name=er"]);
        assert_eq!(p[1].sets, ["seed=0", "budget.steps=2", "strategy.name=er", "model.init=a/b.safetensors"]);
        let p = points(&axes(&["budget.stage_split={ratio: 0.5},{threshold: 40}".to_string()]).unwrap(), Path::new("s")).unwrap();
        assert_eq!(p[1].name, "budget.stage_split=threshold_40");
        let p = points(&axes(&["model.init=a/b,a_b".to_string()]).unwrap(), Path::new("s"));
        assert!(p.is_err(), "two values that sanitize to one name");
        assert!(axes(&["seed=0,1".into(), "seed=2".into()]).is_err());
        assert!(axes(&["seed=0,,1".into()]).is_err());
        assert_eq!(points(&axes(&["seed=3".into()]).unwrap(), Path::new("s")).unwrap()[0].name, "point");
    }
}
