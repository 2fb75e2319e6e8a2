//! The page's unit tests.

use super::clockbound::CbSegment;
use super::layout::*;
use super::reader::*;
use super::*;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;
use ttcore::{ClockModel, ClockStatus, Rate, RawReading, Span, Timestamp};

/// A raw reading of `ns`.
fn rr(ns: i64) -> RawReading {
    RawReading::from_nanos(ns)
}

fn data(v: i64) -> PageData {
    let mut d = PageData::unsynchronized(rr(v));
    d.model = ClockModel {
        ref_raw: rr(v),
        ref_time: Timestamp::from_nanos(v),
        freq: Rate::from_ppt(v),
        eps_ref: Span::from_nanos(v),
        drift_bound: Rate::from_ppt(v),
    };
    d.status = ClockStatus::Synchronized;
    d.max_eps = Span::from_nanos(v);
    d.void_after_raw = rr(v);
    d.holdover_after_raw = rr(v);
    d
}

#[test]
fn layout_offsets() {
    assert_eq!(std::mem::offset_of!(PageRaw, generation), 16);
    assert_eq!(std::mem::offset_of!(PageRaw, f), 24);
    assert_eq!(std::mem::offset_of!(CbSegment, as_of_sec), 16);
    assert_eq!(std::mem::offset_of!(CbSegment, bound_nsec), 48);
    assert_eq!(std::mem::offset_of!(CbSegment, max_drift_ppb), 64);
    assert_eq!(std::mem::offset_of!(CbSegment, clock_status), 68);
    assert_eq!(std::mem::offset_of!(CbSegment, disruption_support), 72);
}

#[test]
fn round_trip_and_reuse_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("page");
    let mut w = PageWriter::open(&path).unwrap();
    let r = PageReader::open(&path).unwrap();
    assert_eq!(r.read().unwrap().status, ClockStatus::Unsynchronized);
    w.write(&data(42));
    assert_eq!(r.read().unwrap(), data(42));
    let g = r.generation();
    drop(w);
    // A restarted writer reuses the file: the old reader sees its updates.
    let mut w2 = PageWriter::open(&path).unwrap();
    w2.write(&data(43));
    assert_eq!(r.read().unwrap(), data(43));
    assert!(r.generation() > g);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
}

#[test]
fn readers_never_see_a_torn_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("page");
    let mut w = PageWriter::open(&path).unwrap();
    w.write(&data(1));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let p2 = path.clone();
    let reader = std::thread::spawn(move || {
        let r = PageReader::open(&p2).unwrap();
        let mut n = 0u64;
        while !s2.load(Ordering::Relaxed) {
            match r.read() {
                Ok(d) => {
                    // Every field was written with the same value: any mix is a torn read.
                    let v = d.model.ref_raw.as_nanos();
                    assert_eq!(d, data(v), "torn read");
                    n += 1;
                }
                // A writer in a tight loop can keep a descheduled reader from a consistent copy
                // past its 10 ms deadline (on a loaded machine): a refusal, not a torn read.
                Err(ShmError::Busy) => {}
                Err(e) => panic!("{e}"),
            }
        }
        n
    });
    for v in 2..200_000 {
        w.write(&data(v));
        if v % 16 == 0 {
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
}

#[test]
fn bad_pages_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::write(&small, [0u8; 10]).unwrap();
    assert!(matches!(
        PageReader::open(&small),
        Err(ShmError::Format { .. })
    ));
    let junk = dir.path().join("junk");
    std::fs::write(&junk, [7u8; PAGE_SIZE]).unwrap();
    let e = PageReader::open(&junk).err().unwrap().to_string();
    assert!(e.contains("bad magic"), "{e}");
    assert!(matches!(
        PageReader::open(&dir.path().join("missing")),
        Err(ShmError::Io { .. })
    ));
    // A writer refuses nothing: it replaces junk with a fresh page.
    PageWriter::open(&junk).unwrap();
    assert!(PageReader::open(&junk).is_ok());
    // A valid page that others may write is not trusted to be timed's.
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = PageReader::open(&junk).err().unwrap().to_string();
    assert!(e.contains("0666"), "{e}");
}

