//! Fuzz target `pkcs12`: see `akv_fuzz_checks::pkcs12`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_fuzz_checks::pkcs12(data));
