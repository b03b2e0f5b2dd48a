//! Unit tests of Key Vault: challenges, authorization, secret bundles and
//! paging, driven without sockets.

use serde_json::{Value, json};
use std::collections::BTreeSet;

use super::secrets::{MAX_RESULTS, decode_skiptoken, encode_skiptoken};
use crate::counters::op;
use crate::fake::Shared;
use crate::faults::{Limit, Target};
use crate::seed::{AppSeed, SecretSeed, Seed, VaultSeed};
use crate::testutil::*;
use crate::{BLOG_SECRET_NAME, BLOG_SECRET_VALUE, BLOG_TENANT_ID, BLOG_VAULT};

const API: &str = "api-version=7.4";
const SCOPE: &str = "https://vault.azure.net/.default";

fn secret_path() -> String {
    format!("/secrets/{BLOG_SECRET_NAME}")
}

async fn blog_token(shared: &Shared) -> String {
    token(shared, BLOG_TENANT_ID, SCOPE).await
}

fn set(shared: &Shared, value: &str) -> String {
    shared
        .state()
        .set_secret(
            BLOG_VAULT,
            &SecretSeed::new(BLOG_SECRET_NAME, value),
            crate::ids::now_unix(),
        )
        .expect("set")
}

#[tokio::test]
async fn unauthenticated_requests_get_the_challenge() {
    let shared = blog();
    let (status, body, resp) = send(&shared, &get(VAULT_HOST, &secret_path(), API, None)).await;
    assert_eq!(status, 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        format!("Bearer authorization=\"https://login.microsoftonline.com/{BLOG_TENANT_ID}\", resource=\"https://vault.azure.net\"")
            .as_str()
    );
    assert_eq!(
        body,
        json!({"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}})
    );
    let counters = shared.counters().clone();
    assert_eq!(counters.challenges, 1);
    assert_eq!(
        counters.keyvault_requests_with(BLOG_VAULT, op::GET_SECRET, 401),
        1
    );
}

#[tokio::test]
async fn sovereign_vaults_challenge_with_their_cloud() {
    let shared = blog();
    let host = format!("{BLOG_VAULT}.vault.usgovcloudapi.net");
    let (status, _, resp) = send(&shared, &get(&host, &secret_path(), API, None)).await;
    assert_eq!(status, 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        format!("Bearer authorization=\"https://login.microsoftonline.us/{BLOG_TENANT_ID}\", resource=\"https://vault.usgovcloudapi.net\"")
            .as_str()
    );
}

#[tokio::test]
async fn api_version_is_required() {
    let shared = blog();
    let (status, body, _) = send(&shared, &get(VAULT_HOST, &secret_path(), "", None)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "BadParameter");
}

#[tokio::test]
async fn gets_the_current_and_older_versions() {
    let shared = blog();
    let token = blog_token(&shared).await;
    let old = shared
        .state()
        .versions(BLOG_VAULT, BLOG_SECRET_NAME)
        .expect("versions")[0]
        .clone();
    let new = set(&shared, "second");
    for path in [secret_path(), format!("{}/", secret_path())] {
        let (status, body, _) = send(&shared, &get(VAULT_HOST, &path, API, Some(&token))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["value"], "second");
        assert_eq!(
            body["id"],
            format!("https://{VAULT_HOST}/secrets/{BLOG_SECRET_NAME}/{new}")
        );
    }
    let path = format!("{}/{old}", secret_path());
    let (status, body, _) = send(&shared, &get(VAULT_HOST, &path, API, Some(&token))).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], BLOG_SECRET_VALUE);
    assert_eq!(body["attributes"]["enabled"], true);
    assert_eq!(body["attributes"]["recoveryLevel"], "Recoverable+Purgeable");
    assert_eq!(body["attributes"]["recoverableDays"], 90);
    assert!(body["attributes"]["created"].is_i64());
    assert_eq!(body["tags"], json!({}));
    assert!(body.get("contentType").is_none() && body.get("kid").is_none());
    // Names are case-insensitive, as in Key Vault.
    let (status, _, _) = send(
        &shared,
        &get(VAULT_HOST, "/secrets/mysecretpassword", API, Some(&token)),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn certificate_backed_secrets_carry_kid_and_managed() {
    let shared = blog();
    let token = blog_token(&shared).await;
    let mut seed = SecretSeed::new("tls-cert", "-----BEGIN PRIVATE KEY-----");
    seed.content_type = Some("application/x-pem-file".into());
    seed.kid = true;
    let v = shared
        .state()
        .set_secret(BLOG_VAULT, &seed, 0)
        .expect("set");
    let (status, body, _) = send(
        &shared,
        &get(VAULT_HOST, "/secrets/tls-cert", API, Some(&token)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["kid"],
        format!("https://{VAULT_HOST}/keys/tls-cert/{v}")
    );
    assert_eq!(body["managed"], true);
    assert_eq!(body["contentType"], "application/x-pem-file");
}

#[tokio::test]
async fn missing_and_disabled_secrets() {
    let shared = blog();
    let token = blog_token(&shared).await;
    let (status, body, _) = send(
        &shared,
        &get(VAULT_HOST, "/secrets/nope", API, Some(&token)),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "SecretNotFound");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("A secret with (name/id) nope was not found in this key vault."));
    let missing_version = format!("{}/{}", secret_path(), "0".repeat(32));
    let (status, body, _) = send(
        &shared,
        &get(VAULT_HOST, &missing_version, API, Some(&token)),
    )
    .await;
    assert_eq!(status, 404);
    let expected = format!(
        "(name/id) {BLOG_SECRET_NAME}/{} was not found",
        "0".repeat(32)
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&expected)
    );

    let v = set(&shared, "disabled soon");
    shared
        .state()
        .set_version_enabled(BLOG_VAULT, BLOG_SECRET_NAME, &v, false, 0)
        .expect("disable");
    let (status, body, _) =
        send(&shared, &get(VAULT_HOST, &secret_path(), API, Some(&token))).await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        json!({"error": {"code": "Forbidden", "message": "Operation get is not allowed on a disabled secret.",
            "innererror": {"code": "SecretDisabled"}}})
    );
    let (status, _, _) = send(
        &shared,
        &get(VAULT_HOST, "/secrets/bad_name", API, Some(&token)),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn access_and_issuer_checks() {
    let mut seed = Seed::blog_walkthrough(ISSUER);
    seed.apps.push(AppSeed {
        client_id: "aaaaaaaa-0000-4000-8000-000000000001".into(),
        tenant_id: BLOG_TENANT_ID.into(),
        client_secret: Some("s1".into()),
        ..Default::default()
    });
    seed.vaults.push(VaultSeed {
        name: "kv-other-tenant".into(),
        tenant_id: "other-tenant".into(),
        ..Default::default()
    });
    let shared = shared(&seed);
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "aaaaaaaa-0000-4000-8000-000000000001"),
        ("client_secret", "s1"),
        ("scope", SCOPE),
    ]);
    let path = format!("/{BLOG_TENANT_ID}/oauth2/v2.0/token");
    let (_, json, _) = send(&shared, &post(LOGIN, &path, body)).await;
    let ungranted = json["access_token"].as_str().expect("token").to_string();
    let (status, body, _) = send(
        &shared,
        &get(VAULT_HOST, &secret_path(), API, Some(&ungranted)),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "Forbidden");
    assert_eq!(body["error"]["innererror"]["code"], "AccessDenied");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("'appid=aaaaaaaa-0000-4000-8000-000000000001;oid="),
        "{message}"
    );
    assert!(message.contains(&format!(
        "does not have secrets get permission on key vault '{BLOG_VAULT};location="
    )));

    let token = blog_token(&shared).await;
    let (status, body, resp) = send(
        &shared,
        &get(
            "kv-other-tenant.vault.azure.net",
            "/secrets/x",
            API,
            Some(&token),
        ),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("AKV10032: Invalid issuer.")
    );
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap_or_default()
            .contains("/other-tenant\"")
    );

    let gov = token_for(&shared, "https://vault.usgovcloudapi.net/.default").await;
    let (status, body, _) = send(&shared, &get(VAULT_HOST, &secret_path(), API, Some(&gov))).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("AKV10022: Invalid audience.")
    );

    shared.state().expire_tokens(crate::ids::now_unix());
    let (status, body, _) =
        send(&shared, &get(VAULT_HOST, &secret_path(), API, Some(&token))).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("TokenExpired")
    );
    let (status, _, _) = send(
        &shared,
        &get(VAULT_HOST, &secret_path(), API, Some("made-up")),
    )
    .await;
    assert_eq!(status, 401);
}

