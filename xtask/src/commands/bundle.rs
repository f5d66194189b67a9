//! `lab bundle create DIR`: make an offline bundle ([`lab::lifecycle::bundle::create`]) and say what is in it.

use lab::istio::Platform;
use lab::lifecycle::bundle::create::{CreateOptions, create_bundle};
use lab::output::to_json;
use lab::{CommandStatus, Format, Settings};

use crate::CommandResult;
use crate::flags::BundleCreateFlags;

/// Makes the bundle, with progress on stderr and the summary on stdout.
pub(crate) async fn create(settings: &Settings, flags: &BundleCreateFlags) -> CommandResult {
    let options = CreateOptions {
        dir: flags.dir.clone(),
        models: !flags.without_models,
        platforms: if flags.all_platforms {
            Platform::ALL.to_vec()
        } else {
            let this = Platform::current()?;
            flags
                .platforms
                .iter()
                .map(|flag| flag.platform().unwrap_or(this))
                .collect()
        },
    };
    let created = create_bundle(settings, &options, &|note| eprintln!("  … {note}")).await?;
    match settings.format {
        Format::Json => println!("{}", to_json(&created)),
        Format::Human => {
            println!(
                "bundle \"{}\": {} files, {:.1} MB ({} images, istioctl for {}{})",
                created.dir.display(),
                created.files,
                created.bytes as f64 / 1e6,
                created.images.len(),
                created.platforms.join(", "),
                if created.models {
                    ", the models"
                } else {
                    ", the export image instead of the models"
                }
            );
            println!(
                "on each laptop: copy it, then `cargo xtask lab up --bundle {}`",
                created.dir.display()
            );
        }
    }
    Ok(CommandStatus::Ok)
}
