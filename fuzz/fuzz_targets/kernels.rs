//! Models that compile are built into native kernels and run for ten steps
//! ([`lagc::fuzzing::kernels`]).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    lagc::fuzzing::kernels(source);
});
