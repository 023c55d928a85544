//! Partitioning and placement searches. The target-independent pieces a backend uses to build its
//! default mapping and its search space (`CoreModel`, `greedy`, `assign`, the genome's
//! `Problem`) live in `nmc_backend`; the searches that move through a target's space are here.

pub mod search;

pub use nmc_backend::{assign, greedy, CoreModel, FitError, LayerSizer};
