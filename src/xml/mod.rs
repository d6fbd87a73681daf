//! XML below the lists: the input gate every document passes, and XSD validation.

pub mod decl;
pub mod input;
pub mod libxml;
pub mod schema;
