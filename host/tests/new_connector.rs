//! `sluice new connector`: the generated crate builds at once, natively with its unit tests and
//! as a wasm32-wasip2 component, with cargo `--offline` (its SDK is written into the crate by
//! the binary), and its README's settings table is what the built component declares.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sluice_test_support::temp_dir;

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .expect("sluice runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The generated crates' own target directory, inside this build's: their dependencies are
/// compiled once for every test and run.
fn crates_target() -> PathBuf {
    sluice_test_support::target_dir().join("new-connector")
}

/// Runs the cargo of this build's toolchain in `dir`, offline, with `args`.
fn cargo(dir: &Path, args: &[&str]) -> Output {
    let cargo = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(dir)
        .args(args)
        .arg("--offline")
        .env("CARGO_TARGET_DIR", crates_target());
    // The toolchain's own rustc, not whatever a rustup proxy picks outside the workspace.
    if let Some(bin) = cargo.parent().filter(|b| b.join("rustc").exists()) {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bin.to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).expect("a PATH"));
    }
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    cmd.output().expect("cargo runs")
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Generates `name` from `template`, tests it natively, builds its component and checks its
/// README against the component's declaration. Returns the component's path.
fn generate_and_build(parent: &Path, name: &str, template: &str) -> PathBuf {
    let dir = parent.join(name);
    let dir_arg = dir.to_str().unwrap();
    let out = sluice(&[
        "new",
        "connector",
        name,
        "--template",
        template,
        "--dir",
        dir_arg,
    ]);
    assert_ok("sluice new connector", &out);
    assert!(
        text(&out.stdout).contains("cargo test"),
        "{}",
        text(&out.stdout)
    );
    for file in [
        "Cargo.toml",
        "README.md",
        "manifest.json",
        "settings.example.json",
        "src/lib.rs",
        "src/tests.rs",
        "vendor/sluice-connector-sdk/Cargo.toml",
    ] {
        assert!(dir.join(file).is_file(), "{file} is written");
    }

    let tests = cargo(&dir, &["test", "--release"]);
    assert_ok("cargo test of the generated crate", &tests);
    let report = text(&tests.stdout);
    let passed: usize = report
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(
        passed >= 4,
        "the generated crate's unit tests run and pass:\n{report}"
    );

    sluice_guest_build::ensure_wasm_target().expect("the wasm32-wasip2 target");
    let build = cargo(&dir, &["build", "--release", "--target", "wasm32-wasip2"]);
    assert_ok("cargo build of the component", &build);
    let wasm = crates_target()
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(wasm.is_file(), "{} is built", wasm.display());

    // The README's generated part is what the component itself declares.
    let data = temp_dir("new-connector-about");
    let about = sluice(&[
        "--data-dir",
        data.path().to_str().unwrap(),
        "connector",
        "about",
        wasm.to_str().unwrap(),
        "--format",
        "markdown",
    ]);
    assert_ok("sluice connector about", &about);
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let start = readme.find("-->\n").expect("the README's header comment") + 4;
    let end = readme
        .find("## Develop")
        .expect("the README's Develop section");
    assert_eq!(readme[start..end], text(&about.stdout));
    wasm
}

