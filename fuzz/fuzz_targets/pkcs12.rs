//! Fuzz target `pkcs12`: see `akv_csi_provider::fuzzing::pkcs12`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_csi_provider::fuzzing::pkcs12(data));
