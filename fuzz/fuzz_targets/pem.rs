//! Fuzz target `pem`: see `akv_fuzz_checks::pem`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_fuzz_checks::pem(data));
