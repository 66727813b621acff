//! Why a config is refused: a value that names its key, a file that does not parse (naming the
//! key path and the line), or a `--set` override that does not apply (naming the override).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("invalid config: `{key}`: {reason}")]
    Invalid { key: String, reason: String },
    /// The file itself: its YAML, or a key or value of it, at `line` where the parser knows it.
    #[error("{path}{}: {reason}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Parse { path: String, line: Option<usize>, reason: String },
    /// One `--set KEY=VALUE` (`set`), whatever the file says.
    #[error("--set {set}: {reason}")]
    Override { set: String, reason: String },
}

pub fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), reason: reason.into() }
}

/// A YAML error of the file `path`: its line taken out of the message to lead it.
pub fn in_file(path: &str, e: &serde_yaml_ng::Error) -> ConfigError {
    let (line, reason) = unlocated(e);
    ConfigError::Parse { path: path.into(), line, reason }
}

/// A schema error (a wrong type, an unknown key) of the file `path`, read from its text: the
/// full key path, and the line.
pub fn in_file_at(path: &str, e: &serde_path_to_error::Error<serde_yaml_ng::Error>) -> ConfigError {
    let (line, message) = unlocated(e.inner());
    let key = e.path().to_string();
    // The parser's own path (the key's, or its section's for an unknown key) leads its message.
    let message = ancestors(&key).find_map(|p| message.strip_prefix(&format!("{p}: "))).unwrap_or(&message);
    ConfigError::Parse { path: path.into(), line, reason: keyed(&key, message) }
}

/// A schema error once the override `set` is applied (the document before it was fine).
pub fn in_override(set: &str, e: &serde_path_to_error::Error<serde_yaml_ng::Error>) -> ConfigError {
    ConfigError::Override { set: set.into(), reason: keyed(&e.path().to_string(), &e.inner().to_string()) }
}

/// The message of `e` without its ` at line L column C`, and `L`, where the parser gave one.
pub fn unlocated(e: &serde_yaml_ng::Error) -> (Option<usize>, String) {
    let text = e.to_string();
    if let Some(at) = e.location() {
        let mark = format!(" at line {} column {}", at.line(), at.column());
        if text.contains(&mark) {
            return (Some(at.line()), text.replacen(&mark, "", 1));
        }
    }
    (None, text)
}

/// `a.b.c`, `a.b`, `a`: the key path and the sections holding it.
fn ancestors(key: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(key), |k| k.rfind(['.', '[']).map(|i| &k[..i]))
}

/// `message` about the value at `key` (serde_path_to_error's path: `.` for the root): an unknown
/// key names its full path and what its section has, any other message is led by the key.
fn keyed(key: &str, message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((_, expected)) = rest.split_once("`, ") {
            let section = key.rfind('.').map_or("the config", |i| &key[..i]);
            let names: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            let has = if names.is_empty() { "has no keys".to_string() } else { format!("has: {}", names.join(", ")) };
            return format!("unknown key {key} ({section} {has})");
        }
    }
    if key == "." {
        return message.to_string();
    }
    format!("{key}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_names_its_path_and_its_section() {
        let m = "unknown field `stepz`, expected one of `steps`, `effective_batch`";
        assert_eq!(keyed("budget.stepz", m), "unknown key budget.stepz (budget has: steps, effective_batch)");
        assert_eq!(keyed("bogus", "unknown field `bogus`, expected `seed`"), "unknown key bogus (the config has: seed)");
        assert_eq!(keyed("a.b", "unknown field `b`, there are no fields"), "unknown key a.b (a has no keys)");
        assert_eq!(keyed("budget.steps", "invalid type: string \"x\", expected usize"), "budget.steps: invalid type: string \"x\", expected usize");
        assert_eq!(keyed(".", "invalid type: sequence, expected struct TrainConfig"), "invalid type: sequence, expected struct TrainConfig");
        assert_eq!(ancestors("a.b[1].c").collect::<Vec<_>>(), ["a.b[1].c", "a.b[1]", "a.b", "a"]);
    }

    fn refusal(text: &str, overrides: &[&str]) -> String {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        crate::TrainConfig::from_yaml("configs/x.yaml", text, &o).unwrap_err().to_string()
    }

    #[test]
    fn a_file_error_names_the_key_path_and_the_line() {
        let wrong = "seed: 1\nbudget:\n  steps: two hundred\n";
        assert_eq!(refusal(wrong, &[]), "configs/x.yaml line 3: budget.steps: invalid type: string \"two hundred\", expected usize");
        // The file's fault even with overrides given.
        assert_eq!(refusal(wrong, &["seed=2"]), refusal(wrong, &[]));
        let typo = refusal("seed: 1\nbudget:\n  effective_batch: 8\n  stepz: 3\n", &[]);
        assert!(typo.starts_with("configs/x.yaml line 4: unknown key budget.stepz (budget has: steps, effective_batch, micro_batch,"), "{typo}");
        assert_eq!(refusal("seed: 1\nbogus: 1\n", &[]).split(" (").next().unwrap(), "configs/x.yaml line 2: unknown key bogus");
        let syntax = refusal("seed: 1\n  budget: 3\n", &[]);
        assert!(syntax.starts_with("configs/x.yaml line 2: mapping values are not allowed"), "{syntax}");
    }

    #[test]
    fn an_override_error_names_the_override_not_the_file() {
        let file = "seed: 1\nbudget:\n  steps: 10\n";
        let typo = refusal(file, &["seed=2", "budget.stepz=3"]);
        assert!(typo.starts_with("--set budget.stepz=3: unknown key budget.stepz (budget has: steps, effective_batch,"), "{typo}");
        assert!(!typo.contains("x.yaml"), "{typo}");
        assert_eq!(refusal(file, &["budget.steps=many"]), "--set budget.steps=many: budget.steps: invalid type: string \"many\", expected usize");
        assert_eq!(refusal("", &["budget={stepz: 1}"]).split(" (").next().unwrap(), "--set budget={stepz: 1}: unknown key budget.stepz");
        assert!(refusal(file, &["budget.steps"]).starts_with("--set budget.steps: an override is KEY=VALUE"));
        assert!(refusal(file, &["budget.steps=[1"]).starts_with("--set budget.steps=[1: the value is not YAML: "));
        assert_eq!(refusal(file, &["seed.x=1"]), "--set seed.x=1: `seed` is not a section");
        assert_eq!(refusal(file, &["budget..steps=1"]), "--set budget..steps=1: `budget..steps` is not a key path, e.g. budget.steps");
    }
}
