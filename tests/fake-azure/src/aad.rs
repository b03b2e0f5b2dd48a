//! The Entra ID (AAD) endpoints: the v2.0 token endpoint for the
//! client-credentials grant, tenant OpenID metadata and instance discovery.
//!
//! Client assertions are checked on their claims only (see `jwt.rs`: the
//! signature is trusted). Errors use Entra ID's JSON shape with its real
//! `AADSTS` codes and status codes. An error never repeats the assertion or
//! the client secret; it may name the issuer, subject and audience, as
//! Entra ID does.

use serde_json::{Value, json};

use crate::cloud::{self, Cloud};
use crate::counters::{OUTCOME_OK, grant};
use crate::fake::Shared;
use crate::faults::Injected;
use crate::ids;
use crate::jwt::{self, FederatedMatch};
use crate::oidc::{Issuers, SignatureError};
use crate::state::{App, TokenGrant};
use crate::wire::{self, Req, Resp, field};

/// `client_assertion_type` of a JWT bearer assertion.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An Entra ID error before it is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AadError {
    pub status: u16,
    pub error: &'static str,
    pub code: u32,
    pub description: String,
    pub retry_after_secs: Option<u64>,
}

/// Routes a request to a login host.
pub(crate) fn handle(
    shared: &Shared,
    cloud: &'static Cloud,
    req: &Req,
    fault: Option<Injected>,
) -> Resp {
    let (segs, _) = req.segments();
    match segs.as_slice() {
        [tenant, "oauth2", "v2.0", "token"] => {
            let via = Via {
                host: cloud.login_host,
                login: Some(cloud),
                grant: None,
            };
            token(shared, &via, &tenant.to_ascii_lowercase(), req, fault)
        }
        [tenant, "v2.0", ".well-known", "openid-configuration"] => {
            shared.counters().metadata_requests += 1;
            let tenant = tenant.to_ascii_lowercase();
            let result = match fault {
                Some(f) => Err(fault_error(f)),
                None => openid_configuration(shared, cloud, &tenant, req),
            };
            finish(shared, req, result)
        }
        ["common", "discovery", "instance"] => {
            shared.counters().metadata_requests += 1;
            let result = match fault {
                Some(f) => Err(fault_error(f)),
                None => Ok(instance_discovery(req)),
            };
            finish(shared, req, result)
        }
        _ => wire::json(
            404,
            &json!({"error": "not_found", "error_description":
                format!("fake-azure: no Entra ID endpoint at {}", req.path)}),
        ),
    }
}

/// How a token request reached the fake.
pub(crate) struct Via {
    /// Counted in [`Counters::token_hosts`](crate::Counters).
    pub host: &'static str,
    /// The cloud of the login host; its vaults are the only resources it
    /// issues tokens for. `None` accepts any cloud's vault resource.
    pub login: Option<&'static Cloud>,
    /// Grant kind counted instead of the one read from the form.
    pub grant: Option<&'static str>,
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) fn token(
    shared: &Shared,
    via: &Via,
    tenant: &str,
    req: &Req,
    fault: Option<Injected>,
) -> Resp {
    let form = req.form();
    let kind = via.grant.unwrap_or_else(|| grant_kind(&form));
    let result = match fault {
        Some(Injected::EchoCredential) => {
            let sent = field(&form, "client_secret")
                .or_else(|| field(&form, "client_assertion"))
                .unwrap_or_default();
            Err(AadError::new(
                401,
                "invalid_client",
                7_000_215,
                format!("AADSTS7000215: Invalid client secret provided: '{sent}'."),
            ))
        }
        Some(f) => Err(fault_error(f)),
        None => issue(shared, via.login, tenant, req, &form),
    };
    let outcome = match &result {
        Ok(_) => OUTCOME_OK.to_string(),
        Err(e) => format!("AADSTS{}", e.code),
    };
    {
        let mut counters = shared.counters();
        counters.token_request(kind, &outcome);
        *counters
            .token_hosts
            .entry(via.host.to_string())
            .or_default() += 1;
    }
    finish(shared, req, result)
}

