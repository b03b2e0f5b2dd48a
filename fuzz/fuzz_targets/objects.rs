//! Fuzz target `objects`: see `akv_csi_provider::fuzzing::objects`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| akv_csi_provider::fuzzing::objects(data));
