//! The configuration reference (`docs/CONFIG.md`), generated from the daemons' config structs:
//! each key's name, unit, default and meaning. The meaning is the field's doc comment, read from
//! the struct's source. The default is what `Config::new` gives, serialized exactly as a file
//! would hold it. A test compares the checked-in file with this output, so the reference cannot
//! go stale: a new key, a changed default or a changed doc comment fails CI until it is
//! regenerated (`ttbench config-reference > docs/CONFIG.md`).

use std::collections::BTreeMap;
use std::fmt::Write;

const TIMED_SRC: &str = include_str!("../../timed/src/config.rs");
const TIMEMASTER_SRC: &str = include_str!("../../timemaster/src/config.rs");
const MGMT_SRC: &str = include_str!("../../ttsys/src/mgmt.rs");

/// One field of a config struct, as its source declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// The key in the file (kebab-case, or the serde rename).
    pub key: String,
    /// The Rust type.
    pub ty: String,
    /// The doc comment, joined into one line.
    pub doc: String,
    /// The field has a serde default.
    pub defaulted: bool,
}

/// The fields of `pub struct <name>` in `src`, in order.
pub fn fields(src: &str, name: &str) -> Vec<Field> {
    let start = format!("pub struct {name} {{");
    let Some(i) = src.find(&start) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let (mut doc, mut defaulted, mut rename) = (Vec::new(), false, None::<String>);
    for line in src[i + start.len()..].lines() {
        let l = line.trim();
        if l == "}" {
            break;
        }
        if let Some(d) = l.strip_prefix("///") {
            doc.push(d.trim().to_string());
        } else if l.starts_with("#[serde(") {
            defaulted |= l.contains("default");
            if let Some(r) = l.split("rename = \"").nth(1) {
                rename = r.split('"').next().map(str::to_string);
            }
        } else if let Some(f) = l.strip_prefix("pub ") {
            let (name, ty) = f.split_once(':').unwrap_or((f, ""));
            out.push(Field {
                key: rename
                    .take()
                    .unwrap_or_else(|| name.trim().replace('_', "-")),
                ty: ty.trim().trim_end_matches(',').to_string(),
                doc: doc.join(" "),
                defaulted,
            });
            doc.clear();
            defaulted = false;
        }
    }
    out
}

/// The unit a key's name carries.
fn unit(key: &str) -> &'static str {
    let suffixes = [
        ("-ms", "ms"),
        ("-ns", "ns"),
        ("-us", "µs"),
        ("-ppm", "ppm"),
        ("-ppb", "ppb"),
        ("-ppt", "ppt (10⁻¹²)"),
        ("-pct", "%"),
        ("-s", "s"),
    ];
    suffixes
        .iter()
        .find(|(s, _)| key.ends_with(s))
        .map_or("—", |(_, u)| u)
}

/// The default column: the serialized value, "required", or "none" for an absent option.
fn default_of(f: &Field, defaults: &BTreeMap<String, toml::Value>) -> String {
    let optional = f.ty.starts_with("Option<");
    if !f.defaulted && !optional {
        return "**required**".into();
    }
    match defaults.get(&f.key) {
        Some(v) if v.as_array().is_some_and(|a| a.is_empty()) => "none".into(),
        Some(v) => format!("`{v}`"),
        None => "none".into(),
    }
}

fn table(out: &mut String, title: &str, fields: &[Field], defaults: &toml::Table) {
    let defaults: BTreeMap<String, toml::Value> = defaults
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let _ = writeln!(out, "### {title}\n");
    let _ = writeln!(out, "| key | unit | default | meaning |");
    let _ = writeln!(out, "|---|---|---|---|");
    for f in fields {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            f.key,
            unit(&f.key),
            default_of(f, &defaults),
            f.doc.replace('|', "\\|")
        );
    }
    out.push('\n');
}

fn as_table<T: serde::Serialize>(v: &T) -> toml::Table {
    toml::Table::try_from(v).unwrap_or_default()
}

