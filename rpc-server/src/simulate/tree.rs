//! The trees of the branch head, edited in memory hour by hour.

use std::collections::HashMap;

use anyhow::bail;
use billing_api::otoml::{self};
use gix::bstr::ByteSlice;
use gix::objs::tree::{Entry, EntryKind};
use gix::refs::FullName;

use super::generate::hour_from_stamp;
use super::pack::PackBuffer;
use super::{SIGNATURE_EMAIL, SIGNATURE_NAME, node_name};

/// The trees of the branch head, held in memory and edited hour by hour so that
/// nothing is read back from the object database while writing.
pub(super) struct TreeState {
    pub(super) head: Option<gix::ObjectId>,
    root: gix::objs::Tree,
    nodes: gix::objs::Tree,
    /// Node directories by name (those under `nodes/` that are trees).
    node_trees: HashMap<String, gix::objs::Tree>,
}

impl TreeState {
    pub(super) fn at_branch(repo: &gix::Repository, branch_ref: &FullName) -> anyhow::Result<Self> {
        let mut state = TreeState {
            head: None,
            root: gix::objs::Tree::empty(),
            nodes: gix::objs::Tree::empty(),
            node_trees: HashMap::new(),
        };
        let Some(mut reference) = repo.try_find_reference(branch_ref.as_ref())? else {
            return Ok(state);
        };
        let commit = reference.peel_to_commit()?;
        state.head = Some(commit.id);
        state.root = commit.tree()?.decode()?.into();
        let Some(nodes) = state.root.entries.iter().find(|e| e.filename == "nodes") else {
            return Ok(state);
        };
        if !nodes.mode.is_tree() {
            bail!(
                "`nodes` at the branch head is a file, not a directory; the repo is not a billing repo"
            );
        }
        state.nodes = repo.find_tree(nodes.oid)?.decode()?.into();
        for entry in state.nodes.entries.iter().filter(|e| e.mode.is_tree()) {
            let tree = repo.find_tree(entry.oid)?.decode()?.into();
            state
                .node_trees
                .insert(entry.filename.to_str_lossy().into_owned(), tree);
        }
        Ok(state)
    }

    /// The latest hour of any usage file at the head.
    pub(super) fn latest_hour(&self) -> anyhow::Result<Option<i64>> {
        let mut latest = None;
        for (node, tree) in &self.node_trees {
            if !otoml::is_valid_node_name(node) {
                continue;
            }
            for entry in &tree.entries {
                let Ok(name) = entry.filename.to_str() else {
                    continue;
                };
                if !otoml::is_usage_file_name(name) {
                    continue;
                }
                let stamp = &name["usage_".len()..name.len() - ".otoml".len()];
                if let Some(hour) = hour_from_stamp(stamp) {
                    latest = latest.max(Some(hour));
                }
            }
        }
        Ok(latest)
    }

    pub(super) fn add_file(
        &mut self,
        repo: &gix::Repository,
        node: &str,
        file: &str,
        blob: gix::ObjectId,
    ) -> anyhow::Result<()> {
        if let Some(e) = self.nodes.entries.iter().find(|e| e.filename == node)
            && !e.mode.is_tree()
        {
            bail!(
                "nodes/{node} in {} is a file, not a directory; remove it or simulate other nodes",
                repo.path().display()
            );
        }
        let tree = self
            .node_trees
            .entry(node.to_string())
            .or_insert_with(gix::objs::Tree::empty);
        upsert(tree, file, EntryKind::Blob, blob);
        Ok(())
    }

    /// Adds the changed trees and a commit for this hour to `pack`.
    pub(super) fn commit(
        &mut self,
        repo: &gix::Repository,
        pack: &mut PackBuffer,
        hour: i64,
        stamp: &str,
        nodes: u32,
        records: u32,
    ) -> anyhow::Result<gix::ObjectId> {
        for i in 0..nodes {
            let name = node_name(i);
            let id = pack.add_object(repo, &self.node_trees[&name])?;
            upsert(&mut self.nodes, &name, EntryKind::Tree, id);
        }
        let nodes_id = pack.add_object(repo, &self.nodes)?;
        upsert(&mut self.root, "nodes", EntryKind::Tree, nodes_id);
        let root_id = pack.add_object(repo, &self.root)?;

        // Fixed identity and the hour's end as time: same input, same commit id.
        let signature = gix::actor::Signature {
            name: SIGNATURE_NAME.into(),
            email: SIGNATURE_EMAIL.into(),
            time: gix::date::Time {
                seconds: (hour + 1) * 3600,
                offset: 0,
            },
        };
        let commit = gix::objs::Commit {
            tree: root_id,
            parents: self.head.into_iter().collect(),
            author: signature.clone(),
            committer: signature,
            encoding: None,
            message: format!("usage for hour {stamp}: {nodes} nodes x {records} records\n").into(),
            extra_headers: Vec::new(),
        };
        let commit_id = pack.add_object(repo, &commit)?;
        self.head = Some(commit_id);
        Ok(commit_id)
    }
}

/// Inserts or replaces `name` in `tree`, keeping git's entry order.
pub(super) fn upsert(tree: &mut gix::objs::Tree, name: &str, kind: EntryKind, oid: gix::ObjectId) {
    tree.entries.retain(|e| e.filename != name);
    let entry = Entry {
        mode: kind.into(),
        filename: name.into(),
        oid,
    };
    let at = tree.entries.partition_point(|e| *e < entry);
    tree.entries.insert(at, entry);
}
