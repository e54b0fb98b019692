//! Installing the test server: Node.js checked, `oidc-provider` installed with `npm ci`
//! from the committed lock file when `node_modules` is missing.

use super::AuthServerError;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The `oidc-provider` version the launcher is written for, pinned in `package.json`.
pub const OIDC_PROVIDER_VERSION: &str = "9.13.3";

/// The oldest Node.js that runs it.
pub const MIN_NODE_VERSION: (u32, u32) = (20, 18);

/// The directory of the launcher, `package.json` and `package-lock.json`.
pub fn authserver_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("authserver")
}

/// Checks Node.js and installs the server's packages if they are missing. Several test
/// processes may call this at once: a lock file lets one install while the others wait.
///
/// Blocking: call it from `spawn_blocking` in async code.
pub fn ensure_installed() -> Result<PathBuf, AuthServerError> {
    let dir = authserver_dir();
    check_node("node")?;
    let lock_path = dir.join(".install.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|err| {
            AuthServerError::Install(format!("cannot open {}: {err}", lock_path.display()))
        })?;
    // A shared lock to look: an install in progress holds the exclusive one, and a
    // half-written node_modules must not pass for an installed one.
    lock.lock_shared().map_err(|err| {
        AuthServerError::Install(format!("cannot lock {}: {err}", lock_path.display()))
    })?;
    let installed = is_installed(&dir);
    lock.unlock().map_err(|err| {
        AuthServerError::Install(format!("cannot unlock {}: {err}", lock_path.display()))
    })?;
    if installed {
        return Ok(dir);
    }
    lock.lock().map_err(|err| {
        AuthServerError::Install(format!("cannot lock {}: {err}", lock_path.display()))
    })?;
    // Another process may have installed while this one waited.
    if !is_installed(&dir) {
        npm_ci(&dir, "npm")?;
        if !is_installed(&dir) {
            return Err(AuthServerError::Install(format!(
                "`npm ci` succeeded but {} has no oidc-provider {OIDC_PROVIDER_VERSION}",
                dir.join("node_modules").display()
            )));
        }
    }
    // Dropping the file releases the lock.
    Ok(dir)
}

/// Whether `oidc-provider` at the pinned version is in `node_modules`, and npm finished
/// writing it (its hidden lock file is written last).
fn is_installed(dir: &Path) -> bool {
    let modules = dir.join("node_modules");
    if !modules.join(".package-lock.json").is_file() {
        return false;
    }
    let Ok(manifest) = std::fs::read(modules.join("oidc-provider").join("package.json")) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&manifest)
        .ok()
        .and_then(|m| m.get("version")?.as_str().map(str::to_owned))
        .is_some_and(|version| version == OIDC_PROVIDER_VERSION)
}

fn npm_ci(dir: &Path, npm: &str) -> Result<(), AuthServerError> {
    let output = Command::new(npm)
        .args(["ci", "--prefer-offline", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => AuthServerError::NpmMissing,
            _ => AuthServerError::Install(format!("cannot run npm: {err}")),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(AuthServerError::Install(format!(
        "`npm ci` in {} failed ({}):\n{}",
        dir.display(),
        output.status,
        last_lines(&text, 20)
    )))
}

fn check_node(node: &str) -> Result<(), AuthServerError> {
    let output = Command::new(node)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => AuthServerError::NodeMissing,
            _ => AuthServerError::Install(format!("cannot run node: {err}")),
        })?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match parse_node_version(&text) {
        Some(version) if version >= MIN_NODE_VERSION => Ok(()),
        _ => Err(AuthServerError::NodeTooOld { found: text }),
    }
}

/// `v20.20.2` → `(20, 20)`.
fn parse_node_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().strip_prefix('v')?.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

pub(crate) fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_versions_are_read() {
        assert_eq!(parse_node_version("v20.20.2"), Some((20, 20)));
        assert_eq!(parse_node_version("v22.1.0\n"), Some((22, 1)));
        assert_eq!(parse_node_version("20.1"), None);
        assert!(parse_node_version("v20.17.9").unwrap() < MIN_NODE_VERSION);
    }

    #[test]
    fn missing_tools_are_named_with_what_to_install() {
        let err = check_node("grantkit-test-no-such-node").unwrap_err();
        assert!(matches!(err, AuthServerError::NodeMissing));
        assert!(err.to_string().contains("20.18"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = npm_ci(empty.path(), "grantkit-test-no-such-npm").unwrap_err();
        assert!(matches!(err, AuthServerError::NpmMissing));
        assert!(err.to_string().contains("npm"), "{err}");
        // A Node.js that prints something else than a version is refused, not guessed.
        let err = check_node("true").unwrap_err();
        assert!(matches!(err, AuthServerError::NodeTooOld { .. }), "{err}");
    }

    #[test]
    fn the_package_pins_the_version_the_launcher_is_written_for() {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(authserver_dir().join("package.json")).unwrap())
                .unwrap();
        assert_eq!(
            manifest["dependencies"]["oidc-provider"].as_str(),
            Some(OIDC_PROVIDER_VERSION),
            "an exact version, no range"
        );
        let lock: serde_json::Value = serde_json::from_slice(
            &std::fs::read(authserver_dir().join("package-lock.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            lock["packages"]["node_modules/oidc-provider"]["version"].as_str(),
            Some(OIDC_PROVIDER_VERSION)
        );
    }
}
