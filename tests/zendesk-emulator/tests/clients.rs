//! A real Zendesk client against the `zendesk-emulator` binary: zenpy (PyPI, pinned,
//! installed once into a venv under the target dir). What it reads is compared with the
//! control API's ground truth. An install failure fails the test.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

const ZENPY: &str = "zenpy==2.0.57";

/// The binary; killed on drop.
struct Bin {
    child: Child,
    info: Value,
}

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bin {
    fn start() -> Bin {
        let mut child = Command::new(env!("CARGO_BIN_EXE_zendesk-emulator"))
            .args(["--listen", "127.0.0.1:0", "--scale", "230", "--seed", "7"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start zendesk-emulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: Value = serde_json::from_str(&line).expect("one JSON line on stdout");
        Bin { child, info }
    }

    fn s(&self, key: &str) -> String {
        self.info[key].as_str().unwrap().to_string()
    }

    fn control(&self, method: &str, path: &str, body: Value) -> Value {
        let out = run(
            Command::new("curl").args([
                "-sf",
                "-X",
                method,
                "-H",
                &format!("X-Emulator-Key: {}", self.s("control_key")),
                "-H",
                "Content-Type: application/json",
                "--data",
                &body.to_string(),
                &format!("{}/__emulator/{path}", self.s("url")),
            ]),
            "control API",
        );
        serde_json::from_str(&out).unwrap()
    }

    fn truth(&self, stream: &str) -> Vec<Value> {
        self.control("GET", &format!("records/{stream}"), json!({}))["records"]
            .as_array()
            .unwrap()
            .clone()
    }
}

fn target_dir() -> PathBuf {
    // .../target/release/zendesk-emulator → .../target
    PathBuf::from(env!("CARGO_BIN_EXE_zendesk-emulator"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The venv's python with zenpy installed.
fn zenpy_python() -> PathBuf {
    let venv = target_dir().join("zenpy-venv");
    let py = venv.join("bin/python");
    let have = py.exists()
        && Command::new(&py)
            .args(["-c", "import zenpy"])
            .status()
            .is_ok_and(|s| s.success());
    if !have {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        );
        run(
            Command::new(venv.join("bin/pip")).args(["install", "--quiet", ZENPY]),
            "pip install zenpy",
        );
    }
    py
}

fn ids(rows: &[Value]) -> Vec<u64> {
    rows.iter().map(|r| r["id"].as_u64().unwrap()).collect()
}

#[test]
fn zenpy_reads_exports_lists_and_comments_as_the_ground_truth() {
    let py = zenpy_python();
    let bin = Bin::start();
    let grant = bin.control("POST", "oauth/grant", json!({"scope": "read"}));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/zenpy_check.py");
    let out = run(
        Command::new(&py).arg(script).args([
            bin.s("url"),
            bin.s("email"),
            bin.s("api_token"),
            grant["access_token"].as_str().unwrap().to_string(),
        ]),
        "zenpy script",
    );
    let got: Value = serde_json::from_str(out.trim()).expect("script prints JSON");

    let tickets = bin.truth("tickets");
    let mut exported: Vec<u64> = got["exported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    exported.sort();
    assert_eq!(exported, ids(&tickets), "the export, each ticket once");
    let deleted = got["exported"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "deleted")
        .count();
    let truth_deleted = tickets.iter().filter(|t| t["status"] == "deleted").count();
    assert_eq!(deleted, truth_deleted);

    let live: Vec<u64> = ids(&tickets)
        .into_iter()
        .zip(&tickets)
        .filter(|(_, t)| t["status"] != "deleted")
        .map(|(id, _)| id)
        .collect();
    let listed: Vec<u64> = serde_json::from_value(got["listed"].clone()).unwrap();
    assert_eq!(listed, live, "cursor pages of the tickets list");

    let first = got["first_ticket"].as_u64().unwrap();
    let comments: Vec<u64> = bin
        .truth("ticket_comments")
        .iter()
        .filter(|c| c["ticket_id"] == first)
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    assert_eq!(got["comments"], json!(comments));

    let mut users: Vec<u64> = serde_json::from_value(got["users"].clone()).unwrap();
    users.sort();
    assert_eq!(users, ids(&bin.truth("users")));
    assert_eq!(got["me"], bin.s("email").as_str());
}
