//! Finding where a field sits in the appspec text, so errors can name a line.
//!
//! `serde_norway::Value` keeps no positions, and the crate exposes no event stream. It
//! does attach the position of the value being read to any error a `Deserialize` impl
//! raises. So, only when something is wrong, the text is parsed a second time with a
//! probe that walks down the field path and raises a marker error at the target value;
//! that error carries the line and byte offset. Validation stays a plain walk over a
//! `Value` with explicit paths, and the happy path pays nothing.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_norway::Value;

use super::error::{FieldPath, Segment};

/// Marker message of the probe's own error; any other error means "not found".
const FOUND: &str = "\u{0}fleetmesh appspec probe found the value";

/// Where a value starts in the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    /// 1-based line.
    pub(crate) line: usize,
    /// Byte offset of the value's first character.
    pub(crate) index: usize,
}

/// Places field paths on lines of one appspec text.
pub(crate) struct Locator<'text> {
    text: &'text str,
}

impl<'text> Locator<'text> {
    /// A locator over `text` (the same text the `Value` was parsed from).
    pub(crate) fn new(text: &'text str) -> Self {
        Self { text }
    }

    /// Where the value at `path` starts, or `None` when the parser cannot reach it (for
    /// example a key that came from a YAML merge `<<:`).
    pub(crate) fn position(&self, path: &FieldPath) -> Option<Position> {
        let deserializer = serde_norway::Deserializer::from_str(self.text);
        let error = match (Probe { rest: path.segments() }).deserialize(deserializer) {
            Ok(()) => return None,
            Err(error) => error,
        };
        if !error.to_string().contains(FOUND) {
            return None;
        }
        let location = error.location()?;
        Some(Position { line: location.line(), index: location.index() })
    }

    /// 1-based line of the value at `path`.
    pub(crate) fn line(&self, path: &FieldPath) -> Option<usize> {
        self.position(path).map(|position| position.line)
    }

    /// The source text of the scalar at `path` as written, up to the end of the line, a
    /// comment, or a flow separator: lets the parser tell `mode: 644` from `mode: 0o644`
    /// and a quoted `"0644"` from a bare `0644`, which `Value` no longer can.
    pub(crate) fn raw_scalar(&self, path: &FieldPath) -> Option<&'text str> {
        let position = self.position(path)?;
        let mut rest = self.text.get(position.index..)?;
        // Skip node properties (`&anchor`, `!tag`) written before the scalar: at most
        // one of each.
        for _ in 0..2 {
            if rest.starts_with(['&', '!']) {
                let end = rest.find([' ', '\t', '\n']).unwrap_or(rest.len());
                rest = rest[end..].trim_start_matches([' ', '\t']);
            }
        }
        let line = rest.split('\n').next().unwrap_or(rest);
        let end = line.find(" #").unwrap_or(line.len());
        let line = &line[..end];
        let end = line.find([',', ']', '}']).unwrap_or(line.len());
        Some(line[..end].trim_end())
    }
}

/// Walks the remaining path; raises [`FOUND`] at its end.
struct Probe<'path> {
    rest: &'path [Segment],
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.rest.split_first() {
            None => deserializer.deserialize_any(Found),
            Some((segment, rest)) => deserializer.deserialize_any(Step { segment, rest }),
        }
    }
}

/// Fails on whatever value it is given: the deserializer stamps the error with the
/// value's position.
struct Found;

impl<'de> Visitor<'de> for Found {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
}

/// Descends one segment: into the value of a key, or the element at an index.
struct Step<'path> {
    segment: &'path Segment,
    rest: &'path [Segment],
}

impl<'de> Visitor<'de> for Step<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a mapping or a list")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Segment::Key(wanted) = self.segment else {
            return Ok(());
        };
        // Bounded by the mapping's length in the text.
        while let Some(key) = map.next_key::<Value>()? {
            if key.as_str() == Some(wanted.as_str()) {
                return map.next_value_seed(Probe { rest: self.rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Segment::Index(wanted) = self.segment else {
            return Ok(());
        };
        let mut index = 0;
        // Bounded by the list's length in the text.
        loop {
            if index == *wanted {
                return seq.next_element_seed(Probe { rest: self.rest }).map(drop);
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r"version: 0.0
os: linux
hooks:
  AfterInstall:
    - location: scripts/a.sh
      timeout: 30
    - location: scripts/b.sh
permissions:
  - object: /srv
    mode: 0o644  # octal
";

    #[test]
    fn finds_lines_of_nested_values() {
        // Parses a small appspec; asserts the lines of a key value, a list element and a
        // value inside the second element.
        let locator = Locator::new(TEXT);
        let hooks = FieldPath::root().key("hooks").key("AfterInstall");
        assert_eq!(locator.line(&FieldPath::root().key("os")), Some(2));
        assert_eq!(locator.line(&hooks.index(0)), Some(5));
        assert_eq!(locator.line(&hooks.index(0).key("timeout")), Some(6));
        assert_eq!(locator.line(&hooks.index(1).key("location")), Some(7));
    }

    #[test]
    fn missing_paths_have_no_line() {
        // Asks for a key and an index that do not exist; asserts None rather than a wrong line.
        let locator = Locator::new(TEXT);
        assert_eq!(locator.line(&FieldPath::root().key("files")), None);
        assert_eq!(locator.line(&FieldPath::root().key("hooks").key("AfterInstall").index(5)), None);
        assert_eq!(locator.line(&FieldPath::root().key("os").key("deeper")), None);
    }

    #[test]
    fn raw_scalar_is_the_text_as_written() {
        // Reads the raw text of a number YAML would convert; asserts the comment is cut off.
        let locator = Locator::new(TEXT);
        let mode = FieldPath::root().key("permissions").index(0).key("mode");
        assert_eq!(locator.raw_scalar(&mode), Some("0o644"));
        let flow = Locator::new("permissions: [{object: /srv, mode: 644}]\n");
        assert_eq!(flow.raw_scalar(&mode), Some("644"));
    }
}