/// An unprivileged local user (here `nobody`) can read timed's page but cannot write, truncate,
/// replace or remove it: the file is 0644 and its directory 0755, both root's. The negative
/// control opens the file to everyone: the same user then can write it — and readers refuse it.
#[test]
#[ignore = "needs root (to act as another, unprivileged user)"]
fn an_unprivileged_user_cannot_write_or_replace_the_page() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let page = dir.path().join("page");
    PageWriter::open(&page).unwrap();
    let p = page.display().to_string();
    let d = dir.path().display().to_string();
    let as_nobody = |script: &str| -> bool {
        std::process::Command::new("sh")
            .args(["-c", script])
            .uid(65534)
            .gid(65534)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    assert!(
        as_nobody(&format!("cat {p} > /dev/null")),
        "a reader can read"
    );
    for (what, script) in [
        ("write", format!("printf x >> {p}")),
        ("truncate", format!(": > {p}")),
        ("remove", format!("rm -f {p}")),
        (
            "replace",
            format!("printf x > {d}/new && mv -f {d}/new {p}"),
        ),
        ("symlink over", format!("ln -sf /tmp/x {p}")),
    ] {
        assert!(
            !as_nobody(&script),
            "an unprivileged user could {what} the page"
        );
    }
    assert!(PageReader::open(&page).is_ok(), "the page is intact");
    // Negative control: a page anyone may write is written by anyone, and refused by readers.
    std::fs::set_permissions(&page, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert!(as_nobody(&format!(
        "printf x | dd of={p} bs=1 seek=100 conv=notrunc 2>/dev/null"
    )));
    assert!(PageReader::open(&page).is_err());
}

use proptest::prelude::*;

/// A page with model `[ref_raw, ref_time, freq_ppt, eps_ref, drift_ppt]`, `status`, and
/// holdover 5 s after the reference.
fn page_data(m: [i64; 5], status: u8) -> PageData {
    let mut d = PageData::unsynchronized(rr(0));
    d.model = ClockModel {
        ref_raw: rr(m[0]),
        ref_time: Timestamp::from_nanos(m[1]),
        freq: Rate::from_ppt(m[2]),
        eps_ref: Span::from_nanos(m[3]),
        drift_bound: Rate::from_ppt(m[4]),
    };
    d.status = ClockStatus::from_u8(status).unwrap();
    d.holdover_after_raw = rr(m[0] + 5_000_000_000);
    d
}

/// Writes `d` to a fresh page and opens a reader on it.
fn published(d: &PageData) -> (tempfile::TempDir, PageReader) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    PageWriter::open(&path).unwrap().write(d);
    let r = PageReader::open(&path).unwrap();
    (dir, r)
}

proptest! {
    // The hot path's interval contains the exact one and its status is the same.
    #[test]
    fn hot_path_contains_the_exact_interval(
        ref_raw in 0i64..1_000_000_000_000_000,
        ref_time in 1_000_000_000_000_000_000i64..2_000_000_000_000_000_000,
        freq in -1_000_000_000i64..1_000_000_000,
        eps in 0i64..100_000_000,
        drift in 0i64..1_000_000_000,
        age in -100_000_000_000_000i64..1_000_000_000_000_000,
        status in 1u8..5,
        skew in prop_oneof![Just(0i64), -1_000_000_000i64..1_000_000_000],
        step in prop_oneof![Just(0i64), -10_000_000i64..10_000_000],
    ) {
        let mut d = page_data([ref_raw, ref_time, freq, eps, drift], status);
        d.max_eps = Span::from_millis(500);
        d.void_after_raw = rr(ref_raw + 500_000_000_000);
        d.knob = Knob { anchor_raw_ns: ref_raw, skew: Rate::from_ppt(skew), step_ns: step };
        let (_dir, r) = published(&d);
        let raw = ref_raw + age;
        let exact = r.read().unwrap().read_at(rr(raw));
        let (iv, st) = r.read_hot().unwrap().at(rr(raw));
        prop_assert!(iv.earliest() <= exact.interval.earliest() && iv.latest() >= exact.interval.latest(), "{iv} vs {}", exact.interval);
        prop_assert!(iv.width().as_nanos() - exact.interval.width().as_nanos() <= 4);
        // The status may differ only where ε sits within 2 ns of max-epsilon.
        if (exact.interval.epsilon().as_nanos() - d.max_eps.as_nanos()).abs() > 4 {
            prop_assert_eq!(st, exact.status);
        }
    }
}

