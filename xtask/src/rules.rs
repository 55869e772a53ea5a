//! Keeps JetStream's wire vocabulary in its one home (`crates/protocol`).
//!
//! Fails on non-test code that writes, outside protocol's generated error table, a
//! nats-server JetStream error code as a number (`10071`: build errors with
//! `ApiError::stream_wrong_last_sequence(…)` instead), or, outside
//! `protocol::jsapi::headers`, a `"Nats-…"` header name as a string. Test code
//! (`#[cfg(test)]` items and the modules they declare, `tests/`, `benches/`) may
//! write both, to check the wire.
//!
//! It also fails on `tonic::Code` in the agent-side crates' non-test code
//! ([`GRPC_CODE_FREE`]): they sort control-plane failures by cp-client's `CallError`.
//!
//! The scan is lexical: comments are skipped, string contents are not read as numbers,
//! numbers are not read in strings.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Where the error codes live (the only file that may spell them).
const ERROR_TABLE: &str = "crates/protocol/src/jsapi/error_codes.rs";
/// Where the header names live.
const HEADER_NAMES: &str = "crates/protocol/src/jsapi/headers.rs";

/// Crates that reach the control plane only through cp-client's typed calls and sort
/// its failures by `CallError`, never by gRPC status code (the fetcher's zone cache and
/// the agent's links serve their own gRPC, but match no codes either).
const GRPC_CODE_FREE: &[&str] = &[
    "crates/agent/src/",
    "crates/gateway/src/",
    "crates/fetcher/src/",
    "crates/jobs/src/",
    "crates/jetstream/src/",
    "crates/sim/src/",
];

pub fn check() -> anyhow::Result<()> {
    let root = crate::workspace_root();
    let problems = problems(&root)?;
    if problems.is_empty() {
        eprintln!(
            "xtask: JetStream error codes and header names have one home; no role matches gRPC codes"
        );
        Ok(())
    } else {
        bail!(
            "JetStream vocabulary outside crates/protocol (use the table's constructors and \
             jsapi::headers), or gRPC codes matched in a role:\n  {}",
            problems.join("\n  ")
        )
    }
}

