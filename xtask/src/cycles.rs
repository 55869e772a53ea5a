//! Keeps the modules inside each crate pointing one way.
//!
//! At every level of a crate's module tree, the sibling modules (with everything below
//! them) must not import each other in a circle: if `reader` uses `zone` then nothing
//! under `zone` may use `reader`. A module using its own ancestors (`super::`) or its
//! descendants is not counted: that is how a module and its parts are written. Imports
//! are `use` trees and `crate::…` / `super::…` paths in non-test code; a path through a
//! `pub use` re-export counts as a use of the module that defines the item.
//!
//! The scan is lexical (comments and strings blanked by [`crate::rules::Scan`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::rules::{Scan, module_files, rust_files};

/// A module path inside a crate: `[]` is the crate root, `["zone", "peer"]` is
/// `crate::zone::peer`.
type ModPath = Vec<String>;

/// Tangles known when the check was written, reported but not failed on until they
/// are broken: `(crate, the exact set of modules)`. A tangle that grows or a new one
/// fails; remove an entry once its tangle is gone.
const KNOWN: &[(&str, &[&str])] = &[
    // The broker's connection, subscription, peer and routing types refer to each
    // other (a subscription's target is a client, a peer link or an internal queue;
    // clients and peers hold subscriptions; all of them reach the broker's state).
    (
        "broker",
        &[
            "broker", "client", "config", "monitor", "peer", "routing", "sub", "sublist",
        ],
    ),
];

pub fn check() -> anyhow::Result<()> {
    let root = crate::workspace_root();
    let (known, cycles): (Vec<String>, Vec<String>) = workspace_cycles(&root)?
        .into_iter()
        .partition(|c| is_known(c));
    for c in &known {
        eprintln!("xtask: known module tangle, still to break: {c}");
    }
    // An entry whose tangle is gone must go too, so the tangle cannot come back unseen.
    let stale: Vec<String> = KNOWN
        .iter()
        .filter(|entry| !known.iter().any(|c| matches_entry(c, entry)))
        .map(|(krate, modules)| format!("{krate}: {{{}}}", modules.join(", ")))
        .collect();
    if !stale.is_empty() {
        bail!(
            "known module tangles no longer found (remove them from KNOWN in xtask/src/cycles.rs):\n  {}",
            stale.join("\n  ")
        );
    }
    if cycles.is_empty() {
        eprintln!("xtask: no new module import circle within a crate");
        Ok(())
    } else {
        bail!(
            "module import cycles within crates (break each by moving the shared part to \
             one side or below both):\n  {}",
            cycles.join("\n  ")
        )
    }
}

/// Whether a reported tangle (`crate: {a, b} import each other: …`) is in [`KNOWN`].
fn is_known(report: &str) -> bool {
    KNOWN.iter().any(|entry| matches_entry(report, entry))
}

fn matches_entry(report: &str, (krate, modules): &(&str, &[&str])) -> bool {
    report.starts_with(&format!(
        "{krate}: {{{}}} import each other",
        modules.join(", ")
    ))
}

/// Every cycle of every crate under `crates/`, as `crate: a -> b -> a (a.rs:12 uses b, …)`.
pub(crate) fn workspace_cycles(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    crates.sort();
    for dir in crates {
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for cycle in crate_cycles(root, &src)? {
            out.push(format!("{name}: {cycle}"));
        }
    }
    Ok(out)
}

/// One parsed source file.
struct Module {
    file: PathBuf,
    /// Paths this module's non-test code names, resolved against it (with the line).
    uses: Vec<(usize, ModPath)>,
    /// `pub use` re-exports: the name it exports → the full path it points to.
    reexports: BTreeMap<String, ModPath>,
}

fn crate_cycles(root: &Path, src: &Path) -> anyhow::Result<Vec<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    files.sort();
    let mut texts = BTreeMap::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        texts.insert(file.clone(), text);
    }
    // Files that `#[cfg(test)] mod name;` declares are test code.
    let mut test_files = BTreeSet::new();
    for (file, text) in &texts {
        for name in Scan::new(text).test_modules() {
            test_files.extend(module_files(file, &name));
        }
    }
    let mut modules: BTreeMap<ModPath, Module> = BTreeMap::new();
    for (file, text) in &texts {
        if test_files.contains(file) {
            continue;
        }
        let Some(path) = module_path(src, file) else {
            continue;
        };
        let (uses, reexports) = imports(text, &path);
        modules.insert(
            path,
            Module {
                file: file.strip_prefix(root).unwrap_or(file).to_path_buf(),
                uses,
                reexports,
            },
        );
    }
    // Edges between siblings: (parent, from child, to child) → the evidence.
    let mut edges: BTreeMap<ModPath, BTreeMap<(String, String), Vec<String>>> = BTreeMap::new();
    for (from, module) in &modules {
        for (line, used) in &module.uses {
            let to = resolve(&modules, used);
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == to.len() {
                continue; // an ancestor or a descendant
            }
            let parent = from[..common].to_vec();
            let key = (from[common].clone(), to[common].clone());
            edges
                .entry(parent)
                .or_default()
                .entry(key)
                .or_default()
                .push(format!(
                    "{}:{line} uses {}",
                    module.file.display(),
                    display(&to)
                ));
        }
    }
    let mut out = Vec::new();
    for (parent, level) in &edges {
        for tangle in tangles(level) {
            let name = |m: &String| {
                let mut p = parent.clone();
                p.push(m.clone());
                display(&p)
            };
            let names: Vec<String> = tangle.iter().map(name).collect();
            let evidence: Vec<String> = level
                .iter()
                .filter(|((a, b), _)| tangle.contains(a) && tangle.contains(b))
                .map(|(_, ev)| ev[0].clone())
                .collect();
            out.push(format!(
                "{{{}}} import each other: {}",
                names.join(", "),
                evidence.join("; ")
            ));
        }
    }
    Ok(out)
}

