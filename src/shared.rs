//! The toolkit for state shared between mounts: one single-flight
//! (identical work in flight runs once) and one bounded cache (entries
//! expire at their own time; least recently used out first, bounded in
//! entries and bytes). Tokens (`auth/cache.rs`) and Key Vault reads
//! (`reads.rs`) are both built from these two pieces.
//!
//! Generic and runtime-only: this module must not know tokens, vaults or
//! HTTP.

pub mod cache;
pub mod single_flight;

pub use cache::Cache;
pub use single_flight::{Role, SingleFlight};
