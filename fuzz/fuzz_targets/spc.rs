//! Fuzz target `spc`: see `akv_fuzz_checks::spc`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_fuzz_checks::spc(data));