async fn token_for(shared: &Shared, scope: &str) -> String {
    token(shared, BLOG_TENANT_ID, scope).await
}

#[tokio::test]
async fn unsupported_operations_are_explicit() {
    let shared = blog();
    let token = blog_token(&shared).await;
    let (status, body, _) = send(&shared, &get(VAULT_HOST, "/keys", API, Some(&token))).await;
    assert_eq!(status, 405);
    assert_eq!(body["error"]["code"], "NotSupported");
    assert_eq!(
        shared
            .counters()
            .keyvault_requests_with(BLOG_VAULT, op::UNSUPPORTED, 405),
        1
    );
}

#[tokio::test]
async fn unknown_hosts_and_vaults() {
    let shared = blog();
    let (status, body, _) = send(&shared, &get("example.com", "/", "", None)).await;
    assert_eq!(status, 404);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("example.com")
    );
    let (status, body, _) = send(
        &shared,
        &get("kv-missing.vault.azure.net", "/secrets/x", API, None),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "VaultNotFound");
}

async fn list(shared: &Shared, token: &str, url_or_query: &str) -> (u16, Value) {
    let (path, query) = match url_or_query.strip_prefix("https://") {
        Some(rest) => {
            let (host_path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let path = &host_path[host_path.find('/').unwrap_or(0)..];
            (path.to_string(), query.to_string())
        }
        None => (
            format!("{}/versions", secret_path()),
            url_or_query.to_string(),
        ),
    };
    let (status, body, _) = send(shared, &get(VAULT_HOST, &path, &query, Some(token))).await;
    (status, body)
}

#[tokio::test]
async fn versions_page_with_next_links() {
    let shared = blog();
    let token = blog_token(&shared).await;
    for i in 0..30 {
        set(&shared, &format!("v{i}"));
    }
    let all: BTreeSet<String> = shared
        .state()
        .versions(BLOG_VAULT, BLOG_SECRET_NAME)
        .expect("v")
        .into_iter()
        .collect();
    assert_eq!(all.len(), 31);

    let (status, first) = list(&shared, &token, API).await;
    assert_eq!(status, 200);
    assert_eq!(first["value"].as_array().map(Vec::len), Some(MAX_RESULTS));
    let next = first["nextLink"].as_str().expect("nextLink").to_string();
    assert!(next.starts_with(&format!(
        "https://{VAULT_HOST}:443/secrets/{BLOG_SECRET_NAME}/versions?api-version=7.4&$skiptoken="
    )));
    let (status, second) = list(&shared, &token, &next).await;
    assert_eq!(status, 200);
    assert_eq!(second["value"].as_array().map(Vec::len), Some(6));
    assert_eq!(second["nextLink"], Value::Null);

    let mut seen = BTreeSet::new();
    for item in first["value"]
        .as_array()
        .into_iter()
        .chain(second["value"].as_array())
        .flatten()
    {
        let id = item["id"].as_str().unwrap_or_default();
        let version = id.rsplit('/').next().unwrap_or_default();
        assert_eq!(version.len(), 32);
        assert!(item.get("value").is_none());
        assert!(item["attributes"]["created"].is_i64());
        seen.insert(version.to_string());
    }
    assert_eq!(seen, all);

    let (_, small) = list(&shared, &token, &format!("{API}&maxresults=10")).await;
    assert_eq!(small["value"].as_array().map(Vec::len), Some(10));
    assert!(
        small["nextLink"]
            .as_str()
            .unwrap_or_default()
            .ends_with("&maxresults=10")
    );
    for bad in [
        "maxresults=0",
        "maxresults=26",
        "maxresults=x",
        "$skiptoken=%%%",
    ] {
        let (status, body) = list(&shared, &token, &format!("{API}&{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "BadParameter");
    }
    assert_eq!(
        shared
            .counters()
            .keyvault_requests_with(BLOG_VAULT, op::LIST_SECRET_VERSIONS, 200),
        3
    );
}

#[test]
fn skiptokens_round_trip() {
    assert_eq!(decode_skiptoken(&encode_skiptoken(25)), Some(25));
    assert_eq!(decode_skiptoken("garbage"), None);
}

#[tokio::test]
async fn throttling_carries_retry_after() {
    let shared = blog();
    shared
        .faults()
        .throttle(Target::KeyVault, Some(3), Limit::Count(1));
    let (status, body, resp) = send(&shared, &get(VAULT_HOST, &secret_path(), API, None)).await;
    assert_eq!(status, 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    assert_eq!(body["error"]["code"], "Throttled");
    let (status, _, _) = send(&shared, &get(VAULT_HOST, &secret_path(), API, None)).await;
    assert_eq!(status, 401);
}

#[test]
fn routes_secret_paths() {
    use super::KvRoute;
    use super::secrets::Route;
    let get = hyper::Method::GET;
    assert_eq!(
        KvRoute::parse(&get, &["secrets", "a"]),
        KvRoute::Secrets(Route::Get {
            name: "a",
            version: None
        })
    );
    assert_eq!(
        KvRoute::parse(&get, &["secrets", "a", "v1"]),
        KvRoute::Secrets(Route::Get {
            name: "a",
            version: Some("v1")
        })
    );
    assert_eq!(
        KvRoute::parse(&get, &["secrets", "a", "versions"]),
        KvRoute::Secrets(Route::Versions { name: "a" })
    );
    assert_eq!(KvRoute::parse(&get, &["secrets"]), KvRoute::Unsupported);
    assert_eq!(
        KvRoute::parse(&get, &["certificates", "c"]),
        KvRoute::KeysOrCertificates(super::objects::Route::Get {
            kind: crate::state::Kind::Certificates,
            name: "c",
            version: None
        })
    );
    assert_eq!(
        KvRoute::parse(&get, &["keys", "k", "versions"]),
        KvRoute::KeysOrCertificates(super::objects::Route::Versions {
            kind: crate::state::Kind::Keys,
            name: "k"
        })
    );
    assert_eq!(KvRoute::parse(&get, &["keys"]), KvRoute::Unsupported);
    assert_eq!(
        KvRoute::parse(&hyper::Method::PUT, &["secrets", "a"]),
        KvRoute::Unsupported
    );
}

fn rsa_key(name: &str) -> crate::seed::KeySeed {
    crate::seed::KeySeed {
        name: name.into(),
        kty: "RSA-HSM".into(),
        n: Some("xjlCRBqkOfRHo1Gr".into()),
        e: Some("AQAB".into()),
        enabled: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn keys_answer_jwk_bundles_and_page_their_versions() {
    let shared = blog();
    let token = blog_token(&shared).await;
    let mut versions = Vec::new();
    for _ in 0..5 {
        versions.push(
            shared
                .state()
                .add_key(BLOG_VAULT, &rsa_key("signing"), crate::ids::now_unix())
                .expect("add key"),
        );
    }
    let (status, body, _) = send(
        &shared,
        &get(VAULT_HOST, "/keys/signing", API, Some(&token)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["key"]["kid"],
        format!("https://{VAULT_HOST}/keys/signing/{}", versions[4])
    );
    assert_eq!(body["key"]["kty"], "RSA-HSM");
    assert_eq!(body["key"]["n"], "xjlCRBqkOfRHo1Gr");
    assert_eq!(body["key"]["e"], "AQAB");
    assert!(body["key"].get("crv").is_none());
    assert_eq!(body["attributes"]["enabled"], true);

    shared.state().set_page_size(2);
    let mut listed = BTreeSet::new();
    let mut path_and_query = ("/keys/signing/versions".to_string(), API.to_string());
    for page in 0.. {
        let (status, body, _) = send(
            &shared,
            &get(
                VAULT_HOST,
                &path_and_query.0,
                &path_and_query.1,
                Some(&token),
            ),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let items = body["value"].as_array().expect("value");
        assert!(items.len() <= 2);
        for item in items {
            let kid = item["kid"].as_str().expect("kid");
            listed.insert(kid.rsplit('/').next().unwrap_or_default().to_string());
            assert!(item["attributes"]["created"].is_i64());
        }
        let Some(next) = body["nextLink"].as_str() else {
            assert_eq!(page, 2, "5 versions in pages of 2");
            break;
        };
        let rest = next
            .strip_prefix(&format!("https://{VAULT_HOST}:443"))
            .expect("next link on the vault");
        let (path, query) = rest.split_once('?').expect("query");
        path_and_query = (path.to_string(), query.to_string());
    }
    assert_eq!(listed, versions.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(
        shared
            .counters()
            .keyvault_requests_with(BLOG_VAULT, op::LIST_KEY_VERSIONS, 200),
        3
    );

    shared
        .state()
        .set_object_version_enabled(
            BLOG_VAULT,
            crate::state::Kind::Keys,
            "signing",
            &versions[4],
            false,
            0,
        )
        .expect("disable");
    let (status, body, _) = send(
        &shared,
        &get(VAULT_HOST, "/keys/signing", API, Some(&token)),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["innererror"]["code"], "KeyDisabled");
    let (status, body, _) = send(&shared, &get(VAULT_HOST, "/keys/nope", API, Some(&token))).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "KeyNotFound");
}

#[tokio::test]
async fn certificates_share_their_version_with_secret_and_key() {
    let shared = blog();
    let token = blog_token(&shared).await;
    let seed = crate::seed::CertificateSeed {
        name: "tls".into(),
        cer: "MIIBfake".into(),
        secret_value: "TUlJS2Zha2U=".into(),
        content_type: "application/x-pkcs12".into(),
        key: Some(rsa_key("ignored")),
        enabled: true,
    };
    let v = shared
        .state()
        .add_certificate(BLOG_VAULT, &seed, crate::ids::now_unix())
        .expect("add certificate");
    let (status, cert, _) = send(
        &shared,
        &get(VAULT_HOST, "/certificates/tls", API, Some(&token)),
    )
    .await;
    assert_eq!(status, 200, "{cert}");
    assert_eq!(
        cert["id"],
        format!("https://{VAULT_HOST}/certificates/tls/{v}")
    );
    assert_eq!(cert["kid"], format!("https://{VAULT_HOST}/keys/tls/{v}"));
    assert_eq!(cert["sid"], format!("https://{VAULT_HOST}/secrets/tls/{v}"));
    assert_eq!(cert["cer"], "MIIBfake");
    let (status, secret, _) =
        send(&shared, &get(VAULT_HOST, "/secrets/tls", API, Some(&token))).await;
    assert_eq!(status, 200);
    assert_eq!(secret["id"], cert["sid"]);
    assert_eq!(secret["kid"], cert["kid"]);
    assert_eq!(secret["contentType"], "application/x-pkcs12");
    assert_eq!(secret["value"], "TUlJS2Zha2U=");
    let (status, key, _) = send(&shared, &get(VAULT_HOST, "/keys/tls", API, Some(&token))).await;
    assert_eq!(status, 200);
    assert_eq!(key["key"]["kid"], cert["kid"]);
    assert_eq!(key["managed"], true);

    let (status, list, _) = send(
        &shared,
        &get(VAULT_HOST, "/certificates/tls/versions", API, Some(&token)),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["value"][0]["id"], cert["id"]);
    assert!(list["nextLink"].is_null());

    shared
        .state()
        .set_object_version_enabled(
            BLOG_VAULT,
            crate::state::Kind::Certificates,
            "tls",
            &v,
            false,
            0,
        )
        .expect("disable");
    for path in ["/certificates/tls", "/secrets/tls", "/keys/tls"] {
        let (status, _, _) = send(&shared, &get(VAULT_HOST, path, API, Some(&token))).await;
        assert_eq!(status, 403, "{path} follows the certificate");
    }
    let (status, body, _) = send(
        &shared,
        &get(VAULT_HOST, "/certificates/none", API, Some(&token)),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "CertificateNotFound");
}