fn grant_kind(form: &[(String, String)]) -> &'static str {
    if field(form, "client_assertion").is_some() {
        grant::CLIENT_ASSERTION
    } else if field(form, "client_secret").is_some() {
        grant::CLIENT_SECRET
    } else {
        grant::OTHER
    }
}

fn issue(
    shared: &Shared,
    login: Option<&Cloud>,
    tenant: &str,
    req: &Req,
    form: &[(String, String)],
) -> Result<Value, AadError> {
    if req.method != hyper::Method::POST {
        return Err(AadError::new(
            400,
            "invalid_request",
            900_561,
            format!(
                "The endpoint only accepts POST, OPTIONS requests. Received a {} request.",
                req.method
            ),
        ));
    }
    let now = ids::now_unix();
    let mut state = shared.state();
    if !state.tenant_known(tenant) {
        return Err(tenant_not_found(tenant));
    }
    let grant_type = required(form, "grant_type")?;
    if grant_type != "client_credentials" {
        return Err(AadError::new(
            400,
            "unsupported_grant_type",
            70_003,
            format!("The app requested an unsupported grant type '{grant_type}'."),
        ));
    }
    let client_id = required(form, "client_id")?;
    let resource = resource_of(required(form, "scope")?, tenant)?;
    if let Some(cloud) = login
        && !cloud::login_issues_for(cloud.login_host, &resource)
    {
        // A sovereign cloud's vault is unknown to another cloud's Entra ID.
        return Err(resource_not_found(&resource, tenant));
    }
    let app = state
        .app(client_id)
        .filter(|a| a.tenant_id == tenant)
        .ok_or_else(|| AadError::new(400, "unauthorized_client", 700_016, format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'. \
             This can happen if the application has not been installed by the administrator of the \
             tenant or consented to by any user in the tenant. You may have sent your authentication \
             request to the wrong tenant."
        )))?;
    authenticate(app, form, now, &shared.issuers())?;
    let lifetime = state.token_lifetime_secs();
    let grant = TokenGrant {
        tenant_id: tenant.to_string(),
        client_id: app.client_id.clone(),
        resource,
        expires_at: now.saturating_add(lifetime),
    };
    let token = state.issue_token(grant, now);
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    }))
}

fn required<'a>(form: &'a [(String, String)], name: &str) -> Result<&'a str, AadError> {
    match field(form, name) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(missing(name)),
    }
}

fn missing(name: &str) -> AadError {
    AadError::new(
        400,
        "invalid_request",
        900_144,
        format!("The request body must contain the following parameter: '{name}'."),
    )
}

/// OpenID Connect scopes MSAL adds to every token request (Go's and .NET's
/// `openid offline_access profile`); Entra ID accepts them beside a
/// `/.default` scope in a client-credentials grant and issues the token for
/// the resource alone.
const OIDC_SCOPES: [&str; 3] = ["openid", "offline_access", "profile"];

/// `https://vault.azure.net/.default` → `https://vault.azure.net`; the
/// [`OIDC_SCOPES`] beside it are ignored.
pub(crate) fn resource_of(scope: &str, tenant: &str) -> Result<String, AadError> {
    let mut scopes = scope
        .split_whitespace()
        .filter(|s| !OIDC_SCOPES.contains(s));
    let (Some(only), None) = (scopes.next(), scopes.next()) else {
        return Err(invalid_scope(scope));
    };
    let resource = only
        .strip_suffix("/.default")
        .ok_or_else(|| invalid_scope(scope))?;
    let resource = resource.trim_end_matches('/');
    if resource.is_empty() {
        return Err(invalid_scope(scope));
    }
    if !cloud::is_vault_resource(resource) {
        return Err(resource_not_found(resource, tenant));
    }
    Ok(resource.to_string())
}

/// AADSTS500011: the resource is not known where the token was asked for.
pub(crate) fn resource_not_found(resource: &str, tenant: &str) -> AadError {
    AadError::new(
        400,
        "invalid_resource",
        500_011,
        format!(
            "The resource principal named {resource} was not found in the tenant named {tenant}. \
             This can happen if the application has not been installed by the administrator of the \
             tenant or consented to by any user in the tenant. You might have sent your \
             authentication request to the wrong tenant."
        ),
    )
}

