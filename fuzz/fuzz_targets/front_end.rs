//! The whole front end on arbitrary text: parse → check → derive → render as
//! text, LaTeX and JSON, or render the diagnostics ([`lagc::fuzzing::front_end`]).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    lagc::fuzzing::front_end(source);
});
