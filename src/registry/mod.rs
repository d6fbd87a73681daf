//! What the operator administers and how it is kept: the domain model, its rules, the
//! release catalogue, the redb store, differences between registries and gecontroleerde
//! livegang. Knows nothing of rendering, signing or serving.

pub mod catalogue;
pub mod diff;
pub mod documents;
pub mod livegang;
pub mod model;
pub mod publication;
pub mod rules;
pub mod store;
