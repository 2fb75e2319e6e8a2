//! Reference documentation generated from the code, so that it cannot drift from it:
//!
//! - the configuration reference — each key's name, unit, default and meaning — read from a
//!   config struct's source (the meaning is the field's doc comment) and from its defaults
//!   (serialized exactly as a file would hold them). `docs/CONFIG.md` and the config files'
//!   man pages (`timed.toml(5)`, `timemaster.toml(5)`) are two renderings of the same
//!   [`Section`]s;
//! - a binary's man page (`clap_mangen`) and its shell completions for bash, zsh and fish
//!   (`clap_complete`), from its clap definition ([`write_docs`], behind each binary's hidden
//!   `generate-docs` command, which the packages are built with).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One field of a config struct, as its source declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    /// The key in the file (kebab-case, or the serde rename).
    pub key: String,
    /// The Rust type.
    pub ty: String,
    /// The doc comment, joined into one line (markdown: `code` in backticks).
    pub doc: String,
    /// The field has a serde default.
    pub defaulted: bool,
}

/// The fields of `pub struct <name>` in `src`, in order; empty when there is no such struct.
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

/// The unit a key's name carries ("—" for none).
pub fn unit(key: &str) -> &'static str {
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

/// A value as a TOML table (empty when it does not serialize to one).
pub fn as_table<T: serde::Serialize>(v: &T) -> toml::Table {
    toml::Table::try_from(v).unwrap_or_default()
}

/// One table of the reference: a struct's fields and the defaults it is built with.
#[derive(Clone, Debug)]
pub struct Section {
    /// Heading (markdown: `[gps]` in backticks).
    pub title: String,
    /// The struct's fields, in source order.
    pub fields: Vec<Field>,
    /// The defaults, as a file would hold them; a key missing here has no default.
    pub defaults: BTreeMap<String, toml::Value>,
}

impl Section {
    /// The section for `pub struct <name>` in `src`, with the defaults of `defaults` (a struct
    /// serialized with [`as_table`], required keys removed).
    pub fn new(title: &str, src: &str, name: &str, defaults: toml::Table) -> Self {
        Self {
            title: title.to_string(),
            fields: fields(src, name),
            defaults: defaults.into_iter().collect(),
        }
    }

    /// The default column: the serialized value in backticks, "**required**", or "none" for an
    /// absent option.
    pub fn default_of(&self, f: &Field) -> String {
        let optional = f.ty.starts_with("Option<");
        if !f.defaulted && !optional {
            return "**required**".into();
        }
        match self.defaults.get(&f.key) {
            Some(v) if v.as_array().is_some_and(|a| a.is_empty()) => "none".into(),
            Some(v) => format!("`{v}`"),
            None => "none".into(),
        }
    }

    /// The section as a markdown table (for `docs/CONFIG.md`).
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### {}\n", self.title);
        let _ = writeln!(out, "| key | unit | default | meaning |");
        let _ = writeln!(out, "|---|---|---|---|");
        for f in &self.fields {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                f.key,
                unit(&f.key),
                self.default_of(f),
                f.doc.replace('|', "\\|")
            );
        }
        out.push('\n');
        out
    }
}

/// A configuration file's manual page, `NAME(5)`.
#[derive(Clone, Debug)]
pub struct ConfigPage {
    /// The page's name, e.g. `timed.toml`.
    pub name: &'static str,
    /// The daemon that reads the file, e.g. `timed` (for SEE ALSO, section 8).
    pub daemon: &'static str,
    /// Where the packages install it, e.g. `/etc/truetime/timed.toml`.
    pub path: &'static str,
    /// One line for NAME.
    pub summary: &'static str,
    /// The tables, in order.
    pub sections: Vec<Section>,
    /// Closing notes (markdown backticks), one paragraph each.
    pub notes: Vec<&'static str>,
}

/// Markdown inline text (backticks for code, `**` for strong) as roff inline text: code and
/// strong in bold, the rest roman.
fn inline(md: &str) -> Vec<roff::Inline> {
    let mut out = Vec::new();
    for (i, part) in md.replace("**", "`").split('`').enumerate() {
        if part.is_empty() {
            continue;
        }
        out.push(if i % 2 == 1 {
            roff::bold(part)
        } else {
            roff::roman(part)
        });
    }
    out
}

