//! Unit tests of the Entra ID endpoints, driven without sockets.

use serde_json::json;

use crate::counters::{OUTCOME_OK, grant};
use crate::faults::{Limit, Target};
use crate::testutil::*;
use crate::{BLOG_CLIENT_ID, BLOG_CLIENT_SECRET, BLOG_TENANT_ID, mint_jwt};

const SCOPE: &str = "https://vault.azure.net/.default";

fn token_path() -> String {
    format!("/{BLOG_TENANT_ID}/oauth2/v2.0/token")
}

fn assertion_form(assertion: &str) -> bytes::Bytes {
    form(&[
        ("client_assertion", assertion),
        ("client_assertion_type", super::JWT_BEARER),
        ("client_id", BLOG_CLIENT_ID),
        ("grant_type", "client_credentials"),
        ("scope", SCOPE),
    ])
}

fn assert_aad_error(body: &serde_json::Value, error: &str, code: u32) {
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    for part in ["Trace ID: ", "Correlation ID: ", "Timestamp: "] {
        assert!(description.contains(part), "{description}");
    }
    assert!(body["trace_id"].is_string() && body["correlation_id"].is_string());
    // Entra ID's descriptions need no JSON escapes; azure_identity relies on it.
    let encoded = serde_json::to_string(description).unwrap_or_default();
    assert!(!encoded.contains('\\'), "{encoded}");
}

#[tokio::test]
async fn assertion_grant_issues_a_bearer_token() {
    let shared = blog();
    let (status, body, resp) = send(
        &shared,
        &post(LOGIN, &token_path(), assertion_form(&blog_assertion())),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    assert!(body["access_token"].as_str().is_some_and(|t| t.len() > 40));
    assert_eq!(resp.headers()["cache-control"], "no-store, no-cache");
    let counters = shared.counters().clone();
    assert_eq!(
        counters.token_requests_with(grant::CLIENT_ASSERTION, OUTCOME_OK),
        1
    );
}

/// MSAL (Go, .NET) adds `openid offline_access profile` to every token
/// request, client credentials too; Entra ID issues the resource's token.
#[tokio::test]
async fn msal_oidc_scopes_beside_default_are_accepted() {
    let shared = blog();
    let body = form(&[
        ("client_assertion", &blog_assertion()),
        ("client_assertion_type", super::JWT_BEARER),
        ("client_id", BLOG_CLIENT_ID),
        ("client_info", "1"),
        ("grant_type", "client_credentials"),
        ("scope", &format!("{SCOPE} openid offline_access profile")),
    ]);
    let (status, body, _) = send(&shared, &post(LOGIN, &token_path(), body)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    // Two resources are still refused, with or without the OIDC scopes.
    let two = format!("{SCOPE} https://vault.azure.cn/.default openid");
    let (status, body, _) = send(
        &shared,
        &post(
            LOGIN,
            &token_path(),
            form(&[
                ("client_id", BLOG_CLIENT_ID),
                ("client_secret", BLOG_CLIENT_SECRET),
                ("grant_type", "client_credentials"),
                ("scope", &two),
            ]),
        ),
    )
    .await;
    assert_eq!(status, 400);
    assert_aad_error(&body, "invalid_scope", 1_002_012);
}

#[tokio::test]
async fn wrong_subject_is_aadsts70021_without_echoing_the_assertion() {
    let shared = blog();
    let assertion = crate::mint_service_account_token(
        ISSUER,
        "other-ns",
        "kv-access-account",
        crate::BLOG_AUDIENCE,
        std::time::Duration::from_secs(600),
    );
    let (status, body, _) = send(
        &shared,
        &post(LOGIN, &token_path(), assertion_form(&assertion)),
    )
    .await;
    assert_eq!(status, 400);
    assert_aad_error(&body, "invalid_grant", 70_021);
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(description.contains(&format!("Assertion Issuer: '{ISSUER}'")));
    assert!(
        description
            .contains("Assertion Subject: 'system:serviceaccount:other-ns:kv-access-account'")
    );
    assert!(description.contains("Assertion Audience: 'api://AzureADTokenExchange'"));
    assert!(!body.to_string().contains(&assertion));
    assert_eq!(
        shared
            .counters()
            .token_requests_with(grant::CLIENT_ASSERTION, "AADSTS70021"),
        1
    );
}

#[tokio::test]
async fn expired_and_malformed_assertions_are_rejected() {
    let shared = blog();
    let expired = mint_jwt(&json!({
        "iss": ISSUER, "sub": crate::BLOG_SUBJECT, "aud": [crate::BLOG_AUDIENCE],
        "exp": 1_000_000, "nbf": 999_000,
    }));
    let (status, body, _) = send(
        &shared,
        &post(LOGIN, &token_path(), assertion_form(&expired)),
    )
    .await;
    assert_eq!(status, 400);
    assert_aad_error(&body, "invalid_client", 700_024);
    let (status, body, _) = send(
        &shared,
        &post(LOGIN, &token_path(), assertion_form("not-a-jwt")),
    )
    .await;
    assert_eq!(status, 400);
    assert_aad_error(&body, "invalid_request", 50_027);
}

#[tokio::test]
async fn client_secret_grant_checks_the_secret_without_echoing_it() {
    let shared = blog();
    let ok = token(&shared, BLOG_TENANT_ID, SCOPE).await;
    assert!(!ok.is_empty());
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", BLOG_CLIENT_ID),
        ("client_secret", "wrong-secret-value"),
        ("scope", SCOPE),
    ]);
    let (status, body, _) = send(&shared, &post(LOGIN, &token_path(), body)).await;
    assert_eq!(status, 401);
    assert_aad_error(&body, "invalid_client", 7_000_215);
    assert!(!body.to_string().contains("wrong-secret-value"));
    assert!(!body.to_string().contains(BLOG_CLIENT_SECRET));
}

