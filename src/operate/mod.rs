//! The operator's operations and the admin channel that carries them into a running server.

pub mod admin;
pub mod history;
