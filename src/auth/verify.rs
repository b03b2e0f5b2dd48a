//! Verification of a pod's service-account token (a compact JWS) against
//! its issuer's public keys: the signature (RS256 or ES256 only), `exp`,
//! `nbf`, `aud` and `iss`. Used by the `service-account` token-cache scope
//! to decide whether a pod may be served a token obtained with another
//! pod's service-account token (see `auth/issuer.rs` for the keys).
//!
//! Pure: no I/O, no clock (callers pass `now`). It must not log or return
//! the token, and its errors carry claim names, never claim values of the
//! signature or payload bytes.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use thiserror::Error;

/// Clock skew tolerated on `nbf` (the API server's and this node's clocks).
pub const NBF_LEEWAY_SECS: i64 = 60;

/// Most keys read from one JWKS document.
pub const MAX_KEYS: usize = 32;

/// The claims a workload-identity exchange is decided on, once verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    /// Sorted, so two tokens naming the same audiences compare equal.
    pub aud: Vec<String>,
    pub exp: i64,
}

/// Why a token is not verified.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Invalid {
    #[error("not a JWT: {0}")]
    Malformed(&'static str),
    #[error("algorithm {0:?} is not accepted (RS256 or ES256 only)")]
    Algorithm(String),
    #[error("no key of the issuer has the token's key id")]
    UnknownKey,
    #[error("the signature does not verify")]
    Signature,
    #[error("the token has expired (exp)")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the audience (aud) does not include {0}")]
    Audience(String),
    #[error("the issuer (iss) is not an https URL")]
    Issuer,
}

/// A JWS algorithm this module accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
}

/// A token split and decoded, not yet verified.
pub struct Parsed<'a> {
    pub alg: Alg,
    pub kid: Option<String>,
    pub claims: Claims,
    nbf: Option<i64>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

/// One public key of a JWKS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    key: PublicKey,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PublicKey {
    /// Modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// Uncompressed P-256 point (`04 || x || y`).
    P256(Vec<u8>),
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<f64>,
    nbf: Option<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

/// Splits and decodes `jwt`; checks nothing but its shape and algorithm.
pub fn parse(jwt: &str) -> Result<Parsed<'_>, Invalid> {
    let mut parts = jwt.trim().split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Invalid::Malformed("not three segments"));
    };
    let header: Header = decode_json(header, "header")?;
    let alg = match header.alg.as_str() {
        "RS256" => Alg::Rs256,
        "ES256" => Alg::Es256,
        other => return Err(Invalid::Algorithm(other.chars().take(16).collect())),
    };
    let raw: RawClaims = decode_json(payload, "payload")?;
    let signature = b64(signature).ok_or(Invalid::Malformed("signature encoding"))?;
    let signing_input = &jwt.trim()[..header_len(jwt.trim())];
    let (nbf, claims) = claims(raw)?;
    Ok(Parsed {
        alg,
        kid: header.kid,
        claims,
        nbf,
        signing_input,
        signature,
    })
}

/// Reads a JWKS document: RSA and P-256 signing keys, at most [`MAX_KEYS`];
/// other keys are skipped.
pub fn parse_jwks(body: &[u8]) -> Result<Vec<Jwk>, String> {
    let raw: RawJwks =
        serde_json::from_slice(body).map_err(|e| format!("invalid JWKS JSON: {e}"))?;
    Ok(raw
        .keys
        .into_iter()
        .filter_map(|v| serde_json::from_value::<RawJwk>(v).ok())
        .filter_map(jwk)
        .take(MAX_KEYS)
        .collect())
}

// === impl Parsed ===

