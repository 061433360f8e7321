//! The whole front end on arbitrary text: parse → check → derive → render as
//! text, LaTeX and JSON, or render the diagnostics. Errors are fine; a panic,
//! a hang or running out of memory is a bug.
#![no_main]

use lagc::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    match lagc::compile_source(source, "fuzz", &[]) {
        Ok(mut compiled) => {
            for format in [Format::Text, Format::Latex, Format::Json] {
                let _ = compiled.render(format).map(|s| s.len());
            }
        }
        Err(diagnostics) => {
            let _ = diagnostics.render();
        }
    }
});
