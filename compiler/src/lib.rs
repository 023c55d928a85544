//! nmc compiler library.
pub mod passes;
