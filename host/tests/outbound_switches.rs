//! The outbound client's comparison switches (`OutboundLimits::reuse_connections`,
//! `OutboundLimits::accept_gzip`), seen from the server: the Salesforce connector pulls from the
//! emulator, which counts the TCP connections it accepted and the answers it compressed (it
//! compresses every data-API answer whose request accepts gzip).
//! Run: `cargo test --release --workspace --test outbound_switches`.

use std::sync::atomic::Ordering;

use sf_emulator::{Dataset, Emulator, EmulatorConfig};
use sluice::app::{AppConfig, IntegrationInput};
use sluice::runner::{PullOptions, RunStatus};
use sluice_test_support::runtime::{approve_emulator, connect, open_app};
use sluice_test_support::temp_dir;

/// What one pull cost on the wire.
#[derive(Debug)]
struct Wire {
    /// Requests the host sent for the guest.
    requests: u64,
    /// TCP connections the emulator accepted meanwhile.
    connections: u64,
    /// Answers the emulator sent gzip-compressed.
    compressed: u64,
}

/// One full Case and CaseComment pull with both switches set to `on`.
async fn pull(on: bool) -> Wire {
    let emu = Emulator::start(EmulatorConfig {
        auto_approve: true,
        dataset: Dataset::Demo,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let dir = temp_dir("outbound-switches");
    let mut config = AppConfig::new(dir.to_path_buf());
    approve_emulator(&mut config, &emu.url);
    config.limits.outbound.reuse_connections = on;
    config.limits.outbound.accept_gzip = on;
    let app = open_app(config).await;
    let id = app
        .add_integration(IntegrationInput {
            name: Some("switches".into()),
            capability: Some("helpdesk".into()),
            settings: sluice_test_support::runtime::salesforce_settings(
                &emu.url,
                &[("objects", "Case,CaseComment")],
            ),
            client_id: Some(emu.client_id.clone()),
            client_secret: Some(emu.client_secret.clone()),
            ..IntegrationInput::default()
        })
        .await
        .expect("added")
        .integration
        .id;
    connect(&app, &id).await;

    // Read in process: a question over HTTP would open a connection of its own.
    let stats = || emu.state.stats.lock().expect("stats").clone();
    let requests = || {
        app.engine()
            .metrics()
            .outbound_requests
            .load(Ordering::Relaxed)
    };
    let (before, requests_before) = (stats(), requests());
    let summary = sluice::runner::run_pull(&app, &id, PullOptions::default())
        .await
        .expect("pull runs");
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    assert!(summary.records > 0, "{summary:?}");
    let after = stats();
    Wire {
        requests: requests() - requests_before,
        connections: after.connections - before.connections,
        compressed: after.compressed_responses - before.compressed_responses,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_switches_off_every_request_opens_a_connection_and_none_asks_for_gzip() {
    let off = pull(false).await;
    assert!(off.requests > 3, "a pull of two objects: {off:?}");
    assert_eq!(
        off.connections, off.requests,
        "one connection per request: {off:?}"
    );
    assert_eq!(off.compressed, 0, "no request accepted gzip: {off:?}");

    // The same pull with the defaults shows the counts can tell the difference.
    let on = pull(true).await;
    assert!(on.requests > 3, "{on:?}");
    assert!(
        on.connections < on.requests,
        "the defaults reuse connections: {on:?}"
    );
    assert!(on.compressed > 0, "the connector asks for gzip: {on:?}");
}
