//! Fuzz target `jmespath`: see `akv_fuzz_checks::jmespath`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_fuzz_checks::jmespath(data));
