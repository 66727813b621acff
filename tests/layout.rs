//! The shape of the source tree, checked: no two files of a crate import each other, directly or
//! round a longer loop, and the coordinator needs no `too_many_arguments` allowance (its
//! functions take a few named things, not long lists of locals).
//!
//! A file's imports are the `crate::`, `super::` and `self::` paths it names, resolved to the
//! file of the longest module prefix that exists; in a `lib.rs` or `mod.rs` a path that starts
//! with a child module's name counts too, except in `pub use` re-exports (a re-export only lists
//! what the module offers, it does not depend on it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
        if entry.is_dir() {
            sources(&entry, out);
        } else if entry.extension().is_some_and(|e| e == "rs") {
            out.push(entry);
        }
    }
}

/// The module path of `file` under `src` (`lib.rs`, `main.rs` and `mod.rs` name their directory).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("lib" | "main" | "mod")) {
        parts.pop();
    }
    parts
}

fn is_hub(file: &Path) -> bool {
    matches!(file.file_name().and_then(|n| n.to_str()), Some("lib.rs" | "main.rs" | "mod.rs"))
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The path segments named after each occurrence of `head::` in `code`, with where it occurs:
/// `a::b::C` of `head::a::b::C`, and one path per item of a group `head::{a::X, b}`.
fn paths_after(code: &str, head: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let pattern = format!("{head}::");
    let mut from = 0;
    while let Some(at) = code[from..].find(&pattern) {
        let start = from + at;
        from = start + pattern.len();
        if code[..start].chars().next_back().is_some_and(|c| ident_char(c) || c == ':') {
            continue;
        }
        out.extend(parse_path(&code[from..]).into_iter().map(|p| (start, p)));
    }
    out
}

/// The byte ranges of inline modules (`mod tests { … }`): there `super::` is the file's own
/// module.
fn inline_modules(code: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("mod ") {
        let rest = &code[at + 4..];
        let name = rest.find(|c: char| !ident_char(c)).unwrap_or(0);
        if name > 0 && rest[name..].trim_start().starts_with('{') && !code[..at].chars().next_back().is_some_and(ident_char) {
            let open = at + 4 + name + rest[name..].find('{').unwrap() + 1;
            out.push(at..open + matching_brace(&code[open..]));
        }
    }
    out
}

/// The paths a use-tree starting at `rest` names (segments up to a non-identifier).
fn parse_path(rest: &str) -> Vec<Vec<String>> {
    let mut segments = Vec::new();
    let mut s = rest;
    loop {
        if let Some(group) = s.strip_prefix('{') {
            let end = matching_brace(group);
            let mut paths = Vec::new();
            for item in split_top_level(&group[..end]) {
                for tail in parse_path(item.trim()) {
                    paths.push(segments.iter().cloned().chain(tail).collect());
                }
            }
            return paths;
        }
        let len = s.find(|c: char| !ident_char(c)).unwrap_or(s.len());
        if len == 0 {
            break;
        }
        segments.push(s[..len].to_string());
        match s[len..].strip_prefix("::") {
            Some(next) => s = next,
            None => break,
        }
    }
    vec![segments]
}

fn matching_brace(s: &str) -> usize {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

fn split_top_level(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut last) = (Vec::new(), 0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[last..i]);
                last = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[last..]);
    out
}