#[test]
fn a_rest_json_connector_builds_offline_and_its_readme_is_its_describe() {
    let parent = temp_dir("new-connector-rest");
    let wasm = generate_and_build(parent.path(), "demo-rest", "rest-json");

    // `install --manifest` attaches the crate's manifest.json: the hosts it may reach.
    let data = temp_dir("new-connector-install");
    let install = |file: &Path, name: &str, manifest: Option<&Path>| {
        let mut args = vec![
            "--data-dir",
            data.path().to_str().unwrap(),
            "connector",
            "install",
            file.to_str().unwrap(),
            "--name",
            name,
        ];
        if let Some(m) = manifest {
            // The operator approves the hosts a first version asks for.
            args.extend(["--manifest", m.to_str().unwrap(), "--approve-hosts"]);
        }
        sluice(&args)
    };
    let manifest = parent.path().join("demo-rest/manifest.json");
    let bare = install(&wasm, "bare", None);
    assert_ok("installing without a manifest", &bare);
    assert!(!text(&bare.stdout).contains("api.example.com"));
    let with = install(&wasm, "demo-rest", Some(&manifest));
    assert_ok("installing with --manifest", &with);
    assert!(
        text(&with.stdout).contains("may reach: api.example.com"),
        "{}",
        text(&with.stdout)
    );
    // A component that carries a manifest keeps it; a file that is no manifest is named.
    let salesforce = Path::new(env!("CARGO_BIN_EXE_sluice")).with_file_name("salesforce.wasm");
    let twice = install(&salesforce, "twice", Some(&manifest));
    assert!(!twice.status.success());
    assert!(
        text(&twice.stderr).contains("already carries"),
        "{}",
        text(&twice.stderr)
    );
    let junk = parent.path().join("junk.json");
    std::fs::write(&junk, "{\"hosts\": 7}").unwrap();
    let bad = install(&wasm, "bad", Some(&junk));
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("--manifest"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn an_oauth_connector_builds_offline_and_its_readme_is_its_describe() {
    let parent = temp_dir("new-connector-oauth");
    generate_and_build(parent.path(), "demo-oauth", "oauth");
}

#[test]
fn bad_names_and_occupied_directories_are_refused_and_nothing_is_written() {
    let parent = temp_dir("new-connector-refused");
    let dir = parent.path().join("taken");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    let out = sluice(&["new", "connector", "taken", "--dir", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not empty"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("keep.txt")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);

    let fresh = parent.path().join("fresh");
    for bad in ["Demo", "9lives", "demo/../x", "test"] {
        let out = sluice(&["new", "connector", bad, "--dir", fresh.to_str().unwrap()]);
        assert!(!out.status.success(), "{bad} is refused");
        assert!(text(&out.stderr).contains(bad), "{}", text(&out.stderr));
        assert!(!fresh.exists(), "nothing is written for {bad}");
    }
    let out = sluice(&[
        "new",
        "connector",
        "ok-name",
        "--dir",
        fresh.to_str().unwrap(),
        "--sdk",
        parent.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--sdk"), "{}", text(&out.stderr));
    assert!(!fresh.exists());
    let leftovers: Vec<_> = std::fs::read_dir(parent.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no staging directory is left: {leftovers:?}"
    );
}

/// The acceptance run: the generated rest-json connector passes `sluice conformance` against
/// the toy API (loopback, its key as the integration's API key).
#[test]
#[ignore = "needs `sluice conformance` and API-key credentials on main (helpers `conformance` \
            and `creds`), the conformance run sending --token-env's value in the API-key plan's \
            header; run with --ignored once both have landed"]
fn the_generated_rest_json_connector_passes_conformance_against_the_toy_api() {
    let parent = temp_dir("new-connector-conformance");
    let wasm = generate_and_build(parent.path(), "demo-rest", "rest-json");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = runtime.block_on(sluice_test_support::ToyApi::start("toy-key", 23, 9));
    let settings = parent.path().join("settings.json");
    let example = std::fs::read_to_string(parent.path().join("demo-rest/settings.example.json"))
        .unwrap()
        .replace("http://127.0.0.1:8080", &api.url);
    std::fs::write(&settings, example).unwrap();
    let junit = parent.path().join("junit.xml");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--allow-insecure-loopback", "--extra-origin", &api.url])
        .arg("conformance")
        .arg(&wasm)
        .arg("--settings")
        .arg(&settings)
        .args(["--token-env", "TOY_API_KEY", "--junit"])
        .arg(&junit)
        .env("TOY_API_KEY", &api.key)
        .output()
        .expect("sluice runs");
    assert_ok("sluice conformance", &out);
    assert!(junit.is_file());
    // The checks read the API through the key, and only through it.
    let calls = api.received();
    assert!(calls.iter().any(|r| r.target.starts_with("/v1/items")));
    assert!(
        calls
            .iter()
            .all(|r| r.header(sluice_test_support::toy_api::KEY_HEADER) == Some("toy-key"))
    );
}
