//! P3 with `--token-cache-scope`: the same burst of one Deployment's pods
//! under `credential` and `service-account` scope, side by side in one
//! run; then one pod of another service account and one forged token.
//! Measures only; the rules themselves are tested in `tests/token_scope.rs`.

use super::*;

const OTHER_SUBJECT: &str = "system:serviceaccount:blog-post:other-account";

/// The latency fake with a federated credential for a second service
/// account.
async fn fake_with_two_accounts() -> anyhow::Result<FakeAzure> {
    let mut seed = seed_with(3);
    seed.apps[0]
        .federated_credentials
        .push(fake_azure::FederatedCredential {
            issuer: ISSUER.into(),
            subject: OTHER_SUBJECT.into(),
            audience: fake_azure::BLOG_AUDIENCE.into(),
        });
    let fake = FakeAzure::start(seed).await?;
    fake.set_latency(Target::Aad, LATENCY);
    fake.set_latency(Target::KeyVault, LATENCY);
    Ok(fake)
}

fn claims(subject: &str) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    serde_json::json!({"aud": [driver::WORKLOAD_IDENTITY_AUDIENCE], "exp": now + 3600,
        "iat": now, "nbf": now, "iss": ISSUER, "sub": subject})
}

/// One more mount presenting `token`; true when it succeeded.
async fn one(socket: &Path, i: usize, token: String) -> bool {
    let (pod, mut sa) = pod(i);
    sa.token = token;
    mount(socket, &spc_for(3), &pod, &sa).await.is_ok()
}

pub(super) async fn p3_scopes(report: &mut Report) -> anyhow::Result<()> {
    report.line(format!(
        "## P3 token cache scope: {BURST_PODS} pods of one service account, `credential` vs `service-account`"
    ));
    report.line("");
    report.line("Each scope runs in a fresh provider process against a fresh fake (Entra ID and Key Vault at 50 ms); every pod has its own service-account token, signed by the issuer the fake serves. With `--token-cache-scope=service-account` the provider fetches the issuer's discovery document and JWKS once, verifies each pod's token and serves one Entra ID token to all of them. Then one pod of another service account, and one token with the same claims signed by a key the issuer never published (forged).");
    report.line("");
    report.line("| scope | Entra ID token requests | Key Vault GETs | wall (ms) | failed mounts | peak RSS (MiB) | another service account: token requests added | forged token: token requests added, mount |");
    report.line("|---|---:|---:|---:|---:|---:|---:|---|");
    let spc = spc_for(3);
    let scopes: [(&str, &[&str]); 2] = [
        ("credential (default)", &[]),
        ("service-account", &["--token-cache-scope=service-account"]),
    ];
    let mut requests = Vec::new();
    for (k, (label, args)) in scopes.into_iter().enumerate() {
        let fake = fake_with_two_accounts().await?;
        let provider = Provider::start(&fake, args).await?;
        fake.reset_counters();
        let (wall, failures) =
            burst(&provider.socket, &spc, BURST_PODS, 60_000 + k * BURST_PODS).await;
        let (_, peak) = memory(provider.pid());
        let c = fake.counters();
        let (tokens, gets) = (c.token_requests_total(), c.keyvault_requests_total());
        let other = one(
            &provider.socket,
            70_000,
            fake_azure::mint_jwt(&claims(OTHER_SUBJECT)),
        )
        .await;
        let after_other = fake.counters().token_requests_total();
        let forger = fake_azure::SigningKey::rsa("fake-rs256");
        let forged = forger.sign(&claims(fake_azure::BLOG_SUBJECT));
        let forged_ok = one(&provider.socket, 70_001, forged).await;
        let after_forged = fake.counters().token_requests_total();
        requests.push((
            tokens,
            after_other - tokens,
            after_forged - after_other,
            forged_ok,
            other,
        ));
        report.line(format!(
            "| {label} | {tokens} | {gets} | {:.0} | {failures} | {:.1} | {} | {}, {} |",
            ms(wall),
            mib(peak),
            after_other - tokens,
            after_forged - after_other,
            if forged_ok {
                "succeeded (wrong!)"
            } else {
                "failed (refused by Entra ID)"
            },
        ));
    }
    report.line("");
    let met = matches!(
        requests.as_slice(),
        [(n, _, _, false, true), (1, 1, 1, false, true)] if *n == BURST_PODS as u64
    );
    let verdict = report.target(
        "P3 service-account scope: one token request per service account, forged token refused",
        met,
    );
    report.line(format!(
        "Target: with `service-account` scope {BURST_PODS} pods cost one Entra ID request (not {BURST_PODS}), another service account one more, and a forged token one request that fails: {verdict}."
    ));
    report.line("");
    Ok(())
}
