//! Fuzz target `token`: see `akv_fuzz_checks::token`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_fuzz_checks::token(data));
