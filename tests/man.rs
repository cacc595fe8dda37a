//! The man pages in docs/man/ are generated from the clap definitions; this test regenerates
//! them and fails if the checked-in copies are stale. `VSWITCH_UPDATE_MAN=1 cargo test --test man`
//! rewrites them.

use std::path::Path;

use clap::CommandFactory;

/// The page of `command` and, as `clap_mangen::generate_to` lays them out, one page per
/// subcommand (`vswitchctl-fdb-show.8`), so the SUBCOMMANDS references resolve.
fn pages(command: clap::Command) -> Vec<(String, Vec<u8>)> {
    fn walk(command: clap::Command, out: &mut Vec<(String, Vec<u8>)>) {
        for sub in command
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .cloned()
        {
            walk(sub, out);
        }
        let name = format!(
            "{}.8",
            command.get_display_name().unwrap_or(command.get_name())
        );
        let mut page = Vec::new();
        clap_mangen::Man::new(command)
            .section("8")
            .manual("vswitch")
            .render(&mut page)
            .expect("render man page");
        out.push((name, page));
    }
    let mut command = command;
    command.build();
    let mut out = Vec::new();
    walk(command, &mut out);
    out
}

#[test]
fn man_pages_are_current() {
    let mut all = pages(vswitch::cli::Args::command());
    all.extend(pages(vswitch::ctl::CtlArgs::command()));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/man");
    if std::env::var_os("VSWITCH_UPDATE_MAN").is_some() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        for (name, page) in &all {
            std::fs::write(dir.join(name), page).unwrap();
        }
    }
    let stale = "regenerate with `VSWITCH_UPDATE_MAN=1 cargo test --test man`";
    for (name, page) in &all {
        let current = std::fs::read(dir.join(name)).unwrap_or_default();
        assert!(
            &current == page,
            "docs/man/{name} is stale or missing: {stale}"
        );
    }
    let mut want: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    let mut have: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    want.sort();
    have.sort();
    assert_eq!(have, want, "docs/man holds pages no command has: {stale}");
}
