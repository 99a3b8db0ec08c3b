//! `sluice connect ID --api-key` and `--basic USER` through the binary: the secret comes from
//! stdin or the variable `--from-env` names, never from argv; `integration show` names the
//! kind, never the value; a plan of another kind is one clear error naming the plan's kind;
//! a key that replaces an OAuth token says the token was revoked at the provider.
//! Run: `cargo test --release --workspace --test cli_credentials`.

mod support;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use sluice_test_support::*;

/// Runs the binary with the test server approved, `stdin` piped in and `envs` set.
fn sluice(dir: &Path, server: &str, args: &[&str], stdin: &str, envs: &[(&str, &str)]) -> Output {
    sluice_reaching(dir, &[server], args, stdin, envs)
}

/// [`sluice`] with every origin of `servers` approved.
fn sluice_reaching(
    dir: &Path,
    servers: &[&str],
    args: &[&str],
    stdin: &str,
    envs: &[(&str, &str)],
) -> Output {
    let origins = servers.iter().flat_map(|s| ["--extra-origin", s]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--data-dir")
        .arg(dir)
        .arg("--allow-insecure-loopback")
        .args(origins)
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("SLUICE_SECRET_KEY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sluice runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("sluice ends")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Installs the credentials test connector and adds an integration of `kind` GETting `url`.
fn setup(dir: &Path, server: &str, kind: &str, url: &str) -> String {
    let wasm = dir.join("creds-guest.wasm");
    std::fs::write(&wasm, creds_guest()).unwrap();
    let path = wasm.to_str().unwrap();
    ok(&sluice(
        dir,
        server,
        &["connector", "install", path, "--name", "creds-guest"],
        "",
        &[],
    ));
    let kind = format!("kind={kind}");
    let url = format!("url={url}");
    let args = [
        "integration",
        "add",
        "--connector",
        "creds-guest",
        "--name",
        "cli",
        "--capability",
        "crm",
        "--set",
        &kind,
        "--set",
        &url,
    ];
    ok(&sluice(dir, server, &args, "", &[])).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_reads_the_key_from_stdin_or_the_environment() {
    let server = TestServer::start(|_| Reply::new(200, "ok")).await;
    let dir = temp_dir("cli-key");
    let url = format!("{}/api", server.url);
    let id = setup(&dir, &server.url, "api-key", &url);

    // Basic for an API-key plan: one error naming the plan's kind.
    let wrong = sluice(
        &dir,
        &server.url,
        &["connect", &id, "--basic", "u"],
        "pw\n",
        &[],
    );
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("API key"), "{stderr}");

    let out = sluice(
        &dir,
        &server.url,
        &["connect", &id, "--api-key"],
        "key-from-stdin\n",
        &[],
    );
    assert!(ok(&out).contains("connected integration"));
    ok(&sluice(&dir, &server.url, &["pull", &id], "", &[]));
    assert_eq!(
        server.received().last().unwrap().header("x-api-key"),
        Some("key-from-stdin"),
        "the trailing newline is not part of the key"
    );

    let envs = [("CREDS_TEST_KEY", "key-from-env")];
    let args = ["connect", &id, "--api-key", "--from-env", "CREDS_TEST_KEY"];
    ok(&sluice(&dir, &server.url, &args, "", &envs));
    ok(&sluice(&dir, &server.url, &["pull", &id], "", &[]));
    assert_eq!(
        server.received().last().unwrap().header("x-api-key"),
        Some("key-from-env")
    );

    let shown = ok(&sluice(
        &dir,
        &server.url,
        &["integration", "show", &id],
        "",
        &[],
    ));
    assert!(shown.contains("credentials:  api-key"), "{shown}");
    assert!(!shown.contains("key-from-env"), "{shown}");
    let json = ok(&sluice(
        &dir,
        &server.url,
        &["--json", "integration", "list"],
        "",
        &[],
    ));
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[0]["credentials"], "api-key", "{json}");
    assert!(!json.contains("key-from"), "{json}");

    // An empty stdin is refused, and nothing else is taken for a key.
    let empty = sluice(&dir, &server.url, &["connect", &id, "--api-key"], "", &[]);
    assert!(!empty.status.success());
    let unset = sluice(
        &dir,
        &server.url,
        &[
            "connect",
            &id,
            "--api-key",
            "--from-env",
            "CREDS_TEST_UNSET",
        ],
        "",
        &[],
    );
    let stderr = String::from_utf8_lossy(&unset.stderr);
    assert!(stderr.contains("CREDS_TEST_UNSET"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_basic_takes_the_user_from_argv_and_the_password_from_stdin() {
    let server = TestServer::start(|_| Reply::new(200, "ok")).await;
    let dir = temp_dir("cli-basic");
    let url = format!("{}/api", server.url);
    let id = setup(&dir, &server.url, "basic", &url);
    ok(&sluice(
        &dir,
        &server.url,
        &["connect", &id, "--basic", "agent"],
        "s3cret\n",
        &[],
    ));
    ok(&sluice(&dir, &server.url, &["pull", &id], "", &[]));
    // base64("agent:s3cret")
    assert_eq!(
        server.received().last().unwrap().header("authorization"),
        Some("Basic YWdlbnQ6czNjcmV0")
    );
}

/// Types `key` into `sluice connect ID --api-key` at a pseudo-terminal (Python's `pty`), once
/// the prompt shows and echo is off, and returns the exit status and everything the terminal
/// showed.
fn typed_at_a_terminal(dir: &Path, server: &str, id: &str, key: &str) -> (bool, String) {
    const TYPIST: &str = r#"
import os, pty, select, sys, termios, time
argv, key = sys.argv[1:-1], sys.argv[-1]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
def read(until=None):
    seen = b""
    while until is None or until not in seen:
        ready, _, _ = select.select([fd], [], [], 60)
        if not ready:
            sys.exit("no prompt within 60 s; the terminal showed: %r" % seen)
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    return seen
seen = read(b"(not shown):")
# The prompt is printed a moment before echo is switched off; a person reads it and then types,
# so type only once the terminal has stopped echoing (on Linux the master reports the pair's mode).
deadline = time.monotonic() + 60
while termios.tcgetattr(fd)[3] & termios.ECHO:
    if time.monotonic() > deadline:
        sys.exit("the terminal still echoes 60 s after the prompt; it showed: %r" % seen)
    time.sleep(0.01)
os.write(fd, key.encode() + b"\n")
seen += read()
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let data_dir = dir.to_str().unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            TYPIST,
            env!("CARGO_BIN_EXE_sluice"),
            "--data-dir",
            data_dir,
        ])
        .args(["--allow-insecure-loopback", "--extra-origin", server])
        .args(["connect", id, "--api-key", key])
        .env_remove("SLUICE_SECRET_KEY")
        .env_remove("RUST_LOG")
        .output()
        .expect("python3 runs");
    let shown =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), shown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_typed_at_a_terminal_is_read_without_echo() {
    let server = TestServer::start(|_| Reply::new(200, "ok")).await;
    let dir = temp_dir("cli-key-tty");
    let url = format!("{}/api", server.url);
    let id = setup(&dir, &server.url, "api-key", &url);
    let (connected, shown) = typed_at_a_terminal(&dir, &server.url, &id, "typed-secret-key");
    assert!(connected, "{shown}");
    assert!(shown.contains("connected integration"), "{shown}");
    assert!(
        !shown.contains("typed-secret-key"),
        "the terminal echoed the key: {shown}"
    );
    ok(&sluice(&dir, &server.url, &["pull", &id], "", &[]));
    assert_eq!(
        server.received().last().unwrap().header("x-api-key"),
        Some("typed-secret-key")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_replacing_an_oauth_token_says_the_token_was_revoked() {
    let emu = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig::default())
        .await
        .expect("the emulator starts");
    let dir = temp_dir("cli-switch");
    let origins = [emu.url.as_str(), emu.login_url.as_str()];
    let run = |args: &[&str], stdin: &str| ok(&sluice_reaching(&dir, &origins, args, stdin, &[]));
    let wasm = dir.join("creds-guest.wasm");
    std::fs::write(&wasm, creds_guest()).unwrap();
    run(
        &[
            "connector",
            "install",
            wasm.to_str().unwrap(),
            "--name",
            "creds-guest",
        ],
        "",
    );
    let settings = [
        "kind=oauth".to_string(),
        format!("url={}/services/data/v62.0/sobjects", emu.url),
        format!("token-url={}/services/oauth2/token", emu.login_url),
        format!("revoke-url={}/services/oauth2/revoke", emu.login_url),
    ];
    let mut add = vec![
        "integration",
        "add",
        "--connector",
        "creds-guest",
        "--name",
        "cli",
    ];
    add.extend(["--capability", "crm"]);
    for setting in &settings {
        add.extend(["--set", setting.as_str()]);
    }
    add.extend([
        "--client-id",
        &emu.client_id,
        "--client-secret",
        &emu.client_secret,
    ]);
    let id = run(&add, "").trim().to_string();
    run(&["connect", &id, "--client-credentials"], "");
    run(&["integration", "edit", &id, "--set", "kind=api-key"], "");

    let out = run(&["connect", &id, "--api-key"], "the-new-key\n");
    assert!(out.contains("connected integration"), "{out}");
    assert!(
        out.contains("the OAuth token they replace was revoked at the provider"),
        "{out}"
    );
    let stats: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/__emulator/stats", emu.url))
        .header("X-Emulator-Key", &emu.control_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["by_endpoint"]["oauth.revoke"], 1, "{stats}");
}
