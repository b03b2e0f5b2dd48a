//! Fuzz target `keyvault`: see `akv_csi_provider::fuzzing::keyvault`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_csi_provider::fuzzing::keyvault(data));
