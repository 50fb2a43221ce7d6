//! The one module that uses the network: download the pre-trained VGG weights, resumable and verified.
//!
//! A download goes to `DIR/<file>.part`. An existing `.part` is resumed with an HTTP `Range` request; a
//! server that ignores the range (answers `200` instead of `206`) makes the download start over. When the
//! last byte is in, the MD5 (and SHA-256) of the whole file is computed; if a checksum is known and does
//! not match, the `.part` file is **deleted** (a resumed download cannot be repaired byte by byte) and
//! the error says so. A verified file is renamed into place. A file already in place whose MD5 matches is
//! left alone.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest as _, Md5};
use sha2::Sha256;

/// Errors of the download module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// `--offline` (or `NST_OFFLINE`) and the file is missing.
    #[error(
        "the weights file {} is missing and downloads are off (--offline or NST_OFFLINE): \
         download {url} by hand and save it as {}{}",
        dest.display(), dest.display(), checksum_hint(.md5)
    )]
    Offline {
        /// Where the file should be.
        dest: PathBuf,
        /// Where it comes from.
        url: String,
        /// Its MD5, when known.
        md5: Option<String>,
    },
    /// The server could not be reached or answered with an error.
    #[error(
        "could not download {url}: {reason}; download it by hand and save it as {}{}",
        dest.display(), checksum_hint(.md5)
    )]
    Network {
        /// The URL tried.
        url: String,
        /// Where the file should be.
        dest: PathBuf,
        /// What went wrong.
        reason: String,
        /// Its MD5, when known.
        md5: Option<String>,
    },
    /// The downloaded bytes do not have the published checksum.
    #[error(
        "{url}: the downloaded file has MD5 {actual}, not the published {expected}; \
         the partial file {} was deleted, run the download again",
        part.display()
    )]
    Checksum {
        /// The URL.
        url: String,
        /// The published MD5.
        expected: String,
        /// What arrived.
        actual: String,
        /// The deleted partial file.
        part: PathBuf,
    },
    /// A file already in place has the wrong checksum.
    #[error(
        "{} exists but its MD5 is {actual}, not the published {expected}: delete it or pass another --weights",
        path.display()
    )]
    ExistingMismatch {
        /// The file.
        path: PathBuf,
        /// The published MD5.
        expected: String,
        /// Its MD5.
        actual: String,
    },
    /// Local file-system trouble.
    #[error("{}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn checksum_hint(md5: &Option<String>) -> String {
    match md5 {
        Some(m) => format!(" (MD5 {m})"),
        None => String::new(),
    }
}

/// Result of this module.
pub type Result<T, E = DownloadError> = std::result::Result<T, E>;

/// A published weights file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightsSource {
    /// Where it is published.
    pub url: String,
    /// Its file name.
    pub file_name: &'static str,
    /// Published MD5 (lower-case hex), when known.
    pub md5: Option<&'static str>,
    /// Its size in bytes, when known.
    pub size: Option<u64>,
}

/// VGG-19, MatConvNet beta16 layout (uncompressed, about 576 MB).
pub const VGG19_BETA16_URL: &str =
    "http://www.vlfeat.org/matconvnet/models/beta16/imagenet-vgg-verydeep-19.mat";
/// MD5 of [`VGG19_BETA16_URL`].
pub const VGG19_BETA16_MD5: &str = "8ee3263992981a1d26e73b3ca028a123";
/// VGG-19, current layout (compressed).
pub const VGG19_CURRENT_URL: &str =
    "https://www.vlfeat.org/matconvnet/models/imagenet-vgg-verydeep-19.mat";
/// MD5 of [`VGG19_CURRENT_URL`].
pub const VGG19_CURRENT_MD5: &str = "106118b7cf60435e6d8e04f6a6dc3657";
/// Size of [`VGG19_CURRENT_URL`] in bytes.
pub const VGG19_CURRENT_SIZE: u64 = 534_904_783;
/// VGG-16, current layout (no published checksum is known to us).
pub const VGG16_CURRENT_URL: &str =
    "https://www.vlfeat.org/matconvnet/models/imagenet-vgg-verydeep-16.mat";
