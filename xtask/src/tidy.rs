//! `cargo xtask tidy`: the dependency invariants from ARCHITECTURE.md and `//!` docs on every library.
//!
//! Manifests are read as text with a line scan (no toml crate), which is enough for the plain
//! `name = ...`, `name.workspace = true` and `[dependencies.name]` forms used in this workspace.
//!
//! * `hookline-core` has no sqlx, redis, reqwest, axum or hyper (nor their `-*` sub-crates) in its
//!   normal or build dependencies.
//! * Nothing depends on `hookline-server`, not even as a dev-dependency.
//! * Store crates (`store-*`) don't depend on each other (normal or build dependencies), except on
//!   `hookline-store-sql`, the SQL stores' shared crate, which itself depends on no store crate.
//! * Every library's `src/lib.rs` starts with `//!` crate docs.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::project_root;

const CORE: &str = "hookline-core";
const SERVER: &str = "hookline-server";
/// What the SQL stores share; store crates may depend on it.
const SHARED_SQL: &str = "hookline-store-sql";
const CORE_BANNED: [&str; 5] = ["sqlx", "redis", "reqwest", "axum", "hyper"];

pub(crate) fn tidy() -> Result<()> {
    let root = project_root();
    let root_manifest = root.join("Cargo.toml");
    let text = fs::read_to_string(&root_manifest)
        .with_context(|| format!("reading {}", root_manifest.display()))?;

    let mut problems = Vec::new();
    let mut manifests = Vec::new();
    for member in workspace_members(&root, &text)? {
        let path = root.join(&member).join("Cargo.toml");
        match fs::read_to_string(&path) {
            Ok(text) => manifests.push(Manifest::parse(&member, &text)),
            Err(err) => problems.push(format!("{member}/Cargo.toml: can't read it: {err}")),
        }
    }

    for manifest in &manifests {
        check_manifest(manifest, &mut problems);
        check_lib_docs(&root, manifest, &mut problems);
    }

    println!("tidy: checked {} workspace members", manifests.len());
    if problems.is_empty() {
        println!("tidy: ok");
        return Ok(());
    }
    for problem in &problems {
        println!("tidy: FAIL {problem}");
    }
    bail!("tidy found {} problem(s)", problems.len())
}

fn check_manifest(manifest: &Manifest, problems: &mut Vec<String>) {
    let member = &manifest.member;
    let is_store = |m: &Manifest| {
        m.member
            .rsplit('/')
            .next()
            .is_some_and(|dir| dir.starts_with("store-"))
            || m.package.starts_with("hookline-store-")
    };

    for dep in &manifest.deps {
        let name = dep.package.as_str();
        let shipped = dep.kind != DepKind::Dev;

        if manifest.package == CORE && shipped {
            let banned = CORE_BANNED.iter().find(|b| {
                name == **b
                    || name
                        .strip_prefix(**b)
                        .is_some_and(|rest| rest.starts_with(['-', '_']))
            });
            if let Some(banned) = banned {
                problems.push(format!(
                    "{member}/Cargo.toml: {CORE} must not depend on {banned} (found `{name}` in {})",
                    dep.section
                ));
            }
        }

        if name == SERVER && manifest.package != SERVER {
            problems.push(format!(
                "{member}/Cargo.toml: nothing may depend on {SERVER} (found in {})",
                dep.section
            ));
        }

        if is_store(manifest)
            && shipped
            && name.starts_with("hookline-store-")
            && name != manifest.package
            && name != SHARED_SQL
        {
            problems.push(format!(
                "{member}/Cargo.toml: store crates must not depend on each other ({} depends on {name} in {})",
                manifest.package, dep.section
            ));
        }
    }
}

fn check_lib_docs(root: &Path, manifest: &Manifest, problems: &mut Vec<String>) {
    let lib = root.join(&manifest.member).join("src").join("lib.rs");
    let Ok(text) = fs::read_to_string(&lib) else {
        return; // not a library
    };
    let first = text.lines().map(str::trim).find(|line| !line.is_empty());
    if !first.is_some_and(|line| line.starts_with("//!")) {
        problems.push(format!(
            "{}/src/lib.rs: must start with `//!` crate docs (first line: `{}`)",
            manifest.member,
            first.unwrap_or("<empty file>")
        ));
    }
}

