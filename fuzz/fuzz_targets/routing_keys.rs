#![no_main]
//! Thin libFuzzer wrapper; the body is `ctirouter_fuzz::routing_keys` (fuzz/src/lib.rs).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ctirouter_fuzz::routing_keys(data));
