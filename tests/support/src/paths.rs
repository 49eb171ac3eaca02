//! Where the tests find the repository and keep their files.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

/// The repository's root: the folder above this crate (tests/support) that holds
/// tests/control-plane/run.
pub fn repo_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .find(|dir| dir.join("tests/control-plane/run").is_file())
            .expect("tests/control-plane/run above tests/support")
            .to_path_buf()
    })
}

/// The folder for the files of a run: in a test binary (`<target>/<profile>/deps/`), the
/// `<target>/tmp` that cargo names `CARGO_TARGET_TMPDIR` for integration tests (a library
/// cannot read that variable); elsewhere (qod-bench) the system's temporary folder.
pub fn tmp_dir() -> &'static Path {
    static TMP: OnceLock<PathBuf> = OnceLock::new();
    TMP.get_or_init(|| {
        let exe = std::env::current_exe().ok();
        exe.as_deref()
            .and_then(Path::parent)
            .filter(|dir| dir.file_name().is_some_and(|name| name == "deps"))
            .and_then(|deps| {
                deps.ancestors()
                    .map(|dir| dir.join("tmp"))
                    .find(|tmp| tmp.is_dir())
            })
            .unwrap_or_else(std::env::temp_dir)
    })
}

/// A fresh, empty folder at `name` (a relative path) under [`tmp_dir`], for one test's files
/// and logs.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = tmp_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("creating the test folder {}: {e}", dir.display()));
    dir
}
