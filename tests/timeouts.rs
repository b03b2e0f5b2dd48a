//! Time limits and the errors they give: `--request-timeout` names the
//! endpoint that did not answer (Entra ID, IMDS), `--mount-timeout` and the
//! driver's gRPC deadline name what the mount was still waiting for.

use std::time::Duration;

use fake_azure::Target;

use crate::support::driver::{self, Pod};
use crate::support::harness::Harness;
use crate::support::identities::*;

#[tokio::test]
async fn aad_timeout_names_the_token_endpoint() {
    let harness = Harness::start_with(all_granted(), &["--request-timeout=1s"]).await;
    harness
        .fake
        .set_latency(Target::Aad, Duration::from_secs(3));
    let message = message(harness.mount_with(&spc(&[]), &[wi_token(3600)], None).await);
    assert_contains(
        &message,
        &[
            &format!(
                "workload identity (tenant {TENANT}, client id {})",
                fake_azure::BLOG_CLIENT_ID
            ),
            &format!(
                "request to https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token timed out after 1s"
            ),
        ],
    );
}

#[tokio::test]
async fn imds_timeout_names_the_imds_endpoint() {
    let harness = Harness::start_with(all_granted(), &["--request-timeout=1s"]).await;
    harness
        .fake
        .set_vm_identities(Some(MI_SYSTEM), &[])
        .unwrap();
    harness
        .fake
        .set_latency(Target::Imds, Duration::from_secs(3));
    let spc = spc(&[("clientID", ""), ("useVMManagedIdentity", "true")]);
    let message = message(harness.mount_with(&spc, &[], None).await);
    assert_contains(
        &message,
        &[
            "VM managed identity (system-assigned)",
            &format!(
                "request to {}/metadata/identity/oauth2/token timed out after 1s",
                harness.fake.http_url()
            ),
        ],
    );
}

#[tokio::test]
async fn mount_timeout_names_what_was_awaited() {
    let harness = Harness::start_with(all_granted(), &["--mount-timeout=1s"]).await;
    harness
        .fake
        .set_latency(Target::Aad, Duration::from_secs(5));
    let started = std::time::Instant::now();
    let message = message(harness.mount_with(&spc(&[]), &[wi_token(3600)], None).await);
    assert_contains(
        &message,
        &[
            "the mount did not finish within 1s (--mount-timeout); still waiting for",
            &format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"),
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered at the budget"
    );
}

#[tokio::test]
async fn the_drivers_deadline_is_honoured_with_our_own_error() {
    let harness = Harness::start_with(all_granted(), &[]).await;
    harness
        .fake
        .set_latency(Target::KeyVault, Duration::from_secs(5));
    let attributes = driver::attributes(&spc(&[]), &Pod::blog(), &[wi_token(3600)]);
    let request = driver::mount_request(attributes, None, &Pod::blog());
    let result = harness
        .mount_with_deadline(request, Duration::from_millis(1500))
        .await;
    let message = message(result);
    assert_contains(
        &message,
        &[
            "(the driver's gRPC deadline, less a margin to answer in time); still waiting for",
            "https://kv-blogpost-jx01.vault.azure.net/secrets/MySecretPassword",
        ],
    );
}
