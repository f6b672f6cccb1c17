//! Fails when octod's modules import each other in a circle (issue 12: "no import circle
//! among octod's modules"). Run it with:
//!
//! ```text
//! cargo test -p octod --test module_graph
//! ```
//!
//! The graph is file-level: each file under `src/` is a node (`src/api/mod.rs` is `api`,
//! `src/auth/http/extract.rs` is `auth::http::extract`). A file depends on another when one of
//! its paths names an item there: `use` trees (braces included) and inline paths starting with
//! `crate::`, `super::`, `self::` or the name of one of its own child modules. A path resolves
//! to the deepest file module among its prefixes (`crate::api::ApiError` → `src/api/mod.rs`),
//! so a re-export counts as a dependency of the facade that re-exports it. Edges from a file
//! to one of its ancestors are left out: a child using its parent's facade is normal layering,
//! and the parent still depends on the child through the paths it uses. `mod x;` declarations
//! are not edges either. `main.rs` is the binary's own root and only uses the library.
//!
//! The reading is a small tokenizer, not a parser: it skips comments, strings and character
//! literals, which is all it needs to find paths; macros' bodies are read like any code.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A module's path below the crate root: `["auth", "http"]`; the root is empty.
type ModPath = Vec<String>;

#[test]
fn octod_has_no_import_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = Graph::read(&src).expect("reading octod/src");
    let circles = graph.circles();
    assert!(circles.is_empty(), "{}", graph.report(&circles));
}

/// octod's layers, bottom up (ARCHITECTURE.md, "Layers"): a module may use its own layer and
/// the ones below, never one above. A module is named by its longest prefix listed here.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "domain and IO adapters",
        &[
            "session",
            "identity",
            "metrics",
            "config",
            "limits",
            "agent",
            "disk",
            "templates",
            "render",
            "journal",
            "systemd",
            "podman",
            "store",
            "image",
            "snapshot",
        ],
    ),
    ("engine and services", &["engine", "auth", "service"]),
    ("the HTTP floor", &["http"]),
    (
        "the edges",
        &["api", "auth::http", "proxy", "content", "llm"],
    ),
    // `admin` is the admin socket's own root: its router mounts the edges' handlers over the
    // app's state with another caller.
    (
        "the composition roots",
        &["app", "admin", "listen", "serve", "lib"],
    ),
];

/// The layer of a module: the index in [`LAYERS`] of its longest listed prefix.
fn layer_of(module: &ModPath) -> Option<usize> {
    let name = if module.is_empty() {
        "lib".to_owned()
    } else {
        module.join("::")
    };
    LAYERS
        .iter()
        .enumerate()
        .flat_map(|(layer, (_, names))| names.iter().map(move |n| (layer, *n)))
        .filter(|(_, n)| name == *n || name.starts_with(&format!("{n}::")))
        .max_by_key(|(_, n)| n.len())
        .map(|(layer, _)| layer)
}

#[test]
fn octod_uses_only_its_own_layer_and_the_ones_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = Graph::read(&src).expect("reading octod/src");
    let mut problems = String::new();
    for (module, file) in &graph.files {
        let Some(from) = layer_of(module) else {
            let _ = writeln!(problems, "{file} is in no layer: add it to LAYERS");
            continue;
        };
        for (target, why) in graph.edges.get(module).into_iter().flatten() {
            if let Some(to) = layer_of(target).filter(|to| *to > from) {
                let _ = writeln!(
                    problems,
                    "{file} ({}) uses {} ({}) through {why}",
                    LAYERS[from].0, graph.files[target], LAYERS[to].0
                );
            }
        }
    }
    assert!(problems.is_empty(), "layering broken:\n{problems}");
}

/// The file-level module graph of one crate's `src/`.
struct Graph {
    /// Every file module, with its file relative to `src/` ("api/mod.rs").
    files: BTreeMap<ModPath, String>,
    /// For each file module, the modules it depends on, each with one path that shows why.
    edges: BTreeMap<ModPath, BTreeMap<ModPath, String>>,
}

