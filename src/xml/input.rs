//! Bounded, checked input. The one gate every XML input passes before any parser sees it: imported lists, documents
//! and signatures to verify, audit archives, and our own documents before validation.
//!
//! Lists are UTF-8 data with no DTD and no processing instructions. Anything else is refused
//! here, so that the validator, the signature verifier and other consumers' parsers can never
//! read different content from the same bytes (an entity expanded by one and not the other,
//! an EBCDIC document whose `<!DOCTYPE` a byte scan does not see).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

fn refuse<T>(msg: impl Into<String>) -> Result<T, InputError> {
    Err(InputError(msg.into()))
}

/// Refuse anything that is not UTF-8 (actual bytes and declared encoding), XML 1.0, free of
/// DTDs and free of processing instructions.
pub fn check_xml(bytes: &[u8]) -> Result<(), InputError> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => {
            return refuse(format!(
                "document is not UTF-8 (invalid byte sequence at byte {}): MedMij lists are UTF-8 encoded",
                e.valid_up_to() + (bytes.len() - body.len())
            ))
        }
    };
    // memchr's searches, not str::find: this runs over every byte we publish (480 MB at
    // 100k Zorgaanbieders), where std's substring search cost about 3 % of a publication.
    if let Some(i) = memchr::memchr(0, text.as_bytes()) {
        return refuse(format!(
            "document contains a NUL character at byte {i}: not XML"
        ));
    }
    let rest = declaration(text)?;
    // Scan everything, not a prefix: a DOCTYPE after a long comment is still a DOCTYPE. Inside
    // comments these are refused too: the bytes are refused rather than parsed differently.
    if let Some(i) = memchr::memmem::find(rest.as_bytes(), b"<!DOCTYPE") {
        return refuse(format!(
            "document contains a <!DOCTYPE> (at byte {}): DTDs and entities are not allowed in MedMij lists",
            i + (text.len() - rest.len())
        ));
    }
    if let Some(i) = memchr::memmem::find(rest.as_bytes(), b"<?") {
        return refuse(format!(
            "document contains a processing instruction (at byte {}): not allowed in MedMij lists",
            i + (text.len() - rest.len())
        ));
    }
    Ok(())
}

/// Check the XML declaration, if any, and return the text after it. Only `version="1.0"`,
/// `encoding` UTF-8 (any case) and `standalone` are allowed.
fn declaration(text: &str) -> Result<&str, InputError> {
    let Some(after) = text.strip_prefix("<?xml") else {
        return Ok(text);
    };
    if !after.starts_with([' ', '\t', '\r', '\n']) {
        // `<?xml-stylesheet …?>` and the like: a processing instruction, refused by `check_xml`.
        return Ok(text);
    }
    let end = after
        .find("?>")
        .ok_or_else(|| InputError("XML declaration is not terminated by '?>'".into()))?;
    let mut decl = &after[..end];
    let mut seen: Vec<&str> = Vec::new();
    loop {
        decl = decl.trim_start_matches([' ', '\t', '\r', '\n']);
        if decl.is_empty() {
            break;
        }
        let name_end = decl
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(decl.len());
        let name = &decl[..name_end];
        let eq = decl[name_end..].trim_start_matches([' ', '\t', '\r', '\n']);
        let Some(v) = eq.strip_prefix('=') else {
            return refuse(format!(
                "XML declaration: '{}' is not a pseudo-attribute",
                crate::clip::clip(decl)
            ));
        };
        let v = v.trim_start_matches([' ', '\t', '\r', '\n']);
        let quote = v.chars().next().filter(|q| *q == '"' || *q == '\'');
        let Some(q) = quote else {
            return refuse(format!("XML declaration: {name} has no quoted value"));
        };
        let close = v[1..]
            .find(q)
            .ok_or_else(|| InputError(format!("XML declaration: {name} value is not closed")))?;
        let value = &v[1..1 + close];
        decl = &v[close + 2..];
        if seen.contains(&name) {
            return refuse(format!("XML declaration: {name} is given twice"));
        }
        seen.push(name);
        match name {
            "version" if value == "1.0" => {}
            "version" => {
                return refuse(format!(
                    "XML declaration: version '{}' is not supported (only 1.0)",
                    crate::clip::clip(value)
                ))
            }
            "encoding" if value.eq_ignore_ascii_case("utf-8") => {}
            "encoding" => {
                return refuse(format!(
                    "document declares encoding '{}': MedMij lists are UTF-8 encoded",
                    crate::clip::clip(value)
                ))
            }
            "standalone" if value == "yes" || value == "no" => {}
            other => {
                return refuse(format!(
                    "XML declaration: '{}' is not allowed there",
                    crate::clip::clip(other)
                ))
            }
        }
    }
    if seen.first() != Some(&"version") {
        return refuse("XML declaration must start with version=\"1.0\"");
    }
    Ok(&after[end + 2..])
}

/// Default largest list accepted by `import` and `verify`: about twice the largest list this
/// Stelselnode renders in the benchmarks (the release3 Zorgaanbiederslijst of 100,000
/// Zorgaanbieders, see BENCHMARKS.md).
pub const DEFAULT_MAX_LIST: &str = "1GiB";

