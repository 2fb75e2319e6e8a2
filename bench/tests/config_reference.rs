//! `docs/CONFIG.md` is what the config structs say now: a key, a default or a doc comment
//! changed without regenerating the reference fails here.

#[test]
fn the_checked_in_reference_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONFIG.md");
    let on_disk = std::fs::read_to_string(path).expect("docs/CONFIG.md");
    let generated = bench::config_ref::markdown();
    assert!(
        on_disk == generated,
        "docs/CONFIG.md is stale: regenerate it with\n  cargo run -p bench --bin ttbench -- config-reference > docs/CONFIG.md"
    );
}
