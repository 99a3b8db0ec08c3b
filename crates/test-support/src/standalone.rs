//! A workspace member copied out as a standalone crate, as a connector developer holds one:
//! every `.workspace = true` entry of its `Cargo.toml` replaced by the value the workspace's
//! `Cargo.toml` gives it (path dependencies made absolute), `[lints] workspace = true` by the
//! workspace's lint tables, an empty `[workspace]` table so cargo treats it as its own root,
//! and the workspace's `Cargo.lock` beside it, so cargo resolves offline to the versions the
//! workspace uses. Any `Cargo.toml` form this does not handle is a panic naming the line.

use std::path::{Path, PathBuf};

use crate::workspace;

/// Copies the member crate at `member` (relative to the workspace root, e.g.
/// `connectors/zendesk`) with its `src/` tree and `manifest.json` (if any) to `to`, made
/// standalone; returns `to`.
pub fn copy_member(member: &str, to: &Path) -> PathBuf {
    let from = workspace().join(member);
    copy_tree(&from.join("src"), &to.join("src"));
    if from.join("manifest.json").exists() {
        std::fs::copy(from.join("manifest.json"), to.join("manifest.json")).unwrap();
    }
    let member_toml = std::fs::read_to_string(from.join("Cargo.toml")).unwrap();
    let workspace_toml = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let standalone = standalone_manifest(&member_toml, &workspace_toml, &workspace());
    std::fs::write(to.join("Cargo.toml"), standalone).unwrap();
    std::fs::copy(workspace().join("Cargo.lock"), to.join("Cargo.lock")).unwrap();
    to.to_path_buf()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `member_toml` with its workspace entries replaced from `workspace_toml` (whose relative
/// paths are relative to `root`).
pub fn standalone_manifest(member_toml: &str, workspace_toml: &str, root: &Path) -> String {
    let package = section_entries(workspace_toml, "workspace.package");
    let dependencies = section_entries(workspace_toml, "workspace.dependencies");
    let mut out = String::new();
    let mut section = String::new();
    for line in member_toml.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.trim_matches(['[', ']']).to_string();
            if section == "lints" {
                out.push_str(&workspace_lints(workspace_toml));
            } else {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        if section == "lints" {
            assert!(
                trimmed.is_empty() || trimmed == "workspace = true",
                "cannot make [lints] standalone: {line:?}"
            );
            continue;
        }
        let Some(key) = trimmed.strip_suffix(".workspace = true") else {
            assert!(
                !trimmed.contains("workspace"),
                "cannot make this entry standalone: {line:?}"
            );
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let entries = match section.as_str() {
            "package" => &package,
            "dependencies" | "dev-dependencies" | "build-dependencies" => &dependencies,
            other => panic!("a workspace entry in [{other}]: {line:?}"),
        };
        let value = entries
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
            .unwrap_or_else(|| panic!("the workspace's Cargo.toml gives no {key:?}"));
        out.push_str(&format!("{key} = {}\n", absolute_path(value, root)));
    }
    out.push_str("\n# Standalone: its own workspace root.\n[workspace]\n");
    out
}

/// The `name = value` lines of `[section]`, each value on one line.
fn section_entries(toml: &str, section: &str) -> Vec<(String, String)> {
    let header = format!("[{section}]");
    toml.lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.trim().starts_with('['))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l
                .split_once(" = ")
                .unwrap_or_else(|| panic!("not a one-line entry of [{section}]: {l:?}"));
            (name.trim().to_string(), value.trim().to_string())
        })
        .collect()
}

/// The workspace's `[workspace.lints.*]` tables as the crate's `[lints.*]`.
fn workspace_lints(toml: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in toml.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            inside = trimmed.starts_with("[workspace.lints.");
            if inside {
                out.push_str(&trimmed.replacen("[workspace.lints.", "[lints.", 1));
                out.push('\n');
            }
            continue;
        }
        if inside && !trimmed.starts_with('#') && !trimmed.is_empty() {
            out.push_str(trimmed);
            out.push('\n');
        }
    }
    out
}

/// `value` (a version string or an inline table) with a relative `path = "…"` made absolute.
fn absolute_path(value: &str, root: &Path) -> String {
    let Some((before, rest)) = value.split_once("path = \"") else {
        return value.to_string();
    };
    let (path, after) = rest.split_once('"').expect("a closed path string");
    let absolute = root.join(path).display().to_string();
    format!("{before}path = {absolute:?}{after}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_entries_take_the_workspace_values() {
        let workspace = "[workspace.package]\nedition = \"2024\"\nversion = \"0.1.0\"\n\n\
            [workspace.dependencies]\nserde = { version = \"1\", features = [\"derive\"] }\n\
            sdk = { path = \"crates/sdk\" }\n\n[workspace.lints.rust]\nunsafe_code = \"deny\"\n";
        let member = "[package]\nname = \"c\"\nedition.workspace = true\nversion.workspace = true\n\n\
            [dependencies]\nsdk.workspace = true\nserde.workspace = true\n\n[lints]\nworkspace = true\n";
        let out = standalone_manifest(member, workspace, Path::new("/ws"));
        assert_eq!(
            out,
            "[package]\nname = \"c\"\nedition = \"2024\"\nversion = \"0.1.0\"\n\n\
             [dependencies]\nsdk = { path = \"/ws/crates/sdk\" }\n\
             serde = { version = \"1\", features = [\"derive\"] }\n\n\
             [lints.rust]\nunsafe_code = \"deny\"\n\n# Standalone: its own workspace root.\n[workspace]\n"
        );
    }
}
