//! The served OpenAPI document against the served answers: real answers of every route
//! validate against the document's schemas (closed objects, every field required), and
//! schemathesis, an outside fuzzer, finds no failure with every check on.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use sluice_test_support::served::Served;
use sluice_test_support::{TestDir, temp_dir};
use support::binary::{connect_as_browser, serve, sluice_command};

/// Pinned so that the run, its seed and its verdict are reproducible.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// A `sluice serve` whose data directory holds one integration authorized against the
/// emulator and pulled once, so the integration routes answer with real data.
struct Fixture {
    server: Served,
    // Removed after the server is stopped.
    _dir: TestDir,
    token: String,
    id: String,
    emulator_url: String,
    // Dropped last: the server reaches it for test and pull.
    _emulator: sf_emulator::Emulator,
}

impl Fixture {
    async fn start(tag: &str) -> Self {
        let emulator = sf_emulator::Emulator::start(sf_emulator::EmulatorConfig {
            auto_approve: true,
            ..sf_emulator::EmulatorConfig::default()
        })
        .await
        .unwrap();
        let dir = temp_dir(tag);
        let loopback = ["--allow-insecure-loopback", "--extra-origin", &emulator.url];
        let out = run_sluice(
            &dir,
            &[
                &loopback[..],
                &[
                    "integration",
                    "add",
                    "--name",
                    "Acme",
                    "--capability",
                    "helpdesk",
                    "--set",
                    "environment=production",
                    "--set",
                    &format!("domain={}", emulator.url),
                    "--set",
                    "pull-by=updated",
                    "--client-id",
                    &emulator.client_id,
                    "--client-secret",
                    &emulator.client_secret,
                ],
            ]
            .concat(),
        );
        let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let out = connect_as_browser(&dir, &loopback, &id).await;
        assert!(out.status.success());
        run_sluice(&dir, &[&loopback[..], &["pull", &id]].concat());
        let server = serve(&dir, &loopback, &[], "");
        let token = server.generated_token();
        Self {
            server,
            _dir: dir,
            token,
            id,
            emulator_url: emulator.url.clone(),
            _emulator: emulator,
        }
    }

