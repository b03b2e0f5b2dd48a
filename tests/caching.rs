//! What the provider keeps between mounts, counted with the fake's
//! counters: the token cache (per identity and service-account token,
//! never past the token's expiry, dropped when Key Vault rejects a token),
//! single-flight of identical token requests and Key Vault reads (never
//! across identities), and the value cache (`--cache-ttl`), which serves
//! only mounts that obtained their own token.
//!
//! Latency is injected only to make requests overlap; every assertion is on
//! counts and messages, not on durations.

use std::time::Duration;

use fake_azure::{SecretSeed, Target, grant};

use crate::support::driver::{self, ServiceAccountToken};
use crate::support::harness::{Harness, ISSUER};
use crate::support::identities::*;
use crate::support::pods::*;

const VAULT: &str = fake_azure::BLOG_VAULT;

// === the token cache ===

#[tokio::test]
async fn workload_identity_second_mount_with_the_same_token_makes_no_token_request() {
    let harness = Harness::start().await;
    let token = wi_token(3600);
    let spc = spc(&[]);
    for _ in 0..3 {
        let response = harness
            .mount_with(&spc, std::slice::from_ref(&token), None)
            .await
            .expect("mount succeeds");
        assert_blog_secret(&response);
    }
    let counters = harness.fake.counters();
    assert_eq!(
        counters.token_requests_total(),
        1,
        "three mounts, one token exchange: {counters:?}"
    );
    assert_eq!(counters.keyvault_requests_total(), 3);

    // Another token (another pod, or a refreshed one): exactly one request.
    let other = wi_token(3599);
    assert_ne!(other.token, token.token);
    harness
        .mount_with(&spc, std::slice::from_ref(&other), None)
        .await
        .expect("mount succeeds");
    harness
        .mount_with(&spc, std::slice::from_ref(&other), None)
        .await
        .expect("mount succeeds");
    assert_eq!(harness.token_requests(), 2);
}

#[tokio::test]
async fn a_token_key_vault_rejects_is_not_served_again() {
    let harness = Harness::start().await;
    let token = wi_token(3600);
    let spc = spc(&[]);
    harness
        .mount_with(&spc, std::slice::from_ref(&token), None)
        .await
        .expect("mount succeeds");
    // Revoked or expired early: Key Vault answers 401 to the cached token.
    harness.fake.expire_tokens();
    let message = message(
        harness
            .mount_with(&spc, std::slice::from_ref(&token), None)
            .await,
    );
    assert_contains(&message, &["answered 401 Unauthorized"]);
    assert_eq!(harness.token_requests(), 1);
    // The entry is gone: the next mount (kubelet retries) gets a new token.
    harness
        .mount_with(&spc, std::slice::from_ref(&token), None)
        .await
        .expect("mount succeeds with a fresh token");
    assert_eq!(harness.token_requests(), 2);
}

#[tokio::test]
async fn service_principal_is_cached_per_secret() {
    let harness = Harness::start().await;
    let spc = spc(&[("clientID", "")]);
    let good = sp_secrets(fake_azure::BLOG_CLIENT_SECRET);
    for _ in 0..2 {
        assert_blog_secret(
            &harness
                .mount_with(&spc, &[], Some(&good))
                .await
                .expect("mount succeeds"),
        );
    }
    assert_eq!(
        harness
            .fake
            .counters()
            .token_requests_with(grant::CLIENT_SECRET, fake_azure::OUTCOME_OK),
        1
    );
    // A wrong secret for the same client id is a different key: it is sent
    // (and rejected), never answered from the cache.
    let bad = sp_secrets("not-the-secret");
    let message = message(harness.mount_with(&spc, &[], Some(&bad)).await);
    assert_contains(
        &message,
        &[
            "service principal",
            "AADSTS7000215",
            TENANT,
            fake_azure::BLOG_CLIENT_ID,
            &format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"),
        ],
    );
    assert_eq!(harness.token_requests(), 2);
}

#[tokio::test]
async fn cache_entries_never_outlive_the_service_account_token() {
    let harness = Harness::start().await;
    let spc = spc(&[]);
    // An assertion whose `exp` has just passed: Entra ID still accepts it
    // (clock skew), but a token obtained with it is never reused.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = fake_azure::mint_jwt(&serde_json::json!({
        "iss": ISSUER,
        "sub": fake_azure::BLOG_SUBJECT,
        "aud": [driver::WORKLOAD_IDENTITY_AUDIENCE],
        "iat": now - 600,
        "nbf": now - 600,
        "exp": now - 5,
    }));
    let token = ServiceAccountToken {
        audience: driver::WORKLOAD_IDENTITY_AUDIENCE.into(),
        token: expired,
        expiration: "2099-01-01T00:00:00Z".into(),
    };
    for _ in 0..2 {
        harness
            .mount_with(&spc, std::slice::from_ref(&token), None)
            .await
            .expect("mount succeeds");
    }
    assert_eq!(
        harness.token_requests(),
        2,
        "not cached past the SA token's exp"
    );

    // A Key Vault token that lives less than the refresh margin is not
    // kept either.
    harness.fake.set_token_lifetime(Duration::from_secs(200));
    let short = wi_token(3598);
    for _ in 0..2 {
        harness
            .mount_with(&spc, std::slice::from_ref(&short), None)
            .await
            .expect("mount succeeds");
    }
    assert_eq!(harness.token_requests(), 4);
}

// === single flight ===