/// Member directories (relative to the root) from `[workspace] members = [...]`; `dir/*` globs expand to
/// the subdirectories that have a Cargo.toml.
fn workspace_members(root: &Path, text: &str) -> Result<Vec<String>> {
    let mut section = String::new();
    let mut list: Option<String> = None;
    for line in text.lines() {
        let line = strip_comment(line).trim();
        if let Some(acc) = list.as_mut() {
            acc.push_str(line);
            acc.push('\n');
        } else if let Some(name) = section_name(line) {
            section = name;
        } else if section == "workspace"
            && line
                .split('=')
                .next()
                .is_some_and(|key| key.trim() == "members")
        {
            list = Some(
                line.split_once('=')
                    .map(|(_, v)| v)
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        if list.as_ref().is_some_and(|acc| acc.contains(']')) {
            break;
        }
    }
    let list = list.context("no `members = [...]` in the [workspace] section of Cargo.toml")?;
    let list = list.split(']').next().unwrap_or_default();

    let mut members = Vec::new();
    for entry in quoted_strings(list) {
        match entry.strip_suffix("/*") {
            Some(dir) => {
                let mut found: Vec<String> = fs::read_dir(root.join(dir))
                    .with_context(|| format!("listing workspace members in {dir}/"))?
                    .filter_map(|entry| entry.ok())
                    .filter(|entry| entry.path().join("Cargo.toml").is_file())
                    .map(|entry| format!("{dir}/{}", entry.file_name().to_string_lossy()))
                    .collect();
                found.sort();
                members.extend(found);
            }
            None => members.push(entry),
        }
    }
    Ok(members)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DepKind {
    Normal,
    Build,
    Dev,
}

#[derive(Debug)]
struct Dep {
    /// The real package name (after `package = "..."` renames).
    package: String,
    kind: DepKind,
    /// The section it was found in, for messages.
    section: String,
}

#[derive(Debug)]
struct Manifest {
    member: String,
    package: String,
    deps: Vec<Dep>,
}

impl Manifest {
    fn parse(member: &str, text: &str) -> Self {
        let mut package = String::new();
        let mut deps: Vec<Dep> = Vec::new();
        let mut section = String::new();
        // Inside `[dependencies.foo]`: the index of `foo` in `deps`.
        let mut table_dep: Option<usize> = None;

        for raw in text.lines() {
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            if let Some(name) = section_name(line) {
                section = name;
                table_dep = None;
                // `[dependencies.foo]` / `[target.'cfg(x)'.dev-dependencies.foo]`
                if let Some((table, dep)) = section.rsplit_once('.')
                    && let Some(kind) = dep_kind(table)
                {
                    deps.push(Dep {
                        package: unquote(dep),
                        kind,
                        section: table.to_owned(),
                    });
                    table_dep = Some(deps.len() - 1);
                }
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue; // e.g. the inside of a multi-line array
            };
            let key = key.trim();
            if section == "package" && key == "name" {
                package = unquote(value.trim());
            } else if let Some(index) = table_dep {
                if key == "package" {
                    deps[index].package = unquote(value.trim());
                }
            } else if let Some(kind) = dep_kind(&section) {
                // `foo = ...` or `foo.workspace = true`
                let name = key.split('.').next().unwrap_or(key);
                let name = unquote(name.trim());
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
                {
                    continue;
                }
                let package = inline_package(value).unwrap_or(name);
                deps.push(Dep {
                    package,
                    kind,
                    section: section.clone(),
                });
            }
        }

        Self {
            member: member.to_owned(),
            package,
            deps,
        }
    }
}

/// The kind of a dependency section: `dependencies`, `build-dependencies`, `dev-dependencies`, or any
/// of them under `target.<cfg>.`.
fn dep_kind(section: &str) -> Option<DepKind> {
    let last = section.rsplit('.').next().unwrap_or(section);
    let is_target = section.starts_with("target.");
    if section != last && !is_target {
        return None;
    }
    match last {
        "dependencies" => Some(DepKind::Normal),
        "build-dependencies" | "build_dependencies" => Some(DepKind::Build),
        "dev-dependencies" | "dev_dependencies" => Some(DepKind::Dev),
        _ => None,
    }
}

/// `[name]` or `[[name]]` → `name`.
fn section_name(line: &str) -> Option<String> {
    let inner = line.strip_prefix('[')?.strip_suffix(']')?;
    let inner = inner
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(inner);
    Some(inner.trim().to_owned())
}

/// `package = "x"` inside an inline table value.
fn inline_package(value: &str) -> Option<String> {
    let at = value.find("package")?;
    let rest = value[at + "package".len()..]
        .trim_start()
        .strip_prefix('=')?;
    quoted_strings(rest).into_iter().next()
}

fn quoted_strings(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(['"', '\'']) {
        let quote = rest.as_bytes()[start] as char;
        let after = &rest[start + 1..];
        let Some(end) = after.find(quote) else { break };
        out.push(after[..end].to_owned());
        rest = &after[end + 1..];
    }
    out
}

fn unquote(text: &str) -> String {
    text.trim().trim_matches(['"', '\'']).to_owned()
}

/// Drops a `# comment` (good enough: our manifests have no `#` inside strings).
fn strip_comment(line: &str) -> &str {
    line.split('#').next().unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::{DepKind, Manifest, check_manifest};

    fn problems(member: &str, text: &str) -> Vec<String> {
        let mut problems = Vec::new();
        check_manifest(&Manifest::parse(member, text), &mut problems);
        problems
    }

    #[test]
    fn flags_broken_invariants() {
        let core = "[package]\nname = \"hookline-core\"\n[dependencies]\nhyper-util = \"0.1\"\n\
                    httpdate = \"1\"\nsqlx.workspace = true\n[dev-dependencies]\naxum = \"0.8\"\n";
        assert_eq!(
            problems("core", core).len(),
            2,
            "{:?}",
            problems("core", core)
        );

        let store = "[package]\nname = \"hookline-store-redis\"\n[dependencies]\n\
                     hookline-store-sqlite.workspace = true\n[dev-dependencies]\nhookline-server = \"0\"\n";
        assert_eq!(
            problems("store-redis", store).len(),
            2,
            "{:?}",
            problems("store-redis", store)
        );

        let sqlite = "[package]\nname = \"hookline-store-sqlite\"\n[dependencies]\n\
                      hookline-store-sql = { workspace = true, features = [\"sqlite\"] }\n";
        assert!(problems("store-sqlite", sqlite).is_empty());
        let shared = "[package]\nname = \"hookline-store-sql\"\n[dependencies]\n\
                      hookline-store-postgres.workspace = true\n";
        assert_eq!(problems("store-sql", shared).len(), 1);

        let server = "[package]\nname = \"hookline-server\"\n[dependencies]\n\
                      hookline-store-sqlite = { workspace = true, optional = true }\naxum.workspace = true\n";
        assert!(problems("server", server).is_empty());
    }

    #[test]
    fn scans_dependencies() {
        let m = Manifest::parse(
            "store-x",
            r#"
[package]
name = "hookline-store-x"

[dependencies]
hookline-core.workspace = true
db = { package = "sqlx", version = "0.8", features = [
    "sqlite",
] }
tokio = { workspace = true } # comment

[target.'cfg(unix)'.dependencies]
hyper-util = "0.1"

[dev-dependencies.hookline-server]
path = "../server"

[features]
x = ["dep:foo"]
"#,
        );
        assert_eq!(m.package, "hookline-store-x");
        let deps: Vec<_> = m
            .deps
            .iter()
            .map(|d| (d.package.as_str(), d.kind))
            .collect();
        assert_eq!(
            deps,
            [
                ("hookline-core", DepKind::Normal),
                ("sqlx", DepKind::Normal),
                ("tokio", DepKind::Normal),
                ("hyper-util", DepKind::Normal),
                ("hookline-server", DepKind::Dev),
            ]
        );
    }
}
