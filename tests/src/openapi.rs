//! Holds the requests the host sends to GitHub to GitHub's published REST API
//! description: every request must be one of its operations, with only the
//! parameters that operation declares (of the declared types and values, the
//! required ones present) and a JSON body its schema accepts. The description is
//! `tests/data/github-openapi/operations.json`, extracted from GitHub's OpenAPI
//! document by the `extract.py` beside it (the operations the host calls; any
//! other request fails the check). GraphQL requests are outside the REST
//! description and are not checked here.

use crate::github::Recorded;
use leviathan_domain::percent;
use serde::Deserialize;
use serde_json::Value;

/// The path the fake serves the REST API under (as GitHub Enterprise does).
const REST_ROOT: &str = "/api/v3";
/// The fake's GraphQL endpoint.
const GRAPHQL: &str = "/api/graphql";

#[derive(Debug, Deserialize)]
struct Parameter {
    name: String,
    #[serde(rename = "in")]
    location: String,
    required: bool,
    schema: Value,
}

#[derive(Debug, Deserialize)]
struct Body {
    required: bool,
    schema: Value,
}

#[derive(Debug, Deserialize)]
struct Operation {
    method: String,
    path: String,
    operation_id: Option<String>,
    parameters: Vec<Parameter>,
    request_body: Option<Body>,
}

/// A request's path parameters by name (`None` where the escapes are bad).
type PathParams = Vec<(String, Option<String>)>;

/// The operations of GitHub's description the host may call.
#[derive(Debug, Deserialize)]
pub struct Description {
    /// Where the operations were extracted from.
    pub source: String,
    operations: Vec<Operation>,
}

/// The names of a schema's types (`type` as a string or, in OpenAPI 3.1, a list).
fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks `value` against the JSON Schema subset GitHub's description uses
/// (types, properties, required, undeclared properties, items, enum, bounds,
/// oneOf/anyOf/allOf), adding what does not conform to `problems`, each naming
/// where (`body.labels[0]`). Properties the schema does not declare are refused
/// even where JSON Schema would allow them: GitHub ignores them, so sending one
/// is a mistake.
fn validate(schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let alternatives = |key: &str| schema.get(key).and_then(Value::as_array);
    if let Some(all) = alternatives("allOf") {
        for s in all {
            validate(s, value, at, problems);
        }
    }
    for (key, exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(options) = alternatives(key) {
            let fitting = options
                .iter()
                .filter(|s| {
                    let mut p = Vec::new();
                    validate(s, value, at, &mut p);
                    p.is_empty()
                })
                .count();
            if fitting == 0 || (exactly_one && fitting > 1) {
                problems.push(format!(
                    "{at}: fits {fitting} of the {} schemas of `{key}`",
                    options.len()
                ));
            }
        }
    }
    let declared = types(schema);
    let actual = type_name(value);
    let nullable = schema.get("nullable") == Some(&Value::Bool(true));
    let fits = declared.is_empty()
        || declared.contains(&actual)
        || (actual == "integer" && declared.contains(&"number"))
        || (actual == "null" && nullable);
    if !fits {
        problems.push(format!(
            "{at}: a {actual} where the description says {declared:?}"
        ));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        problems.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    match value {
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !fields.contains_key(name) {
                    problems.push(format!("{at}: required `{name}` missing"));
                }
            }
            for (name, v) in fields {
                let field_at = format!("{at}.{name}");
                match properties.and_then(|p| p.get(name)) {
                    Some(s) => validate(s, v, &field_at, problems),
                    None => match schema.get("additionalProperties") {
                        Some(extra @ Value::Object(_)) => validate(extra, v, &field_at, problems),
                        Some(Value::Bool(true)) => {}
                        _ if properties.is_none() => {}
                        _ => problems.push(format!("{field_at}: not in the description")),
                    },
                }
            }
        }
        Value::Array(items) => {
            let count = items.len() as u64;
            let bound = |key| schema.get(key).and_then(Value::as_u64);
            if bound("minItems").is_some_and(|m| count < m)
                || bound("maxItems").is_some_and(|m| count > m)
            {
                problems.push(format!("{at}: {count} items, outside the declared bounds"));
            }
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    validate(item, v, &format!("{at}[{i}]"), problems);
                }
            }
        }
        Value::Number(n) => {
            let n = n.as_f64().unwrap_or(f64::NAN);
            let bound = |key| schema.get(key).and_then(Value::as_f64);
            if bound("minimum").is_some_and(|m| n < m) || bound("maximum").is_some_and(|m| n > m) {
                problems.push(format!("{at}: {n} outside the declared bounds"));
            }
        }
        Value::String(s) => {
            let chars = s.chars().count() as u64;
            let bound = |key| schema.get(key).and_then(Value::as_u64);
            if bound("minLength").is_some_and(|m| chars < m)
                || bound("maxLength").is_some_and(|m| chars > m)
            {
                problems.push(format!(
                    "{at}: {chars} characters, outside the declared bounds"
                ));
            }
        }
        _ => {}
    }
}

