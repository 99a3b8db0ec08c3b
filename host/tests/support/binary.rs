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
