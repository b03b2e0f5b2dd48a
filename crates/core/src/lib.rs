//! The pure core of akv-csi-provider: everything the provider decides
//! without touching the network, the filesystem or a clock it does not
//! own.
//!
//! - [`params`]: a `Mount` request's `attributes`, `secrets` and
//!   `permission` → validated [`params::MountParams`], with upstream's
//!   error texts and check order; which identity it selects
//!   ([`params::Identity`], [`params::IdentityKind`]);
//! - [`object`]: the `objects` entries (type, format, encoding, alias,
//!   version, mode) and their rules;
//! - [`cloud`]: the Azure clouds and Azure Stack environment files;
//! - [`go`]: Go compatibility (`strconv.Quote`/`ParseBool`, durations,
//!   `base64.StdEncoding`), written once for upstream's texts and inputs;
//! - [`render`]: what Key Vault returned → the files and object versions of
//!   the response (PKCS#12, PEM chains, JWK, encodings);
//! - [`retry`]: retry decisions as data;
//! - [`labels`]: the bounded metric label sets;
//! - [`spc`]: a SecretProviderClass document → its parameters.
//!
//! Every public item is public on purpose: the provider crate, the fuzz
//! checks (`crates/fuzz-checks`) and the property tests (`tests/`) use
//! them. This crate has no tokio, reqwest, tonic or filesystem dependency, so
//! the compiler holds the layer rule the provider's design relies on.

pub mod cloud;
pub mod go;
pub mod labels;
pub mod object;
pub mod params;
pub mod render;
pub mod retry;
pub mod spc;