impl Graph {
    fn read(src: &Path) -> std::io::Result<Self> {
        let mut paths = Vec::new();
        rust_files(src, &mut paths)?;
        let mut sources = BTreeMap::new();
        let mut files = BTreeMap::new();
        for path in paths {
            let relative = path.strip_prefix(src).unwrap_or(&path);
            let name = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let Some(module) = module_of(&name) else {
                continue;
            };
            sources.insert(module.clone(), std::fs::read_to_string(&path)?);
            files.insert(module, name);
        }
        let modules: BTreeSet<ModPath> = files.keys().cloned().collect();
        let mut edges: BTreeMap<ModPath, BTreeMap<ModPath, String>> = BTreeMap::new();
        for (module, text) in &sources {
            let targets = edges.entry(module.clone()).or_default();
            for (scope, path) in references(&tokenize(text), module) {
                let Some(target) = resolve(&scope, &path, &modules) else {
                    continue;
                };
                // Itself or an ancestor: not an edge (see the module comment).
                if module.starts_with(&target) {
                    continue;
                }
                targets.entry(target).or_insert_with(|| path.join("::"));
            }
        }
        Ok(Self { files, edges })
    }

    /// The strongly connected components of more than one file (Tarjan), each as its files
    /// in order; a file that uses only itself is not a circle.
    fn circles(&self) -> Vec<Vec<String>> {
        let nodes: Vec<&ModPath> = self.files.keys().collect();
        let index_of: BTreeMap<&ModPath, usize> =
            nodes.iter().enumerate().map(|(i, m)| (*m, i)).collect();
        let successors: Vec<Vec<usize>> = nodes
            .iter()
            .map(|m| {
                self.edges
                    .get(*m)
                    .into_iter()
                    .flat_map(BTreeMap::keys)
                    .filter_map(|t| index_of.get(t).copied())
                    .collect()
            })
            .collect();
        let mut tarjan = Tarjan {
            successors: &successors,
            index: vec![None; nodes.len()],
            low: vec![0; nodes.len()],
            on_stack: vec![false; nodes.len()],
            stack: Vec::new(),
            next: 0,
            components: Vec::new(),
        };
        for node in 0..nodes.len() {
            if tarjan.index[node].is_none() {
                tarjan.visit(node);
            }
        }
        let mut circles: Vec<Vec<String>> = tarjan
            .components
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| {
                let mut files: Vec<String> = c
                    .into_iter()
                    .map(|i| self.files[nodes[i]].clone())
                    .collect();
                files.sort();
                files
            })
            .collect();
        circles.sort();
        circles
    }

    /// What a failing test shows: each circle's files and the edges between them.
    fn report(&self, circles: &[Vec<String>]) -> String {
        let mut out = format!(
            "{} import circle(s) among the modules under src/ (each file below reaches every \
             other one of its circle through `use` or inline paths):\n",
            circles.len()
        );
        let module_of_file: BTreeMap<&String, &ModPath> =
            self.files.iter().map(|(m, f)| (f, m)).collect();
        for (n, circle) in circles.iter().enumerate() {
            let _ = writeln!(
                out,
                "circle {} ({} files): {}",
                n + 1,
                circle.len(),
                circle.join(", ")
            );
            for file in circle {
                let Some(targets) = self.edges.get(module_of_file[file]) else {
                    continue;
                };
                for (target, why) in targets {
                    let to = &self.files[target];
                    if circle.contains(to) {
                        let _ = writeln!(out, "  {file} -> {to}  ({why})");
                    }
                }
            }
        }
        out
    }
}

