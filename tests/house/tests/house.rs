//! House rules for the fleetmesh workspace, checked by scanning the Rust sources with std only.
//!
//! The crates are the root `Cargo.toml` `members`; each one's `src/` tree is production code
//! except its test code: files under the crate's `tests/`, module files declared behind
//! `#[cfg(test)]` (and everything in their directories), and inline `#[cfg(test)] mod x { .. }`
//! blocks. Comments and string/char literals are blanked out before any rule looks at the code.
//!
//! 1. `node/src` is layered (`LAYERS`): a layer uses only strictly lower ranks through `crate::`
//!    (or `super::`) paths; `leader` and `agent` share a rank and never use each other.
//! 2. No cycles between folders of a crate's `src/` once each reference is lifted to the two
//!    children of the deepest common ancestor folder (test code excluded).
//! 3. No production source file over `MAX_FILE_LINES` lines (inline test modules not counted).
//! 4. No production function over `MAX_FN_LINES` lines, from `fn` to its closing brace.
//! 5. No `Result<_, String>` in the libraries (`LIBRARY_CRATES`).
//! 6. No `anyhow` in the libraries, in code or in `[dependencies]`.
//! 7. Every production `let _ =` has a `//` comment on its line or right above it.
//! 8. The pure crates (`PURE_CRATES`) use no runtime, I/O, clock or thread, tests included.
//! 9. No `"FLEETMESH_TEST..."` string (a test-only switch) in library code.
//!
//! Reading a failure: each rule is one test; it prints every violation as `path:line: message`
//! (paths from the workspace root) and panics with the count. Fix the code, or, if a rule table
//! below is out of date (a layer or crate was added or renamed), fix the table.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Layers of `node/src` by rank; a layer may use only strictly lower ranks.
const LAYERS: &[(&str, u32)] =
    &[("runtime", 1), ("revision", 2), ("leader", 3), ("agent", 3), ("router", 3), ("api", 4), ("daemon", 5)];
/// The crate (directory) whose top-level modules are the layers.
const LAYERED_CRATE: &str = "node";
/// Its own crate name, which it must never spell.
const LAYERED_CRATE_IDENT: &str = "fleetmesh_node";
/// Library crates (directories): typed errors, no anyhow, no test switches.
const LIBRARY_CRATES: &[&str] =
    &["consensus/state", "node/core", "node/model", "transport", "consensus", "node", "simulations"];
/// Pure crates (directories): decisions only, no I/O.
const PURE_CRATES: &[&str] = &["consensus/state", "node/core", "node/model"];
/// Crates the pure crates must not name in code.
const PURE_FORBIDDEN_CRATES: &[&str] = &["tokio", "redb", "quinn", "openraft", "axum"];
/// Paths (prefixes) the pure crates must not use.
#[rustfmt::skip]
const PURE_FORBIDDEN_PATHS: &[&str] = &[
    "std::fs", "std::net::TcpStream", "std::net::TcpListener", "std::net::UdpSocket",
    "std::time::Instant", "std::time::SystemTime", "std::thread",
];
/// Dependencies the pure crates must not list.
#[rustfmt::skip]
const PURE_FORBIDDEN_DEPS: &[&str] = &[
    "tokio", "redb", "quinn", "openraft", "axum", "nix", "ureq", "rustls",
    "fleetmesh-transport", "fleetmesh-consensus", "fleetmesh-node",
];
const MAX_FILE_LINES: usize = 500;
const MAX_FN_LINES: usize = 80;
/// How many lines above a `let _ =` its comment may end.
const LET_UNDERSCORE_REACH: usize = 3;

// ---------------------------------------------------------------------------------------------
// Lexing: blank comments and literals, then tokens and paths.

/// What `literal_at` found at a position.
enum Lit {
    LineComment,
    BlockComment,
    /// A string literal; the byte range of its contents.
    Str(usize, usize),
    Char,
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The comment or literal starting at `i`, with the offset just past it.
fn literal_at(b: &[u8], i: usize) -> Option<(Lit, usize)> {
    let raw_ok =
        i == 0 || !is_ident_byte(b[i - 1]) || (matches!(b[i - 1], b'b' | b'c') && (i < 2 || !is_ident_byte(b[i - 2])));
    match b[i] {
        b'/' if b.get(i + 1) == Some(&b'/') => {
            Some((Lit::LineComment, b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |n| i + n)))
        }
        b'/' if b.get(i + 1) == Some(&b'*') => Some((Lit::BlockComment, block_comment_end(b, i))),
        b'"' => {
            let mut k = i + 1;
            while k < b.len() && b[k] != b'"' {
                k += if b[k] == b'\\' { 2 } else { 1 };
            }
            Some((Lit::Str(i + 1, k.min(b.len())), (k + 1).min(b.len())))
        }
        b'r' if raw_ok => raw_string(b, i),
        b'\'' => char_literal_end(b, i).map(|end| (Lit::Char, end)),
        _ => None,
    }
}

fn block_comment_end(b: &[u8], i: usize) -> usize {
    let (mut depth, mut k) = (0, i);
    while k + 1 < b.len() {
        if b[k] == b'/' && b[k + 1] == b'*' {
            depth += 1;
            k += 2;
        } else if b[k] == b'*' && b[k + 1] == b'/' {
            depth -= 1;
            k += 2;
            if depth == 0 {
                return k;
            }
        } else {
            k += 1;
        }
    }
    b.len()
}

/// `r"..."`, `r#"..."#` (also after `b`/`c`); `None` for an identifier starting with `r`.
fn raw_string(b: &[u8], i: usize) -> Option<(Lit, usize)> {
    let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
    let open = i + 1 + hashes;
    if b.get(open) != Some(&b'"') {
        return None;
    }
    let mut k = open + 1;
    while k < b.len() {
        if b[k] == b'"' && b.len() >= k + 1 + hashes && b[k + 1..k + 1 + hashes].iter().all(|&c| c == b'#') {
            return Some((Lit::Str(open + 1, k), k + 1 + hashes));
        }
        k += 1;
    }
    Some((Lit::Str(open + 1, b.len()), b.len()))
}

