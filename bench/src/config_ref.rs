//! The configuration reference (`docs/CONFIG.md`), generated from the daemons' config structs:
//! each key's name, unit, default and meaning. The tables come from each daemon's own
//! `config::reference()` (the man pages `timed.toml(5)` and `timemaster.toml(5)` are rendered
//! from the same tables). A test compares the checked-in file with this output, so the reference
//! cannot go stale: a new key, a changed default or a changed doc comment fails CI until it is
//! regenerated (`ttbench config-reference > docs/CONFIG.md`).

/// The whole reference, as `docs/CONFIG.md` holds it.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Configuration reference\n\nGenerated from the config structs by `ttbench config-reference`; CI fails when it is\nstale. Keys are kebab-case and carry their unit; an unknown key is an error that names its\nline. \"none\" means the key is optional and absent by default. The same tables are the man\npages `timed.toml(5)` and `timemaster.toml(5)` in the packages.\n\n",
    );
    out.push_str("## timed (`/etc/truetime/timed.toml`)\n\n");
    for s in timed::config::reference() {
        out.push_str(&s.markdown());
    }
    out.push_str("## timemaster (`/etc/truetime/timemaster.toml`)\n\n");
    for s in timemaster::config::reference() {
        out.push_str(&s.markdown());
    }
    out.push_str("## both daemons\n\n");
    out.push_str(&ttsys::mgmt::reference().markdown());
    out.push_str(timemaster::config::PPS_NOTE);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use ttsys::docs::{as_table, fields};

    const TIMED_SRC: &str = include_str!("../../timed/src/config.rs");

    #[test]
    fn every_serialized_key_has_a_documented_field_and_back() {
        // The parser against serde: the keys a full timed config serializes to are exactly
        // the documented fields (options set so that they serialize too).
        let mut t = timed::config::Config::new(Vec::new());
        t.clockbound_shm_path = Some("/x".into());
        t.clockbound3_shm_path = Some("/y".into());
        t.holdover_after_ms = Some(1);
        t.void_after_ms = Some(1);
        t.max_liars = Some(1);
        t.target_epsilon_ns = Some(1);
        t.nts_trusted_certs = Some("/x".into());
        t.metrics_listen = Some(([127, 0, 0, 1], 9100).into());
        let serialized: Vec<String> = as_table(&t).keys().cloned().collect();
        let mut documented: Vec<String> = fields(TIMED_SRC, "Config")
            .into_iter()
            .map(|f| f.key)
            .collect();
        documented.sort();
        let mut serialized = serialized;
        serialized.sort();
        assert_eq!(serialized, documented);
        assert!(
            fields(TIMED_SRC, "Config")
                .iter()
                .all(|f| !f.doc.is_empty()),
            "a timed key without a doc comment"
        );
    }

    #[test]
    fn every_documented_key_is_in_the_man_pages() {
        for (page, sections) in [
            (timed::config::manual(), timed::config::reference()),
            (
                timemaster::config::manual(),
                timemaster::config::reference(),
            ),
        ] {
            let roff = page.roff();
            for s in sections {
                assert!(
                    !s.fields.is_empty(),
                    "{}: empty section {}",
                    page.name,
                    s.title
                );
                for f in s.fields {
                    let key = f.key.replace('-', "\\-");
                    assert!(roff.contains(&key), "{}: {} missing", page.name, f.key);
                }
            }
            assert!(
                roff.contains("token\\-file"),
                "{}: no [management]",
                page.name
            );
        }
    }
}
