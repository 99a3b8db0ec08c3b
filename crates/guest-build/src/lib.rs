//! Builds a workspace crate as a wasm32-wasip2 component with a nested `cargo`, for the host's
//! build script, the tests' guests and the bench.
//!
//! rustup installs the targets that `rust-toolchain.toml` names only when it installs the
//! toolchain itself; on a machine whose image already ships the toolchain, the wasm32-wasip2
//! standard library is missing. [`ensure_wasm_target`] finds that out before building and
//! installs the target for the toolchain cargo runs under, so a new machine needs nothing by
//! hand.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The target every Sluice guest is built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// Why a guest could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GuestBuildError {
    /// The target's standard library is missing and rustup is not there to install it.
    #[error(
        "the {WASM_TARGET} standard library is missing and rustup was not found; \
         install it with: rustup target add {WASM_TARGET}{toolchain_arg}"
    )]
    NoRustup {
        /// ` --toolchain NAME` when the toolchain is known, else empty.
        toolchain_arg: String,
    },
    /// rustup ran but could not install the target.
    #[error("`{command}` failed ({detail}); run it by hand to see why")]
    InstallFailed {
        /// The command that was run.
        command: String,
        /// Its exit status or last line of output.
        detail: String,
    },
    /// rustc could not be asked where the target's libraries live.
    #[error("could not run `{rustc} --print target-libdir`: {source}")]
    Rustc {
        /// The rustc that was run.
        rustc: String,
        /// Why it did not run.
        source: std::io::Error,
    },
    /// The nested cargo did not start.
    #[error("could not run cargo to build {package}: {source}")]
    Spawn {
        /// The package being built.
        package: String,
        /// Why cargo did not start.
        source: std::io::Error,
    },
    /// The nested cargo reported a compile error (on stderr, which a build script's caller
    /// shows under `--- stderr`).
    #[error(
        "building the {package} component failed; cargo's errors say why (under \"--- stderr\" when a build script ran it)"
    )]
    Compile {
        /// The package being built.
        package: String,
    },
    /// The crate built, but produced no `.wasm` file (its `[lib]` is not a `cdylib`).
    #[error(
        "{manifest} built no .wasm component; a connector crate needs `crate-type = [\"cdylib\"]` under [lib]"
    )]
    NoComponent {
        /// The crate's Cargo.toml.
        manifest: String,
    },
}

/// Builds the standalone crate of `manifest` (its `Cargo.toml`) for the wasm target in
/// release mode, in its own target directory (or `CARGO_TARGET_DIR`), and returns the setup
/// outcome and the component cargo reports. Cargo's diagnostics go to stderr as usual.
pub fn build_crate(manifest: &Path) -> Result<(TargetSetup, PathBuf), GuestBuildError> {
    let setup = ensure_wasm_target()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let shown = manifest.display().to_string();
    let output = Command::new(cargo)
        .args(["build", "--release", "--target", WASM_TARGET])
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--message-format=json-render-diagnostics")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|source| GuestBuildError::Spawn {
            package: shown.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(GuestBuildError::Compile { package: shown });
    }
    let component = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter_map(|artifact| artifact["filenames"].as_array().cloned())
        .flatten()
        .filter_map(|name| name.as_str().map(PathBuf::from))
        .rfind(|path| path.extension().is_some_and(|e| e == "wasm"));
    match component {
        Some(path) => Ok((setup, path)),
        None => Err(GuestBuildError::NoComponent { manifest: shown }),
    }
}

/// What [`ensure_wasm_target`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSetup {
    /// The standard library was already installed.
    Present,
    /// It was missing and this call installed it for the named toolchain.
    Installed {
        /// The toolchain the target was added to.
        toolchain: String,
    },
}

impl TargetSetup {
    /// The one line to tell the user, if anything happened.
    pub fn message(&self) -> Option<String> {
        match self {
            TargetSetup::Present => None,
            TargetSetup::Installed { toolchain } => Some(format!(
                "installed the {WASM_TARGET} target for toolchain {toolchain} \
                 (rustup target add {WASM_TARGET} --toolchain {toolchain})"
            )),
        }
    }
}

/// Makes sure the wasm32-wasip2 standard library exists for the rustc that cargo runs, and
/// installs it with rustup when it does not.
pub fn ensure_wasm_target() -> Result<TargetSetup, GuestBuildError> {
    Tools::from_env().ensure_wasm_target()
}

/// The programs that find and install the target.
#[derive(Debug, Clone)]
struct Tools {
    /// The rustc cargo runs (cargo names it in `RUSTC` for build scripts).
    rustc: OsString,
    /// rustup, from the PATH.
    rustup: OsString,
    /// The toolchain rustup's proxy runs, when it says.
    toolchain: Option<String>,
}

