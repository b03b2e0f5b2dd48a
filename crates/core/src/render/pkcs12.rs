//! Reading a PKCS#12 (PFX) file with an empty password, as Key Vault hands
//! out certificate-backed secrets (`application/x-pkcs12`): every private
//! key (PKCS#8) and every certificate (DER), each in file order.
//!
//! Both encodings of "no password" are tried, as Go's `x/crypto/pkcs12` and
//! OpenSSL do: the two zero bytes of an empty BMPString (what `openssl
//! pkcs12 -passout pass:` writes) and the zero-length password (what .NET
//! and Key Vault write for a null password). Both legacy PKCS#12 PBE
//! (RC2, 3DES; SHA-1 MAC) and PBES2 (PBKDF2 with AES or 3DES; SHA-2 MACs,
//! what OpenSSL 3 writes by default) are read. Work factors are bounded, so
//! a hostile file cannot make a mount spin.
//!
//! Built on the RustCrypto `pkcs12`, `pkcs5` and `cms` types; `p12-keystore`
//! (built on the same crates) only accepts passwords as text and therefore
//! cannot read the zero-length form. Pure; decrypted keys are zeroized.

use cbc::cipher::{BlockModeDecrypt as _, KeyIvInit as _, block_padding::Pkcs7};
use der::asn1::{ObjectIdentifier as Oid, OctetString};
use der::{Decode as _, Encode as _, Tagged as _};
use hmac::{KeyInit as _, Mac as _};
use pkcs12::kdf::{Pkcs12KeyType, derive_key};
use thiserror::Error;
use zeroize::Zeroizing;

/// Highest PBKDF2 / PKCS#12 KDF iteration count accepted (OpenSSL writes
/// 2048, Windows 2000 to 10000).
const MAX_ITERATIONS: i64 = 1_000_000;
/// Highest total of key-derivation iterations one file may cost (MAC tries
/// and every decryption): a few counts at the maximum, not one per bag of a
/// file made of thousands.
const MAX_TOTAL_ITERATIONS: i64 = 10_000_000;

const DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
const ENCRYPTED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.6");
const KEY_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.1");
const SHROUDED_KEY_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.2");
const CERT_BAG: Oid = Oid::new_unwrap("1.2.840.113549.1.12.10.1.3");
const X509_CERTIFICATE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.22.1");
const PBE_SHA1_RC2_128: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.5");
const PBE_SHA1_RC2_40: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.6");
const PBE_SHA1_3DES: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.3");
const PBE_SHA1_2DES: Oid = Oid::new_unwrap("1.2.840.113549.1.12.1.4");
const PBES2: Oid = Oid::new_unwrap("1.2.840.113549.1.5.13");
const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");

/// The empty password as an empty BMPString: its NUL terminator only.
const EMPTY_BMP: &[u8] = &[0, 0];
/// The null password: no bytes at all.
const NULL_PASSWORD: &[u8] = &[];

/// What a PFX holds, in file order.
#[derive(Default)]
pub struct Contents {
    /// PKCS#8 `PrivateKeyInfo` DER, as stored.
    pub keys: Vec<Zeroizing<Vec<u8>>>,
    /// X.509 certificate DER.
    pub certs: Vec<Vec<u8>>,
}

/// Why a PFX could not be read. Never contains key material.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Pkcs12Error {
    #[error("pkcs12: error reading P12 data: {0}")]
    Malformed(String),
    #[error("pkcs12: can only decode v3 PFX PDU's")]
    Version,
    #[error("pkcs12: only password-protected PFX is implemented")]
    NotPasswordIntegrity,
    #[error(
        "pkcs12: decryption password incorrect (the file is protected by a password; Key Vault \
         certificates have none)"
    )]
    IncorrectPassword,
    #[error("pkcs12: unsupported {what} algorithm {oid}")]
    Unsupported { what: &'static str, oid: String },
    #[error("pkcs12: {what} iteration count {count} is out of range 1..={MAX_ITERATIONS}")]
    Iterations { what: &'static str, count: i64 },
    #[error("pkcs12: only X.509 certificates are supported in certificate bags")]
    CertificateType,
    #[error(
        "pkcs12: the file needs more than {MAX_TOTAL_ITERATIONS} key-derivation iterations in total"
    )]
    TooMuchWork,
}

/// Key-derivation iterations spent on one file so far.
#[derive(Default)]
struct Work(i64);

impl Work {
    fn spend(&mut self, rounds: i32) -> Result<(), Pkcs12Error> {
        self.0 += i64::from(rounds);
        if self.0 > MAX_TOTAL_ITERATIONS {
            return Err(Pkcs12Error::TooMuchWork);
        }
        Ok(())
    }
}

impl From<der::Error> for Pkcs12Error {
    fn from(e: der::Error) -> Self {
        Self::Malformed(e.to_string())
    }
}

