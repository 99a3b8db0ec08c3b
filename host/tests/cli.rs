//! The `sluice` binary: errors are one clear line with a non-zero exit, and bad input leaves
//! state unchanged.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use sluice_test_support::temp_dir;
use support::binary::connect_as_browser;

fn sluice(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("SLUICE_SECRET_KEY")
        .env_remove("RUST_LOG")
        .output()
        .expect("sluice runs")
}

fn one_error_line(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line expected, got: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    errors[0].to_string()
}

#[test]
fn unknown_ids_are_one_line_errors() {
    let dir = temp_dir("unknown");
    for args in [
        &["integration", "show", "int_nope"][..],
        &["integration", "delete", "int_nope"],
        &["test", "int_nope"],
        &["pull", "int_nope"],
        &["records", "int_nope"],
        &["changes", "int_nope"],
        &["records", "int_nope", "--format", "airbyte"],
    ] {
        let line = one_error_line(&sluice(&dir, args));
        assert!(line.contains("int_nope"), "{args:?}: {line}");
    }
}

#[test]
fn an_unwritable_data_dir_is_a_one_line_error() {
    let dir = temp_dir("unwritable");
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let line = one_error_line(&sluice(&file.join("data"), &["integration", "list"]));
    assert!(line.contains("data directory"), "{line}");
}

