//! Bad configuration and a bad environment fail at start with one clear
//! message that names the problem; `docpipe config` says where each value
//! came from.

mod common;

use std::process::{Command, Output};

use common::BIN;

fn run(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).current_dir(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run docpipe")
}

fn failed_with(out: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "exit code; stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr should mention {n:?}: {err}");
    }
    assert!(!err.contains("panicked"), "no panic: {err}");
    assert!(
        err.lines().all(|l| l.starts_with("error: ")),
        "one clear message per problem: {err}"
    );
    err
}

#[test]
fn unknown_key_names_the_key_and_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("config.toml"),
        "[pipeline]\nmax_in_flite = 3\n",
    )
    .unwrap();
    let out = run(&["serve"], &[], tmp.path());
    failed_with(&out, &["max_in_flite", "config.toml"]);
}

#[test]
fn bad_values_name_the_key_and_the_source() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        &["serve"],
        &[("DOCPIPE_PIPELINE__MAX_IN_FLIGHT", "lots")],
        tmp.path(),
    );
    failed_with(&out, &["max_in_flight", "DOCPIPE_PIPELINE__MAX_IN_FLIGHT"]);
    let out = run(&["serve", "--listen", "not-an-address"], &[], tmp.path());
    failed_with(&out, &["server.listen", "--listen"]);
    // Values of the right type but out of range: every problem at once.
    std::fs::write(
        tmp.path().join("c.toml"),
        "[pipeline]\nmax_in_flight = 0\n[pipeline.extract]\nworkers = 0\n[catalog]\nsynchronous = \"sometimes\"\n",
    )
    .unwrap();
    let out = run(&["serve", "--config", "c.toml"], &[], tmp.path());
    let err = failed_with(
        &out,
        &[
            "pipeline.max_in_flight",
            "pipeline.extract.workers",
            "catalog.synchronous",
        ],
    );
    assert_eq!(err.lines().count(), 3, "{err}");
    let out = run(&["serve", "--config", "missing.toml"], &[], tmp.path());
    failed_with(&out, &["missing.toml", "does not exist"]);
}

#[test]
fn unusable_data_dir_fails_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a-file"), "x").unwrap();
    let out = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "a-file/data",
        ],
        &[],
        tmp.path(),
    );
    failed_with(&out, &["data directory", "a-file/data"]);
}

#[test]
fn port_in_use_fails_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(
        &["serve", "--listen", &addr, "--data-dir", "d"],
        &[],
        tmp.path(),
    );
    failed_with(&out, &["cannot listen on", &addr, "in use"]);
}

#[test]
fn config_command_prints_values_and_their_sources() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("config.toml"),
        "[pipeline.extract]\nworkers = 3\n",
    )
    .unwrap();
    let out = run(
        &["config", "--listen", "127.0.0.1:9999"],
        &[("DOCPIPE_INDEX__COMMIT_BATCH", "77")],
        tmp.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no line for {key} in:\n{text}"))
            .to_string()
    };
    assert!(
        line("pipeline.extract.workers").contains("= 3")
            && line("pipeline.extract.workers").contains("config.toml")
    );
    assert!(
        line("index.commit_batch").contains("= 77")
            && line("index.commit_batch").contains("DOCPIPE_INDEX__COMMIT_BATCH")
    );
    assert!(
        line("server.listen").contains("9999") && line("server.listen").contains("--listen flag")
    );
    assert!(line("pipeline.max_in_flight").contains("built-in default"));
}