    fn base(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// `method path` with the token and `Content-Type: application/json`: status and JSON.
    fn call(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let auth = format!("Bearer {}", self.token);
        let (status, text) = self.server.send(
            method,
            path,
            &self.server.host(),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        );
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }
}

fn run_sluice(dir: &Path, args: &[&str]) -> Output {
    let out = sluice_command(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "sluice {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The document's schema of the answer `status` of `method path`, as a validator that
/// resolves the document's `$ref`s.
fn answer_validator(doc: &Value, method: &str, path: &str, status: u16) -> jsonschema::Validator {
    let escaped = path.replace('~', "~0").replace('/', "~1");
    let pointer =
        format!("/paths/{escaped}/{method}/responses/{status}/content/application~1json/schema");
    let mut root = doc.clone();
    assert!(
        root.pointer(&pointer).is_some(),
        "the document has no JSON answer {status} for {method} {path}"
    );
    // As a URI fragment, the braces of a path template are percent-encoded.
    let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
    root["$ref"] = Value::String(format!("#{fragment}"));
    jsonschema::validator_for(&root).expect("the document's schemas compile")
}

fn assert_conforms(doc: &Value, method: &str, path: &str, status: u16, answer: &Value) {
    let validator = answer_validator(doc, method, path, status);
    let errors: Vec<String> = validator
        .iter_errors(answer)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {errors:?}\n{answer:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_routes_answers_match_the_served_document() {
    let f = Fixture::start("openapi-answers").await;
    let (status, doc) = f.call("GET", "/api/openapi.json", "");
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let id = &f.id;
    let one = format!("/api/integrations/{id}");
    let template = "/api/integrations/{id}";
    let routes: Vec<(&str, String, String, &str, u16)> = vec![
        (
            "get",
            "/api/integrations".into(),
            "/api/integrations".into(),
            "",
            200,
        ),
        ("get", one.clone(), template.into(), "", 200),
        (
            "get",
            format!("{one}/runs"),
            format!("{template}/runs"),
            "",
            200,
        ),
        (
            "get",
            format!("{one}/records?limit=3&with_deleted=true"),
            format!("{template}/records"),
            "",
            200,
        ),
        (
            "get",
            format!("{one}/changes?after=0&limit=3"),
            format!("{template}/changes"),
            "",
            200,
        ),
        (
            "get",
            format!("{one}/changes?after=3x"),
            format!("{template}/changes"),
            "",
            400,
        ),
        (
            "get",
            format!("{one}/changes?after=99999999"),
            format!("{template}/changes"),
            "",
            409,
        ),
        (
            "get",
            format!("{one}/changes?limit=10001"),
            format!("{template}/changes"),
            "",
            422,
        ),
        (
            "post",
            format!("{one}/test"),
            format!("{template}/test"),
            "",
            200,
        ),
        (
            "post",
            format!("{one}/authorize"),
            format!("{template}/authorize"),
            "",
            200,
        ),
        (
            "get",
            "/api/connectors".into(),
            "/api/connectors".into(),
            "",
            200,
        ),
        ("get", "/healthz".into(), "/healthz".into(), "", 200),
        (
            "get",
            "/api/integrations/int_000000000000".into(),
            template.into(),
            "",
            404,
        ),
        (
            "get",
            format!("{one}/records?limit=10001"),
            format!("{template}/records"),
            "",
            422,
        ),
        (
            "get",
            format!("{one}/records?limit=-1"),
            format!("{template}/records"),
            "",
            400,
        ),
        (
            "patch",
            one.clone(),
            template.into(),
            r#"{"interval":"8d"}"#,
            422,
        ),
        (
            "post",
            "/api/integrations".into(),
            "/api/integrations".into(),
            r#"{"name":"x","bogus":1}"#,
            422,
        ),
        (
            "post",
            format!("{one}/credentials"),
            format!("{template}/credentials"),
            r#"{"kind":"password","key":"k"}"#,
            422,
        ),
    ];
    for (method, url, path, body, expected) in &routes {
        let (status, answer) = f.call(&method.to_uppercase(), url, body);
        assert_eq!(status, *expected, "{method} {url}: {answer}");
        assert_conforms(&doc, method, path, status, &answer);
    }
    // An API key for a connector whose plan is OAuth: refused, naming the plan's kind.
    let key = r#"{"kind":"api-key","key":"k-not-for-oauth"}"#;
    let (status, refused) = f.call("POST", &format!("{one}/credentials"), key);
    assert_eq!(status, 422, "{refused}");
    assert_conforms(
        &doc,
        "post",
        "/api/integrations/{id}/credentials",
        422,
        &refused,
    );
    assert!(
        refused["error"].as_str().unwrap().contains("OAuth 2.0"),
        "{refused}"
    );
    // The records are real ones, and the test ran against the emulator.
    let (_, page) = f.call("GET", &format!("{one}/records?limit=3"), "");
    assert_eq!(page.as_array().map(Vec::len), Some(3), "{page}");
    // The feed pages on from its `next_cursor`, and a bad cursor's refusal names it.
    let (_, first) = f.call("GET", &format!("{one}/changes?limit=2"), "");
    assert_eq!(
        first["changes"].as_array().map(Vec::len),
        Some(2),
        "{first}"
    );
    assert_eq!(first["more"], true);
    let next = first["next_cursor"].as_str().unwrap();
    assert_eq!(first["changes"][1]["seq"].to_string(), next);
    let (_, second) = f.call("GET", &format!("{one}/changes?limit=2&after={next}"), "");
    assert!(second["changes"][0]["seq"].as_i64() > first["changes"][1]["seq"].as_i64());
    let (_, refused) = f.call("GET", &format!("{one}/changes?after=3x"), "");
    assert!(
        refused["error"].as_str().unwrap().contains("\"3x\""),
        "{refused}"
    );
    let (_, shown) = f.call("GET", &one, "");
    assert_eq!(shown["integration"]["state"], "active", "{shown}");
    assert!(!shown["runs"].as_array().unwrap().is_empty());

    // Added, then its pull, then deleted: each answer as documented.
    let add = json!({"name": "Beta", "capability": "crm", "interval": 900.0,
        "settings": {"environment": "production", "domain": f.emulator_url, "pull-by": "updated"}});
    let (status, added) = f.call("POST", "/api/integrations", &add.to_string());
    assert_eq!(status, 201, "{added}");
    assert_conforms(&doc, "post", "/api/integrations", 201, &added);
    assert_eq!(added["integration"]["interval_s"], 900);
    let (status, started) = f.call("POST", &format!("{one}/pull"), "");
    assert_eq!(status, 202, "{started}");
    assert_conforms(&doc, "post", "/api/integrations/{id}/pull", 202, &started);

    // Paused, a pull is refused with the way out; resumed, the integration says so.
    let beta = format!(
        "/api/integrations/{}",
        added["integration"]["id"].as_str().unwrap()
    );
    let (status, paused) = f.call("POST", &format!("{beta}/pause"), "");
    assert_eq!(status, 200, "{paused}");
    assert_conforms(&doc, "post", "/api/integrations/{id}/pause", 200, &paused);
    assert!(paused["paused_at_ms"].is_i64(), "{paused}");
    let (status, refused) = f.call("POST", &format!("{beta}/pull"), "");
    assert_eq!(status, 409, "{refused}");
    assert_conforms(&doc, "post", "/api/integrations/{id}/pull", 409, &refused);
    assert!(
        refused["error"].as_str().unwrap().contains("is paused"),
        "{refused}"
    );
    let (status, resumed) = f.call("POST", &format!("{beta}/resume"), "");
    assert_eq!(status, 200, "{resumed}");
    assert_conforms(&doc, "post", "/api/integrations/{id}/resume", 200, &resumed);
    assert!(resumed["paused_at_ms"].is_null(), "{resumed}");

    // The token's refusal, without a token.
    let (status, text) = f
        .server
        .send("GET", "/api/integrations", &f.server.host(), &[], b"");
    assert_eq!(status, 401);
    let refusal: Value = serde_json::from_str(&text).unwrap();
    assert_conforms(&doc, "get", "/api/integrations", 401, &refusal);

    // The check can fail: a view with a field the document does not know, or without one
    // it requires, is refused.
    let (_, rows) = f.call("GET", "/api/integrations", "");
    let list = answer_validator(&doc, "get", "/api/integrations", 200);
    assert!(list.is_valid(&rows));
    let mut extra = rows.clone();
    extra[0]["surprise"] = json!(1);
    assert!(!list.is_valid(&extra), "an unknown field passes");
    let mut missing = rows.clone();
    missing[0].as_object_mut().unwrap().remove("last_run");
    assert!(!list.is_valid(&missing), "a missing field passes");
}

/// A `limit` over the largest page is refused naming the field, not cut down silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_records_limit_over_the_largest_page_is_refused() {
    let f = Fixture::start("openapi-limit").await;
    let path = format!("/api/integrations/{}/records?limit=10001", f.id);
    let (status, answer) = f.call("GET", &path, "");
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["fields"][0]["field"], "limit", "{answer}");
    let (status, answer) = f.call("GET", &path.replace("10001", "10000"), "");
    assert_eq!(status, 200, "{answer}");
    // Half a cursor is not an error: `after_stream` alone starts at that stream.
    let (status, page) = f.call(
        "GET",
        &path.replace("limit=10001", "after_stream=Case&limit=1"),
        "",
    );
    assert_eq!(status, 200, "{page}");
    assert_eq!(page[0]["stream"], "Case", "{page}");
}

/// A method a path does not have is 405 with `Allow`, before any `Content-Type` rule: the
/// rule belongs to the routes that take a body, not to the path.
#[test]
fn an_undeclared_method_is_405_not_415() {
    let dir = temp_dir("openapi-405");
    let server = serve(&dir, &[], &[], "");
    let auth = format!("Bearer {}", server.generated_token());
    for path in [
        "/api/integrations",
        "/api/integrations/int_000000000000/test",
    ] {
        let (status, body) = server.send(
            "PUT",
            path,
            &server.host(),
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!(status, 405, "PUT {path}: {body}");
    }
    let (status, _) = server.send(
        "POST",
        "/api/integrations/int_000000000000/test",
        &server.host(),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(status, 415, "POST without Content-Type");
}

/// An integration without an OAuth client id (and a host without one) cannot start OAuth:
/// that is the integration's state (409), not a provider's failure (502).
#[test]
fn authorizing_without_a_client_id_is_a_conflict() {
    let dir = temp_dir("openapi-no-client");
    let server = serve(&dir, &[], &[], "");
    let auth = format!("Bearer {}", server.generated_token());
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let body = r#"{"name":"x","capability":"crm","settings":{"environment":"production",
        "pull-by":"updated","domain":"https://acme.my.salesforce.com"}}"#;
    let (status, added) = server.send(
        "POST",
        "/api/integrations",
        &server.host(),
        &headers,
        body.as_bytes(),
    );
    assert_eq!(status, 201, "{added}");
    let added: Value = serde_json::from_str(&added).unwrap();
    let id = added["integration"]["id"].as_str().unwrap();
    let path = format!("/api/integrations/{id}/authorize");
    let (status, answer) = server.send("POST", &path, &server.host(), &headers, b"");
    assert_eq!(status, 409, "{answer}");
    assert!(answer.contains("client id"), "{answer}");
}

/// A component upload may be larger than axum's default 2 MiB body: 3 MiB of bytes that are
/// no component reach the registry, which refuses them as such (422), not as too large (413).
#[test]
fn a_component_upload_over_two_mib_reaches_the_registry() {
    let dir = temp_dir("openapi-upload");
    let server = serve(&dir, &[], &[], "");
    let auth = format!("Bearer {}", server.generated_token());
    let (status, answer) = server.send(
        "POST",
        "/api/connectors/big",
        &server.host(),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/wasm"),
        ],
        &vec![0u8; 3 << 20],
    );
    assert_eq!(status, 422, "{answer}");
}

/// The target directory (`.../target/release/sluice` → `.../target`).
fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// schemathesis in its own venv under the target directory, installed on first use.
fn schemathesis() -> PathBuf {
    let venv = target_dir().join("pyvenv-schemathesis");
    let bin = venv.join("bin/schemathesis");
    let version = SCHEMATHESIS.split("==").nth(1).unwrap();
    let installed = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(version));
    if !installed {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs (.ci/install-test-tools installs it with venv)");
        assert!(made.success(), "python3 -m venv {}", venv.display());
        let pip = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", SCHEMATHESIS])
            .status()
            .unwrap();
        assert!(pip.success(), "pip install {SCHEMATHESIS}");
    }
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure_with_every_check() {
    let bin = schemathesis();
    let f = Fixture::start("openapi-fuzz").await;
    let here = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis");
    let report = temp_dir("openapi-fuzz-report");
    let base = f.base();
    let token = f.token.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .current_dir(&report)
            .env("SCHEMATHESIS_HOOKS", "hooks")
            .env("PYTHONPATH", here)
            .env("NO_COLOR", "1")
            .args(["--config-file", &format!("{here}/schemathesis.toml")])
            .args(["run", &format!("{base}/api/openapi.json")])
            .args(["--checks", "all", "--seed", "1", "--max-examples", "50"])
            // One worker: the coverage phase's parsing is not thread-safe on every Python.
            .args(["--workers", "1", "--no-color"])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|n| n.split('/').next().unwrap().trim().to_string())
    };
    assert_eq!(
        count("Selected:"),
        count("Tested:"),
        "every operation was tested:\n{text}"
    );
    assert!(count("Tested:").is_some_and(|n| n != "0"), "{text}");
}