/// The default weights file name (both VGG-19 variants carry it).
pub const VGG19_FILE_NAME: &str = "imagenet-vgg-verydeep-19.mat";
/// The default weights folder.
pub const DEFAULT_DIR: &str = "pretrained-model";

/// Which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// VGG-19.
    Vgg19,
    /// VGG-16.
    Vgg16,
}

/// Which published file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// MatConvNet beta16.
    Beta16,
    /// Current.
    Current,
}

impl WeightsSource {
    /// The published file for a model and variant; `None` for VGG-16 beta16 (not known to us).
    pub fn published(model: Model, variant: Variant) -> Option<WeightsSource> {
        match (model, variant) {
            (Model::Vgg19, Variant::Beta16) => Some(WeightsSource {
                url: VGG19_BETA16_URL.to_owned(),
                file_name: VGG19_FILE_NAME,
                md5: Some(VGG19_BETA16_MD5),
                size: None,
            }),
            (Model::Vgg19, Variant::Current) => Some(WeightsSource {
                url: VGG19_CURRENT_URL.to_owned(),
                file_name: VGG19_FILE_NAME,
                md5: Some(VGG19_CURRENT_MD5),
                size: Some(VGG19_CURRENT_SIZE),
            }),
            (Model::Vgg16, Variant::Current) => Some(WeightsSource {
                url: VGG16_CURRENT_URL.to_owned(),
                file_name: "imagenet-vgg-verydeep-16.mat",
                md5: None,
                size: None,
            }),
            (Model::Vgg16, Variant::Beta16) => None,
        }
    }

    /// The default: VGG-19, current layout.
    pub fn default_vgg19() -> WeightsSource {
        WeightsSource::published(Model::Vgg19, Variant::Current)
            .expect("VGG-19 current is published")
    }
}

/// Checksums of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksums {
    /// MD5, lower-case hex.
    pub md5: String,
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// Bytes hashed.
    pub bytes: u64,
}

/// What [`fetch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The file was already in place and matched (or no checksum is known and it exists).
    AlreadyPresent(Checksums),
    /// The file was downloaded; `verified` says whether a published checksum was compared.
    Downloaded {
        /// Its checksums.
        checksums: Checksums,
        /// Whether a published MD5 was compared (and matched).
        verified: bool,
        /// Bytes that came from an earlier partial download.
        resumed_from: u64,
    },
}

/// How to report progress.
pub trait Progress {
    /// The download starts (or resumes at `done`) with `total` bytes if known.
    fn start(&mut self, done: u64, total: Option<u64>);
    /// `done` bytes are in.
    fn advance(&mut self, done: u64);
    /// Done (or failed).
    fn finish(&mut self);
}

/// No progress reporting.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _: u64, _: Option<u64>) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
}

/// Makes sure `dest` holds `source`: does nothing if it is there and matches, downloads it otherwise
/// (unless `offline`).
///
/// # Errors
/// [`DownloadError::Offline`] when the file is missing and `offline`; [`DownloadError::Network`] when the
/// server cannot be reached; [`DownloadError::Checksum`] when the bytes are wrong;
/// [`DownloadError::ExistingMismatch`] when a file in place does not match; [`DownloadError::Io`] for
/// local trouble.
pub fn fetch(
    source: &WeightsSource,
    dest: &Path,
    offline: bool,
    progress: &mut dyn Progress,
) -> Result<Outcome> {
    if dest.is_file() {
        let sums = checksums(dest)?;
        if let Some(expected) = source.md5
            && sums.md5 != expected
        {
            return Err(DownloadError::ExistingMismatch {
                path: dest.to_owned(),
                expected: expected.to_owned(),
                actual: sums.md5,
            });
        }
        return Ok(Outcome::AlreadyPresent(sums));
    }
    if offline {
        return Err(DownloadError::Offline {
            dest: dest.to_owned(),
            url: source.url.clone(),
            md5: source.md5.map(str::to_owned),
        });
    }
    download(source, dest, progress)
}

/// The `.part` file of `dest`.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".part");
    dest.with_file_name(name)
}

