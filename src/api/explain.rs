//! Why a request body was refused, in the API's own words.
//!
//! A body is decoded by serde straight into the handler's types, once. Only
//! when that fails is it read again, twice: by `serde_path_to_error`, for
//! where serde stopped, and as a [`Node`] tree, for what is there. The
//! route's [`Rule`] says what is allowed at every place of the body, so the
//! answer reads `<path>: expected <what is allowed>, got <what was sent>`
//! and none of serde's wording (type names, line and column) reaches a
//! client.
//!
//! Paths name a field of the body plainly (`delay_ms`), a field inside it
//! after a dot (`headers.k`), and an item of an array by its index from 0
//! (`receipts[2]`). A batch of events is `events`, so the delay of its
//! fourth event is `events[3].delay_ms`, as the broker names it too. The
//! body as a whole is `body`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;

use super::ApiError;
use event_broker_core::rules::{Number, Text, Whole};

/// What a request may hold at one place.
pub(crate) enum Rule {
    /// A whole number in a range.
    Whole(Whole),
    /// A number, whole or not, in a range.
    Number(Number),
    /// An event id: any whole number.
    Id,
    /// A string of a length in a range.
    Text(Text),
    /// A string of any length, described (`a receipt string`).
    Str(&'static str),
    /// `true` or `false`.
    Bool,
    /// Any JSON value.
    Any,
    /// An object whose values are strings.
    StringMap,
    /// An array of items: how many, in words, and what each is.
    List(String, Box<Rule>),
    /// An object of known fields; `about` describes it in place of the list
    /// of its fields when given.
    Object {
        /// The fields, in the order messages list them.
        fields: Vec<Field>,
        /// A description of the object for people.
        about: Option<&'static str>,
    },
}

/// One field of an object.
pub(crate) struct Field {
    name: &'static str,
    rule: Rule,
    required: bool,
    nullable: bool,
}

impl Field {
    /// A field that must be there.
    pub(crate) fn required(name: &'static str, rule: Rule) -> Field {
        Field {
            name,
            rule,
            required: true,
            nullable: false,
        }
    }

    /// A field that may be left out but not be `null`.
    pub(crate) fn optional(name: &'static str, rule: Rule) -> Field {
        Field {
            required: false,
            ..Field::required(name, rule)
        }
    }

