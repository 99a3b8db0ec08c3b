//! What the org has and what the integration user may do: the identity URL on the login
//! host, `/limits` without "View Setup and Configuration", absent and unreadable objects, and
//! the user's own permissions through `UserPermissionAccess`.

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn identity_lives_on_the_login_host() {
    let emu = start_empty().await;
    assert_ne!(emu.login_url, emu.url);
    let g = grant(&emu).await;
    let id = g["id"].as_str().unwrap();
    assert!(id.starts_with(&format!("{}/id/00D", emu.login_url)), "{id}");
    let tok = g["access_token"].as_str().unwrap();
    let (s, _, body) = get(&emu, tok, "/").await;
    assert_eq!(s, 200);
    let resources: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(resources["identity"], id);
    let r = client().get(id).bearer_auth(tok).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The login host serves OAuth and identity, not the data API.
    let r = client()
        .get(format!("{}/services/data/v62.0/limits", emu.login_url))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The old layout is a setting.
    control(&emu, "settings", json!({"identity_on_login_host": false})).await;
    let g = grant(&emu).await;
    assert!(
        g["id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/id/", emu.url))
    );
}

#[tokio::test]
async fn limits_needs_view_setup_and_configuration() {
    let emu = start_empty().await;
    let tok = token(&emu).await;
    control(&emu, "settings", json!({"view_setup_permission": false})).await;
    let (s, headers, body) = get(&emu, &tok, "/limits").await;
    assert_eq!(s, 403, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["errorCode"], "INSUFFICIENT_ACCESS");
    assert!(
        headers["sforce-limit-info"]
            .to_str()
            .unwrap()
            .starts_with("api-usage=")
    );
    // Data calls still work.
    assert_eq!(get(&emu, &tok, "/sobjects/Case/describe/").await.0, 200);
}

#[tokio::test]
async fn absent_and_unreadable_objects_do_not_exist_for_the_user() {
    let emu = start().await;
    let tok = token(&emu).await;
    control(
        &emu,
        "settings",
        json!({"absent_objects": ["EmailMessage"], "unreadable_objects": ["casecomment"]}),
    )
    .await;
    let (_, _, body) = get(&emu, &tok, "/sobjects/").await;
    let global: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = global["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Case"));
    assert!(!names.contains(&"EmailMessage") && !names.contains(&"CaseComment"));
    for object in ["EmailMessage", "CaseComment"] {
        for path in [
            "describe/",
            "updated/?start=2024-01-01T00:00:00Z&end=2024-01-02T00:00:00Z",
        ] {
            let (s, _, body) = get(&emu, &tok, &format!("/sobjects/{object}/{path}")).await;
            assert_eq!(s, 404, "{object} {path}: {body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v[0]["errorCode"], "NOT_FOUND");
        }
        let (s, _, body) = get(
            &emu,
            &tok,
            &format!("/query?q={}", enc(&format!("SELECT Id FROM {object}"))),
        )
        .await;
        assert_eq!(s, 400, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v[0]["errorCode"], "INVALID_TYPE");
    }
    let (s, _, body) = get(
        &emu,
        &tok,
        &format!("/query?q={}", enc("SELECT Id FROM Case LIMIT 1")),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    // The ground truth still has every row.
    assert!(!truth(&emu, "EmailMessage").await.is_empty());
}

#[tokio::test]
async fn user_permission_access_reports_the_session_users_permissions() {
    let emu = start().await;
    let tok = token(&emu).await;
    let permissions = || async {
        let soql = "SELECT Id, LastCacheUpdate, PermissionsViewArchivedArticles, \
                    PermissionsViewSetup FROM UserPermissionAccess";
        let (s, _, body) = get(&emu, &tok, &format!("/query?q={}", enc(soql))).await;
        assert_eq!(s, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["totalSize"], 1, "{v}");
        v["records"][0].clone()
    };
    // An admin has both permissions.
    let admin = permissions().await;
    assert_eq!(admin["PermissionsViewArchivedArticles"], true, "{admin}");
    assert_eq!(admin["PermissionsViewSetup"], true, "{admin}");
    assert_eq!(admin["attributes"]["type"], "UserPermissionAccess");
    let (s, _, body) = get(&emu, &tok, "/sobjects/UserPermissionAccess/describe/").await;
    assert_eq!(s, 200, "{body}");
    let d: Value = serde_json::from_str(&body).unwrap();
    let field = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "PermissionsViewArchivedArticles")
        .cloned()
        .unwrap();
    assert_eq!(field["type"], "boolean");
    assert_eq!(d["createable"], false);

    control(
        &emu,
        "settings",
        json!({"knowledge_archived_visible": false, "view_setup_permission": false}),
    )
    .await;
    let user = permissions().await;
    assert_eq!(user["PermissionsViewArchivedArticles"], false, "{user}");
    assert_eq!(user["PermissionsViewSetup"], false, "{user}");
    assert_eq!(user["Id"], admin["Id"]);
    // What it reports is what the APIs do: no archived article version is visible.
    let archived = "SELECT Id FROM Knowledge__kav WHERE PublishStatus = 'Archived'";
    let (_, _, body) = get(&emu, &tok, &format!("/query?q={}", enc(archived))).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["totalSize"], 0, "{v}");
    // A filter on the permission works like any checkbox.
    let soql = "SELECT Id FROM UserPermissionAccess WHERE PermissionsViewArchivedArticles = true";
    let (_, _, body) = get(&emu, &tok, &format!("/query?q={}", enc(soql))).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["totalSize"], 0, "{v}");
}