/// The end of a char literal at `i`, or `None` for a lifetime or label (`'a`, `'static`).
fn char_literal_end(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i + 1) == Some(&b'\\') {
        let close = b.iter().skip(i + 3).position(|&c| c == b'\'')?;
        return Some(i + 3 + close + 1);
    }
    let first = *b.get(i + 1)?;
    let width = match first {
        0..0x80 => 1,
        0xE0..0xF0 => 3,
        0xF0.. => 4,
        _ => 2,
    };
    (b.get(i + 1 + width) == Some(&b'\'')).then_some(i + 2 + width)
}

/// A source text with comments and literal contents blanked to spaces (newlines and string
/// quotes kept, so offsets and lines are unchanged).
struct Masked {
    code: String,
    /// Offsets of `//` comments.
    line_comments: Vec<usize>,
    /// String literals: offset of the opening quote, contents.
    strings: Vec<(usize, String)>,
}

fn mask(text: &str) -> Masked {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let (mut line_comments, mut strings) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < b.len() {
        let Some((lit, end)) = literal_at(b, i) else {
            i += 1;
            continue;
        };
        let (from, to) = match lit {
            Lit::Str(from, to) => {
                strings.push((i, text[from..to].to_string()));
                (from, to)
            }
            Lit::LineComment => {
                line_comments.push(i);
                (i, end)
            }
            Lit::BlockComment | Lit::Char => (i, end),
        };
        out[from..to].iter_mut().filter(|c| **c != b'\n').for_each(|c| *c = b' ');
        i = end.max(i + 1);
    }
    // Only whole comments and literal contents (delimited by ASCII) were blanked.
    let code = String::from_utf8(out).unwrap_or_else(|_| text.to_string());
    Masked { code, line_comments, strings }
}

/// The offset of the `}` matching the `{` at `open` in masked code.
fn matching_brace(code: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, c) in code.bytes().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// A token of masked code: an identifier, `::`, a number (`0`) or one punctuation byte.
struct Token {
    text: String,
    line: usize,
    ident: bool,
}

impl Token {
    fn is(&self, text: &str) -> bool {
        self.text == text
    }
}

fn tokenize(code: &str, starts: &[usize]) -> Vec<Token> {
    let b = code.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let len = if is_ident_byte(c) {
            b[i..].iter().take_while(|&&c| is_ident_byte(c)).count()
        } else if c == b':' && b.get(i + 1) == Some(&b':') {
            2
        } else {
            1
        };
        if !c.is_ascii_whitespace() && c.is_ascii() {
            let text = if c.is_ascii_digit() { "0".to_string() } else { code[i..i + len].to_string() };
            let ident = is_ident_byte(c) && !c.is_ascii_digit();
            tokens.push(Token { text, line: line_of(starts, i), ident });
        }
        i += len;
    }
    tokens
}

/// A path written in the code (`crate::a::B`, `super::x`, `std::fs::read`); `use` trees are
/// expanded into one path per leaf.
#[derive(Debug)]
struct PathRef {
    segs: Vec<String>,
    line: usize,
    /// Index of the token that starts the path or its `use` item (for the module context).
    token: usize,
}

fn extract_paths(t: &[Token]) -> Vec<PathRef> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        if t[i].is("use") {
            let (mut leaves, at) = (Vec::new(), i);
            i = use_tree(t, i + 1, &[], &mut leaves);
            out.extend(leaves.into_iter().map(|(segs, line)| PathRef { segs, line, token: at }));
        } else if t[i].is("pub") && t.get(i + 1).is_some_and(|n| n.is("(")) {
            i = skip_group(t, i + 1); // `pub(in crate::x)` restricts visibility; it is no use
        } else {
            let prev = i.checked_sub(1).map(|p| &t[p]);
            let starts = match prev {
                Some(p) if p.is("::") => false,
                _ if t[i].is("::") => prev.is_none_or(|p| !p.ident && !p.is(">")),
                _ => t[i].ident,
            };
            let (segs, next) = if starts { path_at(t, i) } else { (Vec::new(), i + 1) };
            if segs.len() >= 2 {
                out.push(PathRef { segs, line: t[i].line, token: i });
            }
            i = next.max(i + 1);
        }
    }
    out
}

/// `a::b::c` from token `i` (a leading `::` is skipped); the segments and the next token.
fn path_at(t: &[Token], mut i: usize) -> (Vec<String>, usize) {
    let mut segs = Vec::new();
    if t[i].is("::") {
        i += 1;
    }
    while let Some(tok) = t.get(i).filter(|tok| tok.ident) {
        segs.push(tok.text.clone());
        i += 1;
        if !t.get(i).is_some_and(|n| n.is("::")) {
            break;
        }
        i += 1;
    }
    (segs, i)
}

/// Index just past the group opened at `open` (`(`, `[` or `{`).
fn skip_group(t: &[Token], open: usize) -> usize {
    let (o, c) = match t[open].text.as_str() {
        "(" => ("(", ")"),
        "[" => ("[", "]"),
        _ => ("{", "}"),
    };
    let mut depth = 0usize;
    for (k, tok) in t.iter().enumerate().skip(open) {
        if tok.is(o) {
            depth += 1;
        } else if tok.is(c) {
            depth -= 1;
            if depth == 0 {
                return k + 1;
            }
        }
    }
    t.len()
}

