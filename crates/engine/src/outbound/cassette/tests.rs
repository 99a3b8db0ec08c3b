use super::*;

fn get(url: &str, body: &str) -> Interaction {
    Interaction {
        request: RecordedRequest {
            method: "GET".into(),
            url: normalize_url(url),
            headers: Vec::new(),
            body_sha256: sha256_hex(b""),
            body: StoredBody::default(),
        },
        response: Some(RecordedResponse {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: StoredBody::of(body.as_bytes()),
        }),
        error: None,
    }
}

fn body_of(answer: Answer) -> String {
    match answer {
        Answer::Response(_, body) => String::from_utf8(body.to_vec()).unwrap(),
        Answer::Failure(f) => format!("{f:?}"),
    }
}

#[test]
fn urls_normalise_scheme_host_port_and_query_order() {
    assert_eq!(
        normalize_url("HTTPS://API.Example.COM:443/v2/Users?b=2&a=1#frag"),
        "https://api.example.com/v2/Users?a=1&b=2"
    );
    assert_eq!(
        normalize_url("http://127.0.0.1:8080/x?"),
        "http://127.0.0.1:8080/x"
    );
}

#[test]
fn identical_requests_take_answers_in_recorded_order_then_miss() {
    let cassette = Cassette::from_interactions(vec![
        get("https://a.example/x?p=1", "first"),
        get("https://a.example/x?p=1", "second"),
    ]);
    let ask = || cassette.answer("GET", "https://A.example/x?p=1", b"");
    assert_eq!(body_of(ask().unwrap()), "first");
    assert_eq!(body_of(ask().unwrap()), "second");
    let miss = ask().unwrap_err();
    assert!(miss.to_string().contains("already given"), "{miss}");
    assert_eq!(cassette.misses().len(), 1);
}

#[test]
fn a_miss_names_the_nearest_interaction_and_the_difference() {
    let cassette = Cassette::from_interactions(vec![
        get("https://a.example/other", "o"),
        get("https://a.example/users?page=2&size=10", "u"),
    ]);
    let miss = cassette
        .answer("GET", "https://a.example/users?size=10&page=3", b"")
        .unwrap_err();
    let text = miss.to_string();
    assert!(text.contains("interaction #2"), "{text}");
    assert!(text.contains("recorded `page=2`, sent `page=3`"), "{text}");
    let miss = cassette
        .answer("POST", "https://a.example/users?page=2&size=10", b"{}")
        .unwrap_err();
    let text = miss.to_string();
    assert!(text.contains("method differs (recorded GET)"), "{text}");
    assert!(text.contains("body differs"), "{text}");
}

#[test]
fn a_canned_cassette_answers_everything() {
    let cassette = Cassette::answering_every_request(429, &[("retry-after", "7")], "slow");
    for _ in 0..3 {
        match cassette.answer("GET", "https://x.example/", b"").unwrap() {
            Answer::Response(head, body) => {
                assert_eq!(head.status, 429);
                assert_eq!(head.headers["retry-after"], "7");
                assert_eq!(&body[..], b"slow");
            }
            Answer::Failure(f) => panic!("{f:?}"),
        }
    }
    let failing = Cassette::failing_every_request(TransportFailure::ConnectionRefused);
    assert!(matches!(
        failing.answer("GET", "https://x.example/", b""),
        Ok(Answer::Failure(TransportFailure::ConnectionRefused))
    ));
}

#[test]
fn recorded_files_drop_credentials_and_cookies_and_replay() {
    let dir = std::env::temp_dir().join(format!("sluice-cassette-unit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let recorder = Recorder::create(&dir).unwrap();
    let mut request = http::Request::new(()).into_parts().0;
    request.method = http::Method::POST;
    request
        .headers
        .insert("authorization", HeaderValue::from_static("Bearer sekrit"));
    request
        .headers
        .insert("x-trace", HeaderValue::from_static("kept"));
    let mut response = http::Response::new(()).into_parts().0;
    response
        .headers
        .insert("set-cookie", HeaderValue::from_static("sid=sekrit"));
    recorder.record(
        &request,
        "https://a.example/q?b=1&a=2",
        b"{\"q\":1}",
        Ok((&response, b"ok")),
    );
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    assert!(!text.contains("sekrit"), "{text}");
    assert!(text.contains("x-trace"), "{text}");
    assert!(Recorder::create(&dir).is_err(), "recording over a cassette");
    let cassette = Cassette::load(&dir).unwrap();
    let answer = cassette
        .answer("POST", "https://a.example/q?a=2&b=1", b"{\"q\":1}")
        .unwrap();
    assert_eq!(body_of(answer), "ok");
    std::fs::remove_dir_all(&dir).unwrap();
}
