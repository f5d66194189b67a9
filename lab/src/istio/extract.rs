//! Safe unpacking of a verified `.tar.gz` into an empty staging directory.
//!
//! Every entry is checked before it is written: no absolute paths, no `..`, no entry below a symlink, no symlink
//! or hard link that points outside, no device files or fifos. File modes are kept (istioctl stays executable).

use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use tar::EntryType;

use super::error::FetchError;

/// Unpacks `archive` (a gzip-compressed tar named `asset`) into `destination`, which must be an empty directory.
pub fn unpack_safely(archive: &Path, asset: &str, destination: &Path) -> anyhow::Result<()> {
    let context = || format!("unpacking \"{}\" into \"{}\"", archive.display(), destination.display());
    let file = std::fs::File::open(archive).with_context(context)?;
    let mut tarball = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    tarball.set_preserve_permissions(false);
    tarball.set_overwrite(false);
    for entry in tarball.entries().with_context(context)? {
        let mut entry = entry.with_context(context)?;
        let entry_path = entry.path().with_context(context)?.into_owned();
        let unsafe_entry = |reason: &str| FetchError::UnsafeEntry {
            asset: asset.to_string(),
            entry: entry_path.display().to_string(),
            reason: reason.to_string(),
        };
        let has_parent_component = entry_path
            .components()
            .any(|component| component == Component::ParentDir);
        if has_parent_component {
            return Err(unsafe_entry("has a `..` component").into());
        }
        let relative = match relative_inside(&entry_path) {
            Ok(relative) => relative,
            Err(reason) => return Err(unsafe_entry(reason).into()),
        };
        if relative.as_os_str().is_empty() {
            continue;
        }
        // A parent that is a symlink could lead anywhere, even when every link is checked on its own.
        let mut parent_so_far = destination.to_path_buf();
        for component in relative.parent().into_iter().flat_map(Path::components) {
            parent_so_far.push(component);
            let is_symlink = std::fs::symlink_metadata(&parent_so_far).is_ok_and(|meta| meta.file_type().is_symlink());
            if is_symlink {
                return Err(unsafe_entry("lies below a symlink").into());
            }
        }
        match entry.header().entry_type() {
            // Metadata for the archive or the next entry (GNU tar, git archive): nothing to write.
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink => continue,
            EntryType::Regular | EntryType::Continuous | EntryType::Directory => {}
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .with_context(context)?
                    .unwrap_or_default()
                    .into_owned();
                let base = relative.parent().unwrap_or(Path::new(""));
                if target.is_absolute() {
                    return Err(
                        unsafe_entry(&format!("is a symlink to the absolute path \"{}\"", target.display())).into(),
                    );
                }
                if relative_inside(&base.join(&target)).is_err() {
                    return Err(unsafe_entry(&format!(
                        "is a symlink to \"{}\", outside the archive",
                        target.display()
                    ))
                    .into());
                }
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .with_context(context)?
                    .unwrap_or_default()
                    .into_owned();
                if target.is_absolute() || relative_inside(&target).is_err() {
                    return Err(unsafe_entry(&format!(
                        "is a hard link to \"{}\", outside the archive",
                        target.display()
                    ))
                    .into());
                }
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                return Err(unsafe_entry("is a device file or fifo").into());
            }
            other => {
                return Err(unsafe_entry(&format!("has an entry type canary-lab does not unpack ({other:?})")).into());
            }
        }
        let unpacked = entry.unpack_in(destination).with_context(context)?;
        if !unpacked {
            return Err(unsafe_entry("would be written outside the destination").into());
        }
    }
    Ok(())
}

/// The path with `.` removed, or why it is not a plain relative path that stays inside (`..` is resolved
/// lexically and may not climb above the start).
fn relative_inside(path: &Path) -> Result<PathBuf, &'static str> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::CurDir => {}
            Component::ParentDir if parts.pop().is_some() => {}
            Component::ParentDir => return Err("has a `..` component that leaves the archive"),
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path"),
        }
    }
    Ok(parts.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.tar.gz` with `links` (path → target) then `files` (path, contents), written under `dir`.
    fn archive(dir: &Path, links: &[(&str, &str)], files: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join("test.tar.gz");
        let encoder = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), Default::default());
        let mut builder = tar::Builder::new(encoder);
        for (link, target) in links {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, link, target).unwrap();
        }
        for (name, contents) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(contents.len() as u64);
            header.set_mode(0o755);
            builder.append_data(&mut header, name, *contents).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap();
        path
    }

    #[test]
    fn links_that_stay_inside_are_unpacked_and_modes_kept() {
        let dir = tempfile::tempdir().unwrap();
        let tarball = archive(
            dir.path(),
            &[("bin/link", "../istioctl")],
            &[("istioctl", b"#!/bin/sh\n")],
        );
        let destination = dir.path().join("out");
        std::fs::create_dir(&destination).unwrap();
        unpack_safely(&tarball, "test.tar.gz", &destination).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(destination.join("istioctl")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o111, 0o111, "{mode:o}");
        assert_eq!(
            std::fs::read_link(destination.join("bin/link")).unwrap(),
            Path::new("../istioctl")
        );
    }

    #[test]
    fn an_entry_below_a_symlink_is_refused_even_when_the_link_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        let tarball = archive(dir.path(), &[("a", "sub")], &[("a/f", b"x")]);
        let destination = dir.path().join("out");
        std::fs::create_dir(&destination).unwrap();
        let error = unpack_safely(&tarball, "test.tar.gz", &destination).unwrap_err();
        match error.downcast_ref::<FetchError>() {
            Some(FetchError::UnsafeEntry { entry, reason, .. }) => {
                assert_eq!((entry.as_str(), reason.as_str()), ("a/f", "lies below a symlink"));
            }
            other => panic!("{other:?}"),
        }
        assert!(!destination.join("sub/f").exists());
    }

    #[test]
    fn relative_inside_resolves_dots_and_refuses_escapes() {
        assert_eq!(relative_inside(Path::new("./a/b")), Ok(PathBuf::from("a/b")));
        assert_eq!(relative_inside(Path::new("a/../b")), Ok(PathBuf::from("b")));
        assert!(relative_inside(Path::new("../x")).is_err());
        assert!(relative_inside(Path::new("a/../../x")).is_err());
        assert!(relative_inside(Path::new("/etc/passwd")).is_err());
    }
}
