//! The JSON Schema of every output shape of the ABI, generated from the
//! types that write it into `docs/schema/` (checked by a unit test, as
//! docs/REFERENCE.md is: `SMTPBRIDGE_BLESS=1 cargo test --lib schema`
//! rewrites them). The bindings' typed layers are checked against these
//! files by `tests/test_schemas.py`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;

use crate::archive::ArchiveMeta;
use crate::client::{Merged, ProbeReport, SignIn, SignedIn, Stats, TestReport};
use crate::config::ConfigExport;
use crate::credentials::Masked;
use crate::outbox::events::{Counted, Numbered};
use crate::outbox::{BatchCancel, BatchCounts, Page};
use crate::status::Status;
use crate::transcript::Attempt;

use super::wire::Purged;

/// The schema of what `T` serialises to, as its file holds it.
fn schema<T: JsonSchema>() -> String {
    let generator = SchemaSettings::draft2020_12().for_serialize().into_generator();
    let schema = generator.into_root_schema_for::<T>();
    serde_json::to_string_pretty(&schema).expect("a schema is JSON") + "\n"
}

/// Each shape by its file name in `docs/schema/`: what the exports write
/// (and, for the archive, the file it files).
fn shapes() -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        // smtpb_send, smtpb_status, smtpb_wait
        ("status", schema::<Status>()),
        // smtpb_outbox_list
        ("status_list", schema::<Vec<Status>>()),
        // smtpb_outbox_query
        ("query_page", schema::<Page<Status>>()),
        // smtpb_outbox_purge
        ("purge", schema::<Purged>()),
        // smtpb_outbox_stats
        ("outbox_stats", schema::<Stats>()),
        // smtpb_batch_status
        ("batch_status", schema::<BatchCounts>()),
        // smtpb_batch_cancel
        ("batch_cancel", schema::<BatchCancel>()),
        // smtpb_merge
        ("merge", schema::<Merged>()),
        // smtpb_test_connection
        ("test_report", schema::<TestReport>()),
        // smtpb_probe
        ("probe_report", schema::<ProbeReport>()),
        // smtpb_transcript
        ("transcript", schema::<Vec<Attempt>>()),
        // smtpb_credentials_masked
        ("credentials_masked", schema::<Masked>()),
        // smtpb_oauth2_begin
        ("oauth2_begin", schema::<SignIn>()),
        // smtpb_oauth2_complete
        ("oauth2_complete", schema::<SignedIn>()),
        // smtpb_config_export_json
        ("config_export", schema::<ConfigExport>()),
        // smtpb_blacklist_list
        ("blacklist", schema::<Vec<String>>()),
        // smtpb_set_event_callback
        ("event", schema::<Numbered>()),
        // smtpb_set_log_callback
        ("log_line", schema::<Counted>()),
        // meta.json of an archived message
        ("archive_meta", schema::<ArchiveMeta>()),
    ])
}

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema")
}

#[test]
fn docs_schema_matches_the_output_types() {
    let dir = folder();
    let bless = std::env::var_os("SMTPBRIDGE_BLESS").is_some();
    let shapes = shapes();
    let mut stale = Vec::new();
    for (name, text) in &shapes {
        let path = dir.join(format!("{name}.json"));
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            if bless {
                std::fs::create_dir_all(&dir).expect("create docs/schema");
                std::fs::write(&path, text).expect("write a schema");
            } else {
                stale.push(name.to_string());
            }
        }
    }
    let files = std::fs::read_dir(&dir).map(|d| d.filter_map(|e| e.ok()).collect::<Vec<_>>()).unwrap_or_default();
    for entry in files {
        let file = entry.file_name().to_string_lossy().into_owned();
        let known = file.strip_suffix(".json").is_some_and(|n| shapes.contains_key(n));
        if !known {
            if bless {
                std::fs::remove_file(entry.path()).expect("remove a schema of no shape");
            } else {
                stale.push(file);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "docs/schema/ is out of date with the output types ({}): run SMTPBRIDGE_BLESS=1 cargo test --lib schema, \
         and commit it",
        stale.join(", ")
    );
}
