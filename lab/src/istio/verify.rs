//! Checksums: the pinned table, the release's `.sha256` files, `--sha256`, and the trust-on-first-use lock file.
//!
//! Every archive is checked against every expectation that applies before anything is unpacked: the pinned sum
//! (`assets/istio-checksums.toml`, embedded in the binary) and the release's own `<asset>.sha256`, or only the
//! `--sha256` given by hand. An asset with no pin is trusted on first use: its sum goes into the cache's lock file
//! and a later archive with another sum is refused.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The pinned table, embedded so that a tampered cache or mirror cannot change it.
const PINNED_TABLE: &str = include_str!("../../../assets/istio-checksums.toml");

/// One sum an archive must have, and where that expectation comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Where it comes from.
    pub origin: Origin,
}

/// Where an expected sum comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `--sha256` on the command line (replaces the others).
    Flag,
    /// `assets/istio-checksums.toml`.
    Pinned,
    /// The release's `<asset>.sha256`, at this URL or path.
    ReleaseFile(String),
    /// Recorded in this lock file the first time the asset was fetched.
    TrustedOnFirstUse(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag => write!(f, "from --sha256"),
            Origin::Pinned => write!(f, "pinned in assets/istio-checksums.toml"),
            Origin::ReleaseFile(url) => write!(f, "published in \"{url}\""),
            Origin::TrustedOnFirstUse(path) => write!(f, "recorded on first use in \"{}\"", path.display()),
        }
    }
}

#[derive(Debug, Deserialize)]
struct PinnedTable {
    sha256: BTreeMap<String, String>,
}

/// The pinned SHA-256 of `asset`, if the table has one.
pub fn pinned_sha256(asset: &str) -> Option<String> {
    let table: PinnedTable = toml::from_str(PINNED_TABLE).expect("assets/istio-checksums.toml is valid (unit-tested)");
    table.sha256.get(asset).map(|sum| sum.to_ascii_lowercase())
}

/// Checks that `text` is a SHA-256 in hex (64 digits) and returns it in lowercase.
pub fn parse_sha256_hex(text: &str) -> anyhow::Result<String> {
    let trimmed = text.trim();
    let valid = trimmed.len() == 64 && trimmed.chars().all(|c| c.is_ascii_hexdigit());
    if valid {
        Ok(trimmed.to_ascii_lowercase())
    } else {
        anyhow::bail!("\"{trimmed}\" is not a SHA-256 (64 hex digits)")
    }
}

/// Reads a release `.sha256` file (`<hex digest> <file name>`): the first field is the sum.
pub fn parse_sha256_file(text: &str, location: &str) -> anyhow::Result<String> {
    let first_field = text.split_whitespace().next().unwrap_or_default();
    parse_sha256_hex(first_field).with_context(|| format!("reading the checksum file \"{location}\""))
}

/// The first expectation `actual` does not meet, if any.
pub fn first_mismatch<'a>(actual: &str, expectations: &'a [Expected]) -> Option<&'a Expected> {
    expectations.iter().find(|expected| expected.sha256 != actual)
}

/// A SHA-256 hasher fed with the whole of `path`.
pub fn hash_file(path: &Path) -> io::Result<Sha256> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(hasher);
        }
        hasher.update(&buffer[..read]);
    }
}

/// The lowercase hex SHA-256 of the whole of `path`.
pub fn sha256_of_file(path: &Path) -> io::Result<String> {
    Ok(hex::encode(hash_file(path)?.finalize()))
}

/// The trust-on-first-use lock file: `<sha256>  <asset>` per line, like `sha256sum` writes.
#[derive(Debug, Clone)]
pub struct TrustStore {
    path: PathBuf,
    entries: BTreeMap<String, String>,
}

