//! The one renderer: sections of `Key=value` lines, each value encoded by [`crate::value`].

use crate::error::Error;
use crate::value::{self, Kind};

/// One section being written. Values are encoded (and validated) as they are added, so a
/// refused value stops rendering before any text is returned.
pub(crate) struct Section {
    name: &'static str,
    lines: Vec<(&'static str, String)>,
    /// Written even when empty: the section that makes the file a Quadlet unit.
    required: bool,
}

impl Section {
    pub(crate) fn new(name: &'static str) -> Self {
        Self {
            name,
            lines: Vec::new(),
            required: false,
        }
    }

    /// A section written even when it has no keys (`[Container]`, `[Volume]`).
    pub(crate) fn required(name: &'static str) -> Self {
        Self {
            required: true,
            ..Self::new(name)
        }
    }

    /// Adds a key read as one raw string.
    pub(crate) fn raw(&mut self, key: &'static str, value: &str) -> Result<(), Error> {
        let exec = match value::kind(self.name, key) {
            Kind::Raw => false,
            Kind::RawExec => true,
            Kind::Words | Kind::WordsExec => {
                unreachable!("{}: {key}= is a word list", self.name)
            }
        };
        let encoded = value::raw(key, value, exec)?;
        self.lines.push((key, encoded));
        Ok(())
    }

    /// Adds a key read as a list of words; nothing is written for an empty list.
    pub(crate) fn words<S: AsRef<str>>(
        &mut self,
        key: &'static str,
        words: &[S],
    ) -> Result<(), Error> {
        if words.is_empty() {
            return Ok(());
        }
        let exec = match value::kind(self.name, key) {
            Kind::Words => false,
            Kind::WordsExec => true,
            Kind::Raw | Kind::RawExec => unreachable!("{}: {key}= is a raw value", self.name),
        };
        let encoded = value::words(key, words, exec)?;
        self.lines.push((key, encoded));
        Ok(())
    }

    /// Adds a value its caller has encoded already (a specifier it means, such as `%t`,
    /// followed by a part encoded with [`value::raw`]).
    pub(crate) fn encoded(&mut self, key: &'static str, value: String) {
        self.lines.push((key, value));
    }

    /// Adds a boolean key as `true`/`false`.
    pub(crate) fn bool(&mut self, key: &'static str, value: bool) -> Result<(), Error> {
        self.raw(key, if value { "true" } else { "false" })
    }
}

/// Writes the sections in order, a blank line between them; empty optional sections are left
/// out.
pub(crate) fn render(sections: &[Section]) -> String {
    let mut out = String::new();
    for section in sections
        .iter()
        .filter(|s| s.required || !s.lines.is_empty())
    {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push('[');
        out.push_str(section.name);
        out.push_str("]\n");
        for (key, value) in &section.lines {
            out.push_str(key);
            out.push('=');
            out.push_str(value);
            out.push('\n');
        }
    }
    out
}
