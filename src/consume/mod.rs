//! What a consumer does with served lists: read them back into a registry, fetch them,
//! verify them.

pub mod fetch;
pub mod read;
pub mod sync;
pub mod verify;
