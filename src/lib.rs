//! akv-csi-provider: an Azure Key Vault provider for the Kubernetes Secrets
//! Store CSI Driver.
//!
//! The driver calls `v1alpha1.CSIDriverProvider/Mount` over a unix socket;
//! this crate parses the SecretProviderClass parameters, obtains a token for
//! the pod's identity, reads the named objects from Key Vault and answers
//! with the files the driver writes into the pod's volume.
//!
//! Data flows one way: `server` (socket, gRPC) → `params` (pure parsing and
//! validation) → `mount` (plan, fetch through `auth` and `keyvault`) →
//! `render` (pure conversion to files) → `server` (response).

pub use akv_core::{cloud, object, params, render, retry, spc};

pub mod admin;
pub mod app;
pub mod auth;
pub mod authority;
pub mod budget;
pub mod cli;
pub mod config;
pub mod connection;
pub mod dryrun;
pub mod health;
pub mod http;
pub mod keyvault;
pub mod metrics;
pub mod mount;
pub mod proto;
pub mod reads;
pub mod server;
pub mod shared;
pub mod socket;
pub mod throttle;
pub mod token;
pub mod trace;
pub mod unfinished;