impl ConfigPage {
    /// The page in roff (`man -l` renders it).
    pub fn roff(&self) -> String {
        use roff::{Roff, bold, roman};
        let mut page = Roff::new();
        page.control("TH", [self.name.to_uppercase().as_str(), "5"])
            .control("SH", ["NAME"])
            .text([roman(format!("{} - {}", self.name, self.summary))])
            .control("SH", ["SYNOPSIS"])
            .text([bold(self.path)])
            .control("SH", ["DESCRIPTION"])
            .text([
                roman("The configuration of "),
                bold(self.daemon),
                roman("(8), in TOML. Keys are kebab-case and carry their unit; an unknown key is an error that names its line ("),
                bold(format!("{} validate -c FILE", self.daemon)),
                roman(" checks a file). \"none\" means the key is optional and absent by default."),
            ]);
        for s in &self.sections {
            let title: String = s.title.replace('`', "");
            page.control("SH", [title.to_uppercase().as_str()]);
            for f in &s.fields {
                page.control("TP", []);
                let mut head = vec![bold(f.key.as_str())];
                let u = unit(&f.key);
                let default = s.default_of(f).replace(['`', '*'], "");
                head.push(roman(if u == "—" {
                    format!(" (default {default})")
                } else {
                    format!(" ({u}; default {default})")
                }));
                page.text(head);
                page.text(inline(&f.doc));
            }
        }
        if !self.notes.is_empty() {
            page.control("SH", ["NOTES"]);
            for n in &self.notes {
                page.text(inline(n)).control("PP", []);
            }
        }
        page.control("SH", ["SEE ALSO"]).text([
            bold(self.daemon),
            roman("(8), "),
            bold("ttctl"),
            roman("(1)"),
        ]);
        page.render()
    }
}

