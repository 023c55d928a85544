//! nmc compiler library.
