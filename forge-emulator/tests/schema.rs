//! The emulator's responses match the Gitea/Forgejo Swagger 2.0 subset in
//! `tests/data/gitea-v1-subset.swagger.json` (a copy of `shared/forge-api/`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use forge_emulator::{EmulatorConfig, EmulatorHandle, ForgeRepo};
use serde_json::{Value, json};

const TOKEN: &str = "schema-test-token";

fn swagger() -> Value {
    let text = include_str!("data/gitea-v1-subset.swagger.json");
    serde_json::from_str(text).expect("the swagger subset is valid JSON")
}

/// Validates `value` against a Swagger 2.0 schema, appending problems to `errors`.
/// Like the README says, any field may be missing or `null`; unknown fields are
/// reported so a typo in the emulator cannot slip through.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference
            .strip_prefix("#/definitions/")
            .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
        let target = &doc["definitions"][name];
        assert!(!target.is_null(), "missing definition {name}");
        return validate(doc, target, value, at, errors);
    }
    if value.is_null() {
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str);
    match ty {
        Some("object") | None if schema.get("properties").is_some() => {
            let Some(object) = value.as_object() else {
                errors.push(format!("{at}: expected object, got {value}"));
                return;
            };
            let properties = schema["properties"].as_object().expect("properties map");
            for (key, field) in object {
                match properties.get(key) {
                    Some(field_schema) => {
                        validate(doc, field_schema, field, &format!("{at}.{key}"), errors)
                    }
                    None => errors.push(format!("{at}: unknown field {key:?}")),
                }
            }
        }
        Some("object") => {
            if !value.is_object() {
                errors.push(format!("{at}: expected object, got {value}"));
            }
        }
        Some("array") => {
            let Some(items) = value.as_array() else {
                errors.push(format!("{at}: expected array, got {value}"));
                return;
            };
            for (i, item) in items.iter().enumerate() {
                validate(doc, &schema["items"], item, &format!("{at}[{i}]"), errors);
            }
        }
        Some("string") => {
            let Some(text) = value.as_str() else {
                errors.push(format!("{at}: expected string, got {value}"));
                return;
            };
            if schema.get("format").and_then(Value::as_str) == Some("date-time")
                && humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).is_err()
                && humantime::parse_rfc3339(text).is_err()
            {
                errors.push(format!("{at}: {text:?} is not an RFC 3339 date-time"));
            }
            if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
                && !allowed.contains(value)
            {
                errors.push(format!("{at}: {text:?} is not one of {allowed:?}"));
            }
        }
        Some("integer") => {
            if !(value.is_i64() || value.is_u64()) {
                errors.push(format!("{at}: expected integer, got {value}"));
            }
        }
        Some("number") => {
            if !value.is_number() {
                errors.push(format!("{at}: expected number, got {value}"));
            }
        }
        Some("boolean") => {
            if !value.is_boolean() {
                errors.push(format!("{at}: expected boolean, got {value}"));
            }
        }
        other => panic!("{at}: unsupported schema type {other:?} in {schema}"),
    }
}

/// The response schema of `method path_template` for `status`.
fn response_schema(doc: &Value, template: &str, method: &str, status: u16) -> Value {
    let response = &doc["paths"][template][method]["responses"][status.to_string()];
    assert!(
        !response.is_null(),
        "no {status} response for {method} {template} in the swagger subset"
    );
    let response = match response.get("$ref").and_then(Value::as_str) {
        Some(r) => &doc["responses"][r.strip_prefix("#/responses/").expect("response ref")],
        None => response,
    };
    response.get("schema").cloned().unwrap_or(Value::Null)
}

fn check(doc: &Value, template: &str, method: &str, status: u16, body: &Value) {
    let schema = response_schema(doc, template, method, status);
    assert!(!schema.is_null(), "{method} {template} has no schema");
    let mut errors = Vec::new();
    validate(doc, &schema, body, "$", &mut errors);
    assert!(
        errors.is_empty(),
        "{method} {template} ({status}) does not match the swagger schema:\n{}\nbody: {body:#}",
        errors.join("\n")
    );
}

