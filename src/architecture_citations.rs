//! Every comment that cites a section of docs/architecture.md (`docs/architecture.md, "<title>"`)
//! names a heading that exists, so the design document and the code cannot drift apart by a
//! rename unnoticed.

use std::{
    fs,
    path::{Path, PathBuf},
};

const DOCUMENT: &str = "docs/architecture.md";

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The section titles cited in `text`. A citation may wrap onto the next comment line, so
/// the comment markers in between are dropped before the title is read.
fn citations(text: &str) -> Vec<String> {
    let joined = text
        .lines()
        .map(|line| {
            line.trim_start()
                .trim_start_matches("//!")
                .trim_start_matches("//")
        })
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let marker = format!("{DOCUMENT}, \"");
    joined
        .match_indices(&marker)
        .filter_map(|(at, _)| {
            let rest = &joined[at + marker.len()..];
            rest.find('"').map(|end| rest[..end].to_owned())
        })
        .collect()
}

#[test]
fn every_cited_section_of_the_architecture_document_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let document = fs::read_to_string(root.join(DOCUMENT)).expect("docs/architecture.md exists");
    let headings: Vec<&str> = document
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| line.trim_start_matches('#').trim())
        .collect();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut cited = 0;
    let mut missing = Vec::new();
    // This file's own examples are not citations.
    for file in files
        .iter()
        .filter(|f| !f.ends_with("architecture_citations.rs"))
    {
        let text = fs::read_to_string(file).unwrap();
        for title in citations(&text) {
            cited += 1;
            if !headings.contains(&title.as_str()) {
                missing.push(format!("{}: \"{title}\"", file.display()));
            }
        }
    }
    assert!(
        cited >= 5,
        "the code cites the document ({cited} citations found)"
    );
    assert!(
        missing.is_empty(),
        "cited sections that do not exist: {missing:#?}"
    );
}

#[test]
fn a_citation_wrapped_over_two_comment_lines_is_read_whole() {
    let text = "//! see (docs/architecture.md, \"Status: who\n//! writes what\").\n";
    assert_eq!(citations(text), ["Status: who writes what"]);
}
