//! Test directories are removed when their guard drops, a failing test included, and
//! `SLUICE_KEEP_TEST_DIRS=1` keeps them.

use std::process::Command;

use sluice_test_support::dirs::KEEP_ENV;
use sluice_test_support::{TestDir, temp_dir};

#[test]
fn a_test_dir_is_removed_when_dropped() {
    let dir = temp_dir("dirs-drop");
    std::fs::write(dir.join("file"), b"x").unwrap();
    let path = dir.to_path_buf();
    assert!(path.is_dir());
    drop(dir);
    assert!(!path.exists(), "{} is left behind", path.display());
}

#[test]
fn a_test_dir_is_removed_when_the_test_panics() {
    let parent = temp_dir("dirs-panic");
    let inner = parent.to_path_buf();
    let unwound = std::panic::catch_unwind(|| {
        let dir = TestDir::new_in(&inner, "failing");
        std::fs::write(dir.join("file"), b"x").unwrap();
        panic!("the test fails");
    });
    assert!(unwound.is_err());
    let left: Vec<_> = std::fs::read_dir(&parent).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Run by [`the_keep_switch_keeps_the_dir`] in a child process with the switch set: makes a
/// dir under the given parent and drops it.
#[test]
#[ignore = "run as a child process by the_keep_switch_keeps_the_dir"]
fn child_makes_a_dir_and_drops_it() {
    let parent = std::env::var_os("SLUICE_TEST_DIRS_PARENT").expect("the parent dir");
    drop(TestDir::new_in(std::path::Path::new(&parent), "kept"));
}

#[test]
fn the_keep_switch_keeps_the_dir() {
    let parent = temp_dir("dirs-keep");
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_makes_a_dir_and_drops_it"])
        .env(KEEP_ENV, "1")
        .env("SLUICE_TEST_DIRS_PARENT", &parent)
        .status()
        .unwrap();
    assert!(status.success());
    let kept: Vec<_> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].starts_with("sluice-kept-"), "{kept:?}");
}
