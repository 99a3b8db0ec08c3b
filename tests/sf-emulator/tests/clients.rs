//! Real Salesforce clients against the `sf-emulator` binary: jsforce (npm) and
//! simple-salesforce (PyPI), installed under the target dir. Each check compares what the
//! client got with the control API's ground truth. Install failures fail the test.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};

/// The binary, started with the demo dataset; killed on drop.
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
        Bin::start_with(&[])
    }
    /// Starts the binary with `extra` flags after the usual ones.
    fn start_with(extra: &[&str]) -> Bin {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sf-emulator"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--dataset",
                "demo",
                "--seed",
                "7",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start sf-emulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: Value = serde_json::from_str(&line).expect("one JSON line on stdout");
        Bin { child, info }
    }
    fn s(&self, k: &str) -> String {
        self.info[k].as_str().unwrap().to_string()
    }
    /// curl, trusting the emulator's root when it serves HTTPS.
    fn curl(&self) -> Command {
        let mut curl = Command::new("curl");
        if let Some(root) = self.info["tls_cert"].as_str() {
            curl.args(["--cacert", root]);
        }
        curl
    }
    fn get(&self, path: &str) -> Value {
        let out = self
            .curl()
            .args([
                "-sf",
                "-H",
                &format!("X-Emulator-Key: {}", self.s("control_key")),
                &format!("{}/__emulator/{path}", self.s("url")),
            ])
            .output()
            .expect("curl");
        assert!(out.status.success(), "control {path}");
        serde_json::from_slice(&out.stdout).unwrap()
    }
    fn post(&self, path: &str, body: Value) -> Value {
        let out = self
            .curl()
            .args([
                "-sf",
                "-X",
                "POST",
                "-H",
                &format!("X-Emulator-Key: {}", self.s("control_key")),
                "-H",
                "Content-Type: application/json",
                "-d",
                &body.to_string(),
                &format!("{}/__emulator/{path}", self.s("url")),
            ])
            .output()
            .expect("curl");
        assert!(out.status.success(), "control {path}");
        serde_json::from_slice(&out.stdout).unwrap()
    }
    fn truth(&self, object: &str) -> Vec<Value> {
        let v = self.get(&format!("records/{object}"));
        v["records"].as_array().unwrap().clone()
    }
}

fn target_dir() -> PathBuf {
    // .../target/debug/sf-emulator → .../target
    PathBuf::from(env!("CARGO_BIN_EXE_sf-emulator"))
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

fn live_case_ids(bin: &Bin) -> Vec<String> {
    let mut rows: Vec<Value> = bin
        .truth("Case")
        .into_iter()
        .filter(|r| r["IsDeleted"] == false && r["_visible"] == true)
        .collect();
    rows.sort_by(|a, b| {
        (a["SystemModstamp"].as_str(), a["Id"].as_str())
            .cmp(&(b["SystemModstamp"].as_str(), b["Id"].as_str()))
    });
    rows.iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn jsforce_autofetch_scanall_and_refresh() {
    let dir = target_dir().join("npm");
    if !dir.join("node_modules/jsforce/package.json").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        run(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&dir)
                .arg("jsforce@3"),
            "npm install jsforce",
        );
    }
    let bin = Bin::start();
    // Small pages so 1,200 Cases span several.
    bin.post("settings", json!({"max_batch_size": 200}));
    let g = bin.post("oauth/grant", json!({}));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/jsforce_check.js"
    );
    let out = run(
        Command::new("node").arg(script).arg(&dir).args([
            bin.s("url"),
            g["access_token"].as_str().unwrap().into(),
            g["refresh_token"].as_str().unwrap().into(),
            bin.s("client_id"),
            bin.s("client_secret"),
            bin.s("control_key"),
        ]),
        "jsforce script",
    );
    let v: Value = serde_json::from_str(out.trim()).expect("script prints JSON");
    let truth = live_case_ids(&bin);
    let all = bin.truth("Case");
    assert_eq!(v["live"], truth.len() as u64);
    let ids: Vec<String> = v["liveIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, truth, "autoFetch returns every live Case in order");
    let subjects = bin.truth("Case");
    for (i, s) in v["subjects"].as_array().unwrap().iter().enumerate() {
        let row = subjects
            .iter()
            .find(|r| r["Id"] == truth[i].as_str())
            .unwrap();
        assert_eq!(&row["Subject"], s);
    }
    assert_eq!(v["all"], all.len() as u64, "scanAll includes deleted rows");
    assert_eq!(
        v["deleted"],
        all.iter().filter(|r| r["IsDeleted"] == true).count() as u64
    );
    assert!(v["deleted"].as_u64().unwrap() > 0);
    assert_eq!(v["countAfterRefresh"], truth.len() as u64);
    assert_eq!(
        v["refreshes"], 1,
        "jsforce refreshed once after the forced expiry"
    );
}