impl Tools {
    fn from_env() -> Self {
        Tools {
            rustc: rustc(),
            rustup: "rustup".into(),
            toolchain: std::env::var("RUSTUP_TOOLCHAIN")
                .ok()
                .filter(|name| !name.is_empty()),
        }
    }

    fn ensure_wasm_target(&self) -> Result<TargetSetup, GuestBuildError> {
        if target_libdir_has_core(&self.rustc)? {
            return Ok(TargetSetup::Present);
        }
        let toolchain = self
            .toolchain
            .clone()
            .or_else(|| toolchain_of_sysroot(&self.rustc));
        let mut cmd = Command::new(&self.rustup);
        cmd.args(["target", "add", WASM_TARGET]);
        if let Some(name) = &toolchain {
            cmd.args(["--toolchain", name]);
        }
        let command = format!(
            "rustup target add {WASM_TARGET}{}",
            toolchain_arg(toolchain.as_deref())
        );
        let output = match cmd.output() {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(GuestBuildError::NoRustup {
                    toolchain_arg: toolchain_arg(toolchain.as_deref()),
                });
            }
            Err(e) => {
                return Err(GuestBuildError::InstallFailed {
                    command,
                    detail: e.to_string(),
                });
            }
        };
        if !output.status.success() || !target_libdir_has_core(&self.rustc)? {
            return Err(GuestBuildError::InstallFailed {
                command,
                detail: failure_detail(&output),
            });
        }
        Ok(TargetSetup::Installed {
            toolchain: toolchain.unwrap_or_else(|| "default".into()),
        })
    }
}

fn toolchain_arg(toolchain: Option<&str>) -> String {
    toolchain
        .map(|name| format!(" --toolchain {name}"))
        .unwrap_or_default()
}

fn failure_detail(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .map(|line| line.trim().to_string())
        .unwrap_or_else(|| output.status.to_string())
}

/// Where the rustc that cargo runs keeps the wasm target's standard library (which may not
/// exist yet): a build script watches it so that removing the target reruns the build.
pub fn wasm_target_libdir() -> Result<Option<PathBuf>, GuestBuildError> {
    target_libdir(&rustc())
}

fn rustc() -> OsString {
    std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into())
}

fn target_libdir(rustc: &OsString) -> Result<Option<PathBuf>, GuestBuildError> {
    let output = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .map_err(|source| GuestBuildError::Rustc {
            rustc: rustc.to_string_lossy().into_owned(),
            source,
        })?;
    Ok(output
        .status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())))
}

/// Whether `rustc`'s library directory for the wasm target holds `libcore`.
fn target_libdir_has_core(rustc: &OsString) -> Result<bool, GuestBuildError> {
    let Some(dir) = target_libdir(rustc)? else {
        return Ok(false);
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(false);
    };
    Ok(entries.flatten().any(|entry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        name.starts_with("libcore-") && name.ends_with(".rlib")
    }))
}

/// Without rustup's proxy, the sysroot's directory name is the toolchain's name under
/// rustup's `toolchains/`.
fn toolchain_of_sysroot(rustc: &OsString) -> Option<String> {
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let parent = sysroot.parent()?;
    (parent.file_name()? == "toolchains")
        .then(|| sysroot.file_name()?.to_str().map(str::to_string))
        .flatten()
}

/// One guest to build.
#[derive(Debug, Clone)]
pub struct Guest<'a> {
    /// The workspace root.
    pub workspace: &'a Path,
    /// The target directory of its own (sharing the outer one would deadlock on cargo's lock).
    pub target_dir: &'a Path,
    /// The package to build.
    pub package: &'a str,
    /// Build with fat LTO and one codegen unit: for guests that run on every page.
    pub optimize_for_speed: bool,
    /// Extra environment for the nested cargo (feature switches of test guests).
    pub env: Vec<(&'a str, Option<&'a str>)>,
}

impl Guest<'_> {
    /// Installs the target if needed, builds the component in release mode, and returns the
    /// setup outcome and the component's path.
    pub fn build(&self) -> Result<(TargetSetup, PathBuf), GuestBuildError> {
        let setup = ensure_wasm_target()?;
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(self.workspace)
            .args(["build", "--release", "--locked", "--target", WASM_TARGET])
            .args(["-p", self.package])
            .arg("--target-dir")
            .arg(self.target_dir);
        if self.optimize_for_speed {
            // The workspace's release profile is incremental, which splits code into many
            // units; a guest that runs on every page is built for speed instead.
            cmd.env("CARGO_PROFILE_RELEASE_INCREMENTAL", "false")
                .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
                .env("CARGO_PROFILE_RELEASE_LTO", "fat");
        }
        // Flags meant for the host build must not leak into the guest build.
        for var in [
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "CARGO_BUILD_TARGET",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_TARGET_DIR",
        ] {
            cmd.env_remove(var);
        }
        for (name, value) in &self.env {
            match value {
                Some(value) => cmd.env(name, value),
                None => cmd.env_remove(name),
            };
        }
        let status = cmd.status().map_err(|source| GuestBuildError::Spawn {
            package: self.package.to_string(),
            source,
        })?;
        if !status.success() {
            return Err(GuestBuildError::Compile {
                package: self.package.to_string(),
            });
        }
        let file = format!("{}.wasm", self.package.replace('-', "_"));
        let path = self.target_dir.join(WASM_TARGET).join("release").join(file);
        Ok((setup, path))
    }
}

