//! `cargo xtask ci`: the gates every change must pass.

use crate::run_command;

/// Tidy, fmt, clippy, docs, then (unless skipped) the tests and the conformance matrix.
pub(crate) fn run(with_tests: bool) -> Result<(), String> {
    crate::tidy::run()?;
    run_command("cargo", &["fmt", "--all", "--", "--check"], &[])?;
    run_command(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    // Docs with the default features and with all of them: a link that resolves only with
    // a feature on is broken for whoever builds without it.
    for features in [None, Some("--all-features")] {
        let mut args = vec!["doc", "--workspace", "--no-deps"];
        args.extend(features);
        run_command("cargo", &args, &[("RUSTDOCFLAGS", "-Dwarnings")])?;
    }
    // Every library crate packages (its manifest, files and dependencies would publish).
    run_command(
        "cargo",
        &[
            "package",
            "--workspace",
            "--no-verify",
            "--allow-dirty",
            "--exclude",
            "xtask",
            "--exclude",
            "grantkit-tests",
            "--exclude",
            "grantkit-examples",
        ],
        &[],
    )?;
    if with_tests {
        run_command("cargo", &["test", "--workspace"], &[])?;
        // The matrix in this process: xtask is already built.
        eprintln!("==> conformance --strict");
        crate::conformance::run(crate::conformance::Options {
            json: None,
            junit: None,
            html: None,
            filter: None,
            timeout: std::time::Duration::from_secs(120),
            strict: true,
            jobs: crate::conformance::DEFAULT_JOBS,
        })?;
    }
    eprintln!("ci: all gates passed");
    Ok(())
}
