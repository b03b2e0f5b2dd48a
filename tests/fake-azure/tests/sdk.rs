//! Faithfulness test: the official Azure SDK for Rust (azure_identity +
//! azure_security_keyvault_secrets), unmodified, against the fake.
//!
//! The SDK does everything itself: the unauthenticated probe, parsing the
//! `WWW-Authenticate` challenge, the client-assertion token request and the
//! retried call, then error decoding. If these pass, the fake speaks
//! Entra ID's and Key Vault's wire format. The only seam is the transport:
//! a reqwest client with an explicit proxy and the fake's CA as its only
//! root (the process environment is never touched).

use std::sync::Arc;
use std::time::Duration;

use azure_core::cloud::CloudConfiguration;
use azure_core::error::ErrorKind;
use azure_core::http::{ClientMethodOptions, ClientOptions, Transport};
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions,
};
use azure_security_keyvault_secrets::models::SecretClientGetSecretOptions;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use fake_azure::{
    BLOG_AUDIENCE, BLOG_CLIENT_ID, BLOG_NAMESPACE, BLOG_SECRET_NAME, BLOG_SECRET_VALUE,
    BLOG_SERVICE_ACCOUNT, BLOG_TENANT_ID, BLOG_VAULT, FakeAzure, Seed, grant,
    mint_service_account_token,
};

const ISSUER: &str = "https://oidc.fake-azure.test/cluster-1";

/// Supplies a projected service-account token, as the provider will.
#[derive(Debug)]
struct ServiceAccountToken {
    namespace: &'static str,
    service_account: &'static str,
}

#[async_trait::async_trait]
impl ClientAssertion for ServiceAccountToken {
    async fn secret(
        &self,
        _options: Option<ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        Ok(mint_service_account_token(
            ISSUER,
            self.namespace,
            self.service_account,
            BLOG_AUDIENCE,
            Duration::from_secs(3600),
        ))
    }
}

fn client_options(fake: &FakeAzure) -> anyhow::Result<ClientOptions> {
    let http = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(fake.proxy_url())?)
        .tls_certs_only([reqwest::Certificate::from_pem(fake.ca_pem().as_bytes())?])
        .build()?;
    Ok(ClientOptions {
        transport: Some(Transport::new(Arc::new(http))),
        cloud: Some(Arc::new(CloudConfiguration::AzurePublic)),
        ..Default::default()
    })
}

fn secret_client(fake: &FakeAzure, assertion: ServiceAccountToken) -> anyhow::Result<SecretClient> {
    let credential = ClientAssertionCredential::new(
        BLOG_TENANT_ID.to_string(),
        BLOG_CLIENT_ID.to_string(),
        assertion,
        Some(ClientAssertionCredentialOptions {
            client_options: client_options(fake)?,
        }),
    )?;
    let options = SecretClientOptions {
        client_options: client_options(fake)?,
        ..Default::default()
    };
    Ok(SecretClient::new(
        &format!("https://{BLOG_VAULT}.vault.azure.net/"),
        credential,
        Some(options),
    )?)
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(" <- ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn blog_identity() -> ServiceAccountToken {
    ServiceAccountToken {
        namespace: BLOG_NAMESPACE,
        service_account: BLOG_SERVICE_ACCOUNT,
    }
}

async fn start() -> anyhow::Result<FakeAzure> {
    FakeAzure::start(Seed::blog_walkthrough(ISSUER)).await
}

#[tokio::test]
async fn gets_the_latest_secret_value() -> anyhow::Result<()> {
    let fake = start().await?;
    let client = secret_client(&fake, blog_identity())?;
    let secret = client
        .get_secret(BLOG_SECRET_NAME, None)
        .await?
        .into_model()?;
    assert_eq!(secret.value.as_deref(), Some(BLOG_SECRET_VALUE));
    let version = fake
        .secret_versions(BLOG_VAULT, BLOG_SECRET_NAME)?
        .remove(0);
    let expected_id =
        format!("https://{BLOG_VAULT}.vault.azure.net/secrets/{BLOG_SECRET_NAME}/{version}");
    assert_eq!(secret.id.as_deref(), Some(expected_id.as_str()));
    assert_eq!(secret.attributes.and_then(|a| a.enabled), Some(true));

    let counters = fake.counters();
    assert_eq!(
        counters.challenges, 1,
        "the SDK probes once without a token"
    );
    assert_eq!(
        counters.token_requests_with(grant::CLIENT_ASSERTION, fake_azure::OUTCOME_OK),
        1
    );
    fake.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn gets_an_older_version() -> anyhow::Result<()> {
    let fake = start().await?;
    let older = fake
        .secret_versions(BLOG_VAULT, BLOG_SECRET_NAME)?
        .remove(0);
    fake.set_secret(
        BLOG_VAULT,
        BLOG_SECRET_NAME,
        "rotated-value",
        Some("text/plain"),
    )?;
    let client = secret_client(&fake, blog_identity())?;

    let latest = client
        .get_secret(BLOG_SECRET_NAME, None)
        .await?
        .into_model()?;
    assert_eq!(latest.value.as_deref(), Some("rotated-value"));
    assert_eq!(latest.content_type.as_deref(), Some("text/plain"));

    let options = SecretClientGetSecretOptions {
        secret_version: Some(older.clone()),
        ..Default::default()
    };
    let old = client
        .get_secret(BLOG_SECRET_NAME, Some(options))
        .await?
        .into_model()?;
    assert_eq!(old.value.as_deref(), Some(BLOG_SECRET_VALUE));
    assert!(old.id.is_some_and(|id| id.ends_with(&older)));
    fake.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn missing_secret_surfaces_secret_not_found() -> anyhow::Result<()> {
    let fake = start().await?;
    let client = secret_client(&fake, blog_identity())?;
    let err = client
        .get_secret("DoesNotExist", None)
        .await
        .expect_err("must fail");
    match err.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => {
            assert_eq!(u16::from(*status), 404);
            assert_eq!(error_code.as_deref(), Some("SecretNotFound"));
        }
        other => panic!("unexpected error kind {other:?}: {err}"),
    }
    fake.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn wrong_subject_fails_with_aadsts70021() -> anyhow::Result<()> {
    let fake = start().await?;
    let wrong = ServiceAccountToken {
        namespace: "default",
        service_account: "intruder",
    };
    let client = secret_client(&fake, wrong)?;
    let err = client
        .get_secret(BLOG_SECRET_NAME, None)
        .await
        .expect_err("must fail");
    // The SDK wraps the credential error ("non-transport error ..."); the
    // Entra ID description is further down the source chain.
    let text = error_chain(&err);
    assert!(text.contains("AADSTS70021"), "{text}");
    assert!(
        text.contains("system:serviceaccount:default:intruder"),
        "{text}"
    );
    assert_eq!(
        fake.counters()
            .token_requests_with(grant::CLIENT_ASSERTION, "AADSTS70021"),
        1
    );
    fake.shutdown().await;
    Ok(())
}
