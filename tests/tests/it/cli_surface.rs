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
        &["lab", "verify"],
        &["lab", "watch"],
        &["lab", "tour"],
        &["lab", "handout"],
        &["lab", "bundle", "create"],
        &["lab", "predict"],
        &["lab", "render"],
        &["lab", "status"],
        &["lab", "down"],
        &["istio", "fetch"],
        &["test"],
        &["bench"],
    ];
    let top = Cli::new(["lab", "--help"]).run();
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
    let output = Cli::new(["lab", "no-such-command"]).run();
    assert_eq!(output.code, 2, "{output:#?}");
    let output = Cli::new(["lab", "doctor", "--format", "yaml"]).run();
    assert_eq!(output.code, 2, "{output:#?}");
}

#[test]
fn stages_are_listed_in_order_one_line_each() {
    let output = Cli::new(["lab", "stages"]).run();
    assert_eq!(output.code, 0, "{output:#?}");
    let names: Vec<&str> = output
        .stdout
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().nth(1).unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["stable", "canary-deployed", "split-70-30", "focused"],
        "{}",
        output.stdout
    );
    let json = Cli::new(["lab", "stages", "--format", "json"]).run();
    let stages: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(stages[2]["name"], "split-70-30");
}
