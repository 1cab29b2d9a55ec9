//! The properties the server's fuzz targets in `fuzz/` check on any input, as
//! plain functions: the targets call them under libFuzzer (nightly), and the
//! corpus replay tests call them on every committed input (stable, in the
//! test command). Each panics, naming the property, when one fails.

use std::path::Path;

use base64::Engine as _;
use billing_api::otoml::{is_valid_node_name, parse_usage_path};
use jsonrpsee::RpcModule;
use serde_json::{Value, json};

use crate::aggregate::Aggregator;
use crate::config::{LedgerSettings, SourceSpec};
use crate::rpc::BillingRpc;
use crate::source::forge::wire::{self, Blob, BlobContent, Branch, TreePage};

/// The node whose directory a fuzzed tree listing is read as.
const NODE: &str = "node-1";

/// The forge client's reading of any answer body, as a branch, a tree page,
/// a blob or a batch of blobs:
/// - ids taken from an answer are git object ids, in lower case where the
///   client compares them;
/// - node directories have valid names and come sorted; usage files are at
///   `nodes/<node>/usage_<hour>.otoml`, sorted;
/// - a blob's content is what its base64 says (decoding then encoding gives
///   the text back), or the blob is over the forge's cap: no content, a size.
pub fn forge_answer(data: &[u8]) {
    if let Ok(branch) = serde_json::from_slice::<Branch>(data)
        && let Ok(id) = wire::branch_head(branch)
    {
        assert!(
            wire::check_object_id(&id).is_ok(),
            "a branch head is an object id"
        );
    }
    if let Ok(page) = serde_json::from_slice::<TreePage>(data) {
        let entries = page.tree.unwrap_or_default();
        if let Ok((nodes, skipped)) = wire::node_trees(&entries) {
            assert!(
                nodes.windows(2).all(|w| w[0].node_name <= w[1].node_name),
                "nodes come sorted by name"
            );
            for node in &nodes {
                assert!(is_valid_node_name(&node.node_name), "{:?}", node.node_name);
                assert_lower_id(&node.tree_id);
            }
            assert!(skipped.iter().all(|name| !is_valid_node_name(name)));
        }
        if let Ok(files) = wire::usage_files(NODE, &entries, "the fuzzed tree") {
            assert!(
                files.windows(2).all(|w| w[0].path <= w[1].path),
                "files come sorted"
            );
            for file in &files {
                let (node, _) = parse_usage_path(&file.path)
                    .unwrap_or_else(|| panic!("{:?} is not a usage path", file.path));
                assert_eq!(node, NODE);
                assert_lower_id(&file.blob_id);
            }
        }
    }
    if let Ok(blob) = serde_json::from_slice::<Blob>(data) {
        blob_answer(blob);
    }
    if let Ok(blobs) = serde_json::from_slice::<Vec<Blob>>(data) {
        for blob in blobs {
            blob_answer(blob);
        }
    }
}

fn assert_lower_id(id: &str) {
    assert!(wire::check_object_id(id).is_ok(), "{id:?} is an object id");
    assert_eq!(
        id,
        id.to_ascii_lowercase(),
        "ids are compared in lower case"
    );
}

fn blob_answer(blob: Blob) {
    // The answer is read as the blob it names (or, naming none, as any blob).
    let id = blob
        .sha
        .clone()
        .unwrap_or_else(|| "0".repeat(40))
        .to_ascii_lowercase();
    let content = blob.content.clone().unwrap_or_default();
    let size = blob.size;
    match wire::blob_content(blob, &id) {
        Ok(BlobContent::Bytes(bytes)) => {
            let compact: String = content
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            assert_eq!(
                base64::engine::general_purpose::STANDARD.encode(&bytes),
                compact,
                "the decoded content encodes back to the answer's base64"
            );
        }
        Ok(BlobContent::OverCap) => {
            assert!(content.is_empty() && size.is_some_and(|s| s > 0));
        }
        Err(reason) => assert!(!reason.is_empty(), "a refused blob answer says why"),
    }
}

/// A server's method table over a real ledger (a redb file) and an empty
/// billing repo (a real git repository), both in a directory of their own,
/// called in process.
pub struct RpcFixture {
    runtime: tokio::runtime::Runtime,
    module: RpcModule<BillingRpc>,
    methods: Vec<&'static str>,
}

impl RpcFixture {
    /// Creates the ledger and the repo in `dir` (which must be empty or absent).
    pub fn new(dir: &Path) -> RpcFixture {
        let repo = dir.join("repo");
        std::fs::create_dir_all(&repo).expect("create the fixture's directory");
        let status = std::process::Command::new("git")
            .args(["init", "-q", "-b", "main"])
            .arg(&repo)
            .status()
            .expect("run git init (is git installed?)");
        assert!(status.success(), "git init {}", repo.display());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let settings = LedgerSettings::new(
            dir.join("data"),
            SourceSpec::Git {
                repo: repo.display().to_string(),
                branch: "main".into(),
            },
        );
        let aggregator: Aggregator = runtime
            .block_on(crate::server::open_aggregator_async(&settings))
            .expect("open the fixture's ledger");
        let module = crate::rpc::module(aggregator);
        let mut methods: Vec<&'static str> = module.method_names().collect();
        methods.sort_unstable();
        RpcFixture {
            runtime,
            module,
            methods,
        }
    }

    /// One call: the first byte picks the method (of the table, by name
    /// order), the rest is its params, as JSON. The server answers every call
    /// with a result or an error that says what was wrong; never with an
    /// internal error, since nothing here can fail but the input. Returns
    /// the answer, or `None` for input that is not a call.
    pub fn call(&self, data: &[u8]) -> Option<Value> {
        let (&pick, params) = data.split_first()?;
        let params = serde_json::from_slice::<Value>(params).ok()?;
        let method = self.methods[usize::from(pick) % self.methods.len()];
        let request = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let (response, _notifications) = self
            .runtime
            .block_on(self.module.raw_json_request(&request.to_string(), 16))
            .expect("a well-formed request is accepted");
        let answer: Value = serde_json::from_str(response.get()).expect("the answer is JSON");
        assert_eq!(answer["id"], 1, "{method}: the answer names the call");
        match answer.get("error") {
            Some(error) => {
                let code = error["code"].as_i64().unwrap_or(0);
                let message = error["message"].as_str().unwrap_or_default();
                assert!(
                    code != i64::from(billing_api::error_codes::INTERNAL),
                    "{method} {params}: an internal error for bad input: {error}"
                );
                assert!(!message.is_empty(), "{method}: an error says what failed");
            }
            None => assert!(answer.get("result").is_some(), "{method}: {answer}"),
        }
        Some(answer)
    }
}