/// Appends a custom section (id 0: LEB128 size, LEB128 name length, name, payload) to a
/// module or component, which either may carry at its top level: the build attaches the
/// connector's manifest this way, and tests make a new version of the same behaviour.
pub fn append_custom_section(wasm: &mut Vec<u8>, name: &str, payload: &[u8]) {
    let mut content = Vec::new();
    leb128(name.len(), &mut content);
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(payload);
    wasm.push(0);
    leb128(content.len(), wasm);
    wasm.extend_from_slice(&content);
}

fn leb128(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    //! The target check and install, against stand-in `rustc` and `rustup` scripts, so the real
    //! toolchain (shared with every other build on the machine) is never changed.

    use super::*;
    use std::os::unix::fs::PermissionsExt;

    struct Sandbox {
        dir: PathBuf,
    }

    impl Sandbox {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "sluice-guest-build-{tag}-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            std::fs::create_dir_all(dir.join("libdir")).unwrap();
            Sandbox { dir }
        }

        fn script(&self, name: &str, body: &str) -> OsString {
            let path = self.dir.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path.into_os_string()
        }

        /// A rustc whose wasm libdir is this sandbox's `libdir`.
        fn rustc(&self) -> OsString {
            let libdir = self.dir.join("libdir");
            self.script("rustc", &format!("echo {}", libdir.display()))
        }

        fn tools(&self, rustup: OsString) -> Tools {
            Tools {
                rustc: self.rustc(),
                rustup,
                toolchain: Some("1.95.0-test".into()),
            }
        }

        fn install_core(&self) {
            std::fs::write(self.dir.join("libdir/libcore-0123.rlib"), b"").unwrap();
        }
    }

    impl Drop for Sandbox {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn a_present_target_is_left_alone() {
        let sandbox = Sandbox::new("present");
        sandbox.install_core();
        let rustup = sandbox.script("rustup", "exit 9");
        assert_eq!(
            sandbox.tools(rustup).ensure_wasm_target().unwrap(),
            TargetSetup::Present
        );
    }

    #[test]
    fn a_missing_target_is_installed_for_the_active_toolchain() {
        let sandbox = Sandbox::new("install");
        let libdir = sandbox.dir.join("libdir");
        let args = sandbox.dir.join("rustup-args");
        let rustup = sandbox.script(
            "rustup",
            &format!(
                "echo \"$@\" > {}; touch {}/libcore-abc.rlib",
                args.display(),
                libdir.display()
            ),
        );
        let setup = sandbox.tools(rustup).ensure_wasm_target().unwrap();
        assert_eq!(
            setup,
            TargetSetup::Installed {
                toolchain: "1.95.0-test".into()
            }
        );
        assert_eq!(
            std::fs::read_to_string(args).unwrap().trim(),
            "target add wasm32-wasip2 --toolchain 1.95.0-test"
        );
        let line = setup.message().unwrap();
        assert!(
            line.contains("installed the wasm32-wasip2 target"),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn without_rustup_the_error_names_the_command_to_run() {
        let sandbox = Sandbox::new("no-rustup");
        let missing = sandbox.dir.join("no-such-rustup").into_os_string();
        let error = sandbox.tools(missing).ensure_wasm_target().unwrap_err();
        assert!(
            matches!(error, GuestBuildError::NoRustup { .. }),
            "{error:?}"
        );
        let line = error.to_string();
        assert!(
            line.contains("rustup target add wasm32-wasip2 --toolchain 1.95.0-test"),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn a_failed_install_says_what_rustup_said() {
        let sandbox = Sandbox::new("failed");
        let rustup = sandbox.script("rustup", "echo 'error: could not download' >&2; exit 1");
        let error = sandbox.tools(rustup).ensure_wasm_target().unwrap_err();
        let line = error.to_string();
        assert!(
            matches!(error, GuestBuildError::InstallFailed { .. }),
            "{line}"
        );
        assert!(line.contains("could not download"), "{line}");
    }
}
