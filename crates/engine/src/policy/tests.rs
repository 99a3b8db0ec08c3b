use super::*;
use crate::manifest::HostPattern;

fn rules(hosts: &[&str], extra: &[&str], loopback: bool) -> EgressRules {
    let manifest = Manifest {
        hosts: hosts
            .iter()
            .map(|h| HostPattern::parse(h).unwrap())
            .collect(),
        ..Manifest::default()
    };
    let extra: Vec<Origin> = extra
        .iter()
        .map(|o| parse_extra_origin(o).unwrap())
        .collect();
    EgressRules::new(Arc::new(manifest), extra.into(), loopback)
}

fn origin(url: &str) -> Origin {
    Origin::parse(url).unwrap()
}

#[test]
fn ranges() {
    for ip in [
        "10.0.0.1",
        "169.254.169.254",
        "172.20.1.1",
        "192.168.1.1",
        "100.100.1.1",
        "0.0.0.0",
        "127.0.0.1",
        "::1",
        "fd00:ec2::254",
        "fe80::1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:127.0.0.1",
        "::ffff:0:a9fe:a9fe",
        "::ffff:0:a00:1",
        "64:ff9b::a00:1",
        "64:ff9b::7f00:1",
        "64:ff9b:1::808:808",
        "64:ff9b:1:ffff::1",
    ] {
        assert!(prohibited_range(ip.parse().unwrap()).is_some(), "{ip}");
    }
    for ip in [
        "8.8.8.8",
        "2606:4700::1111",
        "13.110.1.1",
        "::ffff:8.8.8.8",
        "::ffff:0:808:808",
        "64:ff9b::808:808",
    ] {
        assert!(prohibited_range(ip.parse().unwrap()).is_none(), "{ip}");
    }
}

#[test]
fn configure_can_only_narrow() {
    let r = rules(&["*.salesforce.com"], &[], false);
    assert!(OutboundPolicy::for_integration(r.clone(), ["login.salesforce.com"], None).is_ok());
    let refused = OutboundPolicy::for_integration(r, ["attacker.example"], None).unwrap_err();
    assert!(
        matches!(refused, PolicyError::HostNotApproved { ref host, .. } if host == "attacker.example")
    );
    assert!(
        refused.to_string().contains("*.salesforce.com"),
        "{refused}"
    );
}

#[test]
fn only_https_443_for_manifest_hosts() {
    let p = OutboundPolicy::for_integration(
        rules(&["*.salesforce.com"], &[], true),
        ["login.salesforce.com"],
        None,
    )
    .unwrap();
    assert!(p.check(&origin("https://login.salesforce.com/x")).is_ok());
    assert!(
        p.check(&origin("https://login.salesforce.com:8443/x"))
            .is_err()
    );
    assert!(p.check(&origin("http://login.salesforce.com/x")).is_err());
    assert!(p.check(&origin("https://other.salesforce.com/x")).is_err());
}

#[test]
fn loopback_is_scoped_to_the_exact_extra_origin() {
    let r = rules(&[], &["http://127.0.0.1:8080"], true);
    let p =
        OutboundPolicy::for_integration(r.clone(), ["127.0.0.1"], Some("http://127.0.0.1:8080"))
            .unwrap();
    let emulator = origin("http://127.0.0.1:8080/services");
    let admin = origin("http://127.0.0.1:7070/api/plugins");
    assert!(p.check(&emulator).is_ok());
    assert!(
        p.check_addr(&emulator, "127.0.0.1".parse().unwrap())
            .is_ok()
    );
    assert!(p.carries_credentials(&emulator));
    assert!(p.check(&admin).is_err());
    assert!(p.check_addr(&admin, "127.0.0.1".parse().unwrap()).is_err());
    assert!(!p.carries_credentials(&admin));
    // The same origin without the insecure-loopback setting is refused.
    let strict = rules(&[], &["http://127.0.0.1:8080"], false);
    assert!(strict.check_origin(&emulator).is_err());
    // An instance URL elsewhere is refused outright.
    assert!(
        OutboundPolicy::for_integration(r, ["127.0.0.1"], Some("http://127.0.0.1:7070")).is_err()
    );
}

#[test]
fn without_an_instance_url_credentials_go_to_the_declared_hosts_only() {
    let r = rules(
        &["*.zendesk.com"],
        &["http://127.0.0.1:8080", "http://localhost:8080"],
        true,
    );
    let p = OutboundPolicy::for_integration(r, ["acme.zendesk.com", "127.0.0.1"], None).unwrap();
    assert!(p.carries_credentials(&origin("https://acme.zendesk.com/api/v2")));
    assert!(p.carries_credentials(&origin("http://127.0.0.1:8080/api")));
    // Approved for every connector, but not declared by this one.
    assert!(!p.carries_credentials(&origin("http://localhost:8080/api")));
    // Covered by the manifest, but not declared.
    assert!(!p.carries_credentials(&origin("https://other.zendesk.com/api")));
    // A declared host at an origin the operator did not approve.
    assert!(!p.carries_credentials(&origin("http://acme.zendesk.com/api")));
    assert!(!p.carries_credentials(&origin("https://acme.zendesk.com:8443/api")));
    assert!(!p.carries_credentials(&origin("http://127.0.0.1:7070/api")));
}

#[test]
fn an_instance_url_keeps_credentials_from_the_other_declared_hosts() {
    let r = rules(&["*.salesforce.com"], &[], false);
    let p = OutboundPolicy::for_integration(
        r,
        ["login.salesforce.com"],
        Some("https://acme.my.salesforce.com"),
    )
    .unwrap();
    assert!(p.carries_credentials(&origin("https://acme.my.salesforce.com/services")));
    assert!(p.check(&origin("https://login.salesforce.com/id")).is_ok());
    assert!(!p.carries_credentials(&origin("https://login.salesforce.com/id")));
}

#[test]
fn userinfo_and_bad_extra_origins_are_refused() {
    assert!(matches!(
        Origin::parse("https://user:pw@login.salesforce.com/"),
        Err(PolicyError::Userinfo(shown)) if !shown.contains("pw")
    ));
    let uri: http::Uri = "https://x@login.salesforce.com/".parse().unwrap();
    assert!(matches!(
        Origin::of_uri(&uri),
        Err(PolicyError::Userinfo(_))
    ));
    for bad in [
        "http://evil.example:80",
        "http://127.0.0.1:8080/path",
        "http://u@127.0.0.1:8080",
        "ftp://127.0.0.1:21",
        "127.0.0.1:8080",
    ] {
        assert!(parse_extra_origin(bad).is_err(), "{bad}");
    }
    assert!(parse_extra_origin("http://localhost:9").is_ok());
}

#[test]
fn credentialed_methods_follow_the_manifest() {
    let p = OutboundPolicy::deny_all();
    assert!(p.check_credentialed_method(&http::Method::GET).is_ok());
    assert!(p.check_credentialed_method(&http::Method::HEAD).is_ok());
    assert!(p.check_credentialed_method(&http::Method::DELETE).is_err());
}
