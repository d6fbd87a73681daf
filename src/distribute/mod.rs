//! Distribution beyond the official list URLs, for consumers that check what they use: a
//! signed head per release naming every list's exact bytes, and deltas from one
//! Volgnummer to the next that rebuild those bytes exactly (`stelselnode sync` uses both).
//! The official URLs are unchanged; this is an accelerator and a safety net on top.

pub mod delta;
pub mod head;
pub mod split;
pub mod store;
