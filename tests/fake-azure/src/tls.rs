//! The fake's PKI: a CA generated at start and one leaf certificate for
//! every Azure host name the fake impersonates, served with rustls.
//!
//! Clients trust the fake by trusting the CA PEM (`SSL_CERT_FILE`, or a
//! reqwest root certificate). Keys live only in memory and die with the
//! fake. ALPN offers `h2` and `http/1.1`, like Azure's front ends.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::{cloud, ids, token_proxy};

/// The generated CA and the server configurations using its leaves.
pub(crate) struct Pki {
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
    /// The AKS API server / token proxy listener: picks its certificate by
    /// the server name the client sends (see `token_proxy.rs`).
    pub token_proxy_config: Arc<rustls::ServerConfig>,
}

/// Generates a CA and a leaf for [`cloud::san_names`].
/// `extra_names` are further host names of the main leaf (issuers).
pub(crate) fn generate(extra_names: &[String]) -> anyhow::Result<Pki> {
    let year = current_year();

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "fake-azure test CA");
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "akv-csi-provider tests");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    ca_params.not_after = rcgen::date_time_ymd(year + 2, 1, 1);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let ca_der = CertificateDer::from(ca_cert.der().to_vec());
    let leaf = |names: Vec<String>| -> anyhow::Result<_> {
        let leaf_key = KeyPair::generate()?;
        let mut leaf_params = CertificateParams::new(names)?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "fake-azure");
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.use_authority_key_identifier_extension = true;
        leaf_params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
        leaf_params.not_after = rcgen::date_time_ymd(year + 2, 1, 1);
        let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;
        let chain = vec![leaf.der().clone(), ca_der.clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        Ok((chain, key))
    };

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut names = cloud::san_names();
    names.extend(
        extra_names
            .iter()
            .filter(|n| !names.contains(n))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let (chain, key) = leaf(names)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let (chain, key) = leaf(token_proxy::api_server_names())?;
    let api_server = CertifiedKey::from_der(chain, key, &provider)?;
    let (chain, key) = leaf(vec![token_proxy::server_name()])?;
    let proxy = CertifiedKey::from_der(chain, key, &provider)?;
    let mut token_proxy_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(BySni {
            token_proxy_name: token_proxy::server_name(),
            token_proxy: Arc::new(proxy),
            api_server: Arc::new(api_server),
        }));
    token_proxy_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        server_config: Arc::new(config),
        token_proxy_config: Arc::new(token_proxy_config),
    })
}

/// Serves the token-proxy certificate to clients that ask for its server
/// name and the API server's certificate to everyone else, as the AKS API
/// server's SNI routing does.
#[derive(Debug)]
struct BySni {
    token_proxy_name: String,
    token_proxy: Arc<CertifiedKey>,
    api_server: Arc<CertifiedKey>,
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match hello.server_name() {
            Some(name) if name.eq_ignore_ascii_case(&self.token_proxy_name) => {
                Some(self.token_proxy.clone())
            }
            _ => Some(self.api_server.clone()),
        }
    }
}

/// The current UTC year. Certificates run from January 1st of last year to
/// January 1st two years ahead: valid now, and not absurdly long.
fn current_year() -> i32 {
    let (year, _, _) = ids::civil_from_days(ids::now_unix().div_euclid(86_400));
    i32::try_from(year).unwrap_or(2025)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_pem_ca_and_alpn_config() {
        let pki = generate(&[]).expect("pki");
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(pki.server_config.alpn_protocols.len(), 2);
    }
}
