//! `push` (chunk a bundle and register it as a revision) and `prefetch` (spread a
//! revision before deploying it).

use std::collections::HashSet;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use fleetmesh_model::{
    ApplicationInput, GetApplicationOutput, GetRevisionDistributionOutput, PrefetchInput, PrefetchOutput,
    RegisterPushedRevisionOutput, RevisionRef,
};
use fleetmesh_state::model::ids::ChunkHash;
use fleetmesh_state::model::revision::ChunkRef;
use serde_json::json;

use super::client::{decode, ApiClient};
use super::deploy::{parse_revision, print_json, PrefetchArgs, PushArgs};
use super::watch::human_bytes;
use fleetmesh_node::revision;

/// Chunk bytes sent per upload request.
const BATCH_BYTES: usize = 8 << 20;

struct Uploader<'a> {
    client: &'a ApiClient,
    upload_id: String,
    batch: Vec<(ChunkRef, Vec<u8>)>,
    batch_bytes: usize,
    sent: HashSet<ChunkHash>,
    uploaded_bytes: u64,
    seen_bytes: u64,
    bar: Option<indicatif::ProgressBar>,
}

impl Uploader<'_> {
    fn add(&mut self, chunk: ChunkRef, bytes: &[u8]) -> anyhow::Result<()> {
        self.seen_bytes += bytes.len() as u64;
        if let Some(bar) = &self.bar {
            bar.set_position(self.seen_bytes);
        }
        if !self.sent.insert(chunk.hash()) {
            return Ok(());
        }
        self.batch_bytes += bytes.len();
        self.batch.push((chunk, bytes.to_vec()));
        if self.batch_bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let hashes: Vec<ChunkHash> = self.batch.iter().map(|(chunk, _)| chunk.hash()).collect();
        let answer =
            self.client.post(&format!("/v1/uploads/{}/missing", self.upload_id), &json!({ "chunks": hashes }))?;
        let missing: HashSet<ChunkHash> =
            serde_json::from_value(answer["missing"].clone()).context("invalid answer to missing")?;
        let mut body = Vec::with_capacity(self.batch_bytes + 36 * self.batch.len());
        for (chunk, bytes) in self.batch.drain(..) {
            if missing.contains(&chunk.hash()) {
                body.extend_from_slice(&chunk.hash().0);
                body.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                body.extend_from_slice(&bytes);
                self.uploaded_bytes += bytes.len() as u64;
            }
        }
        self.batch_bytes = 0;
        if !body.is_empty() {
            self.client.post_bytes(&format!("/v1/uploads/{}/chunks", self.upload_id), &body)?;
        }
        Ok(())
    }
}

pub(super) fn run(client: &ApiClient, args: &PushArgs) -> anyhow::Result<()> {
    let source = &args.source;
    if std::fs::symlink_metadata(source).is_err() {
        anyhow::bail!("--source {} does not exist", source.display());
    }
    // The cheap pass first: refuses a bad bundle or one over the size limit before any
    // chunk is stored anywhere.
    let total = revision::bundle_size(source)?;
    let application = ApplicationInput { application_name: args.application_name.clone() };
    client.call::<_, GetApplicationOutput>("GetApplication", &application)?;
    let begin =
        client.post("/v1/uploads", &json!({ "applicationName": args.application_name, "totalBytes": total }))?;
    let upload_id = begin["uploadId"].as_str().unwrap_or_default().to_string();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("chunking {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut uploader = Uploader {
        client,
        upload_id: upload_id.clone(),
        batch: Vec::new(),
        batch_bytes: 0,
        sent: HashSet::new(),
        uploaded_bytes: 0,
        seen_bytes: 0,
        bar,
    };
    let built = revision::build_manifest(source, &mut |chunk: ChunkRef, bytes: &[u8]| uploader.add(chunk, bytes))?;
    uploader.flush()?;
    if let Some(bar) = &uploader.bar {
        bar.finish_and_clear();
    }
    // The upload's end registers the revision: the answer is RegisterApplicationRevision's.
    let finish = format!("/v1/uploads/{upload_id}/finish");
    let answer: RegisterPushedRevisionOutput = decode(
        &finish,
        client.post(&finish, &json!({ "manifest": built.manifest, "description": args.description }))?,
    )?;
    if args.json {
        print_json(&answer.revision_info);
    } else {
        eprintln!(
            "pushed {} ({} distinct, {} uploaded) in {} chunks to node {}",
            human_bytes(built.total_bytes),
            human_bytes(built.unique_bytes),
            human_bytes(uploader.uploaded_bytes),
            built.chunk_count,
            begin["seed"]
        );
        println!("{}", answer.revision_id);
    }
    Ok(())
}

pub(super) fn prefetch(client: &ApiClient, args: &PrefetchArgs) -> anyhow::Result<ExitCode> {
    let input = PrefetchInput {
        revision: RevisionRef::id(parse_revision(&args.revision)?),
        deployment_group_name: args.deployment_group_name.clone(),
        all_nodes: args.all_nodes,
    };
    let targets = client.call::<_, PrefetchOutput>("Prefetch", &input)?.targets;
    if !args.wait {
        println!("prefetch of {} started on {} nodes", args.revision, targets.len());
        return Ok(ExitCode::SUCCESS);
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("prefetch {bar:30} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut last_line = String::new();
    loop {
        let distribution: GetRevisionDistributionOutput =
            client.get_as(&format!("/v1/revisions/{}/distribution", args.revision))?;
        let size = distribution.size;
        let holding = |id| distribution.nodes.iter().find(|node| node.id == id);
        let held: u64 = targets.iter().map(|id| holding(*id).map_or(0, |node| node.bytes_held)).sum();
        let complete = targets.iter().filter(|id| holding(**id).is_some_and(|node| node.complete)).count();
        let line = format!("{complete}/{} nodes complete", targets.len());
        match &bar {
            Some(bar) => {
                bar.set_length(size * targets.len() as u64);
                bar.set_position(held);
                bar.set_message(line.clone());
            }
            None if line != last_line => {
                println!("{line} ({} of {})", human_bytes(held), human_bytes(size * targets.len() as u64))
            }
            None => {}
        }
        last_line = line;
        if complete == targets.len() {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            println!("revision {} is on all {} nodes", args.revision, targets.len());
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
