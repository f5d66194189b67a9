//! The command surface: every command exists, has a one-line help, and unfinished ones exit 2.

use canary_lab_tests::cli::Cli;

#[test]
fn every_command_has_help() {
    let commands: &[&[&str]] = &[
        &["lab", "up"],
        &["lab", "doctor"],
        &["lab", "stages"],
        &["lab", "stage"],
        &["lab", "reset"],
        &["lab", "check"],
        &["lab", "predict"],
        &["lab", "render"],
        &["lab", "status"],
        &["lab", "down"],
        &["istio", "fetch"],
        &["test"],
        &["bench"],
    ];
    let top = Cli::new(&["lab", "--help"]).run();
    assert_eq!(top.code, 0);
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let output = Cli::new(&args).run();
        assert_eq!(output.code, 0, "{command:?}: {output:#?}");
        assert!(
            output.stdout.lines().next().is_some_and(|line| !line.trim().is_empty()),
            "{command:?} has no summary"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let output = Cli::new(&["lab", "no-such-command"]).run();
    assert_eq!(output.code, 2, "{output:#?}");
    let output = Cli::new(&["lab", "doctor", "--format", "yaml"]).run();
    assert_eq!(output.code, 2, "{output:#?}");
}
