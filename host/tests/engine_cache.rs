//! The compile cache loads only artifacts this host wrote, and rebuilds anything else.
//! Run: `cargo test --release -p sluice --test engine_cache`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice::engine::cache::CacheOutcome;
use sluice::engine::outbound::OutboundPolicy;
use sluice::engine::{CallContext, ConnectorEngine, EngineLimits, LoadedConnector};
use sluice_test_support::*;

fn scratch(name: &str) -> PathBuf {
    let dir = target_dir()
        .join("engine-test-scratch")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn engine(dir: &Path) -> Arc<ConnectorEngine> {
    let limits = EngineLimits {
        max_concurrent_calls: 8,
        ..EngineLimits::default()
    };
    ConnectorEngine::with_cache(limits, Some(dir)).expect("engine with cache")
}

fn artifact(engine: &ConnectorEngine) -> (PathBuf, PathBuf) {
    let path = engine
        .cache()
        .unwrap()
        .artifact_path(engine.wasmtime(), hostile());
    let mut mac = path.as_os_str().to_owned();
    mac.push(".mac");
    (path, PathBuf::from(mac))
}

async fn works(engine: &ConnectorEngine, connector: &LoadedConnector) {
    let ctx = CallContext {
        policy: Arc::new(OutboundPolicy::deny_all()),
        ..CallContext::default()
    };
    let s = session(settings("ok", &[]), "https://x.example", false);
    let page = engine
        .pull(connector, &ctx, &s, &pull_request(None, 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.rows.len(), 1);
}

fn load(engine: &ConnectorEngine) -> (LoadedConnector, CacheOutcome) {
    engine
        .load_with_outcome("hostile", hostile())
        .expect("component loads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miss_then_hit_then_hit_after_restart() {
    let dir = scratch("hit");
    let first = engine(&dir);
    let (connector, outcome) = load(&first);
    assert_eq!(outcome, CacheOutcome::Miss);
    works(&first, &connector).await;
    let (path, mac) = artifact(&first);
    assert!(path.exists() && mac.exists());
    let (connector, outcome) = load(&first);
    assert_eq!(outcome, CacheOutcome::Hit);
    works(&first, &connector).await;
    drop(first);
    // A new engine (a restarted host) with the same directory trusts its own artifacts.
    let second = engine(&dir);
    let (connector, outcome) = load(&second);
    assert_eq!(outcome, CacheOutcome::Hit);
    works(&second, &connector).await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn assert_rebuilt(outcome: CacheOutcome, why: &str) {
    match outcome {
        CacheOutcome::Rebuilt(reason) => assert!(reason.contains(why), "{reason}"),
        other => panic!("expected a rebuild ({why}), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_foreign_artifacts_are_rebuilt() {
    let dir = scratch("foreign");
    let engine = engine(&dir);
    load(&engine);
    let (path, mac) = artifact(&engine);

    // One flipped byte.
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (connector, outcome) = load(&engine);
    assert_rebuilt(outcome, "MAC mismatch");
    works(&engine, &connector).await;
    assert_eq!(
        load(&engine).1,
        CacheOutcome::Hit,
        "the rebuilt artifact is trusted"
    );

    // A planted file without the host's MAC.
    std::fs::remove_file(&mac).unwrap();
    assert_rebuilt(load(&engine).1, "no MAC");

    // Garbage with a garbage MAC.
    std::fs::write(&path, b"not machine code").unwrap();
    std::fs::write(&mac, "00".repeat(32)).unwrap();
    let (connector, outcome) = load(&engine);
    assert_rebuilt(outcome, "MAC mismatch");
    works(&engine, &connector).await;

    // A genuine artifact with a valid MAC from another host (another key).
    let other_dir = scratch("other-host");
    let other = self::engine(&other_dir);
    load(&other);
    let (other_path, other_mac) = artifact(&other);
    std::fs::copy(&other_path, &path).unwrap();
    std::fs::copy(&other_mac, &mac).unwrap();
    assert_rebuilt(load(&engine).1, "MAC mismatch");
    assert_eq!(load(&engine).1, CacheOutcome::Hit);

    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other_dir);
}

#[test]
fn invalid_bytes_are_rejected_before_the_cache() {
    let dir = scratch("invalid");
    let engine = engine(&dir);
    for bytes in [
        b"garbage".to_vec(),
        // A core module, not a component.
        b"\0asm\x01\0\0\0".to_vec(),
        // A component header with a truncated body.
        b"\0asm\x0d\0\x01\0\x07".to_vec(),
    ] {
        let err = engine.load("bad", &bytes).unwrap_err();
        assert!(
            matches!(err, sluice::engine::EngineError::InvalidComponent { .. }),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether `path` is (still) a FIFO.
#[cfg(unix)]
fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Hands `genuine` to the first reader of the FIFO at `path`, waits until that reader has
/// closed it, then hands `swapped` to any second reader.
#[cfg(unix)]
fn serve_fifo(path: PathBuf, genuine: Vec<u8>, swapped: Vec<u8>) -> std::thread::JoinHandle<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::thread::spawn(move || {
        // Blocks until a reader opens the FIFO.
        if let Ok(mut fifo) = std::fs::OpenOptions::new().write(true).open(&path) {
            let _ = fifo.write_all(&genuine);
        }
        // A non-blocking open for writing fails only while no reader holds the FIFO open.
        while is_fifo(&path)
            && std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)
                .is_ok()
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if !is_fifo(&path) {
            return;
        }
        if let Ok(mut fifo) = std::fs::OpenOptions::new().write(true).open(&path) {
            let _ = fifo.write_all(&swapped);
        }
    })
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bytes_verified_are_the_bytes_loaded() {
    use std::os::unix::fs::OpenOptionsExt;

    let dir = scratch("one-read");
    let engine = engine(&dir);
    load(&engine);
    let (path, _) = artifact(&engine);
    let genuine = std::fs::read(&path).unwrap();
    // The artifact becomes a FIFO that hands out the genuine bytes to the first reader and
    // something else to a second one: a file swapped between the check and the load.
    std::fs::remove_file(&path).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo failed");
    let writer = serve_fifo(path.clone(), genuine, b"swapped after the check".to_vec());
    let (connector, outcome) = load(&engine);
    assert_eq!(
        outcome,
        CacheOutcome::Hit,
        "the artifact was read again after its MAC was checked"
    );
    works(&engine, &connector).await;
    // Release the writer if it still waits for a second reader. It may not have reached its
    // blocking open yet (on a busy machine it can still be polling), so a reader opened once
    // could come and go unseen: keep offering one until the writer is done.
    while !writer.is_finished() {
        if is_fifo(&path) {
            let _ = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    writer.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
