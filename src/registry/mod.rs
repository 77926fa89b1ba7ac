//! Registries: images fetched from an OCI registry over the distribution
//! API into the store (`pull`), through one client that knows the site's
//! transport and credentials (`client`).

pub mod client;
pub mod pull;

pub use client::{Remote, RemoteOptions};
pub use pull::{Platforms, PullReport, host_platform, pull};
