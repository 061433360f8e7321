//! The front end on models scaled up: the first byte picks a factor of 10, 100
//! or 1,000 by which the model's integer consts are multiplied and its
//! `energy`/`lagrangian` repeated ([`lagc::fuzzing::scaled`]). Errors and
//! refusals are fine; a panic, an abort or a hang is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    lagc::fuzzing::front_end_scaled(data);
});
