//! The node-local token endpoints, served as plain HTTP like the real ones:
//! the instance metadata service (IMDS, VM managed identity) and
//! aad-pod-identity's NMI (pod identity).
//!
//! * `GET /metadata/identity/oauth2/token?api-version=…&resource=…[&client_id=…]`
//!   with `Metadata: true` → IMDS's token JSON (all values are strings), or
//!   IMDS's `{"error","error_description"}` (`Identity not found`, multiple
//!   user-assigned identities, a missing header or parameter).
//! * `GET /host/token/?resource=…` with headers `podname` and `podns` →
//!   `{"token": {…}, "clientid": "…"}`, or NMI's plain-text errors.
//!
//! Which identities exist is state ([`State::node`], pod bindings); both
//! endpoints issue ordinary fake access tokens that Key Vault accepts.
//! Tokens never appear in logs or error bodies.

use hyper::Method;
use serde_json::{Value, json};

use crate::cloud;
use crate::counters::{OUTCOME_OK, grant};
use crate::fake::Shared;
use crate::faults::Injected;
use crate::ids;
use crate::state::{State, TokenGrant};
use crate::wire::{self, Req, Resp};

/// An IMDS error before it is rendered.
struct ImdsError {
    status: u16,
    error: &'static str,
    description: String,
}

impl ImdsError {
    fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
        }
    }
}

/// `GET /metadata/identity/oauth2/token`.
pub(crate) fn imds(shared: &Shared, req: &Req, fault: Option<Injected>) -> Resp {
    let result = match fault {
        Some(Injected::Throttled { .. }) => Err(ImdsError::new(
            429,
            "too_many_requests",
            "Too many requests. Please retry later.",
        )),
        Some(Injected::EchoCredential) => Err(ImdsError::new(
            500,
            "unknown_error",
            "fake-azure: IMDS has no credential to echo",
        )),
        Some(Injected::ServerError(status)) => Err(ImdsError::new(
            status,
            "unknown_error",
            "An unexpected error occurred while fetching the AAD token.",
        )),
        None => imds_token(&mut shared.state(), req),
    };
    let (outcome, resp) = match result {
        Ok(body) => (OUTCOME_OK.to_string(), wire::json(200, &body)),
        Err(e) => (
            e.status.to_string(),
            wire::json(
                e.status,
                &json!({"error": e.error, "error_description": e.description}),
            ),
        ),
    };
    shared
        .counters()
        .token_request(grant::MANAGED_IDENTITY, &outcome);
    resp
}

fn imds_token(state: &mut State, req: &Req) -> Result<Value, ImdsError> {
    if req.method != Method::GET {
        return Err(ImdsError::new(
            405,
            "invalid_request",
            format!("The request method {} is not supported.", req.method),
        ));
    }
    if !req
        .header("metadata")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Err(ImdsError::new(
            400,
            "invalid_request",
            "Required metadata header not specified",
        ));
    }
    if req.query("api-version").is_none_or(str::is_empty) {
        return Err(ImdsError::new(
            400,
            "invalid_request",
            "Required query variable 'api-version' is missing",
        ));
    }
    let resource = match req.query("resource") {
        Some(r) if !r.is_empty() => r.trim_end_matches('/').to_string(),
        _ => {
            return Err(ImdsError::new(
                400,
                "invalid_request",
                "Required query variable 'resource' is missing",
            ));
        }
    };
    let client_id = select_node_identity(state, req.query("client_id"))?;
    let tenant = state.app(&client_id).map(|a| a.tenant_id.clone());
    let Some(tenant) = tenant else {
        return Err(ImdsError::new(400, "invalid_request", "Identity not found"));
    };
    if !cloud::is_vault_resource(&resource) {
        let e = crate::aad::resource_not_found(&resource, &tenant);
        return Err(ImdsError::new(
            400,
            "invalid_resource",
            format!("AADSTS{}: {}", e.code, e.description),
        ));
    }
    let (token, now, lifetime) = issue(state, &tenant, &client_id, &resource);
    Ok(json!({
        "access_token": token,
        "client_id": client_id,
        "expires_in": lifetime.to_string(),
        "expires_on": (now + lifetime).to_string(),
        "ext_expires_in": lifetime.to_string(),
        "not_before": now.to_string(),
        "resource": resource,
        "token_type": "Bearer",
    }))
}