fn invalid_scope(scope: &str) -> AadError {
    AadError::new(
        400,
        "invalid_scope",
        1_002_012,
        format!(
            "The provided value for scope {scope} is not valid. Client credential flows must have a \
         scope value with /.default suffixed to the resource identifier (application ID URI)."
        ),
    )
}

/// Checks the client's credential: an assertion, else a secret.
pub(crate) fn authenticate(
    app: &App,
    form: &[(String, String)],
    now: i64,
    issuers: &Issuers,
) -> Result<(), AadError> {
    if let Some(assertion) = field(form, "client_assertion") {
        match field(form, "client_assertion_type") {
            Some(JWT_BEARER) => {}
            Some(_) => {
                return Err(AadError::new(
                    400,
                    "invalid_request",
                    90_014,
                    format!(
                        "The required field 'client_assertion_type' is missing from the credential \
                     (expected '{JWT_BEARER}'). Ensure that you have all the necessary parameters \
                     for the login request."
                    ),
                ));
            }
            None => return Err(missing("client_assertion_type")),
        }
        return check_assertion(app, assertion, now, issuers);
    }
    match field(form, "client_secret") {
        Some(secret) if app.client_secret.as_deref() == Some(secret) => Ok(()),
        Some(_) => Err(AadError::new(
            401,
            "invalid_client",
            7_000_215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the \
             client secret value, not the client secret ID, for a secret added to app '{}'.",
                app.client_id
            ),
        )),
        None => Err(AadError::new(
            401,
            "invalid_client",
            7_000_218,
            "The request body must contain the following parameter: 'client_assertion' or \
             'client_secret'."
                .to_string(),
        )),
    }
}

fn check_assertion(
    app: &App,
    assertion: &str,
    now: i64,
    issuers: &Issuers,
) -> Result<(), AadError> {
    let claims = jwt::decode_claims(assertion).map_err(|_| malformed())?;
    claims.check_time(now).map_err(|r| {
        let nbf = r
            .nbf
            .map_or_else(|| "(not set)".to_string(), ids::iso_timestamp);
        AadError::new(
            400,
            "invalid_client",
            700_024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion \
             valid from {nbf}, expiry time of assertion {}. Review the documentation at \
             https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                ids::iso_timestamp(r.now),
                ids::iso_timestamp(r.exp)
            ),
        )
    })?;
    let trusted = app.federated.iter().any(|fc| {
        claims.matches(&FederatedMatch {
            issuer: &fc.issuer,
            subject: &fc.subject,
            audience: &fc.audience,
        })
    });
    if trusted {
        return issuers
            .check_signature(&claims.iss, assertion)
            .map_err(|e| signature_error(&claims.iss, e));
    }
    Err(AadError::new(
        400,
        "invalid_grant",
        70_021,
        format!(
            "No matching federated identity record found for presented assertion. Assertion Issuer: \
         '{}'. Assertion Subject: '{}'. Assertion Audience: '{}'. \
         https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
            claims.iss,
            claims.sub,
            claims.aud.join(",")
        ),
    ))
}

/// Entra ID's answers to an assertion whose signature it cannot verify:
/// AADSTS7000272 when the issuer's metadata lacks the key, AADSTS50013
/// when the signature does not match.
fn signature_error(issuer: &str, error: SignatureError) -> AadError {
    match error {
        SignatureError::UnknownKey(kid) => AadError::new(
            401,
            "invalid_client",
            7_000_272,
            format!(
                "The certificate with identifier {kid} used to sign the federated credential \
                 could not be found in the metadata of identity provider {issuer}. Please \
                 validate that your Identity Provider's metadata exposes the key used to sign \
                 the incoming token."
            ),
        ),
        SignatureError::Invalid => AadError::new(
            401,
            "invalid_client",
            50_013,
            "Assertion failed signature validation. [Reason - The provided signature value did \
             not match the expected signature value.]"
                .to_string(),
        ),
    }
}

