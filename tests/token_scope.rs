//! `--token-cache-scope=service-account`: pods of one service account
//! share one Entra ID token once the provider verified each pod's token
//! against the issuer's JWKS (served by the fake at the issuer's URL);
//! forged tokens, other service accounts and an unreachable issuer fall
//! back to per-credential caching and go to Entra ID themselves.
//!
//! Every assertion is on the fake's counters and on messages.

use fake_azure::{FederatedCredential, SigningKey, grant};
use serde_json::{Value, json};

use crate::support::driver::{self, Pod, ServiceAccountToken};
use crate::support::harness::{Harness, ISSUER};
use crate::support::identities::*;
use crate::support::pods::*;

const SCOPE_FLAG: &str = "--token-cache-scope=service-account";
const OTHER_SUBJECT: &str = "system:serviceaccount:blog-post:other-account";

/// The blog seed plus a federated credential for a second service account.
async fn start(args: &[&str]) -> Harness {
    let mut seed = seed_with_secrets(1);
    seed.apps[0]
        .federated_credentials
        .push(FederatedCredential {
            issuer: ISSUER.into(),
            subject: OTHER_SUBJECT.into(),
            audience: fake_azure::BLOG_AUDIENCE.into(),
        });
    Harness::start_with(seed, args).await
}

fn claims(i: usize, subject: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({"aud": [driver::WORKLOAD_IDENTITY_AUDIENCE], "exp": now + 3600, "iat": now,
        "nbf": now, "iss": ISSUER, "sub": subject,
        "kubernetes.io": {"namespace": "blog-post", "pod": {"name": format!("p{i}")}}})
}

/// Mounts pod `i` presenting `token`.
async fn mount(
    harness: &Harness,
    i: usize,
    token: String,
) -> Result<akv_csi_provider::proto::MountResponse, tonic::Status> {
    let pod = Pod {
        name: format!("blog-{i}"),
        uid: format!("00000000-0000-4000-8000-{i:012}"),
        ..Pod::blog()
    };
    let token = ServiceAccountToken {
        audience: driver::WORKLOAD_IDENTITY_AUDIENCE.into(),
        token,
        expiration: "2099-01-01T00:00:00Z".into(),
    };
    let attributes = driver::attributes(&spc_reading(&["s0"]), &pod, &[token]);
    harness
        .mount_raw(driver::mount_request(attributes, None, &pod))
        .await
}

fn signed(i: usize) -> String {
    fake_azure::mint_jwt(&claims(i, fake_azure::BLOG_SUBJECT))
}

fn refused(harness: &Harness, code: &str) -> u64 {
    harness
        .fake
        .counters()
        .token_requests_with(grant::CLIENT_ASSERTION, code)
}

#[tokio::test]
async fn pods_of_one_service_account_share_one_token_request() {
    let harness = start(&[SCOPE_FLAG]).await;
    for i in 0..5 {
        mount(&harness, i, signed(i)).await.expect("mount succeeds");
    }
    // ES256 tokens of the same service account share the entry too.
    let es256 = fake_azure::builtin_keys()[1].sign(&claims(9, fake_azure::BLOG_SUBJECT));
    mount(&harness, 9, es256).await.expect("mount succeeds");
    assert_eq!(harness.token_requests(), 1, "six pods, one exchange");
    assert_eq!(harness.gets(200), 6);
    // Another service account: one more request, then shared as well.
    for i in 10..13 {
        let token = fake_azure::mint_jwt(&claims(i, OTHER_SUBJECT));
        mount(&harness, i, token).await.expect("mount succeeds");
    }
    assert_eq!(harness.token_requests(), 2);
}

#[tokio::test]
async fn the_default_scope_still_exchanges_each_pods_token() {
    let harness = start(&[]).await;
    for i in 0..3 {
        mount(&harness, i, signed(i)).await.expect("mount succeeds");
    }
    assert_eq!(harness.token_requests(), 3);
}

#[tokio::test]
async fn a_forged_token_is_never_served_the_shared_token() {
    let harness = start(&[SCOPE_FLAG]).await;
    mount(&harness, 0, signed(0)).await.expect("mount succeeds");
    // The same claims and kid, signed with another key.
    let forger = SigningKey::rsa("fake-rs256");
    let forged = forger.sign(&claims(1, fake_azure::BLOG_SUBJECT));
    let message = error_message(mount(&harness, 1, forged).await);
    assert_contains(&message, &["AADSTS50013", "signature"]);
    assert_eq!(
        harness.token_requests(),
        2,
        "the forged token went to Entra ID"
    );
    assert_eq!(refused(&harness, "AADSTS50013"), 1);
    assert_eq!(harness.gets(200), 1, "no secret read for the forged token");
    // A token signed by a key the issuer does not publish: the same.
    let stranger = SigningKey::ec("stranger");
    let message = error_message(
        mount(
            &harness,
            2,
            stranger.sign(&claims(2, fake_azure::BLOG_SUBJECT)),
        )
        .await,
    );
    assert_contains(&message, &["AADSTS7000272"]);
    assert_eq!(harness.token_requests(), 3);
    // An expired token, validly signed: not verified, refused by Entra ID.
    let mut expired = claims(3, fake_azure::BLOG_SUBJECT);
    expired["exp"] = json!(1_000_000_000);
    expired["nbf"] = json!(999_999_000);
    let message = error_message(mount(&harness, 3, fake_azure::mint_jwt(&expired)).await);
    assert_contains(&message, &["AADSTS700024"]);
    assert_eq!(harness.token_requests(), 4);
    let logs = harness.logs();
    assert!(!logs.contains(&forger.sign(&claims(1, fake_azure::BLOG_SUBJECT))[..40]));
}

#[tokio::test]
async fn rotated_keys_are_fetched_on_an_unknown_kid() {
    let harness = start(&[SCOPE_FLAG]).await;
    mount(&harness, 0, signed(0)).await.expect("mount succeeds");
    // The issuer publishes a new key beside the old ones.
    let new = SigningKey::ec("rotated-2026");
    let mut keys = fake_azure::builtin_jwks();
    keys["keys"].as_array_mut().unwrap().push(new.jwk());
    harness.fake.set_issuer_jwks(ISSUER, keys);
    let token = new.sign(&claims(1, fake_azure::BLOG_SUBJECT));
    mount(&harness, 1, token).await.expect("mount succeeds");
    assert_eq!(
        harness.token_requests(),
        1,
        "the new key was fetched and the token verified: shared entry"
    );
}

#[tokio::test]
async fn an_unreachable_issuer_falls_back_to_per_credential_caching() {
    let harness = start(&[SCOPE_FLAG]).await;
    harness.fake.set_issuer_reachable(ISSUER, false);
    let tokens: Vec<String> = (0..3).map(signed).collect();
    for (i, token) in tokens.iter().enumerate() {
        mount(&harness, i, token.clone())
            .await
            .expect("mount succeeds");
    }
    assert_eq!(
        harness.token_requests(),
        3,
        "one exchange per pod, as without the flag"
    );
    // Still cached per credential: the same pod again is a hit.
    mount(&harness, 0, tokens[0].clone())
        .await
        .expect("mount succeeds");
    assert_eq!(harness.token_requests(), 3);
    assert_contains(
        &harness.logs(),
        &["cannot read the service-account issuer's keys", ISSUER],
    );
}