/// One `use` tree from token `i` under `prefix`; pushes (segments, line) per leaf and returns
/// the index where the tree ends.
fn use_tree(t: &[Token], mut i: usize, prefix: &[String], out: &mut Vec<(Vec<String>, usize)>) -> usize {
    let mut segs = prefix.to_vec();
    let mut line = None;
    while let Some(tok) = t.get(i) {
        if tok.is("as") {
            i += 2;
        } else if tok.ident || tok.is("*") {
            line.get_or_insert(tok.line);
            segs.extend(tok.ident.then(|| tok.text.clone()));
            i += 1;
        } else if tok.is("::") {
            i += 1;
        } else if tok.is("{") {
            i += 1;
            while i < t.len() && !t[i].is("}") && !t[i].is(";") {
                let next = use_tree(t, i, &segs, out);
                i = if t.get(next).is_some_and(|n| n.is(",")) { next + 1 } else { next.max(i + 1) };
            }
            return (i + 1).min(t.len());
        } else {
            break;
        }
    }
    if let Some(line) = line {
        out.push((segs, line));
    }
    i
}

// ---------------------------------------------------------------------------------------------
// The parsed workspace.

/// A `mod name;` or `mod name { .. }`, maybe behind `#[cfg(test)]`.
struct ModDecl {
    name: String,
    token: usize,
    /// The token of the matching `}` for an inline module.
    close: Option<usize>,
    /// The line of its `#[cfg(test)]`, if it has one.
    cfg_test: Option<usize>,
}

fn mod_decls(t: &[Token]) -> Vec<ModDecl> {
    let mut mods = Vec::new();
    for i in 0..t.len().saturating_sub(2) {
        if t[i].is("mod") && t[i + 1].ident && (t[i + 2].is("{") || t[i + 2].is(";")) {
            let close = t[i + 2].is("{").then(|| skip_group(t, i + 2) - 1);
            mods.push(ModDecl { name: t[i + 1].text.clone(), token: i, close, cfg_test: None });
        }
    }
    let cfg_test = ["#", "[", "cfg", "(", "test", ")", "]"];
    for i in 0..t.len() {
        if t.len() - i < cfg_test.len() || !cfg_test.iter().enumerate().all(|(k, s)| t[i + k].is(s)) {
            continue;
        }
        let mut j = i + cfg_test.len();
        while j < t.len() {
            let next = |s: &str| t.get(j + 1).is_some_and(|n| n.is(s));
            if (t[j].is("#") && next("[")) || (t[j].is("pub") && next("(")) {
                j = skip_group(t, j + 1);
            } else if t[j].is("pub") {
                j += 1;
            } else {
                break;
            }
        }
        if let Some(m) = mods.iter_mut().find(|m| m.token == j) {
            m.cfg_test = Some(t[i].line);
        }
    }
    mods
}

/// One Rust source file, lexed.
struct SourceFile {
    /// Path from the workspace root.
    path: String,
    /// Path from the crate's `src/`; `None` for files outside it (the crate's `tests/`).
    rel: Option<String>,
    text: String,
    code: String,
    starts: Vec<usize>,
    /// Lines holding a `//` comment.
    commented: BTreeSet<usize>,
    /// String literals: line, contents.
    strings: Vec<(usize, String)>,
    tokens: Vec<Token>,
    paths: Vec<PathRef>,
    mods: Vec<ModDecl>,
    /// Per line (1-based; index 0 unused): test code?
    test_lines: Vec<bool>,
}

fn line_of(starts: &[usize], offset: usize) -> usize {
    starts.partition_point(|&s| s <= offset)
}

impl SourceFile {
    fn parse(path: &str, rel: Option<&str>, text: String) -> Self {
        let masked = mask(&text);
        let starts: Vec<usize> = std::iter::once(0).chain(text.match_indices('\n').map(|(k, _)| k + 1)).collect();
        let tokens = tokenize(&masked.code, &starts);
        let mut file = Self {
            path: path.to_string(),
            rel: rel.map(str::to_string),
            commented: masked.line_comments.iter().map(|&o| line_of(&starts, o)).collect(),
            strings: masked.strings.into_iter().map(|(o, s)| (line_of(&starts, o), s)).collect(),
            paths: extract_paths(&tokens),
            mods: mod_decls(&tokens),
            test_lines: vec![rel.is_none(); starts.len() + 1],
            code: masked.code,
            starts,
            tokens,
            text,
        };
        for m in &file.mods {
            if let (Some(from), Some(close)) = (m.cfg_test, m.close) {
                let to = file.tokens[close].line;
                file.test_lines[from..=to].iter_mut().for_each(|l| *l = true);
            }
        }
        file
    }

    fn set_test(&mut self) {
        self.test_lines.iter_mut().for_each(|l| *l = true);
    }

    fn is_test(&self, line: usize) -> bool {
        self.test_lines.get(line).copied().unwrap_or(true)
    }

    fn whole_test(&self) -> bool {
        self.test_lines.iter().all(|&t| t)
    }

    fn line_count(&self) -> usize {
        self.text.lines().count()
    }

    /// The masked code of a line (1-based).
    fn code_line(&self, line: usize) -> &str {
        let from = self.starts[line - 1];
        let to = self.starts.get(line).map_or(self.code.len(), |&s| s - 1);
        &self.code[from..to]
    }

    /// The module path of the file (`x/foo.rs` and `x/foo/mod.rs` are `x::foo`).
    fn module(&self) -> Vec<String> {
        let rel = self.rel.as_deref().unwrap_or_default().trim_end_matches(".rs");
        let mut segs: Vec<String> = rel.split('/').map(str::to_string).collect();
        if segs.len() == 1 && matches!(segs[0].as_str(), "lib" | "main") || segs.last().is_some_and(|s| s == "mod") {
            segs.pop();
        }
        segs
    }

    /// The names of the inline modules around token `tok`, outermost first.
    fn inline_names(&self, tok: usize) -> Vec<String> {
        let inside = |m: &&ModDecl| m.close.is_some_and(|c| m.token < tok && tok < c);
        self.mods.iter().filter(inside).map(|m| m.name.clone()).collect()
    }

