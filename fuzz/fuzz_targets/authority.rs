//! Fuzz target `authority`: see `akv_fuzz_checks::authority`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_fuzz_checks::authority(data));
