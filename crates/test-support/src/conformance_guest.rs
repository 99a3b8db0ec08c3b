//! The conformance checker's test guest (`tests/conformance-guest`), one build per variant,
//! with its `sluice:manifest` section appended as an installed connector carries it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::guests::{target_dir, with_custom_section, workspace};

/// The workspace package of the conformance test guest.
pub const CONFORMANCE_GUEST_PACKAGE: &str = "sluice-conformance-guest";

/// The build of the conformance guest for `variant` (`correct`, `bad-key` or
/// `skip-checkpoint`), written to a file of its own under the target directory; built once per
/// process and variant, under a file lock across processes.
pub fn conformance_guest(variant: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(variant) {
        return path.clone();
    }
    let path = build(variant);
    built.insert(variant.to_string(), path.clone());
    path
}

fn build(variant: &str) -> PathBuf {
    let guests = target_dir().join("wasm-guests");
    std::fs::create_dir_all(&guests).expect("creating the guest target dir");
    let lock =
        std::fs::File::create(guests.join(".sluice-conformance-guest.lock")).expect("lock file");
    lock.lock().expect("locking the guest build");
    let workspace = workspace();
    let guest = sluice_guest_build::Guest {
        workspace: &workspace,
        target_dir: &guests,
        package: CONFORMANCE_GUEST_PACKAGE,
        optimize_for_speed: false,
        env: vec![("SLUICE_CONFORMANCE_VARIANT", Some(variant))],
    };
    let (_, built) = guest
        .build()
        .unwrap_or_else(|e| panic!("building {CONFORMANCE_GUEST_PACKAGE} ({variant}): {e}"));
    let wasm = std::fs::read(built).expect("reading the conformance guest");
    let manifest = std::fs::read(workspace.join("tests/conformance-guest/manifest.json"))
        .expect("the conformance guest's manifest");
    let wasm = with_custom_section(&wasm, "sluice:manifest", &manifest);
    let path = guests.join(format!("conformance-guest-{variant}.wasm"));
    std::fs::write(&path, wasm).expect("writing the conformance guest");
    lock.unlock().ok();
    path
}
