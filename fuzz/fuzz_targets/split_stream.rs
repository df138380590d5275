#![no_main]
//! Thin libFuzzer wrapper; the body is `ctirouter_fuzz::split_stream` (fuzz/src/lib.rs).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ctirouter_fuzz::split_stream(data));
