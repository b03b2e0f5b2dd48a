//! A loopback-only, wire-faithful fake of Entra ID (AAD) and Azure Key Vault
//! for akv-csi-provider's tests, demo and benchmarks.
//!
//! One TCP port on 127.0.0.1 is an HTTPS proxy: clients keep the real Azure
//! host names (`login.microsoftonline.com`, `*.vault.azure.net`, sovereign
//! clouds too), send `CONNECT` to the fake, and trust the CA it generated.
//! Behind the tunnel the fake terminates TLS and speaks Entra ID's and Key
//! Vault's HTTP/JSON, errors included, so an unmodified Azure SDK works
//! against it. Plain HTTP on the same port serves a `/_fake/...` control
//! API (see `control.rs`).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use fake_azure::{FakeAzure, Seed, mint_service_account_token, BLOG_AUDIENCE};
//! let issuer = "https://oidc.example.test/cluster";
//! let fake = FakeAzure::start(Seed::blog_walkthrough(issuer)).await?;
//! let client = reqwest::Client::builder()
//!     .proxy(reqwest::Proxy::all(fake.proxy_url())?)
//!     .tls_certs_only([reqwest::Certificate::from_pem(fake.ca_pem().as_bytes())?])
//!     .build()?;
//! let assertion = mint_service_account_token(
//!     issuer, "blog-post", "kv-access-account", BLOG_AUDIENCE,
//!     std::time::Duration::from_secs(3600));
//! // POST https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token ...
//! # let _ = (client, assertion); Ok(()) }
//! ```
//!
//! Vaults hold secrets (plain and certificate-backed, in both content
//! types), keys (JWK) and certificates, each versioned and listable with
//! `nextLink` paging.
//!
//! Client assertions are checked like Entra ID checks them: claims, then
//! the signature against the issuer's JWKS (the fake's built-in keys, or
//! keys set per issuer); the fake also serves each issuer's discovery
//! document and JWKS at the issuer's URL.
//!
//! What the fake deliberately does not do: talk to anything but loopback,
//! or log secret values and tokens.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

mod aad;
mod cloud;
mod control;
mod counters;
mod fake;
mod faults;
mod ids;
mod jwt;
mod keyvault;
mod node;
mod oidc;
mod seed;
mod server;
mod state;
mod tls;
mod token_proxy;
mod wire;

pub use counters::{Counters, OUTCOME_OK, grant, op};
pub use fake::FakeAzure;
pub use faults::{
    FailSpec, FaultSpec, Limit, Target, ThrottleSpec, Transport, TransportKind, TransportSpec,
};
pub use jwt::{mint_jwt, mint_service_account_token};
pub use oidc::{SigningKey, builtin_jwks, builtin_keys};
pub use seed::{
    AppSeed, BLOG_AUDIENCE, BLOG_CLIENT_ID, BLOG_CLIENT_SECRET, BLOG_NAMESPACE, BLOG_SECRET_NAME,
    BLOG_SECRET_VALUE, BLOG_SERVICE_ACCOUNT, BLOG_SUBJECT, BLOG_TENANT_ID, BLOG_VAULT,
    CertificateSeed, FederatedCredential, IssuerSeed, KeySeed, SecretSeed, Seed, VaultSeed,
};
pub use state::Kind as ObjectKind;
pub use token_proxy::{CLUSTER_ID, server_name_for as identity_binding_server_name};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