struct Tarjan<'a> {
    successors: &'a [Vec<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    components: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, v: usize) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for &w in &self.successors[v] {
            match self.index[w] {
                None => {
                    self.visit(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(index) if self.on_stack[w] => self.low[v] = self.low[v].min(index),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
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

/// The module a file under `src/` holds: "lib.rs" is the root, "a/mod.rs" and "a.rs" are `a`;
/// `None` for the binary's root, "main.rs".
fn module_of(file: &str) -> Option<ModPath> {
    if file == "main.rs" {
        return None;
    }
    let mut parts: ModPath = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if file == "lib.rs" || parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    Some(parts)
}

/// The module a path names: the deepest file module among its prefixes. `None` for paths
/// that do not start in this crate (`std::…`, `axum::…`, a name brought in by `use`).
fn resolve(scope: &[String], path: &[String], modules: &BTreeSet<ModPath>) -> Option<ModPath> {
    let (mut full, rest): (ModPath, &[String]) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (scope.to_vec(), &path[1..]),
        "super" => {
            let mut base = scope.to_vec();
            let supers = path.iter().take_while(|s| *s == "super").count();
            for _ in 0..supers {
                base.pop()?;
            }
            (base, &path[supers..])
        }
        first => {
            let mut child = scope.to_vec();
            child.push(first.to_owned());
            if !modules.contains(&child) {
                return None;
            }
            (scope.to_vec(), path)
        }
    };
    full.extend(rest.iter().filter(|s| *s != "self").cloned());
    (0..=full.len())
        .rev()
        .map(|n| full[..n].to_vec())
        .find(|m| modules.contains(m))
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Star,
    Other,
}

/// The tokens that matter for paths; comments, strings and character literals are dropped.
fn tokenize(text: &str) -> Vec<Tok> {
    let c: Vec<char> = text.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            // Block comments nest in Rust.
            let mut depth = 0;
            loop {
                if at(i) == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if at(i) == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else if i >= c.len() {
                    break;
                } else {
                    i += 1;
                }
            }
        } else if ch == '"' {
            i = skip_string(&c, i + 1);
        } else if ch == '\'' {
            // A character literal ('x', '\n', '\u{1F600}') or a lifetime ('a, 'static).
            if at(i + 1) == '\\' {
                i += 3;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
            }
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Tok::PathSep);
            i += 2;
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let raw = matches!(word.as_str(), "r" | "br" | "cr");
            if raw && (at(i) == '"' || (at(i) == '#' && (at(i + 1) == '#' || at(i + 1) == '"'))) {
                i = skip_raw_string(&c, i);
            } else if matches!(word.as_str(), "b" | "c") && at(i) == '"' {
                i = skip_string(&c, i + 1);
            } else if matches!(word.as_str(), "b") && at(i) == '\'' {
                // A byte literal: the `'` branch above skips it on the next turn.
            } else if word == "r" && at(i) == '#' {
                // A raw identifier: r#type.
                let start = i + 1;
                i = start;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Ident(c[start..i].iter().collect()));
            } else {
                out.push(Tok::Ident(word));
            }
        } else {
            out.push(match ch {
                '{' => Tok::Open,
                '}' => Tok::Close,
                ',' => Tok::Comma,
                '*' => Tok::Star,
                c if c.is_whitespace() => {
                    i += 1;
                    continue;
                }
                _ => Tok::Other,
            });
            i += 1;
        }
    }
    out
}

