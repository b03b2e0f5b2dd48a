//! Faithfulness test: the official Azure SDK for Rust (azure_identity,
//! azure_security_keyvault_secrets, _keys and _certificates), unmodified,
//! against the fake.
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

fn credential(
    fake: &FakeAzure,
) -> anyhow::Result<Arc<ClientAssertionCredential<ServiceAccountToken>>> {
    Ok(ClientAssertionCredential::new(
        BLOG_TENANT_ID.to_string(),
        BLOG_CLIENT_ID.to_string(),
        blog_identity(),
        Some(ClientAssertionCredentialOptions {
            client_options: client_options(fake)?,
        }),
    )?)
}

/// The official keys SDK reads the fake's JWK bundles and pages through
/// its version listing (`nextLink` with `$skiptoken`).
#[tokio::test]
async fn keys_sdk_reads_jwks_and_pages_versions() -> anyhow::Result<()> {
    use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
    use futures_util::TryStreamExt as _;

    let fake = start().await?;
    fake.set_list_page_size(2);
    let mut versions = Vec::new();
    for _ in 0..5 {
        versions.push(fake.add_key_version(
            BLOG_VAULT,
            fake_azure::KeySeed {
                name: "signing".into(),
                kty: "EC".into(),
                crv: Some("P-256".into()),
                x: Some("AQID".into()),
                y: Some("BAUG".into()),
                enabled: true,
                ..Default::default()
            },
        )?);
    }
    let options = KeyClientOptions {
        client_options: client_options(&fake)?,
        ..Default::default()
    };
    let client = KeyClient::new(
        &format!("https://{BLOG_VAULT}.vault.azure.net/"),
        credential(&fake)?,
        Some(options),
    )?;
    let key = client.get_key("signing", None).await?.into_model()?;
    let jwk = key.key.expect("key");
    assert!(jwk.kid.is_some_and(|kid| kid.ends_with(&versions[4])));
    assert_eq!(
        jwk.x.as_deref(),
        Some(&[1u8, 2, 3][..]),
        "base64url decoded"
    );
    assert_eq!(jwk.y.as_deref(), Some(&[4u8, 5, 6][..]));

    let mut listed: Vec<String> = client
        .list_key_properties_versions("signing", None)?
        .map_ok(|item| item.kid.unwrap_or_default())
        .try_collect()
        .await?;
    listed.sort();
    let mut want: Vec<String> = versions
        .iter()
        .map(|v| format!("https://{BLOG_VAULT}.vault.azure.net/keys/signing/{v}"))
        .collect();
    want.sort();
    assert_eq!(listed, want);
    assert_eq!(
        fake.counters()
            .keyvault_requests_with(BLOG_VAULT, fake_azure::op::LIST_KEY_VERSIONS, 200),
        3,
        "five versions in pages of two"
    );
    fake.shutdown().await;
    Ok(())
}

/// The official certificates SDK reads the fake's certificate bundles
/// (`cer` as bytes, `kid`, `sid`) and lists their versions.
#[tokio::test]
async fn certificates_sdk_reads_bundles() -> anyhow::Result<()> {
    use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
    use futures_util::TryStreamExt as _;

    let fake = start().await?;
    let version = fake.add_certificate_version(
        BLOG_VAULT,
        fake_azure::CertificateSeed {
            name: "tls".into(),
            cer: "MIIBAgM=".into(),
            secret_value: "-----BEGIN CERTIFICATE-----".into(),
            content_type: "application/x-pem-file".into(),
            key: None,
            enabled: true,
        },
    )?;
    let options = CertificateClientOptions {
        client_options: client_options(&fake)?,
        ..Default::default()
    };
    let client = CertificateClient::new(
        &format!("https://{BLOG_VAULT}.vault.azure.net/"),
        credential(&fake)?,
        Some(options),
    )?;
    let cert = client.get_certificate("tls", None).await?.into_model()?;
    assert_eq!(
        cert.cer.as_deref(),
        Some(&[0x30u8, 0x82, 0x01, 0x02, 0x03][..])
    );
    assert!(cert.id.is_some_and(|id| id.ends_with(&version)));
    assert!(
        cert.sid
            .is_some_and(|sid| sid.ends_with(&format!("/secrets/tls/{version}")))
    );
    let listed: Vec<String> = client
        .list_certificate_properties_versions("tls", None)?
        .map_ok(|item| item.id.unwrap_or_default())
        .try_collect()
        .await?;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].ends_with(&version));
    fake.shutdown().await;
    Ok(())
}
