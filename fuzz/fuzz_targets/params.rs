//! Fuzz target `params`: see `akv_fuzz_checks::params`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_fuzz_checks::params(data));
