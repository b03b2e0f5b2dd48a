//! Fuzz target `jmespath`: see `akv_csi_provider::fuzzing::jmespath`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_csi_provider::fuzzing::jmespath(data));
