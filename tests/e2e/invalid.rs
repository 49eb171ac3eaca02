//! Every manifest in tests/fixtures/invalid/ breaks one rule; `kubectl apply` must be refused
//! with a message that names the field (the file's `# expect:` lines), and nothing is stored.
use qod_test_support::{command::text, repo_root};

use crate::world::World;

/// The corpus: (file name, what kubectl must print).
fn corpus() -> Vec<(String, Vec<String>)> {
    let dir = repo_root().join("tests/fixtures/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let body = std::fs::read_to_string(&path).unwrap();
            let expect: Vec<String> = body
                .lines()
                .filter_map(|l| l.strip_prefix("# expect:"))
                .map(|e| e.trim().to_owned())
                .collect();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(!expect.is_empty(), "{name} has no `# expect:` line");
            (name, expect)
        })
        .collect()
}

#[tokio::test]
async fn every_broken_manifest_is_refused_naming_the_field() {
    let world = World::start("invalid").await;
    world.install_crd().await;
    let corpus = corpus();
    assert!(corpus.len() >= 10, "the corpus has {} files", corpus.len());

    let mut failures = Vec::new();
    for (file, expect) in &corpus {
        let path = format!("tests/fixtures/invalid/{file}");
        let out = world.kubectl_output(&["apply", "-f", &path]).await;
        let stderr = text(&out.stderr);
        if out.status.success() {
            failures.push(format!("{file}: accepted\n{}", text(&out.stdout)));
            continue;
        }
        for wanted in expect {
            if !stderr.contains(wanted.as_str()) {
                failures.push(format!("{file}: no {wanted:?} in\n{stderr}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        world.resources().await.is_empty(),
        "a refused manifest was stored"
    );
    world.stop().await;
}