    /// The directory (from `src/`) where this file's child module files live.
    fn child_dir(&self) -> String {
        let rel = self.rel.as_deref().unwrap_or_default();
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        if matches!(name, "lib.rs" | "main.rs" | "mod.rs") {
            dir.to_string()
        } else {
            join(&[rel.trim_end_matches(".rs")])
        }
    }

    /// The crate-relative module a reference points into, for `crate::`, `self::`, `super::` and
    /// child-module paths; `None` for other crates.
    fn resolve(&self, p: &PathRef) -> Option<Vec<String>> {
        let inline = self.inline_names(p.token);
        let module: Vec<String> = self.module().into_iter().chain(inline.iter().cloned()).collect();
        let first = p.segs[0].as_str();
        let is_child = || inline.is_empty() && self.mods.iter().any(|m| m.close.is_none() && m.name == first);
        let (mut abs, rest) = match first {
            "crate" => (Vec::new(), &p.segs[1..]),
            "self" => (module, &p.segs[1..]),
            "super" => {
                let ups = p.segs.iter().take_while(|s| *s == "super").count();
                (module[..module.len().checked_sub(ups)?].to_vec(), &p.segs[ups..])
            }
            _ if is_child() => (module, &p.segs[..]),
            _ => return None,
        };
        abs.extend(rest.iter().filter(|s| *s != "self").cloned());
        Some(abs)
    }
}

/// `a/b` from parts, skipping empty ones.
fn join(parts: &[&str]) -> String {
    parts.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join("/")
}

/// A workspace member.
struct Crate {
    /// Directory from the workspace root (`node/core`).
    dir: String,
    manifest: String,
    files: Vec<SourceFile>,
}

impl Crate {
    /// Marks the files of modules declared behind `#[cfg(test)]`, and their directories, as test code.
    fn new(dir: &str, manifest: String, mut files: Vec<SourceFile>) -> Self {
        let mut bases = Vec::new();
        for file in files.iter().filter(|f| f.rel.is_some()) {
            for m in file.mods.iter().filter(|m| m.cfg_test.is_some()) {
                let inline = file.inline_names(m.token).join("/");
                bases.push(join(&[&file.child_dir(), &inline, &m.name]));
            }
        }
        for file in &mut files {
            let rel = file.rel.clone().unwrap_or_default();
            if bases.iter().any(|b| rel == format!("{b}.rs") || rel.starts_with(&format!("{b}/"))) {
                file.set_test();
            }
        }
        Self { dir: dir.to_string(), manifest, files }
    }

    fn src_files(&self) -> impl Iterator<Item = &SourceFile> {
        self.files.iter().filter(|f| f.rel.is_some())
    }

    fn manifest_path(&self) -> String {
        join(&[&self.dir, "Cargo.toml"])
    }

    fn src_root(&self) -> String {
        join(&[&self.dir, "src"])
    }
}

/// The modules on disk of one crate: `.rs` files and directories, from `src/`.
struct ModIndex {
    files: BTreeSet<String>,
    dirs: BTreeSet<String>,
}

impl ModIndex {
    fn new(krate: &Crate) -> Self {
        let files: BTreeSet<String> = krate.src_files().filter_map(|f| f.rel.clone()).collect();
        let dirs = files.iter().flat_map(|f| f.match_indices('/').map(|(k, _)| f[..k].to_string())).collect();
        Self { files, dirs }
    }

    /// The longest prefix of `abs` that names modules on disk.
    fn deepest<'a>(&self, abs: &'a [String]) -> &'a [String] {
        let mut n = 0;
        while n < abs.len() {
            let p = abs[..=n].join("/");
            if !self.files.contains(&format!("{p}.rs")) && !self.dirs.contains(&p) {
                break;
            }
            n += 1;
        }
        &abs[..n]
    }

    /// The folder of a module's file: its own directory if it has one, else its parent's.
    fn folder_of(&self, module: &[String]) -> String {
        let p = module.join("/");
        if module.is_empty() || self.dirs.contains(&p) {
            p
        } else {
            module[..module.len() - 1].join("/")
        }
    }
}

/// `key = value` lines of a manifest with their section and line: (section, line, key).
fn toml_keys(manifest: &str) -> Vec<(String, usize, String)> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for (n, line) in manifest.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = header.trim_matches(['[', ']']).trim().to_string();
            if let Some(name) = section.strip_prefix("dependencies.") {
                keys.push(("dependencies".to_string(), n + 1, name.to_string()));
            }
        } else if let Some((key, _)) = line.split_once('=') {
            let key = key.split('.').next().unwrap_or_default().trim().trim_matches('"');
            keys.push((section.clone(), n + 1, key.to_string()));
        }
    }
    keys
}

/// The `[dependencies]` (also `[target.*.dependencies]`) of a manifest: (line, name).
fn dependencies(manifest: &str) -> Vec<(usize, String)> {
    let is_deps = |s: &str| s == "dependencies" || (s.starts_with("target.") && s.ends_with(".dependencies"));
    toml_keys(manifest).into_iter().filter(|(s, _, _)| is_deps(s)).map(|(_, n, k)| (n, k)).collect()
}

