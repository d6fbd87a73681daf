//! The demo registry's lists, embedded. A leaf: `init --demo` and `serve --demo` read
//! them into a registry, and tests use them as a registry of realistic size and shape.

/// The demo registry (project-schema lists, the richest form), embedded so `serve --demo`
/// needs nothing but the binary.
pub const DEMO_LISTS: &[(&str, &[u8])] = &[
    (
        "gegevensdienstnamenlijst.xml",
        include_bytes!("../data/demo/gegevensdienstnamenlijst.xml"),
    ),
    (
        "zorgaanbiederslijst.xml",
        include_bytes!("../data/demo/zorgaanbiederslijst.xml"),
    ),
    (
        "oauthclientlist.xml",
        include_bytes!("../data/demo/oauthclientlist.xml"),
    ),
    (
        "whitelist.xml",
        include_bytes!("../data/demo/whitelist.xml"),
    ),
];
