//! The C ABI: a small C program, compiled here with the system C compiler against
//! `include/truetime.h` and `libtruetime.so`, reads the same page as Rust and gets the same
//! intervals at the same raw readings.

use std::path::{Path, PathBuf};
use std::process::Command;
use ttcore::{ClockModel, ClockStatus, Rate, RawReading, Span, Timestamp};
use ttsys::shm::{PageData, PageWriter};

const C_PROGRAM: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include "truetime.h"
int main(int argc, char **argv) {
    tt_handle *h = tt_open(argv[1]);
    if (!h) { fprintf(stderr, "tt_open failed\n"); return 2; }
    for (int i = 2; i < argc; i++) {
        tt_interval iv;
        int rc = tt_interval_at_raw(h, strtoll(argv[i], NULL, 10), &iv);
        printf("at %s rc=%d earliest=%lld latest=%lld status=%d\n", argv[i], rc,
               (long long)iv.earliest_ns, (long long)iv.latest_ns, iv.status);
    }
    tt_interval now;
    int rc = tt_now(h, &now);
    int after = -1, before = -1;
    int ra = tt_after(h, now.earliest_ns - 1000000000LL, &after);
    int rb = tt_before(h, now.latest_ns + 1000000000LL, &before);
    int64_t s = 0, waited = -1;
    int rs = tt_commit_timestamp(h, &s);
    int rw = tt_commit_wait(h, s, &waited);
    printf("now rc=%d status=%d after=%d/%d before=%d/%d commit=%d wait=%d waited=%lld\n",
           rc, now.status, ra, after, rb, before, rs, rw, (long long)waited);
    printf("bad %d %s\n", tt_now(NULL, &now), tt_strerror(TT_ERR_ARG));
    tt_close(h);
    return 0;
}
"#;

fn lib_dir() -> PathBuf {
    // The test executable lives in target/<profile>/deps. `cargo test` leaves the cdylib next
    // to it; `cargo build` also copies it up to target/<profile>.
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    if deps.join("libtruetime.so").exists() {
        deps
    } else {
        deps.parent().unwrap().to_path_buf()
    }
}

#[test]
fn c_program_gets_the_same_interval_as_rust() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page");
    let mut w = PageWriter::open(&page).unwrap();
    let now = ttsys::clock::raw_ns();
    let model = ClockModel {
        ref_raw: RawReading::from_nanos(now),
        ref_time: Timestamp::from_nanos(1_790_000_000_123_456_789),
        freq: Rate::from_ppt(-12_345_678),
        eps_ref: Span::from_nanos(43_210),
        drift_bound: Rate::from_ppm(200),
    };
    let mut d = PageData::unsynchronized(RawReading::from_nanos(now));
    d.model = model;
    d.status = ClockStatus::Synchronized;
    d.max_eps = Span::from_secs(1);
    d.void_after_raw = RawReading::from_nanos(now + 600_000_000_000);
    d.holdover_after_raw = RawReading::from_nanos(now + 600_000_000_000);
    w.write(&d);

    let built = lib_dir();
    assert!(
        built.join("libtruetime.so").exists(),
        "{} has no libtruetime.so",
        built.display()
    );
    // The library carries the SONAME libtruetime.so.0 (what the package installs, with
    // libtruetime.so a link to it), so a program linked to it asks for that name: lay the two
    // out the same way here.
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    std::fs::copy(built.join("libtruetime.so"), lib.join("libtruetime.so.0")).unwrap();
    std::os::unix::fs::symlink("libtruetime.so.0", lib.join("libtruetime.so")).unwrap();
    let src = dir.path().join("t.c");
    std::fs::write(&src, C_PROGRAM).unwrap();
    let bin = dir.path().join("t");
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let cc = Command::new("cc")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .arg(format!("-I{}", include.display()))
        .arg(format!("-L{}", lib.display()))
        .arg("-ltruetime")
        .output()
        .expect("a C compiler (cc)");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let raws = [
        now,
        now + 1,
        now + 999_999_937,
        now + 3_600_000_000_000,
        now - 5_000_000,
    ];
    let out = Command::new(&bin)
        .arg(&page)
        .args(raws.iter().map(|r| r.to_string()))
        .env("LD_LIBRARY_PATH", &lib)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tt = ttclient::TrueTime::open(&page).unwrap();
    // One of the readings is past void_after (an hour on): both must say unsynchronized.
    assert_eq!(
        tt.reading_at_raw(RawReading::from_nanos(now + 3_600_000_000_000))
            .unwrap()
            .status,
        ClockStatus::Unsynchronized
    );
    for (line, raw) in text.lines().zip(raws) {
        let r = tt.reading_at_raw(RawReading::from_nanos(raw)).unwrap();
        let expect = format!(
            "at {raw} rc=0 earliest={} latest={} status={}",
            r.interval.earliest().as_nanos(),
            r.interval.latest().as_nanos(),
            r.status.as_u8()
        );
        assert_eq!(line, expect);
    }
    let last = text.lines().nth(raws.len()).unwrap();
    assert!(
        last.starts_with("now rc=0 status=1 after=0/1 before=0/1 commit=0 wait=0 waited="),
        "{last}"
    );
    assert!(text.contains("bad 6 invalid argument"), "{text}");
}
