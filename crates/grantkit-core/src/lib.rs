//! grantkit core.