/// The `members` of the root manifest.
fn members(manifest: &str) -> Vec<String> {
    let at_line_start = |&(k, _): &(usize, &str)| k == 0 || manifest[..k].ends_with('\n');
    let Some((start, _)) = manifest.match_indices("members").find(at_line_start) else { return Vec::new() };
    let list = &manifest[start..];
    let list = &list[list.find('[').unwrap_or(0)..list.find(']').unwrap_or(list.len())];
    let list: String = list.lines().map(|l| l.split('#').next().unwrap_or_default()).collect();
    list.split('"').skip(1).step_by(2).map(str::to_string).collect()
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn load_crate(root: &Path, dir: &str) -> Option<Crate> {
    let manifest = std::fs::read_to_string(root.join(dir).join("Cargo.toml")).ok()?;
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).canonicalize().ok() == root.join(dir).canonicalize().ok();
    let mut files = Vec::new();
    for sub in ["src", "tests"] {
        let base = root.join(dir).join(sub);
        let mut paths = Vec::new();
        rs_files(&base, &mut paths);
        for path in paths {
            // Another change may move files while this runs; a vanished file is skipped.
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let rel = path.strip_prefix(&base).map(|r| r.to_string_lossy().replace('\\', "/")).ok()?;
            let in_src = (sub == "src" && !own).then_some(rel.as_str());
            files.push(SourceFile::parse(&join(&[dir, sub, &rel]), in_src, text));
        }
    }
    Some(Crate::new(dir, manifest, files))
}

/// The workspace, parsed once for all the tests.
fn workspace() -> &'static [Crate] {
    static WORKSPACE: OnceLock<Vec<Crate>> = OnceLock::new();
    WORKSPACE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("the workspace Cargo.toml");
        let crates: Vec<Crate> = members(&manifest).iter().filter_map(|m| load_crate(&root, m)).collect();
        assert!(crates.iter().filter(|c| c.src_files().next().is_some()).count() >= 2, "no workspace crates found");
        crates
    })
}

// ---------------------------------------------------------------------------------------------
// Rules: each takes parsed crates and returns its violations.

/// A broken rule, as printed: `path:line: message`.
type Violation = String;

fn violation(path: &str, line: usize, message: impl fmt::Display) -> Violation {
    format!("{path}:{line}: {message}")
}

/// Prints every violation, then panics with the count.
fn report(rule: &str, violations: &[Violation]) {
    for v in violations {
        println!("{v}");
    }
    assert!(violations.is_empty(), "{rule}: {} violation(s), listed above", violations.len());
}

/// The crates a rule table names; a name that is no longer a member is itself a violation.
fn table_crates<'a>(crates: &'a [Crate], table: &[&str], out: &mut Vec<Violation>) -> Vec<&'a Crate> {
    let mut found = Vec::new();
    for dir in table {
        match crates.iter().find(|c| c.dir == *dir) {
            Some(krate) => found.push(krate),
            None => out.push(violation("Cargo.toml", 1, format!("rule table names `{dir}`, not a workspace member"))),
        }
    }
    found
}

fn rank(layer: &str) -> Option<u32> {
    LAYERS.iter().find(|(name, _)| *name == layer).map(|&(_, rank)| rank)
}

/// Rule 1 on the layered crate.
fn check_layering(krate: &Crate) -> Vec<Violation> {
    let index = ModIndex::new(krate);
    let mut out = Vec::new();
    let mut unranked = BTreeSet::new();
    for file in krate.src_files() {
        let module = file.module();
        let Some(top) = module.first().filter(|_| file.rel.as_deref() != Some("lib.rs")) else { continue };
        let Some(own) = rank(top) else {
            if unranked.insert(top.clone()) {
                out.push(violation(&file.path, 1, format!("unranked layer `{top}`; add it to the table")));
            }
            continue;
        };
        for p in &file.paths {
            let Some(abs) = file.resolve(p) else { continue };
            let Some(x) = abs.first().filter(|x| *x != top && !index.deepest(&abs).is_empty()) else { continue };
            if let Some(theirs) = rank(x).filter(|&r| r >= own) {
                let what = if theirs == own { "a sibling layer" } else { "a higher layer" };
                let msg = format!("`{top}` (rank {own}) uses {what} `{x}` (rank {theirs}): `{}`", p.segs.join("::"));
                out.push(violation(&file.path, p.line, msg));
            }
        }
        for t in file.tokens.iter().filter(|t| t.is(LAYERED_CRATE_IDENT)) {
            out.push(violation(&file.path, t.line, format!("`{LAYERED_CRATE_IDENT}` inside the crate; use `crate::`")));
        }
    }
    out
}

/// Folder edges `A -> B` lifted to siblings under their deepest common ancestor; `None` when
/// one is the other's ancestor (that is the module tree itself).
fn lift(from: &str, to: &str) -> Option<(String, String)> {
    let split = |s: &str| -> Vec<String> { s.split('/').filter(|p| !p.is_empty()).map(str::to_string).collect() };
    let (a, b) = (split(from), split(to));
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common == a.len() || common == b.len() {
        return None;
    }
    Some((a[..=common].join("/"), b[..=common].join("/")))
}

