//! Writing a PKCS#12 (PFX) file from a PEM certificate bundle, for
//! `objectFormat: pfx` on a certificate-backed secret stored as
//! `application/x-pem-file` (an extension: upstream silently returns the PEM
//! text there, upstream issue #1945).
//!
//! The file is what `openssl pkcs12 -export -passout pass:` writes with
//! OpenSSL 3's defaults: the certificates in a PBES2-encrypted safe, the key
//! in a PBES2-shrouded key bag (PBKDF2-HMAC-SHA256, 2048 iterations,
//! AES-256-CBC), both bags of the key's certificate tagged with the same
//! `localKeyID` (SHA-1 of the certificate), and an HMAC-SHA256 MAC whose
//! key comes from the PKCS#12 KDF over the empty password as an empty
//! BMPString (its two-byte terminator), which OpenSSL and Go's pkcs12
//! packages try first for "no password"; PBKDF2 takes the empty password
//! as zero bytes, as OpenSSL and `go-pkcs12` do. `render/pkcs12.rs` reads
//! it back.
//!
//! Salts and IVs are derived from the contents (SHA-256 of a label, the
//! key and the certificates) instead of drawn at random, so the same
//! secret version always gives the same bytes: the driver rewrites a file
//! (and re-syncs Kubernetes Secrets) whenever the bytes change, so random
//! salts would rotate the file on every poll. With an empty password the
//! encryption protects nothing anyway; whoever has the file has the key.
//!
//! Pure. Key bytes live in zeroizing buffers where this module owns them.

use der::asn1::{Any, ObjectIdentifier as Oid, OctetString, SetOfVec};
use der::{Decode as _, Encode as _};
use hmac::{KeyInit as _, Mac as _};
use pkcs12::kdf::{Pkcs12KeyType, derive_key};
use sha2::Digest as _;
use thiserror::Error;
use x509_parser::prelude::FromDer as _;
use zeroize::Zeroizing;

use super::der::{self as asn1, Curve};
use super::pem;
use super::private_key::{self, PrivateKeyError};

/// OpenSSL 3's default work factor (`PKCS12_DEFAULT_ITER`) for PBKDF2 and
/// the MAC.
const ITERATIONS: u32 = 2048;
/// Salt length OpenSSL writes (`PKCS5_SALT_LEN`).
const SALT_LEN: usize = 8;

const DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
const ENCRYPTED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.6");
const SHROUDED_KEY_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.2");
const CERT_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.3");
const X509_CERTIFICATE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.22.1");
const LOCAL_KEY_ID: Oid = Oid::new_unwrap("1.2.840.113549.1.9.21");
const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");

/// The empty password as an empty BMPString: its NUL terminator only.
const EMPTY_BMP: &[u8] = &[0, 0];

/// Why a PEM bundle cannot become a PFX. Never contains key material.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PfxError {
    #[error("objectFormat pfx: the PEM secret holds no private key")]
    NoKey,
    #[error("objectFormat pfx: the PEM secret holds {0} private keys; a PFX is built from one")]
    ManyKeys(usize),
    #[error("objectFormat pfx: the PEM secret holds no certificate")]
    NoCertificate,
    #[error("objectFormat pfx: the PEM secret's private key is encrypted")]
    EncryptedKey,
    #[error("objectFormat pfx: {0}")]
    Key(#[from] PrivateKeyError),
    #[error("objectFormat pfx: certificate #{0} of the PEM secret cannot be parsed as X.509")]
    Certificate(usize),
    #[error("objectFormat pfx: the private key belongs to none of the PEM secret's certificates")]
    KeyMismatch,
    #[error(
        "objectFormat pfx: the PEM secret has {begun} BEGIN lines but only {complete} complete blocks: a block never ends or is cut short; store the whole bundle"
    )]
    Truncated { begun: usize, complete: usize },
    #[error("objectFormat pfx: building the PKCS#12 failed: {0}")]
    Encode(String),
}

impl From<der::Error> for PfxError {
    fn from(e: der::Error) -> Self {
        Self::Encode(e.to_string())
    }
}

