//! `ImageSets/Main/<split>.txt`: one image id per line.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::{Result, VocError};

/// Path of a split file: `<root>/ImageSets/Main/<split>.txt`.
pub fn split_path(root: &Path, split: &str) -> PathBuf {
    root.join("ImageSets")
        .join("Main")
        .join(format!("{split}.txt"))
}

/// Parse a split file's text: one id per line, surrounding whitespace and blank lines
/// ignored. A line with more than one token (VOC's per-class `id  1` files are not split
/// files) or an id listed twice is an [`VocError::InvalidSplit`].
pub fn parse_split(text: &str, path: &Path) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let mut tokens = line.split_whitespace();
        let Some(id) = tokens.next() else { continue };
        if tokens.next().is_some() {
            return Err(VocError::InvalidSplit {
                path: path.to_path_buf(),
                line: n + 1,
                reason: format!("expected one image id, got {line:?}"),
            });
        }
        if !seen.insert(id.to_string()) {
            return Err(VocError::InvalidSplit {
                path: path.to_path_buf(),
                line: n + 1,
                reason: format!("image id {id:?} listed twice"),
            });
        }
        ids.push(id.to_string());
    }
    Ok(ids)
}

/// Read `<root>/ImageSets/Main/<split>.txt` ([`parse_split`]).
pub fn read_split(root: &Path, split: &str) -> Result<Vec<String>> {
    let path = split_path(root, split);
    let text = std::fs::read_to_string(&path).map_err(|e| VocError::io(&path, e))?;
    parse_split(&text, &path)
}

/// Write a split file (creating `ImageSets/Main/`).
pub fn write_split(root: &Path, split: &str, ids: &[String]) -> Result<()> {
    let path = split_path(root, split);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| VocError::io(dir, e))?;
    }
    let mut text = ids.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    std::fs::write(&path, text).map_err(|e| VocError::io(&path, e))
}

/// The split names present in `<root>/ImageSets/Main/` (files `*.txt` without `_` in the
/// stem, i.e. not VOC's per-class lists), sorted.
pub fn list_splits(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("ImageSets").join("Main");
    let entries = std::fs::read_dir(&dir).map_err(|e| VocError::io(&dir, e))?;
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(|err| VocError::io(&dir, err))?;
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) == Some("txt") {
            if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                if !stem.contains('_') {
                    out.push(stem.to_string());
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_and_rejects_bad_lines() {
        let p = Path::new("train.txt");
        assert_eq!(parse_split("a\n\n  b  \r\nc", p).unwrap(), ["a", "b", "c"]);
        let e = parse_split("a\nb 1\n", p).unwrap_err();
        assert!(matches!(e, VocError::InvalidSplit { line: 2, .. }), "{e}");
        let e = parse_split("a\nb\na\n", p).unwrap_err();
        assert!(matches!(e, VocError::InvalidSplit { line: 3, .. }), "{e}");
    }
}
