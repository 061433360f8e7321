//! Models that compile are built into native kernels and run for ten steps.
//! Numerical failures (`Err`) are fine; a panic or a hang is a bug.
#![no_main]

use lagc::run::{self, RunConfig, RunOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Large models only make the run slow, not more interesting.
    if data.len() > 2048 {
        return;
    }
    let Ok(source) = std::str::from_utf8(data) else { return };
    let Ok(mut compiled) = lagc::compile_source(source, "fuzz", &[]) else { return };
    let model = &mut compiled.model;
    let options = RunOptions {
        // A far-away `t0` with the short `t_end` would be a long run, not a bug.
        t0: Some(0.0),
        t_end: Some(0.01),
        dt: Some(0.001),
        // `simulate particles = 1e9` asks for a long run; a few particles exercise the same code.
        particles: model.settings.particles.map(|p| p.min(64)),
        ..Default::default()
    };
    let Ok(cfg) = RunConfig::resolve(model, &options) else { return };
    let kernels = run::build_kernels(model, &compiled.equations, cfg.method);
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let _ = run::run_with(model, &compiled.equations, &kernels, &cfg, &mut rows);
});
