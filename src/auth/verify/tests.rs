//! Each verification rule, with keys generated here (RS256 and ES256).

use super::*;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
};
use serde_json::{Value, json};

const AUD: &str = "api://AzureADTokenExchange";
const ISS: &str = "https://oidc.example.test/issuer";
const NOW: i64 = 1_700_000_000;

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl Signer {
    fn rsa() -> Self {
        Self::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa key"))
    }

    fn ec() -> Self {
        Self::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec key"))
    }

    fn jwk(&self, kid: &str) -> Value {
        let enc = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        match self {
            Self::Rsa(k) => {
                let public = k.public_key();
                json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                    "n": enc(public.modulus().big_endian_without_leading_zero()),
                    "e": enc(public.exponent().big_endian_without_leading_zero())})
            }
            Self::Ec(k) => {
                let point = k.public_key().as_ref();
                json!({"kty": "EC", "kid": kid, "crv": "P-256",
                    "x": enc(&point[1..33]), "y": enc(&point[33..65])})
            }
        }
    }

    fn sign(&self, kid: &str, claims: &Value) -> String {
        let alg = match self {
            Self::Rsa(_) => "RS256",
            Self::Ec(_) => "ES256",
        };
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": kid}).to_string());
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let rng = SystemRandom::new();
        let sig = match self {
            Self::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                    .expect("sign");
                sig
            }
            Self::Ec(k) => k
                .sign(&rng, input.as_bytes())
                .expect("sign")
                .as_ref()
                .to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

fn claims() -> Value {
    json!({"iss": ISS, "sub": "system:serviceaccount:ns:sa", "aud": [AUD],
        "exp": NOW + 3600, "nbf": NOW, "iat": NOW})
}

fn with(patch: Value) -> Value {
    let mut c = claims();
    for (k, v) in patch.as_object().expect("object") {
        c[k] = v.clone();
    }
    c
}

fn jwks(keys: &[Value]) -> Vec<Jwk> {
    parse_jwks(json!({"keys": keys}).to_string().as_bytes()).expect("jwks")
}

/// Full verification as `auth/issuer.rs` runs it.
fn verify(jwt: &str, keys: &[Jwk]) -> Result<Claims, Invalid> {
    let parsed = parse(jwt)?;
    parsed.check_claims(AUD, NOW)?;
    let key = parsed.key_in(keys).ok_or(Invalid::UnknownKey)?;
    parsed.verify_signature(key)?;
    Ok(parsed.claims)
}

#[test]
fn rs256_and_es256_tokens_verify() {
    let (rsa, ec) = (Signer::rsa(), Signer::ec());
    let keys = jwks(&[rsa.jwk("r1"), ec.jwk("e1")]);
    let c = verify(&rsa.sign("r1", &claims()), &keys).expect("rs256");
    assert_eq!(c.sub, "system:serviceaccount:ns:sa");
    assert_eq!(c.aud, vec![AUD.to_owned()]);
    verify(&ec.sign("e1", &claims()), &keys).expect("es256");
}

#[test]
fn a_forged_signature_is_refused() {
    let (real, forger) = (Signer::rsa(), Signer::rsa());
    let keys = jwks(&[real.jwk("k")]);
    let forged = forger.sign("k", &claims());
    assert_eq!(verify(&forged, &keys), Err(Invalid::Signature));
    // A real signature over other claims: the payload was swapped.
    let good = real.sign("k", &claims());
    let other = real.sign("k", &with(json!({"sub": "system:serviceaccount:ns:admin"})));
    let parts: Vec<&str> = good.split('.').collect();
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        other.split('.').nth(1).unwrap_or(""),
        parts[2]
    );
    assert_eq!(verify(&swapped, &keys), Err(Invalid::Signature));
}

#[test]
fn an_unknown_kid_is_not_verified() {
    let rsa = Signer::rsa();
    let keys = jwks(&[rsa.jwk("old")]);
    assert_eq!(
        verify(&rsa.sign("new", &claims()), &keys),
        Err(Invalid::UnknownKey)
    );
}

