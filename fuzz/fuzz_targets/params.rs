//! Fuzz target `params`: see `akv_csi_provider::fuzzing::params`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_csi_provider::fuzzing::params(data));