impl From<pkcs5::Error> for PfxError {
    fn from(e: pkcs5::Error) -> Self {
        Self::Encode(e.to_string())
    }
}

/// A PFX and the order its certificates were put in.
pub struct Built {
    pub der: Zeroizing<Vec<u8>>,
    /// Set when the chain could not be ordered leaf → root (the file order
    /// is kept); for a warning.
    pub unordered: Option<String>,
}

/// Builds the PFX of a PEM bundle: exactly one private key (PKCS#8, or
/// PKCS#1 / SEC1 as OpenSSL writes them), at least one certificate, one of
/// them the key's. Certificates are ordered leaf → root where possible.
/// Every block begun must be complete: a PFX never holds fewer
/// certificates than the bundle meant.
pub fn from_pem(pem_text: &[u8]) -> Result<Built, PfxError> {
    let blocks = pem::decode_all(pem_text);
    let begun = pem::begin_lines(pem_text);
    if begun > blocks.len() {
        return Err(PfxError::Truncated {
            begun,
            complete: blocks.len(),
        });
    }
    let mut keys = Vec::new();
    let mut certs = Vec::new();
    for block in &blocks {
        let encrypted = block
            .headers
            .get("Proc-Type")
            .is_some_and(|v| v.contains("ENCRYPTED"));
        match block.kind.as_str() {
            "ENCRYPTED PRIVATE KEY" => return Err(PfxError::EncryptedKey),
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" if encrypted => {
                return Err(PfxError::EncryptedKey);
            }
            "PRIVATE KEY" => keys.push(private_key::normalize_pkcs8(&block.bytes)?),
            "RSA PRIVATE KEY" => keys.push(from_pkcs1(&block.bytes)?),
            "EC PRIVATE KEY" => keys.push(from_sec1(&block.bytes)?),
            pem::CERTIFICATE => certs.push(block.bytes.to_vec()),
            _ => {}
        }
    }
    let key = match keys.len() {
        0 => return Err(PfxError::NoKey),
        1 => keys.remove(0),
        n => return Err(PfxError::ManyKeys(n)),
    };
    if certs.is_empty() {
        return Err(PfxError::NoCertificate);
    }
    let public = public_key_bits(&key)?;
    let owner = owner_of(&certs, &public)?;
    let (order, outcome) = super::chain::order(&certs);
    let unordered = match outcome {
        super::chain::Outcome::Unordered(reason) => Some(reason),
        _ => None,
    };
    let ordered: Vec<(&[u8], bool)> = order
        .iter()
        .map(|&i| (certs[i].as_slice(), i == owner))
        .collect();
    let der = encode(&key, &ordered)?;
    Ok(Built { der, unordered })
}

/// A PKCS#1 `RSAPrivateKey` wrapped as PKCS#8.
fn from_pkcs1(pkcs1: &[u8]) -> Result<Zeroizing<Vec<u8>>, PfxError> {
    let algorithm = asn1::sequence(&[asn1::OID_RSA_ENCRYPTION, asn1::NULL]);
    Ok(private_key::normalize_pkcs8(&pkcs8(&algorithm, pkcs1))?)
}

/// A SEC1 `ECPrivateKey` (with its curve) wrapped as PKCS#8.
fn from_sec1(sec1_der: &[u8]) -> Result<Zeroizing<Vec<u8>>, PfxError> {
    let key = sec1::EcPrivateKey::from_der(sec1_der)
        .map_err(|_| PrivateKeyError::Ec("not a SEC1 ECPrivateKey"))?;
    let curve = key
        .parameters
        .and_then(|p| p.named_curve())
        .and_then(|oid| oid.to_der().ok())
        .and_then(|encoded| Curve::from_oid(&encoded))
        .ok_or(PrivateKeyError::UnsupportedCurve)?;
    Ok(private_key::normalize_pkcs8(&pkcs8(
        &curve.algorithm(),
        sec1_der,
    ))?)
}