/// The index after a string whose opening `"` ends before `i` (escapes honoured).
fn skip_string(c: &[char], mut i: usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// The index after a raw string whose `#`s or `"` start at `i`.
fn skip_raw_string(c: &[char], mut i: usize) -> usize {
    let hashes = c[i..].iter().take_while(|&&h| h == '#').count();
    i += hashes + 1;
    while i < c.len() {
        if c[i] == '"'
            && c[i + 1..]
                .iter()
                .take(hashes)
                .filter(|&&h| h == '#')
                .count()
                == hashes
        {
            return i + 1 + hashes;
        }
        i += 1;
    }
    i
}

/// Every path in a file, each with the module it is written in (the file's module, or an
/// inline `mod x { … }` inside it, which `super::` is relative to).
fn references(tokens: &[Tok], file: &ModPath) -> Vec<(ModPath, Vec<String>)> {
    let mut scope = file.clone();
    // The brace depth at which each open inline module started.
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0;
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Tok::Ident(word) if word == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Open)) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    scope.push(name.clone());
                    inline.push(depth);
                    depth += 1;
                    i += 3;
                    continue;
                }
            }
            Tok::Ident(word) if word == "use" => {
                let mut paths = Vec::new();
                i = use_tree(tokens, i + 1, &[], &mut paths);
                out.extend(paths.into_iter().map(|p| (scope.clone(), p)));
                continue;
            }
            Tok::Ident(first) => {
                let mut path = vec![first.clone()];
                let mut j = i + 1;
                while let (Some(Tok::PathSep), Some(Tok::Ident(next))) =
                    (tokens.get(j), tokens.get(j + 1))
                {
                    path.push(next.clone());
                    j += 2;
                }
                if path.len() > 1 {
                    out.push((scope.clone(), path));
                }
                i = j;
                continue;
            }
            // `::name` (a path after a generic argument list, or an absolute one): not ours.
            Tok::PathSep => i += 1,
            Tok::Open => depth += 1,
            Tok::Close => {
                depth = depth.saturating_sub(1);
                if inline.last() == Some(&depth) {
                    inline.pop();
                    scope.pop();
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Reads one use tree from `i` below `prefix`, adding each full path it names to `out`
/// (`a::{b, c::{d, e as f}, *}` gives `a::b`, `a::c::d`, `a::c::e`, `a`); returns the index
/// after it.
fn use_tree(tokens: &[Tok], mut i: usize, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix.to_vec();
    if tokens.get(i) == Some(&Tok::PathSep) {
        i += 1;
    }
    loop {
        match tokens.get(i) {
            Some(Tok::Ident(segment)) => {
                path.push(segment.clone());
                i += 1;
                if tokens.get(i) == Some(&Tok::PathSep) {
                    i += 1;
                    continue;
                }
                if matches!(tokens.get(i), Some(Tok::Ident(word)) if word == "as") {
                    i += 2;
                }
                out.push(path);
                return i;
            }
            Some(Tok::Star) => {
                out.push(path);
                return i + 1;
            }
            Some(Tok::Open) => {
                i += 1;
                loop {
                    match tokens.get(i) {
                        Some(Tok::Close) => return i + 1,
                        None => return i,
                        Some(Tok::Comma) => i += 1,
                        Some(_) => {
                            let before = i;
                            i = use_tree(tokens, i, &path, out);
                            if i == before {
                                i += 1;
                            }
                        }
                    }
                }
            }
            _ => return i,
        }
    }
}

/// Writes `files` (name under `src/`, text) into a temporary `src/` and asserts the circles
/// the checker finds there, each as its sorted files.
fn check(files: &[(&str, &str)], expected: &[&[&str]]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("creating a folder");
        std::fs::write(path, text).expect("writing a file");
    }
    let graph = Graph::read(dir.path()).expect("reading the tree");
    let circles = graph.circles();
    let expected: Vec<Vec<String>> = expected
        .iter()
        .map(|c| c.iter().map(|f| (*f).to_owned()).collect())
        .collect();
    assert_eq!(circles, expected, "{}", graph.report(&circles));
}

#[test]
fn a_circle_through_use_trees_with_braces_is_found() {
    check(
        &[
            ("lib.rs", "pub mod a; pub mod b; pub mod c;"),
            ("a/mod.rs", "use crate::{b::{self, B}, c::C};"),
            ("b.rs", "use crate::a::A;"),
            ("c.rs", "use std::fmt;"),
        ],
        &[&["a/mod.rs", "b.rs"]],
    );
}

#[test]
fn a_child_using_its_parents_facade_is_no_circle() {
    check(
        &[
            ("lib.rs", "pub mod a; pub mod b;"),
            ("a/mod.rs", "mod x; pub use x::X; use crate::b::B;"),
            (
                "a/x.rs",
                "use super::A; use super::super::b::B; fn f() { crate::a::g() }",
            ),
            (
                "b.rs",
                "pub struct B; fn v() -> &'static str { crate::VERSION }",
            ),
            ("main.rs", "use crate::a::A;"),
        ],
        &[],
    );
}

#[test]
fn inline_paths_resolve_to_the_deepest_file_module() {
    // a/x.rs reaches b.rs through `super::super::`, b.rs reaches a/x.rs (not a/mod.rs).
    check(
        &[
            ("lib.rs", "pub mod a; pub mod b;"),
            ("a/mod.rs", "pub mod x;"),
            ("a/x.rs", "fn f() { super::super::b::g() }"),
            ("b.rs", "fn g() { let _ = crate::a::x::Y::new(); }"),
        ],
        &[&["a/x.rs", "b.rs"]],
    );
}

#[test]
fn a_parent_using_its_child_closes_a_circle() {
    check(
        &[
            ("lib.rs", "pub mod a; pub mod b;"),
            ("a/mod.rs", "mod x; pub fn go() { x::run() }"),
            ("a/x.rs", "pub fn run() { crate::b::f() }"),
            ("b.rs", "pub fn f() { crate::a::go() }"),
        ],
        &[&["a/mod.rs", "a/x.rs", "b.rs"]],
    );
}

#[test]
fn comments_strings_and_inline_test_modules_are_no_edges() {
    check(
        &[
            ("lib.rs", "pub mod a; pub mod b;"),
            ("a.rs", "use crate::b::B;"),
            (
                "b.rs",
                "// use crate::a::A;\n/* crate::a::A /* nested */ crate::a::A */\n\
                 const S: &str = \"crate::a::A \\\" crate::a::A\";\n\
                 const R: &str = r#\"crate::a::A \" crate::a::A\"#;\n\
                 const Q: char = '\"'; const E: char = '\\''; fn l<'a>(x: &'a str) {}\n\
                 mod tests { use super::*; fn t() { super::B::new(); } }\n",
            ),
        ],
        &[],
    );
}
