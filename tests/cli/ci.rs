//! The CI's unused-dependency check (`.ci/unused-deps`): it fails on a dependency nothing uses.
//! It needs cargo-machete, which `.ci/run` installs, so these run there (`--ignored`).

use std::process::Command;

fn unused_deps(dir: &std::path::Path) -> std::process::Output {
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/unused-deps"))
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
#[ignore = "needs cargo-machete; .ci/run installs it and runs this"]
fn the_check_fails_naming_a_dependency_nothing_uses() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\nserde_json = \"1\"\nfastrand = \"2\"\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("src/lib.rs"),
        "pub fn f() -> serde_json::Value { serde_json::Value::Null }\n",
    )
    .unwrap();
    let out = unused_deps(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("fastrand"), "{stdout}");
    assert!(!stdout.contains("serde_json"), "{stdout}");
}

#[test]
#[ignore = "needs cargo-machete; .ci/run installs it and runs this"]
fn this_repository_declares_no_unused_dependency() {
    let out = unused_deps(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// CI never fetches a toolchain from the internet: without cargo it stops and says what to do.
#[test]
fn ci_without_cargo_fails_with_a_clear_message_and_downloads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A PATH with only what the script needs before it looks for cargo (no curl, no cargo).
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for tool in ["bash", "dirname"] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| std::path::Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not found"));
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    let out = Command::new("/usr/bin/env")
        .arg("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run"))
        .env_clear()
        .env("PATH", &bin)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cargo not found: install a stable Rust toolchain"),
        "{stderr}"
    );
    assert!(!dir.path().join(".cargo").exists(), "nothing was installed");
}
