//! stelselnode: the Stelselnode of the MedMij network. See ARCHITECTURE.md for the map.

pub mod admin;
pub mod app;
pub mod catalogue;
pub mod cli;
pub mod clip;
pub mod datadir;
pub mod diff;
pub mod failpoint;
pub mod fetch;
pub mod history;
pub mod import;
pub mod input;
pub mod livegang;
pub mod model;
pub mod publish;
pub mod render;
pub mod rules;
pub mod schema;
pub mod serve;
pub mod sign;
pub mod store;
pub mod verify;
