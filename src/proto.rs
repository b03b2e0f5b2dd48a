//! The generated `v1alpha1` gRPC types and service traits (see
//! `proto/service.proto` and `build.rs`). Nothing hand-written lives here.

#![allow(clippy::all, missing_docs, unreachable_pub)]

tonic::include_proto!("v1alpha1");
