//! Fuzz target `jwk`: see `akv_csi_provider::fuzzing::jwk`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_csi_provider::fuzzing::jwk(data));