#[tokio::test]
async fn concurrent_identical_mounts_make_one_token_request() {
    let harness = Harness::start().await;
    harness
        .fake
        .set_latency(Target::Aad, Duration::from_millis(400));
    let token = wi_token(3600);
    let spc = spc(&[]);
    let mounts = (0..12).map(|_| harness.mount_with(&spc, std::slice::from_ref(&token), None));
    let results = futures_util::future::join_all(mounts).await;
    for result in results {
        assert_blog_secret(&result.expect("mount succeeds"));
    }
    let counters = harness.fake.counters();
    assert_eq!(counters.token_requests_total(), 1, "{counters:?}");
    // One token, so one identity: the twelve reads coalesce (see
    // `identical_concurrent_reads_of_one_identity_make_one_request` below).
    assert!(counters.keyvault_requests_total() < 12, "{counters:?}");
}

#[tokio::test]
async fn identical_concurrent_reads_of_one_identity_make_one_request() {
    let harness = start_with_secrets(0, &[]).await;
    // Long enough that every mount's read starts while the first is in flight.
    harness
        .fake
        .set_latency(Target::KeyVault, Duration::from_millis(1500));
    let spc = spc_reading(&[SECRET]);
    let mounts = (0..20).map(|i| harness.mount_pod(&spc, i));
    for result in futures_util::future::join_all(mounts).await {
        let response = result.expect("mount succeeds");
        assert_eq!(file_text(&response, SECRET), fake_azure::BLOG_SECRET_VALUE);
    }
    let counters = harness.fake.counters();
    assert_eq!(counters.tokens_issued(), 20, "one token per pod");
    assert_eq!(harness.gets(200), 1, "{counters:?}");
    assert_eq!(harness.metric("akv_coalesced_reads_total").await, 19.0);
}

#[tokio::test]
async fn reads_are_never_shared_across_identities() {
    let harness = start_with_secrets(0, &[]).await;
    harness
        .fake
        .set_latency(Target::KeyVault, Duration::from_millis(1500));
    let wi = spc_reading(&[SECRET]);
    let vm1 = vm_spc_reading(&[SECRET], VM_USER_1);
    let vm2 = vm_spc_reading(&[SECRET], VM_USER_2);
    let mut mounts = Vec::new();
    for i in 0..3 {
        mounts.push(harness.mount_pod(&wi, i));
        mounts.push(harness.mount_pod(&vm1, 10 + i));
        mounts.push(harness.mount_pod(&vm2, 20 + i));
    }
    for result in futures_util::future::join_all(mounts).await {
        result.expect("mount succeeds");
    }
    assert_eq!(
        harness.gets(200),
        3,
        "one read per identity: {:?}",
        harness.fake.counters()
    );
}

// === the value cache ===

#[tokio::test]
async fn the_value_cache_serves_the_same_identity_only() {
    let harness = start_with_secrets(0, &["--cache-ttl=30s"]).await;
    let spc = spc_reading(&[SECRET]);
    for i in 0..3 {
        harness.mount_pod(&spc, i).await.expect("mount succeeds");
    }
    assert_eq!(
        harness.gets(200),
        1,
        "pods of one identity share the answer"
    );
    harness
        .mount_pod(&vm_spc_reading(&[SECRET], VM_USER_1), 10)
        .await
        .expect("mount succeeds");
    assert_eq!(harness.gets(200), 2, "another identity reads for itself");
}

#[tokio::test]
async fn a_mount_whose_own_token_request_fails_gets_nothing_from_the_cache() {
    let harness = start_with_secrets(0, &["--cache-ttl=30s"]).await;
    let spc = spc_reading(&[SECRET]);
    harness.mount_pod(&spc, 0).await.expect("mount succeeds");
    // The same identity, but a token Entra ID rejects (wrong issuer).
    let (pod, _) = pod_with_token(1);
    let forged = ServiceAccountToken {
        audience: driver::WORKLOAD_IDENTITY_AUDIENCE.into(),
        token: fake_azure::mint_service_account_token(
            "https://oidc.other-cluster.test/issuer",
            &pod.namespace,
            &pod.service_account,
            driver::WORKLOAD_IDENTITY_AUDIENCE,
            Duration::from_secs(3600),
        ),
        expiration: "2099-01-01T00:00:00Z".into(),
    };
    let attributes = driver::attributes(&spc, &pod, &[forged]);
    let message = error_message(
        harness
            .mount_raw(driver::mount_request(attributes, None, &pod))
            .await,
    );
    assert!(
        message.contains("failed to get a Key Vault token for workload identity"),
        "{message}"
    );
    assert_eq!(harness.gets(200), 1, "no Key Vault read, cached or not");
}

#[tokio::test]
async fn a_rotated_secret_is_served_once_the_cache_entry_expires() {
    let harness = start_with_secrets(0, &["--cache-ttl=1s"]).await;
    let spc = spc_reading(&[SECRET]);
    let before = harness.mount_pod(&spc, 0).await.expect("mount");
    assert_eq!(file_text(&before, SECRET), fake_azure::BLOG_SECRET_VALUE);
    harness
        .fake
        .add_secret_version(VAULT, SecretSeed::new(SECRET, "rotated"))
        .unwrap();
    // The documented trade-off: up to --cache-ttl of staleness.
    let stale = harness.mount_pod(&spc, 1).await.expect("mount");
    assert_eq!(file_text(&stale, SECRET), fake_azure::BLOG_SECRET_VALUE);
    assert_eq!(harness.gets(200), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let after = harness.mount_pod(&spc, 2).await.expect("mount");
    assert_eq!(file_text(&after, SECRET), "rotated");
    assert_eq!(harness.gets(200), 2);
}
