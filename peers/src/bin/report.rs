//! Writes `BENCHMARKS.md` and the throughput plot from a run's criterion estimates and the
//! load test's JSON.
//!
//! ```sh
//! report --criterion "$CARGO_TARGET_DIR/criterion" --load loadtest.json \
//!        --out ../BENCHMARKS.md --svg ../docs/throughput.svg --command ./scripts/bench.sh
//! ```

use std::path::PathBuf;

use portcullis_peers::report::{LoadTest, Machine, Run, criterion_medians};

/// Where the sections other scripts measure begin in `BENCHMARKS.md`.
const KEPT_MARKER: &str =
    "<!-- Measured by other scripts; kept when this report is regenerated. -->";

fn main() {
    let mut criterion = PathBuf::from("target/criterion");
    let mut load = PathBuf::from("loadtest.json");
    let mut out = PathBuf::from("BENCHMARKS.md");
    let mut svg = PathBuf::from("throughput.svg");
    let mut command = String::from("./scripts/bench.sh");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--criterion" => criterion = value.into(),
            "--load" => load = value.into(),
            "--out" => out = value.into(),
            "--svg" => svg = value.into(),
            "--command" => command = value,
            other => panic!("unknown argument {other}"),
        }
    }
    let load: LoadTest = serde_json::from_str(
        &std::fs::read_to_string(&load).unwrap_or_else(|e| panic!("{}: {e}", load.display())),
    )
    .expect("the load test's JSON");
    let in_process = criterion_medians(&criterion, "request");
    let stored_keys = criterion_medians(&criterion, "stored_keys");
    let cache_hit = criterion_medians(&criterion, "cache_hit");
    let round_trip = criterion_medians(&criterion, "round_trip");
    assert!(
        in_process.contains_key("bare_axum"),
        "no criterion estimates under {}",
        criterion.display()
    );
    let machine = Machine::detect();
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let run = Run {
        machine: &machine,
        date: &date,
        in_process: &in_process,
        stored_keys: &stored_keys,
        cache_hit: &cache_hit,
        round_trip: &round_trip,
        load: &load,
    };
    let plot = svg
        .file_name()
        .map(|name| format!("docs/{}", name.to_string_lossy()))
        .unwrap_or_default();
    // Sections measured by other scripts (the cold start of `scripts/cold-start.sh`) follow
    // the marker; they survive this report's regeneration.
    let kept = std::fs::read_to_string(&out)
        .ok()
        .and_then(|old| old.find(KEPT_MARKER).map(|at| old[at..].to_owned()))
        .unwrap_or_else(|| format!("{KEPT_MARKER}\n"));
    let report = format!("{}\n{kept}", run.markdown(&command, &plot).trim_end());
    std::fs::write(&out, report).expect("the report");
    std::fs::write(&svg, run.svg()).expect("the plot");
    for verdict in run.verdicts() {
        println!(
            "{} {} — {}",
            if verdict.met { "met   " } else { "MISSED" },
            verdict.target,
            verdict.measured
        );
    }
}
