//! JWT-shaped tokens: reading the claims of a client assertion, and minting
//! Kubernetes service-account tokens for tests.
//!
//! Here: the claims (`iss`, `sub`, `aud`, `exp`, `nbf`), the fields Entra
//! ID compares against a federated identity credential. Signatures are
//! made and checked in `oidc.rs`; minted tokens are signed RS256 with the
//! fake's built-in key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::time::Duration;

use crate::ids;

/// How far `nbf` and `exp` may be off, as Entra ID tolerates clock skew.
pub(crate) const CLOCK_SKEW_SECS: i64 = 300;

/// The claims of a client assertion that Entra ID looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AssertionClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
}

/// Why an assertion could not be read as a JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// Not three dot-separated segments.
    Segments,
    /// The payload is not base64url.
    Encoding,
    /// The payload is not a JSON object.
    Json,
    /// A required claim is absent or has the wrong type.
    Claim(&'static str),
}

/// Why an assertion is outside its valid time range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutOfRange {
    pub now: i64,
    pub nbf: Option<i64>,
    pub exp: i64,
}

/// One federated identity credential, as compared against assertions.
pub(crate) struct FederatedMatch<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub audience: &'a str,
}

/// Decodes the payload of a compact JWT without verifying its signature.
pub(crate) fn decode_claims(jwt: &str) -> Result<AssertionClaims, Malformed> {
    let mut parts = jwt.trim().split('.');
    let (Some(_header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Malformed::Segments);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| Malformed::Encoding)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| Malformed::Json)?;
    let obj = value.as_object().ok_or(Malformed::Json)?;
    let string = |name: &'static str| {
        obj.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(Malformed::Claim(name))
    };
    let aud = match obj.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or(Malformed::Claim("aud"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(Malformed::Claim("aud")),
    };
    let time = |name: &'static str| match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        // Float seconds are legal in NumericDate; truncation is intended.
        Some(v) => v
            .as_f64()
            .map(|f| Some(f as i64))
            .ok_or(Malformed::Claim(name)),
    };
    Ok(AssertionClaims {
        iss: string("iss")?,
        sub: string("sub")?,
        aud,
        exp: time("exp")?,
        nbf: time("nbf")?,
    })
}

// === impl AssertionClaims ===

impl AssertionClaims {
    /// Checks `exp` (required) and `nbf` (optional) against `now`, allowing
    /// [`CLOCK_SKEW_SECS`] either way.
    pub(crate) fn check_time(&self, now: i64) -> Result<(), OutOfRange> {
        let out = || OutOfRange {
            now,
            nbf: self.nbf,
            exp: self.exp.unwrap_or(0),
        };
        let exp = self.exp.ok_or_else(out)?;
        if now >= exp.saturating_add(CLOCK_SKEW_SECS) {
            return Err(out());
        }
        if self
            .nbf
            .is_some_and(|nbf| now < nbf.saturating_sub(CLOCK_SKEW_SECS))
        {
            return Err(out());
        }
        Ok(())
    }

    /// True when issuer and subject match exactly and the audience list
    /// contains the credential's audience.
    pub(crate) fn matches(&self, cred: &FederatedMatch<'_>) -> bool {
        self.iss == cred.issuer
            && self.sub == cred.subject
            && self.aud.iter().any(|a| a == cred.audience)
    }
}

/// Mints a Kubernetes-style projected service-account token.
///
/// Header `{"alg":"RS256","kid":"fake-rs256"}`; payload with `iss`, `sub`
/// (`system:serviceaccount:<ns>:<sa>`), `aud` (a one-element array, as the
/// API server writes it), `exp`/`iat`/`nbf` and the `kubernetes.io` claim.
/// Signed with the built-in RS256 key, which every issuer publishes unless
/// given other keys.
pub fn mint_service_account_token(
    issuer: &str,
    namespace: &str,
    service_account: &str,
    audience: &str,
    ttl: Duration,
) -> String {
    let now = ids::now_unix();
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    let mut uid_gen =
        ids::IdGen::with_seed(fnv1a(format!("{namespace}/{service_account}").as_bytes()));
    mint_jwt(&json!({
        "aud": [audience],
        "exp": now.saturating_add(ttl),
        "iat": now,
        "iss": issuer,
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": { "name": service_account, "uid": uid_gen.uuid() },
        },
        "nbf": now,
        "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
    }))
}

