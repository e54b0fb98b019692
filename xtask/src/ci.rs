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
    run_command(
        "cargo",
        &["doc", "--workspace", "--no-deps", "--all-features"],
        &[("RUSTDOCFLAGS", "-Dwarnings")],
    )?;
    if with_tests {
        run_command("cargo", &["test", "--workspace"], &[])?;
        run_command("cargo", &["xtask", "conformance"], &[])?;
    }
    eprintln!("ci: all gates passed");
    Ok(())
}
