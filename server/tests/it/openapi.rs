//! The OpenAPI document against the server's real traffic: every `$ref` resolves, and the bodies
//! the server takes and gives fit the schemas derived from the protocol types.

use axum::http::{Method, StatusCode};
use musketeer_protocol::paths;
use musketeer_server::dashboard::openapi::{QUERIES, ROUTES, Success};
use serde_json::{Value, json};

use crate::support::{Api, Project, platform};

/// Why `value` does not fit `schema` (resolved in `document`), or None if it fits. Covers what
/// utoipa derives: `$ref`, `oneOf`/`anyOf`/`allOf`, `type` (one or a list), `enum`, object
/// `properties`/`required`/`additionalProperties` and array `items`.
fn misfit(document: &Value, schema: &Value, value: &Value, at: &str) -> Option<String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.strip_prefix("#/components/schemas/")?;
        let target = &document["components"]["schemas"][name];
        if target.is_null() {
            return Some(format!("{at}: {reference} is not in the components"));
        }
        return misfit(document, target, value, at);
    }
    for (key, any) in [("oneOf", true), ("anyOf", true), ("allOf", false)] {
        if let Some(branches) = schema[key].as_array() {
            let failures: Vec<String> = branches
                .iter()
                .filter_map(|b| misfit(document, b, value, at))
                .collect();
            let fits = if any {
                failures.len() < branches.len()
            } else {
                failures.is_empty()
            };
            if !fits {
                return Some(format!("{at}: no {key} branch fits: {failures:?}"));
            }
        }
    }
    if let Some(types) = match &schema["type"] {
        Value::String(one) => Some(vec![one.as_str()]),
        Value::Array(many) => Some(many.iter().filter_map(Value::as_str).collect()),
        _ => None,
    } {
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let accepted =
            types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        if !accepted {
            return Some(format!("{at}: {actual} {value} where {types:?}"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Some(format!("{at}: {value} not in {allowed:?}"));
    }
    if let (Some(object), Some(properties)) = (value.as_object(), schema["properties"].as_object())
    {
        if let Some(missing) = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|key| !object.contains_key(*key))
        {
            return Some(format!("{at}: required {missing} missing from {value}"));
        }
        for (key, field) in object {
            match properties.get(key) {
                Some(property) => {
                    if let Some(why) = misfit(document, property, field, &format!("{at}.{key}")) {
                        return Some(why);
                    }
                }
                None if schema["additionalProperties"] == json!(false)
                    || schema["additionalProperties"].is_null() =>
                {
                    return Some(format!("{at}: {key} is not in the schema"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(schema)) = (value.as_array(), schema.get("items")) {
        for (index, item) in items.iter().enumerate() {
            if let Some(why) = misfit(document, schema, item, &format!("{at}[{index}]")) {
                return Some(why);
            }
        }
    }
    None
}

/// Assert that `body` fits the document's schema for the request (`status` None) or the answer
/// with `status` of `method pattern`.
#[track_caller]
fn assert_fits(document: &Value, method: &str, pattern: &str, status: Option<u16>, body: &Value) {
    let operation = &document["paths"][pattern][method.to_lowercase()];
    let content = match status {
        None => &operation["requestBody"]["content"],
        Some(status) => {
            let responses = &operation["responses"];
            match responses.get(status.to_string()) {
                Some(response) => &response["content"],
                None => &responses["default"]["content"],
            }
        }
    };
    let schema = &content["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {pattern} {status:?}: no schema"
    );
    if let Some(why) = misfit(document, schema, body, "body") {
        panic!("{method} {pattern} {status:?}: {why}\nschema {schema}");
    }
}

#[tokio::test]
async fn every_schema_reference_resolves_and_every_json_body_has_a_schema() {
    let project = Project::new();
    let api = Api::new(&project);
    let (status, document) = api.get(paths::OPENAPI, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = document.to_string();
    let references: Vec<&str> = text
        .split("\"$ref\":\"#/components/schemas/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(references.len() > ROUTES.len(), "{text}");
    for name in references {
        assert!(
            document["components"]["schemas"][name].is_object(),
            "{name} is referenced but not defined"
        );
    }
    for route in ROUTES {
        let operation = &document["paths"][route.path][route.method.to_lowercase()];
        let success = &operation["responses"][route.status.to_string()];
        match route.response {
            Success::Body(_) => assert!(
                success["content"]["application/json"]["schema"]["$ref"].is_string(),
                "{route:?}"
            ),
            Success::Media(media) => assert!(success["content"][media].is_object(), "{route:?}"),
            Success::MediaOrBody(media, _) => {
                assert!(
                    success["content"]["application/json"]["schema"]["$ref"].is_string(),
                    "{route:?}"
                );
                for media in media {
                    assert!(success["content"][media].is_object(), "{route:?}");
                }
            }
            Success::Empty => assert!(success["content"].is_null(), "{route:?}"),
        }
        assert_eq!(
            operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].is_string(),
            route.request.is_some(),
            "{route:?}"
        );
    }
}

#[tokio::test]
async fn real_requests_and_answers_fit_the_derived_schemas() {
    let project = Project::new();
    let api = Api::new(&project);
    let (_, document) = api.get(paths::OPENAPI, None).await;
    let mut exchanged = 0;
    let mut post = async |pattern: &str, path: &str, token: Option<&str>, body: Value| {
        assert_fits(&document, "POST", pattern, None, &body);
        let (status, answer) = api.post(path, token, body).await;
        assert_fits(&document, "POST", pattern, Some(status.as_u16()), &answer);
        exchanged += 1;
        answer
    };
    let publish = project.publish_body("demo", "1.0.0", b"m");
    post(paths::APPS, paths::APPS, Some(&project.publisher), publish).await;
    let submit =
        json!({"app": "demo", "inputs": [1, {"stock": "2330"}], "replication": {"min_quorum": 1}});
    let batch = post(
        paths::BATCHES,
        paths::BATCHES,
        Some(&project.researcher),
        submit,
    )
    .await;
    let batch_id = batch["batch_id"].as_u64().unwrap();
    let register = json!({"name": "h1", "platform": platform()});
    let host = post(paths::HOSTS_REGISTER, paths::HOSTS_REGISTER, None, register).await;
    let host_token = host["host_token"].as_str().unwrap().to_owned();
    let fetch = json!({"free_slots": 2, "platform": platform()});
    let fetched = post(
        paths::WORK_FETCH,
        paths::WORK_FETCH,
        Some(&host_token),
        fetch,
    )
    .await;
    let assignments = fetched["assignments"].as_array().unwrap();
    assert_eq!(assignments.len(), 2, "{fetched}");
    let report = json!({"results": [
        {"result_id": assignments[0]["result_id"], "outcome": {"status": "success", "output": "eyJvayI6dHJ1ZX0=", "fuel_consumed": 7, "wall_ms": 1}},
        {"result_id": assignments[1]["result_id"], "outcome": {"status": "error", "kind": "trap", "message": "unreachable"}},
    ]});
    let reported = post(
        paths::WORK_REPORT,
        paths::WORK_REPORT,
        Some(&host_token),
        report,
    )
    .await;
    assert_eq!(
        reported["acks"].as_array().map(Vec::len),
        Some(2),
        "{reported}"
    );
    let token = json!({"role": "researcher", "apps": ["demo"], "label": "schema check"});
    let created = post(paths::TOKENS, paths::TOKENS, Some(&project.admin), token).await;
    let ban = json!({"reason": "testing the schema"});
    let host_ban = paths::HOST_BAN.replace("{id}", "1");
    post(paths::HOST_BAN, &host_ban, Some(&project.admin), ban).await;
    // An error answer fits ApiErrorBody.
    let wrong = json!({"app": "nope", "inputs": [1]});
    post(
        paths::BATCHES,
        paths::BATCHES,
        Some(&project.researcher),
        wrong,
    )
    .await;

    // Every JSON GET, with ids that exist.
    let first_unit = {
        let units = paths::BATCH_UNITS.replace("{id}", &batch_id.to_string());
        let (_, list) = api.get(&units, Some(&project.admin)).await;
        list["units"][0]["id"].clone()
    };
    for route in ROUTES.iter().filter(|r| r.method == "GET") {
        let Success::Body(_) = route.response else {
            continue;
        };
        let id = match route.path {
            paths::UNIT => first_unit.to_string(),
            paths::HOST => "1".to_owned(),
            _ => batch_id.to_string(),
        };
        let path = route.path.replace("{id}", &id);
        let (status, answer) = api
            .call(Method::GET, &path, Some(&project.admin), None)
            .await;
        assert_eq!(status.as_u16(), route.status, "{path}: {answer}");
        assert_fits(&document, "GET", route.path, Some(status.as_u16()), &answer);
        exchanged += 1;
    }
    let revoke = paths::TOKEN.replace("{id}", &created["id"].to_string());
    let (status, _) = api
        .call(Method::DELETE, &revoke, Some(&project.admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(exchanged >= 20, "{exchanged} bodies checked");
    // The check itself rejects what does not fit: an unknown field, a wrong type, a bad enum.
    let stats = json!({"$ref": "#/components/schemas/Stats"});
    let (_, real) = api.get(paths::STATS, Some(&project.admin)).await;
    assert_eq!(misfit(&document, &stats, &real, "stats"), None);
    let mut unknown = real.clone();
    unknown["surprise"] = json!(1);
    let mut mistyped = real.clone();
    mistyped["queue_depth"] = json!("many");
    let mut missing = real.clone();
    missing.as_object_mut().map(|o| o.remove("hosts_online"));
    for wrong in [unknown, mistyped, missing] {
        assert!(
            misfit(&document, &stats, &wrong, "stats").is_some(),
            "{wrong}"
        );
    }
    let state = json!({"$ref": "#/components/schemas/UnitState"});
    assert_eq!(misfit(&document, &state, &json!("done"), "state"), None);
    assert!(misfit(&document, &state, &json!("lost"), "state").is_some());
}

#[tokio::test]
async fn query_parameters_come_from_the_types_the_handlers_parse() {
    let project = Project::new();
    let api = Api::new(&project);
    let (_, document) = api.get(paths::OPENAPI, None).await;
    for (method, path, _) in QUERIES {
        assert!(
            ROUTES
                .iter()
                .any(|r| r.method == *method && r.path == *path),
            "{method} {path} has a query but no route"
        );
    }
    let query = |method: &str, path: &str| -> Vec<(String, Value)> {
        document["paths"][path][method]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .map(|p| {
                // Every query parameter is optional.
                assert_ne!(p["required"], json!(true), "{p}");
                (p["name"].as_str().unwrap().to_owned(), p["schema"].clone())
            })
            .collect()
    };
    let names = |params: &[(String, Value)]| -> Vec<String> {
        params.iter().map(|(name, _)| name.clone()).collect()
    };
    assert_eq!(names(&query("get", paths::BATCH)), ["wait_ms", "after"]);
    assert_eq!(
        names(&query("get", paths::BATCH_UNITS)),
        ["state", "after", "limit"]
    );
    assert_eq!(
        names(&query("get", paths::FAILURES)),
        ["batch", "state", "after", "limit"]
    );
    let results = query("get", paths::BATCH_RESULTS);
    assert_eq!(names(&results), ["format", "after", "wait_ms"]);
    let format = &results[0].1;
    assert_eq!(misfit(&document, format, &json!("csv"), "format"), None);
    assert!(misfit(&document, format, &json!("xml"), "format").is_some());
    assert!(query("post", paths::BATCHES).is_empty());

    // The documented parameters are the ones the handlers parse: a bad value is refused.
    api.publish(&project, "demo", "1.0.0", b"m").await;
    let batch = api
        .submit(&project.researcher, "demo", json!([1]), json!({}))
        .await;
    for (path, query, expected) in [
        (paths::BATCH, "wait_ms=soon", StatusCode::BAD_REQUEST),
        (paths::BATCH, "wait_ms=1&after=x", StatusCode::OK),
        (paths::BATCH_RESULTS, "format=xml", StatusCode::BAD_REQUEST),
        (paths::BATCH_RESULTS, "format=csv", StatusCode::OK),
        (paths::BATCH_UNITS, "state=lost", StatusCode::BAD_REQUEST),
        (paths::BATCH_UNITS, "limit=-1", StatusCode::BAD_REQUEST),
        (paths::BATCH_UNITS, "state=queued&limit=5", StatusCode::OK),
    ] {
        let uri = format!("{}?{query}", path.replace("{id}", &batch.to_string()));
        let (status, body, _) = api
            .send(Method::GET, &uri, Some(&project.researcher), None, None)
            .await;
        assert_eq!(
            status,
            expected,
            "{uri}: {}",
            String::from_utf8_lossy(&body)
        );
    }
}
