//! Offending values in error messages are quoted, but never whole: a 1 MB hostname must not
//! come back as a 1 MB error.

use std::borrow::Cow;

/// How many characters of an offending value an error message quotes.
pub const MAX_QUOTED: usize = 100;

/// The value, or its first [`MAX_QUOTED`] characters with a note of its length, on one
/// line: control and invisible characters escaped (`crate::terminal::escape`), as the
/// values quoted are often a peer's.
pub fn clip(v: &str) -> Cow<'_, str> {
    let mut chars = v.char_indices();
    let clipped = match chars.nth(MAX_QUOTED) {
        None => Cow::Borrowed(v),
        Some((cut, _)) => Cow::Owned(format!("{}… ({} characters)", &v[..cut], v.chars().count())),
    };
    match crate::terminal::escape(&clipped) {
        Cow::Borrowed(_) => clipped,
        Cow::Owned(e) => Cow::Owned(e),
    }
}

/// Clip every '…'-quoted part of a message (libxml2 quotes the values it rejects), and the
/// message as a whole.
pub fn clip_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len().min(1024));
    let mut parts = msg.split('\'');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, p) in parts.enumerate() {
        out.push('\'');
        // Odd-numbered parts (0-based here: even i) are inside quotes.
        if i % 2 == 0 {
            out.push_str(&clip(p));
        } else {
            out.push_str(p);
        }
    }
    match out.char_indices().nth(4 * MAX_QUOTED) {
        Some((cut, _)) => format!("{}…", &out[..cut]),
        None => out,
    }
}

/// Longest line of an error message as printed.
pub const MAX_LINE: usize = 1000;

/// Clip every line of a message to [`MAX_LINE`] characters: the last line of defence, for
/// errors that echo an argument or a value without clipping it themselves.
pub fn clip_lines(msg: &str) -> String {
    msg.split('\n')
        .map(|l| match l.char_indices().nth(MAX_LINE) {
            Some((cut, _)) => format!("{}… ({} characters)", &l[..cut], l.chars().count()),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_clipped() {
        assert_eq!(clip("short"), "short");
        let long = "a".repeat(1_000_000);
        let c = clip(&long);
        assert!(c.len() < 150, "{c}");
        assert!(c.ends_with("(1000000 characters)"));
        let multibyte = "é".repeat(200);
        assert!(clip(&multibyte).starts_with(&"é".repeat(100)));
        let m = clip_quoted(&format!(
            "Element 'Hostname': The value '{long}' is not accepted"
        ));
        assert!(m.len() < 300, "{m}");
        assert!(m.starts_with("Element 'Hostname': The value 'aaaa"));
        assert!(m.contains("is not accepted"));
        let lines = clip_lines(&format!("a\nZorgaanbieder '{long}' does not exist\nb"));
        assert!(lines.len() < 1100 && lines.starts_with("a\n") && lines.ends_with("\nb"));
    }
}