fn malformed() -> AadError {
    AadError::new(
        400,
        "invalid_request",
        50_027,
        "JWT token is invalid or malformed.".to_string(),
    )
}

fn tenant_not_found(tenant: &str) -> AadError {
    AadError::new(
        400,
        "invalid_request",
        90_002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are \
         signing into the correct cloud. Check with your subscription administrator, this may \
         happen if there are no active subscriptions for the tenant."
        ),
    )
}

fn fault_error(fault: Injected) -> AadError {
    match fault {
        Injected::Throttled { retry_after_secs } => AadError {
            retry_after_secs,
            ..AadError::new(
                429,
                "temporarily_unavailable",
                90_055,
                "There are too many incoming \
                requests. Please try again later."
                    .to_string(),
            )
        },
        Injected::EchoCredential => AadError::new(
            401,
            "invalid_client",
            7_000_215,
            "fake-azure: no credential on this endpoint".to_string(),
        ),
        Injected::ServerError(status) => AadError::new(
            status,
            if status == 500 {
                "server_error"
            } else {
                "temporarily_unavailable"
            },
            90_033,
            "A transient error has occurred. Please try again.".to_string(),
        ),
    }
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
fn openid_configuration(
    shared: &Shared,
    cloud: &Cloud,
    tenant: &str,
    req: &Req,
) -> Result<Value, AadError> {
    if !shared.state().tenant_known(tenant) {
        let mut e = tenant_not_found(tenant);
        e.error = "invalid_tenant";
        return Err(e);
    }
    let base = format!("https://{}/{tenant}", req.host);
    Ok(json!({
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/v2.0"),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
        "tenant_region_scope": null,
        "cloud_instance_name": cloud.login_host.trim_start_matches("login."),
    }))
}

/// `GET /common/discovery/instance` (MSAL instance discovery).
fn instance_discovery(req: &Req) -> Value {
    let host = &req.host;
    let tenant = req
        .query("authorization_endpoint")
        .and_then(|u| u.split('/').nth(3))
        .filter(|t| !t.is_empty())
        .unwrap_or("common");
    json!({
        "tenant_discovery_endpoint": format!("https://{host}/{tenant}/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    })
}

/// Renders a result with Entra ID's headers and error shape.
fn finish(shared: &Shared, req: &Req, result: Result<Value, AadError>) -> Resp {
    let (request_id, trace_id) = {
        let mut state = shared.state();
        (state.new_uuid(), state.new_uuid())
    };
    let mut resp = match result {
        Ok(body) => wire::json(200, &body),
        Err(e) => {
            let correlation = req
                .header("client-request-id")
                .filter(|c| is_uuid(c))
                .map_or_else(|| shared.state().new_uuid(), str::to_string);
            let mut resp = wire::json(
                e.status,
                &e.body(&req.host, &trace_id, &correlation, ids::now_unix()),
            );
            if let Some(secs) = e.retry_after_secs {
                wire::set_header(&mut resp, "retry-after", &secs.to_string());
            }
            resp
        }
    };
    wire::set_header(&mut resp, "cache-control", "no-store, no-cache");
    wire::set_header(&mut resp, "pragma", "no-cache");
    wire::set_header(&mut resp, "x-ms-request-id", &request_id);
    resp
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

// === impl AadError ===

impl AadError {
    pub(crate) fn new(status: u16, error: &'static str, code: u32, description: String) -> Self {
        Self {
            status,
            error,
            code,
            description,
            retry_after_secs: None,
        }
    }

    /// The JSON body, as Entra ID writes it. The description joins its parts
    /// with spaces and nothing in it needs a JSON escape, like Entra ID's
    /// own: azure_identity 1.0 borrows `error_description` and cannot
    /// decode an escaped string.
    pub(crate) fn body(&self, host: &str, trace_id: &str, correlation_id: &str, now: i64) -> Value {
        let timestamp = ids::aad_timestamp(now);
        json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}",
                self.code, self.description
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://{host}/error?code={}", self.code),
        })
    }
}

#[cfg(test)]
mod tests;
