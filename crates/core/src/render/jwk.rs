//! `objectType: key`: the public half of a Key Vault key (a JSON Web Key)
//! as a `-----BEGIN PUBLIC KEY-----` PEM of its SubjectPublicKeyInfo, byte
//! for byte what upstream (Go's `x509.MarshalPKIXPublicKey`) and
//! `openssl pkey -pubout` write: RSA and RSA-HSM from `n` and `e`, EC and
//! EC-HSM on P-256, P-384 and P-521 from `x` and `y`.
//!
//! Pure. Errors keep upstream's texts for unsupported key types and curves
//! and name the field for malformed input.

use base64::Engine as _;
use thiserror::Error;

use super::der::{self, Curve};
use super::pem;

/// The fields of a Key Vault key bundle's `key` that matter here, as sent
/// (base64url without padding).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Jwk {
    pub kty: Option<String>,
    pub crv: Option<String>,
    pub n: Option<String>,
    pub e: Option<String>,
    pub x: Option<String>,
    pub y: Option<String>,
}

/// Why a key cannot be written.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyError {
    #[error("failed to get key. key type '{0}' currently not supported")]
    UnsupportedType(String),
    #[error("curve {0} is not supported")]
    UnsupportedCurve(String),
    #[error("the key has no {0} (Key Vault sends it for this key type)")]
    MissingField(&'static str),
    #[error("the key's {field} is not base64url (illegal data at input byte {offset})")]
    Base64 { field: &'static str, offset: usize },
    #[error("invalid RSA public key: {0}")]
    InvalidRsa(&'static str),
    #[error("invalid {0} public key: the point is not on the curve")]
    InvalidPoint(&'static str),
}

/// Largest RSA public exponent accepted (Go holds it in an `int`).
const MAX_RSA_EXPONENT_BYTES: usize = 8;

/// The PEM of the key's SubjectPublicKeyInfo.
pub fn public_key_pem(jwk: &Jwk) -> Result<Vec<u8>, KeyError> {
    let kty = jwk.kty.as_deref().unwrap_or("");
    let spki = match kty {
        "RSA" | "RSA-HSM" => rsa_spki(jwk)?,
        "EC" | "EC-HSM" => ec_spki(jwk)?,
        other => return Err(KeyError::UnsupportedType(other.to_owned())),
    };
    Ok(pem::encode(pem::PUBLIC_KEY, &spki).to_vec())
}

fn rsa_spki(jwk: &Jwk) -> Result<Vec<u8>, KeyError> {
    let n = field(jwk.n.as_deref(), "n")?;
    let e = field(jwk.e.as_deref(), "e")?;
    if n.iter().all(|&b| b == 0) {
        return Err(KeyError::InvalidRsa("the modulus is zero"));
    }
    let e_digits = &e[e.iter().take_while(|&&b| b == 0).count()..];
    if e_digits.is_empty() {
        return Err(KeyError::InvalidRsa("the exponent is zero"));
    }
    if e_digits.len() > MAX_RSA_EXPONENT_BYTES
        || (e_digits.len() == MAX_RSA_EXPONENT_BYTES && e_digits[0] & 0x80 != 0)
    {
        return Err(KeyError::InvalidRsa("the exponent is larger than 2^63"));
    }
    let public_key = der::sequence(&[&der::unsigned_integer(&n), &der::unsigned_integer(&e)]);
    let algorithm = der::sequence(&[der::OID_RSA_ENCRYPTION, der::NULL]);
    Ok(der::subject_public_key_info(&algorithm, &public_key))
}

fn ec_spki(jwk: &Jwk) -> Result<Vec<u8>, KeyError> {
    let name = jwk.crv.as_deref().unwrap_or("");
    let curve =
        Curve::from_jwk_name(name).ok_or_else(|| KeyError::UnsupportedCurve(name.to_owned()))?;
    let label = match curve {
        Curve::P256 => "P-256",
        Curve::P384 => "P-384",
        Curve::P521 => "P-521",
    };
    let x = field(jwk.x.as_deref(), "x")?;
    let y = field(jwk.y.as_deref(), "y")?;
    let (Some(x), Some(y)) = (curve.fixed_width(&x), curve.fixed_width(&y)) else {
        return Err(KeyError::InvalidPoint(label));
    };
    let mut point = Vec::with_capacity(1 + 2 * curve.field_len());
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    if !curve.is_valid_point(&point) {
        return Err(KeyError::InvalidPoint(label));
    }
    Ok(der::subject_public_key_info(&curve.algorithm(), &point))
}

/// A base64url field, padding optional; missing or empty is an error.
fn field(value: Option<&str>, name: &'static str) -> Result<Vec<u8>, KeyError> {
    let text = value.unwrap_or("").trim_end_matches('=');
    if text.is_empty() {
        return Err(KeyError::MissingField(name));
    }
    URL_SAFE_LENIENT.decode(text).map_err(|e| KeyError::Base64 {
        field: name,
        offset: crate::go::base64_error_offset(&e, text.len()),
    })
}

const URL_SAFE_LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> (Jwk, String) {
        let json = crate::render::fixtures::bytes(&format!("jwk/{name}.json"));
        let value: serde_json::Value = serde_json::from_slice(json).unwrap();
        let get = |k: &str| value[k].as_str().map(str::to_owned);
        let jwk = Jwk {
            kty: get("kty"),
            crv: get("crv"),
            n: get("n"),
            e: get("e"),
            x: get("x"),
            y: get("y"),
        };
        let pem = crate::render::fixtures::text(&format!("jwk/{name}.pub.pem")).to_owned();
        (jwk, pem)
    }

    /// Checklist 21: SPKI `PUBLIC KEY` PEM for RSA/RSA-HSM/EC/EC-HSM on
    /// P-256/384/521, byte-identical to `openssl pkey -pubout`.
    #[test]
    fn public_keys_match_openssl() {
        for name in ["rsa2048", "rsa3072-e3", "ec-p256", "ec-p384", "ec-p521"] {
            let (jwk, want) = fixture(name);
            assert_eq!(
                String::from_utf8(public_key_pem(&jwk).unwrap()).unwrap(),
                want,
                "{name}"
            );
            let mut hsm = jwk.clone();
            hsm.kty = Some(format!("{}-HSM", jwk.kty.as_deref().unwrap()));
            assert_eq!(public_key_pem(&hsm).unwrap(), want.as_bytes(), "{name} HSM");
        }
    }

    #[test]
    fn other_types_and_curves_use_upstream_texts() {
        let (mut jwk, _) = fixture("ec-p256");
        jwk.crv = Some("P-256K".into());
        assert_eq!(
            public_key_pem(&jwk).unwrap_err().to_string(),
            "curve P-256K is not supported"
        );
        jwk.crv = None;
        assert_eq!(
            public_key_pem(&jwk).unwrap_err().to_string(),
            "curve  is not supported"
        );
        for kty in ["oct", "oct-HSM", "rsa", ""] {
            let jwk = Jwk {
                kty: Some(kty.into()),
                ..Jwk::default()
            };
            assert_eq!(
                public_key_pem(&jwk).unwrap_err().to_string(),
                format!("failed to get key. key type '{kty}' currently not supported")
            );
        }
        assert_eq!(
            public_key_pem(&Jwk::default()).unwrap_err(),
            KeyError::UnsupportedType(String::new())
        );
    }

    #[test]
    fn leading_zeros_and_padding_are_tolerated() {
        let (jwk, want) = fixture("rsa2048");
        let n = URL_SAFE_LENIENT.decode(jwk.n.as_deref().unwrap()).unwrap();
        let mut padded_n = vec![0u8, 0];
        padded_n.extend_from_slice(&n);
        let padded = Jwk {
            n: Some(base64::engine::general_purpose::URL_SAFE.encode(&padded_n)),
            ..jwk
        };
        assert_eq!(public_key_pem(&padded).unwrap(), want.as_bytes());
    }

    #[test]
    fn hostile_keys_are_errors_naming_the_field() {
        let (rsa, _) = fixture("rsa2048");
        let bad = |f: &dyn Fn(&mut Jwk)| {
            let mut jwk = rsa.clone();
            f(&mut jwk);
            public_key_pem(&jwk).unwrap_err()
        };
        assert_eq!(bad(&|j| j.n = None), KeyError::MissingField("n"));
        assert_eq!(
            bad(&|j| j.e = Some(String::new())),
            KeyError::MissingField("e")
        );
        assert_eq!(
            bad(&|j| j.n = Some("ab$d".into())),
            KeyError::Base64 {
                field: "n",
                offset: 2
            }
        );
        assert!(matches!(
            bad(&|j| j.n = Some("AAAA".into())),
            KeyError::InvalidRsa(_)
        ));
        assert!(matches!(
            bad(&|j| j.e = Some("AA".into())),
            KeyError::InvalidRsa(_)
        ));
        assert!(matches!(
            bad(&|j| j.e = Some("gAAAAAAAAAAA".into())),
            KeyError::InvalidRsa(_)
        ));
        let (ec, _) = fixture("ec-p384");
        let mut off_curve = ec.clone();
        off_curve.y = off_curve.x.clone();
        assert_eq!(
            public_key_pem(&off_curve).unwrap_err(),
            KeyError::InvalidPoint("P-384")
        );
        let mut too_long = ec;
        too_long.x = Some(URL_SAFE_LENIENT.encode([1u8; 49]));
        assert_eq!(
            public_key_pem(&too_long).unwrap_err(),
            KeyError::InvalidPoint("P-384")
        );
    }
}
