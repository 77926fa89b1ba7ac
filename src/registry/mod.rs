//! Registries: images fetched from an OCI registry over the distribution
//! API into the store (`pull`) and snapshots put into one (`push`), through
//! one client that knows the site's transport and credentials (`client`).

pub mod client;
mod credentials;
mod layout;
mod pipe;
pub mod pull;
pub mod push;
mod upload;

pub use client::{Remote, RemoteOptions};
pub use pull::{Platforms, PullReport, host_platform, pull};
pub use push::{PushReport, push};
