//! What the examples share: reading their configuration.

/// The environment variable `name`, or a configuration error that names it.
pub fn env(name: &str) -> grantkit::Result<String> {
    std::env::var(name)
        .map_err(|_| grantkit::Error::configuration(format!("set the environment variable {name}")))
}