/// A path or query parameter's text as the JSON value its schema describes.
fn parameter_value(schema: &Value, text: &str) -> Value {
    let declared = types(schema);
    if declared.contains(&"integer") || declared.contains(&"number") {
        if let Ok(n) = text.parse::<i64>() {
            return Value::from(n);
        }
        if let Ok(n) = text.parse::<f64>() {
            return Value::from(n);
        }
    }
    if declared.contains(&"boolean") && matches!(text, "true" | "false") {
        return Value::Bool(text == "true");
    }
    Value::String(text.to_string())
}

impl Description {
    /// The description the repository holds.
    pub fn load() -> Description {
        let file = crate::root().join("tests/data/github-openapi/operations.json");
        let text = std::fs::read_to_string(&file).expect("the extracted description");
        serde_json::from_str(&text).expect("operations.json parses")
    }

    /// The operation `method` + `path` (below the API root, without the query)
    /// is, with its path parameters' values (`None` where the escapes are bad).
    fn operation(&self, method: &str, path: &str) -> Option<(&Operation, PathParams)> {
        let actual: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        self.operations.iter().find_map(|op| {
            if op.method != method {
                return None;
            }
            let template: Vec<&str> = op.path.trim_start_matches('/').split('/').collect();
            if template.len() != actual.len() {
                return None;
            }
            let mut params = Vec::new();
            for (t, a) in template.iter().zip(&actual) {
                match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                    Some(name) if !a.is_empty() => {
                        params.push((name.to_string(), percent::decode(a)));
                    }
                    Some(_) => return None,
                    None if t == a => {}
                    None => return None,
                }
            }
            Some((op, params))
        })
    }

    /// Checks one REST request (`path_and_query` below the API root); returns the
    /// operation's id, or every way the request departs from the description.
    pub fn check(
        &self,
        method: &str,
        path_and_query: &str,
        body: &Value,
    ) -> Result<String, Vec<String>> {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let Some((op, path_params)) = self.operation(method, path) else {
            return Err(vec![format!(
                "{method} {path}: no such operation in the description ({})",
                self.source
            )]);
        };
        let id = op.operation_id.clone().unwrap_or_else(|| op.path.clone());
        let mut problems = Vec::new();
        let declared = |name: &str, location: &str| {
            op.parameters
                .iter()
                .find(|p| p.name == name && p.location == location)
        };
        for (name, value) in &path_params {
            match (declared(name, "path"), value) {
                (_, None) => problems.push(format!("{name}: bad percent-encoding")),
                (Some(p), Some(value)) => validate(
                    &p.schema,
                    &parameter_value(&p.schema, value),
                    name,
                    &mut problems,
                ),
                (None, Some(_)) => {}
            }
        }
        let mut seen: Vec<String> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(name), Some(value)) = (percent::decode(name), percent::decode(value)) else {
                problems.push(format!("query `{pair}`: bad percent-encoding"));
                continue;
            };
            if seen.contains(&name) {
                problems.push(format!("query `{name}` sent twice"));
            }
            match declared(&name, "query") {
                Some(p) => validate(
                    &p.schema,
                    &parameter_value(&p.schema, &value),
                    &format!("query `{name}`"),
                    &mut problems,
                ),
                None => problems.push(format!("query `{name}` is not a parameter of {id}")),
            }
            seen.push(name);
        }
        for p in op.parameters.iter().filter(|p| p.required) {
            let present = match p.location.as_str() {
                "query" => seen.contains(&p.name),
                "path" => path_params.iter().any(|(n, _)| *n == p.name),
                _ => true,
            };
            if !present {
                problems.push(format!(
                    "required {} parameter `{}` missing",
                    p.location, p.name
                ));
            }
        }
        match (&op.request_body, body) {
            (None, Value::Null) => {}
            (None, _) => problems.push(format!("a body where {id} takes none")),
            (Some(b), Value::Null) if b.required => {
                problems.push(format!("no body where {id} requires one"))
            }
            (Some(_), Value::Null) => {}
            (Some(b), value) => validate(&b.schema, value, "body", &mut problems),
        }
        if problems.is_empty() {
            Ok(id)
        } else {
            Err(problems
                .into_iter()
                .map(|p| format!("{method} {path_and_query}: {p}"))
                .collect())
        }
    }

    /// Checks every recorded REST request; returns the operations they were, in
    /// order, or panics naming every departure.
    pub fn assert_conforms(&self, requests: &[Recorded]) -> Vec<String> {
        let mut operations = Vec::new();
        let mut problems = Vec::new();
        for r in requests {
            if r.path.starts_with(GRAPHQL) {
                continue;
            }
            let Some(below) = r.path.strip_prefix(REST_ROOT) else {
                problems.push(format!("{}: not under {REST_ROOT}", r.line()));
                continue;
            };
            match self.check(&r.method, below, &r.body) {
                Ok(id) => operations.push(id),
                Err(mut p) => problems.append(&mut p),
            }
        }
        assert!(
            problems.is_empty(),
            "requests that depart from GitHub's description:\n{}",
            problems.join("\n")
        );
        operations
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conforming_requests_pass_and_every_kind_of_departure_is_named() {
        let d = Description::load();
        assert!(d.source.contains("api.github.com"), "{}", d.source);
        let ok = |method, path, body: Value| d.check(method, path, &body).unwrap();
        assert_eq!(
            ok(
                "GET",
                "/repos/acme/w/pulls?state=open&base=main&per_page=100&page=2",
                Value::Null
            ),
            "pulls/list"
        );
        ok("GET", "/repos/acme/w/pulls/4", Value::Null);
        ok(
            "POST",
            "/repos/acme/w/pulls",
            json!({"title": "t", "head": "b", "base": "main", "body": "x", "draft": false}),
        );
        ok(
            "POST",
            "/repos/acme/w/issues/4/labels",
            json!({"labels": ["leviathan"]}),
        );
        ok("POST", "/app/installations/7/access_tokens", Value::Null);
        ok("GET", "/users/leviathan%5Bbot%5D", Value::Null);
        ok(
            "GET",
            "/installation/repositories?per_page=100",
            Value::Null,
        );

        let refused = |method, path, body: Value| {
            let problems = d.check(method, path, &body).unwrap_err();
            assert_eq!(problems.len(), 1, "{problems:?}");
            problems[0].clone()
        };
        for (method, path, body, says) in [
            (
                "GET",
                "/repos/acme/w/pullz",
                Value::Null,
                "no such operation",
            ),
            (
                "DELETE",
                "/repos/acme/w/pulls/4",
                Value::Null,
                "no such operation",
            ),
            (
                "GET",
                "/repos/acme/w/pulls?status=open",
                Value::Null,
                "`status` is not a parameter",
            ),
            (
                "GET",
                "/repos/acme/w/pulls?state=opened",
                Value::Null,
                "is not one of",
            ),
            (
                "GET",
                "/repos/acme/w/pulls?per_page=x",
                Value::Null,
                "a string where",
            ),
            (
                "GET",
                "/repos/acme/w/pulls?page=1&page=2",
                Value::Null,
                "sent twice",
            ),
            (
                "GET",
                "/repos/acme/w/pulls?base=m%zz",
                Value::Null,
                "bad percent-encoding",
            ),
            ("GET", "/users/bot%5", Value::Null, "bad percent-encoding"),
            (
                "GET",
                "/repos/acme/w/pulls/four",
                Value::Null,
                "pull_number: a string",
            ),
            (
                "POST",
                "/repos/acme/w/pulls",
                json!({"title": "t", "base": "main"}),
                "`head` missing",
            ),
            (
                "POST",
                "/repos/acme/w/pulls",
                json!({"title": "t", "head": "b", "base": "main", "draft": "no"}),
                "body.draft: a string",
            ),
            (
                "POST",
                "/repos/acme/w/pulls",
                json!({"title": "t", "head": "b", "base": "main", "labels": ["x"]}),
                "body.labels: not in the description",
            ),
            (
                "POST",
                "/repos/acme/w/issues/4/labels",
                json!({"labels": []}),
                "fits 0 of the",
            ),
            ("POST", "/repos/acme/w/pulls", Value::Null, "requires one"),
            ("GET", "/app", json!({"x": 1}), "takes none"),
        ] {
            let problem = refused(method, path, body);
            assert!(problem.contains(says), "{method} {path}: {problem}");
        }
    }
}
