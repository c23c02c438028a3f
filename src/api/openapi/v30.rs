//! `GET /api/openapi-3.0.json`: the document rendered as OpenAPI 3.0.3, for
//! the generators that read only 3.0 (progenitor among them). No crate
//! converts 3.1 to 3.0, so this does, over the JSON: it rewrites every
//! schema and copies everything else.
//!
//! Outside schemas the two versions differ in a few fields that 3.0 does
//! not have and that are left out: `info.summary`, `info.license.identifier`,
//! `jsonSchemaDialect`, `webhooks` and `components.pathItems`. Paths,
//! parameters, bodies, answers, links and security read the same in both.
//!
//! A 3.1 schema is JSON Schema 2020-12; a 3.0 schema is an older, smaller
//! dialect with `nullable`. So, in each schema:
//!
//! - `type: [T, "null"]` becomes `type: T, nullable: true`, and a list of
//!   several types an `anyOf` of one schema per type (the other keywords
//!   constrain only the types they concern, in both versions);
//! - a `oneOf` or `anyOf` with a `{type: "null"}` branch loses the branch
//!   and becomes `nullable`; left with one branch, it is that branch;
//! - a `$ref` with anything beside it (3.1 allows a description there,
//!   and the rules above may add `nullable`) goes into an `allOf` of its
//!   own, as 3.0 ignores whatever stands beside a `$ref`;
//! - `const: v` becomes `enum: [v]`, `examples: [v, ...]` becomes
//!   `example: v`, and a number in `exclusiveMinimum` becomes `minimum`
//!   with `exclusiveMinimum: true` (and the same for the maximum);
//! - a nullable `enum` lists `null`, without which 3.0 refuses null;
//! - any other keyword 3.0 does not have (`propertyNames`, `$schema`,
//!   `prefixItems` and the like) is left out. That can only make a schema
//!   looser: whatever the 3.1 document allows, the 3.0 rendering allows
//!   too, so a client generated from it reads every answer the server gives.

use serde_json::{json, Map, Value};

/// The fields of a 3.0 Schema Object. Any other is left out, but for
/// extensions (`x-...`), which 3.0 allows anywhere.
const KEYWORDS: [&str; 36] = [
    "$ref",
    "title",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxProperties",
    "minProperties",
    "required",
    "enum",
    "type",
    "allOf",
    "oneOf",
    "anyOf",
    "not",
    "items",
    "properties",
    "additionalProperties",
    "description",
    "format",
    "default",
    "nullable",
    "discriminator",
    "readOnly",
    "writeOnly",
    "xml",
    "externalDocs",
    "example",
    "deprecated",
];

/// The OpenAPI 3.0.3 rendering of the 3.1 document `doc`.
pub fn downgrade(mut doc: Value) -> Value {
    let Some(top) = doc.as_object_mut() else {
        return doc;
    };
    top.insert("openapi".into(), "3.0.3".into());
    top.remove("jsonSchemaDialect");
    top.remove("webhooks");
    if let Some(info) = top.get_mut("info").and_then(Value::as_object_mut) {
        info.remove("summary");
        if let Some(license) = info.get_mut("license").and_then(Value::as_object_mut) {
            license.remove("identifier");
        }
    }
    // The named schemas are schemas by place, not by key: rewritten apart.
    let mut named = None;
    if let Some(components) = top.get_mut("components").and_then(Value::as_object_mut) {
        components.remove("pathItems");
        named = components.remove("schemas");
    }
    schemas_in(&mut doc);
    if let Some(mut named) = named {
        if let Some(named) = named.as_object_mut() {
            named.values_mut().for_each(schema);
        }
        doc["components"]["schemas"] = named;
    }
    doc
}

