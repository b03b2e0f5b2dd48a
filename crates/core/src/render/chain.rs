//! Ordering a PKCS#12 file's certificates leaf → intermediates → root
//! (`--construct-pem-chain`).
//!
//! First exactly upstream's rule (so every chain upstream orders comes out
//! the same): certificate j is the parent of i when i's authority key id
//! equals j's subject key id (pairs where both are absent are skipped); the
//! leaf is the first certificate that is nobody's parent; the chain is
//! followed from it and must take in every certificate. Where that fails
//! (ids missing, upstream issues #1739, #879), a second pass also links i to a j
//! whose subject equals i's issuer and whose key verifies i's signature.
//! If neither pass orders every certificate, the original order is kept and
//! the caller warns, as upstream does for an incomplete chain.
//!
//! Pure: no I/O, no logging.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer as _;

/// How the certificates were ordered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Upstream's rule ordered them (or there was at most one).
    KeyIdentifiers,
    /// Issuer names and signatures were needed.
    NamesAndSignatures,
    /// Kept in the original order; the reason is for a warning.
    Unordered(String),
}

/// Most certificates the second pass (names and signatures, up to n²
/// signature checks) takes on; a real chain has a handful.
pub const MAX_SIGNATURE_PASS_CERTIFICATES: usize = 50;

/// The order (indices into `certs`) and how it was found.
pub fn order(certs: &[Vec<u8>]) -> (Vec<usize>, Outcome) {
    let original: Vec<usize> = (0..certs.len()).collect();
    if certs.len() <= 1 {
        return (original, Outcome::KeyIdentifiers);
    }
    let parsed: Result<Vec<Node<'_>>, usize> = certs
        .iter()
        .enumerate()
        .map(|(i, der)| Node::parse(der).ok_or(i))
        .collect();
    let nodes = match parsed {
        Ok(nodes) => nodes,
        Err(i) => {
            let reason = format!("certificate #{} cannot be parsed as X.509", i + 1);
            return (original, Outcome::Unordered(reason));
        }
    };
    let by_ids = parents(&nodes, false);
    if let Some(chain) = follow(&by_ids) {
        return (chain, Outcome::KeyIdentifiers);
    }
    if nodes.len() > MAX_SIGNATURE_PASS_CERTIFICATES {
        let reason = format!(
            "the file holds {} certificates whose key identifiers do not form one chain, more \
             than the {MAX_SIGNATURE_PASS_CERTIFICATES} ordered by issuer name and signature",
            nodes.len()
        );
        return (original, Outcome::Unordered(reason));
    }
    let by_names = parents(&nodes, true);
    match follow(&by_names) {
        Some(chain) => (chain, Outcome::NamesAndSignatures),
        None => (
            original,
            Outcome::Unordered(
                "certificate chain is not complete due to missing intermediate/root \
                 certificates in the cert from key vault"
                    .to_owned(),
            ),
        ),
    }
}

/// What ordering needs from one certificate.
struct Node<'a> {
    cert: X509Certificate<'a>,
    authority_key_id: Option<&'a [u8]>,
    subject_key_id: Option<&'a [u8]>,
}

// === impl Node ===

impl<'a> Node<'a> {
    fn parse(der: &'a [u8]) -> Option<Self> {
        let (rest, cert) = X509Certificate::from_der(der).ok()?;
        if !rest.is_empty() {
            return None;
        }
        let mut authority_key_id = None;
        let mut subject_key_id = None;
        for extension in cert.extensions() {
            match extension.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    authority_key_id = aki.key_identifier.as_ref().map(|k| k.0);
                }
                ParsedExtension::SubjectKeyIdentifier(ski) => subject_key_id = Some(ski.0),
                _ => {}
            }
        }
        Some(Self {
            cert,
            authority_key_id,
            subject_key_id,
        })
    }

    /// Upstream's test: AKI(child) == SKI(parent), absent counting as
    /// empty, unless both are absent.
    fn ids_match(&self, parent: &Node<'_>) -> bool {
        match (self.authority_key_id, parent.subject_key_id) {
            (None, None) => false,
            (aki, ski) => aki.unwrap_or_default() == ski.unwrap_or_default(),
        }
    }

    /// `parent` issued this certificate: its subject is our issuer and its
    /// key verifies our signature.
    fn issued_by(&self, parent: &Node<'_>) -> bool {
        self.cert.issuer().as_raw() == parent.cert.subject().as_raw()
            && self
                .cert
                .verify_signature(Some(parent.cert.public_key()))
                .is_ok()
    }
}

