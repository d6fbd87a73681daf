//! What reaches the operator's terminal. Some strings there come from peers: a client
//! certificate's organisation in `status --clients`, values of imported lists in diffs and
//! errors, a server's answer in `verify`. A newline in one of them forges a whole line, an
//! ESC starts an ANSI or OSC sequence, U+202E turns the rest of a line around. So a field
//! is escaped where it is formatted ([`escape`]), and every output is passed through
//! [`output`] as it is printed, which escapes what no output of ours contains.

use std::borrow::Cow;

/// Bidirectional-text controls (U+202A–U+202E, U+2066–U+2069, and the marks U+200E,
/// U+200F, U+061C): invisible, they make a name or a URL display as something it is not.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Characters a terminal does not simply show: controls (C0, DEL, C1), bidirectional
/// controls, line and paragraph separators, zero-width and other invisible format
/// characters.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || is_bidi_control(c)
        || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2028}' | '\u{2029}' | '\u{2060}'..='\u{2064}' | '\u{206A}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

fn escaped(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| needs_escape(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            c if !needs_escape(c) || keep(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// One field, shown on one line: every such character escaped, newlines too.
pub fn escape(s: &str) -> Cow<'_, str> {
    escaped(s, |_| false)
}

/// A whole output as printed: those characters escaped except newlines and tabs (the
/// fields in it were escaped where they were formatted).
pub fn output(s: &str) -> Cow<'_, str> {
    escaped(s, |c| c == '\n' || c == '\t')
}

/// JSON for the terminal: what `serde_json` leaves raw inside strings (bidirectional and
/// other invisible format characters) as `\uXXXX`, so the output stays valid JSON.
pub fn json(text: String) -> String {
    if !text.chars().any(|c| needs_escape(c) && c != '\n') {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) && c != '\n' {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_strings_cannot_forge_lines_or_send_escapes() {
        let forged = "PGO\nFAKE 127.0.0.9 last seen 2099-01-01\u{1b}]0;owned\u{7}\u{202e}txt.exe";
        let e = escape(forged);
        assert!(!e.contains('\n') && !e.contains('\u{1b}') && !e.contains('\u{202e}'));
        assert_eq!(
            e,
            "PGO\\nFAKE 127.0.0.9 last seen 2099-01-01\\u{001b}]0;owned\\u{0007}\\u{202e}txt.exe"
        );
        let o = output("line one\n\tline two \u{1b}[31mred\u{9b}\u{2028}\n");
        assert_eq!(
            o,
            "line one\n\tline two \\u{001b}[31mred\\u{009b}\\u{2028}\n"
        );
        assert!(matches!(
            escape("gewoon tekst, ook é en ß"),
            Cow::Borrowed(_)
        ));
        let j = json(serde_json::to_string(&serde_json::json!({"o": forged})).unwrap());
        let back: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(back["o"], forged);
        assert!(!j.contains('\u{202e}') && !j.contains('\u{1b}') && !j.contains('\n'));
    }
}
