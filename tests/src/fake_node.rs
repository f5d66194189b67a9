//! A model of a minikube node's image store and filesystem, for the fake `minikube`: `image ls`, `image save`,
//! `image load`, `cp` both ways, and the `ssh -- sudo find|test -f` the lab runs. It lives in a directory
//! (`$FAKE_TOOLS_DIR/node/`: `images.json`, the runtime's image references, and `fs/`, the node's root), so a test
//! can seed a node (images pulled, models exported) and read what a command left in it.
//!
//! Formats follow minikube: `image ls` prints one reference per line, normalized as the runtime lists it (the
//! default `--format short`, kubernetes/minikube `cmd/minikube/cmd/image.go`; the docker runtime's `ListImages`
//! writes each tag through `AddDockerIO`, `pkg/minikube/cruntime/docker.go`); image errors exit 80 as
//! `GUEST_IMAGE_SAVE`/`GUEST_IMAGE_LOAD` (`pkg/minikube/reason/reason.go`, `ExGuestError`); `image save IMAGE FILE` writes a
//! docker-archive tarball (`manifest.json` with `RepoTags`, the format `docker save` writes and `image load`
//! reads); `cp NODE:/PATH LOCAL` copies out of the node and `cp LOCAL /PATH` into it (`cmd/minikube/cmd/cp.go`,
//! `<node>:<absolute path>`).

use std::io::Read;
use std::path::{Path, PathBuf};

use lab::lifecycle::bundle::normalized_image;

/// What a node command printed and its exit code.
pub struct Answer {
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
    /// The exit code.
    pub code: u8,
}

impl Answer {
    fn ok(stdout: String) -> Answer {
        Answer {
            stdout,
            stderr: String::new(),
            code: 0,
        }
    }

    fn fail(stderr: String, code: u8) -> Answer {
        Answer {
            stdout: String::new(),
            stderr,
            code,
        }
    }
}

/// A node model in `dir`.
pub struct FakeNode {
    dir: PathBuf,
}

impl FakeNode {
    /// The node kept in `dir` (created when missing).
    pub fn at(dir: &Path) -> FakeNode {
        std::fs::create_dir_all(dir.join("fs")).expect("node fs");
        FakeNode { dir: dir.to_path_buf() }
    }

    /// The image references the runtime has, normalized.
    pub fn images(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("images.json"))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// Adds images as a pull would.
    pub fn pull(&self, images: &[&str]) {
        let mut all = self.images();
        for image in images {
            let normalized = normalized_image(image);
            if !all.contains(&normalized) {
                all.push(normalized);
            }
        }
        std::fs::write(self.dir.join("images.json"), serde_json::to_string(&all).unwrap()).expect("images.json");
    }

    /// The local path of the node's absolute `path`.
    pub fn path(&self, path: &str) -> PathBuf {
        self.dir.join("fs").join(path.trim_start_matches('/'))
    }

    /// Writes a file at the node's absolute `path`.
    pub fn write(&self, path: &str, contents: &[u8]) {
        let local = self.path(path);
        std::fs::create_dir_all(local.parent().unwrap()).expect("node dir");
        std::fs::write(local, contents).expect("node file");
    }

