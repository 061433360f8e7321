//! `lagc run --plot` end to end, and the progress bar's discretion.

use std::path::Path;
use std::process::{Command, Output};

fn lagc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lagc")).args(args).output().expect("run lagc")
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.lag")).to_str().unwrap().to_string()
}

fn scratch(name: &str) -> String {
    let d = std::env::temp_dir().join(format!("lagc-plot-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name).to_str().unwrap().to_string()
}

/// The panel captions of a figure (each panel is a `<g class="panel">` with a `<title>`).
fn panels(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
    doc.descendants()
        .filter(|n| n.attribute("class") == Some("panel"))
        .filter_map(|g| g.children().find(|c| c.has_tag_name("title")).and_then(|t| t.text()).map(String::from))
        .collect()
}

#[test]
fn plot_of_a_lagrangian_run() {
    let p = scratch("dp.svg");
    let out = lagc(&[
        "run",
        &example("double_pendulum"),
        "--t-end",
        "2",
        "--quiet",
        "--out",
        &scratch("dp.csv"),
        "--plot",
        &p,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(&p).unwrap();
    assert!(svg.contains("double_pendulum"));
    let captions = panels(&svg);
    assert_eq!(captions.len(), 5, "{captions:?}");
    assert!(captions[1].starts_with("relative energy error, H0 = -19.2"), "{captions:?}");
    assert_eq!(
        [&captions[0], &captions[2], &captions[3], &captions[4]],
        ["coordinates", "positions (• at the end)", "phase portrait th1", "phase portrait th2"]
    );
    // The bobs' observes are drawn as positions: the first bob on its circle of radius l1 = 1.
    assert!(svg.contains("(x_bob1, y_bob1)") && svg.contains("(x_bob2, y_bob2)"));
}

#[test]
fn plot_of_kepler_draws_the_orbit_and_the_angular_momentum() {
    let p = scratch("kepler.svg");
    let out = lagc(&["run", &example("kepler"), "--t-end", "50", "--quiet", "--out", &scratch("k.csv"), "--plot", &p]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(&p).unwrap();
    let captions = panels(&svg);
    assert!(captions.iter().any(|c| c == "positions (• at the end)"), "the orbit: {captions:?}");
    assert!(captions.iter().any(|c| c == "angular_momentum"), "{captions:?}");
    assert!(captions.iter().any(|c| c == "relative energy error, H0 = -0.5"), "{captions:?}");
    // A conserved angular momentum is drawn as its change from 0.8.
    assert!(svg.contains("angular_momentum − 0.8"));
}

#[test]
fn plot_of_an_energy_run_draws_the_path_over_contours() {
    let p = scratch("rb.svg");
    let out = lagc(&["run", &example("rosenbrock"), "--quiet", "--out", &scratch("rb.csv"), "--plot", &p]);
    assert_eq!(out.status.code(), Some(0));
    let svg = std::fs::read_to_string(&p).unwrap();
    let captions = panels(&svg);
    assert_eq!(captions.len(), 3);
    assert_eq!(captions[0], "state");
    assert!(captions[1].starts_with("energy above its minimum, E_min = "), "{captions:?}");
    assert_eq!(captions[2], "path over contours of E (• start)");
}

#[test]
fn plot_of_an_ensemble_has_bands_and_the_gibbs_histogram() {
    let p = scratch("dw.svg");
    let out =
        lagc(&["run", &example("double_well"), "--t-end", "0.5", "--quiet", "--out", &scratch("dw.csv"), "--plot", &p]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(&p).unwrap();
    let captions = ["x: mean and 10%–90% band", "energy: mean and 10%–90% band", "final x (1000 particles)"];
    assert_eq!(panels(&svg), captions);
    // The bands are the quantiles over all 1,000 particles (fewer than the sample's limits).
    assert!(svg.contains("10%–90% of 1000 particles"));
    assert!(svg.contains("exp(−E/T)/Z"));
}

#[test]
fn png_is_refused_with_a_pointer_to_svg() {
    let out = lagc(&["run", &example("pendulum"), "--plot", &scratch("p.png")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use a .svg path"));
    assert!(out.stdout.is_empty());
}

#[test]
fn no_progress_bar_when_stderr_is_not_a_terminal() {
    // A run of a few seconds, longer than the bar's one-second delay.
    let out = lagc(&[
        "run",
        &example("pendulum_chain"),
        "--set",
        "N=20",
        "--t-end",
        "200",
        "--every",
        "200000",
        "--out",
        &scratch("c.csv"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\r') && !err.contains('%') && !err.contains('\u{1b}'), "{err:?}");
    assert_eq!(err.lines().count(), 1, "only the summary: {err:?}");
}
