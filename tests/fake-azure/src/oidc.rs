//! Service-account issuers as Entra ID sees them: signing keys (the fake's
//! built-in RS256 and ES256 keys, or keys tests make), each issuer's JWKS
//! (the built-in keys unless a seed or the control API sets others, e.g. a
//! real cluster's JWKS in the kind e2e), the OIDC discovery document and
//! JWKS served at the issuer's own URL (through the CONNECT proxy, like
//! any Azure host), and the signature check of a client assertion.
//!
//! Private keys live only in memory. Nothing here logs a token.

use std::collections::HashMap;
use std::sync::OnceLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents,
    UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::wire::{self, Req, Resp};

/// Path of the JWKS under an issuer, as the Kubernetes API server serves it.
pub(crate) const JWKS_PATH: &str = "/openid/v1/jwks";

/// A key that signs service-account tokens.
pub struct SigningKey {
    kid: String,
    pair: Pair,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// Why an assertion's signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SignatureError {
    /// No key of the issuer has the assertion's `kid` (AADSTS7000272).
    UnknownKey(String),
    /// The signature does not verify, or the header is unusable (AADSTS50013).
    Invalid,
}

/// Each issuer's published keys and whether its URL answers.
#[derive(Debug, Default)]
pub(crate) struct Issuers {
    /// Issuers whose URLs the fake serves (federated credentials' and
    /// those given keys).
    known: Vec<String>,
    jwks: HashMap<String, Value>,
    unreachable: Vec<String>,
}

// === impl SigningKey ===

