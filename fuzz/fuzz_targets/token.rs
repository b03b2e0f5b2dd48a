//! Fuzz target `token`: see `akv_csi_provider::fuzzing::token`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_csi_provider::fuzzing::token(data));