/// The strongly connected components of two or more vertices.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    let reach = |start: &String| {
        let (mut seen, mut todo) = (BTreeSet::new(), vec![start.clone()]);
        while let Some(v) = todo.pop() {
            for w in graph.get(&v).into_iter().flatten() {
                if seen.insert(w.clone()) {
                    todo.push(w.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|v| (v, reach(v))).collect();
    let mut done = BTreeSet::new();
    let mut found = Vec::new();
    for (v, from_v) in &reaches {
        if done.contains(*v) || !from_v.contains(*v) {
            continue;
        }
        let scc: BTreeSet<String> =
            from_v.iter().filter(|w| reaches.get(w).is_some_and(|r| r.contains(*v))).cloned().collect();
        done.extend(scc.iter().cloned());
        if scc.len() >= 2 {
            found.push(scc);
        }
    }
    found
}

/// Rule 2 on one crate: one violation per edge of each folder cycle.
fn check_cycles(krate: &Crate) -> Vec<Violation> {
    let index = ModIndex::new(krate);
    let mut edges: BTreeMap<(String, String), (String, usize, String)> = BTreeMap::new();
    let production =
        krate.src_files().filter(|f| !f.whole_test() && !f.rel.as_deref().unwrap_or("").starts_with("bin/"));
    for file in production {
        let from = index.folder_of(&file.module());
        for p in file.paths.iter().filter(|p| !file.is_test(p.line)) {
            let Some(abs) = file.resolve(p) else { continue };
            let to = index.folder_of(index.deepest(&abs));
            if let Some(edge) = lift(&from, &to) {
                edges.entry(edge).or_insert_with(|| (file.path.clone(), p.line, p.segs.join("::")));
            }
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        graph.entry(a.clone()).or_default().insert(b.clone());
    }
    let root = krate.src_root();
    let name = |f: &str| join(&[&root, f]);
    let mut out = Vec::new();
    for scc in cycles(&graph) {
        let listed = scc.iter().map(|f| name(f)).collect::<Vec<_>>().join(", ");
        for ((a, b), (path, line, written)) in edges.iter().filter(|((a, b), _)| scc.contains(a) && scc.contains(b)) {
            let msg = format!("folder cycle [{listed}]: {} -> {} via `{written}`", name(a), name(b));
            out.push(violation(path, *line, msg));
        }
    }
    out
}

/// Rule 3 on one crate.
fn check_file_length(krate: &Crate) -> Vec<Violation> {
    let mut out = Vec::new();
    for file in krate.src_files().filter(|f| !f.whole_test()) {
        let lines = (1..=file.line_count()).filter(|&l| !file.is_test(l)).count();
        if lines > MAX_FILE_LINES {
            out.push(format!("{}: {lines} lines (limit {MAX_FILE_LINES})", file.path));
        }
    }
    out
}

/// The name of the function a line of masked code starts, if it does.
fn fn_name(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("pub(") {
            rest = r.split_once(')')?.1.trim_start();
        } else if let Some(r) = ["pub", "const", "async", "unsafe", "default", "extern"]
            .iter()
            .find_map(|kw| rest.strip_prefix(kw).filter(|r| r.starts_with([' ', '\t'])))
        {
            rest = r.trim_start();
            if let Some(abi) = rest.strip_prefix('"') {
                rest = abi.split_once('"')?.1.trim_start();
            }
        } else {
            break;
        }
    }
    let name = rest.strip_prefix("fn")?.strip_prefix([' ', '\t'])?.trim_start();
    let name = &name[..name.bytes().take_while(|&c| is_ident_byte(c)).count()];
    (!name.is_empty()).then_some(name)
}

/// The `{` opening the body of a function whose signature starts at `from`; `None` for a
/// declaration without a body.
fn body_open(code: &str, from: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (k, c) in code.bytes().enumerate().skip(from) {
        match c {
            b'(' | b'[' => depth += 1,
            b')' | b']' => depth -= 1,
            b'{' if depth == 0 => return Some(k),
            b';' | b'}' if depth == 0 => return None,
            _ => {}
        }
    }
    None
}

/// Functions of one file: (line, name, length in lines).
fn functions(file: &SourceFile) -> Vec<(usize, String, usize)> {
    let mut found = Vec::new();
    for line in 1..=file.line_count() {
        let Some(name) = fn_name(file.code_line(line)) else { continue };
        let open = body_open(&file.code, file.starts[line - 1]);
        if let Some(close) = open.and_then(|open| matching_brace(&file.code, open)) {
            found.push((line, name.to_string(), line_of(&file.starts, close) - line + 1));
        }
    }
    found
}

/// Rule 4 on one crate.
fn check_fn_length(krate: &Crate) -> Vec<Violation> {
    let mut out = Vec::new();
    for file in krate.src_files() {
        for (line, name, length) in functions(file).into_iter().filter(|(l, _, _)| !file.is_test(*l)) {
            if length > MAX_FN_LINES {
                out.push(violation(&file.path, line, format!("fn {name} is {length} lines (limit {MAX_FN_LINES})")));
            }
        }
    }
    out
}

/// The top-level generic arguments after a `<`, whitespace removed; `None` if it is no type.
fn generic_args(s: &str) -> Option<Vec<String>> {
    let (mut depth, mut prev) = (0usize, ' ');
    let (mut args, mut current) = (Vec::new(), String::new());
    for c in s.chars() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' if prev == '-' => {}
            '>' | ')' | ']' if depth > 0 => depth -= 1,
            '>' => {
                args.push(current);
                return Some(args.into_iter().filter(|a| !a.is_empty()).collect());
            }
            ')' | ']' | '{' | '}' => return None,
            ';' if depth == 0 => return None,
            ',' if depth == 0 => {
                args.push(std::mem::take(&mut current));
                prev = c;
                continue;
            }
            _ => {}
        }
        if !c.is_whitespace() {
            current.push(c);
        }
        prev = c;
    }
    None
}

/// Offsets of `Result<..>` types (masked code) whose last of two or more arguments is `String`.
fn string_error_results(code: &str) -> Vec<usize> {
    let b = code.as_bytes();
    let mut found = Vec::new();
    for (at, _) in code.match_indices("Result") {
        let end = at + "Result".len();
        if (at > 0 && is_ident_byte(b[at - 1])) || b.get(end).is_some_and(|&c| is_ident_byte(c)) {
            continue;
        }
        let rest = code[end..].trim_start();
        let rest = rest.strip_prefix("::").map_or(rest, str::trim_start);
        let Some(args) = rest.strip_prefix('<').and_then(generic_args) else { continue };
        let last = args.last().map(String::as_str).unwrap_or_default();
        if args.len() >= 2 && (last == "String" || last.ends_with("::String")) {
            found.push(at);
        }
    }
    found
}

/// Rule 5 on one crate.
fn check_result_string(krate: &Crate) -> Vec<Violation> {
    let mut out = Vec::new();
    for file in krate.src_files() {
        for line in string_error_results(&file.code).into_iter().map(|at| line_of(&file.starts, at)) {
            if !file.is_test(line) {
                out.push(violation(&file.path, line, "`Result<_, String>` in library code; use a typed error"));
            }
        }
    }
    out
}

