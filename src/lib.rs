//! vswitch: a virtual Ethernet switch that runs entirely in userspace.
//!
//! The crate is layered as `../docs/architecture.md` describes: [`bridge`] decides where a frame
//! goes (pure, no I/O), [`datapath`] carries a frame through its stages, [`port`] moves frames in
//! and out of TAPs and other kinds of port, [`switch`] is the running switch that [`control`]
//! commands act on, [`reactor`] is the one event loop driving it, and [`sys`] holds every
//! `unsafe` system call. [`lab`] is `vswitch-lab`, which builds whole labs around vswitchd.

#![deny(unsafe_code)]

pub mod capture;
pub mod cli;
pub mod config;
pub mod control;
pub mod ctl;
pub mod datapath;
pub mod lab;
pub mod monitor;
pub mod port;
pub mod reactor;
pub mod switch;
pub mod sys;

pub use vswitch_core::{bridge, wire};
