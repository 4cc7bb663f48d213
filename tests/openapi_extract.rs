//! The extractor: reads Merge's OpenAPI specifications and checks (or rewrites) the committed
//! extract `src/merge/published.json` that the view catalogue and the fake Merge are built from.
//!
//! The specs are not part of the repository, so this test is `#[ignore]`d: run it by hand with
//!
//! ```sh
//! MERGE_OPENAPI_DIR=/path/to/merge-openapi cargo test --test openapi_extract -- --ignored
//! MERGE_OPENAPI_DIR=/path/to/merge-openapi MERGE_OPENAPI_WRITE=1 cargo test --test openapi_extract -- --ignored
//! ```
//!
//! The directory holds `docs-site-2026/*.yaml` (Merge's docs site, OpenAPI 3.1: the newest
//! field lists) and `sdk-mock-2025-07/*_v3.yml` (Merge's Python SDK, OpenAPI 3.0: it names
//! the model each relation expands to). Run without the variable, the test fails: it never
//! passes without having compared anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use merge_sync::merge::published::{Published, PublishedField, PublishedPath, PublishedSchema};
// YAML's own value type keeps the spec's property order (Merge's field order).
use yaml_serde::Value;

const COMMITTED: &str = "src/merge/published.json";

#[test]
#[ignore = "reads Merge's OpenAPI specs: set MERGE_OPENAPI_DIR and run with --ignored"]
fn committed_extract_matches_merge_openapi_specs() {
    let dir = std::env::var_os("MERGE_OPENAPI_DIR")
        .map(PathBuf::from)
        .expect(
            "MERGE_OPENAPI_DIR is not set: point it at the directory holding docs-site-2026/ and \
         sdk-mock-2025-07/",
        );
    let extracted = extract(&dir).to_committed_json();
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
    if std::env::var_os("MERGE_OPENAPI_WRITE").is_some() {
        std::fs::write(&committed_path, &extracted).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap();
    assert!(
        committed == extracted,
        "{COMMITTED} differs from what the specs in {} give; rerun with MERGE_OPENAPI_WRITE=1 \
         and review the diff",
        dir.display()
    );
}

fn spec_files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| {
            panic!(
                "MERGE_OPENAPI_DIR: cannot read {}: {e} (expected docs-site-2026/ and \
                 sdk-mock-2025-07/ inside it)",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "MERGE_OPENAPI_DIR: no *{suffix} files in {}",
        dir.display()
    );
    files
}

fn load(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    // A few bounds (`minimum: -9223372036854776000`) are beyond any integer the YAML parser
    // holds; nothing here reads bounds, so they are dropped first.
    let text: String = text
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !((l.starts_with("minimum: ") || l.starts_with("maximum: ")) && l.len() > 28)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn extract(dir: &Path) -> Published {
    let docs = spec_files(&dir.join("docs-site-2026"), ".yaml");
    let sdk = spec_files(&dir.join("sdk-mock-2025-07"), "_v3.yml");

    let sdk: Vec<Value> = sdk.iter().map(|f| load(f)).collect();
    let docs: Vec<Value> = docs.iter().map(|f| load(f)).collect();

    // (category, schema, field) → the model the SDK spec says it expands to.
    let mut expands: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for spec in &sdk {
        for (category, name) in listed_schemas(spec) {
            let schema = &spec["components"]["schemas"][&name];
            for (field, prop) in properties(schema) {
                if let Some(to) = prop["x-merge-expands-to"].as_str() {
                    expands.insert((category.clone(), name.clone(), field), to.to_string());
                }
            }
        }
    }

    // The docs site is the newer edition: where both publish a path or a schema, its answer
    // wins; the SDK's fills in what the docs site no longer lists (`/hris/v1/teams`).
    let mut paths: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut schemas: BTreeMap<(String, String), PublishedSchema> = BTreeMap::new();
    for spec in sdk.iter().chain(&docs) {
        for (path, lists) in get_paths(spec) {
            paths.insert(path, lists);
        }
        let all = &spec["components"]["schemas"];
        for (category, name) in listed_schemas(spec) {
            let fields = properties(&all[&name])
                .map(|(field, prop)| {
                    let shape = shape(prop, all);
                    let key = (category.clone(), name.clone(), field.clone());
                    PublishedField {
                        name: field,
                        json_type: shape.json_type,
                        format: shape.format,
                        nullable: shape.nullable,
                        items: shape.items.as_ref().map(|i| i.json_type.clone()),
                        items_format: shape.items.and_then(|i| i.format),
                        expands_to: expands.get(&key).cloned(),
                    }
                })
                .collect();
            schemas.insert(
                (category.clone(), name.clone()),
                PublishedSchema {
                    category,
                    name,
                    fields,
                },
            );
        }
    }

    Published {
        sources: vec![
            "Merge docs-site OpenAPI 3.1 specs (2026): paths and fields".to_string(),
            "Merge Python SDK OpenAPI 3.0.3 specs (2025-07): paths and relation targets"
                .to_string(),
        ],
        paths: paths
            .into_iter()
            .map(|(path, lists)| PublishedPath { path, lists })
            .collect(),
        schemas: schemas.into_values().collect(),
    }
}

/// Every `GET` path below `/api`, with the item schema of list paths (`Paginated{X}List`
/// responses).
fn get_paths(spec: &Value) -> Vec<(String, Option<String>)> {
    // Most specs write full paths under a server URL ending in `/api`; chat's puts
    // `/api/chat/v1` in the server URL and writes paths below it; the SDK's do both.
    let server = spec["servers"][0]["url"].as_str().unwrap_or_default();
    let after_scheme = server.split_once("://").map_or(server, |(_, rest)| rest);
    let server_path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    let prefix = server_path.strip_prefix("/api").unwrap_or(server_path);
    let mut out = Vec::new();
    for (path, ops) in spec["paths"].as_mapping().expect("spec has paths") {
        let path = path.as_str().expect("paths are strings");
        let path = if path.starts_with(prefix) {
            path.to_string()
        } else {
            format!("{prefix}{path}")
        };
        let Some(get) = ops.get("get") else { continue };
        let response = ref_name(&get["responses"]["200"]["content"]["application/json"]["schema"]);
        let lists = response.and_then(|r| {
            let page = &spec["components"]["schemas"][r];
            r.starts_with("Paginated")
                .then(|| ref_name(&page["properties"]["results"]["items"]))
                .flatten()
                .map(str::to_string)
        });
        out.push((path, lists));
    }
    out
}

/// (category, schema) of every list path's items.
fn listed_schemas(spec: &Value) -> BTreeSet<(String, String)> {
    get_paths(spec)
        .into_iter()
        .filter_map(|(path, lists)| {
            let category = path.trim_start_matches('/').split('/').next()?.to_string();
            Some((category, lists?))
        })
        .collect()
}

fn properties(schema: &Value) -> impl Iterator<Item = (String, &Value)> {
    schema["properties"]
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v)))
}