#[tokio::test]
async fn request_errors_use_their_aadsts_codes() {
    let shared = blog();
    let cases: Vec<(String, bytes::Bytes, u16, &str, u32)> = vec![
        (
            "/00000000-0000-0000-0000-000000000000/oauth2/v2.0/token".into(),
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", BLOG_CLIENT_ID),
                ("client_secret", "x"),
                ("scope", SCOPE),
            ]),
            400,
            "invalid_request",
            90_002,
        ),
        (
            token_path(),
            form(&[
                ("grant_type", "client_credentials"),
                ("client_secret", "x"),
                ("scope", SCOPE),
            ]),
            400,
            "invalid_request",
            900_144,
        ),
        (
            token_path(),
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "11111111-2222-3333-4444-555555555555"),
                ("client_secret", "x"),
                ("scope", SCOPE),
            ]),
            400,
            "unauthorized_client",
            700_016,
        ),
        (
            token_path(),
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", BLOG_CLIENT_ID),
                ("client_secret", "x"),
                ("scope", "https://vault.azure.net"),
            ]),
            400,
            "invalid_scope",
            1_002_012,
        ),
        (
            token_path(),
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", BLOG_CLIENT_ID),
                ("client_secret", "x"),
                ("scope", "openid offline_access profile"),
            ]),
            400,
            "invalid_scope",
            1_002_012,
        ),
        (
            token_path(),
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", BLOG_CLIENT_ID),
                ("client_secret", "x"),
                ("scope", "https://management.azure.com/.default"),
            ]),
            400,
            "invalid_resource",
            500_011,
        ),
        (
            token_path(),
            form(&[
                ("grant_type", "password"),
                ("client_id", BLOG_CLIENT_ID),
                ("scope", SCOPE),
            ]),
            400,
            "unsupported_grant_type",
            70_003,
        ),
        (
            token_path(),
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", BLOG_CLIENT_ID),
                ("scope", SCOPE),
            ]),
            401,
            "invalid_client",
            7_000_218,
        ),
        (
            token_path(),
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", BLOG_CLIENT_ID),
                ("client_assertion", "a.b.c"),
                ("scope", SCOPE),
            ]),
            400,
            "invalid_request",
            900_144,
        ),
    ];
    for (path, body, status, error, code) in cases {
        let (got, json, _) = send(&shared, &post(LOGIN, &path, body)).await;
        assert_eq!(got, status, "{json}");
        assert_aad_error(&json, error, code);
    }
    let (status, body, _) = send(&shared, &get(LOGIN, &token_path(), "", None)).await;
    assert_eq!(status, 400);
    assert_aad_error(&body, "invalid_request", 900_561);
}