fn pkcs8(algorithm: &[u8], body: &[u8]) -> Zeroizing<Vec<u8>> {
    let body = Zeroizing::new(asn1::octet_string(body));
    Zeroizing::new(asn1::sequence(&[
        &asn1::unsigned_integer(&[0]),
        algorithm,
        &body,
    ]))
}

/// The subjectPublicKey bits of a normalized PKCS#8 key: `RSAPublicKey`
/// DER for RSA, the uncompressed point for EC.
fn public_key_bits(pkcs8: &[u8]) -> Result<Vec<u8>, PfxError> {
    let info = pkcs8::PrivateKeyInfoRef::from_der(pkcs8)
        .map_err(|e| PrivateKeyError::NotPkcs8(e.to_string()))?;
    let body = info.private_key.as_bytes();
    if let Ok(rsa) = pkcs1::RsaPrivateKeyRef::from_der(body) {
        return Ok(asn1::sequence(&[
            &asn1::unsigned_integer(rsa.modulus.as_bytes()),
            &asn1::unsigned_integer(rsa.public_exponent.as_bytes()),
        ]));
    }
    let ec = sec1::EcPrivateKey::from_der(body)
        .map_err(|_| PrivateKeyError::Ec("not a SEC1 ECPrivateKey"))?;
    ec.public_key
        .map(<[u8]>::to_vec)
        .ok_or(PfxError::Key(PrivateKeyError::Ec("no public key")))
}

/// The index of the certificate whose public key is `public`.
fn owner_of(certs: &[Vec<u8>], public: &[u8]) -> Result<usize, PfxError> {
    for (i, der) in certs.iter().enumerate() {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
            .map_err(|_| PfxError::Certificate(i + 1))?;
        if cert.public_key().subject_public_key.data.as_ref() == public {
            return Ok(i);
        }
    }
    Err(PfxError::KeyMismatch)
}

/// Encodes the PFX: `[EncryptedData(certificates), Data(shrouded key)]`
/// and the MAC over them.
fn encode(key: &[u8], certs: &[(&[u8], bool)]) -> Result<Zeroizing<Vec<u8>>, PfxError> {
    let seed = Seed::new(key, certs);
    let local_key_id = certs
        .iter()
        .find(|(_, owns)| *owns)
        .map(|(der, _)| sha1::Sha1::digest(der).to_vec())
        .unwrap_or_default();
    let attributes = local_key_id_attributes(&local_key_id)?;

    let cert_bags = certs
        .iter()
        .map(|&(der, owns)| {
            let bag = pkcs12::CertBag {
                cert_id: X509_CERTIFICATE,
                cert_value: OctetString::new(der)?,
            };
            Ok(pkcs12::SafeBag {
                bag_id: CERT_BAG,
                bag_value: bag.to_der()?,
                bag_attributes: owns.then(|| attributes.clone()),
            })
        })
        .collect::<Result<Vec<_>, der::Error>>()?;
    let cert_safe = cert_bags.to_der()?;
    let cert_scheme = pbes2(&seed, "certificates")?;
    let encrypted_certs = cms::encrypted_data::EncryptedData {
        version: cms::content_info::CmsVersion::V0,
        enc_content_info: cms::enveloped_data::EncryptedContentInfo {
            content_type: DATA,
            content_enc_alg: algorithm(&cert_scheme)?,
            encrypted_content: Some(OctetString::new(cert_scheme.encrypt(b"", &cert_safe)?)?),
        },
        unprotected_attrs: None,
    };

    let key_scheme = pbes2(&seed, "key")?;
    let shrouded = pkcs12::pbe_params::EncryptedPrivateKeyInfo {
        encryption_algorithm: algorithm(&key_scheme)?,
        encrypted_data: OctetString::new(key_scheme.encrypt(b"", key)?)?,
    };
    let key_safe = vec![pkcs12::SafeBag {
        bag_id: SHROUDED_KEY_BAG,
        bag_value: shrouded.to_der()?,
        bag_attributes: Some(attributes),
    }]
    .to_der()?;

    let auth_safe = Zeroizing::new(
        vec![
            cms::content_info::ContentInfo {
                content_type: ENCRYPTED_DATA,
                content: Any::encode_from(&encrypted_certs)?,
            },
            cms::content_info::ContentInfo {
                content_type: DATA,
                content: Any::encode_from(&OctetString::new(key_safe)?)?,
            },
        ]
        .to_der()?,
    );
    let mac_salt = seed.bytes::<SALT_LEN>("mac salt");
    let mac_key = Zeroizing::new(derive_key::<sha2::Sha256>(
        EMPTY_BMP,
        &mac_salt,
        Pkcs12KeyType::Mac,
        ITERATIONS as i32,
        32,
    ));
    let mut hmac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&mac_key)
        .map_err(|_| PfxError::Encode("bad MAC key length".into()))?;
    hmac.update(&auth_safe);
    let pfx = pkcs12::Pfx {
        version: pkcs12::pfx::Version::V3,
        auth_safe: cms::content_info::ContentInfo {
            content_type: DATA,
            content: Any::encode_from(&OctetString::new(auth_safe.as_slice())?)?,
        },
        mac_data: Some(pkcs12::MacData {
            mac: pkcs12::DigestInfo {
                algorithm: spki::AlgorithmIdentifierOwned {
                    oid: SHA256,
                    parameters: Some(Any::null()),
                },
                digest: OctetString::new(hmac.finalize().into_bytes().to_vec())?,
            },
            mac_salt: OctetString::new(mac_salt.to_vec())?,
            iterations: ITERATIONS as i32,
        }),
    };
    Ok(Zeroizing::new(pfx.to_der()?))
}

