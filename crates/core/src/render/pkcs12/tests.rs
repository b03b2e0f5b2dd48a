use super::*;

fn fixture(path: &str) -> Vec<u8> {
    crate::render::fixtures::bytes(path).to_vec()
}

use crate::render::fixtures::pem_der;

/// Keys and certificates in file order: leaf key; leaf, root, intermediate.
fn expect_chain(pfx: &str, chain: &str) {
    let contents = decode(&fixture(pfx)).unwrap_or_else(|e| panic!("{pfx}: {e}"));
    assert_eq!(contents.keys.len(), 1, "{pfx}");
    let key = crate::render::private_key::normalize_pkcs8(&contents.keys[0]).unwrap();
    assert_eq!(
        key.as_slice(),
        pem_der(&format!("{chain}/key.pem")),
        "{pfx}"
    );
    let want: Vec<Vec<u8>> = ["leaf", "root", "int"]
        .iter()
        .map(|c| pem_der(&format!("{chain}/{c}.pem")))
        .collect();
    assert_eq!(contents.certs, want, "{pfx}");
}

#[test]
fn legacy_rc2_and_3des_with_sha1_mac() {
    for chain in ["rsa", "ec", "noaki"] {
        expect_chain(&format!("{chain}-legacy.pfx"), chain);
        expect_chain(&format!("{chain}-3des.pfx"), chain);
    }
}

#[test]
fn modern_pbes2_aes256_with_sha256_mac() {
    for chain in ["rsa", "ec", "noaki"] {
        expect_chain(&format!("{chain}-aes.pfx"), chain);
    }
}

#[test]
fn key_vault_null_password() {
    // Certificates in the order the script wrote them: leaf, root, intermediate.
    expect_chain("rsa-kv.pfx", "rsa");
}

#[test]
fn p521_key_and_single_certificate() {
    let contents = decode(&fixture("p521-aes.pfx")).unwrap();
    let key = crate::render::private_key::normalize_pkcs8(&contents.keys[0]).unwrap();
    assert_eq!(key.as_slice(), pem_der("p521/key.pem"));
    assert_eq!(contents.certs, vec![pem_der("p521/leaf.pem")]);
}

#[test]
fn a_tampered_file_fails_its_mac() {
    let mut pfx = fixture("rsa-legacy.pfx");
    // The last byte is inside the MAC's iteration count or digest region;
    // flip one inside the authenticated content instead.
    let middle = pfx.len() / 2;
    pfx[middle] ^= 0x01;
    assert!(decode(&pfx).is_err());
}

#[test]
fn hostile_input_is_an_error_never_a_panic() {
    assert!(matches!(decode(b""), Err(Pkcs12Error::Malformed(_))));
    assert!(matches!(
        decode(b"not a pfx"),
        Err(Pkcs12Error::Malformed(_))
    ));
    for name in ["rsa-legacy.pfx", "ec-aes.pfx", "rsa-kv.pfx"] {
        let pfx = fixture(name);
        for len in (0..pfx.len()).step_by(97) {
            assert!(decode(&pfx[..len]).is_err(), "{name} truncated to {len}");
        }
        let mut state = 0x2545_f491_u32;
        for _ in 0..200 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let mut mutated = pfx.clone();
            let at = state as usize % mutated.len();
            mutated[at] = mutated[at].wrapping_add((state >> 8) as u8 | 1);
            let _ = decode(&mutated);
        }
    }
}

#[test]
fn absurd_iteration_counts_are_refused() {
    assert_eq!(
        iterations("MAC", 2_000_000),
        Err(Pkcs12Error::Iterations {
            what: "MAC",
            count: 2_000_000
        })
    );
    assert!(iterations("MAC", 0).is_err());
    assert_eq!(iterations("MAC", 2048), Ok(2048));
}

/// A file made of many bags at the highest iteration count may not cost
/// more than ten maximal derivations in total.
#[test]
fn total_key_derivation_work_is_bounded() {
    let mut work = Work::default();
    for _ in 0..10 {
        assert_eq!(work.spend(1_000_000), Ok(()));
    }
    assert_eq!(work.spend(1), Err(Pkcs12Error::TooMuchWork));
    assert_eq!(
        Pkcs12Error::TooMuchWork.to_string(),
        "pkcs12: the file needs more than 10000000 key-derivation iterations in total"
    );
    // Real files stay far below: every fixture decodes.
    for pfx in [
        "rsa-kv.pfx",
        "rsa-aes.pfx",
        "ec-legacy.pfx",
        "noaki-3des.pfx",
    ] {
        assert!(decode(&fixture(pfx)).is_ok(), "{pfx}");
    }
}
