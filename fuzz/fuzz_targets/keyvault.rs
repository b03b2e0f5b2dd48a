//! Fuzz target `keyvault`: see `akv_fuzz_checks::keyvault`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_fuzz_checks::keyvault(data));