/// The webhook routes answer as documented: an endpoint added (its secret shown once), listed,
/// its deliveries after a pull, a retry, a refused URL, an unknown id, and its removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_routes_answer_as_documented() {
    let f = Fixture::start("openapi-webhooks").await;
    let (_, doc) = f.call("GET", "/api/openapi.json", "");
    // The emulator's origin is the operator's approved one; it answers 404 to the POSTs, so
    // the deliveries fail and say so.
    let body = json!({"url": format!("{}/hooks", f.emulator_url), "integration_id": f.id});
    let (status, added) = f.call("POST", "/api/webhooks", &body.to_string());
    assert_eq!(status, 201, "{added}");
    assert_conforms(&doc, "post", "/api/webhooks", 201, &added);
    assert!(added["secret"].as_str().unwrap().starts_with("whsec_"));
    let hook = added["endpoint"]["id"].as_str().unwrap().to_string();
    let (status, _) = f.call("POST", &format!("/api/integrations/{}/pull", f.id), "");
    assert_eq!(status, 202);
    let deliveries = format!("/api/webhooks/{hook}/deliveries");
    let mut listed = Value::Null;
    for _ in 0..600 {
        let (status, answer) = f.call("GET", &deliveries, "");
        assert_eq!(status, 200, "{answer}");
        if answer.as_array().is_some_and(|a| !a.is_empty()) {
            listed = answer;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(listed[0]["event_type"], "sync.completed", "{listed}");
    assert_conforms(&doc, "get", "/api/webhooks/{id}/deliveries", 200, &listed);
    let (status, endpoints) = f.call("GET", "/api/webhooks", "");
    assert_eq!(status, 200);
    assert_conforms(&doc, "get", "/api/webhooks", 200, &endpoints);
    assert!(
        endpoints.to_string().find("whsec_").is_none(),
        "{endpoints}"
    );
    let (status, requeued) = f.call("POST", &format!("/api/webhooks/{hook}/retry"), "");
    assert_eq!(status, 200, "{requeued}");
    assert_conforms(&doc, "post", "/api/webhooks/{id}/retry", 200, &requeued);

    let private = json!({"url": "https://10.0.0.1/hooks"}).to_string();
    let (status, refused) = f.call("POST", "/api/webhooks", &private);
    assert_eq!(status, 422, "{refused}");
    assert_conforms(&doc, "post", "/api/webhooks", 422, &refused);
    let unknown = "/api/webhooks/whk_000000000000/deliveries";
    let (status, missing) = f.call("GET", unknown, "");
    assert_eq!(status, 404, "{missing}");
    assert_conforms(&doc, "get", "/api/webhooks/{id}/deliveries", 404, &missing);
    let (status, _) = f.call("DELETE", &format!("/api/webhooks/{hook}"), "");
    assert_eq!(status, 204);
    let (status, gone) = f.call("DELETE", &format!("/api/webhooks/{hook}"), "");
    assert_eq!(status, 404, "{gone}");
}
