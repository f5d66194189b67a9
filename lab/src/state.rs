//! What `lab up` records in the state directory for later commands: the ingress URL.

use anyhow::Context;

use crate::Settings;

/// The file under the state directory that holds the ingress URL (one line).
pub const INGRESS_URL_FILE: &str = "ingress-url";

/// The ingress URL that `lab up` recorded, or `None` when it has not recorded one.
pub fn read_ingress_url(settings: &Settings) -> anyhow::Result<Option<String>> {
    let path = settings.state_dir.join(INGRESS_URL_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let url = text.lines().next().unwrap_or_default().trim();
            Ok((!url.is_empty()).then(|| url.to_string()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading the ingress URL from \"{}\"", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_line_and_treats_absence_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::with_defaults("minikube").unwrap();
        settings.state_dir = dir.path().to_path_buf();
        assert_eq!(read_ingress_url(&settings).unwrap(), None);
        std::fs::write(dir.path().join(INGRESS_URL_FILE), "http://127.0.0.1:31380\n").unwrap();
        assert_eq!(
            read_ingress_url(&settings).unwrap().as_deref(),
            Some("http://127.0.0.1:31380")
        );
    }
}
