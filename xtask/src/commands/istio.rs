//! `istio fetch`: turn the flags into `FetchOptions`, fetch, print the verified istioctl's path as the last line.

use lab::istio::{AssetFlavor, FetchOptions, fetch_istioctl_with_origin};
use lab::output::to_json;
use lab::{CommandStatus, Format, Settings};

use crate::CommandResult;
use crate::flags::FetchFlags;

/// Fetches (or finds in the cache) a verified istioctl and prints its absolute path on stdout.
pub(crate) async fn run_fetch(settings: &Settings, flags: &FetchFlags) -> CommandResult {
    let options = fetch_options(settings, flags)?;
    let Ok(fetched) = tokio::time::timeout(*flags.timeout, fetch_istioctl_with_origin(&options)).await else {
        return Err(lab::LabError::not_ready(
            format!("fetching istioctl took longer than --timeout {}", flags.timeout),
            "rerun `cargo xtask istio fetch` (it resumes a partial download), with a longer --timeout, or download the release asset by hand and pass --archive FILE",
        )
        .into());
    };
    let fetched = fetched?;
    match settings.format {
        // The path and the sum it was verified against, where it came from.
        Format::Json => println!("{}", to_json(&fetched)),
        // The path alone, so that `$(cargo xtask istio fetch | tail -n1)` works in scripts.
        Format::Human => println!("{}", fetched.path.display()),
    }
    Ok(CommandStatus::Ok)
}

/// The typed plan: every flag checked before anything runs.
fn fetch_options(settings: &Settings, flags: &FetchFlags) -> anyhow::Result<FetchOptions> {
    let mut options = FetchOptions::lab_default(settings.cache_dir.clone());
    options.version = flags.version.clone();
    options.platform = flags.platform.platform();
    options.flavor = if flags.full {
        AssetFlavor::Full
    } else {
        AssetFlavor::IstioctlOnly
    };
    options.base_url = flags.base_url.clone();
    options.sha256 = match &flags.sha256 {
        Some(text) => Some(lab::istio::verify::parse_sha256_hex(text).map_err(|error| {
            error.context("reading --sha256\nhelp: pass the archive's SHA-256 as printed by `sha256sum FILE`")
        })?),
        None => None,
    };
    options.archive = flags.archive.clone();
    Ok(options)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::flags::{IstioCommand, TopCommand, Xtask};

    fn plan(args: &[&str]) -> anyhow::Result<FetchOptions> {
        let flags = Xtask::try_parse_from(std::iter::once("cargo xtask").chain(args.iter().copied())).unwrap();
        let mut settings = Settings::with_defaults("minikube").unwrap();
        if let Some(dir) = &flags.global.cache_dir {
            settings.cache_dir = dir.clone();
        }
        let TopCommand::Istio(IstioCommand::Fetch(fetch_flags)) = flags.command else {
            panic!("not istio fetch")
        };
        fetch_options(&settings, &fetch_flags)
    }

    #[test]
    fn flags_become_fetch_options() {
        let sum = "AB".repeat(32);
        let options = plan(&[
            "istio",
            "fetch",
            "--platform",
            "osx-arm64",
            "--full",
            "--base-url",
            "file:///m/",
            "--sha256",
            &sum,
            "--cache-dir",
            "/c",
        ])
        .unwrap();
        assert_eq!(options.platform, Some(lab::istio::Platform::OsxArm64));
        assert_eq!(options.flavor, AssetFlavor::Full);
        assert_eq!(options.base_url.as_deref(), Some("file:///m/"));
        assert_eq!(options.sha256, Some("ab".repeat(32)));
        assert_eq!(options.cache_dir, std::path::PathBuf::from("/c"));
        assert_eq!(options.version, "1.12.7");

        let defaults = plan(&["istio", "fetch"]).unwrap();
        assert_eq!((defaults.platform, defaults.flavor), (None, AssetFlavor::IstioctlOnly));
    }

    #[test]
    fn a_malformed_sha256_is_a_usage_error_naming_the_flag() {
        let error = plan(&["istio", "fetch", "--sha256", "abc"]).unwrap_err();
        assert!(format!("{error:#}").contains("--sha256"), "{error:#}");
    }
}
