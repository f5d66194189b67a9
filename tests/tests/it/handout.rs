//! `lab handout --out DIR` as a learner and an instructor meet it: every stage's YAML is what `lab render --stage`
//! prints, the HTML parses as a browser parses it and reaches nothing outside the page (and Chromium draws it), an
//! instructor's edit of `assets/` shows in the regenerated handout, a stage without an explanation is refused with
//! the file it needs, and `--format json` names the two files.

use std::path::{Path, PathBuf};

use crate::manifests::assets_copy;
use canary_lab_tests::cli::{Cli, CliOutput};
use lab::definition::manifests::parse_documents;
use lab::definition::stages::LabDefinition;
use scraper::{Html, Selector};
use serde_json::Value;

/// `lab handout --out DIR` with `CANARY_LAB_ASSETS=assets` when given; returns the output and the two files' text.
fn handout(out: &Path, assets: Option<&Path>) -> (CliOutput, String, String) {
    let mut cli = Cli::new(
        ["lab", "handout", "--out"]
            .map(String::from)
            .into_iter()
            .chain([out.display().to_string()]),
    );
    if let Some(assets) = assets {
        cli = cli.env("CANARY_LAB_ASSETS", assets);
    }
    let output = cli.run();
    assert_eq!(output.code, 0, "{output:#?}");
    let markdown = std::fs::read_to_string(out.join("handout.md")).unwrap();
    let html = std::fs::read_to_string(out.join("handout.html")).unwrap();
    (output, markdown, html)
}

/// Replaces `from` (which must be there) by `to` in the file at `path`.
fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "no {from:?} in {}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// The Markdown section of stage `name`: from its `## Stage N: name — …` heading to the next stage's.
fn markdown_section<'a>(markdown: &'a str, number: usize, name: &str) -> &'a str {
    let heading = format!("\n## Stage {number}: {name} — ");
    let start = markdown
        .find(&heading)
        .unwrap_or_else(|| panic!("no {heading:?} in the handout"));
    let rest = &markdown[start + 1..];
    let end = rest[1..].find("\n## ").map(|end| end + 1).unwrap_or(rest.len());
    &rest[..end]
}

/// The contents of the fenced code blocks of `language` in `markdown` (fences of three or more backticks).
fn fenced_blocks(markdown: &str, language: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, Vec<&str>)> = None;
    for line in markdown.lines() {
        match &mut open {
            None if line.starts_with("```") => {
                let fence: String = line.chars().take_while(|c| *c == '`').collect();
                if line[fence.len()..] == *language {
                    open = Some((fence, Vec::new()));
                }
            }
            Some((fence, lines)) if line == fence => {
                blocks.push(lines.join("\n"));
                open = None;
            }
            Some((_, lines)) => lines.push(line),
            None => {}
        }
    }
    blocks
}

/// The objects `lab render --stage NAME` prints (with `assets` as the assets directory, when given).
fn rendered(name: &str, assets: Option<&Path>) -> Vec<Value> {
    let mut cli = Cli::new(["lab", "render", "--stage", name]);
    if let Some(assets) = assets {
        cli = cli.env("CANARY_LAB_ASSETS", assets);
    }
    let output = cli.run();
    assert_eq!(output.code, 0, "{output:#?}");
    objects(&output.stdout)
}

fn objects(yaml: &str) -> Vec<Value> {
    parse_documents("handout", yaml)
        .unwrap()
        .into_iter()
        .map(|manifest| manifest.object)
        .collect()
}

fn select<'a>(html: &'a Html, selector: &str) -> Vec<scraper::ElementRef<'a>> {
    html.select(&Selector::parse(selector).unwrap()).collect()
}