/// Decodes a PFX protected by an empty password.
pub fn decode(pfx: &[u8]) -> Result<Contents, Pkcs12Error> {
    let pfx = pkcs12::Pfx::from_der(pfx)?;
    if pfx.version != pkcs12::pfx::Version::V3 {
        return Err(Pkcs12Error::Version);
    }
    if pfx.auth_safe.content_type != DATA {
        return Err(Pkcs12Error::NotPasswordIntegrity);
    }
    let auth_safe = OctetString::from_der(&pfx.auth_safe.content.to_der()?)?;
    let auth_safe = auth_safe.as_bytes();
    let work = &mut Work::default();
    match &pfx.mac_data {
        Some(mac) => {
            let password = if verify_mac(mac, EMPTY_BMP, auth_safe, work)? {
                EMPTY_BMP
            } else if verify_mac(mac, NULL_PASSWORD, auth_safe, work)? {
                NULL_PASSWORD
            } else {
                return Err(Pkcs12Error::IncorrectPassword);
            };
            read_auth_safe(auth_safe, password, work)
        }
        // No MAC: whichever password decrypts.
        None => read_auth_safe(auth_safe, EMPTY_BMP, work).or_else(|first| {
            read_auth_safe(auth_safe, NULL_PASSWORD, work).map_err(|second| match second {
                Pkcs12Error::TooMuchWork => second,
                _ => first,
            })
        }),
    }
}

/// Whether the MAC matches under `password` (raw PKCS#12 KDF password
/// bytes); an error for unsupported algorithms or work factors.
fn verify_mac(
    mac: &pkcs12::MacData,
    password: &[u8],
    data: &[u8],
    work: &mut Work,
) -> Result<bool, Pkcs12Error> {
    let rounds = iterations("MAC", i64::from(mac.iterations))?;
    work.spend(rounds)?;
    let salt = mac.mac_salt.as_bytes();
    let expected = mac.mac.digest.as_bytes();
    macro_rules! check {
        ($digest:ty) => {{
            let size = <$digest as hmac::digest::OutputSizeUser>::output_size();
            let key = Zeroizing::new(derive_key::<$digest>(
                password,
                salt,
                Pkcs12KeyType::Mac,
                rounds,
                size,
            ));
            let mut hmac = hmac::Hmac::<$digest>::new_from_slice(&key)
                .map_err(|_| Pkcs12Error::Malformed("bad MAC key length".into()))?;
            hmac.update(data);
            Ok(hmac.verify_slice(expected).is_ok())
        }};
    }
    match mac.mac.algorithm.oid {
        SHA1 => check!(sha1::Sha1),
        SHA256 => check!(sha2::Sha256),
        SHA384 => check!(sha2::Sha384),
        SHA512 => check!(sha2::Sha512),
        other => Err(Pkcs12Error::Unsupported {
            what: "MAC",
            oid: other.to_string(),
        }),
    }
}

fn iterations(what: &'static str, count: i64) -> Result<i32, Pkcs12Error> {
    if !(1..=MAX_ITERATIONS).contains(&count) {
        return Err(Pkcs12Error::Iterations { what, count });
    }
    i32::try_from(count).map_err(|_| Pkcs12Error::Iterations { what, count })
}

/// Walks the AuthenticatedSafe: plain and encrypted SafeContents.
fn read_auth_safe(
    auth_safe: &[u8],
    password: &[u8],
    work: &mut Work,
) -> Result<Contents, Pkcs12Error> {
    let infos = <Vec<cms::content_info::ContentInfo>>::from_der(auth_safe)?;
    let mut contents = Contents::default();
    for info in infos {
        let content = info.content.to_der()?;
        let safe = match info.content_type {
            DATA => Zeroizing::new(OctetString::from_der(&content)?.into_bytes().into_vec()),
            ENCRYPTED_DATA => {
                let data = cms::encrypted_data::EncryptedData::from_der(&content)?;
                let info = &data.enc_content_info;
                match &info.encrypted_content {
                    Some(ciphertext) => {
                        decrypt(&info.content_enc_alg, ciphertext.as_bytes(), password, work)?
                    }
                    None => continue,
                }
            }
            other => {
                return Err(Pkcs12Error::Unsupported {
                    what: "content type",
                    oid: other.to_string(),
                });
            }
        };
        read_bags(&safe, password, &mut contents, work)?;
    }
    Ok(contents)
}