async fn start() -> (tempfile::TempDir, EmulatorHandle) {
    let dir = tempfile::tempdir().unwrap();
    let repo = ForgeRepo::open_or_init(&dir.path().join("billing.git")).unwrap();
    let config = EmulatorConfig::new("lhumina_code/hero_onboarding_billing", Some(TOKEN)).unwrap();
    let handle = EmulatorHandle::start(config, repo).await.unwrap();
    handle
        .commit(
            &[
                (
                    "nodes/node-a/usage_2026-11-27-10.otoml".into(),
                    Some(b"[[records]]\nidempotency_key = \"a-1\"\n".to_vec()),
                ),
                (
                    "nodes/node-b/usage_2026-11-27-10.otoml".into(),
                    Some(b"x".to_vec()),
                ),
                ("README.md".into(), Some(b"billing".to_vec())),
            ],
            "seed",
        )
        .unwrap();
    handle
        .commit(
            &[(
                "nodes/node-a/usage_2026-11-27-11.otoml".into(),
                Some(b"y".to_vec()),
            )],
            "second hour",
        )
        .unwrap();
    (dir, handle)
}

struct Client {
    http: reqwest::Client,
    api: String,
}

impl Client {
    async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.api))
            .header("Authorization", format!("token {TOKEN}"))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json::<Value>().await.unwrap();
        (status, headers, body)
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.api))
            .header("Authorization", format!("token {TOKEN}"))
            .json(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }
}