#[test]
fn every_stage_shows_exactly_the_objects_lab_render_prints() {
    let out = tempfile::tempdir().unwrap();
    let (output, markdown, html) = handout(out.path(), None);
    assert_eq!(
        output.stdout,
        format!(
            "wrote {}\nwrote {}\n",
            out.path().join("handout.md").display(),
            out.path().join("handout.html").display()
        )
    );
    let page = Html::parse_document(&html);
    let lab = LabDefinition::load_default().unwrap();
    assert_eq!(lab.stages.len(), 4);
    for (index, stage) in lab.stages.iter().enumerate() {
        let expected = rendered(&stage.name, None);
        assert!(expected.len() >= 5, "{}: {expected:?}", stage.name);
        let section = markdown_section(&markdown, index + 1, &stage.name);
        let in_markdown = objects(&fenced_blocks(section, "yaml").join("\n---\n"));
        assert_eq!(in_markdown, expected, "stage {} in handout.md", stage.name);
        let yaml_in_html: Vec<String> = select(&page, &format!("section[data-stage=\"{}\"] pre.yaml code", stage.name))
            .iter()
            .map(|code| code.text().collect())
            .collect();
        assert_eq!(
            objects(&yaml_in_html.join("\n---\n")),
            expected,
            "stage {} in handout.html",
            stage.name
        );
        // Each manifest file is applied by path, in the stage's order, and that path is the file the lab reads.
        let commands = fenced_blocks(section, "sh").join("\n");
        let applied: Vec<&str> = commands
            .lines()
            .filter_map(|line| line.strip_prefix("kubectl apply -f "))
            .collect();
        assert_eq!(applied.len(), stage.manifests.len(), "{commands}");
        for (path, file) in applied.iter().zip(&stage.manifests) {
            let shown = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
            assert!(path.ends_with(&format!("/{file}")), "{path} for {file}");
            assert_eq!(
                std::fs::read(&shown).unwrap(),
                std::fs::read(lab.manifests_dir.join(file)).unwrap()
            );
        }
        assert!(
            commands.contains(&format!("cargo xtask lab stage {}", stage.name)),
            "{commands}"
        );
        assert!(
            section.contains(&format!("`cargo xtask lab verify {}` checks", stage.name)),
            "{section}"
        );
    }
    // The explanations and the expected results are there, in words and as charts.
    let split = markdown_section(&markdown, 3, "split-70-30");
    assert!(
        split.contains("- Without extra headers: resnet101 ≈ 30% of the responses (accepted 15–45%)"),
        "{split}"
    );
    assert!(
        split.contains("- [ ] without headers, the VirtualService sends 70% to resnet50 and 30% to resnet101"),
        "{split}"
    );
    assert!(
        split.contains("resnet101  ██████··············  weight 30%, accepted 15–45%"),
        "{split}"
    );
    let focused = markdown_section(&markdown, 4, "focused");
    assert!(
        focused.contains("- With `user-group: canary`: every response from resnet101"),
        "{focused}"
    );
    assert!(
        focused.contains("- Without extra headers: every response from resnet50"),
        "{focused}"
    );
    assert!(
        focused.contains("The header **name** must be spelled exactly"),
        "{focused}"
    );
    let canary = markdown_section(&markdown, 2, "canary-deployed");
    assert!(canary.contains("**DestinationRule `image-classifier`**"), "{canary}");
}

