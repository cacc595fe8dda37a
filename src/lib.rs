//! vswitch: a virtual Ethernet switch that runs entirely in userspace.
//!
//! The crate is layered as `../docs/architecture.md` describes: [`bridge`] decides where a frame
//! goes (pure, no I/O), [`port`] moves frames in and out of TAPs and other kinds of port,
//! [`reactor`] is the one event loop joining them, and [`sys`] holds every `unsafe` system call.

#![deny(unsafe_code)]

pub mod bridge;
pub mod cli;
pub mod config;
pub mod control;
pub mod ctl;
pub mod port;
pub mod reactor;
pub mod sys;
pub mod wire;