/// The identity IMDS answers for: the requested user-assigned one, else the
/// system-assigned one, else the only user-assigned one.
fn select_node_identity(state: &State, requested: Option<&str>) -> Result<String, ImdsError> {
    let node = state.node();
    // An empty `client_id=` names no identity: IMDS does not fall back to
    // the system-assigned one (upstream's bug #2021 sent exactly that).
    if let Some(id) = requested {
        let id = id.to_ascii_lowercase();
        return if node.user_assigned.contains(&id) || node.system_assigned.as_ref() == Some(&id) {
            Ok(id)
        } else {
            Err(ImdsError::new(400, "invalid_request", "Identity not found"))
        };
    }
    if let Some(system) = &node.system_assigned {
        return Ok(system.clone());
    }
    match node.user_assigned.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(ImdsError::new(400, "invalid_request", "Identity not found")),
        _ => Err(ImdsError::new(
            400,
            "invalid_request",
            "Multiple user assigned identities exist, please specify the clientId / resourceId of \
             the identity in the token request",
        )),
    }
}

/// `GET /host/token/` (NMI).
pub(crate) fn nmi(shared: &Shared, req: &Req, fault: Option<Injected>) -> Resp {
    let result = match fault {
        Some(Injected::Throttled { .. }) => Err((429, "too many requests".to_string())),
        Some(Injected::EchoCredential) => {
            Err((500, "fake-azure: NMI has no credential to echo".to_string()))
        }
        Some(Injected::ServerError(status)) => {
            Err((status, "failed to get service principal token".to_string()))
        }
        None => nmi_token(&mut shared.state(), req),
    };
    let (outcome, resp) = match result {
        Ok(body) => (OUTCOME_OK.to_string(), wire::json(200, &body)),
        // NMI answers with Go's http.Error: plain text and a newline.
        Err((status, text)) => (
            status.to_string(),
            wire::text(status, format!("{text}\n"), "text/plain; charset=utf-8"),
        ),
    };
    shared
        .counters()
        .token_request(grant::POD_IDENTITY, &outcome);
    resp
}

fn nmi_token(state: &mut State, req: &Req) -> Result<Value, (u16, String)> {
    let podns = req.header("podns").unwrap_or_default();
    let podname = req.header("podname").unwrap_or_default();
    if podns.is_empty() || podname.is_empty() {
        return Err((400, "missing podname and podns from request".to_string()));
    }
    let resource = match req.query("resource") {
        Some(r) if !r.is_empty() => r.trim_end_matches('/').to_string(),
        _ => return Err((400, "parameter resource cannot be empty".to_string())),
    };
    let Some(client_id) = state.pod_identity(podns, podname).map(str::to_string) else {
        return Err((
            404,
            format!("no AzureAssignedIdentity found for pod:{podns}/{podname} in assigned state"),
        ));
    };
    let tenant = state
        .app(&client_id)
        .map(|a| a.tenant_id.clone())
        .unwrap_or_default();
    if !cloud::is_vault_resource(&resource) {
        return Err((
            403,
            format!(
                "failed to get service principal token for pod:{podns}/{podname}: invalid resource {resource}"
            ),
        ));
    }
    let (token, now, lifetime) = issue(state, &tenant, &client_id, &resource);
    Ok(json!({
        "token": {
            "access_token": token,
            "refresh_token": "",
            "expires_in": lifetime.to_string(),
            "expires_on": (now + lifetime).to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        },
        "clientid": client_id,
    }))
}