/// `src/zone/peer.rs` → `["zone", "peer"]`; `src/lib.rs` → `[]`; binaries → `None`.
fn module_path(src: &Path, file: &Path) -> Option<ModPath> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    match stem {
        "lib" | "main" if parts.is_empty() => {}
        "mod" => {}
        _ => parts.push(stem.to_owned()),
    }
    Some(parts)
}

fn display(path: &ModPath) -> String {
    if path.is_empty() {
        "crate".to_owned()
    } else {
        path.join("::")
    }
}

/// The module a path names: its longest prefix that is a module, following `pub use`
/// re-exports of the item after it.
fn resolve(modules: &BTreeMap<ModPath, Module>, path: &ModPath) -> ModPath {
    let mut path = path.clone();
    for _ in 0..8 {
        let mut module = path.clone();
        while !module.is_empty() && !modules.contains_key(&module) {
            module.pop();
        }
        let next = path.get(module.len());
        let target = next.and_then(|n| modules.get(&module)?.reexports.get(n));
        match target {
            Some(target) if target != &path => {
                let mut t = target.clone();
                t.extend(path[module.len() + 1..].iter().cloned());
                path = t;
            }
            _ => return module,
        }
    }
    path
}

/// The crate paths `text` (the module at `me`) names outside test code, and its
/// `pub use` re-exports.
#[allow(clippy::type_complexity)]
fn imports(text: &str, me: &ModPath) -> (Vec<(usize, ModPath)>, BTreeMap<String, ModPath>) {
    let scan = Scan::new(text);
    let code = String::from_utf8_lossy(&scan.code).into_owned();
    let mut uses = Vec::new();
    let mut reexports = BTreeMap::new();
    let mut in_use = vec![false; code.len()];
    // `use` items.
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(p) = code[from..].find("use ") {
        let at = from + p;
        from = at + 4;
        let starts_item =
            at == 0 || matches!(bytes[at - 1], b' ' | b'\n' | b'\t' | b';' | b'{' | b'}');
        if !starts_item || scan.in_test(at) {
            continue;
        }
        let Some(end) = code[at..].find(';').map(|e| at + e) else {
            continue;
        };
        in_use[at..end].iter_mut().for_each(|b| *b = true);
        let is_pub = code[..at].trim_end().ends_with("pub") || code[..at].trim_end().ends_with(')');
        let tree = normalize(&code[at + 4..end]);
        for (segments, alias) in expand(&tree) {
            let Some(full) = absolute(me, &segments) else {
                continue;
            };
            if is_pub {
                let name = alias.clone().or_else(|| segments.last().cloned());
                if let Some(name) = name.filter(|n| n != "*" && n != "self") {
                    reexports.insert(name, full.clone());
                }
            }
            uses.push((scan.line(at), full));
        }
    }
    // `crate::…` and `super::…` paths in code.
    for prefix in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(p) = code[from..].find(prefix) {
            let at = from + p;
            from = at + prefix.len();
            let word_start = at == 0
                || !(bytes[at - 1].is_ascii_alphanumeric()
                    || bytes[at - 1] == b'_'
                    || bytes[at - 1] == b':');
            if !word_start || in_use[at] || scan.in_test(at) {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let segments: Vec<String> = path
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if let Some(full) = absolute(me, &segments) {
                uses.push((scan.line(at), full));
            }
        }
    }
    (uses, reexports)
}

/// A use tree with whitespace only around `as`: `a::{B as C, d}`.
fn normalize(tree: &str) -> String {
    let words: Vec<&str> = tree.split_whitespace().collect();
    let mut out = words.join(" ");
    for p in ["::", "{", "}", ","] {
        out = out
            .replace(&format!(" {p}"), p)
            .replace(&format!("{p} "), p);
    }
    out
}

/// A use tree (see [`normalize`]) → its paths, each with its `as` alias.
fn expand(tree: &str) -> Vec<(Vec<String>, Option<String>)> {
    let mut out = Vec::new();
    expand_into(tree, &mut Vec::new(), &mut out);
    out
}