/// `bagAttributes` holding `localKeyID`.
fn local_key_id_attributes(id: &[u8]) -> Result<spki::Attributes, der::Error> {
    let value = Any::encode_from(&OctetString::new(id)?)?;
    let attribute = spki::Attribute {
        oid: LOCAL_KEY_ID,
        values: SetOfVec::try_from(vec![value])?,
    };
    SetOfVec::try_from(vec![attribute])
}

/// PBES2 parameters: PBKDF2-HMAC-SHA256 and AES-256-CBC, salt and IV from
/// the seed under `label`.
fn pbes2(seed: &Seed, label: &str) -> Result<pkcs5::pbes2::Parameters, PfxError> {
    let salt = seed.bytes::<SALT_LEN>(&format!("{label} salt"));
    let iv = seed.bytes::<16>(&format!("{label} iv"));
    Ok(pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(
        ITERATIONS, &salt, iv,
    )?)
}

/// The `AlgorithmIdentifier` of a PBES2 scheme.
fn algorithm(
    params: &pkcs5::pbes2::Parameters,
) -> Result<spki::AlgorithmIdentifierOwned, PfxError> {
    let encoded = pkcs5::EncryptionScheme::from(params.clone()).to_der()?;
    Ok(spki::AlgorithmIdentifierOwned::from_der(&encoded)?)
}

/// Deterministic salts and IVs: SHA-256 over the contents, then per label.
struct Seed(Zeroizing<[u8; 32]>);

impl Seed {
    fn new(key: &[u8], certs: &[(&[u8], bool)]) -> Self {
        let mut digest = sha2::Sha256::new();
        digest.update(b"akv-csi-provider pfx v1");
        for part in std::iter::once(key).chain(certs.iter().map(|(der, _)| *der)) {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        Self(Zeroizing::new(digest.finalize().into()))
    }

    fn bytes<const N: usize>(&self, label: &str) -> [u8; N] {
        let mut digest = sha2::Sha256::new();
        digest.update(*self.0);
        digest.update(label.as_bytes());
        let full: [u8; 32] = digest.finalize().into();
        let mut out = [0u8; N];
        out.copy_from_slice(&full[..N]);
        out
    }
}

/// The `cms`/`pkcs12` crates' `spki` and `x509-cert` types.
mod spki {
    pub use cms::cert::x509::attr::{Attribute, Attributes};
    pub use cms::cert::x509::spki::AlgorithmIdentifierOwned;
}

#[cfg(test)]
mod tests;