#[tokio::test]
async fn correlation_id_echoes_client_request_id() {
    let shared = blog();
    let mut req = post(
        LOGIN,
        &token_path(),
        form(&[("grant_type", "client_credentials")]),
    );
    let id = "0b1e55ed-0000-4000-8000-000000000001";
    req.headers.insert(
        "client-request-id",
        hyper::header::HeaderValue::from_static(id),
    );
    let (_, body, _) = send(&shared, &req).await;
    assert_eq!(body["correlation_id"], id);
}

#[tokio::test]
async fn openid_configuration_and_instance_discovery() {
    let shared = blog();
    let path = format!("/{BLOG_TENANT_ID}/v2.0/.well-known/openid-configuration");
    let (status, body, _) = send(&shared, &get(LOGIN, &path, "", None)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["token_endpoint"],
        format!("https://{LOGIN}/{BLOG_TENANT_ID}/oauth2/v2.0/token")
    );
    assert_eq!(
        body["issuer"],
        format!("https://{LOGIN}/{BLOG_TENANT_ID}/v2.0")
    );
    assert!(body["authorization_endpoint"].is_string());
    let (status, body, _) = send(
        &shared,
        &get(
            LOGIN,
            "/nope/v2.0/.well-known/openid-configuration",
            "",
            None,
        ),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_tenant");
    let query = format!(
        "api-version=1.1&authorization_endpoint=https://{LOGIN}/{BLOG_TENANT_ID}/oauth2/v2.0/authorize"
    );
    let (status, body, _) = send(
        &shared,
        &get(LOGIN, "/common/discovery/instance", &query, None),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["metadata"][0]["preferred_network"], LOGIN);
    assert_eq!(shared.counters().metadata_requests, 3);
}

#[tokio::test]
async fn throttling_and_server_errors_are_injected() {
    let shared = blog();
    shared
        .faults()
        .throttle(Target::Aad, Some(7), Limit::Count(1));
    shared.faults().fail_5xx(Target::Aad, 503, 1).expect("5xx");
    let req = post(LOGIN, &token_path(), assertion_form(&blog_assertion()));
    let (status, body, resp) = send(&shared, &req).await;
    assert_eq!(status, 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_aad_error(&body, "temporarily_unavailable", 90_055);
    let (status, _, _) = send(&shared, &req).await;
    assert_eq!(status, 503);
    let (status, _, _) = send(&shared, &req).await;
    assert_eq!(status, 200);
}

// === assertion signatures (oidc.rs) ===

fn blog_claims() -> serde_json::Value {
    let now = crate::ids::now_unix();
    json!({"iss": ISSUER, "sub": crate::BLOG_SUBJECT, "aud": [crate::BLOG_AUDIENCE],
        "exp": now + 600, "nbf": now, "iat": now})
}

async fn exchange(shared: &crate::fake::Shared, assertion: &str) -> (u16, serde_json::Value) {
    let (status, body, _) = send(
        shared,
        &post(LOGIN, &token_path(), assertion_form(assertion)),
    )
    .await;
    (status, body)
}

#[tokio::test]
async fn es256_and_rs256_assertions_signed_by_the_issuer_are_accepted() {
    let shared = blog();
    for key in crate::builtin_keys() {
        let (status, body) = exchange(&shared, &key.sign(&blog_claims())).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn a_forged_signature_is_refused_with_aadsts50013() {
    let shared = blog();
    // Same kid as the issuer's key, another private key.
    let forger = crate::SigningKey::rsa("fake-rs256");
    let (status, body) = exchange(&shared, &forger.sign(&blog_claims())).await;
    assert_eq!(status, 401);
    assert_aad_error(&body, "invalid_client", 50_013);
    // A valid signature over other claims: the payload was swapped.
    let good = crate::builtin_keys()[0].sign(&blog_claims());
    let mut other = blog_claims();
    other["exp"] = json!(crate::ids::now_unix() + 900);
    let other = crate::builtin_keys()[0].sign(&other);
    let parts: Vec<&str> = good.split('.').collect();
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        other.split('.').nth(1).unwrap_or(""),
        parts[2]
    );
    let (status, body) = exchange(&shared, &swapped).await;
    assert_eq!(status, 401);
    assert_aad_error(&body, "invalid_client", 50_013);
    let counters = shared.counters().clone();
    assert_eq!(
        counters.token_requests_with(grant::CLIENT_ASSERTION, "AADSTS50013"),
        2
    );
}

#[tokio::test]
async fn a_key_the_issuer_does_not_publish_is_refused_with_aadsts7000272() {
    let shared = blog();
    let stranger = crate::SigningKey::ec("not-published");
    let (status, body) = exchange(&shared, &stranger.sign(&blog_claims())).await;
    assert_eq!(status, 401);
    assert_aad_error(&body, "invalid_client", 7_000_272);
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.contains("not-published") && description.contains(ISSUER),
        "{description}"
    );
    // Published (rotation): accepted from then on; the old keys retired.
    shared
        .issuers()
        .set_jwks(ISSUER, json!({"keys": [stranger.jwk()]}));
    let (status, body) = exchange(&shared, &stranger.sign(&blog_claims())).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = exchange(&shared, &blog_assertion()).await;
    assert_eq!(status, 401);
    assert_aad_error(&body, "invalid_client", 7_000_272);
}

#[tokio::test]
async fn the_issuer_serves_its_discovery_document_and_jwks() {
    let shared = blog();
    shared.issuers().know(ISSUER);
    let host = "oidc.unit.test";
    let (status, doc, _) = send(
        &shared,
        &get(host, "/cluster/.well-known/openid-configuration", "", None),
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["issuer"], ISSUER);
    assert_eq!(
        doc["jwks_uri"],
        format!("https://{host}/cluster/openid/v1/jwks")
    );
    let (status, jwks, _) = send(&shared, &get(host, "/cluster/openid/v1/jwks", "", None)).await;
    assert_eq!(status, 200);
    assert_eq!(jwks, crate::builtin_jwks());
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2));
    shared.issuers().set_reachable(ISSUER, false);
    let (status, _, _) = send(&shared, &get(host, "/cluster/openid/v1/jwks", "", None)).await;
    assert_eq!(status, 503);
    let (status, _, _) = send(&shared, &get(host, "/elsewhere", "", None)).await;
    assert_eq!(status, 404);
}

/// Issue 18: MSAL (upstream's Go SDK) sends `<resource>/.default openid
/// offline_access profile` in a client-credentials grant; Entra ID issues
/// the resource's token and ignores the OpenID scopes. A second resource
/// is still refused.
#[test]
fn msal_reserved_scopes_beside_the_resource_are_ignored() {
    let msal = format!("{SCOPE} openid offline_access profile");
    assert_eq!(
        super::resource_of(&msal, BLOG_TENANT_ID).expect("accepted"),
        "https://vault.azure.net"
    );
    let two = format!("{SCOPE} https://vault.azure.cn/.default");
    let error = super::resource_of(&two, BLOG_TENANT_ID).expect_err("two resources");
    assert_eq!(error.code, 1_002_012);
    let only_oidc = super::resource_of("openid profile", BLOG_TENANT_ID).expect_err("no resource");
    assert_eq!(only_oidc.code, 1_002_012);
}
