//! End-to-end tests of the running fake over real sockets: a plain reqwest
//! client through the CONNECT proxy (TLS, HTTP/2), the control API, the
//! loopback rule and shutdown.

use std::time::Duration;

use serde_json::Value;

use crate::testutil::{ISSUER, blog_assertion};
use crate::{
    BLOG_CLIENT_ID, BLOG_SECRET_NAME, BLOG_SECRET_VALUE, BLOG_TENANT_ID, BLOG_VAULT, FakeAzure,
    Seed, grant, op,
};

fn proxied_client(fake: &FakeAzure, http2: bool) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(fake.ca_pem().as_bytes()).expect("CA PEM");
    let mut builder = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(fake.proxy_url()).expect("proxy"))
        .tls_certs_only([ca]);
    if !http2 {
        builder = builder.http1_only();
    }
    builder.build().expect("client")
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

async fn json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get_token(client: &reqwest::Client) -> String {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_assertion", &blog_assertion())
        .append_pair("client_assertion_type", crate::aad::JWT_BEARER)
        .append_pair("client_id", BLOG_CLIENT_ID)
        .append_pair("grant_type", "client_credentials")
        .append_pair("scope", "https://vault.azure.net/.default")
        .finish();
    let resp = client
        .post(format!(
            "https://login.microsoftonline.com/{BLOG_TENANT_ID}/oauth2/v2.0/token"
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token request");
    let (status, body) = json(resp).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

#[tokio::test]
async fn reqwest_through_the_proxy_gets_a_token_and_a_secret() {
    let fake = FakeAzure::start(Seed::blog_walkthrough(ISSUER))
        .await
        .expect("start");
    for http2 in [true, false] {
        let client = proxied_client(&fake, http2);
        let token = get_token(&client).await;
        let url = format!(
            "https://{BLOG_VAULT}.vault.azure.net/secrets/{BLOG_SECRET_NAME}?api-version=7.4"
        );
        let resp = client.get(&url).send().await.expect("probe");
        assert_eq!(resp.status().as_u16(), 401);
        assert!(resp.headers().contains_key("www-authenticate"));
        let _ = resp.text().await;
        let resp = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("get");
        let expected = if http2 {
            reqwest::Version::HTTP_2
        } else {
            reqwest::Version::HTTP_11
        };
        assert_eq!(resp.version(), expected);
        let (status, body) = json(resp).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["value"], BLOG_SECRET_VALUE);
    }
    let counters = fake.counters();
    assert_eq!(
        counters.token_requests_with(grant::CLIENT_ASSERTION, crate::OUTCOME_OK),
        2
    );
    assert_eq!(
        counters.keyvault_requests_with(BLOG_VAULT, op::GET_SECRET, 200),
        2
    );
    assert_eq!(counters.challenges, 2);
    // One connection per host per client: AAD and the vault, twice.
    assert_eq!(counters.tls_handshakes, 4);
    assert_eq!(counters.tunnels, 4);
    fake.shutdown().await;
}

#[tokio::test]
async fn unknown_vaults_are_refused_at_connect() {
    let fake = FakeAzure::start(Seed::blog_walkthrough(ISSUER))
        .await
        .expect("start");
    let client = proxied_client(&fake, true);
    let result = client
        .get("https://kv-does-not-exist.vault.azure.net/secrets/x?api-version=7.4")
        .send()
        .await;
    assert!(
        result.is_err(),
        "expected a connection error, got {result:?}"
    );
    assert_eq!(fake.counters().tunnels, 0);
}

#[tokio::test]
async fn control_api_mutates_state_and_faults() {
    let fake = FakeAzure::start(Seed::blog_walkthrough(ISSUER))
        .await
        .expect("start");
    let base = format!("http://{}/_fake", fake.addr());
    let http = plain_client();

    let resp = http
        .put(format!(
            "{base}/vaults/{BLOG_VAULT}/secrets/{BLOG_SECRET_NAME}"
        ))
        .body(r#"{"value":"from-control","content_type":"text/plain"}"#)
        .send()
        .await
        .expect("put");
    let (status, body) = json(resp).await;
    assert_eq!(status, 200, "{body}");
    let version = body["version"].as_str().expect("version").to_string();
    assert_eq!(
        fake.secret_versions(BLOG_VAULT, BLOG_SECRET_NAME)
            .expect("versions")
            .last(),
        Some(&version)
    );

    let fault = r#"{"target":"key_vault","fail_5xx":{"status":503,"count":1}}"#;
    let (status, _) = json(
        http.post(format!("{base}/faults"))
            .body(fault)
            .send()
            .await
            .expect("faults"),
    )
    .await;
    assert_eq!(status, 200);
    let client = proxied_client(&fake, true);
    let token = get_token(&client).await;
    let url =
        format!("https://{BLOG_VAULT}.vault.azure.net/secrets/{BLOG_SECRET_NAME}?api-version=7.4");
    let (status, body) = json(
        client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "ServiceUnavailable");
    let (status, body) = json(
        client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], "from-control");
    assert_eq!(body["contentType"], "text/plain");

    let (status, counters) = json(
        http.get(format!("{base}/counters"))
            .send()
            .await
            .expect("counters"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        counters["keyvault_requests"][BLOG_VAULT][op::GET_SECRET]["503"],
        1
    );
    let (status, _) = json(
        http.post(format!("{base}/reset-counters"))
            .send()
            .await
            .expect("reset"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(fake.counters(), crate::Counters::default());

    let (status, _) = json(
        http.delete(format!("{base}/faults"))
            .send()
            .await
            .expect("clear"),
    )
    .await;
    assert_eq!(status, 200);
    let ca = http
        .get(format!("{base}/ca.pem"))
        .send()
        .await
        .expect("ca")
        .text()
        .await
        .unwrap_or_default();
    assert_eq!(ca, fake.ca_pem());
    let mint = r#"{"issuer":"https://i","namespace":"n","service_account":"s","audience":"a"}"#;
    let (status, body) = json(
        http.post(format!("{base}/service-account-token"))
            .body(mint)
            .send()
            .await
            .expect("mint"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["token"].as_str().map(|t| t.split('.').count()),
        Some(3)
    );
    let (status, body) = json(
        http.put(format!("{base}/vaults/nope/secrets/x"))
            .body(r#"{"value":"v"}"#)
            .send()
            .await
            .expect("put"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = json(
        http.post(format!("{base}/faults"))
            .body("{")
            .send()
            .await
            .expect("bad"),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn latency_is_applied() {
    let fake = FakeAzure::start(Seed::blog_walkthrough(ISSUER))
        .await
        .expect("start");
    fake.set_latency(crate::Target::Aad, Duration::from_millis(200));
    let client = proxied_client(&fake, true);
    let started = std::time::Instant::now();
    get_token(&client).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
}

/// Each transport fault, seen by a real client over HTTP/2 and HTTP/1.1
/// through the proxy (Entra ID) and over plain HTTP (IMDS).
#[tokio::test]
async fn transport_faults_break_the_answer() {
    use crate::{Target, Transport};
    let fake = FakeAzure::start(Seed::blog_walkthrough(ISSUER))
        .await
        .expect("start");
    fake.set_vm_identities(Some(BLOG_CLIENT_ID), &[])
        .expect("identities");
    for http2 in [true, false] {
        let client = proxied_client(&fake, http2);
        let token_request = || {
            let body = form_urlencoded::Serializer::new(String::new())
                .append_pair("client_assertion", &blog_assertion())
                .append_pair("client_assertion_type", crate::aad::JWT_BEARER)
                .append_pair("client_id", BLOG_CLIENT_ID)
                .append_pair("grant_type", "client_credentials")
                .append_pair("scope", "https://vault.azure.net/.default")
                .finish();
            client
                .post(format!(
                    "https://login.microsoftonline.com/{BLOG_TENANT_ID}/oauth2/v2.0/token"
                ))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
        };
        fake.transport_fault(Target::Aad, Transport::Malformed, 1);
        let resp = token_request().send().await.expect("an answer");
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.expect("the whole (cut) body");
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
        assert!(text.starts_with('{'), "{text}");

        fake.transport_fault(Target::Aad, Transport::ResetMidBody, 1);
        let resp = token_request().send().await.expect("headers arrive");
        assert_eq!(resp.status(), 200);
        assert!(
            resp.bytes().await.is_err(),
            "the body breaks off (http2: {http2})"
        );

        fake.transport_fault(Target::Aad, Transport::Drop, 1);
        assert!(
            token_request().send().await.is_err(),
            "no answer (http2: {http2})"
        );

        let pause = Duration::from_millis(300);
        fake.transport_fault(Target::Aad, Transport::StallBody(pause), 1);
        let started = std::time::Instant::now();
        let resp = token_request().send().await.expect("headers arrive");
        let body: Value =
            serde_json::from_slice(&resp.bytes().await.expect("all of it")).expect("JSON");
        assert!(body["access_token"].is_string());
        assert!(started.elapsed() >= pause);

        // Spent: the next request is answered normally.
        let (status, _) = json(token_request().send().await.expect("answer")).await;
        assert_eq!(status, 200);
    }
    fake.transport_fault(Target::Imds, Transport::Malformed, 1);
    let imds = format!(
        "{}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net",
        fake.http_url()
    );
    let resp = plain_client()
        .get(&imds)
        .header("Metadata", "true")
        .send()
        .await
        .expect("answer");
    let text = resp.text().await.expect("body");
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    fake.transport_fault(Target::Imds, Transport::Drop, 1);
    let dropped = plain_client()
        .get(&imds)
        .header("Metadata", "true")
        .send()
        .await;
    assert!(dropped.is_err());
    let (status, body) = json(
        plain_client()
            .get(&imds)
            .header("Metadata", "true")
            .send()
            .await
            .expect("answer"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn cut_off_responses_fail_mid_body_on_both_protocols() {
    let fake = FakeAzure::start(Seed::blog_walkthrough(ISSUER))
        .await
        .expect("start");
    for http2 in [true, false] {
        let client = proxied_client(&fake, http2);
        let token = get_token(&client).await;
        let url = format!(
            "https://{BLOG_VAULT}.vault.azure.net/secrets/{BLOG_SECRET_NAME}?api-version=7.4"
        );
        fake.reset_responses(crate::Target::KeyVault, 1);
        let resp = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("the headers arrive");
        assert_eq!(resp.status().as_u16(), 200);
        assert!(resp.bytes().await.is_err(), "the body is cut off");
        let resp = client.get(&url).bearer_auth(&token).send().await;
        let (status, body) = json(resp.expect("the next request works")).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(fake.counters().responses_cut_off, 2);
}

#[tokio::test]
async fn object_latency_applies_to_that_object_only() {
    let fake = FakeAzure::start(Seed::blog_walkthrough(ISSUER))
        .await
        .expect("start");
    let client = proxied_client(&fake, true);
    let token = get_token(&client).await;
    fake.set_object_latency("other", Duration::from_secs(30));
    fake.set_object_latency(BLOG_SECRET_NAME, Duration::from_millis(300));
    let url =
        format!("https://{BLOG_VAULT}.vault.azure.net/secrets/{BLOG_SECRET_NAME}?api-version=7.4");
    let started = std::time::Instant::now();
    let resp = client.get(&url).bearer_auth(&token).send().await;
    assert_eq!(resp.expect("get").status().as_u16(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn refuses_non_loopback_and_stops_on_shutdown() {
    let any = "0.0.0.0:0".parse().expect("addr");
    assert!(FakeAzure::start_on(Seed::default(), any).await.is_err());
    let fake = FakeAzure::start(Seed::default()).await.expect("start");
    let addr = fake.addr();
    assert!(addr.ip().is_loopback());
    assert_eq!(fake.proxy_url(), format!("http://{addr}"));
    fake.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn write_ca_pem_writes_the_ca() {
    let fake = FakeAzure::start(Seed::default()).await.expect("start");
    let path = std::env::temp_dir().join(format!("fake-azure-ca-{}.pem", fake.addr().port()));
    fake.write_ca_pem(&path).expect("write");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap_or_default(),
        fake.ca_pem()
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn token_proxy_routes_by_server_name() {
    let fake = FakeAzure::start(Seed::blog_walkthrough(ISSUER))
        .await
        .expect("start");
    fake.add_app(crate::AppSeed {
        client_id: IB_CLIENT.into(),
        tenant_id: BLOG_TENANT_ID.into(),
        federated_credentials: vec![crate::FederatedCredential {
            issuer: ISSUER.into(),
            subject: crate::BLOG_SUBJECT.into(),
            audience: "api://AKSIdentityBinding".into(),
        }],
        ..Default::default()
    })
    .expect("app");
    let ca = reqwest::Certificate::from_pem(fake.ca_pem().as_bytes()).expect("CA PEM");
    let port = fake
        .token_proxy_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .expect("port");
    let sni = fake.token_proxy_server_name();
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([ca])
        .resolve(&sni, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .expect("client");

    // Without the server name: the API server, which wants credentials.
    let resp = client
        .get(format!("{}/version", fake.token_proxy_url()))
        .send()
        .await
        .expect("api server");
    assert_eq!(resp.status().as_u16(), 401);

    // With it: the token proxy, which exchanges an AKSIdentityBinding token.
    let assertion = crate::mint_service_account_token(
        ISSUER,
        crate::BLOG_NAMESPACE,
        crate::BLOG_SERVICE_ACCOUNT,
        "api://AKSIdentityBinding",
        Duration::from_secs(600),
    );
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_assertion", &assertion)
        .append_pair("client_assertion_type", crate::aad::JWT_BEARER)
        .append_pair("client_id", IB_CLIENT)
        .append_pair("grant_type", "client_credentials")
        .append_pair("scope", "https://vault.azure.net/.default")
        .finish();
    let resp = client
        .post(format!(
            "https://{sni}:{port}/{BLOG_TENANT_ID}/oauth2/v2.0/token"
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token proxy");
    let (status, body) = json(resp).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string());
    let counters = fake.counters();
    assert_eq!(
        counters.token_requests_with(grant::IDENTITY_BINDING, crate::OUTCOME_OK),
        1
    );
    assert_eq!(counters.token_hosts.get("token-proxy"), Some(&1));
    assert_eq!(counters.token_proxy_server_names.get(&sni), Some(&1));
    assert_eq!(counters.token_proxy_server_names.get("localhost"), Some(&1));

    // Issue 18: MSAL (upstream's azidentity) reads the tenant's OpenID
    // metadata through the proxy first, with Entra ID's Host; the proxy
    // passes it on, and an unknown tenant is Entra ID's AADSTS90002.
    let metadata = client
        .get(format!(
            "https://{sni}:{port}/{BLOG_TENANT_ID}/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .expect("metadata through the token proxy");
    let (status, body) = json(metadata).await;
    assert_eq!(status, 200, "{body}");
    let token_endpoint = body["token_endpoint"].as_str().unwrap_or_default();
    assert!(
        token_endpoint.ends_with(&format!("/{BLOG_TENANT_ID}/oauth2/v2.0/token")),
        "{body}"
    );
    let unknown = client
        .get(format!(
            "https://{sni}:{port}/00000000-0000-4000-8000-0000000000aa/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .expect("metadata of an unknown tenant");
    let (status, body) = json(unknown).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_codes"][0], 90002, "{body}");
    fake.shutdown().await;
}

const IB_CLIENT: &str = "0b1d1e55-0000-4000-8000-000000000001";

#[tokio::test]
async fn control_api_sets_node_and_pod_identities_for_imds_and_nmi() {
    let fake = FakeAzure::start(Seed::blog_walkthrough(ISSUER))
        .await
        .expect("start");
    let base = format!("http://{}", fake.addr());
    let http = plain_client();
    let put = |path: &str, body: &'static str| http.put(format!("{base}{path}")).body(body).send();

    let (status, _) = json(
        put("/_fake/vm-identities", r#"{"user_assigned":["nobody"]}"#)
            .await
            .expect("put"),
    )
    .await;
    assert_eq!(status, 404, "unknown apps are refused");
    let body = format!(r#"{{"system_assigned":"{BLOG_CLIENT_ID}"}}"#);
    let resp = http
        .put(format!("{base}/_fake/vm-identities"))
        .body(body.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status().as_u16(), 200);
    let resp = http
        .put(format!("{base}/_fake/pod-identities/ns/pod-a"))
        .body(format!(r#"{{"client_id":"{BLOG_CLIENT_ID}"}}"#))
        .send()
        .await
        .expect("put");
    assert_eq!(resp.status().as_u16(), 200);

    let (status, body) = json(
        http.get(format!(
            "{base}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net"
        ))
        .header("Metadata", "true")
        .send()
        .await
        .expect("imds"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["client_id"], BLOG_CLIENT_ID);
    let (status, body) = json(
        http.get(format!(
            "{base}/host/token/?resource=https://vault.azure.net"
        ))
        .header("podns", "ns")
        .header("podname", "pod-a")
        .send()
        .await
        .expect("nmi"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["clientid"], BLOG_CLIENT_ID);

    let (status, body) = json(
        http.get(format!("{base}/_fake/token-proxy"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["url"], fake.token_proxy_url());
    assert_eq!(body["server_name"], fake.token_proxy_server_name());
    fake.shutdown().await;
}

/// Small writes (the TLS handshake's) leave at once: every listener of the
/// fake sets `TCP_NODELAY` on what it accepts.
#[tokio::test]
async fn accepted_sockets_do_not_wait_for_acks() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let (accepted, client) = tokio::join!(listener.accept(), tokio::net::TcpStream::connect(addr));
    let (stream, _) = accepted.expect("accept");
    let _client = client.expect("connect");
    assert!(
        !stream.nodelay().expect("read TCP_NODELAY"),
        "off by default"
    );
    let stream = crate::server::no_delay(stream);
    assert!(stream.nodelay().expect("read TCP_NODELAY"));
}
