//! The PFX writer against our reader (`render/pkcs12.rs`) and against the
//! structure OpenSSL 3 writes; the openssl command-line cross-check runs in
//! `tests/extensions.rs`, over the socket.

use der::Decode as _;

use super::*;
use crate::render::fixtures::{pem_der, text};
use crate::render::pkcs12;

/// Root, key, intermediate, leaf: a scrambled bundle.
fn bundle(chain: &str) -> String {
    ["root", "key", "int", "leaf"]
        .iter()
        .map(|f| text(&format!("{chain}/{f}.pem")))
        .collect()
}

#[test]
fn our_reader_gets_the_key_and_the_chain_leaf_to_root() {
    for chain in ["rsa", "ec", "noaki"] {
        let built = from_pem(bundle(chain).as_bytes()).unwrap();
        assert_eq!(built.unordered, None, "{chain}");
        let contents = pkcs12::decode(&built.der).unwrap();
        assert_eq!(contents.keys.len(), 1, "{chain}");
        assert_eq!(
            contents.keys[0].as_slice(),
            pem_der(&format!("{chain}/key.pem")),
            "{chain}"
        );
        let want: Vec<Vec<u8>> = ["leaf", "int", "root"]
            .iter()
            .map(|f| pem_der(&format!("{chain}/{f}.pem")))
            .collect();
        assert_eq!(contents.certs, want, "{chain}");
    }
    let single = format!("{}{}", text("p521/leaf.pem"), text("p521/key.pem"));
    let contents = pkcs12::decode(&from_pem(single.as_bytes()).unwrap().der).unwrap();
    assert_eq!(contents.keys[0].as_slice(), pem_der("p521/key.pem"));
    assert_eq!(contents.certs, [pem_der("p521/leaf.pem")]);
}

