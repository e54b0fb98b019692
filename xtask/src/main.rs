//! grantkit's project tasks.

fn main() {}
