//! Which release asset holds istioctl: the platforms Istio publishes for and the two archive flavours.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::Context;

use super::FetchError;

/// The platforms Istio publishes istioctl for, named as in the asset names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Platform {
    /// `linux-amd64`.
    LinuxAmd64,
    /// `linux-arm64`.
    LinuxArm64,
    /// `osx` (Intel).
    Osx,
    /// `osx-arm64` (Apple silicon).
    OsxArm64,
}

impl Platform {
    /// Every platform Istio publishes istioctl for.
    pub const ALL: [Platform; 4] = [
        Platform::LinuxAmd64,
        Platform::LinuxArm64,
        Platform::Osx,
        Platform::OsxArm64,
    ];

    /// This machine's platform.
    pub fn current() -> Result<Platform, FetchError> {
        match (std::env::consts::OS, std::env::consts::ARCH) {
            ("linux", "x86_64") => Ok(Platform::LinuxAmd64),
            ("linux", "aarch64") => Ok(Platform::LinuxArm64),
            ("macos", "x86_64") => Ok(Platform::Osx),
            ("macos", "aarch64") => Ok(Platform::OsxArm64),
            (os, arch) => Err(FetchError::UnsupportedPlatform {
                os: os.to_string(),
                arch: arch.to_string(),
            }),
        }
    }

    /// The name used in asset names.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::LinuxAmd64 => "linux-amd64",
            Platform::LinuxArm64 => "linux-arm64",
            Platform::Osx => "osx",
            Platform::OsxArm64 => "osx-arm64",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Platform> {
        Platform::ALL
            .into_iter()
            .find(|platform| platform.as_str() == text)
            .with_context(|| format!("unknown platform \"{text}\" (linux-amd64, linux-arm64, osx, osx-arm64)"))
    }
}

/// Which release asset to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetFlavor {
    /// `istioctl-<v>-<platform>.tar.gz`: just `istioctl` (1.12's istioctl embeds its charts).
    IstioctlOnly,
    /// `istio-<v>-<platform>.tar.gz`: `istio-<v>/` with `bin/istioctl`, samples and manifests.
    Full,
}

impl AssetFlavor {
    /// The asset's file name.
    pub fn asset_name(self, version: &str, platform: Platform) -> String {
        match self {
            AssetFlavor::IstioctlOnly => format!("istioctl-{version}-{platform}.tar.gz"),
            AssetFlavor::Full => format!("istio-{version}-{platform}.tar.gz"),
        }
    }

    /// Where the asset keeps istioctl.
    pub fn istioctl_in_archive(self, version: &str) -> PathBuf {
        match self {
            AssetFlavor::IstioctlOnly => PathBuf::from("istioctl"),
            AssetFlavor::Full => PathBuf::from(format!("istio-{version}/bin/istioctl")),
        }
    }
}
