//! The configurations portcullis is measured in, shared by the in-process benchmarks
//! (`benches/matrix.rs`) and the loopback load test (`src/bin/loadtest.rs`), so that both measure
//! exactly the same routers.
//!
//! Every [`Scenario`] is one job done one way: bare axum as the baseline, portcullis, or the
//! crate (or the middleware a typical user would write) a user would pick instead. Each is a
//! `GET /` answered `"ok"` by the same handler behind the layer under test, and each comes with
//! the headers a client sends to be let through.
//!
//! This crate is `publish = false` and outside the library's workspace: portcullis never
//! depends on its peers.

#![forbid(unsafe_code)]

pub mod hand_rolled;
pub mod report;
pub mod scenario;
pub mod sessions;
mod setup;

pub use scenario::{Env, Job, Scenario, Who, scenarios};
pub use setup::{Fixture, fixture, stored_keys};
