//! stelselnode: the Stelselnode of the MedMij network. See ARCHITECTURE.md for the map.

// `unsafe` only in the files ARCHITECTURE.md names, each with `allow(unsafe_code)`.
#![deny(unsafe_code)]

pub mod app;
pub mod cli;
pub mod clip;
pub mod consume;
pub mod cores;
pub mod datadir;
pub mod demo;
pub mod digest;
pub mod distribute;
pub mod failpoint;
pub mod operate;
pub mod os;
pub mod publish;
pub mod registry;
pub mod serve;
pub mod sign;
pub mod terminal;
pub mod xml;