#[test]
fn a_key_of_the_wrong_type_is_not_used() {
    let (rsa, ec) = (Signer::rsa(), Signer::ec());
    // An ES256 token naming the kid of an RSA key.
    let keys = jwks(&[rsa.jwk("k")]);
    assert_eq!(
        verify(&ec.sign("k", &claims()), &keys),
        Err(Invalid::UnknownKey)
    );
}

#[test]
fn other_algorithms_are_refused() {
    let enc = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    for alg in ["none", "HS256", "RS384", "PS256", "ES384"] {
        let jwt = format!("{}.{}.", enc(json!({"alg": alg})), enc(claims()));
        assert!(
            matches!(verify(&jwt, &[]), Err(Invalid::Algorithm(a)) if a == alg),
            "{alg}"
        );
    }
}

#[test]
fn each_claim_is_checked() {
    let rsa = Signer::rsa();
    let keys = jwks(&[rsa.jwk("k")]);
    let check = |patch: Value| verify(&rsa.sign("k", &with(patch)), &keys);
    assert_eq!(check(json!({"exp": NOW})), Err(Invalid::Expired));
    assert_eq!(check(json!({"exp": NOW - 1})), Err(Invalid::Expired));
    assert_eq!(
        check(json!({"nbf": NOW + NBF_LEEWAY_SECS + 1})),
        Err(Invalid::NotYetValid)
    );
    assert!(
        check(json!({"nbf": NOW + NBF_LEEWAY_SECS})).is_ok(),
        "within leeway"
    );
    assert_eq!(
        check(json!({"aud": ["api://other"]})),
        Err(Invalid::Audience(AUD.into()))
    );
    assert!(check(json!({"aud": AUD})).is_ok(), "a single string");
    assert_eq!(
        check(json!({"iss": "http://plain.test"})),
        Err(Invalid::Issuer)
    );
    let missing = |claim: &str| {
        let mut c = claims();
        c.as_object_mut().expect("object").remove(claim);
        verify(&rsa.sign("k", &c), &keys)
    };
    for claim in ["iss", "sub", "aud", "exp"] {
        assert!(
            matches!(missing(claim), Err(Invalid::Malformed(_))),
            "{claim}"
        );
    }
}

#[test]
fn rotated_keys_verify_old_and_new_tokens_while_both_are_published() {
    let (old, new) = (Signer::rsa(), Signer::ec());
    let both = jwks(&[old.jwk("2024"), new.jwk("2025")]);
    verify(&old.sign("2024", &claims()), &both).expect("old key still published");
    verify(&new.sign("2025", &claims()), &both).expect("new key");
    let after = jwks(&[new.jwk("2025")]);
    assert_eq!(
        verify(&old.sign("2024", &claims()), &after),
        Err(Invalid::UnknownKey),
        "a retired key no longer verifies"
    );
}

#[test]
fn malformed_input_and_jwks_never_panic() {
    for jwt in ["", "a", "a.b", "a.b.c.d", "%%.%%.%%", "e30.e30.e30"] {
        assert!(verify(jwt, &[]).is_err(), "{jwt}");
    }
    assert!(parse_jwks(b"not json").is_err());
    let odd = json!({"keys": [
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"},
        {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "RSA", "alg": "RS512", "n": "AQAB", "e": "AQAB"},
        "not an object",
    ]});
    assert!(
        parse_jwks(odd.to_string().as_bytes())
            .expect("jwks")
            .is_empty()
    );
    let many: Vec<Value> = (0..100)
        .map(|i| json!({"kty": "RSA", "kid": i.to_string(), "n": "AQAB", "e": "AQAB"}))
        .collect();
    assert_eq!(jwks(&many).len(), MAX_KEYS, "bounded");
}

#[test]
fn errors_name_claims_not_values() {
    let e = Invalid::Audience(AUD.into()).to_string();
    assert!(e.contains("aud"), "{e}");
    let alg = parse("eyJhbGciOiJzZWNyZXQtdmFsdWUtdGhhdC1pcy1sb25nIn0.e30.").err();
    assert!(matches!(alg, Some(Invalid::Algorithm(a)) if a.len() <= 16));
}
