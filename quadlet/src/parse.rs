//! A unit-file parser good enough for tests and diagnostics: sections → keys → values, with
//! the renderer's quoting and escaping undone. It follows systemd's syntax (comments, blank
//! lines, line continuation) but is not a validator.

use crate::error::ParseError;
use crate::value;

/// A parsed unit file: sections in file order, each with its `Key=value` lines in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    pub sections: Vec<ParsedSection>,
}

/// One `[Name]` section; a name repeated in the file gives two entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSection {
    pub name: String,
    /// `(key, raw value)` pairs, as written (quoting and escapes still in place).
    pub entries: Vec<(String, String)>,
}

impl UnitFile {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut sections: Vec<ParsedSection> = Vec::new();
        let mut pending = String::new();
        let mut pending_start = 0;
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let trimmed = line.trim();
            if pending.is_empty() {
                if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
                    continue;
                }
                pending_start = line_no;
            } else if trimmed.starts_with(['#', ';']) {
                // systemd ignores comments inside a continued value.
                continue;
            }
            // A trailing backslash continues the value; systemd joins with a space.
            if let Some(head) = trimmed.strip_suffix('\\') {
                pending.push_str(head);
                pending.push(' ');
                continue;
            }
            pending.push_str(trimmed);
            let logical = std::mem::take(&mut pending);
            parse_line(&logical, pending_start, &mut sections)?;
        }
        if !pending.is_empty() {
            let logical = std::mem::take(&mut pending);
            parse_line(logical.trim_end(), pending_start, &mut sections)?;
        }
        Ok(Self { sections })
    }

    /// The section names, in file order.
    pub fn section_names(&self) -> Vec<&str> {
        self.sections.iter().map(|s| s.name.as_str()).collect()
    }

    /// The raw values of `key` in every section named `section`, in file order.
    pub fn raw(&self, section: &str, key: &str) -> Vec<&str> {
        self.sections
            .iter()
            .filter(|s| s.name == section)
            .flat_map(|s| &s.entries)
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The values of `key` with the renderer's encoding undone: `%%` → `%` everywhere,
    /// `$$` → `$` in values that Quadlet copies into `ExecStart=`, and word-list keys
    /// (`Label=`, `Secret=`, `WantedBy=`, …) split into their unquoted words.
    pub fn values(&self, section: &str, key: &str) -> Result<Vec<String>, ParseError> {
        let kind = value::kind(section, key);
        let mut out = Vec::new();
        for s in self.sections.iter().filter(|s| s.name == section) {
            for (k, v) in s.entries.iter().filter(|(k, _)| k == key) {
                let decoded = value::decode(kind, v).map_err(|message| ParseError {
                    line: 0,
                    message: format!("[{section}] {k}=: {message}"),
                })?;
                out.extend(decoded);
            }
        }
        Ok(out)
    }
}

fn parse_line(
    line: &str,
    line_no: usize,
    sections: &mut Vec<ParsedSection>,
) -> Result<(), ParseError> {
    let error = |message: String| ParseError {
        line: line_no,
        message,
    };
    if let Some(rest) = line.strip_prefix('[') {
        let name = rest
            .strip_suffix(']')
            .filter(|n| !n.is_empty() && !n.contains(['[', ']']))
            .ok_or_else(|| error(format!("invalid section header {line:?}")))?;
        sections.push(ParsedSection {
            name: name.to_owned(),
            entries: Vec::new(),
        });
        return Ok(());
    }
    let (key, value) = line
        .split_once('=')
        .ok_or_else(|| error(format!("not a key=value line: {line:?}")))?;
    let key = key.trim_end();
    if key.is_empty() {
        return Err(error(format!("empty key in {line:?}")));
    }
    let section = sections
        .last_mut()
        .ok_or_else(|| error(format!("{key}= before any section")))?;
    section
        .entries
        .push((key.to_owned(), value.trim_start().to_owned()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_comments_and_continuations() {
        let text = "# comment\n\n[Unit]\nDescription=a\\\n  b\n; other\n[Container]\nLabel=\"a=b c\" d=e\nLabel=f=100%%\n";
        let unit = UnitFile::parse(text).expect("parses");
        assert_eq!(unit.section_names(), ["Unit", "Container"]);
        assert_eq!(unit.raw("Unit", "Description"), ["a b"]);
        assert_eq!(
            unit.values("Container", "Label").expect("decodes"),
            ["a=b c", "d=e", "f=100%"]
        );
    }

    #[test]
    fn refuses_garbage() {
        let line = |text: &str| UnitFile::parse(text).expect_err(text).line;
        assert_eq!(line("Image=x\n"), 1);
        assert_eq!(line("[Container]\nImage\n"), 2);
        assert_eq!(line("[Container\n"), 1);
        assert_eq!(line("[Unit]\n=x\n"), 2);
    }
}