proptest! {
    // The fast block's interval contains the exact one, is at most 6 ns wider, and comes
    // with the exact status; outside its window it declines.
    #[test]
    fn fast_block_contains_the_exact_interval(
        ref_raw in 0i64..1_000_000_000_000_000,
        ref_time in 1_000_000_000_000_000_000i64..2_000_000_000_000_000_000,
        freq in -1_000_000_000i64..1_000_000_000,
        eps in 0i64..100_000_000,
        drift in 0i64..1_000_000_000,
        age in prop_oneof![2 => 0i64..6_000_000_000, 1 => -100_000_000_000i64..4_000_000_000_000],
        status in prop_oneof![3 => 1u8..3, 1 => 3u8..5],
        max_eps_ms in 1i64..1000,
        knob in prop_oneof![3 => Just(0i64), 1 => 1i64..1_000_000],
    ) {
        let mut d = page_data([ref_raw, ref_time, freq, eps, drift], status);
        d.max_eps = Span::from_millis(max_eps_ms);
        d.void_after_raw = rr(ref_raw + 2_000_000_000_000);
        d.knob = Knob { anchor_raw_ns: ref_raw, skew: Rate::from_ppt(knob), step_ns: 0 };
        let (_dir, r) = published(&d);
        let raw = ref_raw + age;
        let exact = r.read().unwrap().read_at(rr(raw));
        match r.read_fast().at(rr(raw)) {
            Some((iv, st)) => {
                prop_assert!(knob == 0 && status <= 2 && age >= 0);
                prop_assert!(iv.earliest() <= exact.interval.earliest() && iv.latest() >= exact.interval.latest(), "{iv} vs {}", exact.interval);
                prop_assert!(iv.width().as_nanos() - exact.interval.width().as_nanos() <= 6);
                prop_assert_eq!(st, exact.status);
                prop_assert!(iv.epsilon() <= d.max_eps);
            }
            None => {
                // Declining is always allowed; it must happen where the fast rule would
                // be wrong (these are the cases the slow path exists for).
                let must_decline = knob != 0 || status > 2 || age < 0
                    || raw >= d.void_after_raw.as_nanos()
                    || (status == 1 && raw >= d.holdover_after_raw.as_nanos());
                let eps_headroom = d.max_eps.as_nanos() - exact.interval.epsilon().as_nanos();
                prop_assert!(must_decline || eps_headroom <= 8, "declined with {eps_headroom} ns of headroom");
            }
        }
    }
}

#[test]
fn the_fast_block_declines_untrustworthy_pages_and_the_knob() {
    let mut d = PageData::unsynchronized(rr(1_000));
    assert_eq!(fast_block(&d), [0; 7]);
    d.status = ClockStatus::Synchronized;
    d.model.eps_ref = Span::from_micros(10);
    d.model.ref_time = Timestamp::from_nanos(1_700_000_000_000_000_000);
    d.max_eps = Span::from_millis(1);
    d.void_after_raw = rr(1_000 + 10_000_000_000);
    d.holdover_after_raw = rr(1_000 + 1_000_000_000);
    let b = fast_block(&d);
    assert_eq!(b[5], 1_000_000_000, "the window ends at holdover_after");
    // Inside the window the reader takes the fast path and agrees with the exact reading.
    let (_dir, r) = published(&d);
    let (iv, st) = r
        .read_fast()
        .at(rr(1_000 + 500_000_000))
        .expect("inside the window");
    let exact = r.read().unwrap().read_at(rr(1_000 + 500_000_000));
    assert_eq!(st, exact.status);
    assert!(iv.earliest() <= exact.interval.earliest() && iv.latest() >= exact.interval.latest());
    assert!(
        r.read_fast().at(rr(1_000 + 1_000_000_000)).is_none(),
        "declines at holdover_after"
    );
    d.status = ClockStatus::Holdover;
    assert_eq!(
        fast_block(&d)[5],
        10_000_000_000,
        "… or at void_after in holdover"
    );
    d.knob.step_ns = 5;
    assert_eq!(fast_block(&d), [0; 7]);
}

#[test]
fn floor_and_ceil_without_libm() {
    for x in [
        -2.5,
        -2.0,
        -0.5,
        0.0,
        0.5,
        2.0,
        2.5,
        1e15 + 0.5,
        -1e15 - 0.5,
    ] {
        assert_eq!(floor_i64(x), x.floor() as i64, "{x}");
        assert_eq!(ceil_i64(x), x.ceil() as i64, "{x}");
    }
}

