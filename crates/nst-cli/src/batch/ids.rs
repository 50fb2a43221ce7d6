//! Job ids: a hash of a job's resolved settings with every input file replaced by the hash of its
//! bytes, so that an id is the same on every machine and in every folder, and changes when an input's
//! content or a setting that changes the picture changes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use nst_engine::RunSpec;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The version of the id scheme: bump it when what goes into an id changes meaning.
pub const ID_SCHEME: u32 = 1;

/// Hex digits of an id (64 bits of SHA-256).
pub const ID_LEN: usize = 16;

/// A job id: 16 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(String);

impl JobId {
    /// The id as text (also the job's folder name).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 64 bits, as a number (for hash sharding).
    pub fn as_u64(&self) -> u64 {
        u64::from_str_radix(&self.0, 16).expect("an id is 16 hex digits")
    }

    /// Whether `s` looks like an id.
    pub fn is_id(s: &str) -> bool {
        s.len() == ID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The hashes of input files, each file read once.
#[derive(Debug, Default)]
pub struct Hashes {
    files: HashMap<PathBuf, String>,
}

impl Hashes {
    /// The SHA-256 of `path`'s bytes, in hex.
    ///
    /// # Errors
    /// The I/O error of reading it.
    pub fn file(&mut self, path: &Path) -> std::io::Result<String> {
        if let Some(h) = self.files.get(path) {
            return Ok(h.clone());
        }
        let mut f = std::fs::File::open(path)?;
        let mut sha = Sha256::new();
        let mut buf = vec![0_u8; 1 << 16];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => sha.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let h = hex(&sha.finalize());
        self.files.insert(path.to_owned(), h.clone());
        Ok(h)
    }
}

/// What a job's picture depends on, beside its settings: the hashes of its inputs, and for a frame
/// that starts from (or is held close to) the previous frame's result, that frame's id.
#[derive(Debug, Clone, PartialEq)]
pub struct IdInputs {
    /// SHA-256 of the content image.
    pub content: String,
    /// SHA-256 of each style image.
    pub styles: Vec<String>,
    /// SHA-256 of the start image, when one is given by file.
    pub init_image: Option<String>,
    /// MD5 of the weights (the engine's cached checksum).
    pub weights: String,
    /// The previous frame's id, for a warm-started frame.
    pub previous: Option<JobId>,
    /// The temporal term's weight and threshold, and the previous input frame's hash.
    pub temporal: Option<(f32, f32, String)>,
}

/// The settings that change where outputs go or how a run is watched, not the picture.
const NOT_IN_ID: &[&str] = &[
    "out_dir",
    "output",
    "metrics",
    "animate",
    "plot",
    "print_every",
    "checkpoint_every",
    "device",
    "content",
    "styles",
    "weights",
    "init_image",
    "temporal",
];

/// The id of a job with settings `spec` and inputs `inputs`.
pub fn job_id(spec: &RunSpec, inputs: &IdInputs) -> JobId {
    let mut settings = serde_json::to_value(spec).expect("a RunSpec serializes");
    if let Value::Object(m) = &mut settings {
        // A setting that is off (`null`) is left out, so that a new optional setting of a later
        // version does not change the ids of the jobs that do not use it.
        m.retain(|k, v| !NOT_IN_ID.contains(&k.as_str()) && !v.is_null());
    }
    let doc = json!({
        "scheme": ID_SCHEME,
        "settings": settings,
        "content": inputs.content,
        "styles": inputs.styles,
        "init_image": inputs.init_image,
        "weights": inputs.weights,
        "previous_frame": inputs.previous.as_ref().map(JobId::as_str),
        "temporal": inputs.temporal.as_ref().map(|(w, t, h)| json!({"weight": w, "threshold": t, "previous_input": h})),
    });
    let mut text = String::new();
    canonical(&doc, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    JobId(hex(&digest)[..ID_LEN].to_owned())
}

/// JSON with object keys sorted at every level, whatever map type serde_json was built with.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> IdInputs {
        IdInputs {
            content: "c".into(),
            styles: vec!["s".into()],
            init_image: None,
            weights: "w".into(),
            previous: None,
            temporal: None,
        }
    }

    #[test]
    fn ids_ignore_paths_and_outputs_but_not_settings_or_contents() {
        let a = RunSpec::new("/x/c.png", vec!["/x/s.png".into()], "/m/w.mat");
        let mut b = RunSpec::new("/elsewhere/c.png", vec!["y/s.png".into()], "w.mat");
        b.out_dir = "other".into();
        b.print_every = 7;
        b.checkpoint_every = 3;
        let id = job_id(&a, &inputs());
        assert_eq!(id, job_id(&b, &inputs()));
        assert!(JobId::is_id(id.as_str()), "{id}");
        b.objective.beta = 41.0;
        assert_ne!(id, job_id(&b, &inputs()));
        let mut other = inputs();
        other.content = "c2".into();
        assert_ne!(id, job_id(&a, &other));
        other = inputs();
        other.previous = Some(id.clone());
        assert_ne!(id, job_id(&a, &other));
    }

    #[test]
    fn ids_are_pinned() {
        let spec = RunSpec::new("c.png", vec!["s.png".into()], "w.mat");
        assert_eq!(
            job_id(&spec, &inputs()).as_str(),
            "1b4efaa31a730450",
            "the id of a default job changed: every finished job of every batch would run again; \
             if the change of RunSpec is meant to change the pictures, bump ID_SCHEME and this value"
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let mut s = String::new();
        canonical(
            &json!({"b": 1, "a": {"d": [1, {"f": 2, "e": 3}], "c": "x"}}),
            &mut s,
        );
        assert_eq!(s, r#"{"a":{"c":"x","d":[1,{"e":3,"f":2}]},"b":1}"#);
    }

    #[test]
    fn file_hashes_follow_the_bytes() {
        let dir = crate::testing::TempDir::new("ids-hash");
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let mut h = Hashes::default();
        assert_eq!(
            h.file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut fresh = Hashes::default();
        std::fs::write(&p, b"abd").unwrap();
        assert_ne!(
            fresh.file(&p).unwrap(),
            h.file(&p).unwrap(),
            "the cache is per plan"
        );
    }
}
