//! Fuzz target `secret`: see `akv_fuzz_checks::secret`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_fuzz_checks::secret(data));