    /// A field that may be left out or be `null`, both meaning its default.
    pub(crate) fn nullable(name: &'static str, rule: Rule) -> Field {
        Field {
            nullable: true,
            ..Field::optional(name, rule)
        }
    }
}

impl Rule {
    /// An object with these fields, described by them.
    pub(crate) fn object(fields: Vec<Field>) -> Rule {
        Rule::Object {
            fields,
            about: None,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Whole(whole) => whole.fmt(f),
            Rule::Number(number) => number.fmt(f),
            Rule::Id => f.write_str("an event id (a whole number)"),
            Rule::Text(text) => text.fmt(f),
            Rule::Str(what) => f.write_str(what),
            Rule::Bool => f.write_str("true or false"),
            Rule::Any => f.write_str("any JSON value"),
            Rule::StringMap => f.write_str("an object whose values are strings"),
            Rule::List(what, _) => f.write_str(what),
            Rule::Object {
                about: Some(about), ..
            } => f.write_str(about),
            Rule::Object {
                fields,
                about: None,
            } => {
                f.write_str("an object with the fields ")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(field.name)?;
                    if field.required {
                        f.write_str(" (required)")?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// A place in a request, as messages name it.
#[derive(Clone, Default)]
pub(crate) struct Path(String);

impl Path {
    /// The body as a whole.
    pub(crate) fn body() -> Path {
        Path::default()
    }

    /// A place named `name`, such as `events` or `events[3].headers`.
    pub(crate) fn named(name: impl Into<String>) -> Path {
        Path(name.into())
    }

    fn key(&self, key: &str) -> Path {
        if self.0.is_empty() {
            Path(key.to_string())
        } else {
            Path(format!("{}.{key}", self.0))
        }
    }

    fn index(&self, index: usize) -> Path {
        Path(format!("{}[{index}]", self.0))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("body")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// Decodes `text` as `T`, or says why not: `invalid_json` for text that
/// is not JSON, `invalid_request` naming the place and what it allows for
/// JSON that is not what the rule describes. `refusal` gives the place of
/// `text` in the request and its rule; it is called only on failure.
pub(crate) fn decode<'a, T: Deserialize<'a>>(
    text: &'a [u8],
    refusal: impl FnOnce() -> (Path, Rule),
) -> Result<T, ApiError> {
    let e = match serde_json::from_slice(text) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    let (at, rule) = refusal();
    if e.classify() != Category::Data {
        return Err(ApiError::InvalidJson(not_json(&at, text, &e)));
    }
    // The same decoding again, tracked: serde's own error says what went
    // wrong in its words, the tracked one says where.
    let mut tracked = serde_json::Deserializer::from_slice(text);
    // It cannot succeed where the plain decoding failed; if it did, the
    // checks below still find what the rule does not allow, from the top.
    let path = serde_path_to_error::deserialize::<_, T>(&mut tracked)
        .err()
        .map(|e| e.path().clone());
    Err(ApiError::InvalidRequest(explain(
        text,
        &at,
        &rule,
        path.as_ref(),
    )))
}

/// The answer for a body that must be `what` and is some other JSON value,
/// or no JSON at all.
pub(crate) fn not_one_of(text: &[u8], what: &str) -> ApiError {
    match serde_json::from_slice::<Node>(text) {
        Ok(node) => {
            ApiError::InvalidRequest(format!("body: expected {what}, got {}", node.described()))
        }
        Err(e) => ApiError::InvalidJson(not_json(&Path::body(), text, &e)),
    }
}

/// Where text stops being JSON, by byte position (from 1) and the text there.
fn not_json(at: &Path, text: &[u8], e: &serde_json::Error) -> String {
    if e.classify() == Category::Eof {
        return format!("{at}: not valid JSON: the text ends before the JSON does");
    }
    let line_start: usize = text
        .split(|&b| b == b'\n')
        .take(e.line().saturating_sub(1))
        .map(|line| line.len() + 1)
        .sum();
    let position = (line_start + e.column()).clamp(1, text.len().max(1));
    let near: String = String::from_utf8_lossy(&text[position - 1..])
        .chars()
        .take(16)
        .collect();
    format!("{at}: not valid JSON at byte {position}, near {near:?}")
}

/// The message for `text`, refused by serde at `path`, against `rule`.
fn explain(
    text: &[u8],
    at: &Path,
    rule: &Rule,
    path: Option<&serde_path_to_error::Path>,
) -> String {
    let Ok(root) = serde_json::from_slice::<Node>(text) else {
        return format!("{at}: expected {rule}");
    };
    let (mut node, mut rule, mut at) = (&root, rule, at.clone());
    // Down to where serde stopped: the first problem in the order of the
    // text, which the checks below would not find by themselves when a
    // body has more than one.
    for segment in path.into_iter().flatten() {
        match (segment, node, rule) {
            (
                serde_path_to_error::Segment::Seq { index },
                Node::List(items),
                Rule::List(_, item),
            ) => {
                let Some(found) = items.get(*index) else {
                    break;
                };
                (node, rule, at) = (found, item, at.index(*index));
            }
            (
                serde_path_to_error::Segment::Map { key },
                Node::Map(entries),
                Rule::Object { fields, .. },
            ) => {
                let place = at.key(key);
                let Some(field) = fields.iter().find(|f| f.name == key) else {
                    return unknown(&place, fields);
                };
                let Some((_, found)) = entries.iter().find(|(k, _)| k == key) else {
                    break;
                };
                (node, rule, at) = (found, &field.rule, place);
            }
            _ => break,
        }
    }
    check(node, rule, &at).unwrap_or_else(|| format!("{at}: expected {rule}"))
}

/// The first place under `node` (in the order of the text) that `rule`
/// does not allow, as a message.
fn check(node: &Node, rule: &Rule, at: &Path) -> Option<String> {
    match (rule, node) {
        (Rule::Any, _)
        | (Rule::Id, Node::Unsigned(_))
        | (Rule::Str(_), Node::Str(_))
        | (Rule::Bool, Node::Bool(_)) => None,
        (Rule::Whole(whole), Node::Unsigned(n)) if whole.contains(*n) => None,
        (Rule::Number(number), Node::Unsigned(n)) if number.contains(*n as f64) => None,
        (Rule::Number(number), Node::Float(x)) if number.contains(*x) => None,
        (Rule::Text(text), Node::Str(chars)) if (text.min..=text.max).contains(chars) => None,
        (Rule::Text(text), Node::Str(chars)) => {
            Some(format!("{at}: expected {text}, got {chars} characters"))
        }
        (Rule::StringMap, Node::Map(entries)) => entries.iter().find_map(|(key, value)| {
            let string = Rule::Str("a string");
            check(value, &string, &at.key(key))
        }),
        (Rule::List(_, item), Node::List(items)) => items
            .iter()
            .enumerate()
            .find_map(|(i, found)| check(found, item, &at.index(i))),
        (Rule::Object { fields, .. }, Node::Map(entries)) => check_object(fields, entries, at),
        _ => Some(format!("{at}: expected {rule}, got {}", node.described())),
    }
}

fn check_object(fields: &[Field], entries: &[(String, Node)], at: &Path) -> Option<String> {
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in entries {
        let place = at.key(key);
        let Some(field) = fields.iter().find(|f| f.name == key) else {
            return Some(unknown(&place, fields));
        };
        if seen.contains(&field.name) {
            return Some(format!("{place}: given twice"));
        }
        seen.push(field.name);
        if field.nullable && matches!(value, Node::Null) {
            continue;
        }
        if let Some(problem) = check(value, &field.rule, &place) {
            return Some(problem);
        }
    }
    let missing = fields
        .iter()
        .find(|f| f.required && !seen.contains(&f.name))?;
    Some(format!(
        "{}: required; expected {}",
        at.key(missing.name),
        missing.rule
    ))
}

fn unknown(place: &Path, fields: &[Field]) -> String {
    let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
    format!(
        "{place}: unknown field; the fields here are {}",
        names.join(", ")
    )
}

/// A JSON value as far as messages need it: objects keep their keys in
/// the order of the text, repeated ones too, which `serde_json::Value` does not.
enum Node {
    Null,
    Bool(bool),
    Unsigned(u64),
    Negative(i64),
    Float(f64),
    /// A string, by its length in characters: its text is never repeated.
    Str(usize),
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    /// What was sent, for `got ...`.
    fn described(&self) -> String {
        match self {
            Node::Null => "null".into(),
            Node::Bool(b) => b.to_string(),
            Node::Unsigned(n) => n.to_string(),
            Node::Negative(n) => n.to_string(),
            Node::Float(x) if x.abs() >= 1e16 => format!("{x:e}"),
            Node::Float(x) => x.to_string(),
            Node::Str(_) => "a string".into(),
            Node::List(_) => "an array".into(),
            Node::Map(_) => "an object".into(),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Node, E> {
        Ok(Node::Bool(b))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Node, E> {
        Ok(Node::Unsigned(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Node, E> {
        Ok(match u64::try_from(n) {
            Ok(n) => Node::Unsigned(n),
            Err(_) => Node::Negative(n),
        })
    }

    fn visit_f64<E: de::Error>(self, x: f64) -> Result<Node, E> {
        // As [`WholeNumber`] reads it: `5.0` is the whole number 5.
        Ok(whole_float(x).map_or(Node::Float(x), Node::Unsigned))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Node, E> {
        Ok(Node::Str(s.chars().count()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Node>()? {
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

/// A whole number as JSON Schema counts them: `5`, and also `5.0` or
/// `5e0`, which are the same number. Generated clients and JSON libraries
/// that keep every number as a float send the second kind; serde's
/// integers refuse them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WholeNumber(pub u64);

/// The whole number `x` is, when it is one that fits in a `u64`.
fn whole_float(x: f64) -> Option<u64> {
    // 2^64 as a float; every float below it that has no fraction fits.
    const END: f64 = 18_446_744_073_709_551_616.0;
    (x.fract() == 0.0 && (0.0..END).contains(&x)).then_some(x as u64)
}

impl<'de> Deserialize<'de> for WholeNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Whole;

        impl Visitor<'_> for Whole {
            type Value = WholeNumber;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number")
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<WholeNumber, E> {
                Ok(WholeNumber(n))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<WholeNumber, E> {
                u64::try_from(n)
                    .map(WholeNumber)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(n), &self))
            }

            fn visit_f64<E: de::Error>(self, x: f64) -> Result<WholeNumber, E> {
                whole_float(x)
                    .map(WholeNumber)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Float(x), &self))
            }
        }

        deserializer.deserialize_u64(Whole)
    }
}

/// A struct read from a JSON object only. serde's derived structs also
/// take an array of their fields in order, so `[1, 2]` would be an event
/// with payload 1 and delay 2; wrapped, it is refused as the wrong shape.
pub(crate) struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(Fields(std::marker::PhantomData))
            .map(Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_broker_core::rules::DELAY_MS;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        name: String,
        #[serde(default)]
        delay_ms: u64,
        #[serde(default)]
        tags: Option<Vec<String>>,
    }

    fn rule() -> Rule {
        Rule::object(vec![
            Field::required("name", Rule::Str("a name string")),
            Field::optional("delay_ms", Rule::Whole(DELAY_MS)),
            Field::nullable(
                "tags",
                Rule::List(
                    "an array of tags".into(),
                    Box::new(Rule::Str("a tag string")),
                ),
            ),
        ])
    }

    fn refused(text: &str) -> ApiError {
        match decode::<Object<Probe>>(text.as_bytes(), || (Path::body(), rule())) {
            Ok(_) => panic!("{text} was accepted"),
            Err(e) => e,
        }
    }

    fn message(text: &str) -> String {
        match refused(text) {
            ApiError::InvalidRequest(m) | ApiError::InvalidJson(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_wrong_type_names_the_field_what_it_allows_and_what_came() {
        assert_eq!(
            message(r#"{"name": "a", "delay_ms": "5"}"#),
            "delay_ms: expected a whole number of milliseconds from 0 to 2592000000, got a string"
        );
        assert_eq!(
            message(r#"{"name": "a", "delay_ms": -1}"#),
            "delay_ms: expected a whole number of milliseconds from 0 to 2592000000, got -1"
        );
        assert_eq!(
            message(r#"{"name": "a", "delay_ms": 1.5}"#),
            "delay_ms: expected a whole number of milliseconds from 0 to 2592000000, got 1.5"
        );
        assert_eq!(
            message(r#"{"name": "a", "tags": ["x", 7]}"#),
            "tags[1]: expected a tag string, got 7"
        );
    }

    #[test]
    fn missing_unknown_and_repeated_fields_are_named() {
        assert_eq!(
            message(r#"{"delay_ms": 5}"#),
            "name: required; expected a name string"
        );
        assert_eq!(
            message(r#"{"name": "a", "colour": 1}"#),
            "colour: unknown field; the fields here are name, delay_ms, tags"
        );
        assert_eq!(
            message(r#"{"name": "a", "name": "b"}"#),
            "name: given twice"
        );
    }

    #[test]
    fn the_first_problem_in_the_text_is_the_one_named() {
        assert_eq!(
            message(r#"{"tags": [1], "delay_ms": "x", "name": "a"}"#),
            "tags[0]: expected a tag string, got 1"
        );
    }

    #[test]
    fn an_array_is_not_an_object() {
        assert_eq!(
            message("[\"a\", 5]"),
            "body: expected an object with the fields name (required), delay_ms, tags, got an array"
        );
    }

    #[test]
    fn text_that_is_not_json_says_where_it_stops_being_json() {
        assert!(matches!(
            refused(r#"{"name": "a""#),
            ApiError::InvalidJson(_)
        ));
        assert_eq!(
            message(r#"{"name": "a"} x"#),
            "body: not valid JSON at byte 15, near \"x\""
        );
        assert_eq!(
            message("{\"name\":\n \"a\",,}"),
            "body: not valid JSON at byte 15, near \",}\""
        );
    }

    #[test]
    fn a_whole_number_may_be_written_as_a_float_but_not_have_a_fraction() {
        let read = |text: &str| {
            decode::<Vec<WholeNumber>>(text.as_bytes(), || {
                let rule = Rule::List("an array of ids".into(), Box::new(Rule::Id));
                (Path::named("ids"), rule)
            })
        };
        let whole = |n: &[u64]| n.iter().copied().map(WholeNumber).collect::<Vec<_>>();
        assert_eq!(
            read("[5, 5.0, 5e0, 0.0, -0.0]").unwrap(),
            whole(&[5, 5, 5, 0, 0])
        );
        assert_eq!(
            read("[18446744073709549568.0]").unwrap(),
            whole(&[18_446_744_073_709_549_568])
        );
        for (text, got) in [
            (
                "[1, 5.5]",
                "ids[1]: expected an event id (a whole number), got 5.5",
            ),
            (
                "[-1]",
                "ids[0]: expected an event id (a whole number), got -1",
            ),
            (
                "[-2.0]",
                "ids[0]: expected an event id (a whole number), got -2",
            ),
            (
                "[1.8446744073709552e19]",
                "ids[0]: expected an event id (a whole number), got 1.8446744073709552e19",
            ),
        ] {
            match read(text) {
                Err(ApiError::InvalidRequest(m)) => assert_eq!(m, got, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn null_is_the_default_only_where_a_field_allows_it() {
        let text = br#"{"name": "a", "tags": null}"#;
        assert!(decode::<Object<Probe>>(text, || (Path::body(), rule())).is_ok());
        assert_eq!(
            message(r#"{"name": "a", "delay_ms": null}"#),
            "delay_ms: expected a whole number of milliseconds from 0 to 2592000000, got null"
        );
    }
}
