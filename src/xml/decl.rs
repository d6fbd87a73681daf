//! The XML declaration every document we write starts with. A leaf: renderers write it,
//! signers and verifiers strip it, and neither needs the other for that.

/// `<?xml version="1.0" encoding="UTF-8"?>` and a newline, byte for byte.
pub const XML_DECL: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
