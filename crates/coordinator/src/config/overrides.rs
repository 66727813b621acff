//! `--set key.path=value`: overrides applied to the YAML document before it is parsed.

use super::error::{invalid, ConfigError};

/// Sets `doc[a][b][c] = value` for the dotted key `a.b.c`, creating mappings on the way.
fn set_path(doc: &mut serde_yaml_ng::Value, key: &str, value: serde_yaml_ng::Value) -> Result<(), ConfigError> {
    let mut node = doc;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !node.is_mapping() {
            if node.is_null() {
                *node = serde_yaml_ng::Value::Mapping(Default::default());
            } else {
                return Err(invalid(key, format!("`{}` is not a section", parts[..i].join("."))));
            }
        }
        let map = node.as_mapping_mut().expect("mapping");
        let k = serde_yaml_ng::Value::String(part.to_string());
        if i + 1 == parts.len() {
            map.insert(k, value);
            return Ok(());
        }
        node = map.entry(k).or_insert(serde_yaml_ng::Value::Null);
    }
    Ok(())
}

/// Applies every `KEY=VALUE` of `overrides` to `doc`, the value parsed as YAML.
pub fn apply(doc: &mut serde_yaml_ng::Value, overrides: &[String]) -> Result<(), ConfigError> {
    for o in overrides {
        let (key, value) = o.split_once('=').ok_or_else(|| invalid(o, "an override is KEY=VALUE, e.g. budget.steps=100"))?;
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(value).map_err(|e| invalid(key, e.to_string()))?;
        set_path(doc, key, value)?;
    }
    Ok(())
}
