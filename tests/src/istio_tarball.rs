//! Release-like Istio tarballs for the fetch tests: an `istioctl` shell script that answers
//! `istioctl version --remote=false -o json`, filler, and crafted hostile entries.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

/// A tarball being built.
#[derive(Debug, Default)]
pub struct Tarball {
    entries: Vec<TarEntry>,
}

#[derive(Debug)]
enum TarEntry {
    File { path: String, data: Vec<u8>, mode: u32 },
    Directory { path: String },
    Symlink { path: String, target: String },
    HardLink { path: String, target: String },
    Fifo { path: String },
    PaxGlobalHeader,
}

impl Tarball {
    /// An empty tarball.
    pub fn new() -> Tarball {
        Tarball::default()
    }

    /// The istioctl-only release: `istioctl` (executable) reporting `version`.
    pub fn istioctl_release(version: &str) -> Tarball {
        Tarball::new().file("istioctl", istioctl_script(version).as_bytes(), 0o755)
    }

    /// The full release: `istio-<version>/bin/istioctl`, a sample and a manifest.
    pub fn full_release(version: &str) -> Tarball {
        Tarball::new()
            .pax_global_header()
            .directory(&format!("istio-{version}/"))
            .directory(&format!("istio-{version}/bin/"))
            .file(
                &format!("istio-{version}/bin/istioctl"),
                istioctl_script(version).as_bytes(),
                0o755,
            )
            .file(&format!("istio-{version}/samples/README.md"), b"samples\n", 0o644)
            .file(&format!("istio-{version}/manifest.yaml"), b"version: x\n", 0o644)
    }

    /// Adds a regular file. The path is written as given, even `../x` or `/abs` (the `tar` crate would refuse).
    #[must_use]
    pub fn file(mut self, path: &str, data: &[u8], mode: u32) -> Tarball {
        self.entries.push(TarEntry::File {
            path: path.to_string(),
            data: data.to_vec(),
            mode,
        });
        self
    }

    /// Adds a directory entry.
    #[must_use]
    fn directory(mut self, path: &str) -> Tarball {
        self.entries.push(TarEntry::Directory { path: path.to_string() });
        self
    }

    /// Adds a symlink `path` → `target`, written as given.
    #[must_use]
    pub fn symlink(mut self, path: &str, target: &str) -> Tarball {
        self.entries.push(TarEntry::Symlink {
            path: path.to_string(),
            target: target.to_string(),
        });
        self
    }

    /// Adds a hard link `path` → `target`, written as given.
    #[must_use]
    pub fn hard_link(mut self, path: &str, target: &str) -> Tarball {
        self.entries.push(TarEntry::HardLink {
            path: path.to_string(),
            target: target.to_string(),
        });
        self
    }

    /// Adds a pax global header (as `git archive` writes first): metadata, not a file.
    #[must_use]
    fn pax_global_header(mut self) -> Tarball {
        self.entries.push(TarEntry::PaxGlobalHeader);
        self
    }

    /// Adds a named pipe (tar entry type 6).
    #[must_use]
    pub fn fifo(mut self, path: &str) -> Tarball {
        self.entries.push(TarEntry::Fifo { path: path.to_string() });
        self
    }

    /// Adds `size` bytes of pseudo-random, incompressible data (the same for the same `seed`).
    #[must_use]
    pub fn random_file(self, path: &str, size: usize, seed: u64) -> Tarball {
        let mut state = seed | 1;
        let mut data = Vec::with_capacity(size + 8);
        while data.len() < size {
            // xorshift64: fast, and gzip cannot shrink it.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            data.extend_from_slice(&state.to_le_bytes());
        }
        data.truncate(size);
        self.file(path, &data, 0o644)
    }

    /// The gzip-compressed tar.
    pub fn build(&self) -> Vec<u8> {
        let encoder = GzEncoder::new(Vec::new(), Compression::fast());
        let mut builder = tar::Builder::new(encoder);
        for entry in &self.entries {
            let mut header = tar::Header::new_old();
            let (path, data, mode, kind, target): (&str, &[u8], u32, tar::EntryType, Option<&str>) = match entry {
                TarEntry::File { path, data, mode } => (path, data, *mode, tar::EntryType::Regular, None),
                TarEntry::Directory { path } => (path, &[], 0o755, tar::EntryType::Directory, None),
                TarEntry::Symlink { path, target } => (path, &[], 0o777, tar::EntryType::Symlink, Some(target)),
                TarEntry::HardLink { path, target } => (path, &[], 0o644, tar::EntryType::Link, Some(target)),
                TarEntry::Fifo { path } => (path, &[], 0o644, tar::EntryType::Fifo, None),
                TarEntry::PaxGlobalHeader => (
                    "pax_global_header",
                    b"27 comment=canary-lab-test\n",
                    0o644,
                    tar::EntryType::XGlobalHeader,
                    None,
                ),
            };
            // Raw name fields: `Header::set_path` refuses `..` and absolute paths, and hostile archives are the point.
            let name = &mut header.as_old_mut().name;
            assert!(path.len() < name.len(), "test paths fit the old header");
            name[..path.len()].copy_from_slice(path.as_bytes());
            if let Some(target) = target {
                let link_name = &mut header.as_old_mut().linkname;
                assert!(target.len() < link_name.len(), "test link targets fit the old header");
                link_name[..target.len()].copy_from_slice(target.as_bytes());
            }
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_size(data.len() as u64);
            header.set_mtime(1_650_000_000);
            header.set_cksum();
            builder.append(&header, data).expect("append to an in-memory tar");
        }
        let encoder = builder.into_inner().expect("finish the tar");
        let mut bytes = encoder.finish().expect("finish the gzip stream");
        bytes.flush().expect("flush");
        bytes
    }
}

/// A POSIX shell script that prints what `istioctl version --remote=false -o json` prints for `version`.
fn istioctl_script(version: &str) -> String {
    format!(
        "#!/bin/sh\n# A stand-in for istioctl {version}: answers `version --remote=false -o json`.\n\
         case \"$*\" in\n  \"version --remote=false -o json\")\n    \
         echo '{{\"clientVersion\":{{\"version\":\"{version}\",\"revision\":\"test\",\"golang_version\":\"go1.17.9\",\"status\":\"Clean\",\"tag\":\"{version}\"}}}}'\n    ;;\n  \
         *) echo \"unexpected arguments: $*\" >&2; exit 64 ;;\nesac\n"
    )
}