#[tokio::test]
async fn every_served_response_matches_the_swagger_schemas() {
    let doc = swagger();
    let (_dir, emulator) = start().await;
    let c = Client {
        http: reqwest::Client::new(),
        api: format!("{}/api/v1", emulator.base_url()),
    };
    let repo = "/repos/lhumina_code/hero_onboarding_billing";

    let (status, _, body) = c.get("/user").await;
    assert_eq!(status, 200);
    check(&doc, "/user", "get", 200, &body);

    let (status, _, body) = c.get(repo).await;
    assert_eq!(status, 200);
    assert_eq!(body["empty"], json!(false));
    check(&doc, "/repos/{owner}/{repo}", "get", 200, &body);

    let (status, _, branch) = c.get(&format!("{repo}/branches/main")).await;
    assert_eq!(status, 200);
    check(
        &doc,
        "/repos/{owner}/{repo}/branches/{branch}",
        "get",
        200,
        &branch,
    );
    let head = branch["commit"]["id"].as_str().unwrap().to_string();

    let (status, headers, body) = c
        .get(&format!(
            "{repo}/commits?sha=main&path=nodes/node-a&limit=1"
        ))
        .await;
    assert_eq!(status, 200);
    check(&doc, "/repos/{owner}/{repo}/commits", "get", 200, &body);
    assert_eq!(
        body.as_array().unwrap().len(),
        2,
        "both commits touch nodes/node-a"
    );
    assert_eq!(body[0]["sha"], json!(head));
    assert_eq!(headers["x-total"], "2");
    let (_, _, body) = c
        .get(&format!("{repo}/commits?sha=main&path=nodes/node-b"))
        .await;
    assert_eq!(
        body.as_array().unwrap().len(),
        1,
        "only the seed touches node-b"
    );

    let (status, _, body) = c.get(&format!("{repo}/git/commits/{head}")).await;
    assert_eq!(status, 200);
    check(
        &doc,
        "/repos/{owner}/{repo}/git/commits/{sha}",
        "get",
        200,
        &body,
    );

    let trees = "/repos/{owner}/{repo}/git/trees/{sha}";
    let (status, _, root) = c.get(&format!("{repo}/git/trees/{head}")).await;
    assert_eq!(status, 200);
    check(&doc, trees, "get", 200, &root);
    let nodes = root["tree"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "nodes")
        .expect("nodes entry")
        .clone();
    assert_eq!(nodes["type"], "tree");
    let nodes_sha = nodes["sha"].as_str().unwrap();
    let (_, headers, page1) = c
        .get(&format!("{repo}/git/trees/{nodes_sha}?per_page=1&page=1"))
        .await;
    check(&doc, trees, "get", 200, &page1);
    assert_eq!(page1["truncated"], json!(true));
    assert_eq!(page1["total_count"], json!(2));
    assert_eq!(headers["x-total-count"], "2");
    // As the server code does (shared/forge-api/README.md): `truncated` on every
    // page of a listing longer than one page, the last one included...
    let (_, _, page2) = c
        .get(&format!("{repo}/git/trees/{nodes_sha}?per_page=1&page=2"))
        .await;
    assert_eq!(page2["truncated"], json!(true));
    assert_eq!(page2["tree"][0]["path"], "node-b");
    // ...and a page past the end is not truncated and has no tree.
    let (status, _, page3) = c
        .get(&format!("{repo}/git/trees/{nodes_sha}?per_page=1&page=3"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(page3["truncated"], json!(false));
    assert_eq!(page3["tree"], Value::Null);
    // A listing that fits one page is not truncated.
    let (_, _, whole) = c.get(&format!("{repo}/git/trees/{nodes_sha}")).await;
    assert_eq!(whole["truncated"], json!(false));
    // Unknown shas are bad requests (400), not 404; a missing repo is 404 with `errors`.
    let unknown = "0123456789012345678901234567890123456789";
    let (status, _, body) = c.get(&format!("{repo}/git/trees/{unknown}")).await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], format!("sha not found [{unknown}]"));
    let (status, _, _) = c.get(&format!("{repo}/git/blobs/{unknown}")).await;
    assert_eq!(status, 400);
    let (status, _, body) = c.get("/repos/lhumina_code/no-such-repo").await;
    assert_eq!(status, 404);
    assert_eq!(body["errors"], json!([]));
    let (_, _, recursive) = c
        .get(&format!("{repo}/git/trees/{head}?recursive=true"))
        .await;
    check(&doc, trees, "get", 200, &recursive);
    assert!(
        recursive["tree"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "nodes/node-a/usage_2026-11-27-11.otoml")
    );

    let (_, _, node_a) = c
        .get(&format!("{repo}/contents/nodes/node-a?ref=main"))
        .await;
    check(&doc, "/repos/{owner}/{repo}/contents", "get", 200, &node_a);
    let (_, _, root_list) = c.get(&format!("{repo}/contents?ref=main")).await;
    check(
        &doc,
        "/repos/{owner}/{repo}/contents",
        "get",
        200,
        &root_list,
    );
    let file_sha = node_a[0]["sha"].as_str().unwrap().to_string();

    let (status, _, file) = c
        .get(&format!(
            "{repo}/contents/nodes/node-a/usage_2026-11-27-10.otoml?ref=main"
        ))
        .await;
    assert_eq!(status, 200);
    check(
        &doc,
        "/repos/{owner}/{repo}/contents/{filepath}",
        "get",
        200,
        &file,
    );
    let decoded = BASE64.decode(file["content"].as_str().unwrap()).unwrap();
    assert!(decoded.starts_with(b"[[records]]"));

    let (status, _, blob) = c.get(&format!("{repo}/git/blobs/{file_sha}")).await;
    assert_eq!(status, 200);
    check(
        &doc,
        "/repos/{owner}/{repo}/git/blobs/{sha}",
        "get",
        200,
        &blob,
    );
    assert_eq!(
        BASE64.decode(blob["content"].as_str().unwrap()).unwrap(),
        decoded
    );

    let contents = "/repos/{owner}/{repo}/contents/{filepath}";
    let path = "nodes/node-c/usage_2026-11-27-12.otoml";
    let (status, created) = c
        .send(
            reqwest::Method::POST,
            &format!("{repo}/contents/{path}"),
            &json!({ "content": BASE64.encode("new"), "message": "node-c hour 12", "branch": "main" }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    check(&doc, contents, "post", 201, &created);
    let sha = created["content"]["sha"].as_str().unwrap();
    let (status, updated) = c
        .send(
            reqwest::Method::PUT,
            &format!("{repo}/contents/{path}"),
            &json!({ "content": BASE64.encode("newer"), "sha": sha }),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    check(&doc, contents, "put", 200, &updated);

    let (status, _, branch) = c.get(&format!("{repo}/branches/main")).await;
    assert_eq!(status, 200);
    assert_eq!(branch["commit"]["id"], updated["commit"]["sha"]);
}

#[test]
fn the_validator_rejects_wrong_shapes() {
    let doc = swagger();
    let schema = json!({ "$ref": "#/definitions/GitTreeResponse" });
    let mut errors = Vec::new();
    validate(
        &doc,
        &schema,
        &json!({ "tree": "not an array" }),
        "$",
        &mut errors,
    );
    validate(
        &doc,
        &schema,
        &json!({ "truncatd": true }),
        "$",
        &mut errors,
    );
    validate(
        &doc,
        &schema,
        &json!({ "tree": [{ "size": "12" }] }),
        "$",
        &mut errors,
    );
    assert_eq!(errors.len(), 3, "{errors:?}");
    let mut none = Vec::new();
    validate(
        &doc,
        &schema,
        &json!({ "sha": null, "tree": [{ "size": 1 }] }),
        "$",
        &mut none,
    );
    assert!(none.is_empty(), "{none:?}");
}

#[tokio::test]
async fn stats_and_faults_are_controllable_over_http() {
    let (_dir, emulator) = start().await;
    let http = reqwest::Client::new();
    let base = emulator.base_url();
    let branch = format!("{base}/api/v1/repos/lhumina_code/hero_onboarding_billing/branches/main");
    let get_branch = || {
        http.get(&branch)
            .header("Authorization", format!("token {TOKEN}"))
            .send()
    };

    let added: Value = http
        .post(format!("{base}/_emulator/faults"))
        .json(&json!([
            { "endpoint": "branch", "kind": "rate_limit", "retry_after_secs": 7, "times": 1 },
            { "endpoint": "branch", "kind": "status", "status": 502, "times": 1 }
        ]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(added["added"], json!(2));
    let limited = get_branch().await.unwrap();
    assert_eq!(limited.status().as_u16(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    assert_eq!(get_branch().await.unwrap().status().as_u16(), 502);
    assert_eq!(get_branch().await.unwrap().status().as_u16(), 200);

    // Without a token, a private repository is not there for the caller (404).
    let anonymous = http.get(&branch).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 404);

    let stats: Value = http
        .get(format!("{base}/_emulator/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"]["branch"], json!(4));
    assert_eq!(stats["faults_injected"], json!(2));
    http.post(format!("{base}/_emulator/stats/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(emulator.stats().total, 0);

    // `token` or `bearer`, in any case; a wrong token is 401.
    for scheme in ["token", "Token", "bearer", "BEARER"] {
        let answer = http
            .get(&branch)
            .header("Authorization", format!("{scheme} {TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200, "{scheme}");
    }
    let wrong = http
        .get(&branch)
        .header("Authorization", "token wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    let bad = http
        .post(format!("{base}/_emulator/faults"))
        .body("{\"kind\": \"explode\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
}

/// A submodule is a commit entry in a tree; Forgejo lists it with `url: ""`
/// (it has no object in this repository to point at).
#[tokio::test]
async fn a_submodule_entry_has_an_empty_url() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("billing.git");
    let git = |args: &[&str], input: Option<&str>| -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("git")
            .arg("-C")
            .arg(&path)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@localhost")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@localhost")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("git runs");
        if let Some(input) = input {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "git {args:?} failed");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    std::fs::create_dir_all(&path).unwrap();
    git(&["init", "-q", "--bare", "-b", "main"], None);
    let blob = git(&["hash-object", "-w", "--stdin"], Some("billing"));
    let elsewhere = "1234567890abcdef1234567890abcdef12345678";
    let tree = git(
        &["mktree"],
        Some(&format!(
            "100644 blob {blob}\tREADME.md\n160000 commit {elsewhere}\tvendored\n"
        )),
    );
    let commit = git(&["commit-tree", &tree, "-m", "with a submodule"], None);
    git(&["update-ref", "refs/heads/main", &commit], None);

    let repo = ForgeRepo::open(&path).unwrap();
    let config = EmulatorConfig::new("lhumina_code/hero_onboarding_billing", Some(TOKEN)).unwrap();
    let handle = EmulatorHandle::start(config, repo).await.unwrap();
    let client = Client {
        http: reqwest::Client::new(),
        api: format!(
            "{}/api/v1/repos/lhumina_code/hero_onboarding_billing",
            handle.base_url()
        ),
    };
    let (status, _, body) = client.get(&format!("/git/trees/{tree}")).await;
    assert_eq!(status, 200, "{body}");
    let doc = swagger();
    check(
        &doc,
        "/repos/{owner}/{repo}/git/trees/{sha}",
        "get",
        200,
        &body,
    );
    let entries = body["tree"].as_array().unwrap();
    let sub = entries.iter().find(|e| e["path"] == "vendored").unwrap();
    assert_eq!(sub["type"], "commit");
    assert_eq!(sub["sha"], elsewhere);
    assert_eq!(sub["url"], "", "{sub}");
    let file = entries.iter().find(|e| e["path"] == "README.md").unwrap();
    assert!(
        file["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/git/blobs/{blob}")),
        "{file}"
    );
}
