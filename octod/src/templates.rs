//! Session templates: the subdirectories of the templates directory (packaged as
//! `/usr/share/octo/container/templates`), each with a `template.toml` naming it. Listing them
//! for users, and resolving the name a create asks for to its directory. Blocking file IO:
//! callers on the runtime run it on the blocking pool.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::session::SessionName;

/// The longest template name a create accepts.
const MAX_NAME: usize = 64;

/// A template: its directory and what `template.toml` says of it.
#[derive(Debug, PartialEq, Eq)]
pub struct Template {
    /// Its directory's name, which a create names.
    pub id: String,
    pub name: String,
    pub description: String,
}

/// `template.toml`.
#[derive(Debug, Deserialize)]
struct TemplateToml {
    name: String,
    #[serde(default)]
    description: String,
}

/// The templates in `dir`: each subdirectory with a readable `template.toml`, by name. A
/// missing directory has none; a `template.toml` that does not parse is logged and skipped.
pub fn list(dir: &Path) -> Vec<Template> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut list: Vec<Template> = entries
        .flatten()
        .filter_map(|entry| {
            let id = entry.file_name().to_str()?.to_owned();
            let text = std::fs::read_to_string(entry.path().join("template.toml")).ok()?;
            let parsed: TemplateToml = toml::from_str(&text)
                .inspect_err(|e| tracing::warn!(template = %id, "template.toml: {e}"))
                .ok()?;
            Some(Template {
                id,
                name: parsed.name,
                description: parsed.description,
            })
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

/// The default name of a session of template `id`: the template's display name from its
/// `template.toml`, made a valid session name, else the id itself (a template removed since,
/// or one without a readable `template.toml`).
pub fn default_session_name(dir: &Path, id: &str) -> SessionName {
    let name = resolve(dir, id)
        .and_then(|path| std::fs::read_to_string(path.join("template.toml")).ok())
        .and_then(|text| toml::from_str::<TemplateToml>(&text).ok())
        .map(|parsed| parsed.name)
        .unwrap_or_default();
    SessionName::lossy(&name, id)
}

/// The directory of the template a create names, if the name is one (1-64 of `[A-Za-z0-9_-]`,
/// so it cannot leave `dir`) and the directory exists.
pub fn resolve(dir: &Path, name: &str) -> Option<PathBuf> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= MAX_NAME;
    let path = dir.join(name);
    (valid && path.is_dir()).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(id: &str, name: &str, description: &str) -> Template {
        Template {
            id: id.into(),
            name: name.into(),
            description: description.into(),
        }
    }

    /// A templates directory with `(directory, template.toml)`; `None` leaves the file out.
    fn fixture(templates: &[(&str, Option<&str>)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (id, toml) in templates {
            let path = dir.path().join(id);
            std::fs::create_dir_all(&path).expect("mkdir");
            if let Some(toml) = toml {
                std::fs::write(path.join("template.toml"), toml).expect("write");
            }
        }
        dir
    }

    #[test]
    fn templates_are_listed_by_name() {
        let dir = fixture(&[
            ("zeta", Some("name = \"A first\"\ndescription = \"d\"\n")),
            ("alpha", Some("name = \"B second\"\n")),
            ("no-toml", None),
            ("broken", Some("name = \n")),
            ("nameless", Some("description = \"x\"\n")),
        ]);
        std::fs::write(dir.path().join("file"), "not a template").expect("write");
        assert_eq!(
            list(dir.path()),
            [
                template("zeta", "A first", "d"),
                template("alpha", "B second", "")
            ]
        );
        assert_eq!(list(&dir.path().join("missing")), []);
    }

    #[test]
    fn a_session_is_named_after_its_template() {
        let dir = fixture(&[
            ("coding-copilot", Some("name = \"Coding Copilot\"\n")),
            ("odd", Some("name = \"Odd\\nname\"\n")),
            ("no-toml", None),
        ]);
        let name = |id: &str| default_session_name(dir.path(), id).into_string();
        assert_eq!(name("coding-copilot"), "Coding Copilot");
        assert_eq!(name("odd"), "Odd name");
        assert_eq!(name("no-toml"), "no-toml");
        assert_eq!(name("gone"), "gone");
    }

    #[test]
    fn a_create_names_an_existing_template_directory() {
        let dir = fixture(&[
            ("coding-copilot", None),
            ("a_b-9", None),
            (&"x".repeat(65), None),
        ]);
        std::fs::write(dir.path().join("file"), "").expect("write");
        let check = |name: &str, expected: bool| {
            let expected = expected.then(|| dir.path().join(name));
            assert_eq!(resolve(dir.path(), name), expected, "{name:?}");
        };
        check("coding-copilot", true);
        check("a_b-9", true);
        check("missing", false);
        check("file", false);
        check("", false);
        check("..", false);
        check("coding-copilot/..", false);
        check("a.b", false);
        check(&"x".repeat(65), false);
    }
}