/// Writes a binary's documentation under `out`: its man page `man/<name>.<section>`, one per
/// subcommand (`man/<name>-<sub>.<section>`, as the main page's SUBCOMMANDS list names them),
/// and, when given, its config file's `man/<config>.5`; and its completions
/// `completions/bash/<name>`, `completions/zsh/_<name>`, `completions/fish/<name>.fish`.
/// `extra` adds sections to the main page: (title, text with markdown backticks, paragraphs
/// separated by blank lines), e.g. FILES and SEE ALSO. Returns the files written.
pub fn write_docs(
    cmd: clap::Command,
    section: &str,
    config: Option<&ConfigPage>,
    extra: &[(&str, &str)],
    out: &Path,
) -> std::io::Result<Vec<PathBuf>> {
    use clap_complete::Shell;
    fn subpages(
        cmd: &clap::Command,
        section: &str,
        dir: &Path,
        written: &mut Vec<PathBuf>,
    ) -> std::io::Result<()> {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            subpages(sub, section, dir, written)?;
            let path = clap_mangen::Man::new(sub.clone())
                .section(section)
                .generate_to(dir)?;
            written.push(path);
        }
        Ok(())
    }
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let name = cmd.get_name().to_string();
    let mut written = Vec::new();
    let man = out.join("man");
    std::fs::create_dir_all(&man)?;
    subpages(&cmd, section, &man, &mut written)?;
    // The main page: clap's sections, then the caller's (FILES, SEE ALSO, …), then the version.
    let m = clap_mangen::Man::new(cmd.clone()).section(section);
    let mut page = Vec::new();
    m.render_title(&mut page)?;
    m.render_name_section(&mut page)?;
    m.render_synopsis_section(&mut page)?;
    m.render_description_section(&mut page)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        m.render_options_section(&mut page)?;
    }
    if cmd.has_subcommands() {
        m.render_subcommands_section(&mut page)?;
    }
    for (title, text) in extra {
        let mut r = roff::Roff::new();
        r.control("SH", [*title]);
        for paragraph in text.split("\n\n") {
            r.text(inline(paragraph)).control("PP", []);
        }
        page.extend_from_slice(r.render().as_bytes());
    }
    if cmd.get_version().is_some() || cmd.get_long_version().is_some() {
        m.render_version_section(&mut page)?;
    }
    let path = man.join(format!("{name}.{section}"));
    std::fs::write(&path, page)?;
    written.push(path);
    if let Some(c) = config {
        let path = man.join(format!("{}.5", c.name));
        std::fs::write(&path, c.roff())?;
        written.push(path);
    }
    for (shell, dir, file) in [
        (Shell::Bash, "bash", name.clone()),
        (Shell::Zsh, "zsh", format!("_{name}")),
        (Shell::Fish, "fish", format!("{name}.fish")),
    ] {
        let d = out.join("completions").join(dir);
        std::fs::create_dir_all(&d)?;
        let path = d.join(file);
        let mut f = std::fs::File::create(&path)?;
        clap_complete::generate(shell, &mut cmd, name.clone(), &mut f);
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    #[serde(rename_all = "kebab-case")]
    struct Demo {
        poll_interval_ms: u64,
        name: Option<String>,
    }

    const DEMO_SRC: &str = r#"
pub struct Demo {
    /// How often (`ms`).
    #[serde(default)]
    pub poll_interval_ms: u64,
    /// A name | with a bar.
    pub name: Option<String>,
    /// Required.
    pub addr: String,
}
"#;

    fn demo(poll: u64) -> Section {
        Section::new(
            "top",
            DEMO_SRC,
            "Demo",
            as_table(&Demo {
                poll_interval_ms: poll,
                name: None,
            }),
        )
    }

    #[test]
    fn the_table_says_unit_default_and_meaning() {
        let md = demo(1000).markdown();
        assert!(
            md.contains("| `poll-interval-ms` | ms | `1000` | How often (`ms`). |"),
            "{md}"
        );
        assert!(
            md.contains("| `name` | — | none | A name \\| with a bar. |"),
            "{md}"
        );
        assert!(
            md.contains("| `addr` | — | **required** | Required. |"),
            "{md}"
        );
        // Negative control for the staleness check: another default, another table.
        assert_ne!(md, demo(1001).markdown());
    }

    #[test]
    fn the_man_page_has_every_key_in_roff() {
        let page = ConfigPage {
            name: "demo.toml",
            daemon: "demo",
            path: "/etc/demo.toml",
            summary: "a demo",
            sections: vec![demo(1000)],
            notes: vec!["See `x`."],
        }
        .roff();
        assert!(page.contains("\n.TH DEMO.TOML 5\n"), "{page}");
        assert!(page.contains("demo.toml \\- a demo"), "{page}");
        for want in [
            "poll\\-interval\\-ms",
            "(ms; default 1000)",
            "addr",
            "required",
        ] {
            assert!(page.contains(want), "{want} missing in\n{page}");
        }
        assert!(!page.contains('`'), "markdown left in the page:\n{page}");
    }

    #[test]
    fn docs_are_written_for_every_shell() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = clap::Command::new("demo")
            .about("a demo")
            .arg(clap::Arg::new("config").long("config"));
        let cmd = cmd.subcommand(clap::Command::new("run").about("run it"));
        let files = write_docs(cmd, "8", None, &[("FILES", "`/etc/demo`")], dir.path()).unwrap();
        assert_eq!(files.len(), 5, "{files:?}");
        let run = std::fs::read_to_string(dir.path().join("man/demo-run.8")).unwrap();
        assert!(run.contains("run it"), "{run}");
        let man = std::fs::read_to_string(dir.path().join("man/demo.8")).unwrap();
        assert!(man.contains(".TH demo 8"), "{man}");
        assert!(man.contains(".SH FILES\n\\fB/etc/demo\\fR"), "{man}");
        assert!(man.contains("demo\\-run(8)"), "{man}");
        let bash = std::fs::read_to_string(dir.path().join("completions/bash/demo")).unwrap();
        assert!(bash.contains("--config"), "{bash}");
        assert!(dir.path().join("completions/zsh/_demo").exists());
        assert!(dir.path().join("completions/fish/demo.fish").exists());
    }
}