#[test]
fn time_dependent_status() {
    let mut d = data(0);
    d.model = ClockModel {
        ref_raw: rr(1_000),
        ref_time: Timestamp::from_nanos(5_000),
        freq: Rate::ZERO,
        eps_ref: Span::from_nanos(100),
        drift_bound: Rate::from_ppm(200),
    };
    d.max_eps = Span::from_nanos(300);
    d.holdover_after_raw = rr(500_000);
    d.void_after_raw = rr(10_000_000);
    assert_eq!(d.read_at(rr(2_000)).status, ClockStatus::Synchronized);
    assert_eq!(d.read_at(rr(600_000)).degraded, Degraded::Stale);
    assert_eq!(d.read_at(rr(600_000)).status, ClockStatus::Holdover);
    // ε = 100 ns + 200 ppm × age: 220 ns at 0.6 ms, 420 ns at 1.6 ms (> 300 ns).
    assert_eq!(d.read_at(rr(1_600_000)).degraded, Degraded::EpsilonTooLarge);
    assert_eq!(d.read_at(rr(20_000_000)).degraded, Degraded::Void);
    // The knob: +1 ms step shifts the interval by 1 ms of raw.
    d.knob = Knob {
        anchor_raw_ns: 0,
        skew: Rate::ZERO,
        step_ns: 1_000,
    };
    assert_eq!(d.read_at(rr(2_000)).raw, rr(3_000));
}

/// The counter block (PROTOCOL.md "Counter path") through a real page: it round-trips, reads
/// an interval containing the host's realtime (the synthetic page's truth), and is refused —
/// the caller reads the raw clock — when the realtime offset moved (a suspend ended: 100 µs,
/// and even 1 ns), when the counter is behind the reference (a reset), when the VMClock marker
/// is not the page's, and when the page's status is not trustworthy or the knob is on.
#[test]
fn the_counter_block_reads_truth_and_refuses_a_moved_offset_a_reset_and_a_migration() {
    if let Some(why) = crate::tsc::unusable_reason() {
        panic!("this test needs a usable time-stamp counter: {why}");
    }
    let d = host_realtime_page_with_counter(
        Span::from_micros(20),
        Rate::from_ppm(15),
        ClockStatus::Synchronized,
        std::time::Duration::from_millis(1_100),
    );
    let block = d.tsc.expect("a counter block");
    let (_dir, r) = published(&d);
    assert_eq!(r.read().unwrap().tsc, Some(block), "round trip");
    let t = r.read_tsc();
    for _ in 0..1_000 {
        let off = crate::clock::realtime_offset_ns().unwrap();
        let before = crate::clock::realtime_ns();
        let tsc = crate::tsc::read_ordered().unwrap();
        let after = crate::clock::realtime_ns();
        let (i, st) = t.at(tsc, off, None).expect("inside the window");
        assert_eq!(st, ClockStatus::Synchronized);
        assert!(
            i.earliest().as_nanos() <= after && i.latest().as_nanos() >= before,
            "{i} misses [{before}, {after}]"
        );
        // 20 µs + the pair and the rate's error: well under 25 µs.
        assert!(i.epsilon().as_nanos() < 25_000, "{i}");
    }
    let off = crate::clock::realtime_offset_ns().unwrap();
    let tsc = crate::tsc::read_ordered().unwrap();
    assert!(t.at(tsc, off, None).is_some(), "the control read");
    assert!(t.at(tsc, off + 100_000, None).is_none(), "a 100 µs suspend");
    assert!(t.at(tsc, off - 1, None).is_none(), "1 ns");
    assert!(t.at(block.map.tsc_ref - 1, off, None).is_none(), "reset");
    assert!(t.at(tsc, off, Some(7)).is_some(), "no marker on the page");
    let mut vm = d;
    vm.vmclock_marker = Some(5);
    let (_dir2, r2) = published(&vm);
    let t2 = r2.read_tsc();
    assert!(t2.at(tsc, off, Some(5)).is_some(), "the same marker");
    assert!(t2.at(tsc, off, Some(6)).is_none(), "a migration");
    for (what, change) in [
        ("unsynchronized", ClockStatus::Unsynchronized),
        ("disrupted", ClockStatus::Disrupted),
    ] {
        let mut bad = d;
        bad.status = change;
        let (_d3, r3) = published(&bad);
        assert!(r3.read_tsc().at(tsc, off, None).is_none(), "{what}");
    }
    let mut knob = d;
    knob.knob.step_ns = 1_000;
    let (_d4, r4) = published(&knob);
    assert!(r4.read_tsc().at(tsc, off, None).is_none(), "the knob");
}