/// Rule 6 on one crate.
fn check_anyhow(krate: &Crate) -> Vec<Violation> {
    let mut out = Vec::new();
    for file in krate.src_files() {
        let t = &file.tokens;
        let lines: BTreeSet<usize> = (0..t.len())
            .filter(|&i| t[i].is("anyhow") || (t[i].is("bail") && t.get(i + 1).is_some_and(|n| n.is("!"))))
            .map(|i| t[i].line)
            .filter(|&l| !file.is_test(l))
            .collect();
        out.extend(lines.into_iter().map(|l| violation(&file.path, l, "anyhow in library code")));
    }
    for (line, _) in dependencies(&krate.manifest).into_iter().filter(|(_, name)| name == "anyhow") {
        out.push(violation(&krate.manifest_path(), line, "anyhow in a library's [dependencies]"));
    }
    out
}

/// Whether a `let _` on `line` has its why: a `//` comment on the line, or a comment block
/// ending right above it (attribute lines in between allowed), within `LET_UNDERSCORE_REACH`.
fn has_why(file: &SourceFile, line: usize) -> bool {
    if file.commented.contains(&line) {
        return true;
    }
    for above in (1..line).rev().take(LET_UNDERSCORE_REACH) {
        let code = file.code_line(above).trim();
        if code.is_empty() && file.commented.contains(&above) {
            return true;
        }
        if !(code.starts_with("#[") && code.ends_with(']')) {
            return false;
        }
    }
    false
}

/// Rule 7 on one crate.
fn check_let_underscore(krate: &Crate) -> Vec<Violation> {
    let mut out = Vec::new();
    for file in krate.src_files() {
        let t = &file.tokens;
        for i in 0..t.len().saturating_sub(2) {
            let line = t[i].line;
            let binds_underscore = t[i].is("let") && t[i + 1].is("_") && (t[i + 2].is("=") || t[i + 2].is(":"));
            if binds_underscore && !file.is_test(line) && !has_why(file, line) {
                out.push(violation(&file.path, line, "`let _ =` without a `//` comment saying why"));
            }
        }
    }
    out
}

/// Rule 8 on one crate, test code included.
fn check_pure(krate: &Crate) -> Vec<Violation> {
    let mut found = BTreeSet::new();
    for file in krate.src_files() {
        for t in file.tokens.iter().filter(|t| PURE_FORBIDDEN_CRATES.contains(&t.text.as_str())) {
            found.insert((file.path.clone(), t.line, format!("`{}` in a pure crate", t.text)));
        }
        for p in &file.paths {
            let written = p.segs.join("::");
            let hit = PURE_FORBIDDEN_PATHS.iter().find(|f| written == **f || written.starts_with(&format!("{f}::")));
            if let Some(forbidden) = hit {
                found.insert((file.path.clone(), p.line, format!("`{forbidden}` in a pure crate: `{written}`")));
            }
        }
    }
    let mut out: Vec<Violation> = found.into_iter().map(|(path, line, msg)| violation(&path, line, msg)).collect();
    for (line, name) in dependencies(&krate.manifest) {
        if PURE_FORBIDDEN_DEPS.contains(&name.as_str()) {
            out.push(violation(&krate.manifest_path(), line, format!("pure crate depends on `{name}`")));
        }
    }
    out
}

/// Rule 9 on one crate.
fn check_test_switches(krate: &Crate) -> Vec<Violation> {
    let mut out = Vec::new();
    for file in krate.src_files() {
        for (line, text) in file.strings.iter().filter(|(l, s)| s.starts_with("FLEETMESH_TEST") && !file.is_test(*l)) {
            out.push(violation(&file.path, *line, format!("test switch `{text}` in production code")));
        }
    }
    out
}

/// Runs a per-crate rule over some crates (all when `table` is `None`) and reports.
fn run(rule: &str, table: Option<&[&str]>, check: fn(&Crate) -> Vec<Violation>) {
    let crates = workspace();
    let mut out = Vec::new();
    let selected = match table {
        Some(table) => table_crates(crates, table, &mut out),
        None => crates.iter().collect(),
    };
    out.extend(selected.into_iter().flat_map(check));
    report(rule, &out);
}

#[test]
fn node_layers_use_only_lower_layers() {
    run("layering of node/src", Some(&[LAYERED_CRATE]), check_layering);
}

#[test]
fn no_import_cycles_between_folders() {
    run("import cycles between folders", None, check_cycles);
}

#[test]
fn source_files_stay_under_500_lines() {
    run("source files over 500 lines", None, check_file_length);
}

#[test]
fn functions_stay_under_80_lines() {
    run("functions over 80 lines", None, check_fn_length);
}

#[test]
fn libraries_return_no_string_errors() {
    run("Result<_, String> in libraries", Some(LIBRARY_CRATES), check_result_string);
}

#[test]
fn anyhow_only_in_binaries() {
    run("anyhow in libraries", Some(LIBRARY_CRATES), check_anyhow);
}

#[test]
fn every_let_underscore_says_why() {
    run("let _ = without a why", None, check_let_underscore);
}

#[test]
fn pure_crates_stay_pure() {
    run("pure crates", Some(PURE_CRATES), check_pure);
}

#[test]
fn no_test_switches_in_libraries() {
    run("FLEETMESH_TEST switches in libraries", Some(LIBRARY_CRATES), check_test_switches);
}

/// Self-tests of the scanner on synthetic sources.
mod scanner {
    use super::*;

    fn krate(dir: &str, files: &[(&str, &str)]) -> Crate {
        let parsed =
            files.iter().map(|(rel, text)| SourceFile::parse(&format!("{dir}/src/{rel}"), Some(rel), text.to_string()));
        Crate::new(dir, String::new(), parsed.collect())
    }