/// Collects key and certificate bags; other bag types (CRLs, secrets) are
/// skipped.
fn read_bags(
    safe: &[u8],
    password: &[u8],
    contents: &mut Contents,
    work: &mut Work,
) -> Result<(), Pkcs12Error> {
    for bag in <Vec<pkcs12::SafeBag>>::from_der(safe)? {
        let value = explicit_zero(&bag.bag_value)?;
        match bag.bag_id {
            KEY_BAG => contents.keys.push(Zeroizing::new(value.to_vec())),
            SHROUDED_KEY_BAG => {
                let info = pkcs12::pbe_params::EncryptedPrivateKeyInfo::from_der(value)?;
                let key = decrypt(
                    &info.encryption_algorithm,
                    info.encrypted_data.as_bytes(),
                    password,
                    work,
                )?;
                contents.keys.push(key);
            }
            CERT_BAG => {
                let cert = pkcs12::CertBag::from_der(value)?;
                if cert.cert_id != X509_CERTIFICATE {
                    return Err(Pkcs12Error::CertificateType);
                }
                contents.certs.push(cert.cert_value.into_bytes().into_vec());
            }
            _ => {}
        }
    }
    Ok(())
}

/// The inner TLV of a `[0] EXPLICIT` wrapper.
fn explicit_zero(tlv: &[u8]) -> Result<&[u8], Pkcs12Error> {
    let any = der::asn1::AnyRef::from_der(tlv)?;
    let expected = der::Tag::ContextSpecific {
        constructed: true,
        number: der::TagNumber(0),
    };
    if any.tag() != expected {
        return Err(Pkcs12Error::Malformed(
            "a bag value is not [0] EXPLICIT".into(),
        ));
    }
    Ok(any.value())
}

/// Decrypts with a PKCS#12 PBE scheme or PBES2.
fn decrypt(
    algorithm: &spki_alg::AlgorithmIdentifierOwned,
    ciphertext: &[u8],
    password: &[u8],
    work: &mut Work,
) -> Result<Zeroizing<Vec<u8>>, Pkcs12Error> {
    let params = algorithm
        .parameters
        .as_ref()
        .ok_or_else(|| Pkcs12Error::Malformed("encryption parameters are missing".into()))?
        .to_der()?;
    match algorithm.oid {
        PBES2 => pbes2(&params, ciphertext, work),
        PBE_SHA1_3DES => pbe::<des::TdesEde3>(&params, ciphertext, password, 24, work),
        PBE_SHA1_2DES => pbe::<des::TdesEde2>(&params, ciphertext, password, 16, work),
        PBE_SHA1_RC2_40 => pbe::<rc2::Rc2>(&params, ciphertext, password, 5, work),
        PBE_SHA1_RC2_128 => pbe::<rc2::Rc2>(&params, ciphertext, password, 16, work),
        other => Err(Pkcs12Error::Unsupported {
            what: "encryption",
            oid: other.to_string(),
        }),
    }
}

/// PKCS#12 appendix B PBE: key and IV from the SHA-1 KDF, then CBC.
fn pbe<C>(
    params: &[u8],
    ciphertext: &[u8],
    password: &[u8],
    key_len: usize,
    work: &mut Work,
) -> Result<Zeroizing<Vec<u8>>, Pkcs12Error>
where
    C: cbc::cipher::BlockCipherDecrypt + cbc::cipher::KeyInit,
{
    let params = pkcs12::pbe_params::Pkcs12PbeParams::from_der(params)?;
    let rounds = iterations("encryption", i64::from(params.iterations))?;
    // Key and IV are two derivations.
    work.spend(rounds)?;
    work.spend(rounds)?;
    let salt = params.salt.as_bytes();
    let key = Zeroizing::new(derive_key::<sha1::Sha1>(
        password,
        salt,
        Pkcs12KeyType::EncryptionKey,
        rounds,
        key_len,
    ));
    let iv = derive_key::<sha1::Sha1>(password, salt, Pkcs12KeyType::Iv, rounds, 8);
    let cipher = cbc::Decryptor::<C>::new_from_slices(&key, &iv)
        .map_err(|_| Pkcs12Error::Malformed("bad key or IV length".into()))?;
    cipher
        .decrypt_padded_vec::<Pkcs7>(ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| Pkcs12Error::IncorrectPassword)
}

/// PBES2 with PBKDF2; the password is the UTF-8 of the empty string.
fn pbes2(
    params: &[u8],
    ciphertext: &[u8],
    work: &mut Work,
) -> Result<Zeroizing<Vec<u8>>, Pkcs12Error> {
    let params = pkcs5::pbes2::Parameters::from_der(params)?;
    let Some(pbkdf2) = params.kdf.pbkdf2() else {
        return Err(Pkcs12Error::Unsupported {
            what: "key derivation",
            oid: params.kdf.oid().to_string(),
        });
    };
    work.spend(iterations("PBKDF2", i64::from(pbkdf2.iteration_count))?)?;
    params
        .decrypt(b"", ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| Pkcs12Error::IncorrectPassword)
}

/// The `AlgorithmIdentifier` type of the `cms`/`pkcs12` crates.
mod spki_alg {
    pub use cms::cert::x509::spki::AlgorithmIdentifierOwned;
}

#[cfg(test)]
mod tests;
