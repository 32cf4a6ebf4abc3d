//! Splicing a generated section into a markdown file between markers.

use std::path::{Component, Path, PathBuf};

pub fn markers(scenario: &str) -> (String, String) {
    let key: String = scenario.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    (
        format!("<!-- compare:{key}:begin (written by bench/compare.sh; edits between these markers are overwritten) -->"),
        format!("<!-- compare:{key}:end -->"),
    )
}

/// `text` with the section between the scenario's markers replaced by `section`, or
/// the marked section appended when the markers are missing. Errors if only one of
/// the two markers is present (a hand edit broke them: better to stop than guess).
pub fn spliced(text: &str, scenario: &str, section: &str) -> Result<String, String> {
    let (begin, end) = markers(scenario);
    let block = format!("{begin}\n\n{}\n{end}", section.trim_end());
    match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if b < e => Ok(format!("{}{block}{}", &text[..b], &text[e + end.len()..])),
        (None, None) => {
            let sep = if text.ends_with('\n') { "\n" } else { "\n\n" };
            Ok(format!("{text}{sep}{block}\n"))
        }
        _ => Err(format!("markers for `{scenario}` are broken (need `{begin}` before `{end}`)")),
    }
}

pub fn splice(doc: &Path, scenario: &str, section: &str) -> Result<(), String> {
    let text = match std::fs::read_to_string(doc) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("read {}: {e}", doc.display())),
    };
    let out = spliced(&text, scenario, section).map_err(|e| format!("{}: {e}", doc.display()))?;
    std::fs::write(doc, out).map_err(|e| format!("write {}: {e}", doc.display()))
}

/// The link from `doc` to `target` (relative when both are under one directory tree).
pub fn relative_link(doc: Option<&Path>, target: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let Some(doc_dir) = doc.map(abs).and_then(|d| d.parent().map(Path::to_path_buf)) else {
        return target.display().to_string();
    };
    let target = abs(target);
    let from: Vec<Component> = doc_dir.components().collect();
    let to: Vec<Component> = target.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in &to[common..] {
        rel.push(c.as_os_str());
    }
    rel.display().to_string()
}
