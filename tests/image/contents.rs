//! What is in the image, and `qod-operator --version` run inside it.

use std::{collections::BTreeSet, os::unix::fs::MetadataExt, path::Path, process::Command};

use serde_json::{Value, json};

use qod_test_support::command::text;

use crate::buildah;

/// The bound on the image (its layers, uncompressed, as registries and `docker images`
/// count them).
const MAX_BYTES: u64 = 25_000_000;

/// The image's user: distroless's `nonroot`, as the chart's securityContext expects.
const USER: &str = "65532:65532";

/// Files the image holds besides the shared libraries.
const FILES: &[&str] = &[
    "/usr/local/bin/qod-operator",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
];

#[test]
fn small_with_only_what_the_operator_needs_none_of_it_writable() {
    let Some(image) = buildah::image("contents") else {
        return;
    };
    let info = image.inspect();

    let manifest: Value = serde_json::from_str(info["Manifest"].as_str().unwrap()).unwrap();
    let bytes: u64 = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| layer["size"].as_u64().unwrap())
        .sum();
    eprintln!("{}: {bytes} bytes in its layers", image.name);
    assert!(
        bytes <= MAX_BYTES,
        "{} is {bytes} bytes, over {MAX_BYTES}",
        image.name
    );

    let config = &info["OCIv1"]["config"];
    assert_eq!(config["User"], USER, "{config}");
    assert_eq!(config["Entrypoint"], json!(["/usr/local/bin/qod-operator"]));
    assert_eq!(config["Cmd"], json!(["run"]));

    let container = image.container("qod-image-contents");
    let root = container.mount();
    let mut files = BTreeSet::new();
    walk(&root, &root, &mut files);

    // Exactly the libraries the operator links, where its loader looks for them (ldd resolves
    // them on this machine, which built the image: the same paths).
    let binary = root.join("usr/local/bin/qod-operator");
    let ldd = Command::new("ldd").arg(&binary).output().unwrap();
    assert!(ldd.status.success(), "ldd: {}", text(&ldd.stderr));
    let libraries = libraries(&text(&ldd.stdout));
    assert!(
        libraries.iter().any(|l| l.contains("/ld-linux")),
        "ldd names the loader: {libraries:?}"
    );
    let expected: BTreeSet<String> = FILES
        .iter()
        .map(|f| (*f).to_owned())
        .chain(libraries)
        .collect();
    assert_eq!(files, expected, "the image's files");
}

/// Every regular file under `dir`, as an absolute path inside the image; fails on anything the
/// image's user could write (its own, or writable by group or others) and on symlinks.
fn walk(root: &Path, dir: &Path, files: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let inside = format!("/{}", path.strip_prefix(root).unwrap().display());
        assert!(
            meta.uid() == 0 && meta.gid() == 0,
            "{inside} is owned by {}:{}, not root",
            meta.uid(),
            meta.gid()
        );
        assert_eq!(
            meta.mode() & 0o022,
            0,
            "{inside} is writable by group or others: {:o}",
            meta.mode()
        );
        if meta.is_dir() {
            walk(root, &path, files);
        } else {
            assert!(meta.is_file(), "{inside} is not a file or folder");
            files.insert(inside);
        }
    }
}

/// The files `ldd` output names: `name => /path (0x..)` and the loader's `/path (0x..)`;
/// `linux-vdso.so.1` is in the kernel.
fn libraries(ldd: &str) -> Vec<String> {
    ldd.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [_, "=>", path, ..] if path.starts_with('/') => Some((*path).to_owned()),
                [path, ..] if path.starts_with('/') => Some((*path).to_owned()),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn version_runs_inside_as_the_image_user() {
    let Some(image) = buildah::image("version") else {
        return;
    };
    let container = image.container("qod-image-version");
    // No --user: buildah runs the command as the image's USER, as a kubelet would.
    let out = container.run(&["/usr/local/bin/qod-operator", "--version"]);
    assert!(
        out.status.success(),
        "qod-operator --version in the image failed ({}):\n{}",
        out.status,
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout),
        format!("qod-operator {}\n", env!("CARGO_PKG_VERSION"))
    );
}