/// `connector about` shows what a connector declares: an installed one by name, or a component
/// file, as Markdown, a settings schema or JSON.
#[test]
fn connector_about_documents_declared_settings() {
    let dir = temp_dir("about");
    let out = sluice(&dir, &["connector", "about", "salesforce"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = String::from_utf8(out.stdout).unwrap();
    assert!(doc.starts_with("# Salesforce"), "{doc}");
    assert!(doc.contains("| `pull-by` | Pull Record By |"), "{doc}");
    let out = sluice(
        &dir,
        &[
            "connector",
            "about",
            "salesforce",
            "--format",
            "json-schema",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rule = |cap: &str| {
        schema["allOf"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["if"]["properties"]["capability"]["const"] == cap)
            .map(|r| r["then"]["required"].clone())
            .unwrap()
    };
    assert_eq!(
        rule("crm"),
        serde_json::json!(["environment", "pull-by", "domain"])
    );
    assert_eq!(
        rule("content-management"),
        serde_json::json!(["environment", "domain"])
    );
    assert_eq!(
        schema["properties"]["environment"]["enum"],
        serde_json::json!(["production", "sandbox"])
    );
    // A file is loaded, not installed: the 0.1 fixture declares what contract 0.1 types.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/salesforce-contract-0.1.wasm"
    );
    let out = sluice(&dir, &["connector", "about", fixture, "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = info["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["environment", "pull-by", "domain"]);
    let line = one_error_line(&sluice(&dir, &["connector", "about", "zendesk"]));
    assert!(line.contains("zendesk"), "{line}");
}

#[test]
fn malformed_adds_fail_and_store_nothing() {
    let dir = temp_dir("add");
    let base = [
        "integration",
        "add",
        "--name",
        "Acme",
        "--capability",
        "helpdesk",
        "--set",
        "environment=production",
        "--set",
        "domain=https://acme.my.salesforce.com",
        "--set",
        "pull-by=updated",
    ];
    let bad: Vec<Vec<&str>> = vec![
        [&base[..], &["--interval", "soon"]].concat(),
        [&base[..], &["--set", "colour=blue"]].concat(),
        [&base[..5], &["--set", "environment=staging"]].concat(),
        [
            &base[..8],
            &[
                "--set",
                "domain=ftp://acme.example",
                "--set",
                "pull-by=updated",
            ],
        ]
        .concat(),
        [&base[..10], &["--set", "pull-by=sideways"]].concat(),
        base[..10].to_vec(),
    ];
    for args in bad {
        let out = sluice(&dir, &args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
    let out = sluice(&dir, &[&base[..], &["--connector", "zendesk"]].concat());
    assert!(!out.status.success());
    let line = one_error_line(&out);
    assert!(
        line.contains("connector") && line.contains("installed: salesforce"),
        "{line}"
    );
    let list = sluice(&dir, &["--json", "integration", "list"]);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows, serde_json::json!([]));
}

#[cfg(unix)]
#[test]
fn the_key_file_has_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("key");
    let out = sluice(&dir, &["integration", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(dir.join("secret.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// `sluice connect --no-browser` prints the authorize URL, listens on loopback, and reports
/// success once the (emulated) browser comes back; `test`, `pull` and `records` follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_pull_and_export_through_the_binary() {
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig {
        auto_approve: true,
        ..sf_emulator::EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = temp_dir("connect");
    let run = |args: &[&str]| {
        let mut all = vec!["--allow-insecure-loopback", "--extra-origin", &emu.url];
        all.extend_from_slice(args);
        sluice(&dir, &all)
    };
    if let Ok(path) = std::env::var("SLUICE_TEST_COMPONENT") {
        let out = run(&["connector", "install", &path, "--name", "salesforce"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = run(&[
        "integration",
        "add",
        "--name",
        "Acme",
        "--capability",
        "helpdesk",
        "--set",
        "environment=production",
        "--set",
        &format!("domain={}", emu.url),
        "--set",
        "pull-by=updated",
        "--client-id",
        &emu.client_id,
        "--client-secret",
        &emu.client_secret,
        "--interval",
        "1h",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(id.starts_with("int_"), "{id}");

    let loopback = ["--allow-insecure-loopback", "--extra-origin", &emu.url];
    // The browser: follows the emulator's redirect to the loopback callback.
    let out = connect_as_browser(&dir, &loopback, &id).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("authorized integration"));

    let out = run(&["pull", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("succeeded"));
    let out = run(&["records", &id, "--stream", "Case"]);
    assert!(out.status.success());
    let lines = String::from_utf8(out.stdout).unwrap();
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["stream"], "Case");
    assert!(first["record"]["Id"].is_string());
    // Every stored Case field is in the schema the connector discovers, typed as stored.
    let out = run(&["--json", "discover", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let streams: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let case = streams
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Case")
        .expect("a Case stream");
    assert_eq!(case["key_fields"], serde_json::json!(["Id"]));
    let properties = case["json_schema"]["properties"].as_object().unwrap();
    for (field, value) in first["record"].as_object().unwrap() {
        let schema = properties
            .get(field)
            .unwrap_or_else(|| panic!("{field} is stored but not in the schema"));
        let ty = &schema["type"];
        let types: Vec<&str> = match ty {
            serde_json::Value::String(t) => vec![t.as_str()],
            other => other
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|t| t.as_str())
                .collect(),
        };
        let actual = match value {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "boolean",
            serde_json::Value::Number(n) if n.is_i64() && types.contains(&"integer") => "integer",
            serde_json::Value::Number(_) => "number",
            serde_json::Value::String(_) => "string",
            serde_json::Value::Object(_) => "object",
            serde_json::Value::Array(_) => "array",
        };
        assert!(types.contains(&actual), "{field}: {value} is not {ty}");
    }
    let out = run(&["--json", "integration", "list"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["state"], "active");
    assert_eq!(rows[0]["last_run"]["status"], "succeeded");
    assert_eq!(rows[0]["token"]["health"], "ok");
    let out = run(&["integration", "delete", &id]);
    assert!(out.status.success());
    let line = one_error_line(&run(&["integration", "show", &id]));
    assert!(line.contains(&id));
}

fn active_versions(dir: &Path) -> Vec<u64> {
    let out = sluice(dir, &["--json", "connector", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    list.iter()
        .filter(|v| v["name"] == "salesforce" && v["active"] == true)
        .map(|v| v["version"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_rollback_is_one_command() {
    let dir = temp_dir("rollback");
    let v2 = sluice_test_support::with_custom_section(
        sluice::SALESFORCE_COMPONENT,
        "sluice-test",
        b"v2",
    );
    let file = dir.join("salesforce.wasm");
    std::fs::write(&file, &v2).unwrap();
    let install = sluice(&dir, &["connector", "install", file.to_str().unwrap()]);
    assert!(
        install.status.success(),
        "{}",
        String::from_utf8_lossy(&install.stderr)
    );
    assert_eq!(active_versions(&dir), [2]);

    let rollback = sluice(&dir, &["connector", "activate", "salesforce", "1"]);
    assert!(rollback.status.success());
    assert_eq!(active_versions(&dir), [1], "the rollback persists");

    let line = one_error_line(&sluice(&dir, &["connector", "activate", "salesforce", "7"]));
    assert!(line.contains("no version 7"), "{line}");
    assert_eq!(
        active_versions(&dir),
        [1],
        "a failed activate changes nothing"
    );

    // The list says what the active version declares, and only for it.
    let out = sluice(&dir, &["--json", "connector", "list"]);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    for v in &list {
        let declared = v["active"] == true;
        assert_eq!(v["title"] == "Salesforce", declared, "{v}");
        let capabilities = serde_json::json!(["helpdesk", "crm", "content-management"]);
        assert_eq!(v["capabilities"] == capabilities, declared, "{v}");
    }
    let out = sluice(&dir, &["connector", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Salesforce (helpdesk, crm, content-management)"),
        "{text}"
    );
}

/// Waits for `child` to exit, killing it (and failing) if it is still running after a
/// generous bound: a command that should fail at once must not hang.
fn output_within_bound(mut child: std::process::Child, what: &str) -> Output {
    for _ in 0..1200 {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{what} hung");
}

#[cfg(unix)]
#[test]
fn connector_install_takes_regular_files_and_valid_names_only() {
    let dir = temp_dir("special");
    let fifo = dir.join("fifo.wasm");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for path in [Path::new("/dev/zero"), &fifo, &dir] {
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("--data-dir")
            .arg(&dir)
            .args(["connector", "install", "--name", "salesforce"])
            .arg(path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = output_within_bound(child, &format!("installing {}", path.display()));
        let line = one_error_line(&out);
        assert!(line.contains("not a regular file"), "{line}");
    }
    let v2 = sluice_test_support::with_custom_section(
        sluice::SALESFORCE_COMPONENT,
        "sluice-test",
        b"v2",
    );
    let file = dir.join("salesforce.wasm");
    std::fs::write(&file, &v2).unwrap();
    for name in ["../../etc/x", "Sales force", ""] {
        let out = sluice(
            &dir,
            &[
                "connector",
                "install",
                "--name",
                name,
                file.to_str().unwrap(),
            ],
        );
        let line = one_error_line(&out);
        assert!(
            line.contains("not a valid connector name"),
            "{name:?}: {line}"
        );
    }
    let out = sluice(&dir, &["--json", "connector", "list"]);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.len(), 1, "only the embedded connector: {list:?}");
    assert!(!dir.join("etc").exists());
}

/// The address `sluice serve` prints once it serves, read from its stderr.
fn served_address(serve: &mut std::process::Child) -> String {
    use std::io::{BufRead, BufReader};
    let stderr = serve.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let address = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("sluice serving on ")
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_string)
        })
        .expect("serve prints its address");
    // Keep draining, so that serve never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    address
}

/// Kills a child process when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `done` until it holds; fails after a generous bound.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if done().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

fn versions_listed(dir: &Path) -> Vec<(u64, String, bool)> {
    let out = sluice(dir, &["--json", "connector", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    list.iter()
        .filter(|v| v["name"] == "salesforce")
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["sha256"].as_str().unwrap().to_string(),
                v["active"] == true,
            )
        })
        .collect()
}

/// `sluice serve` and CLI commands in other processes share one data directory: the database
/// numbers versions (a CLI install and one by serve get two numbers, both kept), and serve
/// applies a CLI `activate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_the_cli_agree_on_connector_versions() {
    let dir = temp_dir("serve-versions");
    let token = "registry-test-admin-token";
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-token", token])
        .env_remove("SLUICE_SECRET_KEY")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let address = served_address(&mut child);
    let _serve = KillOnDrop(child);

    // Another process installs version 2 while serve runs.
    let v2 = sluice_test_support::with_custom_section(
        sluice::SALESFORCE_COMPONENT,
        "sluice-test",
        b"v2",
    );
    let file = dir.join("salesforce.wasm");
    std::fs::write(&file, &v2).unwrap();
    let out = sluice(&dir, &["connector", "install", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Serve installs other bytes, dropped into its connectors directory: version 3.
    let v3 = sluice_test_support::with_custom_section(
        sluice::SALESFORCE_COMPONENT,
        "sluice-test",
        b"v3",
    );
    let connectors = dir.join("connectors");
    std::fs::write(connectors.join("incoming.tmp"), &v3).unwrap();
    std::fs::rename(
        connectors.join("incoming.tmp"),
        connectors.join("salesforce@3.wasm"),
    )
    .unwrap();
    eventually(
        "serve's install is stored as a version of its own",
        async || versions_listed(&dir).len() == 3,
    )
    .await;
    let listed = versions_listed(&dir);
    let numbers: Vec<u64> = listed.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(numbers, [1, 2, 3]);
    let sha = |wasm: &[u8]| {
        use sha2::Digest;
        sluice::engine::hex(&sha2::Sha256::digest(wasm))
    };
    assert_eq!(listed[1].1, sha(&v2));
    assert_eq!(listed[2].1, sha(&v3));

    // A rollback from the CLI reaches the running serve.
    let out = sluice(&dir, &["connector", "activate", "salesforce", "1"]);
    assert!(out.status.success());
    let client = reqwest::Client::new();
    eventually("serve runs the version activated by the CLI", async || {
        let Ok(response) = client
            .get(format!("{address}/api/connectors"))
            .bearer_auth(token)
            .send()
            .await
        else {
            return false;
        };
        let body = response.bytes().await.unwrap_or_default();
        let list: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap_or_default();
        let active: Vec<u64> = list
            .iter()
            .filter(|v| v["name"] == "salesforce" && v["active"] == true)
            .filter_map(|v| v["version"].as_u64())
            .collect();
        active == [1]
    })
    .await;
}

/// A run whose process was killed with SIGKILL is shown as interrupted, not running.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_with_sigkill_is_not_shown_as_running() {
    let dir = temp_dir("sigkill");
    let app =
        sluice_test_support::runtime::open_app(sluice::app::AppConfig::new(dir.to_path_buf()))
            .await;
    app.registry()
        .install("hostile", sluice_test_support::hostile(), false)
        .await
        .unwrap();
    // Its pull spins until killed.
    // The grant's instance is never contacted; the operator approves it for the pull.
    let instance = "https://instance.example";
    let id = sluice_test_support::runtime::add_hostile_integration(&app, "loop", &[], instance);
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["--extra-origin", instance, "pull", &id])
        .env_remove("SLUICE_SECRET_KEY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut pull = KillOnDrop(child);
    eventually("the pull records its run", async || {
        assert!(pull.0.try_wait().unwrap().is_none(), "the pull ended");
        app.store()
            .runs(&id, 1)
            .unwrap()
            .first()
            .is_some_and(|r| r.status == sluice::store::RunState::Running)
    })
    .await;
    // `Child::kill` sends SIGKILL on unix.
    pull.0.kill().unwrap();
    pull.0.wait().unwrap();

    let out = sluice(&dir, &["--json", "integration", "show", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &shown["runs"][0];
    assert_eq!(run["status"], "interrupted", "{run}");
    assert!(run["ended_at_ms"].is_i64(), "{run}");
    assert!(
        run["error"].as_str().is_some_and(|e| e.contains("ended")),
        "{run}"
    );
    let out = sluice(&dir, &["--json", "integration", "list"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["last_run"]["status"], "interrupted");
}

/// A version whose manifest reaches further than the active one is refused until the operator
/// approves its hosts; the approval shows what it may reach.
#[test]
fn a_wider_manifest_needs_approve_hosts() {
    let dir = temp_dir("approve");
    let wider = sluice_test_support::with_custom_section(
        sluice_test_support::hostile(),
        "sluice:manifest",
        &sluice_test_support::manifest_json(
            &["*.salesforce.com", "attacker.example"],
            &["GET", "DELETE"],
        ),
    );
    let file = dir.join("salesforce.wasm");
    std::fs::write(&file, &wider).unwrap();
    let path = file.to_str().unwrap();

    let line = one_error_line(&sluice(&dir, &["connector", "install", path]));
    assert!(
        line.contains("attacker.example")
            && line.contains("DELETE")
            && line.contains("--approve-hosts"),
        "{line}"
    );
    assert_eq!(
        active_versions(&dir),
        [1],
        "the refused version is not active"
    );

    let out = sluice(&dir, &["connector", "install", path, "--approve-hosts"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("may reach: *.salesforce.com, attacker.example"),
        "{stdout}"
    );
    assert_eq!(active_versions(&dir), [2]);
}

#[test]
fn extra_origins_name_one_exact_origin() {
    let dir = temp_dir("origin");
    for bad in ["http://evil.example:80", "http://127.0.0.1:8080/path"] {
        let out = sluice(&dir, &["--extra-origin", bad, "integration", "list"]);
        assert!(!out.status.success(), "{bad} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(bad), "{stderr}");
    }
}