/// The parent of each certificate: the first other certificate that
/// matches by key ids, or with `names`, failing that, by issuer name and
/// signature.
fn parents(nodes: &[Node<'_>], names: bool) -> Vec<Option<usize>> {
    (0..nodes.len())
        .map(|i| {
            let others = || (0..nodes.len()).filter(move |&j| j != i);
            others()
                .find(|&j| nodes[i].ids_match(&nodes[j]))
                .or_else(|| {
                    names
                        .then(|| others().find(|&j| nodes[i].issued_by(&nodes[j])))
                        .flatten()
                })
        })
        .collect()
}

/// Follows parents from the leaf (the first certificate that is nobody's
/// parent); `Some` only when the walk takes in every certificate once.
fn follow(parents: &[Option<usize>]) -> Option<Vec<usize>> {
    let is_parent = |j: usize| parents.contains(&Some(j));
    let mut next = (0..parents.len()).find(|&i| !is_parent(i));
    let mut chain = Vec::with_capacity(parents.len());
    while let Some(i) = next {
        if chain.len() == parents.len() || chain.contains(&i) {
            return None;
        }
        chain.push(i);
        next = parents[i];
    }
    (chain.len() == parents.len()).then_some(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(path: &str) -> Vec<u8> {
        crate::render::fixtures::pem_der(path)
    }

    fn chain(dir: &str, names: &[&str]) -> Vec<Vec<u8>> {
        names
            .iter()
            .map(|n| cert(&format!("{dir}/{n}.pem")))
            .collect()
    }

    /// Checklist 19: certificates reordered leaf → root by AKI/SKI.
    #[test]
    fn key_identifiers_order_like_upstream() {
        for dir in ["rsa", "ec"] {
            let certs = chain(dir, &["root", "leaf", "int"]);
            assert_eq!(
                order(&certs),
                (vec![1, 2, 0], Outcome::KeyIdentifiers),
                "{dir}"
            );
            let certs = chain(dir, &["int", "root", "leaf"]);
            assert_eq!(
                order(&certs),
                (vec![2, 0, 1], Outcome::KeyIdentifiers),
                "{dir}"
            );
        }
    }

    /// Upstream issues #1739 and #879: without AKI/SKI upstream keeps the original
    /// order; names and signatures order them.
    #[test]
    fn missing_key_identifiers_fall_back_to_names_and_signatures() {
        let certs = chain("noaki", &["leaf", "root", "int"]);
        assert_eq!(follow(&parents(&[], false)), Some(vec![]));
        let nodes: Vec<Node<'_>> = certs.iter().map(|d| Node::parse(d).unwrap()).collect();
        assert_eq!(
            follow(&parents(&nodes, false)),
            None,
            "upstream's rule alone fails"
        );
        assert_eq!(order(&certs), (vec![0, 2, 1], Outcome::NamesAndSignatures));
    }

    /// Checklist 19: an incomplete chain keeps the original order.
    #[test]
    fn incomplete_chain_keeps_original_order() {
        let certs = chain("rsa", &["leaf", "root"]);
        let (indices, outcome) = order(&certs);
        assert_eq!(indices, vec![0, 1]);
        assert!(matches!(outcome, Outcome::Unordered(reason) if reason.contains("not complete")));
        // Two unrelated chains' leaves.
        let certs = vec![cert("rsa/leaf.pem"), cert("ec/leaf.pem")];
        assert!(matches!(order(&certs).1, Outcome::Unordered(_)));
    }

    #[test]
    fn single_and_unparseable_certificates() {
        assert_eq!(order(&[]), (vec![], Outcome::KeyIdentifiers));
        assert_eq!(
            order(&[b"junk".to_vec()]),
            (vec![0], Outcome::KeyIdentifiers)
        );
        let certs = vec![cert("rsa/leaf.pem"), b"junk".to_vec()];
        let (indices, outcome) = order(&certs);
        assert_eq!(indices, vec![0, 1]);
        assert_eq!(
            outcome,
            Outcome::Unordered("certificate #2 cannot be parsed as X.509".into())
        );
    }

    /// Many certificates without usable key identifiers are not ordered by
    /// signatures (n² checks); key identifiers still order any number.
    #[test]
    fn the_signature_pass_is_bounded() {
        let many = |family: &str| {
            let mut certs = chain(family, &["leaf", "int", "root"]);
            let extra = cert(&format!("{family}/root.pem"));
            certs.resize(MAX_SIGNATURE_PASS_CERTIFICATES + 1, extra);
            certs
        };
        let (indices, outcome) = order(&many("noaki"));
        assert_eq!(
            indices,
            (0..=MAX_SIGNATURE_PASS_CERTIFICATES).collect::<Vec<_>>()
        );
        assert!(
            matches!(&outcome, Outcome::Unordered(r) if r.contains("more than the 50")),
            "{outcome:?}"
        );
        // Key identifiers are compared before the bound applies: a chain
        // they order is ordered as before.
        let certs = chain("rsa", &["root", "leaf", "int"]);
        assert_eq!(order(&certs).1, Outcome::KeyIdentifiers);
    }

    #[test]
    fn cycles_are_not_chains() {
        assert_eq!(follow(&[Some(1), Some(0)]), None);
        assert_eq!(follow(&[Some(1), Some(2), Some(1)]), None);
        assert_eq!(follow(&[None, None]), None);
        assert_eq!(follow(&[Some(1), None]), Some(vec![0, 1]));
    }
}
