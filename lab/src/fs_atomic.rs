//! Replacing a file atomically: a temporary file beside it, written and fsynced, then renamed over it, so neither a
//! reader nor an interrupted command ever sees half a file.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context;

/// Writes `contents` to `path` through a temporary file in the same directory, fsynced, then renamed into place.
/// `mode` sets the file's Unix permissions (`0o644` for a file others read); `None` keeps the temporary file's
/// private `0o600`. Errors name the step; the caller adds a line naming the file.
pub(crate) fn write_atomically(path: &Path, contents: &[u8], mode: Option<u32>) -> anyhow::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(directory).context("creating a temporary file")?;
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt as _;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .context("setting its permissions")?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    file.write_all(contents).and_then(|()| file.as_file().sync_all())?;
    file.persist(path).context("renaming it into place")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_sets_the_mode_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        std::fs::write(&path, "old").unwrap();
        write_atomically(&path, b"new", Some(0o644)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644);
            write_atomically(&path, b"private", None).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn a_missing_directory_names_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let error = write_atomically(&dir.path().join("missing/file"), b"x", None).unwrap_err();
        assert_eq!(error.to_string(), "creating a temporary file");
    }
}
