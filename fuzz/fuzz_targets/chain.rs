//! Fuzz target `chain`: see `akv_fuzz_checks::chain`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_fuzz_checks::chain(data));
