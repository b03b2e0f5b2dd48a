//! Fuzz target `objects`: see `akv_fuzz_checks::objects`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_fuzz_checks::objects(data));
