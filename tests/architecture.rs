//! The boundaries ARCHITECTURE.md states, checked on the source text (in the manner of
//! rust-analyzer's tidy tests): every offender is collected and reported at once, as
//! `path:line: rule`.
//!
//! The checks read the code with comments, string literals and `#[cfg(test)]` items
//! blanked out (newlines kept, so line numbers stay true): a rule about non-test code
//! is not tripped by a test or by prose.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 1000;
const MAX_FN_LINES: usize = 150;

struct Source {
    /// Path below `src/`, with `/` separators.
    rel: String,
    /// The whole file.
    text: String,
    /// The code outside tests, comments and string literals blanked.
    code: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            let rel = p
                .strip_prefix(&root)
                .unwrap_or(&p)
                .to_string_lossy()
                .replace('\\', "/");
            // A `tests.rs` is a test module (`#[cfg(test)] mod tests;`): all test code.
            let code = match rel.ends_with("tests.rs") {
                true => text.replace(|c: char| c != '\n', " "),
                false => strip_tests(&blank_comments_and_strings(&text)),
            };
            Source { rel, text, code }
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
    for e in entries {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Replaces comments and the contents of string and char literals by spaces, keeping
/// newlines and every other byte in place.
fn blank_comments_and_strings(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |p| i + p);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let (mut depth, mut j) = (1, i + 2);
                while j < b.len() && depth > 0 {
                    if b[j] == b'/' && b.get(j + 1) == Some(&b'*') {
                        depth += 1;
                        j += 2;
                    } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
                        depth -= 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                blank(&mut out, i, j);
                i = j;
            }
            b'r' if matches!(b.get(i + 1), Some(b'"') | Some(b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let mut close = vec![b'"'];
                close.extend(std::iter::repeat_n(b'#', hashes));
                let start = j + 1;
                let end = b[start..]
                    .windows(close.len())
                    .position(|w| w == close.as_slice())
                    .map_or(b.len(), |p| start + p);
                blank(&mut out, start, end);
                i = end + close.len();
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                blank(&mut out, i + 1, j.min(b.len()));
                i = j + 1;
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{..}'), or a lifetime ('a).
                if b.get(i + 1) == Some(&b'\\') {
                    let end = b[i + 2..]
                        .iter()
                        .position(|&c| c == b'\'')
                        .map_or(b.len(), |p| i + 2 + p);
                    blank(&mut out, i + 1, end);
                    i = end + 1;
                } else if let Some(len) = text
                    .get(i + 1..)
                    .and_then(|s| s.chars().next())
                    .map(char::len_utf8)
                    .filter(|&l| b.get(i + 1 + l) == Some(&b'\''))
                {
                    blank(&mut out, i + 1, i + 1 + len);
                    i += len + 2;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Blanks every item marked `#[cfg(test)]` (a test module, a test-only function).
fn strip_tests(code: &str) -> String {
    let mut out = code.as_bytes().to_vec();
    let b = code.as_bytes();
    let mut from = 0;
    while let Some(p) = code[from..].find("#[cfg(test)]") {
        let start = from + p;
        // The item ends at its matching close brace, or at a `;` before any brace.
        let mut j = start + "#[cfg(test)]".len();
        let mut depth = 0usize;
        while j < b.len() {
            match b[j] {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        j += 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    j += 1;
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        for c in &mut out[start..j.min(b.len())] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        from = j.min(b.len());
    }
    String::from_utf8(out).unwrap_or_default()
}

fn top_module(rel: &str) -> &str {
    rel.split('/').next().unwrap_or(rel).trim_end_matches(".rs")
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// Top-level modules each non-test file names through `crate::…` (also inside
/// `use crate::{a, b::c}` groups), with the line of the first use.
fn module_edges(srcs: &[Source]) -> BTreeMap<(String, String), String> {
    let tops: BTreeSet<&str> = srcs
        .iter()
        .map(|s| top_module(&s.rel))
        .filter(|m| *m != "lib" && *m != "main")
        .collect();
    let mut edges = BTreeMap::new();
    for s in srcs {
        let from = top_module(&s.rel);
        if from == "lib" || from == "main" {
            continue;
        }
        let mut add = |to: &str, at: usize| {
            if to != from && tops.contains(to) {
                edges
                    .entry((from.to_string(), to.to_string()))
                    .or_insert_with(|| format!("src/{}:{}", s.rel, line_of(&s.code, at)));
            }
        };
        let code = &s.code;
        let mut from_ix = 0;
        while let Some(p) = code[from_ix..].find("crate::") {
            let at = from_ix + p;
            let rest = &code[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a, b::{c}, d}`: the first segment of each top-level entry.
                let mut depth = 0;
                let mut entry_start = true;
                for (k, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => entry_start = true,
                        c if entry_start && (c.is_alphanumeric() || c == '_') => {
                            let name: String = group[k..]
                                .chars()
                                .take_while(|c| c.is_alphanumeric() || *c == '_')
                                .collect();
                            add(&name, at);
                            entry_start = false;
                        }
                        _ => {}
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                add(&name, at);
            }
            from_ix = at + "crate::".len();
        }
    }
    edges
}

/// Every cycle's modules, found by depth-first search over the module edges.
fn cycles(edges: &BTreeMap<(String, String), String>) -> Vec<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().push(b);
    }
    let mut found = BTreeSet::new();
    fn dfs<'a>(
        at: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        found: &mut BTreeSet<Vec<String>>,
    ) {
        if let Some(i) = path.iter().position(|m| *m == at) {
            let mut c: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
            // One rotation per cycle: start at its smallest module.
            let min = c
                .iter()
                .enumerate()
                .min_by_key(|(_, m)| *m)
                .map_or(0, |x| x.0);
            c.rotate_left(min);
            found.insert(c);
            return;
        }
        if done.contains(at) {
            return;
        }
        path.push(at);
        for n in next.get(at).into_iter().flatten() {
            dfs(n, next, path, done, found);
        }
        path.pop();
        done.insert(at);
    }
    let mut done = BTreeSet::new();
    for start in next.keys().copied().collect::<Vec<_>>() {
        dfs(start, &next, &mut Vec::new(), &mut done, &mut found);
    }
    found.into_iter().collect()
}

/// Each non-test `fn` with its name, first line and length in lines.
fn functions(s: &Source) -> Vec<(String, usize, usize)> {
    let b = s.code.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(p) = s.code[from..].find("fn ") {
        let at = from + p;
        from = at + 3;
        if at > 0 && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_') {
            continue;
        }
        let name: String = s.code[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue; // `fn(` as a type
        }
        // The body opens at the first `{` before any `;` (a declaration has none).
        let Some(open) = s.code[at..].find(['{', ';']).map(|q| at + q) else {
            continue;
        };
        if b[open] == b';' {
            continue;
        }
        let mut depth = 0usize;
        let mut end = open;
        for (k, &c) in b[open..].iter().enumerate() {
            match c {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k;
                        break;
                    }
                }
                _ => {}
            }
        }
        let first = line_of(&s.code, at);
        out.push((name, first, line_of(&s.code, end) - first + 1));
    }
    out
}

/// The files ARCHITECTURE.md allows `unsafe` in: the backquoted paths on its line that
/// is a bullet saying "`unsafe` is allowed in".
fn unsafe_allowed() -> BTreeSet<String> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md");
    let mut lines = doc
        .lines()
        .skip_while(|l| !(l.starts_with("- ") && l.contains("`unsafe` is allowed in")));
    let mut para = String::new();
    if let Some(first) = lines.next() {
        para.push_str(first);
        for l in lines.take_while(|l| l.starts_with("  ")) {
            para.push(' ');
            para.push_str(l);
        }
    }
    para.split('`')
        .skip(1)
        .step_by(2)
        .filter(|p| p.ends_with(".rs"))
        .map(String::from)
        .collect()
}

fn report(rule: &str, offenders: Vec<String>) {
    assert!(
        offenders.is_empty(),
        "{rule}:\n  {}\n",
        offenders.join("\n  ")
    );
}

#[test]
fn clap_is_known_only_to_cli() {
    let offenders = sources()
        .iter()
        .filter(|s| top_module(&s.rel) != "cli")
        .flat_map(|s| {
            s.code
                .match_indices("clap")
                .filter(|(i, _)| {
                    let b = s.code.as_bytes();
                    (*i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
                        && !b
                            .get(i + 4)
                            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                })
                .map(|(i, _)| format!("src/{}:{}", s.rel, line_of(&s.code, i)))
                .collect::<Vec<_>>()
        })
        .collect();
    report("clap outside src/cli", offenders);
}

#[test]
fn top_level_modules_form_no_cycle() {
    let edges = module_edges(&sources());
    let offenders = cycles(&edges)
        .into_iter()
        .map(|c| {
            let mut ring = c.clone();
            ring.push(c[0].clone());
            let uses: Vec<String> = ring
                .windows(2)
                .map(|w| {
                    let at = &edges[&(w[0].clone(), w[1].clone())];
                    format!("{} -> {} ({at})", w[0], w[1])
                })
                .collect();
            uses.join(", ")
        })
        .collect();
    report(
        "a cycle between top-level modules (non-test uses)",
        offenders,
    );
}

#[test]
fn the_registry_knows_nothing_of_what_uses_it() {
    let edges = module_edges(&sources());
    let above = [
        "app", "cli", "operate", "publish", "serve", "sign", "consume", "audit",
    ];
    let offenders = edges
        .iter()
        .filter(|((a, b), _)| a == "registry" && above.contains(&b.as_str()))
        .map(|((_, b), at)| format!("{at}: registry uses {b}"))
        .collect();
    report("registry depends on a module above it", offenders);
}

#[test]
fn unsafe_only_where_architecture_md_allows_it() {
    let allowed = unsafe_allowed();
    assert!(
        !allowed.is_empty(),
        "ARCHITECTURE.md names no file allowed `unsafe`"
    );
    let srcs = sources();
    let mut offenders = Vec::new();
    for root in ["lib.rs", "main.rs"] {
        let s = srcs.iter().find(|s| s.rel == root).expect("crate root");
        if !s.code.contains("#![deny(unsafe_code)]") {
            offenders.push(format!("src/{root}: no #![deny(unsafe_code)]"));
        }
    }
    for s in &srcs {
        let uses = s.code.match_indices("unsafe").map(|(i, _)| i);
        let allows = s.code.contains("allow(unsafe_code)");
        if allowed.contains(&s.rel) {
            continue;
        }
        for i in
            uses.filter(|&i| !s.code[..i].ends_with("deny(") && !s.code[..i].ends_with("allow("))
        {
            offenders.push(format!("src/{}:{}: unsafe", s.rel, line_of(&s.code, i)));
        }
        if allows {
            offenders.push(format!("src/{}: allows unsafe_code", s.rel));
        }
    }
    for a in &allowed {
        if !srcs
            .iter()
            .any(|s| &s.rel == a && s.code.contains("unsafe"))
        {
            offenders.push(format!(
                "ARCHITECTURE.md allows unsafe in {a}, which has none"
            ));
        }
    }
    report("unsafe outside the files ARCHITECTURE.md allows", offenders);
}

#[test]
fn no_unwrap_or_expect_outside_tests() {
    let offenders = sources()
        .iter()
        .flat_map(|s| {
            [".unwrap()", ".expect("]
                .into_iter()
                .flat_map(|pat| {
                    s.code
                        .match_indices(pat)
                        .map(|(i, _)| i)
                        .collect::<Vec<_>>()
                })
                .map(|i| format!("src/{}:{}", s.rel, line_of(&s.code, i)))
                .collect::<Vec<_>>()
        })
        .collect();
    report("unwrap/expect outside tests", offenders);
}

#[test]
fn no_source_file_over_the_line_cap() {
    let offenders = sources()
        .iter()
        .filter(|s| !s.rel.ends_with("/tests.rs"))
        .map(|s| (s.rel.clone(), s.text.lines().count()))
        .filter(|(_, n)| *n > MAX_FILE_LINES)
        .map(|(rel, n)| format!("src/{rel}: {n} lines"))
        .collect();
    report(
        &format!("source files over {MAX_FILE_LINES} lines"),
        offenders,
    );
}

#[test]
fn no_function_over_the_line_cap() {
    let offenders = sources()
        .iter()
        .flat_map(|s| {
            functions(s)
                .into_iter()
                .filter(|f| f.2 > MAX_FN_LINES)
                .map(|(name, line, n)| format!("src/{}:{line}: fn {name}, {n} lines", s.rel))
                .collect::<Vec<_>>()
        })
        .collect();
    report(&format!("functions over {MAX_FN_LINES} lines"), offenders);
}

#[test]
fn architecture_md_maps_every_source_file() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md");
    let map: String = doc
        .split("## Code map")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap_or_default()
        .to_string();
    // Named in the map as `dir/` with its files as `name` (or `name.rs`) in the same item.
    let mut offenders = Vec::new();
    for s in sources() {
        let (dir, file) = match s.rel.rsplit_once('/') {
            Some((d, f)) => (format!("{d}/"), f.trim_end_matches(".rs").to_string()),
            None => (String::new(), s.rel.trim_end_matches(".rs").to_string()),
        };
        if file == "mod" || s.rel == "lib.rs" || s.rel == "main.rs" || file == "tests" {
            continue;
        }
        let item = map
            .split("\n- ")
            .find(|item| dir.is_empty() || item.starts_with(&format!("`{dir}`")));
        let named = item.is_some_and(|item| {
            item.contains(&format!("`{file}`")) || item.contains(&format!("`{file}.rs`"))
        });
        if !named {
            offenders.push(format!("src/{}", s.rel));
        }
    }
    report(
        "source files ARCHITECTURE.md's code map does not name",
        offenders,
    );
}

#[test]
fn the_checks_see_what_they_should() {
    // The reader itself: a brace in a string or comment, a char literal and a test item
    // are blanked; a lifetime is not mistaken for a char.
    let src = "fn a<'x>(s: &'x str) -> char { let _ = \"}{\"; '{' } // }\n#[cfg(test)]\nmod tests { fn b() { x.unwrap() } }\n";
    let code = strip_tests(&blank_comments_and_strings(src));
    assert!(!code.contains("unwrap"));
    assert!(code.contains("fn a<'x>(s: &'x str)"));
    let s = Source {
        rel: "x.rs".into(),
        text: src.into(),
        code,
    };
    assert_eq!(functions(&s), vec![("a".to_string(), 1, 1)]);
    let mut edges = BTreeMap::new();
    edges.insert(("a".to_string(), "b".to_string()), "here".to_string());
    assert!(cycles(&edges).is_empty());
    edges.insert(("b".to_string(), "a".to_string()), "there".to_string());
    assert_eq!(cycles(&edges), vec![vec!["a".to_string(), "b".to_string()]]);
}