/// Open a file that is to be read whole: only a regular file, at most `max` bytes, checked
/// before anything is read, so a FIFO, a device or an oversize file is refused at once.
/// Returns the open file and its length.
pub fn open_file(path: &std::path::Path, max: u64) -> Result<(std::fs::File, u64), InputError> {
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    // stat never blocks, unlike opening a FIFO.
    let meta = std::fs::metadata(path).map_err(|e| InputError(format!("{shown}: {e}")))?;
    if !meta.is_file() {
        return refuse(format!(
            "{shown} is not a regular file (a FIFO, device, socket or directory); only regular files are read"
        ));
    }
    if meta.len() > max {
        return refuse(format!(
            "{shown} is {} bytes, more than the maximum of {max} bytes (--max-size)",
            meta.len()
        ));
    }
    // O_NONBLOCK: if the path was swapped for a FIFO after the stat, open does not hang.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| InputError(format!("{shown}: {e}")))?;
    let meta = f
        .metadata()
        .map_err(|e| InputError(format!("{shown}: {e}")))?;
    if !meta.is_file() {
        return refuse(format!("{shown} is not a regular file"));
    }
    if meta.len() > max {
        return refuse(format!(
            "{shown} is larger than the maximum of {max} bytes (--max-size)"
        ));
    }
    Ok((f, meta.len()))
}

/// Read a file that is to be parsed as XML ([`open_file`]'s checks): memory stays bounded
/// by `max`.
pub fn read_file(path: &std::path::Path, max: u64) -> Result<Vec<u8>, InputError> {
    use std::io::Read;
    let (f, len) = open_file(path, max)?;
    let mut out = Vec::with_capacity(len.min(max) as usize);
    f.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| InputError(format!("reading {}: {e}", path.display())))?;
    if out.len() as u64 > max {
        return refuse(format!(
            "{} is larger than the maximum of {max} bytes (--max-size)",
            path.display()
        ));
    }
    Ok(out)
}

/// Parse a size such as `512MiB`, `2GiB`, `1000000` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("size '{s}' must be a number of bytes, optionally with KiB, MiB or GiB")
    })?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        other => {
            return Err(format!(
                "size '{s}': unknown unit '{other}' (use KiB, MiB or GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("size '{s}' is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_declared_and_actual() {
        assert!(check_xml(b"<x/>").is_ok());
        assert!(check_xml(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<x/>").is_ok());
        assert!(check_xml(b"<?xml version='1.0' encoding='utf-8' standalone='yes'?><x/>").is_ok());
        assert!(check_xml(b"\xEF\xBB\xBF<?xml version=\"1.0\"?><x/>").is_ok());
        for bad in [
            &b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><x/>"[..],
            b"<?xml version=\"1.1\"?><x/>",
            b"<?xml encoding=\"UTF-8\"?><x/>",
            b"<?xml version=\"1.0\" encoding=\"UTF-8\" encoding=\"UTF-8\"?><x/>",
            b"<?xml version=\"1.0\" foo=\"bar\"?><x/>",
            b"<?xml version=\"1.0\"",
            b"\xff\xfe<\x00x\x00/\x00>\x00",
            b"\xfe\xff\x00<\x00x",
            b"<x>\xe9</x>",
            b"<x>\0</x>",
        ] {
            assert!(check_xml(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn ebcdic_with_doctype_is_refused() {
        // "<?xml version="1.0" encoding="IBM037"?><!DOCTYPE x [...]>" in IBM037: no ASCII
        // '<!DOCTYPE' for a byte scan to find, and not UTF-8.
        let ebcdic: &[u8] = &[
            0x4c, 0x6f, 0xa7, 0x94, 0x93, 0x40, 0xa5, 0x85, 0x99, 0xa2, 0x89, 0x96, 0x95, 0x7e,
            0x7f, 0xf1, 0x4b, 0xf0, 0x7f, 0x6f, 0x6e, 0x4c, 0x5a, 0xc4, 0xd6, 0xc3, 0xe3, 0xe8,
            0xd7, 0xc5,
        ];
        let e = check_xml(ebcdic).unwrap_err();
        assert!(e.0.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn dtd_and_processing_instructions_are_refused() {
        assert!(check_xml(b"<!DOCTYPE x><x/>").is_err());
        let late = format!("<!--{}--><!DOCTYPE x><x/>", " ".repeat(200_000));
        let e = check_xml(late.as_bytes()).unwrap_err();
        assert!(e.0.contains("at byte 200007"), "{e}");
        let e = check_xml(b"<x>\0</x>").unwrap_err();
        assert!(e.0.contains("NUL character at byte 3"), "{e}");
        let e = check_xml(b"<x>a</x><?pi?>").unwrap_err();
        assert!(e.0.contains("processing instruction (at byte 8)"), "{e}");
        assert!(check_xml(b"<?xml version=\"1.0\"?><?xml-stylesheet href=\"a\"?><x/>").is_err());
        assert!(check_xml(b"<x><?pi data?></x>").is_err());
        assert!(check_xml(b"<?xml-stylesheet href=\"a\"?><x/>").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }
}