impl TrustStore {
    /// Reads the lock file at `path` (an absent file is an empty store).
    pub fn load(path: &Path) -> anyhow::Result<TrustStore> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => String::new(),
            Err(error) => {
                return Err(error).with_context(|| format!("reading the checksum lock file \"{}\"", path.display()));
            }
        };
        let mut entries = BTreeMap::new();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let mut fields = line.split_whitespace();
            let (Some(sum), Some(asset)) = (fields.next(), fields.next()) else {
                anyhow::bail!(
                    "the checksum lock file \"{}\" has a malformed line \"{line}\"\nhelp: delete the file to trust the next download again",
                    path.display()
                );
            };
            entries.insert(asset.to_string(), parse_sha256_hex(sum)?);
        }
        Ok(TrustStore {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sum recorded for `asset`.
    pub fn get(&self, asset: &str) -> Option<&str> {
        self.entries.get(asset).map(String::as_str)
    }

    /// Records `sha256` for `asset` and rewrites the file (temp file, fsync, rename).
    pub fn record(&mut self, asset: &str, sha256: &str) -> anyhow::Result<()> {
        self.entries.insert(asset.to_string(), sha256.to_string());
        let text: String = self
            .entries
            .iter()
            .map(|(asset, sum)| format!("{sum}  {asset}\n"))
            .collect();
        crate::fs_atomic::write_atomically(&self.path, text.as_bytes(), None)
            .with_context(|| format!("writing the checksum lock file \"{}\"", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_table_has_the_three_known_1_12_7_sums() {
        assert_eq!(
            pinned_sha256("istioctl-1.12.7-linux-amd64.tar.gz").as_deref(),
            Some("8e094e06e48ad55f1e9fabb95332328af4099ed1255e0e46767505b38ef54c84")
        );
        assert_eq!(
            pinned_sha256("istioctl-1.12.7-osx.tar.gz").as_deref(),
            Some("434fe3ca3ce2c23280260b09e99931ca0df5cacaa6d81f4aaf14cf930f9b1d1a")
        );
        assert_eq!(
            pinned_sha256("istioctl-1.12.7-linux-arm64.tar.gz").as_deref(),
            Some("21747e942ba4a3dd5d97990e36d71454b9d7c0b1cf9fee04c0206c7ace181679")
        );
        assert_eq!(pinned_sha256("istio-1.12.7-linux-amd64.tar.gz"), None);
    }

    #[test]
    fn every_pinned_sum_is_a_sha256() {
        let table: PinnedTable = toml::from_str(PINNED_TABLE).unwrap();
        for (asset, sum) in &table.sha256 {
            assert!(parse_sha256_hex(sum).is_ok(), "{asset}: {sum}");
        }
    }

    #[test]
    fn sha256_file_takes_the_first_field() {
        let sum = "8E094E06E48AD55F1E9FABB95332328AF4099ED1255E0E46767505B38EF54C84";
        let text = format!("{sum} istioctl-1.12.7-linux-amd64.tar.gz\n");
        assert_eq!(parse_sha256_file(&text, "x").unwrap(), sum.to_ascii_lowercase());
        let error = parse_sha256_file("Not Found", "https://example/x.sha256").unwrap_err();
        assert!(format!("{error:#}").contains("https://example/x.sha256"), "{error:#}");
        assert!(parse_sha256_file("", "x").is_err());
    }

    #[test]
    fn first_mismatch_names_the_failing_expectation() {
        let good = "a".repeat(64);
        let expectations = vec![
            Expected {
                sha256: good.clone(),
                origin: Origin::Pinned,
            },
            Expected {
                sha256: "b".repeat(64),
                origin: Origin::ReleaseFile("u".into()),
            },
        ];
        assert_eq!(
            first_mismatch(&good, &expectations).unwrap().origin,
            Origin::ReleaseFile("u".into())
        );
        assert_eq!(first_mismatch(&good, &expectations[..1]), None);
    }

    #[test]
    fn trust_store_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trusted-sha256.txt");
        let mut store = TrustStore::load(&path).unwrap();
        assert_eq!(store.get("a.tar.gz"), None);
        store.record("a.tar.gz", &"c".repeat(64)).unwrap();
        let reloaded = TrustStore::load(&path).unwrap();
        assert_eq!(reloaded.get("a.tar.gz"), Some("c".repeat(64).as_str()));
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(TrustStore::load(&path).is_err());
    }
}
