//! Typed reads of YAML values with the field path attached, so every check in the
//! appspec walker reports where it looked. The CodeDeploy agent reads the document with
//! Ruby's loose typing (`to_s` on scalars, `nil` for absent or empty keys); these
//! readers reproduce that leniency where existing bundles rely on it.

use serde_norway::{Mapping, Value};

use super::error::{FieldPath, Problem};

/// The value with any custom YAML tag (`!foo value`) removed: tags carry no meaning in
/// an appspec.
pub(crate) fn untagged(value: &Value) -> &Value {
    let mut value = value;
    // Bounded by the nesting of tags in the text.
    while let Value::Tagged(tagged) = value {
        value = &tagged.value;
    }
    value
}

/// The value of `key`, or `None` when the key is absent or its value is null/empty
/// (`hooks:` with nothing after it is "no hooks", as in the agent).
pub(crate) fn optional<'v>(map: &'v Mapping, key: &str) -> Option<&'v Value> {
    map.get(key).map(untagged).filter(|value| !value.is_null())
}

/// The value of `key`, or a "missing" problem naming the mapping at `path`.
pub(crate) fn required<'v>(map: &'v Mapping, key: &str, path: &FieldPath) -> Result<&'v Value, Problem> {
    optional(map, key).ok_or_else(|| Problem::new(path, format!("missing \"{key}\"")))
}

/// A mapping, or a problem saying what was found instead.
pub(crate) fn mapping<'v>(value: &'v Value, path: &FieldPath, what: &str) -> Result<&'v Mapping, Problem> {
    match untagged(value) {
        Value::Mapping(map) => Ok(map),
        other => Err(Problem::new(path, format!("expected {what}, found {}", describe(other)))),
    }
}

/// A list, or a problem saying what was found instead.
pub(crate) fn sequence<'v>(value: &'v Value, path: &FieldPath, what: &str) -> Result<&'v [Value], Problem> {
    match untagged(value) {
        Value::Sequence(items) => Ok(items),
        other => Err(Problem::new(path, format!("expected {what}, found {}", describe(other)))),
    }
}

/// Text from a string, or from a number or boolean written bare (the agent calls `to_s`
/// on these, so `owner: 1000` is the text "1000").
pub(crate) fn text(value: &Value, path: &FieldPath) -> Result<String, Problem> {
    match untagged(value) {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        other => Err(Problem::new(path, format!("expected text, found {}", describe(other)))),
    }
}

/// A list of texts; a single text is accepted as a list of one.
pub(crate) fn text_list(value: &Value, path: &FieldPath) -> Result<Vec<String>, Problem> {
    match untagged(value) {
        Value::Sequence(items) => {
            items.iter().enumerate().map(|(index, item)| text(item, &path.index(index))).collect()
        }
        single => Ok(vec![text(single, path)?]),
    }
}

/// A short description of a value for messages: strings quoted, scalars as written,
/// collections by kind.
pub(crate) fn describe(value: &Value) -> String {
    match untagged(value) {
        Value::Null => "nothing".to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => format!("{text:?}"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(_) => "a tagged value".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_norway::from_str(text).expect("test YAML parses")
    }

    #[test]
    fn null_and_empty_keys_read_as_absent() {
        // Builds a mapping with an empty key, a null key and a set key; asserts only the
        // set one is present and `required` names the missing key.
        let value = yaml("a:\nb: null\nc: 1\n");
        let map = mapping(&value, &FieldPath::root(), "a mapping").expect("mapping");
        assert!(optional(map, "a").is_none());
        assert!(optional(map, "b").is_none());
        assert!(optional(map, "c").is_some());
        let problem = required(map, "d", &FieldPath::root().key("x")).expect_err("d is missing");
        assert_eq!(problem.message, "missing \"d\"");
        assert_eq!(problem.path.to_string(), "x");
    }

    #[test]
    fn scalars_read_as_text_like_ruby_to_s() {
        // Reads a bare number and a single string as text/lists; asserts the agent's
        // leniency, and that a mapping is refused with what was found.
        let path = FieldPath::root();
        assert_eq!(text(&yaml("1000"), &path).expect("number as text"), "1000");
        assert_eq!(text_list(&yaml("x"), &path).expect("single"), vec!["x".to_string()]);
        let problem = text(&yaml("{a: 1}"), &path.key("owner")).expect_err("mapping is not text");
        assert_eq!(problem.message, "expected text, found a mapping");
    }
}
