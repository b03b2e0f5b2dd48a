//! Fuzz target `chain`: see `akv_csi_provider::fuzzing::chain`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_csi_provider::fuzzing::chain(data));