/// Rewrites the schemas of parameters, headers and media types under
/// `value`: the values of its `schema` fields. Examples are any JSON, and
/// one with a field named `schema` holds no schema: they are copied as
/// they are.
fn schemas_in(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match key.as_str() {
                    "schema" => schema(child),
                    "example" | "examples" => {}
                    _ => schemas_in(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(schemas_in),
        _ => {}
    }
}

/// Rewrites one schema and those within it.
fn schema(value: &mut Value) {
    let Value::Object(map) = value else {
        return;
    };
    // Before the branches are rewritten, while a null branch still reads
    // `{type: "null"}`.
    drop_null_branch(map, "oneOf");
    drop_null_branch(map, "anyOf");
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(Value::Array(branches)) = map.get_mut(key) {
            branches.iter_mut().for_each(schema);
        }
    }
    for key in ["items", "not", "additionalProperties"] {
        if let Some(inner) = map.get_mut(key) {
            schema(inner);
        }
    }
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        properties.values_mut().for_each(schema);
    }
    one_type(map);
    if let Some(value) = map.remove("const") {
        map.insert("enum".into(), json!([value]));
    }
    if let Some(Value::Array(examples)) = map.remove("examples") {
        if let Some(first) = examples.into_iter().next() {
            map.entry("example").or_insert(first);
        }
    }
    exclusive(map, "exclusiveMinimum", "minimum", |bound, n| bound > n);
    exclusive(map, "exclusiveMaximum", "maximum", |bound, n| bound < n);
    map.retain(|key, _| KEYWORDS.contains(&key.as_str()) || key.starts_with("x-"));
    let nullable = map.get("nullable") == Some(&Value::Bool(true));
    if let (true, Some(Value::Array(values))) = (nullable, map.get_mut("enum")) {
        if !values.contains(&Value::Null) {
            values.push(Value::Null);
        }
    }
    if map.contains_key("$ref") && map.len() > 1 {
        let target = map.remove("$ref").unwrap_or_default();
        all_of(map, json!({ "$ref": target }));
    }
}

/// Takes a `{type: "null"}` branch out of the `oneOf` or `anyOf` named
/// `key`, making the schema nullable instead; a single branch left over
/// stands for the whole.
fn drop_null_branch(map: &mut Map<String, Value>, key: &str) {
    let Some(Value::Array(branches)) = map.get_mut(key) else {
        return;
    };
    let before = branches.len();
    branches.retain(|branch| branch.get("type") != Some(&Value::from("null")));
    if branches.len() == before {
        return;
    }
    let several = branches.len() > 1;
    map.insert("nullable".into(), true.into());
    if several {
        return;
    }
    let Some(Value::Array(mut left)) = map.remove(key) else {
        return;
    };
    match left.pop() {
        None => {
            map.insert("enum".into(), json!([null]));
        }
        // The branch merges into its parent when no field clashes; a
        // `$ref` stays in an `allOf` of its own, as 3.0 reads nothing
        // beside it.
        Some(Value::Object(mut only))
            if only.keys().all(|k| k == "$ref" || !map.contains_key(k)) =>
        {
            let target = only.remove("$ref");
            map.extend(only);
            if let Some(target) = target {
                all_of(map, json!({ "$ref": target }));
            }
        }
        Some(only) => all_of(map, only),
    }
}

/// 3.1's list of types as 3.0's one type and `nullable`.
fn one_type(map: &mut Map<String, Value>) {
    let types = match map.get("type") {
        Some(Value::Array(types)) => types.clone(),
        Some(Value::String(only)) if only == "null" => vec![Value::from("null")],
        _ => return,
    };
    let before = types.len();
    let mut types: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
    if types.len() < before {
        map.insert("nullable".into(), true.into());
    }
    match types.len() {
        0 => {
            map.remove("type");
            map.insert("enum".into(), json!([null]));
        }
        1 => {
            map.insert("type".into(), types.remove(0));
        }
        _ => {
            map.remove("type");
            let each: Vec<Value> = types.into_iter().map(|t| json!({ "type": t })).collect();
            all_of(map, json!({ "anyOf": each }));
        }
    }
}

/// 3.1's `exclusiveMinimum: n` as 3.0's `minimum: n` and
/// `exclusiveMinimum: true`, unless `minimum` is the stricter bound
/// already (`stricter(minimum, n)`); the same for the maximum.
fn exclusive(
    map: &mut Map<String, Value>,
    flag: &str,
    bound: &str,
    stricter: fn(f64, f64) -> bool,
) {
    let Some(n) = map.get(flag).and_then(Value::as_f64) else {
        return;
    };
    let Some(limit) = map.remove(flag) else {
        return;
    };
    if !map
        .get(bound)
        .and_then(Value::as_f64)
        .is_some_and(|b| stricter(b, n))
    {
        map.insert(bound.into(), limit);
        map.insert(flag.into(), true.into());
    }
}

