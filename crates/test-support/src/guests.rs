//! The guest components tests load: the hostile guest (`tests/hostile`), built for
//! wasm32-wasip2 once per process and under a file lock across processes, and new versions of
//! a component made by appending a custom section.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The workspace package of the hostile guest.
pub const HOSTILE_PACKAGE: &str = "sluice-hostile";

/// The cargo target directory: `CARGO_TARGET_DIR`, else found from the test binary's path
/// (`target/<profile>/deps/<binary>`).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .expect("target/<profile>/deps/<binary>")
        .to_path_buf()
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/test-support is in the workspace")
        .to_path_buf()
}

/// Builds the hostile guest; `broken` builds the variant whose `configure` always traps.
fn build_hostile(broken: bool) -> Vec<u8> {
    let guests = target_dir().join("wasm-guests");
    std::fs::create_dir_all(&guests).expect("creating the guest target dir");
    let lock = std::fs::File::create(guests.join(".sluice-hostile.lock")).expect("lock file");
    lock.lock().expect("locking the guest build");
    let broken_switch = ("SLUICE_HOSTILE_BROKEN", broken.then_some("1"));
    let workspace = workspace();
    let guest = sluice_guest_build::Guest {
        workspace: &workspace,
        target_dir: &guests,
        package: HOSTILE_PACKAGE,
        optimize_for_speed: false,
        env: vec![broken_switch],
    };
    let (_, path) = guest
        .build()
        .unwrap_or_else(|e| panic!("building {HOSTILE_PACKAGE}: {e}"));
    let wasm = std::fs::read(path).expect("reading the hostile component");
    lock.unlock().ok();
    wasm
}

/// The hostile test component (behaviour chosen by the `behaviour` setting).
pub fn hostile() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| build_hostile(false))
}

/// The broken build of the hostile component: `configure` always traps.
pub fn hostile_broken() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        // Build the normal one first so the two builds never interleave in one process.
        let _ = hostile();
        build_hostile(true)
    })
}

/// `wasm` with a custom section appended: the same behaviour under a new sha256, i.e. a new
/// connector version.
pub fn with_custom_section(wasm: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = wasm.to_vec();
    sluice_guest_build::append_custom_section(&mut out, name, payload);
    out
}

/// The workspace package of the contract-0.2 credentials test connector.
pub const CREDS_GUEST_PACKAGE: &str = "sluice-creds-guest";

/// Builds the credentials test connector; `describe_bytes` builds the variant whose
/// `describe` answers a description of that many bytes.
fn build_creds_guest(describe_bytes: Option<usize>) -> Vec<u8> {
    let guests = target_dir().join("wasm-guests");
    std::fs::create_dir_all(&guests).expect("creating the guest target dir");
    let lock = std::fs::File::create(guests.join(".sluice-creds-guest.lock")).expect("lock");
    lock.lock().expect("locking the guest build");
    let workspace = workspace();
    let bytes = describe_bytes.map(|n| n.to_string());
    let guest = sluice_guest_build::Guest {
        workspace: &workspace,
        target_dir: &guests,
        package: CREDS_GUEST_PACKAGE,
        optimize_for_speed: false,
        env: vec![("SLUICE_CREDS_GUEST_DESCRIBE_BYTES", bytes.as_deref())],
    };
    let (_, path) = guest
        .build()
        .unwrap_or_else(|e| panic!("building {CREDS_GUEST_PACKAGE}: {e}"));
    let wasm = std::fs::read(path).expect("reading the credentials test component");
    lock.unlock().ok();
    wasm
}

/// The credentials test connector (`tests/creds-guest`): a 0.2 component whose credential
/// plan its `kind` setting chooses.
pub fn creds_guest() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| build_creds_guest(None))
}

/// The credentials test connector built so that `describe` answers a description of
/// [`OVERSIZED_DESCRIBE_BYTES`] bytes.
pub fn creds_guest_oversized_describe() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        // Build the normal one first so the two builds never interleave in one process.
        let _ = creds_guest();
        build_creds_guest(Some(OVERSIZED_DESCRIBE_BYTES))
    })
}

/// The description bytes of [`creds_guest_oversized_describe`]: twice the default describe cap.
pub const OVERSIZED_DESCRIBE_BYTES: usize = 2 << 20;

/// The workspace package of the Zendesk connector.
pub const ZENDESK_PACKAGE: &str = "sluice-zendesk";

/// The Zendesk connector (`connectors/zendesk`) as installed: built for wasm32-wasip2 once per
/// process, under a file lock across processes, with its `manifest.json` appended as its
/// `sluice:manifest` section.
pub fn zendesk() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        let guests = target_dir().join("wasm-guests");
        std::fs::create_dir_all(&guests).expect("creating the guest target dir");
        let lock = std::fs::File::create(guests.join(".sluice-zendesk.lock")).expect("lock file");
        lock.lock().expect("locking the guest build");
        let workspace = workspace();
        let guest = sluice_guest_build::Guest {
            workspace: &workspace,
            target_dir: &guests,
            package: ZENDESK_PACKAGE,
            optimize_for_speed: false,
            env: Vec::new(),
        };
        let (_, path) = guest
            .build()
            .unwrap_or_else(|e| panic!("building {ZENDESK_PACKAGE}: {e}"));
        let mut wasm = std::fs::read(path).expect("reading the Zendesk component");
        lock.unlock().ok();
        let manifest = std::fs::read(workspace.join("connectors/zendesk/manifest.json"))
            .expect("reading connectors/zendesk/manifest.json");
        sluice_guest_build::append_custom_section(&mut wasm, "sluice:manifest", &manifest);
        wasm
    })
}
