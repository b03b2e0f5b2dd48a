//! Helpers for the crate's unit tests: a [`Shared`] built from a seed, and
//! requests and responses as plain values, so handlers run without sockets.

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::Method;
use hyper::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use std::time::Duration;

use crate::fake::Shared;
use crate::ids::{self, IdGen};
use crate::seed::{BLOG_AUDIENCE, BLOG_NAMESPACE, BLOG_SERVICE_ACCOUNT, Seed};
use crate::server;
use crate::state::State;
use crate::wire::{Req, Resp};

/// Issuer used by the unit tests' blog seed.
pub(crate) const ISSUER: &str = "https://oidc.unit.test/cluster";

/// Public-cloud login host.
pub(crate) const LOGIN: &str = "login.microsoftonline.com";

/// Host of the blog vault.
pub(crate) const VAULT_HOST: &str = "kv-blogpost-jx01.vault.azure.net";

pub(crate) fn shared(seed: &Seed) -> Shared {
    let state = State::from_seed(seed, IdGen::with_seed(42), ids::now_unix()).expect("valid seed");
    Shared::new(state, "unused".to_string())
}

pub(crate) fn blog() -> Shared {
    shared(&Seed::blog_walkthrough(ISSUER))
}

/// A valid assertion for the blog app.
pub(crate) fn blog_assertion() -> String {
    crate::mint_service_account_token(
        ISSUER,
        BLOG_NAMESPACE,
        BLOG_SERVICE_ACCOUNT,
        BLOG_AUDIENCE,
        Duration::from_secs(600),
    )
}

pub(crate) fn form(pairs: &[(&str, &str)]) -> Bytes {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    Bytes::from(s.finish())
}

pub(crate) fn post(host: &str, path: &str, body: Bytes) -> Req {
    Req::new(Method::POST, host, path, "", HeaderMap::new(), body)
}

pub(crate) fn get(host: &str, path: &str, query: &str, bearer: Option<&str>) -> Req {
    let mut headers = HeaderMap::new();
    if let Some(Ok(v)) = bearer.map(|t| HeaderValue::from_str(&format!("Bearer {t}"))) {
        headers.insert("authorization", v);
    }
    Req::new(Method::GET, host, path, query, headers, Bytes::new())
}

/// Runs a request through routing, latency and faults.
pub(crate) async fn send(shared: &Shared, req: &Req) -> (u16, Value, Resp) {
    let resp = server::route_azure(shared, req).await;
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (
        status,
        json,
        hyper::Response::from_parts(parts, http_body_util::Full::new(bytes)),
    )
}

/// Gets a token for the blog app with its client secret, from the login
/// host of the scope's cloud.
pub(crate) async fn token(shared: &Shared, tenant: &str, scope: &str) -> String {
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", crate::BLOG_CLIENT_ID),
        ("client_secret", crate::BLOG_CLIENT_SECRET),
        ("scope", scope),
    ]);
    // Each cloud's Entra ID issues tokens for its own vaults only.
    let login = crate::cloud::CLOUDS
        .iter()
        .find(|c| scope.starts_with(c.vault_resource))
        .map_or(LOGIN, |c| c.login_host);
    let (status, json, _) = send(
        shared,
        &post(login, &format!("/{tenant}/oauth2/v2.0/token"), body),
    )
    .await;
    assert_eq!(status, 200, "token request failed: {json}");
    json["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}