/// The venv's python with simple-salesforce installed (once, whichever test asks first).
fn simple_salesforce_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(install_simple_salesforce).clone()
}

fn install_simple_salesforce() -> PathBuf {
    let venv = target_dir().join("pyvenv");
    let py = venv.join("bin/python");
    let have = py.exists()
        && Command::new(&py)
            .args(["-c", "import simple_salesforce"])
            .status()
            .is_ok_and(|s| s.success());
    if !have {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        );
        run(
            Command::new(venv.join("bin/pip")).args(["install", "--quiet", "simple-salesforce"]),
            "pip install simple-salesforce",
        );
    }
    py
}

#[test]
fn simple_salesforce_query_all_and_expired_session() {
    let py = simple_salesforce_python();
    let bin = Bin::start();
    bin.post("settings", json!({"max_batch_size": 300}));
    let g = bin.post("oauth/grant", json!({}));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/simple_salesforce_check.py"
    );
    let out = run(
        Command::new(&py).arg(script).args([
            bin.s("url"),
            g["access_token"].as_str().unwrap().into(),
            bin.s("control_key"),
        ]),
        "simple-salesforce script",
    );
    let v: Value = serde_json::from_str(out.trim()).expect("script prints JSON");
    let truth = live_case_ids(&bin);
    assert_eq!(v["total"], truth.len() as u64);
    let ids: Vec<String> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, truth);
    assert_eq!(v["error"]["type"], "SalesforceExpiredSession");
    assert_eq!(v["error"]["status"], 401);
    assert_eq!(v["error"]["content"][0]["errorCode"], "INVALID_SESSION_ID");
}

/// simple-salesforce as shipped (it builds `https://` URLs itself) against the emulator's
/// HTTPS with round trips on: requests trusts the emitted root through
/// `REQUESTS_CA_BUNDLE`, and its session reuses one connection for every page.
#[test]
fn simple_salesforce_over_https_trusts_the_root_and_keeps_its_connection() {
    let py = simple_salesforce_python();
    let dir = target_dir().join(format!("wan-clients-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = dir.join("root.pem");
    let root_arg = root.display().to_string();
    let bin = Bin::start_with(&["--tls", "--tls-cert-out", &root_arg, "--rtt-ms", "20"]);
    assert!(bin.s("url").starts_with("https://"));
    bin.post("settings", json!({"max_batch_size": 300}));
    let g = bin.post("oauth/grant", json!({}));
    let opened = bin.get("stats")["connections"].as_u64().unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/simple_salesforce_https_check.py"
    );
    let out = run(
        Command::new(&py)
            .arg(script)
            .args([bin.s("url"), g["access_token"].as_str().unwrap().into()])
            .env("REQUESTS_CA_BUNDLE", &root),
        "simple-salesforce https script",
    );
    // This stats call opens one connection; the script's pages shared one more.
    let now = bin.get("stats")["connections"].as_u64().unwrap();
    assert_eq!(
        now - opened,
        2,
        "the script's session reused its connection"
    );
    let v: Value = serde_json::from_str(out.trim()).expect("script prints JSON");
    let truth = live_case_ids(&bin);
    assert!(truth.len() > 900, "several pages of 300");
    assert_eq!(v["total"], truth.len() as u64);
    assert_eq!(v["pages"], truth.len().div_ceil(300) as u64);
    let ids: Vec<String> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, truth);
    let _ = std::fs::remove_dir_all(&dir);
}
