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
/// files) or an id listed twice is an [`VocError::InvalidSplit`] (the first one found).
pub fn parse_split(text: &str, path: &Path) -> Result<Vec<String>> {
    let (ids, mut problems) = parse_split_lenient(text, path);
    if problems.is_empty() {
        Ok(ids)
    } else {
        Err(problems.swap_remove(0).1)
    }
}

/// The skipped lines of a lenient split read: (the line's first token, why), line order.
pub type SkippedLines = Vec<(String, VocError)>;

/// [`parse_split`] that goes on: the ids of the valid lines (an id listed twice is kept
/// once, at its first line; a line with more than one token is skipped) and, for every
/// skipped line, the line's first token and an [`VocError::InvalidSplit`], in line order.
pub fn parse_split_lenient(text: &str, path: &Path) -> (Vec<String>, SkippedLines) {
    let mut ids = Vec::new();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let mut tokens = line.split_whitespace();
        let Some(id) = tokens.next() else { continue };
        if tokens.next().is_some() {
            problems.push((
                id.to_string(),
                VocError::InvalidSplit {
                    path: path.to_path_buf(),
                    line: n + 1,
                    reason: format!("expected one image id, got {line:?}"),
                },
            ));
            continue;
        }
        if !seen.insert(id.to_string()) {
            problems.push((
                id.to_string(),
                VocError::InvalidSplit {
                    path: path.to_path_buf(),
                    line: n + 1,
                    reason: format!("image id {id:?} listed twice"),
                },
            ));
            continue;
        }
        ids.push(id.to_string());
    }
    (ids, problems)
}

/// Read a split file leniently ([`parse_split_lenient`]); an unreadable file is still an
/// error.
pub fn read_split_lenient(root: &Path, split: &str) -> Result<(Vec<String>, SkippedLines)> {
    let path = split_file(root, split)?;
    let text = std::fs::read_to_string(&path).map_err(|e| VocError::io(&path, e))?;
    Ok(parse_split_lenient(&text, &path))
}

/// [`split_path`] after checking the name: not empty, no path separator.
fn split_file(root: &Path, split: &str) -> Result<PathBuf> {
    if split.is_empty() || split.contains(['/', '\\']) || split == "." || split == ".." {
        return Err(VocError::InvalidArgument {
            name: "split",
            reason: format!("{split:?} is not a split name (ImageSets/Main/<split>.txt)"),
        });
    }
    Ok(split_path(root, split))
}

/// Read `<root>/ImageSets/Main/<split>.txt` ([`parse_split`]).
pub fn read_split(root: &Path, split: &str) -> Result<Vec<String>> {
    let path = split_file(root, split)?;
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

    #[test]
    fn lenient_parse_keeps_going() {
        let p = Path::new("train.txt");
        let (ids, problems) = parse_split_lenient("a\nb\na\nc 1\nd\n", p);
        assert_eq!(ids, ["a", "b", "d"]);
        let lines: Vec<(&str, usize)> = problems
            .iter()
            .map(|(id, e)| match e {
                VocError::InvalidSplit { line, .. } => (id.as_str(), *line),
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(lines, [("a", 3), ("c", 4)]);
    }

    #[test]
    fn empty_split_name_is_an_argument_error() {
        for bad in ["", "../x", "."] {
            let e = read_split(Path::new("/nonexistent"), bad).unwrap_err();
            assert!(
                matches!(e, VocError::InvalidArgument { name: "split", .. }),
                "{e}"
            );
        }
    }
}
