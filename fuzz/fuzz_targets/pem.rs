//! Fuzz target `pem`: see `akv_csi_provider::fuzzing::pem`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_csi_provider::fuzzing::pem(data));