#[test]
fn the_html_handout_parses_and_reaches_nothing_outside_the_page() {
    let out = tempfile::tempdir().unwrap();
    let (_, _, html) = handout(out.path(), None);
    let page = Html::parse_document(&html);
    assert!(page.errors.is_empty(), "HTML parse errors: {:?}", page.errors);
    let ids: Vec<&str> = select(&page, "[id]")
        .iter()
        .filter_map(|element| element.value().id())
        .collect();
    let mut references = 0;
    for element in select(&page, "*") {
        for (name, value) in element.value().attrs() {
            if !["src", "href", "xlink:href", "srcset", "action", "poster", "data"].contains(&name) {
                continue;
            }
            references += 1;
            match value.strip_prefix('#') {
                Some(anchor) => assert!(ids.contains(&anchor), "{name}=\"{value}\" names no element"),
                None => assert!(
                    value.starts_with("data:"),
                    "{name}=\"{value}\" reaches outside the page"
                ),
            }
        }
    }
    assert_eq!(references, 4, "the table of contents links each stage");
    assert!(select(&page, "script, link, iframe, object, embed, img").is_empty());
    for style in select(&page, "style") {
        let css: String = style.text().collect();
        assert!(!css.contains("@import") && !css.contains("url("), "{css}");
    }
    // The split stage's chart: the configured weights, and the accepted range on the tested version.
    let groups = select(&page, "section[data-stage=\"split-70-30\"] svg.split g.version");
    let weights: Vec<(&str, &str)> = groups
        .iter()
        .map(|group| (group.attr("data-version").unwrap(), group.attr("data-weight").unwrap()))
        .collect();
    assert_eq!(weights, [("resnet50", "70"), ("resnet101", "30")]);
    let bands = select(&page, "section[data-stage=\"split-70-30\"] svg.split rect.accepted");
    assert_eq!(bands.len(), 1);
    assert_eq!(
        (bands[0].attr("data-low"), bands[0].attr("data-high")),
        (Some("0.1500"), Some("0.4500"))
    );
    assert_eq!(select(&page, "section[data-stage=\"focused\"] svg.split").len(), 2);
}

#[test]
fn an_instructors_edit_shows_in_the_regenerated_handout() {
    let assets = assets_copy();
    edit(
        &assets.path().join("manifests/virtualservice-70-30.yaml"),
        "weight: 70",
        "weight: 80",
    );
    edit(
        &assets.path().join("manifests/virtualservice-70-30.yaml"),
        "weight: 30",
        "weight: 20",
    );
    edit(&assets.path().join("lab.toml"), "share = 0.30", "share = 0.20");
    edit(
        &assets.path().join("stages/split-70-30.md"),
        "# A weighted split, 70/30",
        "# A weighted split, 80/20",
    );
    let out = tempfile::tempdir().unwrap();
    let (_, markdown, html) = handout(out.path(), Some(assets.path()));
    let split = markdown_section(&markdown, 3, "split-70-30");
    assert!(
        split.starts_with("## Stage 3: split-70-30 — A weighted split, 80/20\n"),
        "{split}"
    );
    assert_eq!(
        objects(&fenced_blocks(split, "yaml").join("\n---\n")),
        rendered("split-70-30", Some(assets.path()))
    );
    assert!(
        split.contains("weight: 80\n") && !split.contains("weight: 70\n"),
        "{split}"
    );
    assert!(
        split.contains("- Without extra headers: resnet101 ≈ 20% of the responses (accepted 5–35%)"),
        "{split}"
    );
    assert!(
        split.contains("- [ ] without headers, the VirtualService sends 80% to resnet50 and 20% to resnet101"),
        "{split}"
    );
    assert!(
        split.contains("resnet101  ████················  weight 20%, accepted 5–35%"),
        "{split}"
    );
    let page = Html::parse_document(&html);
    let weights: Vec<&str> = select(&page, "section[data-stage=\"split-70-30\"] svg.split g.version")
        .iter()
        .map(|group| group.attr("data-weight").unwrap())
        .collect();
    assert_eq!(weights, ["80", "20"]);
    let band = select(&page, "section[data-stage=\"split-70-30\"] svg.split rect.accepted");
    assert_eq!(band[0].attr("data-low"), Some("0.0500"));
    // The commands apply the instructor's files.
    assert!(
        split.contains(&format!(
            "kubectl apply -f {}",
            assets.path().join("manifests/virtualservice-70-30.yaml").display()
        )),
        "{split}"
    );
}

