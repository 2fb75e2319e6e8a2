//! NTS (RFC 8915) on a real master: NTS-KE over TLS 1.3 on a real socket, authenticated time
//! over UDP to our own client and to a real chronyd, replies never larger than requests, and
//! plain requests still answered (unauthenticated).

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};
use ttsys::ntp::{NtsSource, Source};

struct NtsMaster {
    _tmp: tempfile::TempDir,
    _sim: Sim,
    _m: Proc,
    ntp: u16,
    ke: u16,
    pki: ttsys::nts::Pki,
}

fn nts_master() -> NtsMaster {
    let tmp = tempfile::tempdir().unwrap();
    let sim = Sim::start(&tmp.path().join("sim"), "");
    let pki = ttsys::nts::throwaway_pki(tmp.path(), &["127.0.0.1"]).unwrap();
    let (ntp, ke) = (free_port(), free_port());
    let cfg = format!(
        "id = \"nts\"\nkind = \"gps\"\nlisten = \"127.0.0.1:{ntp}\"\n{}\n[nts]\n\
         ke-listen = \"127.0.0.1:{ke}\"\ncertificate = \"{}\"\nprivate-key = \"{}\"\n\
         key-file = \"{}\"\n",
        sim.gps_sections(false),
        pki.cert.display(),
        pki.key.display(),
        tmp.path().join("nts-keys").display(),
    );
    let m = start_master(tmp.path(), "nts", &cfg);
    NtsMaster {
        _tmp: tmp,
        _sim: sim,
        _m: m,
        ntp,
        ke,
        pki,
    }
}

fn nts_source(m: &NtsMaster, ca: &std::path::Path) -> Source {
    let tls = ttsys::nts::client_config(ca, ttcore::ntp::nts::ALPN).unwrap();
    Source::new(&format!("127.0.0.1:{}", m.ntp)).with_nts(NtsSource::new(
        &format!("127.0.0.1:{}", m.ke),
        Some("127.0.0.1"),
        tls,
    ))
}

#[test]
fn our_client_gets_authenticated_time_and_a_stranger_ca_gets_none() {
    let m = nts_master();
    let mut src = nts_source(&m, &m.pki.ca);
    let drift = ttcore::Rate::from_ppm(500);
    // Until the master is up (its KE socket answers) and synchronized.
    let t0 = Instant::now();
    let burst = loop {
        let b = src.burst(4, Duration::from_millis(500), drift, &|r| r);
        if b.samples.iter().any(|s| s.trustworthy) {
            break b;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no trustworthy NTS sample: {:?}",
            b.errors
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(burst.errors.is_empty(), "{:?}", burst.errors);
    let nts = src.nts().expect("NTS on");
    // Later bursts run on the cookies each reply brings: no new key exchange.
    let kes = nts.key_exchanges;
    for _ in 0..5 {
        let b = src.burst(4, Duration::from_millis(500), drift, &|r| r);
        assert!(
            b.errors.is_empty() && !b.samples.is_empty(),
            "{:?}",
            b.errors
        );
    }
    assert_eq!(
        src.nts().unwrap().key_exchanges,
        kes,
        "cookies were replenished"
    );
    // Interleaved samples under NTS too (the master finds its NTS replies' transmit stamps).
    let b = src.burst(4, Duration::from_millis(500), drift, &|r| r);
    assert!(b.samples.iter().any(|s| s.interleaved), "{:?}", b.samples);

    // A client that trusts another CA never gets a session, so never a sample.
    let other = tempfile::tempdir().unwrap();
    let stranger = ttsys::nts::throwaway_pki(other.path(), &["127.0.0.1"]).unwrap();
    let mut bad = nts_source(&m, &stranger.ca);
    let b = bad.burst(4, Duration::from_millis(500), drift, &|r| r);
    assert!(b.samples.is_empty());
    assert!(
        b.errors.iter().any(|e| e.contains("NTS-KE")),
        "{:?}",
        b.errors
    );

    // Plain clients are still served, unauthenticated.
    let before = transfer(m.ntp);
    let mut plain = Source::new(&format!("127.0.0.1:{}", m.ntp));
    let b = plain.burst(2, Duration::from_millis(500), drift, &|r| r);
    assert!(!b.samples.is_empty(), "{:?}", b.errors);
    let after = transfer(m.ntp);
    assert!(after.nts && after.nts_authenticated >= 30, "{after:?}");
    assert_eq!(
        after.nts_authenticated, before.nts_authenticated,
        "plain is not NTS"
    );
    assert!(after.answered >= before.answered + 2);
}

/// A real chronyd (as a one-shot NTS client, `-Q`) authenticates to the master with NTS-KE and
/// measures its offset; on this machine the master's time is the host's clock, so the offset
/// chronyd reports is small.
#[test]
#[ignore = "needs chronyd"]
fn chronyd_uses_the_master_over_nts() {
    let m = nts_master();
    // Wait for the master to synchronize (a plain exchange gives a trustworthy sample).
    let mut plain = Source::new(&format!("127.0.0.1:{}", m.ntp));
    let t0 = Instant::now();
    while !plain
        .burst(
            1,
            Duration::from_millis(300),
            ttcore::Rate::from_ppm(500),
            &|r| r,
        )
        .samples
        .iter()
        .any(|s| s.trustworthy)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "master never synchronized"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("chronyd")
        .args(["-Q", "-u", "root", "-f", "/dev/null", "-L", "0", "-t", "20"])
        .arg(format!(
            "server 127.0.0.1 port {} nts ntsport {} iburst maxsamples 4 minpoll -6 maxpoll -6",
            m.ntp, m.ke
        ))
        .arg(format!("ntstrustedcerts {}", m.pki.ca.display()))
        .arg(format!("ntsdumpdir {}", dir.path().display()))
        .arg(format!(
            "pidfile {}",
            dir.path().join("chronyd.pid").display()
        ))
        .output()
        .expect("chronyd runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    // chronyd -Q prints "System clock wrong by X seconds (ignored)" once it has measured.
    let line = text
        .lines()
        .find(|l| l.contains("System clock wrong by"))
        .unwrap_or_else(|| panic!("chronyd measured nothing over NTS:\n{text}"));
    let off: f64 = line
        .split("wrong by ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no offset in {line:?}"));
    assert!(off.abs() < 0.001, "offset {off} s over NTS");
    // And it was NTS: the master counts chronyd's key exchange and authenticated requests.
    let t = transfer(m.ntp);
    assert!(
        t.nts && t.nts_ke_ok >= 1 && t.nts_authenticated >= 1,
        "{t:?}"
    );
}

/// The master's transfer counters, over gRPC.
fn transfer(port: u16) -> ttproto::v1::TransferStats {
    rt().block_on(async {
        client(port)
            .await
            .status(ttproto::v1::StatusRequest {})
            .await
            .unwrap()
            .into_inner()
            .transfer
            .expect("transfer stats")
    })
}