fn download(source: &WeightsSource, dest: &Path, progress: &mut dyn Progress) -> Result<Outcome> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| DownloadError::Io { path, source }
    };
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let part = part_path(dest);
    let have = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let net_err = |reason: String| DownloadError::Network {
        url: source.url.clone(),
        dest: dest.to_owned(),
        reason,
        md5: source.md5.map(str::to_owned),
    };

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = agent.get(&source.url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request.call().map_err(|e| net_err(e.to_string()))?;
    let status = response.status().as_u16();
    let content_length = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (mut file, resumed_from, total) = match status {
        206 => {
            let file = OpenOptions::new()
                .append(true)
                .open(&part)
                .map_err(io_err(&part))?;
            (file, have, content_length.map(|n| n + have))
        }
        200 => {
            // A fresh download, or a server that ignored the range: start over.
            let file = File::create(&part).map_err(io_err(&part))?;
            (file, 0, content_length)
        }
        416 if have > 0 => {
            // Nothing left to fetch: the partial file is complete (or longer than the file); verify it.
            let file = OpenOptions::new()
                .append(true)
                .open(&part)
                .map_err(io_err(&part))?;
            (file, have, Some(have))
        }
        code => return Err(net_err(format!("the server answered HTTP {code}"))),
    };
    progress.start(resumed_from, total.or(source.size));
    if status != 416 {
        let mut reader = response.into_body().into_reader();
        copy_body(&mut reader, &mut file, resumed_from, total, progress).map_err(|e| match e {
            Copied::Read(reason) => net_err(reason),
            Copied::Write(e) => io_err(&part)(e),
        })?;
    }
    file.sync_all().map_err(io_err(&part))?;
    drop(file);
    progress.finish();
    let sums = checksums(&part)?;
    let verified = match source.md5 {
        Some(expected) if sums.md5 != expected => {
            let _ = fs::remove_file(&part);
            return Err(DownloadError::Checksum {
                url: source.url.clone(),
                expected: expected.to_owned(),
                actual: sums.md5,
                part,
            });
        }
        Some(_) => true,
        None => false,
    };
    fs::rename(&part, dest).map_err(io_err(dest))?;
    Ok(Outcome::Downloaded {
        checksums: sums,
        verified,
        resumed_from,
    })
}

/// Why copying a response body stopped.
enum Copied {
    /// The connection broke or closed early (a message for the user).
    Read(String),
    /// The file could not be written.
    Write(io::Error),
}

/// Appends the body from `reader` to `file`, reporting progress from `done` bytes on; fails when the
/// connection breaks or ends before `total`.
fn copy_body(
    reader: &mut dyn Read,
    file: &mut File,
    mut done: u64,
    total: Option<u64>,
    progress: &mut dyn Progress,
) -> std::result::Result<(), Copied> {
    let mut buf = vec![0_u8; 1 << 16];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                progress.finish();
                return Err(Copied::Read(format!(
                    "the connection broke after {done} bytes ({e}); run again to resume"
                )));
            }
        };
        file.write_all(&buf[..n]).map_err(Copied::Write)?;
        done += n as u64;
        progress.advance(done);
    }
    if let Some(total) = total
        && done < total
    {
        progress.finish();
        return Err(Copied::Read(format!(
            "the connection closed after {done} of {total} bytes; run again to resume"
        )));
    }
    Ok(())
}

/// MD5 and SHA-256 of a file, streamed.
///
/// # Errors
/// [`DownloadError::Io`] when it cannot be read.
pub fn checksums(path: &Path) -> Result<Checksums> {
    let io_err = |source| DownloadError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let mut md5 = Md5::new();
    let mut sha = Sha256::new();
    let mut buf = vec![0_u8; 1 << 20];
    let mut bytes = 0_u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        md5.update(&buf[..n]);
        sha.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(Checksums {
        md5: hex(&md5.finalize()),
        sha256: hex(&sha.finalize()),
        bytes,
    })
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        write!(s, "{b:02x}").expect("writing to a String cannot fail");
    }
    s
}

#[cfg(test)]
mod tests;
