//! `--set key.path=value`: overrides applied to the YAML document before it is parsed.

/// Sets `doc[a][b][c] = value` for the dotted key `a.b.c`, creating mappings on the way.
fn set_path(doc: &mut serde_yaml_ng::Value, key: &str, value: serde_yaml_ng::Value) -> Result<(), String> {
    let mut node = doc;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !node.is_mapping() {
            if node.is_null() {
                *node = serde_yaml_ng::Value::Mapping(Default::default());
            } else {
                return Err(format!("`{}` is not a section", parts[..i].join(".")));
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

/// Applies one `KEY=VALUE` to `doc`, the value parsed as YAML; the error says why it cannot (the
/// caller names the override).
pub fn apply(doc: &mut serde_yaml_ng::Value, set: &str) -> Result<(), String> {
    let (key, value) = set.split_once('=').ok_or("an override is KEY=VALUE, e.g. budget.steps=100")?;
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(format!("`{key}` is not a key path, e.g. budget.steps"));
    }
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(value).map_err(|e| format!("the value is not YAML: {}", super::error::unlocated(&e).1))?;
    set_path(doc, key, value)
}