/// What OpenSSL 3 writes, field by field: the MAC keyed with the empty
/// BMPString (not the zero-length password), HMAC-SHA256, 2048 rounds,
/// PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC for both safes, and the
/// same `localKeyID` on the key and the leaf only.
#[test]
fn structure_is_openssl_3s() {
    let built = from_pem(bundle("rsa").as_bytes()).unwrap();
    let pfx = ::pkcs12::Pfx::from_der(&built.der).unwrap();
    let auth_safe = OctetString::from_der(&pfx.auth_safe.content.to_der().unwrap()).unwrap();
    let mac = pfx.mac_data.unwrap();
    assert_eq!(mac.mac.algorithm.oid, SHA256);
    assert_eq!(mac.iterations, 2048);
    assert_eq!(mac.mac_salt.as_bytes().len(), 8);
    let mac_with = |password: &[u8]| {
        let key = derive_key::<sha2::Sha256>(
            password,
            mac.mac_salt.as_bytes(),
            Pkcs12KeyType::Mac,
            2048,
            32,
        );
        let mut hmac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        hmac.update(auth_safe.as_bytes());
        hmac.verify_slice(mac.mac.digest.as_bytes()).is_ok()
    };
    assert!(mac_with(&[0, 0]), "keyed with the empty BMPString");
    assert!(!mac_with(&[]), "not with the zero-length password");

    let infos = <Vec<cms::content_info::ContentInfo>>::from_der(auth_safe.as_bytes()).unwrap();
    assert_eq!(
        infos.iter().map(|i| i.content_type).collect::<Vec<_>>(),
        [ENCRYPTED_DATA, DATA]
    );
    let encrypted =
        cms::encrypted_data::EncryptedData::from_der(&infos[0].content.to_der().unwrap()).unwrap();
    let check_scheme = |alg: &spki::AlgorithmIdentifierOwned| {
        let scheme = pkcs5::EncryptionScheme::try_from(alg.to_der().unwrap().as_slice()).unwrap();
        let pkcs5::EncryptionScheme::Pbes2(params) = scheme else {
            panic!("not PBES2");
        };
        let pbkdf2 = params.kdf.pbkdf2().expect("PBKDF2");
        assert_eq!(pbkdf2.iteration_count, 2048);
        assert_eq!(pbkdf2.prf, pkcs5::pbes2::Pbkdf2Prf::HmacWithSha256);
        assert!(matches!(
            params.encryption,
            pkcs5::pbes2::EncryptionScheme::Aes256Cbc { .. }
        ));
        params
    };
    let cert_params = check_scheme(&encrypted.enc_content_info.content_enc_alg);
    let cert_safe = cert_params
        .decrypt(
            b"",
            encrypted
                .enc_content_info
                .encrypted_content
                .as_ref()
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
    let cert_bags = <Vec<::pkcs12::SafeBag>>::from_der(&cert_safe).unwrap();
    let key_safe = OctetString::from_der(&infos[1].content.to_der().unwrap()).unwrap();
    let key_bags = <Vec<::pkcs12::SafeBag>>::from_der(key_safe.as_bytes()).unwrap();
    assert_eq!(key_bags.len(), 1);
    assert_eq!(key_bags[0].bag_id, SHROUDED_KEY_BAG);
    let value = der::asn1::AnyRef::from_der(&key_bags[0].bag_value).unwrap();
    let shrouded = ::pkcs12::pbe_params::EncryptedPrivateKeyInfo::from_der(value.value()).unwrap();
    check_scheme(&shrouded.encryption_algorithm);

    let leaf_id = sha1::Sha1::digest(pem_der("rsa/leaf.pem")).to_vec();
    let local_key_id = |bag: &::pkcs12::SafeBag| {
        bag.bag_attributes.as_ref().map(|attrs| {
            let attr = attrs.iter().next().unwrap();
            assert_eq!(attr.oid, LOCAL_KEY_ID);
            let value = attr.values.iter().next().unwrap();
            OctetString::from_der(&value.to_der().unwrap())
                .unwrap()
                .as_bytes()
                .to_vec()
        })
    };
    assert_eq!(local_key_id(&key_bags[0]), Some(leaf_id.clone()));
    assert_eq!(
        cert_bags.iter().map(local_key_id).collect::<Vec<_>>(),
        [Some(leaf_id), None, None]
    );
}

#[test]
fn same_input_same_bytes_other_input_other_salts() {
    let a = from_pem(bundle("rsa").as_bytes()).unwrap().der;
    let b = from_pem(bundle("rsa").as_bytes()).unwrap().der;
    assert_eq!(a, b, "deterministic: the driver must not see a change");
    let salt = |der: &[u8]| {
        ::pkcs12::Pfx::from_der(der)
            .unwrap()
            .mac_data
            .unwrap()
            .mac_salt
            .as_bytes()
            .to_vec()
    };
    let other = from_pem(bundle("ec").as_bytes()).unwrap().der;
    assert_ne!(salt(&a), salt(&other));
}

#[test]
fn pkcs1_and_sec1_keys_are_accepted() {
    // The PKCS#1 body of the RSA fixture, as `openssl rsa -traditional`
    // writes it.
    let pkcs8 = pem_der("rsa/key.pem");
    let info = ::pkcs8::PrivateKeyInfoRef::from_der(&pkcs8).unwrap();
    let pkcs1 = pem::encode("RSA PRIVATE KEY", info.private_key.as_bytes());
    let input = format!(
        "{}{}",
        text("rsa/leaf.pem"),
        std::str::from_utf8(&pkcs1).unwrap()
    );
    let contents = pkcs12::decode(&from_pem(input.as_bytes()).unwrap().der).unwrap();
    assert_eq!(contents.keys[0].as_slice(), pkcs8);

    // SEC1 with the curve named, as `openssl ec` writes it.
    let pkcs8 = pem_der("ec/key.pem");
    let info = ::pkcs8::PrivateKeyInfoRef::from_der(&pkcs8).unwrap();
    let inner = sec1::EcPrivateKey::from_der(info.private_key.as_bytes()).unwrap();
    let sec1_der = asn1::sequence(&[
        &asn1::unsigned_integer(&[1]),
        &asn1::octet_string(inner.private_key),
        &asn1::tlv(0xA0, Curve::P256.oid()),
        &asn1::tlv(0xA1, &asn1::bit_string(inner.public_key.unwrap())),
    ]);
    let sec1_pem = pem::encode("EC PRIVATE KEY", &sec1_der);
    let input = format!(
        "{}{}",
        std::str::from_utf8(&sec1_pem).unwrap(),
        text("ec/leaf.pem")
    );
    let contents = pkcs12::decode(&from_pem(input.as_bytes()).unwrap().der).unwrap();
    assert_eq!(contents.keys[0].as_slice(), pkcs8);
}

/// Issue 12: a block that never ends, or whose text is cut short, fails
/// instead of building a PFX with fewer certificates than meant.
#[test]
fn truncated_bundles_are_refused() {
    let leaf = text("rsa/leaf.pem");
    let key = text("rsa/key.pem");
    let int = text("rsa/int.pem");
    let never_ends = format!("{key}{leaf}{}", &int[..int.len() / 2]);
    let body_end = int.find("-----END").unwrap();
    let cut_short = format!("{key}{leaf}{}{}", &int[..body_end - 10], &int[body_end..]);
    for (what, input) in [("never ends", never_ends), ("cut short", cut_short)] {
        assert_eq!(
            from_pem(input.as_bytes()).err(),
            Some(PfxError::Truncated {
                begun: 3,
                complete: 2
            }),
            "{what}"
        );
    }
    assert!(from_pem(format!("{key}{leaf}{int}").as_bytes()).is_ok());
}

#[test]
fn bundles_that_cannot_be_a_pfx() {
    let leaf = text("rsa/leaf.pem");
    let key = text("rsa/key.pem");
    let cases: [(String, PfxError); 5] = [
        (leaf.to_owned(), PfxError::NoKey),
        (key.to_owned(), PfxError::NoCertificate),
        (
            format!("{key}{leaf}{}", text("ec/key.pem")),
            PfxError::ManyKeys(2),
        ),
        (
            format!("{}{key}", text("ec/leaf.pem")),
            PfxError::KeyMismatch,
        ),
        (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n"
                .to_owned()
                + leaf,
            PfxError::EncryptedKey,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            from_pem(input.as_bytes()).err(),
            Some(want.clone()),
            "{want}"
        );
    }
    let legacy_encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nMAA=\n-----END RSA PRIVATE KEY-----\n";
    assert_eq!(
        from_pem(format!("{legacy_encrypted}{leaf}").as_bytes()).err(),
        Some(PfxError::EncryptedKey)
    );
    let garbage_cert = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
    assert_eq!(
        from_pem(format!("{key}{garbage_cert}{leaf}").as_bytes()).err(),
        Some(PfxError::Certificate(1))
    );
    assert_eq!(from_pem(b"not pem at all").err(), Some(PfxError::NoKey));
    let text = PfxError::KeyMismatch.to_string();
    assert_eq!(
        text,
        "objectFormat pfx: the private key belongs to none of the PEM secret's certificates"
    );
}

#[test]
fn an_incomplete_chain_is_kept_in_file_order_with_a_reason() {
    // Leaf and root without the intermediate: no chain links them.
    let input = format!(
        "{}{}{}",
        text("rsa/root.pem"),
        text("rsa/key.pem"),
        text("rsa/leaf.pem")
    );
    let built = from_pem(input.as_bytes()).unwrap();
    assert!(built.unordered.is_some());
    let contents = pkcs12::decode(&built.der).unwrap();
    assert_eq!(
        contents.certs,
        [pem_der("rsa/root.pem"), pem_der("rsa/leaf.pem")]
    );
}