impl Parsed<'_> {
    /// Checks `exp`, `nbf`, that `aud` includes `audience` and that `iss`
    /// is an https URL (the discovery document must then confirm it).
    pub fn check_claims(&self, audience: &str, now: i64) -> Result<(), Invalid> {
        if self.claims.exp <= now {
            return Err(Invalid::Expired);
        }
        if self.nbf.is_some_and(|nbf| nbf > now + NBF_LEEWAY_SECS) {
            return Err(Invalid::NotYetValid);
        }
        if !self.claims.aud.iter().any(|a| a == audience) {
            return Err(Invalid::Audience(audience.to_owned()));
        }
        if !self.claims.iss.starts_with("https://") {
            return Err(Invalid::Issuer);
        }
        Ok(())
    }

    /// The key of `keys` the token names (by `kid`; without one, the only
    /// key of the right type).
    pub fn key_in<'k>(&self, keys: &'k [Jwk]) -> Option<&'k Jwk> {
        let fits = |k: &&Jwk| k.fits(self.alg);
        match &self.kid {
            Some(kid) => keys
                .iter()
                .filter(fits)
                .find(|k| k.kid.as_deref() == Some(kid)),
            None => {
                let mut candidates = keys.iter().filter(fits);
                let only = candidates.next();
                candidates.next().is_none().then_some(only).flatten()
            }
        }
    }

    /// Verifies the signature with `key`.
    pub fn verify_signature(&self, key: &Jwk) -> Result<(), Invalid> {
        let message = self.signing_input.as_bytes();
        let ok = match (&key.key, self.alg) {
            (PublicKey::Rsa { n, e }, Alg::Rs256) => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, &self.signature)
                .is_ok(),
            (PublicKey::P256(point), Alg::Es256) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, &self.signature)
                    .is_ok()
            }
            _ => false,
        };
        ok.then_some(()).ok_or(Invalid::Signature)
    }
}

// === impl Jwk ===

impl Jwk {
    fn fits(&self, alg: Alg) -> bool {
        matches!(
            (&self.key, alg),
            (PublicKey::Rsa { .. }, Alg::Rs256) | (PublicKey::P256(_), Alg::Es256)
        )
    }
}

fn jwk(raw: RawJwk) -> Option<Jwk> {
    if raw.usage.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let key = match (raw.kty.as_deref()?, raw.alg.as_deref()) {
        ("RSA", None | Some("RS256")) => PublicKey::Rsa {
            n: b64(raw.n.as_deref()?)?,
            e: b64(raw.e.as_deref()?)?,
        },
        ("EC", None | Some("ES256")) if raw.crv.as_deref() == Some("P-256") => {
            let (x, y) = (b64(raw.x.as_deref()?)?, b64(raw.y.as_deref()?)?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            PublicKey::P256([&[4u8][..], &x, &y].concat())
        }
        _ => return None,
    };
    Some(Jwk { kid: raw.kid, key })
}

fn claims(raw: RawClaims) -> Result<(Option<i64>, Claims), Invalid> {
    let mut aud = match raw.aud {
        Some(Audience::One(a)) => vec![a],
        Some(Audience::Many(a)) => a,
        None => return Err(Invalid::Malformed("no aud claim")),
    };
    aud.sort();
    aud.dedup();
    let exp = raw
        .exp
        .filter(|e| e.is_finite())
        .ok_or(Invalid::Malformed("no exp claim"))?;
    let claims = Claims {
        iss: raw.iss.ok_or(Invalid::Malformed("no iss claim"))?,
        sub: raw.sub.ok_or(Invalid::Malformed("no sub claim"))?,
        aud,
        // Float seconds are legal in a NumericDate; truncation is intended.
        exp: exp as i64,
    };
    Ok((raw.nbf.filter(|n| n.is_finite()).map(|n| n as i64), claims))
}

/// Length of `header.payload` in a compact JWS.
fn header_len(jwt: &str) -> usize {
    jwt.rfind('.').unwrap_or(0)
}

fn decode_json<T: serde::de::DeserializeOwned>(
    segment: &str,
    what: &'static str,
) -> Result<T, Invalid> {
    let bytes = b64(segment).ok_or(Invalid::Malformed(what))?;
    serde_json::from_slice(&bytes).map_err(|_| Invalid::Malformed(what))
}

/// Decodes a JWT or JWK base64url field (padding tolerated).
pub(super) fn b64(segment: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(segment.trim_end_matches('=')).ok()
}

#[cfg(test)]
#[path = "verify/tests.rs"]
mod tests;
