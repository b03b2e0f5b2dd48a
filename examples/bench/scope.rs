//! P3 with `--token-cache-scope`: the same burst of one Deployment's pods
//! under `credential` and `service-account` scope, side by side in one
//! run, and upstream's provider (which has no such scope) beside them;
//! then one pod of another service account and one forged token.
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
    report.line("| provider, scope | Entra ID requests (token + metadata) | Key Vault requests | wall (ms) | failed mounts | peak RSS (MiB) | CPU per mount (ms) | another service account: token requests added | forged token: token requests added, mount |");
    report.line("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    let spc = spc_for(3);
    let (ours, theirs) = (Side::Ours.label(), Side::Upstream.label());
    let scopes: [(String, Side, &[&str]); 3] = [
        (format!("{ours}, credential (default)"), Side::Ours, &[]),
        (
            format!("{ours}, service-account"),
            Side::Ours,
            &["--token-cache-scope=service-account"],
        ),
        (
            format!("{theirs} (no such flag: a token per pod)"),
            Side::Upstream,
            &[],
        ),
    ];
    let mut requests = Vec::new();
    for (k, (label, side, args)) in scopes.into_iter().enumerate() {
        let fake = fake_with_two_accounts().await?;
        let provider = Provider::start_side(&fake, side, args).await?;
        let stretch = Stretch::start(&fake, &provider);
        let (wall, failures) =
            burst(&provider.socket, &spc, BURST_PODS, 60_000 + k * BURST_PODS).await;
        let (_, peak) = memory(provider.pid());
        let (r, cpu, _) = stretch.end(&fake, &provider);
        let tokens = r.tokens;
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
        if side == Side::Ours {
            requests.push((
                tokens,
                after_other - tokens,
                after_forged - after_other,
                forged_ok,
                other,
            ));
        }
        report.line(format!(
            "| {label} | {} + {} | {} | {:.0} | {failures} | {:.1} | {:.2} | {} | {}, {} |",
            r.tokens,
            r.metadata,
            r.keyvault,
            ms(wall),
            mib(peak),
            ms(cpu) / BURST_PODS as f64,
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
        "Target: with `service-account` scope {BURST_PODS} pods cost one Entra ID request (not {BURST_PODS}), another service account one more, and a forged token one request that fails: {verdict}. Upstream has no cross-pod token cache (its maintainers declined one, #1609): a token exchange per pod, each with its instance discovery and metadata requests."
    ));
    report.line("");
    Ok(())
}