/// The import graph of one crate: module path → the modules it imports.
fn graph(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> = files.iter().map(|f| (module_of(src, f), f.clone())).collect();
    let resolve = |mut path: Vec<String>| {
        while !modules.contains_key(&path) {
            path.pop();
        }
        path
    };
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        let mut edges = BTreeSet::new();
        for (_, path) in paths_after(&code, "crate") {
            edges.insert(resolve(path));
        }
        let inline = inline_modules(&code);
        let nested = |at: usize| inline.iter().any(|r| r.contains(&at));
        let parent = module[..module.len().saturating_sub(1)].to_vec();
        for (at, path) in paths_after(&code, "super") {
            let base = if nested(at) { module } else { &parent };
            edges.insert(resolve(base.iter().cloned().chain(path).collect()));
        }
        for (at, path) in paths_after(&code, "self") {
            // `self::` names the file's own module (or an inline module inside it).
            let base = if is_hub(file) || nested(at) { module } else { &parent };
            edges.insert(resolve(base.iter().cloned().chain(path).collect()));
        }
        if is_hub(file) {
            // Children used in code (not merely re-exported).
            let body: String = code.lines().filter(|l| !l.trim_start().starts_with("pub use ") && !l.trim_start().starts_with("mod ") && !l.trim_start().starts_with("pub mod ")).collect::<Vec<_>>().join("\n");
            for child in modules.keys().filter(|m| m.len() == module.len() + 1 && m.starts_with(module)) {
                let name = child.last().unwrap();
                for (_, path) in paths_after(&body, name) {
                    edges.insert(resolve(child.iter().cloned().chain(path).collect()));
                }
            }
        }
        edges.remove(module);
        graph.insert(module.clone(), edges);
    }
    graph
}

/// Every cycle a depth-first search meets, as `a -> b -> a`.
fn cycles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<String> {
    fn visit(node: &Vec<String>, graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>, state: &mut BTreeMap<Vec<String>, u8>, stack: &mut Vec<Vec<String>>, found: &mut Vec<String>) {
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in &graph[node] {
            match state.get(next) {
                Some(1) => {
                    let from = stack.iter().position(|m| m == next).unwrap();
                    let names: Vec<String> = stack[from..].iter().chain([next]).map(|m| if m.is_empty() { "lib".into() } else { m.join("::") }).collect();
                    found.push(names.join(" -> "));
                }
                Some(_) => {}
                None => visit(next, graph, state, stack, found),
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
    }
    let (mut state, mut found) = (BTreeMap::new(), Vec::new());
    for node in graph.keys() {
        if !state.contains_key(node) {
            visit(node, graph, &mut state, &mut Vec::new(), &mut found);
        }
    }
    found
}

fn crates() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates")).unwrap().map(|e| e.unwrap().path().join("src")).collect();
    dirs.push(root.join("src"));
    dirs.sort();
    dirs
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let mut all = Vec::new();
    for src in crates() {
        let graph = graph(&src);
        // The parser found the modules (a crate of one or two files, like gpu-sim's Rust side,
        // has no cycle to find).
        let files = std::fs::read_dir(&src).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "rs")).count();
        assert!(files <= 2 || graph.len() > 3, "{} has modules", src.display());
        all.extend(cycles(&graph).into_iter().map(|c| format!("{}: {c}", src.display())));
    }
    assert!(all.is_empty(), "import cycles:\n{}", all.join("\n"));
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    // Two files that import each other, and a hub that uses a child which imports it back.
    let dir = std::env::temp_dir().join(format!("rekindle-layout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("hub")).unwrap();
    std::fs::write(dir.join("lib.rs"), "mod a;\nmod b;\nmod hub;\npub use a::A;\n").unwrap();
    std::fs::write(dir.join("a.rs"), "use crate::b::B;\npub struct A;\n").unwrap();
    std::fs::write(dir.join("b.rs"), "use crate::{a::A, hub};\npub struct B;\n").unwrap();
    std::fs::write(dir.join("hub/mod.rs"), "mod leaf;\npub use leaf::Leaf;\npub fn make() -> leaf::Leaf { leaf::Leaf }\npub struct Shared;\n").unwrap();
    std::fs::write(dir.join("hub/leaf.rs"), "use super::Shared;\npub struct Leaf;\n").unwrap();
    let found = cycles(&graph(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(found.iter().any(|c| c == "a -> b -> a"), "{found:?}");
    assert!(found.iter().any(|c| c == "hub -> hub::leaf -> hub"), "{found:?}");
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn the_coordinator_needs_no_too_many_arguments_allowance() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crates/coordinator/src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let allowed: Vec<String> = files.iter().filter(|f| std::fs::read_to_string(f).unwrap().contains("too_many_arguments")).map(|f| f.display().to_string()).collect();
    assert!(allowed.is_empty(), "too_many_arguments allowed in {allowed:?}");
}
