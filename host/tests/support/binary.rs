//! The `sluice` binary this package builds, as a command and as a running `sluice serve`.

use std::path::Path;
use std::process::Command;

use sluice_test_support::served::Served;

/// The `sluice` binary with `--data-dir`, and no secret or log setting inherited.
pub fn sluice_command(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.arg("--data-dir")
        .arg(data_dir)
        .env_remove("SLUICE_SECRET_KEY")
        .env_remove("SLUICE_ADMIN_TOKEN")
        .env_remove("RUST_LOG");
    cmd
}

/// Starts `sluice serve --listen 127.0.0.1:0 ARGS` in `dir`, through `sh -c` when
/// `shell_prefix` is given (e.g. `ulimit -n 64;`), and waits until it listens.
pub fn serve(dir: &Path, args: &[&str], envs: &[(&str, &str)], shell_prefix: &str) -> Served {
    let mut cmd = if shell_prefix.is_empty() {
        let mut cmd = sluice_command(dir);
        cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
        cmd
    } else {
        let mut cmd = Command::new("sh");
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        cmd.arg("-c")
            .arg(format!(
                "{shell_prefix} exec '{}' --data-dir '{}' serve --listen 127.0.0.1:0 {}",
                env!("CARGO_BIN_EXE_sluice"),
                dir.display(),
                quoted.join(" ")
            ))
            .env_remove("SLUICE_SECRET_KEY")
            .env_remove("SLUICE_ADMIN_TOKEN")
            .env_remove("RUST_LOG");
        cmd
    };
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Served::spawn(cmd, dir)
}

/// `sluice ARGS connect ID --no-browser` with the test as the browser: it opens the authorize
/// URL the command prints (the emulator approves it and redirects to the command's loopback
/// callback), then returns the command's output once it exits.
pub async fn connect_as_browser(dir: &Path, args: &[&str], id: &str) -> std::process::Output {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = sluice_command(dir)
        .args(args)
        .args(["connect", id, "--no-browser"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting `sluice connect`");
    let stderr = child.stderr.take().expect("piped stderr");
    let url = tokio::task::spawn_blocking(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.trim().starts_with("http").then(|| l.trim().to_string()))
    })
    .await
    .unwrap()
    .expect("connect prints the authorize URL");
    let page = reqwest::get(&url).await.unwrap();
    assert!(page.status().is_success(), "{}", page.status());
    tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .expect("waiting for `sluice connect`")
}
