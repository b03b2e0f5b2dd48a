//! Fuzz target `secret`: see `akv_csi_provider::fuzzing::secret`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_csi_provider::fuzzing::secret(data));
