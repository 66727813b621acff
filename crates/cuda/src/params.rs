//! Each kernel's parameter list, read from its module's PTX at load time, and the check every
//! launch makes against it: the driver copies as many bytes from each argument pointer as the
//! PTX declares, so an argument of the wrong size or a missing one would make the kernel read
//! garbage. With the check, such a launch fails naming the kernel and both lists instead.

use std::collections::HashMap;

/// The byte size of each `.param` of every `.entry` in `ptx`, by entry name.
pub fn entry_params(ptx: &str) -> HashMap<String, Vec<usize>> {
    let mut entries = HashMap::new();
    let mut rest = ptx;
    while let Some(at) = rest.find(".entry ") {
        let after = &rest[at + ".entry ".len()..];
        let name_end = after.find(|c: char| c == '(' || c.is_whitespace()).unwrap_or(after.len());
        let name = after[..name_end].to_string();
        let (open, close) = (after.find('('), after.find(')'));
        let mut sizes = Vec::new();
        if let (Some(open), Some(close)) = (open, close) {
            if open < after.find('{').unwrap_or(usize::MAX) {
                sizes = after[open + 1..close].split(',').filter(|p| p.contains(".param")).map(param_size).collect();
            }
        }
        entries.insert(name, sizes);
        rest = &after[name_end..];
    }
    entries
}

/// The size of one parameter declaration: `.param .u64 name`, `.param .align 8 .b8 name[16]`.
fn param_size(declaration: &str) -> usize {
    let words: Vec<&str> = declaration.split_whitespace().collect();
    let element = words
        .iter()
        .find_map(|w| match *w {
            ".u8" | ".s8" | ".b8" => Some(1),
            ".u16" | ".s16" | ".b16" | ".f16" | ".bf16" => Some(2),
            ".u32" | ".s32" | ".b32" | ".f32" => Some(4),
            ".u64" | ".s64" | ".b64" | ".f64" => Some(8),
            _ => None,
        })
        .unwrap_or(0);
    let count = words.last().and_then(|w| w.split_once('[')).and_then(|(_, n)| n.trim_end_matches(']').parse::<usize>().ok()).unwrap_or(1);
    element * count
}

/// The most arguments a launch passes (AdamW's 16, with room).
pub const MAX_ARGUMENTS: usize = 24;

/// `Ok` if a launch of `kernel` with arguments of `sizes` bytes matches the `declared` sizes of
/// its PTX parameter list.
pub fn check_arguments(kernel: &str, declared: &[usize], sizes: &[usize]) -> Result<(), String> {
    if declared == sizes {
        Ok(())
    } else {
        Err(format!("launching {kernel} with arguments of {sizes:?} bytes, but its PTX declares {declared:?}"))
    }
}