fn expand_into(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, Option<String>)>) {
    let tree = tree.trim_start_matches("::");
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let len = prefix.len();
        prefix.extend(head);
        for part in split_top(inner) {
            expand_into(part, prefix, out);
        }
        prefix.truncate(len);
        return;
    }
    if tree.is_empty() {
        return;
    }
    let (path, alias) = match tree.split_once(" as ") {
        Some((p, a)) => (p, Some(a.to_owned())),
        None => (tree, None),
    };
    let mut segments = prefix.clone();
    segments.extend(
        path.split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    );
    out.push((segments, alias));
}

/// Splits `a,b::{c,d},e` at its top-level commas.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// `segments` as a path from the crate root, seen from module `me`. A path that starts
/// with neither `crate` nor `super` is taken as relative to `me` (`self::x`, a child
/// module, or another crate, which resolves back to `me` and so counts as nothing).
fn absolute(me: &ModPath, segments: &[String]) -> Option<ModPath> {
    let mut segs = segments.iter().peekable();
    match segs.peek().map(|s| s.as_str()) {
        Some("crate") => {
            segs.next();
            Some(segs.cloned().collect())
        }
        Some("super") => {
            let mut base = me.clone();
            while segs.peek().is_some_and(|s| *s == "super") {
                segs.next();
                base.pop();
            }
            base.extend(segs.cloned());
            Some(base)
        }
        Some("self") => {
            segs.next();
            let mut base = me.clone();
            base.extend(segs.cloned());
            Some(base)
        }
        Some(_) => {
            let mut base = me.clone();
            base.extend(segs.cloned());
            Some(base)
        }
        None => None,
    }
}

/// The strongly connected components with more than one node (each a set of modules
/// that import each other in a circle), smallest node first, in order.
fn tangles(edges: &BTreeMap<(String, String), Vec<String>>) -> Vec<BTreeSet<String>> {
    let mut next: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a.as_str()).or_default().insert(b.as_str());
        next.entry(b.as_str()).or_default();
    }
    // Reachability by search from each node: the graphs are a few dozen modules.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(n) = todo.pop() {
            for &s in next.get(n).into_iter().flatten() {
                if seen.insert(s) {
                    todo.push(s);
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&str, BTreeSet<&str>> = next.keys().map(|&n| (n, reach(n))).collect();
    let mut out: Vec<BTreeSet<String>> = Vec::new();
    for (&n, r) in &reachable {
        if !r.contains(n) || out.iter().any(|c| c.contains(n)) {
            continue;
        }
        let component = r
            .iter()
            .filter(|m| reachable.get(*m).is_some_and(|back| back.contains(n)))
            .map(|m| (*m).to_owned())
            .collect();
        out.push(component);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_use_trees() {
        let expanded = expand(&normalize("crate::{a::X, b::{\n  c::Y as W,\n  Z}, d}"));
        assert_eq!(expanded[1].1.as_deref(), Some("W"));
        let paths: Vec<Vec<String>> = expanded.into_iter().map(|(p, _)| p).collect();
        let want: Vec<Vec<String>> = [
            vec!["crate", "a", "X"],
            vec!["crate", "b", "c", "Y"],
            vec!["crate", "b", "Z"],
            vec!["crate", "d"],
        ]
        .iter()
        .map(|v| v.iter().map(|s| (*s).to_owned()).collect())
        .collect();
        assert_eq!(paths, want);
    }

    #[test]
    fn finds_a_sibling_circle_through_a_reexport() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("zone")).expect("mkdir");
        let write = |p: &str, t: &str| std::fs::write(src.join(p), t).expect("write");
        write(
            "lib.rs",
            "mod reader;\nmod zone;\npub use reader::Reader;\n",
        );
        write("reader.rs", "use crate::zone::Cache;\npub struct Reader;\n");
        write("zone/mod.rs", "mod peer;\npub struct Cache;\n");
        // Through the root's re-export, and in a path rather than a `use`.
        write(
            "zone/peer.rs",
            "use super::Cache;\nfn f(_: crate::Reader) {}\n",
        );
        let cycles = crate_cycles(dir.path(), &src).expect("scan");
        assert_eq!(cycles.len(), 1, "{cycles:?}");
        assert!(
            cycles[0].starts_with("{reader, zone} import each other"),
            "{cycles:?}"
        );

        // Test code does not count.
        write(
            "zone/peer.rs",
            "use super::Cache;\n#[cfg(test)]\nmod t { fn f(_: crate::Reader) {} }\n",
        );
        assert_eq!(
            crate_cycles(dir.path(), &src).expect("scan"),
            Vec::<String>::new()
        );
    }

    /// The workspace itself passes (what `cargo xtask check-deps` runs).
    #[test]
    fn workspace_has_no_new_module_circles() {
        let cycles = workspace_cycles(&crate::workspace_root()).expect("scan");
        let new: Vec<String> = cycles.into_iter().filter(|c| !is_known(c)).collect();
        assert!(new.is_empty(), "{new:#?}");
    }
}