/// Mints a token with arbitrary claims (e.g. an expired one), signed
/// RS256 with the fake's built-in key (`fake-rs256`).
pub fn mint_jwt(claims: &Value) -> String {
    crate::oidc::builtin_keys()[0].sign(claims)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://oidc.example.test/issuer";

    fn claims(extra: Value) -> String {
        let mut base = json!({"iss": ISS, "sub": "system:serviceaccount:ns:sa", "aud": "aud1"});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        mint_jwt(&base)
    }

    #[test]
    fn minted_service_account_token_round_trips() {
        let t = mint_service_account_token(
            ISS,
            "ns",
            "sa",
            "api://AzureADTokenExchange",
            Duration::from_secs(600),
        );
        assert_eq!(t.split('.').count(), 3);
        let c = decode_claims(&t).expect("decodes");
        assert_eq!(c.iss, ISS);
        assert_eq!(c.sub, "system:serviceaccount:ns:sa");
        assert_eq!(c.aud, vec!["api://AzureADTokenExchange".to_string()]);
        assert!(c.check_time(ids::now_unix()).is_ok());
        let header = URL_SAFE_NO_PAD
            .decode(t.split('.').next().unwrap_or_default())
            .expect("b64");
        assert_eq!(header, br#"{"alg":"RS256","kid":"fake-rs256"}"#);
    }

    #[test]
    fn audience_may_be_string_or_array() {
        let c = decode_claims(&claims(json!({"aud": ["a", "b"]}))).expect("decodes");
        assert_eq!(c.aud, vec!["a".to_string(), "b".to_string()]);
        let c = decode_claims(&claims(json!({}))).expect("decodes");
        assert_eq!(c.aud, vec!["aud1".to_string()]);
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        assert_eq!(decode_claims("abc"), Err(Malformed::Segments));
        assert_eq!(decode_claims("a.b.c.d"), Err(Malformed::Segments));
        assert_eq!(decode_claims("a.!!!.c"), Err(Malformed::Encoding));
        let not_json = format!("a.{}.c", URL_SAFE_NO_PAD.encode("nope"));
        assert_eq!(decode_claims(&not_json), Err(Malformed::Json));
        let no_sub = mint_jwt(&json!({"iss": ISS, "aud": "x"}));
        assert_eq!(decode_claims(&no_sub), Err(Malformed::Claim("sub")));
        let bad_aud = mint_jwt(&json!({"iss": ISS, "sub": "s", "aud": 5}));
        assert_eq!(decode_claims(&bad_aud), Err(Malformed::Claim("aud")));
    }

    #[test]
    fn time_checks_respect_exp_nbf_and_skew() {
        let now = 1_000_000;
        let ok = decode_claims(&claims(json!({"exp": now + 60, "nbf": now}))).expect("decodes");
        assert!(ok.check_time(now).is_ok());
        let expired =
            decode_claims(&claims(json!({"exp": now - CLOCK_SKEW_SECS - 1}))).expect("decodes");
        assert!(expired.check_time(now).is_err());
        let within_skew = decode_claims(&claims(json!({"exp": now - 10}))).expect("decodes");
        assert!(within_skew.check_time(now).is_ok());
        let future = decode_claims(&claims(
            json!({"exp": now + 9999, "nbf": now + CLOCK_SKEW_SECS + 1}),
        ))
        .expect("decodes");
        assert!(future.check_time(now).is_err());
        let no_exp = decode_claims(&claims(json!({}))).expect("decodes");
        assert!(no_exp.check_time(now).is_err());
        let float_exp =
            decode_claims(&claims(json!({"exp": (now + 60) as f64 + 0.5}))).expect("decodes");
        assert!(float_exp.check_time(now).is_ok());
    }

    #[test]
    fn federated_match_needs_all_three() {
        let c = decode_claims(&claims(json!({"aud": ["x", "aud1"]}))).expect("decodes");
        let good = FederatedMatch {
            issuer: ISS,
            subject: "system:serviceaccount:ns:sa",
            audience: "aud1",
        };
        assert!(c.matches(&good));
        assert!(!c.matches(&FederatedMatch {
            issuer: "https://other",
            ..good
        }));
        assert!(!c.matches(&FederatedMatch {
            subject: "system:serviceaccount:ns:other",
            ..good
        }));
        assert!(!c.matches(&FederatedMatch {
            audience: "aud2",
            ..good
        }));
    }
}