    #[test]
    fn brace_matcher_skips_strings_comments_and_chars() {
        let src = "fn f<'a>(x: &'a str) { let s = \"}\"; /* } /* } */ */ // }\n let c = '}'; let r = r#\"}\"#; let b = b'{'; }";
        let code = mask(src).code;
        assert_eq!(code.len(), src.len());
        let open = src.find('{').unwrap();
        assert_eq!(matching_brace(&code, open), Some(src.len() - 1));
    }

    #[test]
    fn result_string_detector() {
        let code = mask(
            "fn f(\n) -> Result<\n    Vec<(A, B)>,\n    String,\n> {}\nfn g() -> Result<String, Error> {}\n\
             // Result<(), String>\nfn h() -> BoxFuture<'static, Result<Message, std::string::String>> {}\n\
             fn i() -> io::Result<String> {}\nfn j() -> Result<Box<dyn Fn(u8) -> u8>, String> {}\n\
             fn k() -> Result<[bool; 3], String> {}\nfn l() -> ApiResult<(), String> {}\n",
        )
        .code;
        let starts: Vec<usize> = std::iter::once(0).chain(code.match_indices('\n').map(|(k, _)| k + 1)).collect();
        let found: Vec<usize> = string_error_results(&code).into_iter().map(|at| line_of(&starts, at)).collect();
        assert_eq!(found, vec![2, 8, 10, 11]);
    }

    #[test]
    fn layering_flags_higher_and_sibling_layers() {
        let node = krate(
            "node",
            &[
                ("lib.rs", "pub mod runtime;\npub mod api;\npub mod leader;\npub mod agent;\n"),
                ("runtime/mod.rs", "use crate::api::X;\nconst S: &str = \"use crate::api::Y;\";\n// crate::api::Z\n"),
                ("api/mod.rs", "use crate::{runtime::Clock, leader};\n"),
                ("leader/mod.rs", "fn f() { crate::agent::go(); super::runtime::tick(); }\n"),
                ("agent/mod.rs", "use super::leader::x;\n"),
                ("gadget/mod.rs", "use crate::runtime;\n"),
            ],
        );
        let mut found = check_layering(&node);
        found.sort();
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[0].starts_with("node/src/agent/mod.rs:1: `agent` (rank 3) uses a sibling layer `leader`"));
        assert!(found[1].starts_with("node/src/gadget/mod.rs:1: unranked layer `gadget`"));
        assert!(found[2].starts_with("node/src/leader/mod.rs:1: `leader` (rank 3) uses a sibling layer `agent`"));
        assert!(found[3].starts_with("node/src/runtime/mod.rs:1: `runtime` (rank 1) uses a higher layer `api`"));
    }

    #[test]
    fn test_code_is_recognised() {
        let c = krate(
            "c",
            &[
                ("lib.rs", "mod a;\n#[cfg(test)]\nmod harness;\nfn f() {}\n#[cfg(test)]\nmod tests {\n    fn g() { \"}\"; }\n}\n"),
                ("a.rs", "#[cfg(test)]\n#[allow(dead_code)]\npub(crate) mod tests;\n"),
                ("a/tests.rs", "let _ = 1;\n"),
                ("harness/mod.rs", "mod deep;\n"),
                ("harness/deep.rs", ""),
            ],
        );
        let test: Vec<(&str, bool)> = c.files.iter().map(|f| (f.rel.as_deref().unwrap(), f.whole_test())).collect();
        let expected = [("lib.rs", false), ("a.rs", false), ("a/tests.rs", true), ("harness/mod.rs", true)];
        assert_eq!(test[..4], expected);
        assert!(c.files[4].whole_test());
        let lib = &c.files[0];
        assert_eq!(
            (1..=8).map(|l| lib.is_test(l)).collect::<Vec<_>>(),
            [false, false, false, false, true, true, true, true]
        );
    }

    #[test]
    fn cycles_are_lifted_and_found() {
        let c = krate(
            "c",
            &[
                ("lib.rs", "mod agent;\nmod leader;\nmod api;\n"),
                ("agent/mod.rs", "mod hooks;\n"),
                ("agent/hooks/mod.rs", "use crate::leader::Plan;\n"),
                ("leader/mod.rs", "use crate::agent::hooks::run;\nuse super::api::X;\n"),
                ("api/mod.rs", "use crate::agent;\n"),
            ],
        );
        let found = check_cycles(&c);
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[0].starts_with("c/src/agent/hooks/mod.rs:1: folder cycle [c/src/agent, c/src/api, c/src/leader]"));
        assert!(found[0].ends_with("c/src/agent -> c/src/leader via `crate::leader::Plan`"));
    }

    #[test]
    fn let_underscore_needs_a_comment() {
        let c = krate(
            "c",
            &[(
                "lib.rs",
                "fn f() {\n    // why\n    let _ = a();\n    let _ = b(); // why\n    let _ = c();\n    let s = \"let _ = d();\";\n}\n",
            )],
        );
        assert_eq!(check_let_underscore(&c), ["c/src/lib.rs:5: `let _ =` without a `//` comment saying why"]);
    }

    #[test]
    fn pure_paths_expand_use_groups() {
        let c = krate("c", &[("lib.rs", "use std::{fs, net::SocketAddr, time::{Duration, Instant}};\n")]);
        let found = check_pure(&c);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[1].ends_with("`std::time::Instant` in a pure crate: `std::time::Instant`"));
    }

    #[test]
    fn functions_are_measured_from_fn_to_closing_brace() {
        let text =
            "trait T {\n    fn declared(&self) -> [u8; 2];\n}\npub(crate) async fn body(\n    x: u8,\n) -> u8 {\n    \
                    let f = |y: u8| { y };\n    let s = \"}\";\n    f(x)\n}\nextern \"C\" fn ffi() {}\n";
        let file = SourceFile::parse("c/src/lib.rs", Some("lib.rs"), text.to_string());
        assert_eq!(functions(&file), [(4, "body".to_string(), 7), (11, "ffi".to_string(), 1)]);
    }
}
