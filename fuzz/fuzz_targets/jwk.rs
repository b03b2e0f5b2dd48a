//! Fuzz target `jwk`: see `akv_fuzz_checks::jwk`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_fuzz_checks::jwk(data));
