//! The `sluice` binary against hostile input and a hostile local environment: escape
//! sequences in names and messages, overflowing durations, a permissive umask, drive-by
//! requests to `connect`'s callback listener, and the browser `connect` starts.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sluice_test_support::temp_dir;
use support::binary::sluice_command;

fn sluice(dir: &Path, args: &[&str]) -> Output {
    sluice_command(dir)
        .args(args)
        .output()
        .expect("sluice runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `integration add` of a Helpdesk integration; `domain` is the `--set` pair, `domain=URL`.
fn add_args<'a>(name: &'a str, domain: &'a str) -> Vec<&'a str> {
    vec![
        "integration",
        "add",
        "--name",
        name,
        "--capability",
        "helpdesk",
        "--set",
        "environment=production",
        "--set",
        domain,
        "--set",
        "pull-by=updated",
    ]
}

fn assert_no_raw_controls(what: &str, out: &str) {
    assert!(
        !out.contains(['\u{1b}', '\u{7}', '\u{9b}']),
        "{what} printed raw control characters: {out:?}"
    );
}

#[test]
fn names_and_messages_cannot_drive_the_terminal() {
    let dir = temp_dir("escape");
    // Sets the window title, then clears the screen.
    let name = "Acme\u{1b}]0;pwned\u{7}\u{1b}[2J";
    let out = sluice(
        &dir,
        &add_args(name, "domain=https://acme.my.salesforce.com"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    let list = sluice(&dir, &["integration", "list"]);
    assert!(list.status.success());
    assert_no_raw_controls("integration list", &text(&list.stdout));
    assert!(
        text(&list.stdout).contains("Acme\\u{1b}"),
        "{}",
        text(&list.stdout)
    );
    let show = sluice(&dir, &["integration", "show", &id]);
    assert!(show.status.success(), "{}", text(&show.stderr));
    assert_no_raw_controls("integration show", &text(&show.stdout));
    assert!(text(&show.stdout).contains("Acme\\u{1b}]0;pwned\\u{7}"));
    // An error quoting the input.
    let missing = sluice(&dir, &["integration", "show", "int_\u{1b}[2Jx"]);
    assert!(!missing.status.success());
    assert_no_raw_controls("an error line", &text(&missing.stderr));
    assert!(text(&missing.stderr).contains("int_\\u{1b}[2Jx"));
    // JSON stays exact: the encoder escapes, the reader gets the name back unchanged.
    let json = sluice(&dir, &["--json", "integration", "list"]);
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rows[0]["name"], name);
}

/// Runs `cmd` and waits at most `limit` for it to exit; a process still running then (the
/// bug: it accepted the input and went on) is killed and reported.
fn exits_within(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running: it accepted the input ({})",
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn durations_that_overflow_are_refused() {
    let dir = temp_dir("durations");
    let mut args = add_args("Acme", "domain=https://acme.my.salesforce.com");
    args.extend(["--interval", "213503982334602d"]);
    let out = sluice(&dir, &args);
    assert!(
        !out.status.success(),
        "an overflowing interval was accepted"
    );
    assert!(
        text(&out.stderr).contains("too long"),
        "{}",
        text(&out.stderr)
    );
    let list = sluice(&dir, &["--json", "integration", "list"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&list.stdout).unwrap(),
        serde_json::json!([])
    );
    for age in ["9223372036854776s", "0s", "30d"] {
        let mut cmd = sluice_command(&dir);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--refresh-age", age]);
        let out = exits_within(cmd, Duration::from_secs(120));
        assert!(!out.status.success(), "{age}");
        assert!(
            text(&out.stderr).contains("refresh-age") || text(&out.stderr).contains("refresh age"),
            "{age}: {}",
            text(&out.stderr)
        );
    }
}

#[cfg(unix)]
#[test]
fn data_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = temp_dir("umask");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let under_umask_000 = |args: &[&str]| {
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask 000 && exec \"$SLUICE_BIN\" --data-dir \"$SLUICE_DIR\" {}",
                quoted.join(" ")
            ))
            .env("SLUICE_BIN", env!("CARGO_BIN_EXE_sluice"))
            .env("SLUICE_DIR", &dir)
            .env_remove("SLUICE_SECRET_KEY")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let out = under_umask_000(&add_args("Acme", "domain=https://acme.my.salesforce.com"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    // Not connected, so the pull fails, but only after it took the run lock.
    let out = under_umask_000(&["pull", &id]);
    assert!(!out.status.success());
    assert_eq!(mode(&dir), 0o700, "the data directory");
    for file in ["sluice.db", "secret.key"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    for side in ["sluice.db-wal", "sluice.db-shm"] {
        if dir.join(side).exists() {
            assert_eq!(mode(&dir.join(side)), 0o600, "{side}");
        }
    }
    assert_eq!(mode(&dir.join("locks")), 0o700, "locks/");
    assert_eq!(mode(&dir.join("locks").join(format!("{id}.lock"))), 0o600);
    // A database made world-readable by hand is tightened at the next open.
    std::fs::set_permissions(
        dir.join("sluice.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = under_umask_000(&["integration", "list"]);
    assert!(out.status.success());
    assert_eq!(mode(&dir.join("sluice.db")), 0o600);
}

/// Starts `sluice connect ID` (extra args appended) and returns it with the authorize URL it
/// printed.
fn start_connect(cmd: &mut Command) -> (std::process::Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.trim().starts_with("http").then(|| l.trim().to_string()))
        .expect("the authorize URL is printed");
    // Keep draining stderr so the child never blocks on it.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    (child, url)
}

fn redirect_uri_of(authorize_url: &str) -> String {
    url::Url::parse(authorize_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .expect("a redirect_uri")
}

async fn add_emulated(dir: &Path, emu: &sf_emulator::Emulator, envs: &[(&str, &str)]) -> String {
    let domain = format!("domain={}", emu.url);
    let mut cmd = sluice_command(dir);
    cmd.arg("--allow-insecure-loopback")
        .args(add_args("Acme", &domain))
        .args([
            "--client-id",
            &emu.client_id,
            "--client-secret",
            &emu.client_secret,
        ]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// A drive-by request to the loopback callback (a page or local process that guesses the
/// port) gets an error page and `connect` keeps waiting for the real answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_ignores_callbacks_without_its_state() {
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig {
        auto_approve: true,
        dataset: sf_emulator::Dataset::Empty,
        ..sf_emulator::EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = temp_dir("callback");
    let id = add_emulated(&dir, &emu, &[]).await;
    let mut cmd = sluice_command(&dir);
    cmd.args([
        "--allow-insecure-loopback",
        "--extra-origin",
        &emu.url,
        "connect",
        &id,
        "--no-browser",
    ]);
    let (child, url) = tokio::task::block_in_place(|| start_connect(&mut cmd));
    let callback = redirect_uri_of(&url);
    let http = reqwest::Client::new();
    for drive_by in [
        "error=access_denied&error_description=drive-by",
        "error=access_denied&state=guessed",
        "code=attacker-code&state=guessed",
        "code=attacker-code",
        "",
    ] {
        let answer = http
            .get(format!("{callback}?{drive_by}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 400, "{drive_by}");
        assert!(
            answer.text().await.unwrap().contains("ignored"),
            "{drive_by}"
        );
    }
    // The real browser comes back through the emulator and is accepted.
    let page = http.get(&url).send().await.unwrap();
    assert!(page.status().is_success(), "{}", page.status());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "connect failed after a drive-by");
    assert!(text(&out.stdout).contains("authorized integration"));
}

/// The browser `connect` opens is a program of the user's desktop: it gets none of Sluice's
/// environment, where the key, the client secret and the admin token live.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_gets_none_of_sluices_secrets() {
    use base64::Engine;
    use std::os::unix::fs::PermissionsExt;
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig {
        auto_approve: true,
        dataset: sf_emulator::Dataset::Empty,
        ..sf_emulator::EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = temp_dir("browser");
    let bin = dir.join("fake-browser");
    std::fs::create_dir_all(&bin).unwrap();
    let dump = dir.join("browser-env");
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let script = bin.join(opener);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nenv > '{0}.tmp' && mv '{0}.tmp' '{0}'\n",
            dump.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let secrets = [
        ("SLUICE_SECRET_KEY", key.as_str()),
        ("SLUICE_CLIENT_SECRET", "host-client-secret-value"),
        ("SLUICE_ADMIN_TOKEN", "admin-token-value"),
    ];
    let id = add_emulated(&dir, &emu, &secrets).await;
    let mut cmd = sluice_command(&dir);
    cmd.args([
        "--allow-insecure-loopback",
        "--extra-origin",
        &emu.url,
        "connect",
        &id,
    ])
    .env("PATH", &path);
    for (k, v) in secrets {
        cmd.env(k, v);
    }
    let (child, url) = tokio::task::block_in_place(|| start_connect(&mut cmd));
    let mut seen = None;
    for _ in 0..1200 {
        if let Ok(env) = std::fs::read_to_string(&dump) {
            seen = Some(env);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let env = seen.expect("connect started the (fake) browser");
    assert!(env.contains("PATH="), "{env}");
    for (name, value) in secrets {
        assert!(!env.contains(name), "the browser got {name}");
        assert!(!env.contains(value), "the browser got the value of {name}");
    }
    let page = reqwest::get(&url).await.unwrap();
    assert!(page.status().is_success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