/// The whole reference, as `docs/CONFIG.md` holds it.
pub fn markdown() -> String {
    use timemaster::config::{AtomicConfig, Config as MConfig, GpsConfig, PpsSource};
    let mut out = String::from(
        "# Configuration reference\n\nGenerated from the config structs by `ttbench config-reference`; CI fails when it is\nstale. Keys are kebab-case and carry their unit; an unknown key is an error that names its\nline. \"none\" means the key is optional and absent by default.\n\n",
    );
    out.push_str("## timed (`/etc/timed/timed.toml`)\n\n");
    let t = timed::config::Config::new(Vec::new());
    table(
        &mut out,
        "top level",
        &fields(TIMED_SRC, "Config"),
        &as_table(&t),
    );
    let mut master = as_table(&timed::config::MasterConfig::new(""));
    master.remove("addr");
    table(
        &mut out,
        "`[[master]]` (one per source: a timemaster, or an NTP server with `kind = \"ntp\"`)",
        &fields(TIMED_SRC, "MasterConfig"),
        &master,
    );
    let mut phc = as_table(&timed::config::PhcConfig::new(
        std::path::Path::new(""),
        ttcore::phc::Timescale::Tai,
        0,
    ));
    for required in ["device", "timescale", "error-bound-ns"] {
        phc.remove(required);
    }
    table(
        &mut out,
        "`[[phc]]` (one per PTP hardware clock, in the same selection as the masters)",
        &fields(TIMED_SRC, "PhcConfig"),
        &phc,
    );
    out.push_str("## timemaster (`/etc/timemaster/timemaster.toml`)\n\n");
    let m = MConfig::new("", ttcore::MasterKind::Gps, ([0, 0, 0, 0], 0).into());
    let mut top = as_table(&m);
    for required in ["id", "kind", "listen"] {
        top.remove(required);
    }
    table(
        &mut out,
        "top level",
        &fields(TIMEMASTER_SRC, "Config"),
        &top,
    );
    let pps = || PpsSource::Sock {
        path: Default::default(),
    };
    let mut gps = as_table(&GpsConfig::new(Default::default(), pps()));
    gps.remove("nmea-device");
    gps.remove("pps");
    table(
        &mut out,
        "`[gps]`",
        &fields(TIMEMASTER_SRC, "GpsConfig"),
        &gps,
    );
    let mut atomic = as_table(&AtomicConfig::new(pps(), 0));
    atomic.remove("pps");
    atomic.remove("drift-ppt");
    table(
        &mut out,
        "`[atomic]`",
        &fields(TIMEMASTER_SRC, "AtomicConfig"),
        &atomic,
    );
    table(
        &mut out,
        "`[[peer]]` (one per peer master)",
        &fields(TIMEMASTER_SRC, "PeerConfig"),
        &toml::Table::new(),
    );
    let mut nts = as_table(&timemaster::config::NtsConfig::new(
        ([0, 0, 0, 0], 0).into(),
        Default::default(),
        Default::default(),
        Default::default(),
    ));
    for required in ["ke-listen", "certificate", "private-key", "key-file"] {
        nts.remove(required);
    }
    table(
        &mut out,
        "`[nts]` (NTS for the time served)",
        &fields(TIMEMASTER_SRC, "NtsConfig"),
        &nts,
    );
    out.push_str("## both daemons\n\n");
    table(
        &mut out,
        "`[management]` (the gRPC listener: TLS and the token for state-changing calls)",
        &fields(MGMT_SRC, "ManagementConfig"),
        &toml::Table::new(),
    );
    out.push_str(
        "`pps` is `{ source = \"sock\", path = … }` (gpsd/chrony SOCK datagrams), `{ source = \"kernel\", device = \"/dev/ppsN\" }` or `{ source = \"gpio\", chip = \"/dev/gpiochipN\", line = N }`. `lock-line` is `{ source = \"gpio\", chip, line, active-low }` or `{ source = \"file\", path }` (a file holding 0 or 1).\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_serialized_key_has_a_documented_field_and_back() {
        // The parser against serde: the keys a full timed config serializes to are exactly
        // the documented fields (options set so that they serialize too).
        let mut t = timed::config::Config::new(Vec::new());
        t.clockbound_shm_path = Some("/x".into());
        t.holdover_after_ms = Some(1);
        t.void_after_ms = Some(1);
        t.max_liars = Some(1);
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
    fn a_changed_default_changes_the_reference() {
        // Negative control for the staleness check: the same generator over a config with a
        // different default gives a different table.
        let mut t = timed::config::Config::new(Vec::new());
        let mut a = String::new();
        table(&mut a, "x", &fields(TIMED_SRC, "Config"), &as_table(&t));
        t.poll_interval_ms += 1;
        let mut b = String::new();
        table(&mut b, "x", &fields(TIMED_SRC, "Config"), &as_table(&t));
        assert_ne!(a, b);
        assert!(a.contains("| `poll-interval-ms` | ms | `1000` |"), "{a}");
    }
}