impl SigningKey {
    /// A new RSA-2048 key (RS256).
    pub fn rsa(kid: &str) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation");
        Self {
            kid: kid.to_owned(),
            pair: Pair::Rsa(pair),
        }
    }

    /// A new P-256 key (ES256).
    pub fn ec(kid: &str) -> Self {
        let pair =
            EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256 key generation");
        Self {
            kid: kid.to_owned(),
            pair: Pair::Ec(pair),
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        let enc = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        match &self.pair {
            Pair::Rsa(k) => {
                let p = k.public_key();
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                    "n": enc(p.modulus().big_endian_without_leading_zero()),
                    "e": enc(p.exponent().big_endian_without_leading_zero())})
            }
            Pair::Ec(k) => {
                let point = k.public_key().as_ref();
                json!({"kty": "EC", "kid": self.kid, "use": "sig", "alg": "ES256",
                    "crv": "P-256", "x": enc(&point[1..33]), "y": enc(&point[33..65])})
            }
        }
    }

    /// A compact JWS of `claims`, signed with this key.
    pub fn sign(&self, claims: &Value) -> String {
        let alg = match self.pair {
            Pair::Rsa(_) => "RS256",
            Pair::Ec(_) => "ES256",
        };
        let header = json!({"alg": alg, "kid": self.kid}).to_string();
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let rng = SystemRandom::new();
        let sig = match &self.pair {
            Pair::Rsa(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                    .expect("RSA signing");
                sig
            }
            Pair::Ec(k) => k
                .sign(&rng, input.as_bytes())
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// The fake's own issuer keys: `fake-rs256` and `fake-es256`, made once
/// per process. Every issuer publishes them unless told otherwise.
pub fn builtin_keys() -> &'static [SigningKey; 2] {
    static KEYS: OnceLock<[SigningKey; 2]> = OnceLock::new();
    KEYS.get_or_init(|| [SigningKey::rsa("fake-rs256"), SigningKey::ec("fake-es256")])
}

/// The JWKS of [`builtin_keys`].
pub fn builtin_jwks() -> Value {
    json!({"keys": builtin_keys().iter().map(SigningKey::jwk).collect::<Vec<_>>()})
}

// === impl Issuers ===

impl Issuers {
    /// The issuers of the seed's federated credentials (built-in keys)
    /// and its seeded issuers (their own keys).
    pub(crate) fn from_seed(seed: &crate::Seed) -> Self {
        let mut issuers = Self::default();
        for fc in seed.apps.iter().flat_map(|a| &a.federated_credentials) {
            issuers.know(&fc.issuer);
        }
        for seeded in &seed.issuers {
            issuers.set_jwks(&seeded.issuer, seeded.jwks.clone());
        }
        issuers
    }

    /// Publishes `jwks` for `issuer` (replacing earlier keys).
    pub(crate) fn set_jwks(&mut self, issuer: &str, jwks: Value) {
        self.know(issuer);
        self.jwks.insert(issuer.to_owned(), jwks);
    }

    /// Serves `issuer`'s URLs (with the built-in keys until told others).
    pub(crate) fn know(&mut self, issuer: &str) {
        if !self.known.iter().any(|i| i == issuer) {
            self.known.push(issuer.to_owned());
        }
    }

    /// The hosts of the issuers served, for the TLS leaf's names.
    pub(crate) fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self.known.iter().filter_map(|i| issuer_host(i)).collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }

    /// Makes `issuer`'s discovery URL answer 503 (or answer again).
    pub(crate) fn set_reachable(&mut self, issuer: &str, reachable: bool) {
        self.unreachable.retain(|i| i != issuer);
        if !reachable {
            self.unreachable.push(issuer.to_owned());
        }
    }

    fn jwks(&self, issuer: &str) -> Value {
        self.jwks.get(issuer).cloned().unwrap_or_else(builtin_jwks)
    }

    /// Checks `jwt`'s signature against `issuer`'s keys, as Entra ID does
    /// once a federated credential matched.
    pub(crate) fn check_signature(&self, issuer: &str, jwt: &str) -> Result<(), SignatureError> {
        let mut parts = jwt.trim().split('.');
        let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SignatureError::Invalid);
        };
        let header: Value = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(SignatureError::Invalid)?;
        let kid = header["kid"].as_str().unwrap_or("").to_owned();
        let jwks = self.jwks(issuer);
        let keys = jwks["keys"].as_array().cloned().unwrap_or_default();
        let key = keys
            .iter()
            .find(|k| k["kid"].as_str() == Some(kid.as_str()))
            .ok_or_else(|| SignatureError::UnknownKey(kid.clone()))?;
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| SignatureError::Invalid)?;
        let input = format!("{h}.{p}");
        let field = |name: &str| {
            key[name]
                .as_str()
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
        };
        let ok = match (header["alg"].as_str(), key["kty"].as_str()) {
            (Some("RS256"), Some("RSA")) => match (field("n"), field("e")) {
                (Some(n), Some(e)) => RsaPublicKeyComponents { n, e }
                    .verify(&RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &sig)
                    .is_ok(),
                _ => false,
            },
            (Some("ES256"), Some("EC")) => match (field("x"), field("y")) {
                (Some(x), Some(y)) => {
                    let point = [&[4u8][..], &x, &y].concat();
                    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                        .verify(input.as_bytes(), &sig)
                        .is_ok()
                }
                _ => false,
            },
            _ => false,
        };
        ok.then_some(()).ok_or(SignatureError::Invalid)
    }

    /// Serves an issuer's discovery document or JWKS when `req` asks for
    /// one of the known issuers' URLs; `None` for any other URL.
    pub(crate) fn serve(&self, req: &Req) -> Option<Resp> {
        let path = req.path.as_str();
        for issuer in &self.known {
            let Some(rest) = issuer.strip_prefix("https://") else {
                continue;
            };
            let (host, base) = rest.split_once('/').map_or((rest, ""), |(h, b)| (h, b));
            if !host.eq_ignore_ascii_case(&req.host) {
                continue;
            }
            let base = format!("/{}", base.trim_end_matches('/'));
            let base = base.trim_end_matches('/');
            let discovery = format!("{base}/.well-known/openid-configuration");
            let jwks = format!("{base}{JWKS_PATH}");
            if path != discovery && path != jwks {
                continue;
            }
            if self.unreachable.contains(issuer) {
                return Some(wire::json(503, &json!({"error": "issuer unavailable"})));
            }
            return Some(if path == discovery {
                wire::json(
                    200,
                    &json!({"issuer": issuer,
                        "jwks_uri": format!("https://{host}{jwks}"),
                        "response_types_supported": ["id_token"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256", "ES256"]}),
                )
            } else {
                wire::json(200, &self.jwks(issuer))
            });
        }
        None
    }
}

/// The host of an `https://` issuer URL, for the TLS leaf's names.
pub(crate) fn issuer_host(issuer: &str) -> Option<String> {
    let rest = issuer.strip_prefix("https://")?;
    let host = rest.split('/').next()?;
    let host = host.split(':').next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}