fn problems(root: &Path) -> anyhow::Result<Vec<String>> {
    let table = std::fs::read_to_string(root.join(ERROR_TABLE))
        .with_context(|| format!("cannot read {ERROR_TABLE}"))?;
    let codes = table_codes(&table);
    if codes.is_empty() {
        bail!("no `err_code:` entries found in {ERROR_TABLE}");
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root.join("crates"))? {
        let src = entry?.path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files)?;
        }
    }
    files.sort();
    let sources: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f)
                .with_context(|| format!("cannot read {}", f.display()))?;
            Ok((f, text))
        })
        .collect::<anyhow::Result<_>>()?;
    // Files that `#[cfg(test)] mod name;` declares are test code.
    let mut test_files = BTreeSet::new();
    for (file, text) in &sources {
        for name in Scan::new(text).test_modules() {
            test_files.extend(module_files(file, &name));
        }
    }
    let mut out = Vec::new();
    for (file, text) in &sources {
        let rel = file.strip_prefix(root).unwrap_or(file);
        let rel_str = rel.to_string_lossy().replace('\\', "/");
        if test_files.contains(file) || rel_str == ERROR_TABLE {
            continue;
        }
        let scan = Scan::new(text);
        for (line, number) in scan.numbers() {
            if codes.contains(&number) {
                out.push(format!(
                    "{rel_str}:{line}: JetStream error code {number} written as a literal"
                ));
            }
        }
        if GRPC_CODE_FREE.iter().any(|c| rel_str.starts_with(c)) {
            for line in scan.occurrences(b"tonic::Code") {
                out.push(format!(
                    "{rel_str}:{line}: a control-plane failure sorted by `tonic::Code`: use \
                     cp-client's `CallError` (`is_unavailable`, `is_rejected`, `is_not_found`)"
                ));
            }
        }
        if rel_str != HEADER_NAMES {
            for (line, s) in scan.strings() {
                if s.starts_with("Nats-") {
                    out.push(format!(
                        "{rel_str}:{line}: header name \"{s}\" written as a literal"
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// The `err_code: NNNNN,` values of the generated table.
fn table_codes(table: &str) -> BTreeSet<u64> {
    table
        .lines()
        .filter_map(|l| l.trim().strip_prefix("err_code:"))
        .filter_map(|v| v.trim().trim_end_matches(',').parse().ok())
        .collect()
}

pub(crate) fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Where `mod name;` declared in `file` may live.
pub(crate) fn module_files(file: &Path, name: &str) -> Vec<PathBuf> {
    let Some(dir) = file.parent() else {
        return Vec::new();
    };
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let mut out = vec![
        dir.join(format!("{name}.rs")),
        dir.join(name).join("mod.rs"),
    ];
    if !matches!(stem, "lib" | "main" | "mod") {
        out.push(dir.join(stem).join(format!("{name}.rs")));
    }
    out
}

/// One file, split into code (comments and string contents blanked) and strings, with
/// the `#[cfg(test)]` items marked.
pub(crate) struct Scan {
    pub(crate) code: Vec<u8>,
    strings: Vec<(usize, String)>,
    test_ranges: Vec<(usize, usize)>,
    test_modules: Vec<String>,
    line_starts: Vec<usize>,
}

impl Scan {
    pub(crate) fn new(text: &str) -> Scan {
        let b = text.as_bytes();
        let mut code = b.to_vec();
        let mut strings = Vec::new();
        let mut i = 0;
        let blank = |code: &mut Vec<u8>, from: usize, to: usize| {
            for c in &mut code[from..to] {
                if *c != b'\n' {
                    *c = b' ';
                }
            }
        };
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        while i < b.len() {
            // `r"…"` / `br"…"` open raw strings; `xr"…"` is an identifier then a string.
            let prev_ident =
                i > 0 && ident(b[i - 1]) && !(b[i - 1] == b'b' && (i < 2 || !ident(b[i - 2])));
            match b[i] {
                b'/' if b.get(i + 1) == Some(&b'/') => {
                    let end = b[i..]
                        .iter()
                        .position(|c| *c == b'\n')
                        .map_or(b.len(), |p| i + p);
                    blank(&mut code, i, end);
                    i = end;
                }
                b'/' if b.get(i + 1) == Some(&b'*') => {
                    let mut depth = 0usize;
                    let mut j = i;
                    while j < b.len() {
                        if b[j..].starts_with(b"/*") {
                            depth += 1;
                            j += 2;
                        } else if b[j..].starts_with(b"*/") {
                            depth -= 1;
                            j += 2;
                            if depth == 0 {
                                break;
                            }
                        } else {
                            j += 1;
                        }
                    }
                    blank(&mut code, i, j);
                    i = j;
                }
                b'r' if !prev_ident && matches!(b.get(i + 1), Some(b'#' | b'"')) => {
                    let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                    let open = i + 1 + hashes;
                    if b.get(open) != Some(&b'"') {
                        i += 1;
                        continue;
                    }
                    let mut close = vec![b'"'];
                    close.extend(std::iter::repeat_n(b'#', hashes));
                    let start = open + 1;
                    let end = b[start..]
                        .windows(close.len())
                        .position(|w| w == close.as_slice())
                        .map_or(b.len(), |p| start + p);
                    strings.push((start, String::from_utf8_lossy(&b[start..end]).into_owned()));
                    blank(&mut code, start, end);
                    i = (end + close.len()).min(b.len());
                }
                b'"' => {
                    let start = i + 1;
                    let mut j = start;
                    while j < b.len() && b[j] != b'"' {
                        j += if b[j] == b'\\' { 2 } else { 1 };
                    }
                    let end = j.min(b.len());
                    strings.push((start, String::from_utf8_lossy(&b[start..end]).into_owned()));
                    blank(&mut code, start, end);
                    i = end + 1;
                }
                b'\'' => {
                    // A char literal ('x', '\n', '"'), or a lifetime ('a).
                    let close = if b.get(i + 1) == Some(&b'\\') {
                        b.get(i + 3..)
                            .and_then(|rest| rest.iter().position(|c| *c == b'\''))
                            .map(|p| i + 3 + p)
                    } else {
                        let width = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                        (b.get(i + 1 + width) == Some(&b'\'')).then_some(i + 1 + width)
                    };
                    match close {
                        Some(end) => {
                            blank(&mut code, i + 1, end);
                            i = end + 1;
                        }
                        None => i += 1,
                    }
                }
                _ => i += 1,
            }
        }
        let mut scan = Scan {
            code,
            strings,
            test_ranges: Vec::new(),
            test_modules: Vec::new(),
            line_starts: std::iter::once(0)
                .chain(
                    b.iter()
                        .enumerate()
                        .filter(|(_, c)| **c == b'\n')
                        .map(|(i, _)| i + 1),
                )
                .collect(),
        };
        scan.mark_test_items();
        scan
    }

    /// Marks each `#[cfg(test)]` item: up to its `;`, or its `{…}` block.
    fn mark_test_items(&mut self) {
        const ATTR: &[u8] = b"#[cfg(test)]";
        let code = &self.code;
        let mut from = 0;
        while let Some(p) = code[from..].windows(ATTR.len()).position(|w| w == ATTR) {
            let start = from + p;
            let mut j = start + ATTR.len();
            let mut depth = 0usize;
            let mut end = code.len();
            while j < code.len() {
                match code[j] {
                    b';' if depth == 0 => {
                        end = j + 1;
                        let item = String::from_utf8_lossy(&code[start + ATTR.len()..j]);
                        if let Some(name) =
                            item.split_whitespace().skip_while(|w| *w != "mod").nth(1)
                        {
                            self.test_modules.push(name.to_owned());
                        }
                        break;
                    }
                    b'{' => depth += 1,
                    b'}' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            end = j + 1;
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            self.test_ranges.push((start, end));
            from = end.max(start + 1);
        }
    }

    pub(crate) fn in_test(&self, at: usize) -> bool {
        self.test_ranges.iter().any(|(s, e)| (*s..*e).contains(&at))
    }

    pub(crate) fn line(&self, at: usize) -> usize {
        self.line_starts.partition_point(|s| *s <= at)
    }

    pub(crate) fn test_modules(&self) -> Vec<String> {
        self.test_modules.clone()
    }

    /// Integer literals (underscores and type suffixes dropped) outside test items.
    fn numbers(&self) -> Vec<(usize, u64)> {
        let c = &self.code;
        let mut out = Vec::new();
        let mut i = 0;
        while i < c.len() {
            let starts_token = i == 0 || !(c[i - 1].is_ascii_alphanumeric() || c[i - 1] == b'_');
            if c[i].is_ascii_digit() && starts_token {
                let end = c[i..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                    .map_or(c.len(), |p| i + p);
                let token = String::from_utf8_lossy(&c[i..end]);
                let digits: String = token
                    .chars()
                    .take_while(|ch| ch.is_ascii_digit() || *ch == '_')
                    .filter(|ch| *ch != '_')
                    .collect();
                let float = end < c.len()
                    && c[end] == b'.'
                    && c.get(end + 1).is_some_and(u8::is_ascii_digit);
                if float {
                    // Skip the fraction too: `1.10071` holds no integer literal.
                    i = end + 1;
                    while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == b'_') {
                        i += 1;
                    }
                    continue;
                }
                if let Ok(n) = digits.parse()
                    && !self.in_test(i)
                {
                    out.push((self.line(i), n));
                }
                i = end;
            } else {
                i += 1;
            }
        }
        out
    }

    /// The lines where `needle` occurs in code outside test items.
    fn occurrences(&self, needle: &[u8]) -> Vec<usize> {
        self.code
            .windows(needle.len())
            .enumerate()
            .filter(|(at, w)| *w == needle && !self.in_test(*at))
            .map(|(at, _)| self.line(at))
            .collect()
    }

    /// String literal contents outside test items.
    fn strings(&self) -> Vec<(usize, &str)> {
        self.strings
            .iter()
            .filter(|(at, _)| !self.in_test(*at))
            .map(|(at, s)| (self.line(*at), s.as_str()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r##"
//! 10071 in a doc comment
use x::{A, B};
const TOO_BIG: u16 = 10054; /* 10059 in a block */
fn f<'a>(s: &'a str) -> char {
    let _ = "10071 in a string: Nats-Msg-Id";
    let _ = ("Nats-TTL", '"', r#"Nats-Rollup "quoted""#);
    let _ = (1.10071, '\'', br"Nats-Raw");
    let _ = 10_071u32;
    'x'
}
#[cfg(test)]
mod tests {
    fn g() { let _ = (10071, "Nats-Msg-Id"); }
}
#[cfg(test)]
mod more;
const AFTER: u32 = 10059;
"##;

    #[test]
    fn finds_literals_outside_tests_and_comments() {
        let scan = Scan::new(SAMPLE);
        let numbers: Vec<u64> = scan.numbers().into_iter().map(|(_, n)| n).collect();
        assert!(numbers.contains(&10054), "{numbers:?}");
        assert!(numbers.contains(&10071), "10_071u32 counts: {numbers:?}");
        assert!(numbers.contains(&10059), "{numbers:?}");
        assert_eq!(
            numbers.iter().filter(|n| **n == 10071).count(),
            1,
            "not in comments, strings, decimals or tests: {numbers:?}"
        );
        let strings: Vec<&str> = scan.strings().into_iter().map(|(_, s)| s).collect();
        assert!(strings.contains(&"Nats-TTL"), "{strings:?}");
        assert!(strings.contains(&"Nats-Raw"), "{strings:?}");
        assert!(strings.contains(&"Nats-Rollup \"quoted\""), "{strings:?}");
        assert_eq!(
            strings
                .iter()
                .filter(|s| s.starts_with("Nats-Msg-Id"))
                .count(),
            0,
            "{strings:?}"
        );
        assert_eq!(scan.test_modules(), vec!["more".to_owned()]);
        let (line, _) = scan.numbers()[scan.numbers().len() - 1];
        assert_eq!(line, 18);
    }

    /// The workspace itself passes (what `cargo xtask check-deps` runs).
    #[test]
    fn workspace_keeps_the_vocabulary_in_protocol() {
        let problems = problems(&crate::workspace_root()).expect("scan");
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
