//! The little DER this crate writes itself (SubjectPublicKeyInfo and
//! PKCS#8 wrappers, exactly as Go's `crypto/x509` marshals them), the object
//! identifiers involved, and the NIST curves Key Vault uses.
//!
//! Pure; parsing DER is left to the `der`/`pkcs8`/`x509-parser` crates.

/// `rsaEncryption` (1.2.840.113549.1.1.1).
pub const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01,
];
/// `id-ecPublicKey` (1.2.840.10045.2.1).
pub const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
/// ASN.1 `NULL`.
pub const NULL: &[u8] = &[0x05, 0x00];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;

/// Tag, definite length, value.
pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value);
    out
}

/// A SEQUENCE of already encoded elements.
pub fn sequence(elements: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &elements.concat())
}

/// A non-negative INTEGER from big-endian magnitude bytes: leading zeros
/// dropped, one added when the high bit is set (minimal DER).
pub fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let start = magnitude.iter().take_while(|&&b| b == 0).count();
    let digits = &magnitude[start..];
    let mut value = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|&b| b & 0x80 != 0) {
        value.push(0);
    }
    value.extend_from_slice(digits);
    tlv(INTEGER, &value)
}

/// A BIT STRING with no unused bits.
pub fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(bytes.len() + 1);
    value.push(0);
    value.extend_from_slice(bytes);
    tlv(BIT_STRING, &value)
}

/// An OCTET STRING.
pub fn octet_string(bytes: &[u8]) -> Vec<u8> {
    tlv(OCTET_STRING, bytes)
}

/// SubjectPublicKeyInfo from an encoded AlgorithmIdentifier and key bytes.
pub fn subject_public_key_info(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    sequence(&[algorithm, &bit_string(key)])
}

/// The NIST curves Key Vault keys and certificates use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
}

// === impl Curve ===

impl Curve {
    /// Key Vault's (JWK) curve name.
    pub fn from_jwk_name(name: &str) -> Option<Self> {
        match name {
            "P-256" => Some(Self::P256),
            "P-384" => Some(Self::P384),
            "P-521" => Some(Self::P521),
            _ => None,
        }
    }

    /// The curve named by an encoded `namedCurve` OBJECT IDENTIFIER.
    pub fn from_oid(encoded: &[u8]) -> Option<Self> {
        [Self::P256, Self::P384, Self::P521]
            .into_iter()
            .find(|c| c.oid() == encoded)
    }

    /// The `namedCurve` OBJECT IDENTIFIER, encoded.
    pub fn oid(self) -> &'static [u8] {
        match self {
            // 1.2.840.10045.3.1.7
            Self::P256 => &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07],
            // 1.3.132.0.34
            Self::P384 => &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22],
            // 1.3.132.0.35
            Self::P521 => &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x23],
        }
    }

    /// Bytes of one coordinate or of a private scalar.
    pub fn field_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }

    /// The AlgorithmIdentifier of a public key on this curve.
    pub fn algorithm(self) -> Vec<u8> {
        sequence(&[OID_EC_PUBLIC_KEY, self.oid()])
    }

    /// Whether `point` (uncompressed SEC1) is a valid point on the curve.
    pub fn is_valid_point(self, point: &[u8]) -> bool {
        match self {
            Self::P256 => p256::PublicKey::from_sec1_bytes(point).is_ok(),
            Self::P384 => p384::PublicKey::from_sec1_bytes(point).is_ok(),
            Self::P521 => p521::PublicKey::from_sec1_bytes(point).is_ok(),
        }
    }

    /// The uncompressed public point of a private scalar of `field_len`
    /// bytes; `None` when the scalar is zero or not below the group order.
    pub fn public_point(self, scalar: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::P256 => p256::SecretKey::from_slice(scalar)
                .ok()
                .map(|k| k.public_key().to_sec1_bytes().into_vec()),
            Self::P384 => p384::SecretKey::from_slice(scalar)
                .ok()
                .map(|k| k.public_key().to_sec1_bytes().into_vec()),
            Self::P521 => p521::SecretKey::from_slice(scalar)
                .ok()
                .map(|k| k.public_key().to_sec1_bytes().into_vec()),
        }
    }

    /// Left-pads a big-endian number to `field_len` bytes; `None` when it
    /// does not fit.
    pub fn fixed_width(self, magnitude: &[u8]) -> Option<Vec<u8>> {
        let start = magnitude.iter().take_while(|&&b| b == 0).count();
        let digits = &magnitude[start..];
        let width = self.field_len();
        if digits.len() > width {
            return None;
        }
        let mut out = vec![0u8; width - digits.len()];
        out.extend_from_slice(digits);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_integers() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2C]);
        assert_eq!(unsigned_integer(&[0, 0, 1]), vec![0x02, 1, 1]);
        assert_eq!(unsigned_integer(&[0x80]), vec![0x02, 2, 0, 0x80]);
        assert_eq!(unsigned_integer(&[]), vec![0x02, 1, 0]);
        assert_eq!(unsigned_integer(&[0, 0]), vec![0x02, 1, 0]);
    }

    #[test]
    fn curves() {
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            assert_eq!(Curve::from_oid(curve.oid()), Some(curve));
        }
        assert_eq!(Curve::from_jwk_name("P-256K"), None);
        assert_eq!(Curve::P521.fixed_width(&[0, 1]).unwrap().len(), 66);
        assert_eq!(Curve::P256.fixed_width(&[1; 33]), None);
        assert_eq!(Curve::P256.public_point(&[0; 32]), None, "zero scalar");
        assert_eq!(
            Curve::P256.public_point(&[0xFF; 32]),
            None,
            "above the order"
        );
        let mut one = [0u8; 32];
        one[31] = 1;
        let g = Curve::P256.public_point(&one).unwrap();
        assert_eq!(g.len(), 65);
        assert!(Curve::P256.is_valid_point(&g));
        let mut off = g.clone();
        off[64] ^= 1;
        assert!(!Curve::P256.is_valid_point(&off));
    }
}