fn ref_name(v: &Value) -> Option<&str> {
    v["$ref"].as_str()?.rsplit('/').next()
}

struct Shape {
    json_type: String,
    format: Option<String>,
    nullable: bool,
    items: Option<Box<Shape>>,
}

/// A property's JSON type, following `$ref`s and `oneOf`s: `[uuid, $ref Model]` (an
/// expandable relation) is a uuid string, `[$ref Enum, string]` a string, `null`
/// alternatives (3.1 type lists, `oneOf` null, 3.0 `nullable`) make it nullable.
fn shape(prop: &Value, schemas: &Value) -> Shape {
    let mut nullable = prop["nullable"].as_bool().unwrap_or(false);
    if let Some(name) = ref_name(prop) {
        let target = &schemas[name];
        if target.get("enum").is_some() {
            return Shape {
                json_type: "string".into(),
                format: None,
                nullable,
                items: None,
            };
        }
        let mut s = shape(target, schemas);
        s.nullable |= nullable;
        return s;
    }
    if let Some(alts) = prop["oneOf"].as_sequence().or(prop["anyOf"].as_sequence()) {
        let is_null = |a: &Value| a["type"] == "null";
        nullable |= alts.iter().any(is_null);
        let rest: Vec<&Value> = alts.iter().filter(|a| !is_null(a)).collect();
        let uuid = rest
            .iter()
            .find(|a| a["type"] == "string" && a["format"] == "uuid");
        let chosen = uuid
            .or_else(|| rest.iter().find(|a| ref_name(a).is_some()))
            .or(rest.first())
            .copied();
        let mut s = match chosen {
            Some(a) => shape(a, schemas),
            None => Shape {
                json_type: "object".into(),
                format: None,
                nullable: true,
                items: None,
            },
        };
        s.nullable |= nullable;
        return s;
    }
    let json_type = match &prop["type"] {
        Value::String(t) => t.clone(),
        Value::Sequence(ts) => {
            nullable |= ts.iter().any(|t| t == "null");
            ts.iter()
                .filter_map(Value::as_str)
                .find(|t| *t != "null")
                .unwrap_or("object")
                .to_string()
        }
        // No type: free-form (`additionalProperties`, or nothing at all).
        _ => "object".to_string(),
    };
    let items = (json_type == "array").then(|| Box::new(shape(&prop["items"], schemas)));
    Shape {
        json_type,
        format: prop["format"].as_str().map(str::to_string),
        nullable,
        items,
    }
}