/// Adds `inner` to the schema's `allOf`, made if need be.
fn all_of(map: &mut Map<String, Value>, inner: Value) {
    match map.get_mut("allOf") {
        Some(Value::Array(all)) => all.push(inner),
        _ => {
            map.insert("allOf".into(), json!([inner]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(schema_31: Value) -> Value {
        let doc = json!({"openapi": "3.1.0", "components": {"schemas": {"S": schema_31}}});
        downgrade(doc)["components"]["schemas"]["S"].take()
    }

    #[test]
    fn a_type_list_with_null_is_one_type_and_nullable() {
        let got = rewritten(json!({"type": ["string", "null"], "format": "date-time"}));
        assert_eq!(
            got,
            json!({"type": "string", "format": "date-time", "nullable": true})
        );
    }

    #[test]
    fn a_type_list_of_two_types_is_an_any_of() {
        let got = rewritten(json!({"type": ["string", "integer"], "minimum": 1}));
        assert_eq!(
            got,
            json!({"minimum": 1, "allOf": [{"anyOf": [{"type": "string"}, {"type": "integer"}]}]})
        );
    }

    #[test]
    fn a_one_of_with_null_and_a_ref_is_a_nullable_all_of() {
        let got = rewritten(json!({
            "description": "d",
            "oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/T"}],
        }));
        assert_eq!(
            got,
            json!({"description": "d", "nullable": true, "allOf": [{"$ref": "#/components/schemas/T"}]})
        );
    }

    #[test]
    fn a_described_ref_beside_null_lends_its_description_to_the_whole() {
        let got = rewritten(json!({
            "oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/T", "description": "d"}],
        }));
        assert_eq!(
            got,
            json!({"description": "d", "nullable": true, "allOf": [{"$ref": "#/components/schemas/T"}]})
        );
    }

    #[test]
    fn a_one_of_with_null_and_an_inline_schema_is_that_schema_nullable() {
        let got =
            rewritten(json!({"oneOf": [{"type": "null"}, {"type": "integer", "minimum": 0}]}));
        assert_eq!(
            got,
            json!({"type": "integer", "minimum": 0, "nullable": true})
        );
    }

    #[test]
    fn a_one_of_with_null_and_two_branches_keeps_both() {
        let got = rewritten(
            json!({"oneOf": [{"type": "null"}, {"type": "integer"}, {"type": "string"}]}),
        );
        assert_eq!(
            got,
            json!({"oneOf": [{"type": "integer"}, {"type": "string"}], "nullable": true})
        );
    }

    #[test]
    fn a_ref_with_a_description_beside_it_goes_into_an_all_of() {
        let got = rewritten(json!({"$ref": "#/components/schemas/T", "description": "d"}));
        assert_eq!(
            got,
            json!({"description": "d", "allOf": [{"$ref": "#/components/schemas/T"}]})
        );
        let alone = rewritten(json!({"$ref": "#/components/schemas/T"}));
        assert_eq!(alone, json!({"$ref": "#/components/schemas/T"}));
    }

    #[test]
    fn const_is_a_one_value_enum_and_examples_one_example() {
        let got = rewritten(json!({"type": "boolean", "const": true, "examples": [true, false]}));
        assert_eq!(
            got,
            json!({"type": "boolean", "enum": [true], "example": true})
        );
    }

    #[test]
    fn a_nullable_enum_lists_null() {
        let got = rewritten(json!({"type": ["string", "null"], "enum": ["a", "b"]}));
        assert_eq!(
            got,
            json!({"type": "string", "nullable": true, "enum": ["a", "b", null]})
        );
    }

    #[test]
    fn numeric_exclusive_bounds_become_flags_unless_the_inclusive_bound_is_stricter() {
        let got = rewritten(
            json!({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10, "maximum": 5}),
        );
        assert_eq!(
            got,
            json!({"type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 5})
        );
    }

    #[test]
    fn keywords_3_0_lacks_are_left_out_in_nested_schemas_too() {
        let got = rewritten(json!({
            "type": "object",
            "propertyNames": {"type": "string"},
            "additionalProperties": {"type": "string", "$comment": "c"},
            "properties": {"a": {"type": "array", "items": {"const": 1}, "prefixItems": []}},
        }));
        assert_eq!(
            got,
            json!({
                "type": "object",
                "additionalProperties": {"type": "string"},
                "properties": {"a": {"type": "array", "items": {"enum": [1]}}},
            })
        );
    }

    #[test]
    fn the_document_is_3_0_3_without_3_1_fields_and_its_parameters_are_rewritten_but_not_examples()
    {
        let doc = downgrade(json!({
            "openapi": "3.1.0",
            "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
            "info": {"title": "t", "summary": "s", "license": {"name": "MIT", "identifier": "MIT"}},
            "paths": {"/a": {"get": {"parameters": [
                {"name": "q", "in": "query", "schema": {"type": ["integer", "null"]},
                 "example": {"schema": {"const": 1}}}
            ]}}},
            "webhooks": {},
        }));
        assert_eq!(
            doc,
            json!({
                "openapi": "3.0.3",
                "info": {"title": "t", "license": {"name": "MIT"}},
                "paths": {"/a": {"get": {"parameters": [
                    {"name": "q", "in": "query", "schema": {"type": "integer", "nullable": true},
                     "example": {"schema": {"const": 1}}}
                ]}}},
            })
        );
    }
}