#[test]
fn a_stage_without_an_explanation_is_refused_with_the_file_it_needs() {
    let assets = assets_copy();
    // An instructor adds a stage to lab.toml and forgets its explanation; an old file names no stage.
    let lab_toml = assets.path().join("lab.toml");
    let mut text = std::fs::read_to_string(&lab_toml).unwrap();
    text.push_str(
        "\n[[stage]]\nname = \"rollback\"\nsummary = \"back to 100/0\"\nmanifests = [\"namespace.yaml\", \"resnet50.yaml\", \"resnet101.yaml\", \"service.yaml\", \"gateway.yaml\", \"destinationrule.yaml\", \"virtualservice-100-0.yaml\"]\n\n[[stage.assert]]\nkind = \"exact\"\nversion = \"resnet50\"\n",
    );
    std::fs::write(&lab_toml, text).unwrap();
    std::fs::write(assets.path().join("stages/split-50-50.md"), "# Half and half\n").unwrap();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("handout");
    for format in ["human", "json"] {
        let output = Cli::new([
            "--format",
            format,
            "lab",
            "handout",
            "--out",
            &target.display().to_string(),
        ])
        .env("CANARY_LAB_ASSETS", assets.path())
        .run();
        assert_eq!(output.code, 2, "{output:#?}");
        let stages = assets.path().join("stages");
        let missing = format!(
            "{}: missing: stage \"rollback\" has no explanation",
            stages.join("rollback.md").display()
        );
        let orphan = format!(
            "{}: explains no stage: lab.toml has no stage \"split-50-50\"",
            stages.join("split-50-50.md").display()
        );
        let help = "help: write one Markdown file per stage, named <stage>.md";
        let shown = match format {
            "json" => output.json()["error"]["message"].as_str().unwrap().to_string(),
            _ => output.stderr.clone(),
        };
        for wanted in [&missing, &orphan] {
            assert!(shown.contains(wanted.as_str()), "no {wanted:?} in {shown}");
        }
        assert!(output.stderr.contains(help), "{}", output.stderr);
        assert!(!target.exists(), "nothing is written");
    }
}

#[test]
fn json_names_both_files_and_a_file_in_place_of_the_directory_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("class");
    let output = Cli::new([
        "--format",
        "json",
        "lab",
        "handout",
        "--out",
        &dir.display().to_string(),
    ])
    .run();
    assert_eq!(output.code, 0, "{output:#?}");
    let files = output.json();
    let path = |key: &str| PathBuf::from(files[key].as_str().unwrap_or_else(|| panic!("no {key} in {files}")));
    assert_eq!(path("markdown"), dir.join("handout.md"));
    assert_eq!(path("html"), dir.join("handout.html"));
    assert!(
        std::fs::read_to_string(path("markdown"))
            .unwrap()
            .starts_with("# canary-lab workshop handout\n")
    );
    assert!(
        std::fs::read_to_string(path("html"))
            .unwrap()
            .starts_with("<!DOCTYPE html>")
    );
    // An existing directory is fine: the handout is written again.
    let again = Cli::new(["lab", "handout", "--out", &dir.display().to_string()]).run();
    assert_eq!(again.code, 0, "{again:#?}");
    let file = out.path().join("notes.txt");
    std::fs::write(&file, "mine").unwrap();
    let refused = Cli::new(["lab", "handout", "--out", &file.display().to_string()]).run();
    assert_eq!(refused.code, 2, "{refused:#?}");
    assert!(
        refused
            .stderr
            .contains(&format!("\"{}\" is not a directory", file.display()))
            && refused
                .stderr
                .contains("help: pass a directory to write handout.md and handout.html into"),
        "{}",
        refused.stderr
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
}

#[test]
fn headless_chromium_draws_the_handout() {
    let dir = tempfile::tempdir().unwrap();
    handout(dir.path(), None);
    let screenshot = canary_lab_tests::chromium_screenshot(&dir.path().join("handout.html"), dir.path(), (1000, 800));
    let image = image::open(&screenshot).unwrap().to_rgb8();
    // The page is drawn: text and boxes cover a fair part of the first screen.
    let background = *image.get_pixel(2, 2);
    let differing = image.pixels().filter(|pixel| **pixel != background).count();
    let share = differing as f64 / f64::from(image.width() * image.height());
    assert!(
        share > 0.05,
        "only {:.2}% of the screenshot differs from the background",
        share * 100.0
    );
}
