//! `toy-api`: the toy REST/JSON API of `sluice_test_support::toy_api`, served alone for a first
//! run of a connector made by `sluice new connector --template rest-json`.
//!
//! `cargo run -p sluice-test-support --bin toy-api -- [--listen 127.0.0.1:8080] [--key KEY]
//! [--items N] [--users N]`; the key defaults to `demo-key`.

use std::net::SocketAddr;

use sluice_test_support::ToyApi;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 8080).into();
    let mut key = "demo-key".to_string();
    let (mut items, mut users) = (250, 40);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--listen" => {
                listen = value
                    .parse()
                    .unwrap_or_else(|_| usage("--listen ADDR:PORT"))
            }
            "--key" => key = value,
            "--items" => items = value.parse().unwrap_or_else(|_| usage("--items N")),
            "--users" => users = value.parse().unwrap_or_else(|_| usage("--users N")),
            other => usage(&format!("unknown option {other}")),
        }
    }
    if !listen.ip().is_loopback() {
        usage("--listen must be a loopback address: the toy API is for local tests");
    }
    let api = ToyApi::start_on(listen, &key, items, users).await;
    println!(
        "toy API on {} (key in X-Api-Key: {key}; {items} items, {users} users); Ctrl-C stops it",
        api.url
    );
    let _ = tokio::signal::ctrl_c().await;
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "error: {problem}\nusage: toy-api [--listen 127.0.0.1:8080] [--key KEY] [--items N] [--users N]"
    );
    std::process::exit(2)
}