    /// Answers minikube `args` (with `-p P` already removed) when they are a node command; `None` otherwise.
    pub fn answer(&self, args: &[String]) -> Option<Answer> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["image", "ls", ..] => Some(Answer::ok(self.images().iter().map(|i| format!("{i}\n")).collect())),
            ["image", "save", image, file] => Some(self.save(image, Path::new(file))),
            ["image", "load", file] => Some(self.load(Path::new(file))),
            ["cp", source, target] => Some(self.copy(source, target)),
            ["ssh", "--", "sudo", "find", dir, "-type", "f"] => Some(self.find(dir)),
            ["ssh", "--", "sudo", "test", "-f", path] => Some(if self.path(path).is_file() {
                Answer::ok(String::new())
            } else {
                Answer::fail(String::new(), 1)
            }),
            _ => None,
        }
    }

    fn save(&self, image: &str, file: &Path) -> Answer {
        let normalized = normalized_image(image);
        if !self.images().contains(&normalized) {
            return Answer::fail(
                format!("X Exiting due to GUEST_IMAGE_SAVE: {image}: image not known\n"),
                80,
            );
        }
        let manifest =
            serde_json::json!([{"Config": "config.json", "RepoTags": [normalized], "Layers": ["layer.tar"]}]);
        let mut archive = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            archive.append_data(&mut header, name, data).expect("tar entry");
        };
        add("manifest.json", manifest.to_string().as_bytes());
        add("config.json", b"{}");
        // A layer whose bytes depend on the image, so two images' archives differ.
        let layer: Vec<u8> = normalized.bytes().cycle().take(64 * 1024).collect();
        add("layer.tar", &layer);
        match std::fs::write(file, archive.into_inner().expect("tar")) {
            Ok(()) => Answer::ok(String::new()),
            Err(error) => Answer::fail(format!("X Exiting due to GUEST_IMAGE_SAVE: {error}\n"), 80),
        }
    }

    fn load(&self, file: &Path) -> Answer {
        let tags = || -> Result<Vec<String>, String> {
            let bytes = std::fs::read(file).map_err(|error| error.to_string())?;
            let mut archive = tar::Archive::new(bytes.as_slice());
            for entry in archive.entries().map_err(|error| error.to_string())? {
                let mut entry = entry.map_err(|error| error.to_string())?;
                if entry.path().map_err(|error| error.to_string())?.as_os_str() == "manifest.json" {
                    let mut text = String::new();
                    entry.read_to_string(&mut text).map_err(|error| error.to_string())?;
                    let manifest: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                    return Ok(manifest[0]["RepoTags"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|tag| tag.as_str().map(str::to_string))
                        .collect());
                }
            }
            Err("no manifest.json".to_string())
        };
        match tags() {
            Ok(tags) => {
                self.pull(&tags.iter().map(String::as_str).collect::<Vec<_>>());
                Answer::ok(String::new())
            }
            Err(error) => Answer::fail(format!("X Exiting due to GUEST_IMAGE_LOAD: {error}\n"), 80),
        }
    }

    fn copy(&self, source: &str, target: &str) -> Answer {
        // `<node>:<absolute path>` names a node path; a bare absolute target is the control-plane node's.
        let node_path = |spec: &str| -> Option<String> {
            let (node, path) = spec.split_once(':')?;
            (!node.is_empty() && !node.contains('/') && path.starts_with('/')).then(|| path.to_string())
        };
        let result = match (node_path(source), node_path(target)) {
            // Out of the node the host's directory must exist (pkg/minikube/command/exec_runner.go `CopyFrom`
            // writes the file, creating no directory).
            (Some(from), None) => std::fs::copy(self.path(&from), target).map(|_| ()),
            // Into it the target's directory is made (ssh_runner.go `Copy`: `sudo mkdir -p DIR && sudo scp -t DIR`).
            (None, to) => {
                let to = to.unwrap_or_else(|| target.to_string());
                let local = self.path(&to);
                std::fs::create_dir_all(local.parent().unwrap()).and_then(|()| std::fs::copy(source, local).map(|_| ()))
            }
            (Some(_), Some(_)) => return Answer::fail("node to node copies are not modelled\n".into(), 1),
        };
        match result {
            Ok(()) => Answer::ok(String::new()),
            // cmd/minikube/cmd/cp.go: `exit.Error(reason.InternalCommandRunner, "Fail to copy file …")`, which is
            // MK_COMMAND_RUNNER with exit code 10 (pkg/minikube/reason/reason.go, exitcodes.go `ExProgramError`).
            Err(error) => Answer::fail(
                format!("X Exiting due to MK_COMMAND_RUNNER: Fail to copy file {source}: {error}\n"),
                10,
            ),
        }
    }

    fn find(&self, dir: &str) -> Answer {
        let root = self.path(dir);
        if !root.is_dir() {
            return Answer::fail(format!("find: '{dir}': No such file or directory\n"), 1);
        }
        let mut found = Vec::new();
        let mut pending = vec![root];
        while let Some(current) = pending.pop() {
            for entry in std::fs::read_dir(&current).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let relative = path.strip_prefix(self.dir.join("fs")).unwrap();
                    found.push(format!("/{}\n", relative.display()));
                }
            }
        }
        found.sort();
        Answer::ok(found.concat())
    }
}