/// Issues an access token; returns it with the issue time and lifetime.
fn issue(state: &mut State, tenant: &str, client_id: &str, resource: &str) -> (String, i64, i64) {
    let now = ids::now_unix();
    let lifetime = state.token_lifetime_secs();
    let grant = TokenGrant {
        tenant_id: tenant.to_string(),
        client_id: client_id.to_string(),
        resource: resource.to_string(),
        expires_at: now.saturating_add(lifetime),
    };
    (state.issue_token(grant, now), now, lifetime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::AppSeed;
    use crate::testutil;
    use bytes::Bytes;
    use hyper::header::{HeaderMap, HeaderValue};

    const MI: &str = "11111111-2222-3333-4444-555555555555";
    const MI2: &str = "66666666-2222-3333-4444-555555555555";

    fn shared_with_node() -> Shared {
        let shared = testutil::blog();
        for id in [MI, MI2] {
            shared
                .state()
                .add_app(&AppSeed {
                    client_id: id.into(),
                    tenant_id: crate::BLOG_TENANT_ID.into(),
                    ..Default::default()
                })
                .expect("app");
        }
        shared
    }

    fn get(path: &str, query: &str, headers: &[(&'static str, &str)]) -> Req {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        Req::new(Method::GET, "127.0.0.1", path, query, map, Bytes::new())
    }

    async fn json_of(resp: Resp) -> (u16, Value) {
        use http_body_util::BodyExt as _;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, json)
    }

    const IMDS_PATH: &str = "/metadata/identity/oauth2/token";
    const Q: &str = "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net";

    #[tokio::test]
    async fn imds_picks_the_system_assigned_identity_or_the_requested_one() {
        let shared = shared_with_node();
        shared
            .state()
            .set_node_identities(Some(MI), &[MI2])
            .expect("node");
        let (status, body) = json_of(imds(
            &shared,
            &get(IMDS_PATH, Q, &[("metadata", "true")]),
            None,
        ))
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["client_id"], MI);
        assert_eq!(body["resource"], "https://vault.azure.net");
        assert!(body["expires_in"].is_string());
        let query = format!("{Q}&client_id={MI2}");
        let (_, body) = json_of(imds(
            &shared,
            &get(IMDS_PATH, &query, &[("metadata", "true")]),
            None,
        ))
        .await;
        assert_eq!(body["client_id"], MI2);
        assert_eq!(
            shared
                .counters()
                .token_requests_with(grant::MANAGED_IDENTITY, OUTCOME_OK),
            2
        );
    }

    #[tokio::test]
    async fn imds_errors_look_like_imds() {
        let shared = shared_with_node();
        shared
            .state()
            .set_node_identities(None, &[MI, MI2])
            .expect("node");
        let cases = [
            (
                Q.to_string(),
                vec![],
                "Required metadata header not specified",
            ),
            (
                Q.to_string(),
                vec![("metadata", "true")],
                "Multiple user assigned identities exist",
            ),
            (
                format!("{Q}&client_id=77777777-0000-0000-0000-000000000000"),
                vec![("metadata", "true")],
                "Identity not found",
            ),
            (
                "api-version=2018-02-01".to_string(),
                vec![("metadata", "true")],
                "'resource' is missing",
            ),
            (
                format!("{Q}&client_id="),
                vec![("metadata", "true")],
                "Identity not found",
            ),
        ];
        for (query, headers, expected) in cases {
            let (status, body) =
                json_of(imds(&shared, &get(IMDS_PATH, &query, &headers), None)).await;
            assert_eq!(status, 400, "{body}");
            let description = body["error_description"].as_str().unwrap_or_default();
            assert!(description.contains(expected), "{description}");
        }
        assert_eq!(
            shared
                .counters()
                .token_requests_with(grant::MANAGED_IDENTITY, "400"),
            5
        );
    }

    #[tokio::test]
    async fn nmi_answers_for_bound_pods_only() {
        let shared = shared_with_node();
        shared
            .state()
            .bind_pod_identity("ns", "pod-a", MI)
            .expect("bind");
        let query = "resource=https://vault.azure.net";
        let (status, body) = json_of(nmi(
            &shared,
            &get(
                "/host/token/",
                query,
                &[("podns", "ns"), ("podname", "pod-a")],
            ),
            None,
        ))
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["clientid"], MI);
        assert!(body["token"]["access_token"].as_str().is_some());
        let (status, body) = json_of(nmi(
            &shared,
            &get(
                "/host/token/",
                query,
                &[("podns", "ns"), ("podname", "pod-b")],
            ),
            None,
        ))
        .await;
        assert_eq!(status, 404);
        assert_eq!(
            body,
            Value::String(
                "no AzureAssignedIdentity found for pod:ns/pod-b in assigned state\n".into()
            )
        );
        let (status, _) = json_of(nmi(&shared, &get("/host/token/", query, &[]), None)).await;
        assert_eq!(status, 400);
    }
}
