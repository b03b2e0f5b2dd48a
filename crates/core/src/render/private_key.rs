//! A private key from a PKCS#12 file, re-encoded the way upstream writes it:
//! PKCS#8 version 0 with no attributes (Go's `x509.MarshalPKCS8PrivateKey`
//! after parsing), which is also what `openssl pkey` prints. RSA keys keep
//! their PKCS#1 body under `rsaEncryption` with NULL parameters; EC keys on
//! P-256/384/521 get a SEC1 body with the scalar padded to the curve size,
//! no inner parameters and the public point recomputed from the scalar.
//!
//! Pure. Key bytes live in zeroizing buffers.

use der::{Decode as _, Encode as _};
use thiserror::Error;
use zeroize::Zeroizing;

use super::der::{self as asn1, Curve};

/// `rsaEncryption`.
const RSA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-ecPublicKey`.
const EC: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// Why a key cannot be re-encoded. Never contains key bytes.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PrivateKeyError {
    #[error("the private key is not PKCS#8: {0}")]
    NotPkcs8(String),
    #[error("found unknown private key type in PKCS#8 wrapping (algorithm {0})")]
    UnsupportedAlgorithm(String),
    #[error("invalid RSA private key: {0}")]
    Rsa(String),
    #[error("unsupported elliptic curve of the private key (only P-256, P-384 and P-521)")]
    UnsupportedCurve,
    #[error("invalid elliptic curve private key: {0}")]
    Ec(&'static str),
}

/// Re-encodes one PKCS#8 key as upstream writes it.
pub fn normalize_pkcs8(pkcs8: &[u8]) -> Result<Zeroizing<Vec<u8>>, PrivateKeyError> {
    let info = pkcs8::PrivateKeyInfoRef::from_der(pkcs8)
        .map_err(|e| PrivateKeyError::NotPkcs8(e.to_string()))?;
    let body = info.private_key.as_bytes();
    match info.algorithm.oid {
        RSA => rsa(body),
        EC => {
            let params = info.algorithm.parameters.map(|p| p.to_der());
            let curve = match params {
                Some(Ok(encoded)) => Curve::from_oid(&encoded),
                _ => None,
            };
            ec(curve.ok_or(PrivateKeyError::UnsupportedCurve)?, body)
        }
        other => Err(PrivateKeyError::UnsupportedAlgorithm(other.to_string())),
    }
}

fn rsa(pkcs1: &[u8]) -> Result<Zeroizing<Vec<u8>>, PrivateKeyError> {
    pkcs1::RsaPrivateKeyRef::from_der(pkcs1).map_err(|e| PrivateKeyError::Rsa(e.to_string()))?;
    let algorithm = asn1::sequence(&[asn1::OID_RSA_ENCRYPTION, asn1::NULL]);
    Ok(pkcs8_v0(&algorithm, pkcs1))
}

fn ec(curve: Curve, sec1_der: &[u8]) -> Result<Zeroizing<Vec<u8>>, PrivateKeyError> {
    let key = sec1::EcPrivateKey::from_der(sec1_der)
        .map_err(|_| PrivateKeyError::Ec("not a SEC1 ECPrivateKey"))?;
    let scalar = Zeroizing::new(
        curve
            .fixed_width(key.private_key)
            .ok_or(PrivateKeyError::Ec("the scalar is longer than the curve"))?,
    );
    let point = curve.public_point(&scalar).ok_or(PrivateKeyError::Ec(
        "the scalar is zero or not below the group order",
    ))?;
    let inner = Zeroizing::new(asn1::sequence(&[
        &asn1::unsigned_integer(&[1]),
        &asn1::octet_string(&scalar),
        &asn1::tlv(0xA1, &asn1::bit_string(&point)),
    ]));
    Ok(pkcs8_v0(&curve.algorithm(), &inner))
}

/// `PrivateKeyInfo { version 0, algorithm, privateKey }`.
fn pkcs8_v0(algorithm: &[u8], body: &[u8]) -> Zeroizing<Vec<u8>> {
    let key = Zeroizing::new(asn1::octet_string(body));
    Zeroizing::new(asn1::sequence(&[
        &asn1::unsigned_integer(&[0]),
        algorithm,
        &key,
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::render::fixtures::pem_der;

    #[test]
    fn canonical_keys_are_unchanged() {
        for path in ["rsa/key.pem", "ec/key.pem", "p521/key.pem"] {
            let der = pem_der(path);
            assert_eq!(normalize_pkcs8(&der).unwrap().as_slice(), der, "{path}");
        }
    }

    #[test]
    fn ec_keys_lose_attributes_and_get_their_public_point() {
        let canonical = pem_der("ec/key.pem");
        // The same key as PKCS#8 whose SEC1 body has the curve parameters
        // and no public key, and with an attributes set: what other
        // exporters write.
        let info = pkcs8::PrivateKeyInfoRef::from_der(&canonical).unwrap();
        let sec1 = sec1::EcPrivateKey::from_der(info.private_key.as_bytes()).unwrap();
        let inner = asn1::sequence(&[
            &asn1::unsigned_integer(&[1]),
            &asn1::octet_string(sec1.private_key),
            &asn1::tlv(0xA0, Curve::P256.oid()),
        ]);
        let attributes = asn1::tlv(0xA0, &asn1::sequence(&[]));
        let variant = asn1::sequence(&[
            &asn1::unsigned_integer(&[0]),
            &Curve::P256.algorithm(),
            &asn1::octet_string(&inner),
            &attributes,
        ]);
        assert_eq!(normalize_pkcs8(&variant).unwrap().as_slice(), canonical);
    }

    #[test]
    fn hostile_keys_are_errors() {
        assert!(matches!(
            normalize_pkcs8(b"\x30\x03\x02\x01"),
            Err(PrivateKeyError::NotPkcs8(_))
        ));
        let ed25519 = asn1::sequence(&[
            &asn1::unsigned_integer(&[0]),
            &asn1::sequence(&[&[0x06, 0x03, 0x2B, 0x65, 0x70]]),
            &asn1::octet_string(&asn1::octet_string(&[7; 32])),
        ]);
        assert_eq!(
            normalize_pkcs8(&ed25519).unwrap_err().to_string(),
            "found unknown private key type in PKCS#8 wrapping (algorithm 1.3.101.112)"
        );
        let garbage_rsa = pkcs8_v0(
            &asn1::sequence(&[asn1::OID_RSA_ENCRYPTION, asn1::NULL]),
            b"\x30\x00",
        );
        assert!(matches!(
            normalize_pkcs8(&garbage_rsa),
            Err(PrivateKeyError::Rsa(_))
        ));
        let zero_scalar = pkcs8_v0(
            &Curve::P256.algorithm(),
            &asn1::sequence(&[&asn1::unsigned_integer(&[1]), &asn1::octet_string(&[0; 32])]),
        );
        assert!(matches!(
            normalize_pkcs8(&zero_scalar),
            Err(PrivateKeyError::Ec(_))
        ));
        let no_curve = pkcs8_v0(
            &asn1::sequence(&[asn1::OID_EC_PUBLIC_KEY]),
            &asn1::sequence(&[&asn1::unsigned_integer(&[1]), &asn1::octet_string(&[1; 32])]),
        );
        assert_eq!(
            normalize_pkcs8(&no_curve),
            Err(PrivateKeyError::UnsupportedCurve)
        );
    }
}
